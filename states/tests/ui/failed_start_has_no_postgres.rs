include!("common/stand_in.rs");

// A failed start has no postgres serving: nothing to read, nothing to
// reconfigure in place (a new spec starts afresh).
fn main() {
    let failed = Empty::<T>::spawn().start("spec").fail("boom".into());
    let _pg = failed.postgres();
    let _pending = failed.reconfigure("again");
}
