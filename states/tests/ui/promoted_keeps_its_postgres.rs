include!("common/stand_in.rs");

// A promotion keeps the running postgres: it cannot swap in another one.
fn main() {
    let running = Empty::<T>::spawn().start("replica").started(1);
    let promoting = running.promote("primary", Lsn(0x10));
    let _running = promoting.promoted(2);
}
