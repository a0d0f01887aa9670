use compute_states::*;

struct T;
impl Compute for T {
    type Spec = &'static str;
    type Postgres = u32;
    type Error = String;
}

// Leaving a terminal state: Failed only exits.
fn main() {
    let failed = Empty::<T>::spawn().start("spec").fail("boom".to_string());
    let _running = failed.started(1);
}
