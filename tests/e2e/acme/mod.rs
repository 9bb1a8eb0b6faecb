//! `[acme]` against a real ACME server (Pebble on loopback): first issuance through tls-alpn-01 and through
//! http-01, calls answered over the issued certificate, renewal of short-lived certificates while calls continue,
//! a failing renewal that leaves the old certificate serving, and a restart that reuses the stored certificate.

mod pebble;

use crate::support::{client, metric, Behaviour, Call, Upstream, KEY};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use pebble::*;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

fn new_instance() -> Call {
    Call::json(&json!({
        "activity": "newInstance",
        "businessId": "1a2b3c4d-0000-0000-0000-0000000000a1",
        "orderId": format!("ACME{}", rand::random::<u32>()),
        "orderLineId": "ACME-000001",
        "testFlag": "1",
    }))
}

/// The leaf certificate the gateway serves to a client that trusts only `root_pem` (Pebble's issuing root).
async fn serving_leaf(addr: std::net::SocketAddr, root_pem: &str) -> CertificateDer<'static> {
    let tls = client::tls_config(root_pem, rustls::ALL_VERSIONS);
    let tcp = TcpStream::connect(addr).await.unwrap();
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(ServerName::try_from(DOMAIN).unwrap(), tcp)
        .await
        .expect("the served certificate chains to Pebble's issuing root");
    stream.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned()
}

struct Setup {
    dir: tempfile::TempDir,
    tls: Arc<PebbleTls>,
    upstream: Upstream,
}

