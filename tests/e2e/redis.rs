//! Several replicas sharing one real `redis-server`: replays and retries are recognised across processes, and a
//! Redis outage fails closed (signed `000005`, `/readyz` false) until Redis returns.

use crate::support::process::{GatewayProcess, RedisServer};
use crate::support::*;
use serde_json::json;
use std::time::{Duration, Instant};

fn config(upstream: &Upstream, redis: &RedisServer, data_dir: &str) -> String {
    let store = format!(
        "backend = \"redis\"\nredis_url = \"{}\"\nredis_timeout_ms = 300\ndata_dir = \"{data_dir}\"\n\
         journal_key_env = \"KOOGATE_JOURNAL_KEY\"",
        redis.url()
    );
    crate::support::process::config(&upstream.url(), &store)
}

async fn ready(admin: std::net::SocketAddr) -> bool {
    client::admin_get(admin, "/readyz")
        .await
        .map(|(s, _)| s == 200)
        .unwrap_or(false)
}

async fn wait_ready(admin: std::net::SocketAddr, want: bool) {
    let started = Instant::now();
    while ready(admin).await != want {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "readiness never became {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn replicas_sharing_redis_behave_as_one_and_fail_closed_while_it_is_down() {
    let mut redis = RedisServer::start();
    let upstream = Upstream::start(Behaviour::Unique).await;
    let dir = TestCert::new();
    let env = [
        ("TEST_KOOGATE_KEY", KEY),
        ("KOOGATE_JOURNAL_KEY", JOURNAL_KEY),
    ];
    let a = GatewayProcess::spawn(dir.path(), &config(&upstream, &redis, "data-a"), &env);
    let b = GatewayProcess::spawn(dir.path(), &config(&upstream, &redis, "data-b"), &env);
    wait_ready(a.admin, true).await;
    wait_ready(b.admin, true).await;
    let (to_a, to_b) = (
        client::Client::new(a.https, &dir.cert_pem),
        client::Client::new(b.https, &dir.cert_pem),
    );

    // A retry sent to the other replica gets the same instance without a second provisioning.
    let order = json!({"activity":"newInstance","businessId":"b","orderId":"REPLICA-1","orderLineId":"REPLICA-1-000001"});
    let first = to_a.send(&Call::json(&order)).await;
    first.assert_code("000000");
    let retry = to_b.send(&Call::json(&order)).await;
    retry.assert_code("000000");
    assert_eq!(retry.json()["instanceId"], first.json()["instanceId"]);
    assert_eq!(upstream.count(), 1);

    // A replay sent to the other replica is refused.
    let call = Call::json(&json!({"activity":"orderNotify","orderId":"R","orderLineId":"R-1"}));
    to_a.send(&call).await.assert_code("000000");
    to_b.send(&call).await.assert_code("000001");
    assert_eq!(upstream.count(), 2);

    // Concurrent duplicates on both replicas: one provisioning.
    let storm = json!({"activity":"newInstance","businessId":"b","orderId":"REPLICA-2","orderLineId":"REPLICA-2-000001"});
    let replies = futures_util::future::join_all((0..20).map(|i| {
        let client = if i % 2 == 0 {
            to_a.clone()
        } else {
            to_b.clone()
        };
        let call = Call::json(&storm);
        async move { client.send(&call).await }
    }))
    .await;
    let ids: std::collections::HashSet<String> = replies
        .iter()
        .map(|r| r.json()["instanceId"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(upstream.count(), 3);

    // Redis goes away: signed 000005, nothing forwarded, readiness false on both replicas.
    redis.stop();
    let before = upstream.count();
    let reply = to_a
        .send(&Call::json(
            &json!({"activity":"orderNotify","orderId":"DOWN","orderLineId":"DOWN-1"}),
        ))
        .await;
    reply.assert_code("000005");
    assert_eq!(
        upstream.count(),
        before,
        "fail closed: nothing reaches the upstream without replay protection"
    );
    wait_ready(a.admin, false).await;
    wait_ready(b.admin, false).await;
    let metrics = client::admin_get(a.admin, "/metrics").await.unwrap().1;
    assert!(
        metric(
            &metrics,
            r#"koogate_rejections_total{reason="store_failed"}"#
        ) >= 1.0
    );

    // Redis is back: both replicas recover by themselves.
    redis.restart();
    wait_ready(a.admin, true).await;
    wait_ready(b.admin, true).await;
    let reply = to_b
        .send(&Call::json(
            &json!({"activity":"orderNotify","orderId":"UP","orderLineId":"UP-1"}),
        ))
        .await;
    reply.assert_code("000000");
    assert_eq!(upstream.count(), before + 1);
    assert_eq!(a.terminate(), Some(0));
    assert_eq!(b.terminate(), Some(0));
}

#[tokio::test]
async fn a_redis_reached_over_tls_with_a_private_ca_works() {
    let cert = TestCert::new();
    let redis = RedisServer::start_tls(&cert.cert_path(), &cert.path().join("key.pem"));
    let upstream = Upstream::start(Behaviour::Unique).await;
    let mut options = Options::new(&upstream);
    options.store_toml = format!(
        "backend = \"redis\"\nredis_url = \"{}\"\nredis_ca_file = \"{}\"\ndata_dir = \"data\"\njournal_key_env = \"TEST_JOURNAL_KEY\"",
        redis.url(),
        cert.cert_path().display()
    );
    let gateway = TestGateway::start_with(options).await;
    wait_ready(gateway.admin, true).await;
    let order = json!({"activity":"newInstance","businessId":"b","orderId":"TLS-1","orderLineId":"TLS-1-000001"});
    let call = Call::json(&order);
    let first = gateway.client().send(&call).await;
    first.assert_code("000000");
    gateway.client().send(&call).await.assert_code("000001");
    let retry = gateway.client().send(&Call::json(&order)).await;
    assert_eq!(retry.json()["instanceId"], first.json()["instanceId"]);
    assert_eq!(upstream.count(), 1);
}
