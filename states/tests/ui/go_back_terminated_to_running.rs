include!("common/stand_in.rs");

// Going back: TerminationPending cannot return to Running.
fn main() {
    let pending = Empty::<T>::spawn().start("spec").started(1).terminate(Termination::signal(TerminationMode::Fast));
    let _running = pending.started(1);
}
