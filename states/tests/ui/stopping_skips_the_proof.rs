include!("common/stand_in.rs");

// A postgres handed over to be stopped ends in Terminated with the proof
// that it stopped, or abandoned with what was left: never as if there had
// been nothing to stop.
fn main() {
    let running = Empty::<T>::spawn().start("a").started(1);
    let (_pg, stopping) = running.terminate(Termination::signal(TerminationMode::Fast)).begin();
    let _terminated = stopping.nothing_to_stop();
}
