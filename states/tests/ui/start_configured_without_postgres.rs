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

// A start from a spec over the API reaches Running only with the postgres
// it started.
fn main() {
    let cfg = Empty::<T>::spawn().configure("a").begin();
    let _running = cfg.configured();
}
