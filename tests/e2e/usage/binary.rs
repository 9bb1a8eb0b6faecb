//! The real binary: records accepted before a `kill -9` are all delivered after the restart, none twice.

use super::*;
use crate::support::process::{config, GatewayProcess};
use crate::support::{Behaviour, TestCert, Upstream};
use koogate::openapi::mock::Fault;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_queued_before_kill_9_are_delivered_after_restart_exactly_once() {
    let upstream = Upstream::start(Behaviour::Answer(200, "{}".into())).await;
    let cert = TestCert::new();
    let mock = mock(cert.path()).await;
    let text = format!(
        "{}{}",
        config(&upstream.url(), "backend = \"memory\"\ndata_dir = \"data\""),
        tables(&mock, "listen = \"127.0.0.1:0\"\ndata_dir = \"usage-data\"")
    );
    let env = [("TEST_KOOGATE_KEY", KEY)];
    // KooGallery is down: everything accepted stays queued.
    mock.set_fault(Fault::InternalError, None);
    let first = GatewayProcess::spawn(cert.path(), &text, &env);
    let usage = first.usage.expect("the usage listener is logged");
    let records: Vec<Value> = (0..300)
        .map(|n| record(&format!("crash-{n:03}"), "inst-1"))
        .collect();
    let (status, answer) = post(usage, None, &json!({ "records": records })).await;
    assert_eq!(
        (status, answer["accepted"].as_u64()),
        (200, Some(300)),
        "{answer}"
    );
    until("a failed push", || mock.calls_to(USAGE_DATA_PATH) >= 1).await;
    first.signal("-KILL");
    let (code, _) = first.wait_with_logs();
    assert_eq!(code, None, "killed by a signal");
    assert!(acknowledged(&mock).is_empty());

    mock.clear_fault();
    let second = GatewayProcess::spawn(cert.path(), &text, &env);
    until("every record after the restart", || {
        acknowledged_sns(&mock).len() == 300
    })
    .await;
    let counts = acknowledged_sns(&mock);
    assert!(counts.values().all(|n| *n == 1), "a record was sent twice");
    // A second restart sends nothing again.
    until_settled(&second.usage.unwrap().to_string()).await;
    second.terminate();
    // Stopped: `koogate usage status` reads the queue file.
    let data_dir = cert.path().join("usage-data");
    let offline = usage_status(&["--json", "--data-dir", data_dir.to_str().unwrap()]);
    let offline: Value = serde_json::from_str(&offline).unwrap();
    assert_eq!(
        (offline["queued"].as_u64(), offline["sent"].as_u64()),
        (Some(0), Some(300))
    );
    let pushes = mock.calls_to(USAGE_DATA_PATH);
    let third = GatewayProcess::spawn(cert.path(), &text, &env);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(mock.calls_to(USAGE_DATA_PATH), pushes);
    // Running: it asks the listener.
    let live = usage_status(&["--addr", &third.usage.unwrap().to_string()]);
    assert!(
        live.contains("queued:   0") && live.contains("sent:     300"),
        "{live}"
    );
    drop(third);
}

/// Runs `koogate usage status` with `args`; returns its standard output (it must succeed).
fn usage_status(args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_koogate"))
        .args(["usage", "status"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Waits until `koogate usage status --addr` reports an empty queue.
async fn until_settled(addr: &str) {
    let mut text = String::new();
    for _ in 0..500 {
        text = usage_status(&["--addr", addr]);
        if text.contains("queued:   0") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the queue never emptied: {text}");
}

#[test]
fn the_demo_shows_a_usage_record_acknowledged_by_the_mock_koogallery() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_koogate"))
        .args(["demo", "--listen", "127.0.0.1:0", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains(r#""status":"accepted""#), "{stdout}");
    assert!(
        stdout.contains("mock KooGallery received {\"usage_records\":[{"),
        "{stdout}"
    );
    assert!(
        stdout.contains("answered MKT.0000 (acknowledged)"),
        "{stdout}"
    );
}
