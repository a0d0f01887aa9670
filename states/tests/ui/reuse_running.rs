include!("common/stand_in.rs");

// Reusing a consumed state: a running compute that was terminated is gone.
fn main() {
    let running = Empty::<T>::spawn().start("spec").started(1);
    let _pending = running.terminate(Termination::signal(TerminationMode::Fast));
    let _twice = running.reconfigure("again");
}
