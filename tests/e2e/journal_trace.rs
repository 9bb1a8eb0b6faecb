//! Following a call after the fact: a failed call's journal entry carries its order id (so `journal --order` finds
//! the attempt), log lines carry the client IP, a caller's `traceparent` reaches the log, the journal and the
//! upstream; `journal --follow` shows calls as they are answered; `journal` refuses what would print nothing.

use crate::support::process::GatewayProcess;
use crate::support::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const STORE: &str =
    "backend = \"local\"\ndata_dir = \"data\"\njournal_key_env = \"KOOGATE_JOURNAL_KEY\"";

fn start(cert: &TestCert, upstream: &Upstream) -> GatewayProcess {
    let config = crate::support::process::config(&upstream.url(), STORE);
    GatewayProcess::spawn(
        cert.path(),
        &config,
        &[
            ("TEST_KOOGATE_KEY", KEY),
            ("KOOGATE_JOURNAL_KEY", JOURNAL_KEY),
        ],
    )
}

fn traced(order: &str) -> Call {
    let mut call = Call::json(
        &json!({"activity":"newInstance","businessId":"b","orderId":order,
        "orderLineId":format!("{order}-000001")}),
    );
    call.headers
        .push(("traceparent".into(), TRACEPARENT.into()));
    call
}

fn journal(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_koogate"))
        .arg("journal")
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[tokio::test]
async fn a_failed_call_is_found_by_its_order_and_carries_the_callers_trace() {
    let upstream = Upstream::start(Behaviour::Answer(500, "down".into())).await;
    let cert = TestCert::new();
    let process = start(&cert, &upstream);
    let client = client::Client::new(process.https, &cert.cert_pem);
    let failed = client.send(&traced("TRACE-FAIL-1")).await;
    assert_ne!(failed.code(), "000000");
    assert_eq!(
        upstream
            .last()
            .headers
            .get("traceparent")
            .map(|v| v.to_str().unwrap()),
        Some(TRACEPARENT),
        "passed on unchanged"
    );
    // Without a traceparent none is invented.
    upstream.set(Behaviour::App);
    client
        .send(&Call::json(
            &json!({"activity":"newInstance","businessId":"b",
            "orderId":"TRACE-OK-1","orderLineId":"TRACE-OK-1-000001"}),
        ))
        .await
        .assert_code("000000");
    assert!(upstream.last().headers.get("traceparent").is_none());

    process.signal("-TERM");
    let (_, logs) = process.wait_with_logs();
    let logged = lines(&logs);
    let refused = logged
        .iter()
        .find(|l| l["message"] == "refused")
        .unwrap_or_else(|| panic!("no refused line: {logs}"));
    assert_eq!(refused["client_ip"], "127.0.0.1", "{refused}");
    assert_eq!(refused["traceparent"], TRACEPARENT, "{refused}");
    let answered = logged
        .iter()
        .find(|l| l["message"] == "answered")
        .unwrap_or_else(|| panic!("no answered line: {logs}"));
    assert_eq!(answered["client_ip"], "127.0.0.1", "{answered}");
    assert!(answered.get("traceparent").is_none(), "{answered}");

    let data = cert.path().join("data");
    let (code, out, err) = journal(&[
        "--data-dir",
        data.to_str().unwrap(),
        "--order",
        "TRACE-FAIL-1",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let entries = lines(&out);
    assert_eq!(entries.len(), 1, "{out}");
    assert_eq!(entries[0]["orderLineId"], "TRACE-FAIL-1-000001");
    assert_eq!(entries[0]["reason"], "upstream_status");
    assert_eq!(entries[0]["traceparent"], TRACEPARENT);
}

#[tokio::test]
async fn journal_follow_prints_calls_as_they_are_answered() {
    let upstream = Upstream::start(Behaviour::App).await;
    let cert = TestCert::new();
    let process = start(&cert, &upstream);
    let client = client::Client::new(process.https, &cert.cert_pem);
    client.send(&traced("FOLLOW-1")).await.assert_code("000000");

    let mut follower = Command::new(env!("CARGO_BIN_EXE_koogate"))
        .args(["journal", "--follow", "--data-dir"])
        .arg(cert.path().join("data"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = follower.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let order_of = |line: String| serde_json::from_str::<Value>(&line).unwrap()["orderId"].clone();
    let first = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the entry so far");
    assert_eq!(order_of(first), "FOLLOW-1");
    client.send(&traced("FOLLOW-2")).await.assert_code("000000");
    let next = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the new entry");
    assert_eq!(order_of(next), "FOLLOW-2");
    assert!(rx.try_recv().is_err(), "each entry once");
    let _ = follower.kill();
    let _ = follower.wait();
}

#[test]
fn journal_refuses_an_unknown_activity_and_a_directory_without_a_journal() {
    let dir = tempfile::tempdir().unwrap();
    let shown = dir.path().to_str().unwrap();
    let (code, out, err) = journal(&["--data-dir", shown, "--activity", "newInstanse"]);
    assert_eq!((code, out.as_str()), (Some(1), ""), "{err}");
    assert!(
        err.contains("`newInstanse` is not an activity") && err.contains("newInstance"),
        "{err}"
    );

    let (code, _, err) = journal(&["--data-dir", shown]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("{shown} holds no koogate journal")),
        "{err}"
    );
    let missing = Path::new(shown).join("missing");
    let (code, _, err) = journal(&["--data-dir", missing.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("is not a directory"), "{err}");
}
