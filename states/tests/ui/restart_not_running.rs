include!("common/stand_in.rs");

// Only a running compute restarts: a failed one (no postgres, or a rejected
// configuration) gets a new spec instead.
fn main() {
    let failed = Empty::<T>::spawn().start("spec").fail("boom".into());
    let _restarting: RestartPending<T> = failed.restart();
}
