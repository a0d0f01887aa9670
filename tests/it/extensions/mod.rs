//! Remote extensions, for real: a store of the test's own serves archives
//! built from a SQL-only extension made here and from PostgreSQL 15's own
//! contrib modules (removed from a private copy of the installation, which
//! compute_ctl runs with `-b`), and the compute fetches them at start and on
//! demand (`/extension_server/`), within its bounds.

pub(crate) mod support;

use crate::common::*;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{archive, system_extension, Answer, Entry, Install, Store};

const CONTROL: &str =
    "comment = 'a SQL-only extension of the test'\ndefault_version = '1.0'\nrelocatable = true\n";

fn demo_archive() -> Vec<u8> {
    archive(&[Entry {
        path: "share/extension/cc_demo--1.0.sql".into(),
        data: b"CREATE FUNCTION cc_demo_answer() RETURNS int LANGUAGE sql AS 'SELECT 42';\n"
            .to_vec(),
    }])
}

/// A spec whose `remote_extensions` allow `allowed` (each with the control
/// files given) and index `libraries`.
fn spec_with(
    allowed: &[(&str, serde_json::Value)],
    libraries: serde_json::Value,
) -> serde_json::Value {
    let mut s = spec(json!([]), json!([]));
    let data: serde_json::Map<String, serde_json::Value> = allowed
        .iter()
        .map(|(name, control)| {
            (
                name.to_string(),
                json!({"control_data": control, "archive_path": "unused"}),
            )
        })
        .collect();
    s["remote_extensions"] = json!({
        "public_extensions": allowed.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        "custom_extensions": null,
        "library_index": libraries,
        "extension_data": data,
    });
    s
}

fn start(install: &Install, store: &Store, spec: serde_json::Value, timeout: &str) -> Compute {
    start_with(install, store, spec, &["--remote-ext-timeout", timeout])
}

fn start_with(install: &Install, store: &Store, spec: serde_json::Value, args: &[&str]) -> Compute {
    let mut extra_args = vec![
        "-b".into(),
        install.postgres().display().to_string(),
        "-r".into(),
        store.url.clone(),
    ];
    extra_args.extend(args.iter().map(|a| a.to_string()));
    Compute::start_with(Opts {
        spec: Some(spec),
        extra_args,
        ..Opts::default()
    })
}

