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

// Reusing a consumed state: a transition moves the state out.
fn main() {
    let empty = Empty::<T>::spawn();
    let _init = empty.start("spec");
    let _pending = empty.terminate(TerminationMode::Fast);
}
