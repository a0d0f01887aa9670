include!("common/stand_in.rs");

// A promotion keeps the running postgres: it cannot swap in another one.
fn main() {
    let running = Empty::<T>::spawn().start("replica").started(1);
    let promoted = running.promote("primary", Lsn(0x10)).pg_promoted();
    let _running = promoted.promoted(2);
}
