include!("common/stand_in.rs");

// Going back: Failed never returns to Running directly; only a new spec (ConfigurationPending) recovers.
fn main() {
    let failed = Empty::<T>::spawn().start("spec").fail("boom".to_string());
    let _running = failed.started(1);
}
