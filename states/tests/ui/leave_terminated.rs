include!("common/stand_in.rs");

// Leaving a terminal state: Terminated only exits.
fn main() {
    let terminated = Empty::<T>::spawn().terminate(Termination::signal(TerminationMode::Fast)).nothing_to_stop();
    let _again = terminated.start("spec");
}
