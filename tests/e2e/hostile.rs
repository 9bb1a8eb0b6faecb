//! Hostile and malformed input: each gets a signed KooGallery error, is never forwarded, echoes nothing back,
//! and leaves the gateway serving (a good call on a fresh connection still succeeds).

use crate::support::client::{now_ms, parse_raw_response, sign_v2};
use crate::support::*;
use serde_json::json;

const ORDER: &str = "HOSTILE-ORDER-7731";

/// A valid call for a new order line each time (the same line twice would be answered from its record).
fn good() -> Call {
    let line = format!("{ORDER}-{}", hex::encode(rand::random::<[u8; 4]>()));
    Call::json(&json!({"activity":"orderNotify","orderId":ORDER,"orderLineId":line,"testFlag":"1"}))
}

/// Sends `call`, expects a signed `code` that echoes nothing of the request, nothing forwarded; then proves the
/// gateway still serves a good call on a fresh connection.
async fn refused(gateway: &TestGateway, upstream: &Upstream, call: Call, code: &str) {
    let before = upstream.count();
    let reply = gateway.client().send(&call).await;
    reply.assert_code(code);
    let text = String::from_utf8_lossy(&reply.body).to_string();
    for echoed in [ORDER, call.nonce.as_str(), KEY] {
        assert!(
            !text.contains(echoed),
            "answer echoes request content: {text}"
        );
    }
    assert_eq!(
        upstream.count(),
        before,
        "a refused call must not reach the upstream: {call:?}"
    );
    still_serving(gateway, upstream).await;
}

async fn still_serving(gateway: &TestGateway, upstream: &Upstream) {
    let before = upstream.count();
    gateway.client().send(&good()).await.assert_code("000000");
    assert_eq!(upstream.count(), before + 1);
}

#[tokio::test]
async fn authentication_failures_are_refused_with_000001_and_not_forwarded() {
    let upstream = Upstream::start(Behaviour::App).await;
    let gateway = TestGateway::start(&upstream).await;

    let mut tampered = good();
    let query = tampered.signed_query();
    tampered.body = tampered
        .body
        .iter()
        .map(|&b| if b == b'7' { b'8' } else { b })
        .collect();
    tampered.query = Some(query);
    refused(&gateway, &upstream, tampered, "000001").await;

    let mut wrong_key = good();
    wrong_key.key = "not-the-access-key".into();
    refused(&gateway, &upstream, wrong_key, "000001").await;

    let mut stale = good();
    stale.timestamp = (now_ms() - 61_000).to_string();
    refused(&gateway, &upstream, stale, "000001").await;

    let mut future = good();
    future.timestamp = (now_ms() + 61_000).to_string();
    refused(&gateway, &upstream, future, "000001").await;

    let mut seconds = good();
    seconds.timestamp = (now_ms() / 1000).to_string();
    refused(&gateway, &upstream, seconds, "000001").await;
}

#[tokio::test]
async fn a_replayed_nonce_is_refused_even_on_another_connection() {
    let upstream = Upstream::start(Behaviour::App).await;
    let gateway = TestGateway::start(&upstream).await;
    let call = good();
    gateway.client().send(&call).await.assert_code("000000");
    assert_eq!(upstream.count(), 1);
    refused(&gateway, &upstream, call.clone(), "000001").await;

    // Same nonce, new timestamp and body, correctly signed: still a replay.
    let mut again =
        Call::json(&json!({"activity":"orderNotify","orderId":"other","orderLineId":"l"}));
    again.nonce = call.nonce.clone();
    refused(&gateway, &upstream, again, "000001").await;
}

#[tokio::test]
async fn missing_or_malformed_query_parameters_are_refused_with_000001() {
    let upstream = Upstream::start(Behaviour::App).await;
    let gateway = TestGateway::start(&upstream).await;
    let call = good();
    let ts = now_ms().to_string();
    let sig = sign_v2(KEY, &call.nonce, &ts, &call.body);
    let nonce = &call.nonce;
    let queries = [
        String::new(),
        format!("timestamp={ts}&nonce={nonce}"),
        format!("signature={sig}&nonce={nonce}"),
        format!("signature={sig}&timestamp={ts}"),
        format!("signature={}&timestamp={ts}&nonce={nonce}", &sig[1..]),
        format!("signature=g{}&timestamp={ts}&nonce={nonce}", &sig[1..]),
        format!("signature={sig}&timestamp=abc&nonce={nonce}"),
        format!("signature={sig}&timestamp={ts}&nonce="),
        format!("signature={sig}&signature={sig}&timestamp={ts}&nonce={nonce}"),
        format!("signature={sig}&timestamp={ts}&nonce=%FF"),
    ];
    for query in queries {
        let mut c = call.clone();
        c.query = Some(query);
        refused(&gateway, &upstream, c, "000001").await;
    }
}

