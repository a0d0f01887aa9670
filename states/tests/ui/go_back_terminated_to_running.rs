use compute_states::*;

struct T;
impl Compute for T {
    type Spec = &'static str;
    type Postgres = u32;
    type Error = String;
}

// Going back: TerminationPending cannot return to Running.
fn main() {
    let pending = Empty::<T>::spawn().start("spec").started(1).terminate(TerminationMode::Fast);
    let _running = pending.started(1);
}
