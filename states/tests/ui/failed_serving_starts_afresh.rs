include!("common/stand_in.rs");

// A failed reconfiguration leaves postgres serving: a new spec reconfigures
// it in place; a full start (a second postgres on the same PGDATA) is no move.
fn main() {
    let running = Empty::<T>::spawn().start("a").started(1);
    let failed = running.reconfigure("bad").begin().fail("rejected".into());
    let _pending: ConfigurationPending<T> = failed.configure("good");
}
