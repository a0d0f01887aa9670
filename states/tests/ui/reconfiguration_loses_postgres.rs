include!("common/stand_in.rs");

// A reconfiguration keeps the serving postgres: it cannot be taken out
// (and lost) on the way back to Running.
fn main() {
    let running = Empty::<T>::spawn().start("a").started(1);
    let mut cfg = running.reconfigure("b").begin();
    let _lost = cfg.take_postgres();
}
