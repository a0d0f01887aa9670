include!("common/stand_in.rs");

// A restart under way is not restarted again (nor reconfigured).
fn main() {
    let restarting = Empty::<T>::spawn().start("spec").started(1).restart();
    let _again = restarting.restart();
}
