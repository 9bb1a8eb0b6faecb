//! The OpenAPI side through the real binary: `koogate order`, `koogate check --probe-upstreams` against the mock,
//! and `koogate run`'s logs, which carry the lookup's outcome but never the IAM SK or the buyer's personal data.

use crate::enrichment::{api_table, start_mock, IAM_AK, IAM_SK};
use crate::support::process::GatewayProcess;
use crate::support::*;
use serde_json::{json, Value};
use std::process::{Command, Stdio};

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs the binary on a blocking thread, so the in-process mock keeps serving meanwhile.
async fn koogate(args: Vec<String>, env: Vec<(&'static str, String)>) -> Run {
    tokio::task::spawn_blocking(move || {
        let output = Command::new(env!("CARGO_BIN_EXE_koogate"))
            .args(&args)
            .env_remove("KOOGATE_CONFIG")
            .envs(env)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        Run {
            code: output.status.code(),
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8(output.stderr).unwrap(),
        }
    })
    .await
    .unwrap()
}

/// A config file for the binary with `[koogallery_api]` pointing at the mock; the SK file holds `sk`.
fn write_config(
    cert: &TestCert,
    upstream: &Upstream,
    mock_url: &str,
    ca: &str,
    sk: &str,
) -> String {
    let mut text = crate::support::process::config(&upstream.url(), "backend = \"memory\"");
    text.push_str(&api_table(cert, mock_url, ca, ""));
    std::fs::write(cert.path().join("iam-sk"), sk).unwrap();
    let path = cert.path().join("koogate.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn env() -> Vec<(&'static str, String)> {
    vec![("TEST_KOOGATE_KEY", KEY.to_owned())]
}

#[tokio::test]
async fn order_prints_the_normalised_order_and_explains_failures() {
    let (mock, upstream, cert) = (
        start_mock().await,
        Upstream::start(Behaviour::App).await,
        TestCert::new(),
    );
    let config = write_config(&cert, &upstream, &mock.base_url(), mock.ca_pem(), IAM_SK);
    let args = |order: &str| {
        [
            "order",
            "--config",
            &config,
            "--order-id",
            order,
            "--order-line-id",
            &format!("{order}-000001"),
        ]
        .map(String::from)
        .to_vec()
    };
    let run = koogate(args("MOCKPERIODYEARNEW"), env()).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let order: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(order["lines"][0]["expireTime"], "2025-11-21T23:59:59Z");
    assert_eq!(order["lines"][0]["products"][0]["linearValue"], 50);
    assert!(run.stderr.contains("personal data"));

    let run = koogate(args("CS0000NOSUCH"), env()).await;
    assert_eq!((run.code, run.stdout.as_str()), (Some(1), ""));
    assert!(
        run.stderr.contains("MKT.0101") && run.stderr.contains("next:"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn check_probes_the_api_with_a_signed_call() {
    let (mock, upstream, cert) = (
        start_mock().await,
        Upstream::start(Behaviour::App).await,
        TestCert::new(),
    );
    let config = write_config(&cert, &upstream, &mock.base_url(), mock.ca_pem(), IAM_SK);
    let check = |config: &str| {
        ["check", "--config", config, "--probe-upstreams"]
            .map(String::from)
            .to_vec()
    };
    let run = koogate(check(&config), env()).await;
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("koogallery_api: https://127.0.0.1:"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("accepted a signed order query"),
        "{}",
        run.stdout
    );
    assert_eq!(mock.received().len(), 1, "one signed probe");

    let wrong = "a-wrong-secret-key-value";
    let config = write_config(&cert, &upstream, &mock.base_url(), mock.ca_pem(), wrong);
    let run = koogate(check(&config), env()).await;
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("refused koogate's signature") && run.stderr.contains("IAM"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains(wrong) && !run.stdout.contains(wrong));

    // A broken table is reported with its key paths by plain `check`.
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("ak_file = \"iam-ak\"", "site = \"mars\"");
    std::fs::write(&config, text).unwrap();
    let run = koogate(
        ["check", "--config", &config].map(String::from).to_vec(),
        env(),
    )
    .await;
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("koogallery_api.site") && run.stderr.contains("koogallery_api.ak"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn run_logs_the_lookup_outcome_but_never_the_sk_or_buyer_data() {
    let (mock, upstream, cert) = (
        start_mock().await,
        Upstream::start(Behaviour::App).await,
        TestCert::new(),
    );
    let mut text = crate::support::process::config(&upstream.url(), "backend = \"memory\"");
    std::fs::write(cert.path().join("mock-ca.pem"), mock.ca_pem()).unwrap();
    text.push_str(&format!(
        "\n[koogallery_api]\nbase_url = \"{}\"\nak_env = \"TEST_IAM_AK\"\nsk_env = \"TEST_IAM_SK\"\nca_file = \"mock-ca.pem\"\n",
        mock.base_url()
    ));
    let process = GatewayProcess::spawn(
        cert.path(),
        &text,
        &[
            ("TEST_KOOGATE_KEY", KEY),
            ("TEST_IAM_AK", IAM_AK),
            ("TEST_IAM_SK", IAM_SK),
        ],
    );
    let client = client::Client::new(process.https, &cert.cert_pem);
    let call = |order: &str| {
        Call::json(
            &json!({"activity":"newInstance","businessId":"b","orderId":order,
            "orderLineId":format!("{order}-000001")}),
        )
    };
    client
        .send(&call("MOCKPERIODYEARNEW"))
        .await
        .assert_code("000000");
    assert_eq!(
        upstream.last().json()["order"]["buyer"]["customerRealName"],
        "测试用户1"
    );
    client
        .send(&call("CS0000NOSUCH"))
        .await
        .assert_code("000005");
    process.signal("-TERM");
    let (code, logs) = tokio::task::spawn_blocking(move || process.wait_with_logs())
        .await
        .unwrap();
    assert_eq!(code, Some(0));
    assert!(logs.contains(r#""order_lookup":"api""#), "{logs}");
    assert!(
        logs.contains(r#""order_lookup":"mkt_error""#)
            && logs.contains(r#""reason":"order_lookup_failed""#),
        "one line with the reason: {logs}"
    );
    assert!(
        logs.contains("MKT.0101"),
        "the code is in the error text: {logs}"
    );
    for secret in [
        IAM_SK,
        "18688888888",
        "测试用户1",
        "459b2c1d8e7f4a6b9c0d1e2f3a4b5c6d",
    ] {
        assert!(!logs.contains(secret), "logs contain {secret}: {logs}");
    }
}

#[tokio::test]
async fn mock_openapi_serves_signed_calls_and_shows_what_it_received() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let mut child = Command::new(env!("CARGO_BIN_EXE_koogate"))
        .args([
            "mock-openapi",
            "--listen",
            "127.0.0.1:0",
            "--key-env",
            "TEST_KOOGATE_KEY",
            "--ca-out",
        ])
        .arg(&ca)
        .envs([
            ("TEST_KOOGATE_KEY", KEY),
            ("KOOGATE_IAM_AK", IAM_AK),
            ("KOOGATE_IAM_SK", IAM_SK),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let base_url = first.trim().rsplit(' ').next().unwrap().to_owned();
    assert!(base_url.starts_with("https://127.0.0.1:"), "{first}");

    let config = koogate::config::KooGalleryApiConfig {
        site: None,
        base_url: base_url.parse().unwrap(),
        credentials: koogate::secret::IamCredentials::new(IAM_AK, IAM_SK),
        ca_file: Some(ca),
        connect_timeout: std::time::Duration::from_secs(1),
        timeout: std::time::Duration::from_secs(5),
        order_lookup_budget: std::time::Duration::from_secs(2),
        enrich: vec![],
        on_failure: koogate::config::OnFailure::Retry,
        order_cache_max_entries: 1,
        order_cache_ttl: std::time::Duration::ZERO,
    };
    let client = koogate::openapi::client::OpenApiClient::new(
        std::sync::Arc::new(config),
        std::sync::Arc::new(koogate::clock::SystemClock),
    )
    .unwrap();
    let query = vec![("orderId".to_owned(), "MOCKONDEMAND".to_owned())];
    let path = koogate::openapi::ORDER_QUERY_PATH;
    let answer = client
        .send_signed(http::Method::GET, path, &query, bytes::Bytes::new(), &[])
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(
        (
            answer.status,
            body["orderInfo"]["orderLine"][0]["chargingMode"].as_str()
        ),
        (200, Some("ON_DEMAND"))
    );
    let seen = client
        .send_signed(
            http::Method::GET,
            "/__mock/received",
            &[],
            bytes::Bytes::new(),
            &[],
        )
        .await
        .unwrap();
    let seen: Value = serde_json::from_slice(&seen.body).unwrap();
    assert_eq!(seen[0]["path"], path);
    assert_eq!(seen[0]["code"], "MKT.0000");
    let _ = child.kill();
    let _ = child.wait();
}