async fn ask(c: &Compute, file: &str) -> (u16, serde_json::Value) {
    into_pair(
        http()
            .post(c.internal_url(&format!("/extension_server/{file}")))
            .send()
            .await,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extension_fetched_on_demand_can_be_created_and_is_fetched_once() {
    let install = Install::copy(&["auto_explain"]);
    // The extension directory is another user's (as in an image that gives
    // it to postgres): what compute_ctl, root, moves there becomes theirs.
    let other = nix::unistd::User::from_name("postgres").unwrap().unwrap();
    if crate::needs::is_root() {
        std::os::unix::fs::chown(
            install.extension_dir(),
            Some(other.uid.as_raw()),
            Some(other.gid.as_raw()),
        )
        .unwrap();
    }
    let store = Store::start().await;
    // The first attempt meets a connection closed without an answer.
    store.set(
        "cc_demo.tar.zst",
        vec![Answer::Close, Answer::Archive(Arc::new(demo_archive()))],
    );
    let auto_explain = archive(&system_extension("auto_explain"));
    store.set(
        "auto_explain.tar.zst",
        vec![Answer::Archive(Arc::new(auto_explain))],
    );
    let s = spec_with(
        &[
            ("cc_demo", json!({"cc_demo.control": CONTROL})),
            ("auto_explain", json!({})),
            ("missing", json!({})),
        ],
        json!({"auto_explain": "auto_explain"}),
    );
    let mut c = start(&install, &store, s, "10");
    c.wait_running();
    // The control file came with the spec, at start; the script did not.
    let control = install.extension_dir().join("cc_demo.control");
    assert_eq!(std::fs::read_to_string(&control).unwrap(), CONTROL);
    let db = c.client("postgres").await;
    let e = db
        .batch_execute("CREATE EXTENSION cc_demo")
        .await
        .unwrap_err();
    assert!(format!("{e:?}").contains("no installation script"), "{e:?}");

    let (code, body) = ask(&c, "cc_demo").await;
    assert_eq!(code, 200, "{body}");
    db.batch_execute("CREATE EXTENSION cc_demo").await.unwrap();
    let answer: i32 = db
        .query_one("SELECT cc_demo_answer()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(answer, 42);
    // Installed, owned as the directory is, and not fetched again.
    let script = install.extension_dir().join("cc_demo--1.0.sql");
    let meta = std::fs::metadata(&script).unwrap();
    let dir = std::fs::metadata(install.extension_dir()).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!((meta.uid(), meta.gid()), (dir.uid(), dir.gid()));
    let control_meta = std::fs::metadata(&control).unwrap();
    assert_eq!(
        (control_meta.uid(), control_meta.gid()),
        (dir.uid(), dir.gid())
    );
    if crate::needs::is_root() {
        assert_eq!(meta.uid(), other.uid.as_raw());
    }
    assert_eq!(ask(&c, "cc_demo").await.0, 200);
    assert_eq!(
        store.count("cc_demo.tar.zst"),
        2,
        "one retry, then never again"
    );
    // Where the archive was asked for: the reference's layout.
    let (_, info) = c.get("/info").await;
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let expected = format!(
        "/store/{}/{arch}/v15/extensions/cc_demo.tar.zst",
        info["build_tag"].as_str().unwrap()
    );
    assert_eq!(store.requests.lock().unwrap()[0], expected);

    // A library, as Neon's postgres asks for one.
    let e = db.batch_execute("LOAD 'auto_explain'").await.unwrap_err();
    assert!(format!("{e:?}").contains("auto_explain"), "{e:?}");
    let (code, body) = ask(&c, "auto_explain.so?is_library=true").await;
    assert_eq!(code, 200, "{body}");
    let db2 = c.client("postgres").await;
    db2.batch_execute("LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0")
        .await
        .unwrap();

    // The reference's refusals.
    let (code, body) = ask(&c, "not_listed").await;
    assert_eq!(
        (code, &body["error"]),
        (404, &json!("extension not_listed is not found"))
    );
    let (code, body) = ask(&c, "nope.so?is_library=true").await;
    assert_eq!(
        (code, &body["error"]),
        (404, &json!("library nope is not found"))
    );
    assert_eq!(ask(&c, "cc_demo?is_library=maybe").await.0, 400);
    let (code, body) = ask(&c, "missing").await;
    let error = body["error"].as_str().unwrap_or_default();
    assert_eq!(code, 500, "{body}");
    assert!(
        error.starts_with(
            "Failed to download a remote file: error downloading extension \"missing\""
        ) && error.contains("404 Not Found"),
        "{error}"
    );
    let metrics = c.metrics().await;
    for (file, status, n) in [
        ("cc_demo.tar.zst", "unknown", 1),
        ("cc_demo.tar.zst", "200 OK", 1),
        ("missing.tar.zst", "404 Not Found", 1),
    ] {
        let line = format!(
            "compute_ctl_remote_ext_requests_total{{filename=\"{file}\",http_status=\"{status}\"}} {n}"
        );
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preload_library_from_the_store_is_loaded_at_start_after_two_503s() {
    let install = Install::copy(&["pg_stat_statements"]);
    let store = Store::start().await;
    let pgss = archive(&system_extension("pg_stat_statements"));
    let size = pgss.len() as u64;
    store.set(
        "pg_stat_statements.tar.zst",
        vec![
            Answer::Status(503),
            Answer::Status(503),
            Answer::Archive(Arc::new(pgss)),
        ],
    );
    let control =
        std::fs::read_to_string("/usr/share/postgresql/15/extension/pg_stat_statements.control")
            .unwrap();
    let mut s = spec_with(
        &[(
            "pg_stat_statements",
            json!({"pg_stat_statements.control": control}),
        )],
        json!({"pg_stat_statements": "pg_stat_statements"}),
    );
    s["cluster"]["settings"] = json!([
        {"name": "shared_preload_libraries", "value": "pg_stat_statements", "vartype": "string"},
        {"name": "pg_stat_statements.max", "value": "1234", "vartype": "integer"}
    ]);
    let mut c = start(&install, &store, s, "20");
    c.wait_running();
    let db = c.client("postgres").await;
    let show = |name: &'static str| {
        let db = &db;
        async move {
            let row = db.query_one(&format!("SHOW {name}"), &[]).await.unwrap();
            row.get::<_, String>(0)
        }
    };
    assert_eq!(show("shared_preload_libraries").await, "pg_stat_statements");
    // The library's own setting: defined by the loaded library.
    assert_eq!(show("pg_stat_statements.max").await, "1234");
    assert_eq!(store.count("pg_stat_statements.tar.zst"), 3);
    // Installed at start: the route's request for it fetches nothing.
    assert_eq!(ask(&c, "pg_stat_statements").await.0, 200);
    assert_eq!(store.count("pg_stat_statements.tar.zst"), 3);
    let (_, figures) = c.get("/metrics.json").await;
    // A figure, not a bound: two 503s (pauses of 100 and 200 ms) then the archive.
    eprintln!(
        "pg_stat_statements preloaded from the store: load_ext_ms={} bytes={size}",
        figures["load_ext_ms"]
    );
    assert_eq!(figures["num_ext_downloaded"], 1, "{figures}");
    assert_eq!(figures["largest_ext_size"], size, "{figures}");
    assert_eq!(figures["total_ext_download_size"], size, "{figures}");
    let metrics = c.metrics().await;
    for (status, n) in [("503 Service Unavailable", 2), ("200 OK", 1)] {
        let line = format!(
            "compute_ctl_remote_ext_requests_total{{filename=\"pg_stat_statements.tar.zst\",http_status=\"{status}\"}} {n}"
        );
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }

    // /insights: 404 until the extension exists, then the other users' statements.
    let (code, body) = c.get("/insights").await;
    assert_eq!(code, 404, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("pg_stat_statements is not installed"),
        "{body}"
    );
    db.batch_execute(
        "CREATE EXTENSION pg_stat_statements; CREATE ROLE insight_user; \
         GRANT pg_read_all_stats TO insight_user",
    )
    .await
    .unwrap();
    db.batch_execute("SET ROLE insight_user; SELECT 6 * 7 AS insight_answer; RESET ROLE")
        .await
        .unwrap();
    db.batch_execute("SELECT 'by the superuser' AS hidden_from_insights")
        .await
        .unwrap();
    let (code, body) = c.get("/insights").await;
    assert_eq!(code, 200, "{body}");
    let rows = body["pg_stat_statements"]
        .as_array()
        .expect("an array of rows");
    assert!(
        rows.iter().any(|r| r["query"]
            .as_str()
            .unwrap_or_default()
            .contains("insight_answer")
            && r["calls"].as_i64() == Some(1)),
        "{body}"
    );
    assert!(!body.to_string().contains("hidden_from_insights"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preload_library_the_spec_does_not_allow_fails_the_start_with_its_name() {
    let install = Install::copy(&[]);
    let store = Store::start().await;
    let mut s = spec_with(&[], json!({"pg_stat_statements": "pg_stat_statements"}));
    s["cluster"]["settings"] = json!([
        {"name": "shared_preload_libraries", "value": "pg_stat_statements", "vartype": "string"}
    ]);
    let c = Compute::start_with(Opts {
        spec: Some(s),
        extra_args: vec![
            "-b".into(),
            install.postgres().display().to_string(),
            "-r".into(),
            store.url.clone(),
        ],
        failure_exit_delay: 30,
        ..Opts::default()
    });
    let status = c.wait_status("failed", Duration::from_secs(60)).await;
    let error = status["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("shared_preload_libraries names pg_stat_statements")
            && error.contains("extension pg_stat_statements is not found"),
        "{status}"
    );
    assert_eq!(store.requests.lock().unwrap().len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_archive_is_refused_and_writes_nothing() {
    let install = Install::copy(&[]);
    let store = Store::start().await;
    let entry = |path: &str| Entry {
        path: path.into(),
        data: b"planted\n".to_vec(),
    };
    // A good file first, so that a partial unpacking would show.
    store.set(
        "dotdot.tar.zst",
        vec![Answer::Archive(Arc::new(archive(&[
            entry("share/extension/dotdot--1.0.sql"),
            entry("share/extension/../../../../../../escaped-dotdot"),
        ])))],
    );
    let absolute = install.download_dir().join("../escaped-absolute");
    store.set(
        "absolute.tar.zst",
        vec![Answer::Archive(Arc::new(archive(&[
            entry("lib/absolute.so"),
            entry(&absolute.display().to_string()),
        ])))],
    );
    // Larger than --remote-ext-max-bytes.
    store.set(
        "large.tar.zst",
        vec![Answer::Archive(Arc::new(vec![0u8; 4096]))],
    );
    let s = spec_with(
        &[
            ("dotdot", json!({})),
            ("absolute", json!({})),
            ("large", json!({})),
        ],
        json!({}),
    );
    let mut c = start_with(&install, &store, s, &["--remote-ext-max-bytes", "1024"]);
    c.wait_running();
    let before = install.tree();
    for (name, escaped) in [
        (
            "dotdot",
            install.download_dir().join("../../../escaped-dotdot"),
        ),
        ("absolute", absolute.clone()),
    ] {
        let (code, body) = ask(&c, name).await;
        assert_eq!(code, 500, "{name}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("leaves the archive's directory"),
            "{name}: {error}"
        );
        assert!(!escaped.exists(), "{name}: {}", escaped.display());
    }
    let (code, body) = ask(&c, "large").await;
    assert_eq!(code, 500, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("larger than the limit of 1024 bytes"),
        "{body}"
    );
    assert_eq!(install.tree(), before, "a refused archive changes nothing");
    assert!(!std::path::Path::new("/escaped-dotdot").exists());
    // No staging directory left behind.
    let left: Vec<_> = std::fs::read_dir(install.download_dir()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_never_answers_fails_the_requests_within_their_bound() {
    let install = Install::copy(&[]);
    let store = Store::start().await;
    store.set("silent.tar.zst", vec![Answer::Hang]);
    let s = spec_with(&[("silent", json!({}))], json!({}));
    let mut c = start(&install, &store, s, "2");
    c.wait_running();
    // Two at once: the second waits for the first download, within a bound.
    let began = Instant::now();
    let (first, second) = tokio::join!(ask(&c, "silent"), ask(&c, "silent"));
    let took = began.elapsed();
    for (code, body) in [&first, &second] {
        assert_eq!(*code, 500, "{body}");
    }
    let errors = format!("{} {}", first.1, second.1);
    assert!(
        errors.contains("no answer from the remote extensions server within 2s"),
        "{errors}"
    );
    // 2 s each, one after the other, far from the caller's 60 s.
    assert!(took < Duration::from_secs(15), "{took:?}");
    assert!(store.count("silent.tar.zst") >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_route_answers_412_without_a_store_or_a_spec_and_409_without_remote_extensions() {
    // No -r: 412, whatever the spec.
    let mut c = Compute::start(Some(spec(json!([]), json!([]))));
    c.wait_running();
    let (code, body) = ask(&c, "anything").await;
    assert_eq!(
        (code, &body["error"]),
        (412, &json!("remote storage is not configured"))
    );
    drop(c);
    // A store, but no spec yet: 412 (the reference drops the connection).
    let store = Store::start().await;
    let with_store = |spec: Option<serde_json::Value>| Opts {
        spec,
        extra_args: vec!["-r".into(), store.url.clone()],
        ..Opts::default()
    };
    let c = Compute::start_with(with_store(None));
    c.wait_status("empty", Duration::from_secs(20)).await;
    let (code, body) = ask(&c, "anything").await;
    assert_eq!(code, 412, "{body}");
    assert!(body["error"].as_str().unwrap().contains("empty"), "{body}");
    drop(c);
    // A spec without remote_extensions: 409.
    let mut c = Compute::start_with(with_store(Some(spec(json!([]), json!([])))));
    c.wait_running();
    let (code, body) = ask(&c, "anything").await;
    assert_eq!(
        (code, &body["error"]),
        (
            409,
            &json!("information about remote extensions is unavailable")
        )
    );
    assert_eq!(store.requests.lock().unwrap().len(), 0);
}
