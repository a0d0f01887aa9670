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

// Terminated needs the proof that postgres stopped, not just an LSN.
fn main() {
    let running = Empty::<T>::spawn().start("a").started(1);
    let _terminated = running.terminate(TerminationMode::Fast).terminated(None);
}
