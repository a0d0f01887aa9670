//! The Docker image in a real container runtime (podman with runc): it
//! starts from a spec mounted as a file and reaches Running, its probes
//! answer, `podman stop` (SIGTERM) ends it within the budget with postgres
//! shut down cleanly, a restart starts a fresh compute, it runs as an
//! unprivileged or arbitrary user, and its JSON log lines parse.
//!
//! Needs root, podman, runc and mmdebstrap (`.ci/run` installs them);
//! without them it is skipped with a loud message, or fails when `CI` is set.

mod container_support;
use container_support::*;

use std::time::Duration;

/// Every line parses as a JSON object; postgres' clean shutdown and
/// compute_ctl's exit 0 are in there.
fn check_clean_json_log(log: &str) {
    let objects: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}\n{log}")))
        .collect();
    assert!(
        objects
            .iter()
            .any(|o| o["source"] == "postgres" && o["message"] == "database system is shut down"),
        "postgres did not shut down cleanly:\n{log}"
    );
    assert!(
        objects
            .iter()
            .any(|o| o["message"] == "compute_ctl exits" && o["code"] == 0),
        "{log}"
    );
}

async fn marker_table(port: u16, create: bool) -> bool {
    let (client, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user=cloud_admin dbname=postgres"),
        tokio_postgres::NoTls,
    )
    .await
    .expect("connecting to the container's postgres");
    tokio::spawn(conn);
    if create {
        client
            .batch_execute("CREATE TABLE marker ()")
            .await
            .unwrap();
    }
    client
        .query_one("SELECT to_regclass('marker') IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0)
}

#[test]
fn container_runs_a_compute_stops_cleanly_and_restarts_fresh() {
    if !available() {
        return;
    }
    let c = Container::run(&small_spec(), &[]);
    c.wait_ready(Duration::from_secs(120));
    for path in ["/healthz", "/readyz", "/startupz"] {
        let (code, body) = c.get(path).unwrap();
        assert_eq!(code, 200, "{path}: {body}");
    }
    // The image's HEALTHCHECK command, inside the container.
    let probe = podman_ok(&["exec", &c.name, "compute_ctl", "probe", "/readyz"]);
    assert!(probe.contains("ready"), "{probe}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    assert!(rt.block_on(marker_table(c.pg_port, true)));

    // SIGTERM, with the Kubernetes-like grace of 30 s.
    let took = c.stop(30);
    assert_eq!(c.exit_code(), 0, "{}", c.logs());
    assert!(took < Duration::from_secs(25), "stop took {took:?}");
    check_clean_json_log(&c.logs());
    assert!(
        !c.logs().contains("created initdb template"),
        "the image's template was not used:\n{}",
        c.logs()
    );

    // Same container, same volume: a fresh compute (PGDATA wiped and remade).
    podman_ok(&["start", &c.name]);
    c.wait_ready(Duration::from_secs(120));
    assert!(
        !rt.block_on(marker_table(c.pg_port, false)),
        "the restarted compute kept the old data"
    );
    c.stop(30);
    assert_eq!(c.exit_code(), 0, "{}", c.logs());
}

#[test]
fn container_runs_as_an_unprivileged_or_arbitrary_user() {
    if !available() {
        return;
    }
    // `postgres` (the image's user) and an arbitrary uid in group 0, as
    // OpenShift runs containers.
    for user in ["postgres", "1000770000:0"] {
        let c = Container::run(&small_spec(), &["--user", user]);
        c.wait_ready(Duration::from_secs(120));
        let (code, body) = c.get("/startupz").unwrap();
        assert_eq!(code, 200, "{user}: {body}");
        let uid = podman_ok(&[
            "exec",
            &c.name,
            "sh",
            "-c",
            "stat -c %u /var/lib/compute/pgdata",
        ]);
        let expected = podman_ok(&["exec", &c.name, "id", "-u"]);
        assert_eq!(
            uid.trim(),
            expected.trim(),
            "{user}: PGDATA belongs to the user"
        );
        c.stop(30);
        assert_eq!(c.exit_code(), 0, "{user}: {}", c.logs());
        check_clean_json_log(&c.logs());
        assert!(!c.logs().contains("created initdb template"), "{user}");
    }
}
