include!("common/stand_in.rs");

// Only a postgres handed over can be abandoned: a termination with none to
// stop cannot claim it left one behind.
fn main() {
    let terminating = Empty::<T>::spawn().terminate(Termination::signal(TerminationMode::Fast));
    let _terminated = terminating.abandoned("left postgres".into());
}
