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

// Skipping a state: Empty cannot become Running without going through Init.
fn main() {
    let _running: Running<T> = Empty::<T>::spawn().started(1);
}
