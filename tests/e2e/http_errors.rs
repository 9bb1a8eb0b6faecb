//! HTTP-level errors over raw TLS sockets: what hyper cannot parse still gets a signed KooGallery answer, `HEAD`
//! gets no `Body-Sign` for a body it does not send, and `CONNECT` never gets a `200` (a tunnel).

use crate::support::client::{parse_raw_response, Reply};
use crate::support::*;
use serde_json::json;

fn good() -> Call {
    let line = format!("HTTPERR-{}", hex::encode(rand::random::<[u8; 4]>()));
    Call::json(
        &json!({"activity":"orderNotify","orderId":"HTTPERR","orderLineId":line,"testFlag":"1"}),
    )
}

/// A raw answer as a [`Reply`], so its signature can be checked like any other.
fn reply(raw: &[u8]) -> Reply {
    let (status, head, body) = parse_raw_response(raw);
    let mut headers = http::HeaderMap::new();
    for line in head.lines().skip(1) {
        if let Some((name, value)) = line.split_once(':') {
            headers.append(
                http::HeaderName::from_bytes(name.trim().as_bytes()).unwrap(),
                value.trim().parse().unwrap(),
            );
        }
    }
    // parse_raw_response lower-cases the head; the signature value is base64 and must keep its case.
    let text = String::from_utf8_lossy(raw);
    if let Some(line) = text
        .lines()
        .find(|l| l.to_lowercase().starts_with("body-sign:"))
    {
        headers.insert(
            "body-sign",
            line["body-sign:".len()..].trim().parse().unwrap(),
        );
    }
    Reply {
        status,
        headers,
        body: body.into(),
    }
}

#[tokio::test]
async fn requests_hyper_cannot_parse_get_a_signed_000002_and_the_connection_closes() {
    let upstream = Upstream::start(Behaviour::App).await;
    let gateway = TestGateway::start(&upstream).await;
    let call = good();
    let head = |extra: &str| {
        format!(
            "POST {} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n{extra}\r\n",
            call.uri()
        )
    };
    let cases = [
        (
            "headers over 16 KiB",
            head(&format!(
                "x-big: {}\r\ncontent-length: 2\r\n",
                "a".repeat(17_000)
            )) + "{}",
        ),
        (
            "150 headers",
            head(
                &(0..150)
                    .map(|i| format!("x-h{i}: v\r\n"))
                    .collect::<String>(),
            ) + "content-length: 2\r\n\r\n{}",
        ),
        (
            "unreadable Content-Length",
            head("content-length: two\r\n") + "{}",
        ),
        (
            "Content-Length twice, different",
            head("content-length: 2\r\ncontent-length: 3\r\n") + "{}",
        ),
        (
            "not a request line",
            "\u{1}\u{2} nonsense\r\n\r\n".to_owned(),
        ),
    ];
    for (what, raw) in &cases {
        let answer = gateway.client().raw(raw.as_bytes()).await;
        let reply = reply(&answer);
        reply.assert_code("000002");
        assert_eq!(
            reply.headers.get("connection").map(|v| v.to_str().unwrap()),
            Some("close"),
            "{what}"
        );
    }
    assert_eq!(upstream.count(), 0);
    let metrics = gateway.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            r#"koogate_rejections_total{reason="malformed_http"}"#
        ),
        cases.len() as f64
    );
    gateway.client().send(&good()).await.assert_code("000000");
}

#[tokio::test]
async fn head_gets_405_without_a_body_sign_and_connect_never_gets_200() {
    let upstream = Upstream::start(Behaviour::App).await;
    let gateway = TestGateway::start(&upstream).await;
    let call = good();
    let head = format!(
        "HEAD {} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n",
        call.uri()
    );
    let (status, headers, body) = parse_raw_response(&gateway.client().raw(head.as_bytes()).await);
    assert_eq!(status, 405, "{headers}");
    assert!(!headers.contains("body-sign"), "{headers}");
    assert!(headers.contains("allow: get, post"), "{headers}");
    assert!(body.is_empty());

    let connect =
        b"CONNECT example.com:443 HTTP/1.1\r\nhost: example.com:443\r\nconnection: close\r\n\r\n";
    let reply = reply(&gateway.client().raw(connect).await);
    assert_eq!(reply.status, 405, "a 2xx to CONNECT opens a tunnel");
    let mut as_200 = reply;
    as_200.status = 200;
    as_200.assert_code("000002");
    assert_eq!(upstream.count(), 0);
    gateway.client().send(&good()).await.assert_code("000000");
}
