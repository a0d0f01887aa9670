include!("common/stand_in.rs");

// A termination with postgres serving cannot end without handing it over
// to be stopped: TerminationPending has no way to Terminated of its own.
fn main() {
    let pending = Empty::<T>::spawn().start("a").started(1).terminate(Termination::signal(TerminationMode::Fast));
    let _terminated = pending.nothing_to_stop();
}
