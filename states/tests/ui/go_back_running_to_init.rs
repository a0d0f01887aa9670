include!("common/stand_in.rs");

// Going back: a running compute does not return to Init.
fn main() {
    let running = Empty::<T>::spawn().start("spec").started(1);
    let _init: Init<T> = running.start("other");
}