#[tokio::test]
async fn signed_but_invalid_bodies_are_refused_with_000002() {
    let upstream = Upstream::start(Behaviour::App).await;
    let gateway = TestGateway::start(&upstream).await;
    let bodies: Vec<Vec<u8>> = vec![
        b"{\"activity\":".to_vec(),
        b"not json".to_vec(),
        b"[1,2,3]".to_vec(),
        b"\"newInstance\"".to_vec(),
        vec![0xff, 0xfe, b'{', b'}'],
        br#"{"activity":"deleteEverything","orderId":"x"}"#.to_vec(),
        br#"{"orderId":"x"}"#.to_vec(),
        br#"{"activity":"newInstance","orderId":"x","orderLineId":"y"}"#.to_vec(),
        br#"{"activity":"refreshInstance","scene":"RENEWAL","orderId":"o","orderLineId":"l","instanceId":"i"}"#.to_vec(),
        br#"{"activity":"updateInstanceStatus","instanceId":"i","status":"DESTROY"}"#.to_vec(),
        br#"{"activity":"queryInstance","instanceId":""}"#.to_vec(),
    ];
    for body in bodies {
        refused(&gateway, &upstream, Call::new(body), "000002").await;
    }
}

#[tokio::test]
async fn missing_field_answers_name_the_field_but_nothing_from_the_request() {
    let upstream = Upstream::start(Behaviour::App).await;
    let gateway = TestGateway::start(&upstream).await;
    let reply = gateway
        .client()
        .send(&Call::new(
            br#"{"activity":"newInstance","orderId":"x","orderLineId":"y"}"#.to_vec(),
        ))
        .await;
    reply.assert_code("000002");
    assert_eq!(
        reply.json()["resultMsg"],
        "invalid request parameters: missing businessId"
    );
}

#[tokio::test]
async fn wrong_methods_are_refused_with_000002() {
    let upstream = Upstream::start(Behaviour::App).await;
    let gateway = TestGateway::start(&upstream).await;
    for method in ["PUT", "DELETE", "PATCH"] {
        let mut call = good();
        call.method = method;
        refused(&gateway, &upstream, call, "000002").await;
    }
    // GET is a V1 call, refused while V1 is off (the default); with V1 on, a V2 query on it lacks V1's
    // authToken, so authentication fails.
    let mut call = good();
    call.method = "GET";
    refused(&gateway, &upstream, call.clone(), "000002").await;
    let v1_gateway = TestGateway::start_v1(&upstream).await;
    refused(&v1_gateway, &upstream, call, "000001").await;
}

#[tokio::test]
async fn oversized_bodies_are_refused_by_content_length_and_by_chunked_length() {
    let upstream = Upstream::start(Behaviour::App).await;
    let gateway = TestGateway::start(&upstream).await;
    let big = format!(
        r#"{{"activity":"orderNotify","orderId":"{}","orderLineId":"l"}}"#,
        "x".repeat(70_000)
    );

    refused(&gateway, &upstream, Call::new(big.clone()), "000002").await;

    // Chunked: no Content-Length, the limit is enforced on the bytes that arrive.
    let call = Call::new(big.clone());
    let mut raw = format!("POST {} HTTP/1.1\r\nhost: localhost\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n", call.uri()).into_bytes();
    for chunk in big.as_bytes().chunks(8_000) {
        raw.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        raw.extend_from_slice(chunk);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let answer = gateway.client().raw(&raw).await;
    let (status, head, body) = parse_raw_response(&answer);
    assert_eq!(status, 200);
    assert!(
        head.contains("body-sign: sign_type=\"hmac-sha256\""),
        "{head}"
    );
    assert!(String::from_utf8_lossy(&body).contains("\"resultCode\":\"000002\""));
    assert_eq!(
        upstream.count(),
        1,
        "only the liveness calls of `refused` reached the upstream"
    );
    still_serving(&gateway, &upstream).await;

    // A body just under the limit is fine.
    let fits = format!(
        r#"{{"activity":"orderNotify","orderId":"o","orderLineId":"l","pad":"{}"}}"#,
        "x".repeat(60_000)
    );
    gateway
        .client()
        .send(&Call::new(fits))
        .await
        .assert_code("000000");
}

#[tokio::test]
async fn a_body_that_never_arrives_is_refused_at_the_body_deadline() {
    let upstream = Upstream::start(Behaviour::App).await;
    let gateway = TestGateway::start(&upstream).await;
    let call = good();
    let raw = format!(
        "POST {} HTTP/1.1\r\nhost: localhost\r\ncontent-length: 500\r\n\r\n{{\"activity\"",
        call.uri()
    );
    let answer = gateway.client().raw(raw.as_bytes()).await;
    let (status, _, body) = parse_raw_response(&answer);
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("\"resultCode\":\"000002\""));
    assert_eq!(upstream.count(), 0);
    still_serving(&gateway, &upstream).await;
}

