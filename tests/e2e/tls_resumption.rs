//! TLS session resumption for callers that open a connection per call: a rustls client with a session store
//! resumes (TLS 1.3 and 1.2), also after a reload, which builds a new server configuration.

use crate::support::client::{send_over, tls_config};
use crate::support::*;
use rustls::pki_types::ServerName;
use rustls::HandshakeKind;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// One call on a new connection with `tls` (whose session store persists); returns how the handshake went.
async fn call_on_new_connection(
    gateway: &TestGateway,
    tls: &Arc<rustls::ClientConfig>,
    i: usize,
) -> Option<HandshakeKind> {
    let tcp = TcpStream::connect(gateway.addr).await.unwrap();
    let stream = TlsConnector::from(tls.clone())
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let kind = stream.get_ref().1.handshake_kind();
    let call = Call::json(
        &json!({"activity":"newInstance","businessId":format!("b-{i}"),
        "orderId":format!("order-{i}"),"orderLineId":format!("order-{i}-000001")}),
    );
    // Reading the answer also reads the TLS 1.3 tickets sent after the handshake.
    send_over(stream, &call).await.assert_code("000000");
    kind
}

async fn reloads(gateway: &TestGateway) -> f64 {
    metric(
        &gateway.metrics().await,
        r#"koogate_config_reloads_total{result="success"}"#,
    )
}

#[tokio::test]
async fn a_caller_resumes_its_tls_session_before_and_after_a_reload() {
    let upstream = Upstream::start(Behaviour::App).await;
    let gateway = TestGateway::start(&upstream).await;
    let mut calls = 0;
    let mut resumed = 0.0;
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let tls = tls_config(&gateway.cert.cert_pem, &[version]);
        calls += 1;
        assert_eq!(
            call_on_new_connection(&gateway, &tls, calls).await,
            Some(HandshakeKind::Full)
        );
        calls += 1;
        assert_eq!(
            call_on_new_connection(&gateway, &tls, calls).await,
            Some(HandshakeKind::Resumed),
            "{version:?}: the second connection resumes"
        );
        let before = reloads(&gateway).await;
        gateway.reload().await;
        let started = std::time::Instant::now();
        while reloads(&gateway).await == before {
            assert!(started.elapsed() < Duration::from_secs(5), "reloaded");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        calls += 1;
        assert_eq!(
            call_on_new_connection(&gateway, &tls, calls).await,
            Some(HandshakeKind::Resumed),
            "{version:?}: a session from before the reload resumes after it"
        );
        resumed += 2.0;
    }
    let metrics = gateway.metrics().await;
    assert_eq!(
        metric(&metrics, "koogate_tls_resumed_handshakes_total"),
        resumed
    );
}
