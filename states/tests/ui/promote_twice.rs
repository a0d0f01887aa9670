use compute_states::*;

struct T;
impl Compute for T {
    type Spec = &'static str;
    type Postgres = u32;
    type Error = String;
    type Stopped = Stopped;
    type ExitStatus = i32;
    fn exited(_: &u32, _: i32) -> String {
        String::new()
    }
}
pub struct Stopped;

// A promotion under way is not promoted again.
fn main() {
    let running = Empty::<T>::spawn().start("replica").started(1);
    let promoting = running.promote("primary", Lsn(0x10));
    let _again = promoting.promote("primary", Lsn(0x20));
}
