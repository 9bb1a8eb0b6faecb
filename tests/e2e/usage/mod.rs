//! The usage-records relay end to end: the app posts records to koogate's usage listener, koogate pushes them to a
//! real mock KooGallery OpenAPI (TLS, both signatures verified) and the tests check what the mock received.

mod binary;
mod contract;
mod relay;

use crate::support::client::{parse_raw_response, read_to_close};
use crate::support::KEY;
use koogate::clock::SystemClock;
use koogate::openapi::mock::{MockOpenApi, MockOptions, Received, USAGE_DATA_PATH};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

pub const IAM_AK: &str = "test-iam-ak";
pub const IAM_SK: &str = "test-iam-sk-secret";
pub const TOKEN: &str = "usage-bearer-token-0123456789";

/// A mock OpenAPI on port 0 accepting the test credentials; its CA and the IAM keys are written into `dir`.
pub async fn mock(dir: &Path) -> MockOpenApi {
    let mock = MockOpenApi::start(
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        MockOptions {
            ak: IAM_AK.into(),
            sk: IAM_SK.as_bytes().to_vec(),
            access_key: KEY.as_bytes().to_vec(),
            clock: Arc::new(SystemClock),
        },
    )
    .unwrap();
    std::fs::write(dir.join("mock-ca.pem"), mock.ca_pem()).unwrap();
    std::fs::write(dir.join("iam-ak"), IAM_AK).unwrap();
    std::fs::write(dir.join("iam-sk"), IAM_SK).unwrap();
    std::fs::write(dir.join("usage-token"), format!("{TOKEN}\n")).unwrap();
    mock
}

/// `[koogallery_api]` pointing at the mock and `[usage]` with `usage` extra keys (files relative to the config).
pub fn tables(mock: &MockOpenApi, usage: &str) -> String {
    format!(
        "\n[koogallery_api]\nbase_url = \"{}\"\nca_file = \"mock-ca.pem\"\nak_file = \"iam-ak\"\nsk_file = \"iam-sk\"\n\
         timeout_ms = 2000\norder_lookup_budget_ms = 500\n\n[usage]\nretry_initial_ms = 50\nretry_max_ms = 400\nbatch_linger_ms = 20\n{usage}\n",
        mock.base_url()
    )
}

/// A valid app record (RFC 3339 times, the last hour).
pub fn record(sn: &str, instance: &str) -> Value {
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap();
    let rfc = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    json!({
        "instanceId": instance,
        "meteringSn": sn,
        "recordTime": rfc(now),
        "beginTime": rfc(now - Duration::from_secs(3600)),
        "endTime": rfc(now - Duration::from_secs(60)),
        "usageValue": "1.25",
    })
}

/// POSTs `body` to the usage listener; returns the status and the JSON answer.
pub async fn post(addr: SocketAddr, token: Option<&str>, body: &Value) -> (u16, Value) {
    let body = body.to_string();
    let auth = token.map_or(String::new(), |t| format!("authorization: Bearer {t}\r\n"));
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!(
                "POST /v1/usage HTTP/1.1\r\nhost: usage\r\ncontent-type: application/json\r\n{auth}\
                 content-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    answer(&mut stream).await
}

/// GETs the status document.
pub async fn status(addr: SocketAddr, token: Option<&str>) -> (u16, Value) {
    let auth = token.map_or(String::new(), |t| format!("authorization: Bearer {t}\r\n"));
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!(
                "GET /v1/usage/status HTTP/1.1\r\nhost: usage\r\n{auth}connection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    answer(&mut stream).await
}

async fn answer(stream: &mut TcpStream) -> (u16, Value) {
    let raw = read_to_close(stream, Duration::from_secs(10)).await;
    let (status, _, body) = parse_raw_response(&raw);
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// Usage pushes the mock acknowledged (`MKT.0000`).
pub fn acknowledged(mock: &MockOpenApi) -> Vec<Received> {
    mock.received()
        .into_iter()
        .filter(|r| r.path == USAGE_DATA_PATH && r.code == "MKT.0000")
        .collect()
}

/// How many times each `metering_sn` was acknowledged.
pub fn acknowledged_sns(mock: &MockOpenApi) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for push in acknowledged(mock) {
        let body: Value = serde_json::from_str(&push.body).unwrap();
        for r in body["usage_records"].as_array().unwrap() {
            *counts
                .entry(r["metering_sn"].as_str().unwrap().to_owned())
                .or_insert(0) += 1;
        }
    }
    counts
}

/// Waits (up to 20 s) until `done` holds.
pub async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}
