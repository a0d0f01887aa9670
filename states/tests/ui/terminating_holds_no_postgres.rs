include!("common/stand_in.rs");

// After the handover the state holds no postgres: none to take again.
fn main() {
    let pending = Empty::<T>::spawn().start("a").started(1).terminate(Termination::signal(TerminationMode::Fast));
    let (_pg, terminating) = pending.begin();
    let _none = terminating.begin();
}
