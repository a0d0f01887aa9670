include!("common/stand_in.rs");

// Skipping a state: a pending spec must be picked up (Configuration) before Running.
fn main() {
    let pending = Empty::<T>::spawn().configure("spec");
    let _running = pending.configured(1);
}
