//! deploy/: the Kubernetes manifests validate against the Kubernetes schemas
//! (`kubernetes-validate`, offline), agree with compute_ctl (probe paths,
//! the grace period above `--stop-timeout`), and every spec they and
//! deploy/compose.yaml carry is one compute_ctl accepts.
//!
//! `kubernetes-validate` (PyPI) is taken from `target/container/venv`, where
//! .ci/run installs it, or from PATH; without it the test is skipped with a
//! loud message, or fails when `CI` is set.

use compute_ctl::testing::spec::{ComputeConfig, ValidSpec};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The venv's `bin/` with kubernetes-validate (and PyYAML), if there is one.
fn tools() -> Option<PathBuf> {
    let venv = root().join("target/container/venv/bin");
    if venv.join("kubernetes-validate").exists() {
        return Some(venv);
    }
    let out = Command::new("sh")
        .args(["-c", "command -v kubernetes-validate"])
        .output()
        .ok()?;
    let found = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !found.is_empty())
        .then(|| Path::new(&found).parent().map(Path::to_path_buf))
        .flatten()
}

fn tools_or_skip() -> Option<PathBuf> {
    let found = tools();
    let why =
        "kubernetes-validate is not installed (.ci/run installs it into target/container/venv)";
    crate::needs::needs(found.is_some(), why);
    found
}

/// Every YAML document of `files`, as JSON (through PyYAML).
fn yaml_documents(bin: &Path, files: &[PathBuf]) -> Vec<Value> {
    let script = "import json, sys, yaml\n\
                  for f in sys.argv[1:]:\n\
                  \x20   for d in yaml.safe_load_all(open(f)):\n\
                  \x20       print(json.dumps(d))\n";
    let python = bin.join("python3");
    let python = if python.exists() {
        python
    } else {
        "python3".into()
    };
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .args(files)
        .output()
        .expect("running python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn manifests() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("deploy/kubernetes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn validate(bin: &Path, files: &[PathBuf]) -> std::process::Output {
    Command::new(bin.join("kubernetes-validate"))
        .args(["--strict", "--quiet"])
        .args(files)
        .output()
        .expect("running kubernetes-validate")
}

#[test]
fn kubernetes_manifests_validate_against_the_schemas() {
    let Some(bin) = tools_or_skip() else { return };
    let files = manifests();
    assert!(files.len() >= 4, "{files:?}");
    let out = validate(&bin, &files);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The validator does reject a wrong manifest (an unknown field).
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yaml");
    let text = std::fs::read_to_string(root().join("deploy/kubernetes/statefulset.yaml")).unwrap();
    std::fs::write(&broken, text.replace("readinessProbe:", "readinessProbes:")).unwrap();
    assert!(!validate(&bin, &[broken]).status.success());
}

#[test]
fn kubernetes_manifests_agree_with_compute_ctl() {
    let Some(bin) = tools_or_skip() else { return };
    let docs = yaml_documents(&bin, &manifests());
    let find = |kind: &str| {
        docs.iter()
            .find(|d| d["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind}"))
    };
    let sts = find("StatefulSet");
    let pod = &sts["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let env = |name: &str| {
        container["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .and_then(|e| e["value"].as_str())
            .unwrap_or_else(|| panic!("no {name}"))
            .to_string()
    };
    let stop: u64 = env("COMPUTE_CTL_STOP_TIMEOUT").parse().unwrap();
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(
        stop < grace,
        "--stop-timeout {stop} must be below the grace period {grace}"
    );
    for (probe, path) in [
        ("startupProbe", "/startupz"),
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
    ] {
        assert_eq!(container[probe]["httpGet"]["path"], path);
        assert!(compute_ctl::testing::http::probes::PATHS.contains(&path));
    }
    // The spec from the ConfigMap and the JWKS config from the Secret are
    // what compute_ctl accepts.
    let spec = find("ConfigMap")["data"]["spec.json"].as_str().unwrap();
    ValidSpec::from_json(spec).expect("the ConfigMap's spec");
    let config = find("Secret")["stringData"]["config.json"]
        .as_str()
        .unwrap();
    let config = ComputeConfig::from_json(config).expect("the Secret's config");
    assert!(config.spec.is_none() && config.compute_ctl_config.is_some());
    let service = find("Service");
    assert_eq!(
        service["metadata"]["annotations"]["prometheus.io/path"],
        "/metrics"
    );
}

#[test]
fn the_compose_file_runs_a_primary_and_its_replica() {
    let Some(bin) = tools_or_skip() else { return };
    let compose = root().join("deploy/compose.yaml");
    let doc = &yaml_documents(&bin, &[compose])[0];
    let services = &doc["services"];
    for (name, mode) in [("primary", None), ("replica", Some("Replica"))] {
        let s = &services[name];
        assert_eq!(s["healthcheck"]["test"][1], "compute_ctl", "{name}");
        let mount = s["volumes"][0].as_str().unwrap();
        let file = mount.split(':').next().unwrap();
        let text = std::fs::read_to_string(root().join("deploy").join(file)).unwrap();
        let spec = ValidSpec::from_json(&text).unwrap_or_else(|e| panic!("{file}: {e:#}"));
        let json: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["mode"].as_str(), mode, "{name}");
        drop(spec);
    }
    assert_eq!(
        services["replica"]["depends_on"]["primary"]["condition"],
        "service_healthy"
    );
    let replica: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("deploy/compose/replica.json")).unwrap(),
    )
    .unwrap();
    assert!(replica["primary_connstring"]
        .as_str()
        .unwrap()
        .contains("host=primary"));
}
