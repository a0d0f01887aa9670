include!("common/stand_in.rs");

// A restart ends Running only with the new postgres in hand.
fn main() {
    let (_old, restarting) = Empty::<T>::spawn().start("spec").started(1).restart().begin();
    let _running: Running<T> = restarting.restarted(Stopped);
}
