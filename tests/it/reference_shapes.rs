//! Every body the API answers with, parsed against the reference's JSON
//! shapes (`libs/compute_api/src/responses.rs` and `spec.rs` of Neon),
//! mirrored here: field names, required fields, enum spellings, LSN and id
//! formats. A body the reference's client could not parse fails here.

use crate::common::*;
use crate::fake_pageserver::Behaviour;
use crate::neon_support::*;
use chrono::{DateTime, Utc};
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};
use std::time::Duration;

/// The reference's `ComputeStatus` (an unknown spelling is an error).
#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
enum ComputeStatus {
    Empty,
    ConfigurationPending,
    Init,
    Running,
    Configuration,
    Failed,
    TerminationPendingFast,
    TerminationPendingImmediate,
    Terminated,
    RefreshConfigurationPending,
    RefreshConfiguration,
}

/// The reference's `ComputeStatusResponse`.
#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct ComputeStatusResponse {
    start_time: DateTime<Utc>,
    #[serde(deserialize_with = "hex_id")]
    tenant: Option<String>,
    #[serde(deserialize_with = "hex_id")]
    timeline: Option<String>,
    status: ComputeStatus,
    last_active: Option<DateTime<Utc>>,
    error: Option<String>,
}

/// The reference's `ComputeMetrics`: every field required.
#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct ComputeMetrics {
    wait_for_spec_ms: u64,
    sync_sk_check_ms: u64,
    sync_safekeepers_ms: u64,
    pageserver_connect_micros: u64,
    basebackup_ms: u64,
    basebackup_bytes: u64,
    start_postgres_ms: u64,
    config_ms: u64,
    total_startup_ms: u64,
    load_ext_ms: u64,
    num_ext_downloaded: u64,
    largest_ext_size: u64,
    total_ext_download_size: u64,
}

/// The reference's `/terminate` answer: an `X/Y` LSN or null.
#[derive(Debug, Deserialize)]
struct TerminateResponse {
    #[serde(deserialize_with = "lsn")]
    lsn: Option<String>,
}

/// The reference's `CatalogObjects`, `Role` and `Database`.
#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct CatalogObjects {
    roles: Vec<Role>,
    databases: Vec<Database>,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Role {
    name: String,
    encrypted_password: Option<String>,
    options: Option<Vec<GenericOption>>,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Database {
    name: String,
    owner: String,
    options: Option<Vec<GenericOption>>,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct GenericOption {
    name: String,
    value: Option<String>,
    vartype: String,
}

/// The reference's `GenericAPIError`.
#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct GenericApiError {
    error: String,
}

/// The reference's `Lsn` in JSON: `X/Y`, hexadecimal.
fn lsn<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v: Option<String> = Option::deserialize(d)?;
    if let Some(s) = &v {
        let ok = s.split_once('/').is_some_and(|(hi, lo)| {
            [hi, lo]
                .iter()
                .all(|p| !p.is_empty() && p.len() <= 8 && u32::from_str_radix(p, 16).is_ok())
        });
        if !ok {
            return Err(D::Error::custom(format!("{s:?} is not an LSN")));
        }
    }
    Ok(v)
}

/// The reference's `TenantId`/`TimelineId`: 32 hexadecimal characters.
fn hex_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v: Option<String> = Option::deserialize(d)?;
    if let Some(s) = &v {
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(D::Error::custom(format!("{s:?} is not a 32-hex id")));
        }
    }
    Ok(v)
}

fn parse<T: DeserializeOwned>(what: &str, body: &Value) -> T {
    serde_json::from_value(body.clone())
        .unwrap_or_else(|e| panic!("the reference cannot parse {what}: {e}\n{body}"))
}

async fn status(c: &Compute, want: ComputeStatus) -> ComputeStatusResponse {
    let (code, body) = c.get("/status").await;
    assert_eq!(code, 200);
    let parsed: ComputeStatusResponse = parse("/status", &body);
    assert_eq!(parsed.status, want, "{body}");
    parsed
}

#[test]
fn every_status_name_is_the_references() {
    for s in compute_ctl::testing::driver::ComputeStatus::ALL {
        let body = serde_json::to_value(s).unwrap();
        let _: ComputeStatus = parse("a status name", &body);
    }
}

