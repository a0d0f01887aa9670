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

// Leaving a terminal state: Terminated only exits.
fn main() {
    let terminated = Empty::<T>::spawn().terminate(TerminationMode::Fast).nothing_to_stop();
    let _again = terminated.start("spec");
}
