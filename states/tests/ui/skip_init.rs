include!("common/stand_in.rs");

// Skipping a state: Empty cannot become Running without going through Init.
fn main() {
    let _running: Running<T> = Empty::<T>::spawn().started(1);
}
