//! TLS: 1.2 and 1.3 accepted, 1.1 and older refused at the handshake, slow handshakes cut off.

use crate::support::client::{read_to_close, send_over, tls_config};
use crate::support::*;
use rustls::pki_types::ServerName;
use serde_json::json;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

#[tokio::test]
async fn tls_1_2_and_1_3_clients_are_served() {
    let upstream = Upstream::start(Behaviour::App).await;
    let gateway = TestGateway::start(&upstream).await;
    for (version, expected) in [
        (&rustls::version::TLS12, rustls::ProtocolVersion::TLSv1_2),
        (&rustls::version::TLS13, rustls::ProtocolVersion::TLSv1_3),
    ] {
        let config = tls_config(&gateway.cert.cert_pem, &[version]);
        let tcp = TcpStream::connect(gateway.addr).await.unwrap();
        let stream = TlsConnector::from(config)
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        assert_eq!(stream.get_ref().1.protocol_version(), Some(expected));
        assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
        let call = Call::json(&json!({"activity":"orderNotify","orderId":"o","orderLineId":"l"}));
        send_over(stream, &call).await.assert_code("000000");
    }
    let metrics = gateway.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            r#"koogate_tls_handshakes_total{protocol="TLSv1.2"}"#
        ),
        1.0
    );
    assert_eq!(
        metric(
            &metrics,
            r#"koogate_tls_handshakes_total{protocol="TLSv1.3"}"#
        ),
        1.0
    );
}

/// A TLS 1.1 (or 1.0) ClientHello: legacy version field only, no `supported_versions` extension.
fn legacy_client_hello(version: [u8; 2]) -> Vec<u8> {
    let mut hello = Vec::new();
    hello.extend_from_slice(&version); // client_version
    hello.extend_from_slice(&[0x42; 32]); // random
    hello.push(0); // session id
                   // Suites rustls implements (ECDHE with AES-GCM) as well as TLS 1.1's CBC suites, so only the version differs.
    let suites: [u8; 12] = [
        0xc0, 0x2b, 0xc0, 0x2f, 0xc0, 0x13, 0xc0, 0x14, 0x00, 0x2f, 0x00, 0x35,
    ];
    hello.extend_from_slice(&(suites.len() as u16).to_be_bytes());
    hello.extend_from_slice(&suites);
    hello.extend_from_slice(&[1, 0]); // compression: null
    let host = b"localhost";
    let mut sni = Vec::new();
    sni.extend_from_slice(&((host.len() + 3) as u16).to_be_bytes());
    sni.push(0);
    sni.extend_from_slice(&(host.len() as u16).to_be_bytes());
    sni.extend_from_slice(host);
    let mut extensions = vec![0x00, 0x00];
    extensions.extend_from_slice(&(sni.len() as u16).to_be_bytes());
    extensions.extend_from_slice(&sni);
    // supported_groups: x25519, secp256r1; ec_point_formats: uncompressed; signature_algorithms: ecdsa/rsa sha256.
    extensions.extend_from_slice(&[0x00, 0x0a, 0x00, 0x06, 0x00, 0x04, 0x00, 0x1d, 0x00, 0x17]);
    extensions.extend_from_slice(&[0x00, 0x0b, 0x00, 0x02, 0x01, 0x00]);
    extensions.extend_from_slice(&[0x00, 0x0d, 0x00, 0x06, 0x00, 0x04, 0x04, 0x03, 0x04, 0x01]);
    hello.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
    hello.extend_from_slice(&extensions);

    let mut handshake = vec![0x01];
    handshake.extend_from_slice(&(hello.len() as u32).to_be_bytes()[1..]);
    handshake.extend_from_slice(&hello);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

#[tokio::test]
async fn tls_1_1_and_1_0_clients_fail_the_handshake_with_a_protocol_version_alert() {
    let upstream = Upstream::start(Behaviour::App).await;
    let gateway = TestGateway::start(&upstream).await;
    for version in [[0x03, 0x02], [0x03, 0x01], [0x03, 0x00]] {
        let mut tcp = TcpStream::connect(gateway.addr).await.unwrap();
        tcp.write_all(&legacy_client_hello(version)).await.unwrap();
        let answer = read_to_close(&mut tcp, Duration::from_secs(3)).await;
        // An alert record (21) of level fatal (2) and description protocol_version (70); never a ServerHello.
        assert!(answer.len() >= 7, "expected an alert, got {answer:?}");
        assert_eq!(answer[0], 21, "alert record, not a handshake: {answer:?}");
        assert_eq!(
            &answer[5..7],
            &[2, 70],
            "fatal protocol_version alert: {answer:?}"
        );
    }
    assert_eq!(upstream.count(), 0);
    let metrics = gateway.metrics().await;
    let refused = metric(
        &metrics,
        r#"koogate_tls_handshake_failures_total{reason="protocol_version"}"#,
    );
    assert_eq!(refused, 3.0, "{metrics}");
}

#[tokio::test]
async fn a_client_that_never_finishes_the_handshake_is_disconnected() {
    let upstream = Upstream::start(Behaviour::App).await;
    let gateway = TestGateway::start(&upstream).await;
    let mut tcp = TcpStream::connect(gateway.addr).await.unwrap();
    let started = std::time::Instant::now();
    let answer = read_to_close(&mut tcp, Duration::from_secs(5)).await;
    assert!(answer.is_empty());
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_secs(3),
        "closed after {waited:?}"
    );
    let metrics = gateway.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            r#"koogate_tls_handshake_failures_total{reason="timeout"}"#
        ),
        1.0
    );
}

#[tokio::test]
async fn http2_is_not_offered_unless_enabled() {
    let upstream = Upstream::start(Behaviour::App).await;
    let gateway = TestGateway::start(&upstream).await;
    let mut config = (*tls_config(&gateway.cert.cert_pem, rustls::ALL_VERSIONS)).clone();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(gateway.addr).await.unwrap();
    let stream = TlsConnector::from(std::sync::Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
}

#[tokio::test]
async fn http2_serves_calls_when_enabled() {
    let upstream = Upstream::start(Behaviour::App).await;
    let mut options = Options::new(&upstream);
    options.server_toml = "http2 = true".into();
    let gateway = TestGateway::start_with(options).await;
    let mut config = (*tls_config(&gateway.cert.cert_pem, rustls::ALL_VERSIONS)).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = TcpStream::connect(gateway.addr).await.unwrap();
    let stream = TlsConnector::from(std::sync::Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let call = Call::json(&json!({"activity":"orderNotify","orderId":"o","orderLineId":"l"}));
    let request = http::Request::post(format!("https://localhost{}", call.uri()))
        .body(http_body_util::Full::new(bytes::Bytes::from(
            call.body.clone(),
        )))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("body-sign"));
    assert_eq!(upstream.count(), 1);
}
