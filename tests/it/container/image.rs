//! The Docker image in a real container runtime (podman with runc): it
//! starts from a spec mounted as a file and reaches Running, its probes
//! answer, `podman stop` (SIGTERM) ends it within the budget with postgres
//! shut down cleanly, a restart starts a fresh compute, it runs as an
//! unprivileged or arbitrary user, and its JSON log lines parse.
//!
//! Needs root, podman, runc and mmdebstrap (`.ci/run` installs them);
//! without them it is skipped with a loud message, or fails when `CI` is set.

use super::support::*;

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

/// `sql` run by psql inside the container as the superuser, through the
/// socket (the superuser's only door; compute_ctl runs as root there, so the
/// socket is in /run/compute_ctl); what it printed.
fn superuser_sql(c: &Container, sql: &str) -> String {
    let port = c.pg_port.to_string();
    podman_ok(&[
        "exec",
        &c.name,
        "psql",
        "-X",
        "-At",
        "-h",
        "/run/compute_ctl",
        "-p",
        &port,
        "-U",
        "cloud_admin",
        "-d",
        "postgres",
        "-c",
        sql,
    ])
}

fn marker_table(c: &Container, create: bool) -> bool {
    if create {
        superuser_sql(c, "CREATE TABLE marker ()");
    }
    superuser_sql(c, "SELECT to_regclass('marker') IS NOT NULL").trim() == "t"
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
    assert!(marker_table(&c, true));

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
        !marker_table(&c, false),
        "the restarted compute kept the old data"
    );
    c.stop(30);
    assert_eq!(c.exit_code(), 0, "{}", c.logs());
}

#[test]
fn in_the_image_a_createrole_user_cannot_grant_itself_server_programs() {
    if !available() {
        return;
    }
    // PostgreSQL 15 lets a CREATEROLE role grant itself any role it does
    // not belong to, pg_execute_server_program (COPY .. TO PROGRAM) among
    // them; 16 and later require ADMIN OPTION on it. The image has 17.
    let verifier = postgres_protocol::password::scram_sha_256(b"alice-pw");
    let mut spec = small_spec();
    spec["cluster"]["roles"] =
        serde_json::json!([{"name": "alice", "encrypted_password": verifier}]);
    let c = Container::run(&spec, &[]);
    c.wait_ready(Duration::from_secs(120));
    let version = podman_ok(&["exec", &c.name, "postgres", "--version"]);
    let major: u32 = version
        .split(')')
        .nth(1)
        .and_then(|v| v.trim().split('.').next())
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("{version}"));
    assert!(major >= 16, "the image's postgres is {version}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (alice, conn) = tokio_postgres::connect(
            &format!(
                "host=127.0.0.1 port={} user=alice password=alice-pw dbname=postgres",
                c.pg_port
            ),
            tokio_postgres::NoTls,
        )
        .await
        .expect("alice logs in with her password");
        tokio::spawn(conn);
        let createrole: bool = alice
            .query_one(
                "SELECT rolcreaterole FROM pg_roles WHERE rolname = 'alice'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert!(createrole, "the test needs a CREATEROLE spec role");
        let granted = alice
            .batch_execute("GRANT pg_execute_server_program TO alice")
            .await;
        assert!(
            granted.is_err(),
            "alice granted herself pg_execute_server_program"
        );
        let ran = alice
            .batch_execute("COPY (SELECT 1) TO PROGRAM 'true'")
            .await;
        assert!(ran.is_err(), "alice ran a program as postgres");
    });
    c.stop(30);
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

#[test]
fn container_replica_streams_from_a_container_primary_with_the_compose_specs() {
    if !available() {
        return;
    }
    // deploy/compose.yaml's specs; the containers share the host's network
    // here, so the replica finds its primary on loopback instead of by name.
    let read = |name: &str| -> serde_json::Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("deploy/compose")
            .join(name);
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let primary = Container::run(&read("primary.json"), &[]);
    primary.wait_ready(Duration::from_secs(120));
    let mut replica_spec = read("replica.json");
    let conn = replica_spec["primary_connstring"]
        .as_str()
        .unwrap()
        .replace(
            "host=primary port=5432",
            &format!("host=127.0.0.1 port={}", primary.pg_port),
        );
    replica_spec["primary_connstring"] = conn.into();
    let replica = Container::run(&replica_spec, &[]);
    replica.wait_ready(Duration::from_secs(120));

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let connect = |port: u16| async move {
            let (client, conn) = tokio_postgres::connect(
                &format!("host=127.0.0.1 port={port} user=alice password=alice dbname=app"),
                tokio_postgres::NoTls,
            )
            .await
            .expect("connecting as alice");
            tokio::spawn(conn);
            client
        };
        let p = connect(primary.pg_port).await;
        p.batch_execute("CREATE TABLE t (v text); INSERT INTO t VALUES ('streamed')")
            .await
            .unwrap();
        let r = connect(replica.pg_port).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let seen = r
                .query_opt("SELECT v FROM t", &[])
                .await
                .ok()
                .flatten()
                .is_some();
            if seen {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the row never reached the replica:\n{}",
                replica.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let (code, body) = replica.get("/readyz?lag=1048576").unwrap();
    assert_eq!(code, 200, "{body}");
    replica.stop(30);
    primary.stop(30);
    assert_eq!(replica.exit_code(), 0, "{}", replica.logs());
    assert_eq!(primary.exit_code(), 0, "{}", primary.logs());
}

#[test]
fn dockerfile_compiles_the_binary_when_the_builder_has_none() {
    if !available() {
        return;
    }
    // A stand-in for the Rust image (no registry here): its `cargo` says it
    // ran and "compiles" by copying a binary; `strip` does nothing.
    let binary = std::fs::read(env!("CARGO_BIN_EXE_compute_ctl")).unwrap();
    let cargo = "#!/bin/sh\necho \"stub cargo ran: $*\"\nmkdir -p target/release\n\
                 cp /prebuilt target/release/compute_ctl\n";
    let tag = "localhost/compute_ctl-stub-rust:test";
    builder_image(
        tag,
        &[
            ("/usr/local/bin/cargo", cargo.as_bytes(), 0o755),
            ("/usr/local/bin/strip", b"#!/bin/sh\n", 0o755),
            ("/prebuilt", &binary, 0o755),
        ],
    );
    let image = "localhost/compute_ctl-from-source:test";
    let log = build_dockerfile(
        image,
        &[
            format!("BUILDER_IMAGE={tag}"),
            format!("RUNTIME_IMAGE={BASE}"),
        ],
    );
    assert!(
        log.contains("stub cargo ran: build --release --locked --bin compute_ctl"),
        "{log}"
    );
    let version = podman_ok(&[
        "run",
        "--rm",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=4096:4096",
        image,
        "--version",
    ]);
    assert!(version.starts_with("compute_ctl "), "{version}");
    let _ = podman(&["rmi", image, tag]);
}
