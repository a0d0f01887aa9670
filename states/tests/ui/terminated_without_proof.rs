include!("common/stand_in.rs");

// Terminated needs the proof that postgres stopped, not just an LSN.
fn main() {
    let running = Empty::<T>::spawn().start("a").started(1);
    let (_pg, terminating) = running.terminate(Termination::signal(TerminationMode::Fast)).begin();
    let _terminated = terminating.terminated(None);
}
