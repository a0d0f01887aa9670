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

// Running needs the evidence that postgres is up.
fn main() {
    let _running = Empty::<T>::spawn().start("spec").started();
}
