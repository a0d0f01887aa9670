include!("common/stand_in.rs");

// A restart comes back Running only with the proof the old postgres
// stopped (and the new one): not with a new postgres alone.
fn main() {
    let (_old, restarting) = Empty::<T>::spawn().start("a").started(1).restart().begin();
    let _running = restarting.restarted(2);
}
