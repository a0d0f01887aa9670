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

// Only Failed and Terminated exit; a running compute must be terminated first.
fn main() {
    let running = Empty::<T>::spawn().start("spec").started(1);
    let _code = running.exit();
}