#[tokio::test]
async fn bodies_of_a_local_compute_parse_as_the_references() {
    let c = Compute::start(None);
    c.wait_status("empty", Duration::from_secs(10)).await;
    status(&c, ComputeStatus::Empty).await;
    let _: ComputeMetrics = parse("/metrics.json", &c.get("/metrics.json").await.1);
    let (code, body) = c.get("/dbs_and_roles").await;
    assert_eq!(code, 412);
    let _: GenericApiError = parse("a 412", &body);

    let s = spec(
        json!([{"name": "bob", "encrypted_password": null}]),
        json!([{"name": "db1", "owner": "bob"}]),
    );
    let (code, body) = c.configure(&s).await;
    assert_eq!(code, 200);
    let _: ComputeStatusResponse = parse("/configure", &body);
    status(&c, ComputeStatus::Running).await;
    let _: ComputeMetrics = parse("/metrics.json", &c.get("/metrics.json").await.1);
    let (code, body) = c.get("/dbs_and_roles").await;
    assert_eq!(code, 200);
    let catalog: CatalogObjects = parse("/dbs_and_roles", &body);
    assert!(catalog
        .databases
        .iter()
        .any(|d| d.name == "db1" && d.owner == "bob"));

    // Stopping: the reference's names for the mode. A frozen postmaster
    // holds the compute in TerminationPending.
    let postmaster = c.postmaster_pid().unwrap();
    send_signal(postmaster, 19); // SIGSTOP
    let terminate = tokio::spawn({
        let url = c.url("/terminate?mode=immediate");
        async move { into_pair(http().post(url).json(&json!({})).send().await).await }
    });
    c.wait_status("termination_pending_immediate", Duration::from_secs(10))
        .await;
    status(&c, ComputeStatus::TerminationPendingImmediate).await;
    let (code, body) = c.configure(&s).await;
    assert_eq!(code, 412, "{body}");
    let error: GenericApiError = parse("a 412", &body);
    assert_eq!(
        error.error,
        "invalid compute status: termination_pending_immediate"
    );
    let text = c.get("/metrics").await.1;
    assert!(
        text.as_str()
            .unwrap()
            .contains("status=\"termination_pending_immediate\"} 1"),
        "{text}"
    );
    send_signal(postmaster, 18); // SIGCONT
    let (code, body) = terminate.await.unwrap();
    assert_eq!(code, 200);
    // A frozen postmaster could not tell its flush LSN before the stop: null.
    let _: TerminateResponse = parse("/terminate", &body);
}

#[tokio::test]
async fn a_fast_termination_is_named_fast() {
    let mut c = Compute::start(Some(spec(json!([]), json!([]))));
    c.wait_running();
    let postmaster = c.postmaster_pid().unwrap();
    send_signal(postmaster, 19); // SIGSTOP
    c.signal(15);
    c.wait_status("termination_pending_fast", Duration::from_secs(10))
        .await;
    status(&c, ComputeStatus::TerminationPendingFast).await;
    send_signal(postmaster, 18); // SIGCONT
    assert_eq!(c.wait_exit(Duration::from_secs(20)).code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_of_a_neon_compute_parse_as_the_references() {
    let ps = pageserver(Behaviour::Normal).await;
    let tools = test_dir();
    let pgbin = wrapper_pgbin(tools.path(), Sync::Ok);
    let spec = neon_spec(&ps, json!("Primary"));
    let c = Compute::start_with(Opts {
        terminate_linger: Some("30".into()),
        ..neon_opts(spec, &pgbin, &[])
    });
    c.wait_status("running", Duration::from_secs(60)).await;
    let running = status(&c, ComputeStatus::Running).await;
    assert_eq!(running.tenant.as_deref(), Some(TENANT));
    assert_eq!(running.timeline.as_deref(), Some(TIMELINE));
    let metrics: ComputeMetrics = parse("/metrics.json", &c.get("/metrics.json").await.1);
    assert!(metrics.basebackup_bytes > 0 && metrics.pageserver_connect_micros > 0);
    let _: CatalogObjects = parse("/dbs_and_roles", &c.get("/dbs_and_roles").await.1);

    let (code, body) = c.post("/terminate", &json!({})).await;
    assert_eq!(code, 200);
    let first: TerminateResponse = parse("/terminate", &body);
    assert_eq!(first.lsn.as_deref(), Some(SYNC_LSN));
    // The linger: terminated, and the same answer again.
    status(&c, ComputeStatus::Terminated).await;
    let (code, body) = c.post("/terminate", &json!({})).await;
    assert_eq!(code, 201);
    let again: TerminateResponse = parse("/terminate", &body);
    assert_eq!(again.lsn, first.lsn);
    c.signal(15);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_compute_parses_as_the_references() {
    let ps = pageserver(Behaviour::FailFirst(10)).await;
    let tools = test_dir();
    let pgbin = wrapper_pgbin(tools.path(), Sync::Ok);
    let spec = neon_spec(&ps, json!("Primary"));
    let c = Compute::start_with(Opts {
        failure_exit_delay: 30,
        ..neon_opts(spec, &pgbin, &["--storage-attempts", "1"])
    });
    c.wait_status("failed", Duration::from_secs(60)).await;
    let failed = status(&c, ComputeStatus::Failed).await;
    assert!(failed.error.is_some_and(|e| e.contains("basebackup")));
    let _: ComputeMetrics = parse("/metrics.json", &c.get("/metrics.json").await.1);
}
