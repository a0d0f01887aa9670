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

// Only a running compute restarts: a failed one (no postgres, or a rejected
// configuration) gets a new spec instead.
fn main() {
    let failed = Empty::<T>::spawn().start("spec").fail("boom".into());
    let _restarting: Restarting<T> = failed.restart();
}
