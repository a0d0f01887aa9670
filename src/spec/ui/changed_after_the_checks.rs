// A `ValidSpec` cannot be changed once checked: it reads as a `ComputeSpec`
// but gives no mutable access to it.
use compute_ctl::testing::spec::ValidSpec;

fn edit(spec: &mut ValidSpec) {
    spec.cluster.roles.clear();
}

fn main() {
    let _ = edit;
}
