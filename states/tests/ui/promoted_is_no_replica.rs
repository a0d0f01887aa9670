include!("common/stand_in.rs");

// Once pg_promote() ran, postgres is a primary: the replica's spec cannot
// come back.
fn main() {
    let running = Empty::<T>::spawn().start("replica").started(1);
    let promoted = running.promote("primary", Lsn(0x10)).pg_promoted();
    let _running = promoted.not_promoted();
}
