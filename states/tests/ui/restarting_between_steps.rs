include!("common/stand_in.rs");

// Restarting lives inside the restart's step: the loop cannot hold it
// between steps, so no arm of its match can lose the postgres.
fn main() {
    let running = Empty::<T>::spawn().start("a").started(1);
    let (_pg, restarting) = running.restart().begin();
    let _held: AnyState<T> = restarting.into();
}
