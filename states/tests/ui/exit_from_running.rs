include!("common/stand_in.rs");

// Only Failed and Terminated exit; a running compute must be terminated first.
fn main() {
    let running = Empty::<T>::spawn().start("spec").started(1);
    let _code = running.exit();
}
