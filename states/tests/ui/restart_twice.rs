use compute_states::*;

struct T;
impl Compute for T {
    type Spec = &'static str;
    type Postgres = u32;
    type Error = String;
    type Stopped = Stopped;
    type ExitStatus = i32;
    fn exited(_: &u32, _: i32) -> String {
        String::new()
    }
}
pub struct Stopped;

// A restart under way is not restarted again (nor reconfigured).
fn main() {
    let restarting = Empty::<T>::spawn().start("spec").started(1).restart();
    let _again = restarting.restart();
}
