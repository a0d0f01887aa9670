//! `logs_export_host`: postgres' log lines forwarded as RFC 5424 syslog to a
//! local TCP listener (on IPv6 loopback, which the reference cannot parse),
//! and no longer once the field is removed.

use crate::common::{free_port, spec, Compute};
use serde_json::json;
use std::io::BufRead;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn collector(listener: std::net::TcpListener) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let sink = sink.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(conn).lines().map_while(Result::ok) {
                    sink.lock().unwrap().push(line);
                }
            });
        }
    });
    lines
}

#[tokio::test]
async fn postgres_lines_reach_the_export_host_until_the_field_is_removed() {
    let port = free_port();
    let Ok(listener) = std::net::TcpListener::bind(("::1", port)) else {
        assert!(
            crate::needs::needs(false, "IPv6 loopback (::1) for the export test"),
            "unreachable"
        );
        return;
    };
    let lines = collector(listener);
    let mut s = spec(json!([]), json!([]));
    s["logs_export_host"] = json!(format!("[::1]:{port}"));
    let mut c = Compute::start(Some(s.clone()));
    c.wait_running();
    // The export follows the spec in effect, from a moment after Running.
    c.wait_for_log("postgres' log export started", Duration::from_secs(30));
    let su = c.client("postgres").await;
    su.batch_execute("DO $$BEGIN RAISE LOG 'export-marker-one'; END$$")
        .await
        .unwrap();
    crate::wait::until(
        "the marker at the host",
        Duration::from_secs(30),
        async || {
            lines
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains("export-marker-one"))
        },
    )
    .await;
    let got = lines.lock().unwrap().clone();
    let marker = got
        .iter()
        .find(|l| l.contains("export-marker-one"))
        .unwrap();
    assert!(marker.starts_with("<134>1 "), "{marker}");
    assert!(marker.contains(" postgres - - - "), "{marker}");

    // A host that is no host:port is a 400 naming the field; nothing changes.
    let mut bad = s.clone();
    bad["logs_export_host"] = json!("collector-without-port");
    let (code, body) = c.configure(&bad).await;
    assert_eq!(code, 400, "{body}");
    assert!(body.to_string().contains("logs_export_host"), "{body}");

    // Removed: the export stops.
    s.as_object_mut().unwrap().remove("logs_export_host");
    let (code, body) = c.configure(&s).await;
    assert_eq!(code, 200, "{body}");
    crate::wait::until("the export stopped", Duration::from_secs(30), async || {
        c.log().contains("postgres' log export stopped")
    })
    .await;
    su.batch_execute("DO $$BEGIN RAISE LOG 'export-marker-two'; END$$")
        .await
        .unwrap();
    c.wait_for_log("export-marker-two", Duration::from_secs(30));
    // Idling is the test: a line that were forwarded would be there by now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("export-marker-two")),
        "a line was exported after the field was removed"
    );
    c.terminate();
}
