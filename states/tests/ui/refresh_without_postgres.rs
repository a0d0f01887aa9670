include!("common/stand_in.rs");

// A refresh re-points a serving postgres: a failed compute with none
// (a failed start) takes a new spec instead.
fn main() {
    let failed = Empty::<T>::spawn().start("a").fail("boom".into());
    let _pending = failed.refresh();
}