impl Setup {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let tls = Arc::new(PebbleTls::new());
        std::fs::write(dir.path().join("pebble-ca.pem"), &tls.ca_pem).unwrap();
        Self {
            dir,
            tls,
            upstream: Upstream::start(Behaviour::App).await,
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn acme(&self, pebble: &Pebble, challenges: &str, http01: bool) -> String {
        acme_toml(
            &pebble.directory_url(),
            &self.path().join("pebble-ca.pem"),
            &self.path().join("acme"),
            challenges,
            http01,
        )
    }

    async fn pebble(&self, bound: &Bound, validity_s: Option<u64>) -> Pebble {
        let options = PebbleOptions {
            tls_port: bound.https_port(),
            http_port: bound.http_port().await,
            validity_s,
        };
        Pebble::start(self.path(), self.tls.clone(), &options, None).await
    }
}

async fn assert_call_answered(addr: std::net::SocketAddr, root_pem: &str) {
    let reply = client::Client::new(addr, root_pem)
        .send(&new_instance())
        .await;
    reply.assert_code("000000");
    reply.assert_signed_by(KEY);
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_alpn_01_certificate_is_issued_at_start_serves_calls_and_is_reused_after_a_restart() {
    let setup = Setup::new().await;
    let bound = Bound::new(false).await;
    let pebble = setup.pebble(&bound, None).await;
    let acme = setup.acme(&pebble, "[\"tls-alpn-01\"]", false);
    let gateway = AcmeGateway::start(bound, &acme, &setup.upstream.url(), setup.path()).await;
    gateway.wait_ready(Duration::from_secs(30)).await;

    let root = pebble.issuing_root_pem().await;
    assert_call_answered(gateway.addr, &root).await;
    assert_eq!(setup.upstream.count(), 1);
    let leaf = serving_leaf(gateway.addr, &root).await;
    let metrics = gateway.metrics().await;
    assert_eq!(
        metric(&metrics, "koogate_acme_attempts_total{outcome=\"success\"}"),
        1.0
    );
    assert!(metric(&metrics, "koogate_acme_last_success_timestamp_seconds") > 1.7e9);
    assert!(metric(&metrics, "koogate_certificate_expiry_timestamp_seconds") > 1.7e9);
    #[cfg(unix)]
    {
        assert_eq!(mode(&setup.path().join("acme")), 0o700);
        for file in state_files(&setup.path().join("acme")) {
            assert_eq!(mode(&file), 0o600, "{}", file.display());
        }
    }
    gateway.stop().await;
    drop(pebble);

    // `koogate check` shows the setup and the stored certificate.
    let config = setup.path().join("koogate.toml");
    std::fs::write(
        &config,
        AcmeGateway::config_toml(&acme, &setup.upstream.url()),
    )
    .unwrap();
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_koogate"))
        .args(["check", "--config"])
        .arg(&config)
        .env("KEY_primary", KEY)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    for line in [
        "tls: certificates from ACME for localhost",
        "acme: challenges tls-alpn-01 on server.listen",
        "acme: contact ops@example.com",
        "(account stored)",
        "acme: stored certificate valid until ",
    ] {
        assert!(stdout.contains(line), "`{line}` missing in:\n{stdout}");
    }

    // Restarted with the CA gone: the stored certificate serves at once, and no order is attempted.
    let bound = Bound::new(false).await;
    let gateway = AcmeGateway::start(bound, &acme, &setup.upstream.url(), setup.path()).await;
    gateway.wait_ready(Duration::from_secs(5)).await;
    assert_call_answered(gateway.addr, &root).await;
    assert_eq!(
        serving_leaf(gateway.addr, &root).await,
        leaf,
        "the same certificate"
    );
    let metrics = gateway.metrics().await;
    assert_eq!(
        metric(&metrics, "koogate_acme_last_attempt_timestamp_seconds"),
        0.0
    );
    assert_eq!(
        metric(&metrics, "koogate_acme_attempts_total{outcome=\"success\"}"),
        0.0
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_01_certificate_is_issued_and_the_challenge_listener_answers_nothing_else() {
    let setup = Setup::new().await;
    let bound = Bound::new(true).await;
    let pebble = setup.pebble(&bound, None).await;
    // Only http-01: tls-alpn-01 is not answered, so the certificate can only come through the port-80 listener.
    let acme = setup.acme(&pebble, "[\"http-01\"]", true);
    let gateway = AcmeGateway::start(bound, &acme, &setup.upstream.url(), setup.path()).await;
    gateway.wait_ready(Duration::from_secs(30)).await;

    let root = pebble.issuing_root_pem().await;
    assert_call_answered(gateway.addr, &root).await;
    let http01 = gateway.http01.unwrap();
    for request in [
        "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "GET /.well-known/acme-challenge/unknown HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "POST /koogallery/hook HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\r\n{}",
    ] {
        let mut tcp = TcpStream::connect(http01).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut tcp, request.as_bytes())
            .await
            .unwrap();
        let raw = client::read_to_close(&mut tcp, Duration::from_secs(3)).await;
        let (status, _, body) = client::parse_raw_response(&raw);
        assert_eq!((status, body.len()), (404, 0), "{request:?}");
    }
    assert_eq!(
        setup.upstream.count(),
        1,
        "nothing from port 80 reached the app"
    );
    gateway.stop().await;
}

/// One HTTP/1.1 keep-alive connection over TLS, trusting only `root_pem`.
async fn keep_alive(
    addr: std::net::SocketAddr,
    root_pem: &str,
) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let tls = client::tls_config(root_pem, rustls::ALL_VERSIONS);
    let tcp = TcpStream::connect(addr).await.unwrap();
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(ServerName::try_from(DOMAIN).unwrap(), tcp)
        .await
        .unwrap();
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    sender
}

async fn send_on(sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>) -> String {
    let call = new_instance();
    let mut request = http::Request::builder()
        .method(call.method)
        .uri(call.uri())
        .header("host", DOMAIN);
    for (name, value) in &call.headers {
        request = request.header(name, value);
    }
    let response = sender
        .send_request(
            request
                .body(Full::new(Bytes::from(call.body.clone())))
                .unwrap(),
        )
        .await
        .expect("the connection opened before the renewal still works");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice::<serde_json::Value>(&body).unwrap()["resultCode"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_lived_certificate_is_renewed_while_calls_keep_succeeding() {
    let setup = Setup::new().await;
    let bound = Bound::new(false).await;
    // 9 s certificates: renewed from 6 s on (2/3 of the lifetime).
    let pebble = setup.pebble(&bound, Some(9)).await;
    let acme = setup.acme(&pebble, "[\"tls-alpn-01\"]", false);
    let gateway = AcmeGateway::start(bound, &acme, &setup.upstream.url(), setup.path()).await;
    gateway.wait_ready(Duration::from_secs(30)).await;
    let root = pebble.issuing_root_pem().await;
    let first = serving_leaf(gateway.addr, &root).await;
    let mut kept = keep_alive(gateway.addr, &root).await;
    assert_eq!(send_on(&mut kept).await, "000000");

    let started = Instant::now();
    let mut leaves = vec![first.clone()];
    let mut calls = 0;
    while leaves.len() < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no second renewal within 30 s"
        );
        assert_call_answered(gateway.addr, &root).await;
        assert_eq!(
            send_on(&mut kept).await,
            "000000",
            "the connection opened before any renewal"
        );
        calls += 2;
        let leaf = serving_leaf(gateway.addr, &root).await;
        if leaves.last() != Some(&leaf) {
            leaves.push(leaf);
        }
        // A call every ~0.4 s: enough to cross each swap, light on a shared 2-core CI machine.
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    assert_eq!(
        send_on(&mut kept).await,
        "000000",
        "a connection from before the renewals"
    );
    assert_eq!(setup.upstream.count(), calls + 2);
    let metrics = gateway.metrics().await;
    assert!(metric(&metrics, "koogate_acme_attempts_total{outcome=\"success\"}") >= 3.0);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_renewal_keeps_the_old_certificate_serving_and_is_counted() {
    let setup = Setup::new().await;
    let bound = Bound::new(false).await;
    let validity_s = 12;
    let pebble = setup.pebble(&bound, Some(validity_s)).await;
    let acme = setup.acme(&pebble, "[\"tls-alpn-01\"]", false);
    let https_port = bound.https_port();
    let gateway = AcmeGateway::start(bound, &acme, &setup.upstream.url(), setup.path()).await;
    gateway.wait_ready(Duration::from_secs(30)).await;
    let issued_at = Instant::now();
    let root = pebble.issuing_root_pem().await;
    let leaf = serving_leaf(gateway.addr, &root).await;
    let listen = pebble.listen;
    drop(pebble);

    // The same directory URL, but the CA now validates tls-alpn-01 against a port nobody listens on (and it
    // has forgotten the account): every renewal attempt fails its challenge.
    let unused = free_port().await.port();
    assert_ne!(unused, https_port);
    let options = PebbleOptions {
        tls_port: unused,
        http_port: free_port().await.port(),
        validity_s: Some(validity_s),
    };
    let _broken = Pebble::start(setup.path(), setup.tls.clone(), &options, Some(listen)).await;
    let failures = "koogate_acme_attempts_total{outcome=\"challenge\"}";
    while metric(&gateway.metrics().await, failures) < 2.0 {
        assert!(
            issued_at.elapsed() < Duration::from_secs(validity_s - 1),
            "no failed renewal before expiry:\n{}",
            gateway.metrics().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = gateway.metrics().await;
    assert_eq!(
        metric(&metrics, "koogate_acme_attempts_total{outcome=\"success\"}"),
        1.0
    );
    assert!(
        metric(&metrics, "koogate_acme_last_attempt_timestamp_seconds")
            > metric(&metrics, "koogate_acme_last_success_timestamp_seconds")
    );
    assert!(issued_at.elapsed() < Duration::from_secs(validity_s - 1));
    assert_call_answered(gateway.addr, &root).await;
    assert_eq!(
        serving_leaf(gateway.addr, &root).await,
        leaf,
        "the old certificate still serves"
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_certificate_yet_handshakes_fail_and_readiness_stays_false() {
    let setup = Setup::new().await;
    let bound = Bound::new(false).await;
    // A directory nobody answers: no certificate can be issued.
    let nowhere = format!("https://{}/dir", free_port().await);
    let acme = acme_toml(
        &nowhere,
        &setup.path().join("pebble-ca.pem"),
        &setup.path().join("acme"),
        "[\"tls-alpn-01\"]",
        false,
    );
    let gateway = AcmeGateway::start(bound, &acme, &setup.upstream.url(), setup.path()).await;
    let failures = "koogate_acme_attempts_total{outcome=\"account\"}";
    let started = Instant::now();
    while metric(&gateway.metrics().await, failures) < 2.0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no failed attempt counted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _) = client::admin_get(gateway.admin, "/readyz").await.unwrap();
    assert_eq!(status, 503, "not ready without a certificate");
    let tls = client::tls_config(&setup.tls.ca_pem, rustls::ALL_VERSIONS);
    let tcp = TcpStream::connect(gateway.addr).await.unwrap();
    let handshake = tokio_rustls::TlsConnector::from(tls)
        .connect(ServerName::try_from(DOMAIN).unwrap(), tcp)
        .await;
    assert!(
        handshake.is_err(),
        "nothing to serve before the first certificate"
    );
    assert_eq!(setup.upstream.count(), 0);
    gateway.stop().await;
}
