use compute_states::*;

struct T;
impl Compute for T {
    type Spec = &'static str;
    type Postgres = u32;
    type Error = String;
}

// Leaving a terminal state: Terminated only exits.
fn main() {
    let terminated = Empty::<T>::spawn().terminate(TerminationMode::Fast).terminated(None);
    let _again = terminated.start("spec");
}
