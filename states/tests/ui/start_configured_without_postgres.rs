include!("common/stand_in.rs");

// A start from a spec over the API reaches Running only with the postgres
// it started.
fn main() {
    let cfg = Empty::<T>::spawn().configure("a").begin();
    let _running = cfg.configured();
}
