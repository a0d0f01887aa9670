//! The systemd unit (`deploy/systemd/compute_ctl.service`) is one systemd
//! accepts: `systemd-analyze verify` on it, with `ExecStart` pointing at the
//! binary this build made (the unit names its installed path). Skipped
//! loudly where the tool is missing, a failure in CI.

use std::process::Command;

#[test]
fn the_systemd_unit_verifies() {
    let have = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !crate::needs::needs(have, "systemd-analyze is not installed") {
        return;
    }
    let unit = std::fs::read_to_string(super::repo_path("deploy/systemd/compute_ctl.service"))
        .expect("deploy/systemd/compute_ctl.service");
    let installed = "ExecStart=/usr/local/bin/compute_ctl";
    assert!(unit.contains(installed), "the unit starts {installed}");
    let here = unit.replace(
        installed,
        &format!("ExecStart={}", env!("CARGO_BIN_EXE_compute_ctl")),
    );
    let dir = tempfile::tempdir().expect("a scratch directory");
    let path = dir.path().join("compute_ctl.service");
    std::fs::write(&path, here).expect("writing the unit");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("running systemd-analyze verify");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Other units of the machine may draw warnings; ours must draw none.
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("compute_ctl.service"))
        .collect();
    assert!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze verify: {}\n{stderr}",
        out.status
    );
}
