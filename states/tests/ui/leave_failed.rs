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

// Going back: Failed never returns to Running directly; only a new spec (ConfigurationPending) recovers.
fn main() {
    let failed = Empty::<T>::spawn().start("spec").fail("boom".to_string());
    let _running = failed.started(1);
}