#[tokio::test]
async fn slow_request_headers_are_cut_off() {
    let upstream = Upstream::start(Behaviour::App).await;
    let gateway = TestGateway::start(&upstream).await;
    let started = std::time::Instant::now();
    let answer = gateway
        .client()
        .raw(b"POST /koogallery HTTP/1.1\r\nhost: loc")
        .await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "connection closed by the header timeout"
    );
    assert!(!String::from_utf8_lossy(&answer).contains("000000"));
    assert_eq!(upstream.count(), 0);
    still_serving(&gateway, &upstream).await;
}

#[tokio::test]
async fn garbage_instead_of_http_does_not_disturb_the_gateway() {
    let upstream = Upstream::start(Behaviour::App).await;
    let gateway = TestGateway::start(&upstream).await;
    let _ = gateway
        .client()
        .raw(&[0u8, 1, 2, 255, b'\r', b'\n', b'\r', b'\n'])
        .await;
    // Not TLS at all on the HTTPS port.
    let mut tcp = tokio::net::TcpStream::connect(gateway.addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut tcp, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let _ = client::read_to_close(&mut tcp, std::time::Duration::from_secs(2)).await;
    assert_eq!(upstream.count(), 0);
    let metrics = gateway.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            r#"koogate_tls_handshake_failures_total{reason="not_tls"}"#
        ),
        1.0,
        "{metrics}"
    );
    still_serving(&gateway, &upstream).await;
}

#[tokio::test]
async fn a_full_replay_cache_fails_closed_with_000005() {
    let upstream = Upstream::start(Behaviour::App).await;
    let mut options = Options::new(&upstream);
    options.verify_toml = "replay_cache_max_entries = 2".into();
    let gateway = TestGateway::start_with(options).await;
    gateway.client().send(&good()).await.assert_code("000000");
    gateway.client().send(&good()).await.assert_code("000000");
    gateway.client().send(&good()).await.assert_code("000005");
    assert_eq!(
        upstream.count(),
        2,
        "nothing is forwarded once the cache cannot remember the nonce"
    );
    let metrics = gateway.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            r#"koogate_rejections_total{reason="replay_cache_full"}"#
        ),
        1.0
    );
    assert_eq!(
        metric(&metrics, r#"koogate_replay_cache_entries{generation="v2"}"#),
        2.0
    );
    assert_eq!(
        metric(
            &metrics,
            r#"koogate_replay_cache_capacity_entries{generation="v2"}"#
        ),
        2.0
    );
}

#[tokio::test]
async fn answers_to_unauthenticated_calls_are_signed_with_the_configured_key_per_path() {
    let upstream = Upstream::start(Behaviour::App).await;
    let mut options = Options::new(&upstream);
    options.keys = vec![("primary", KEY), ("product-b", OLD_KEY)];
    options.verify_toml = "unauthenticated_answer_key = \"product-b\"\n\
        [verify.unauthenticated_answer_key_by_path]\n\"/product-a\" = \"primary\"\n"
        .into();
    let gateway = TestGateway::start_with(options).await;
    let mut forged = good();
    forged.key = "not-a-configured-key".into();
    let reply = gateway.client().send(&forged).await;
    assert_eq!(reply.code(), "000001");
    reply.assert_signed_by(OLD_KEY);
    forged.path = "/product-a".into();
    let reply = gateway.client().send(&forged).await;
    reply.assert_code("000001");
    reply.assert_signed_by(KEY);
    assert_eq!(upstream.count(), 0);
}
