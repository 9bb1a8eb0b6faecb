//! What an operator relies on at start: every failure series exported at 0 (so `increase()` alerts see the first
//! failure), and real OpenSSL clients' handshake failures counted under the documented reasons.

use crate::support::client::now_ms;
use crate::support::{metric, Behaviour, Call, Options, TestGateway, Upstream};
use koogate::gateway::error::GatewayError;
use koogate::metrics::TLS_HANDSHAKE_FAILURE_REASONS;
use serde_json::json;
use std::process::{Command, Stdio};

/// The value of `series` in `text`, or a panic naming the series if the exporter does not emit it.
fn present(text: &str, series: &str) -> f64 {
    assert!(
        text.lines().any(|l| l.starts_with(&format!("{series} "))),
        "{series} is not exported:\n{text}"
    );
    metric(text, series)
}

#[tokio::test]
async fn a_fresh_gateway_exports_every_failure_series_at_zero() {
    let upstream = Upstream::start(Behaviour::App).await;
    let gateway = TestGateway::start(&upstream).await;
    let text = gateway.metrics().await;
    let mut series: Vec<String> = GatewayError::all_reasons()
        .map(|r| format!(r#"koogate_rejections_total{{reason="{r}"}}"#))
        .collect();
    // The reasons the alert rules name, spelled out so a renamed reason fails here.
    for reason in [
        "bad_signature",
        "stale_timestamp",
        "future_timestamp",
        "field_decrypt_failed",
        "upstream_invalid_answer",
        "encrypted_field_too_long",
        "replay_cache_full",
        "store_failed",
    ] {
        series.push(format!(r#"koogate_rejections_total{{reason="{reason}"}}"#));
    }
    for reason in [
        "upstream_unreachable",
        "upstream_timeout",
        "upstream_status",
        "upstream_body_error",
        "upstream_answer_too_large",
    ] {
        series.push(format!(
            r#"koogate_upstream_failures_total{{reason="{reason}",route="app"}}"#
        ));
    }
    for reason in TLS_HANDSHAKE_FAILURE_REASONS {
        series.push(format!(
            r#"koogate_tls_handshake_failures_total{{reason="{reason}"}}"#
        ));
    }
    series.push(r#"koogate_tls_handshake_failures_total{reason="certificate_rejected"}"#.into());
    series.push(r#"koogate_tls_handshakes_total{protocol="TLSv1.3"}"#.into());
    series.push(r#"koogate_tls_handshakes_total{protocol="TLSv1.2"}"#.into());
    series.push(r#"koogate_config_reloads_total{result="failure"}"#.into());
    series.push(r#"koogate_journal_writes_total{result="failure"}"#.into());
    for s in &series {
        assert_eq!(present(&text, s), 0.0, "{s}");
    }
}

/// Runs `openssl s_client` against the gateway with `args` and returns once it has exited.
fn s_client(addr: std::net::SocketAddr, args: &[&str]) -> String {
    let output = Command::new("openssl")
        .arg("s_client")
        .args(["-connect", &addr.to_string(), "-servername", "localhost"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("openssl must be installed (tests/run.sh installs it)");
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

async fn failures(gateway: &TestGateway, reason: &str) -> f64 {
    let text = gateway.metrics().await;
    metric(
        &text,
        &format!(r#"koogate_tls_handshake_failures_total{{reason="{reason}"}}"#),
    )
}

#[tokio::test]
async fn real_openssl_tls_1_1_and_1_0_clients_count_as_protocol_version() {
    let upstream = Upstream::start(Behaviour::App).await;
    let gateway = TestGateway::start(&upstream).await;
    let addr = gateway.addr;
    for version in ["-tls1_1", "-tls1"] {
        // Security level 0: OpenSSL 3 refuses to offer TLS 1.0/1.1 at all otherwise.
        let out = tokio::task::spawn_blocking(move || {
            s_client(addr, &[version, "-cipher", "DEFAULT@SECLEVEL=0"])
        })
        .await
        .unwrap();
        assert!(
            !out.contains("Cipher is ECDHE"),
            "handshake succeeded: {out}"
        );
    }
    assert_eq!(failures(&gateway, "protocol_version").await, 2.0);
    assert_eq!(failures(&gateway, "incompatible").await, 0.0);
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_certificate_counts_as_certificate_rejected() {
    let upstream = Upstream::start(Behaviour::App).await;
    let gateway = TestGateway::start(&upstream).await;
    // An unrelated CA: the client cannot build a chain to it and sends a fatal unknown_ca alert.
    let other = crate::support::TestCert::new();
    let ca = other.cert_path();
    let addr = gateway.addr;
    for version in ["-tls1_3", "-tls1_2"] {
        let ca = ca.clone();
        let out = tokio::task::spawn_blocking(move || {
            s_client(
                addr,
                &[
                    version,
                    "-verify_return_error",
                    "-CAfile",
                    ca.to_str().unwrap(),
                ],
            )
        })
        .await
        .unwrap();
        assert!(out.contains("verify error"), "{out}");
    }
    // The TLS 1.2 alert arrives after the server's last flight; give the connection task a moment to count it.
    for _ in 0..100 {
        if failures(&gateway, "certificate_rejected").await >= 2.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(failures(&gateway, "certificate_rejected").await, 2.0);
    assert_eq!(failures(&gateway, "error").await, 0.0);
}

#[tokio::test]
async fn the_replay_cache_gauge_falls_while_idle() {
    const ENTRIES: &str = r#"koogate_replay_cache_entries{generation="v2"}"#;
    let upstream = Upstream::start(Behaviour::App).await;
    let mut options = Options::new(&upstream);
    options.verify_toml = "timestamp_window_ms = 1000".into();
    let gateway = TestGateway::start_with(options).await;
    // Stamped 950 ms ago: accepted, and its nonce is kept until the window's end plus the 5 s margin, about
    // 5.05 s from now.
    let mut call = Call::json(
        &json!({"activity":"orderNotify","orderId":"IDLE-1","orderLineId":"IDLE-1-1","testFlag":"1"}),
    );
    call.timestamp = (now_ms() - 950).to_string();
    gateway.client().send(&call).await.assert_code("000000");
    assert_eq!(metric(&gateway.metrics().await, ENTRIES), 1.0);
    // No call arrives in the meantime; the scrape alone must show the nonce gone.
    tokio::time::sleep(std::time::Duration::from_millis(5_400)).await;
    assert_eq!(metric(&gateway.metrics().await, ENTRIES), 0.0);
}

/// HEAD on an admin path: the raw answer's status, head (lower-cased) and what followed the head.
async fn admin_head(addr: std::net::SocketAddr, path: &str) -> (u16, String, Vec<u8>) {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("HEAD {path} HTTP/1.1\r\nhost: admin\r\nconnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let raw =
        crate::support::client::read_to_close(&mut stream, std::time::Duration::from_secs(3)).await;
    crate::support::client::parse_raw_response(&raw)
}

#[tokio::test]
async fn head_on_admin_paths_answers_like_get_without_a_body() {
    let upstream = Upstream::start(Behaviour::App).await;
    let gateway = TestGateway::start(&upstream).await;
    for path in ["/metrics", "/healthz", "/readyz"] {
        let (status, head, body) = admin_head(gateway.admin, path).await;
        assert_eq!(status, 200, "HEAD {path}: {head}");
        assert!(body.is_empty(), "HEAD {path} sent a body");
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap_or_else(|| panic!("no content-length: {head}"))
            .trim()
            .parse()
            .unwrap();
        assert!(length > 0, "HEAD {path}: the GET body's length: {head}");
    }
    assert_eq!(admin_head(gateway.admin, "/nowhere").await.0, 404);
}

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[cfg(unix)]
#[tokio::test]
async fn the_data_dir_and_its_log_are_private() {
    let upstream = Upstream::start(Behaviour::App).await;
    let gateway = TestGateway::start(&upstream).await;
    let call = Call::json(
        &json!({"activity":"orderNotify","orderId":"MODE-1","orderLineId":"MODE-1-1","testFlag":"1"}),
    );
    gateway.client().send(&call).await.assert_code("000000");
    let data = gateway.cert.path().join("data");
    assert_eq!(mode(&data), 0o700, "data_dir");
    assert_eq!(mode(&data.join("wal")), 0o700, "the log's directory");
    let segments: Vec<_> = std::fs::read_dir(data.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!segments.is_empty());
    for file in segments {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
}

#[cfg(unix)]
#[tokio::test]
async fn the_demo_creates_its_keys_and_certificate_private() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    koogate::demo::run(koogate::demo::DemoOptions {
        dir: dir.clone(),
        listen: "127.0.0.1:0".parse().unwrap(),
        serve: false,
    })
    .await
    .unwrap();
    assert_eq!(mode(&dir), 0o700);
    for file in [
        "demo-access-key",
        "journal-key",
        "dev-key.pem",
        "dev-cert.pem",
    ] {
        assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
    }
}
