include!("common/stand_in.rs");

// Running needs the evidence that postgres is up.
fn main() {
    let _running = Empty::<T>::spawn().start("spec").started();
}
