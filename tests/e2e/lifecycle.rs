//! Admin endpoints, metrics after a scripted mix of calls, and graceful shutdown.

use crate::support::client::admin_get;
use crate::support::*;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn health_readiness_and_metrics_are_served_on_the_admin_port() {
    let upstream = Upstream::start(Behaviour::App).await;
    let gateway = TestGateway::start(&upstream).await;
    assert_eq!(admin_get(gateway.admin, "/healthz").await.unwrap().0, 200);
    assert_eq!(admin_get(gateway.admin, "/readyz").await.unwrap().0, 200);
    assert_eq!(admin_get(gateway.admin, "/nope").await.unwrap().0, 404);

    let client = gateway.client();
    for i in 0..3 {
        let call = Call::json(
            &json!({"activity":"orderNotify","orderId":format!("o{i}"),"orderLineId":"l"}),
        );
        client.send(&call).await.assert_code("000000");
    }
    let mut forged = Call::json(&json!({"activity":"orderNotify","orderId":"o","orderLineId":"l"}));
    forged.key = "wrong".into();
    client.send(&forged).await.assert_code("000001");
    client
        .send(&Call::new(b"[]".to_vec()))
        .await
        .assert_code("000002");

    let (status, text) = admin_get(gateway.admin, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        metric(
            &text,
            r#"koogate_requests_total{activity="orderNotify",result_code="000000"}"#
        ),
        3.0
    );
    assert_eq!(
        metric(
            &text,
            r#"koogate_requests_total{activity="unknown",result_code="000001"}"#
        ),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            r#"koogate_requests_total{activity="unknown",result_code="000002"}"#
        ),
        1.0
    );
    assert_eq!(
        metric(&text, r#"koogate_rejections_total{reason="bad_signature"}"#),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            r#"koogate_rejections_total{reason="not_json_object"}"#
        ),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            r#"koogate_request_duration_seconds_count{activity="orderNotify"}"#
        ),
        3.0
    );
    assert_eq!(
        metric(
            &text,
            r#"koogate_upstream_duration_seconds_count{route="app"}"#
        ),
        3.0
    );
    assert_eq!(metric(&text, "koogate_requests_in_flight"), 0.0);
    // Four verified nonces: the `[]` body was signed correctly, so its nonce is spent even though it was refused.
    assert_eq!(
        metric(&text, r#"koogate_replay_cache_entries{generation="v2"}"#),
        4.0
    );
    assert_eq!(metric(&text, "koogate_ready"), 1.0);
    assert!(text.contains("koogate_build_info{version="));
}

#[tokio::test]
async fn labels_stay_bounded_whatever_the_request_contains() {
    let upstream = Upstream::start(Behaviour::App).await;
    let gateway = TestGateway::start(&upstream).await;
    let client = gateway.client();
    let before = gateway
        .metrics()
        .await
        .lines()
        .filter(|l| !l.starts_with('#'))
        .count();
    for i in 0..20 {
        let mut call =
            Call::json(&json!({"activity":format!("activity{i}"),"orderId":format!("o{i}")}));
        call.path = format!("/path/{i}");
        client.send(&call).await.assert_code("000002");
    }
    let text = gateway.metrics().await;
    assert!(
        !text.contains("activity1") && !text.contains("/path/"),
        "request content leaked into labels"
    );
    let after = text.lines().filter(|l| !l.starts_with('#')).count();
    // One new requests_total series, one rejection reason and one histogram (its buckets, sum and count).
    assert!(
        after - before <= 1 + 1 + 20,
        "series grew from {before} to {after}"
    );
}

#[tokio::test]
async fn shutdown_lets_an_in_flight_call_finish_and_turns_readiness_off_first() {
    let upstream = Upstream::start(Behaviour::Slow(Duration::from_millis(600), "{}".into())).await;
    let mut gateway = TestGateway::start(&upstream).await;
    let client = gateway.client();
    let in_flight = tokio::spawn(async move {
        client
            .send(&Call::json(
                &json!({"activity":"orderNotify","orderId":"o","orderLineId":"l"}),
            ))
            .await
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(upstream.count(), 1, "the call is at the upstream");

    let admin = gateway.admin;
    let addr = gateway.addr;
    let run = gateway.begin_shutdown();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // While draining: not ready, and no new connections are accepted.
    if let Ok((status, _)) = admin_get(admin, "/readyz").await {
        assert_eq!(status, 503);
    }
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener closed while draining"
    );

    let reply = in_flight.await.unwrap();
    reply.assert_code("000000");
    tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("run returns after draining")
        .unwrap()
        .unwrap();
}
