include!("common/stand_in.rs");

// The postgres is handed over once: the handover consumes the state.
fn main() {
    let pending = Empty::<T>::spawn().start("a").started(1).terminate(Termination::signal(TerminationMode::Fast));
    let (_pg, _terminating) = pending.begin();
    let (_again, _) = pending.begin();
}
