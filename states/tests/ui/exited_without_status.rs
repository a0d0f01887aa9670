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

// Postgres exiting on its own is told by its exit status, not a message.
fn main() {
    let running = Empty::<T>::spawn().start("a").started(1);
    let _failed = running.postgres_exited("died".to_string());
}
