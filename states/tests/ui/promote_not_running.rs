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

// Only a running compute is promoted: not one still starting (nor a failed one).
fn main() {
    let init = Empty::<T>::spawn().start("replica");
    let _promoting = init.promote("primary", Lsn(0x10));
}
