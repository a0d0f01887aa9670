//! `pg_basebackup` from a real primary (a vanilla replica's start).

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_basebackup_makes_a_streaming_standby() {
    let dir = test_dir();
    let primary_data = dir.path().join("primary").join("pgdata");
    fake_pageserver::initdb(&primary_data);
    let primary = Postgres::start(&primary_data, &dir.path().join("sock1")).await;
    primary
        .query("CREATE TABLE t (v text); INSERT INTO t VALUES ('before')")
        .await;

    let standby_data = dir.path().join("standby");
    let stats = storage::pg_basebackup(
        &pgbin().await,
        &format!("host=127.0.0.1 port={} user=postgres", primary.port),
        &standby_data,
        owner().as_ref(),
        &quick(2),
    )
    .await
    .unwrap();
    assert_eq!(stats.attempts, 1);
    assert!(stats.bytes > 1_000_000, "{stats:?}");
    assert!(standby_data.join("standby.signal").is_file());
    let auto_conf = std::fs::read_to_string(standby_data.join("postgresql.auto.conf")).unwrap();
    assert!(auto_conf.contains("primary_conninfo"), "{auto_conf}");

    let standby = Postgres::start(&standby_data, &dir.path().join("sock2")).await;
    assert_eq!(standby.query("SELECT pg_is_in_recovery()").await, ["t"]);
    assert_eq!(standby.query("SELECT v FROM t").await, ["before"]);
    primary.query("INSERT INTO t VALUES ('after')").await;
    crate::wait::until(
        "the standby to see the new row",
        Duration::from_secs(60),
        async || standby.query("SELECT v FROM t ORDER BY v").await == ["after", "before"],
    )
    .await;
}

#[tokio::test]
async fn pg_basebackup_failure_carries_its_stderr() {
    let dir = test_dir();
    let pgdata = dir.path().join("standby");
    let e = storage::pg_basebackup(
        &pgbin().await,
        &format!(
            "host=127.0.0.1 port={} user=postgres password=hunter2",
            free_port()
        ),
        &pgdata,
        owner().as_ref(),
        &quick(2),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(e.contains("after 2 attempts"), "{e}");
    assert!(e.contains("exit status: 1"), "{e}");
    assert!(e.contains("Connection refused"), "{e}");
    assert!(!e.contains("hunter2"), "{e}");
    assert!(is_empty_dir(&pgdata));
}
