//! Upstream failures: each becomes a signed `000005` with a generic message, inside the deadline, and the
//! metrics say why.

use crate::support::*;
use serde_json::json;
use std::time::{Duration, Instant};

fn new_instance() -> Call {
    Call::json(
        &json!({"activity":"newInstance","businessId":"b-1","orderId":"SECRET-ORDER-1","orderLineId":"SECRET-ORDER-1-000001"}),
    )
}

async fn expect_internal_error(gateway: &TestGateway, reason: &str) {
    let started = Instant::now();
    let reply = gateway.client().send(&new_instance()).await;
    let took = started.elapsed();
    reply.assert_code("000005");
    assert_eq!(
        reply.json()["resultMsg"],
        "internal error",
        "generic message only"
    );
    assert!(!String::from_utf8_lossy(&reply.body).contains("SECRET-ORDER"));
    assert!(
        took < Duration::from_millis(1_500 + 500),
        "answered within the deadline, took {took:?}"
    );
    let metrics = gateway.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            &format!(r#"koogate_rejections_total{{reason="{reason}"}}"#)
        ),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            r#"koogate_requests_total{activity="newInstance",result_code="000005"}"#
        ),
        1.0
    );
}

#[tokio::test]
async fn an_unreachable_upstream_gives_000005() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let placeholder = Upstream::start(Behaviour::App).await;
    let mut options = Options::new(&placeholder);
    options.upstream_url = format!("http://127.0.0.1:{port}/gone");
    let gateway = TestGateway::start_with(options).await;
    expect_internal_error(&gateway, "upstream_unreachable").await;
    let metrics = gateway.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            r#"koogate_upstream_failures_total{reason="upstream_unreachable",route="app"}"#
        ),
        1.0
    );
}

#[tokio::test]
async fn an_upstream_slower_than_the_deadline_gives_000005_at_the_deadline() {
    let upstream = Upstream::start(Behaviour::Slow(
        Duration::from_secs(4),
        r#"{"instanceId":"late"}"#.into(),
    ))
    .await;
    let gateway = TestGateway::start(&upstream).await;
    let started = Instant::now();
    expect_internal_error(&gateway, "upstream_timeout").await;
    assert!(
        started.elapsed() >= Duration::from_millis(1_400),
        "waited for the 1.5 s deadline"
    );
    assert_eq!(upstream.count(), 1);
}

#[tokio::test]
async fn a_route_timeout_shorter_than_the_deadline_applies() {
    let upstream = Upstream::start(Behaviour::Slow(
        Duration::from_millis(800),
        r#"{"instanceId":"late"}"#.into(),
    ))
    .await;
    let mut options = Options::new(&upstream);
    options.extra_toml = "timeout_ms = 200".into();
    let gateway = TestGateway::start_with(options).await;
    let started = Instant::now();
    expect_internal_error(&gateway, "upstream_timeout").await;
    assert!(started.elapsed() < Duration::from_millis(700));
}

#[tokio::test]
async fn an_upstream_500_gives_000005() {
    let upstream = Upstream::start(Behaviour::Answer(500, r#"{"instanceId":"x"}"#.into())).await;
    let gateway = TestGateway::start(&upstream).await;
    expect_internal_error(&gateway, "upstream_status").await;
}

#[tokio::test]
async fn a_non_json_answer_gives_000005() {
    let upstream = Upstream::start(Behaviour::Answer(
        200,
        "<html>Welcome to nginx!</html>".into(),
    ))
    .await;
    let gateway = TestGateway::start(&upstream).await;
    expect_internal_error(&gateway, "upstream_invalid_answer").await;
}

#[tokio::test]
async fn an_answer_breaking_the_contract_gives_000005() {
    for body in [
        r#"{}"#,
        r#"{"resultCode":"123456","instanceId":"x"}"#,
        r#"[{"instanceId":"x"}]"#,
    ] {
        let upstream = Upstream::start(Behaviour::Answer(200, body.into())).await;
        let gateway = TestGateway::start(&upstream).await;
        expect_internal_error(&gateway, "upstream_invalid_answer").await;
    }
}
