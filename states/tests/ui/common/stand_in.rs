// The stand-in for the driver's types that every compile-fail test
// includes (`include!("common/stand_in.rs")`): the machine is generic over
// them. Kept out of `ui/*.rs`, so trybuild does not take it for a test.
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
