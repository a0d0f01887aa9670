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

// Skipping a state: a pending spec must be picked up (Configuration) before Running.
fn main() {
    let pending = Empty::<T>::spawn().configure("spec");
    let _running = pending.configured(1);
}
