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

// A reconfiguration keeps the serving postgres: it cannot be taken out
// (and lost) on the way back to Running.
fn main() {
    let running = Empty::<T>::spawn().start("a").started(1);
    let mut cfg = running.reconfigure("b").begin();
    let _lost = cfg.take_postgres();
}
