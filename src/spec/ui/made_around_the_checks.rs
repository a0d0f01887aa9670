// A `ValidSpec` cannot be made but through its checks: its field is private.
use compute_ctl::testing::spec::{ComputeSpec, ValidSpec};

fn sneak(raw: ComputeSpec) -> ValidSpec {
    ValidSpec(std::sync::Arc::new(raw))
}

fn main() {
    let _ = sneak;
}
