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

// Forging a state: Running can only come from a transition that supplies a postgres handle.
fn main() {
    let _running: Running<T> = Running { spec: "spec", postgres: 1 };
}
