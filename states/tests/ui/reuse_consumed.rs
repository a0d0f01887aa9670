include!("common/stand_in.rs");

// Reusing a consumed state: a transition moves the state out.
fn main() {
    let empty = Empty::<T>::spawn();
    let _init = empty.start("spec");
    let _pending = empty.terminate(Termination::signal(TerminationMode::Fast));
}
