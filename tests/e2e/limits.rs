//! Availability without credentials: idle connections cannot lock KooGallery out, refusal floods do not flood the
//! log, V1 parameter limits are parameter errors, and each generation's replay cache fills on its own.

use crate::support::process::GatewayProcess;
use crate::support::*;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

fn good() -> Call {
    let line = format!("LIMITS-{}", hex::encode(rand::random::<[u8; 4]>()));
    Call::json(
        &json!({"activity":"orderNotify","orderId":"LIMITS","orderLineId":line,"testFlag":"1"}),
    )
}

/// Opens `n` TCP connections that never send a byte, and waits until the gateway has accepted them all.
async fn hold_idle(gateway: &TestGateway, n: usize, expect_open: f64) -> Vec<TcpStream> {
    let mut idle = Vec::with_capacity(n);
    for _ in 0..n {
        idle.push(TcpStream::connect(gateway.addr).await.unwrap());
    }
    let started = Instant::now();
    while metric(
        &gateway.metrics().await,
        "koogate_connections_accepted_total",
    ) < n as f64
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "connections not accepted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        metric(&gateway.metrics().await, "koogate_connections_open"),
        expect_open
    );
    idle
}

/// Sends a good call and returns how long the answer took (connect, handshake and call).
async fn timed_good_call(gateway: &TestGateway) -> Duration {
    let started = Instant::now();
    gateway.client().send(&good()).await.assert_code("000000");
    started.elapsed()
}

/// Raises this process's soft file-descriptor limit to `wanted` (within the hard limit) when it is lower, with
/// util-linux's `prlimit` (no unsafe code): the test holds both ends of 1,200 connections.
fn ensure_fd_limit(wanted: u64) {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let Some(line) = limits.lines().find(|l| l.starts_with("Max open files")) else {
        return;
    };
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let (soft, hard) = (numbers[0], numbers.get(1).copied().unwrap_or(u64::MAX));
    if soft >= wanted {
        return;
    }
    let target = wanted.min(hard);
    let raised = std::process::Command::new("prlimit")
        .arg(format!("--pid={}", std::process::id()))
        .arg(format!("--nofile={target}:{hard}"))
        .status();
    assert!(
        raised.is_ok_and(|s| s.success()) && target >= wanted,
        "RLIMIT_NOFILE {soft} (hard {hard}) is below {wanted} and cannot be raised"
    );
}

/// The audit's case at its size: 1,200 silent TCP connections, handshake timeout long enough that none expires.
#[tokio::test]
async fn a_good_call_is_answered_within_a_second_while_1200_idle_connections_are_held() {
    ensure_fd_limit(4_096);
    let upstream = Upstream::start(Behaviour::App).await;
    let mut options = Options::new(&upstream);
    options.handshake_timeout_ms = 30_000;
    let gateway = TestGateway::start_with(options).await;
    let _idle = hold_idle(&gateway, 1_200, 1_200.0).await;
    let took = timed_good_call(&gateway).await;
    assert!(took < Duration::from_secs(1), "took {took:?}");
}

/// At the limit the oldest idle connection makes room: 150 silent connections (some finished their TLS handshake)
/// against a limit of 100 never keep a good call out.
#[tokio::test]
async fn at_the_limit_the_oldest_idle_connections_are_evicted_for_new_ones() {
    let upstream = Upstream::start(Behaviour::App).await;
    let mut options = Options::new(&upstream);
    options.handshake_timeout_ms = 30_000;
    options.server_toml = "max_connections = 100".into();
    let gateway = TestGateway::start_with(options).await;
    let tls = gateway.client();
    let handshaken = futures_util::future::join_all((0..10).map(|_| tls.connect())).await;
    let mut idle = hold_idle(&gateway, 140, 100.0).await;
    let took = timed_good_call(&gateway).await;
    assert!(took < Duration::from_secs(1), "took {took:?}");
    let metrics = gateway.metrics().await;
    // 150 idle + 1 good connection for 100 slots: the 51 oldest were evicted, the TLS ones among them.
    assert_eq!(
        metric(&metrics, "koogate_connections_evicted_total"),
        51.0,
        "{metrics}"
    );
    assert_eq!(metric(&metrics, "koogate_connections_max"), 100.0);
    assert_eq!(metric(&metrics, "koogate_connections_refused_total"), 0.0);
    // The evicted connections were closed: the oldest TCP one reads end-of-stream.
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::io::AsyncReadExt::read(&mut idle[0], &mut buf),
    );
    assert!(
        matches!(read.await, Ok(Ok(0)) | Ok(Err(_))),
        "the oldest idle connection is closed"
    );
    drop(handshaken);
}

/// A connection that is serving a request keeps its slot; a new one at the limit is closed at once, not queued.
#[tokio::test]
async fn connections_serving_requests_are_never_evicted() {
    let upstream = Upstream::start(Behaviour::Slow(
        Duration::from_millis(800),
        json!({"resultCode":"000000","resultMsg":"ok"}).to_string(),
    ))
    .await;
    let mut options = Options::new(&upstream);
    options.server_toml = "max_connections = 1".into();
    let gateway = TestGateway::start_with(options).await;
    let client = gateway.client();
    let busy = tokio::spawn(async move { client.send(&good()).await });
    while upstream.count() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut refused = TcpStream::connect(gateway.addr).await.unwrap();
    let closed = client::read_to_close(&mut refused, Duration::from_secs(2)).await;
    assert!(closed.is_empty());
    busy.await.unwrap().assert_code("000000");
    let metrics = gateway.metrics().await;
    assert_eq!(metric(&metrics, "koogate_connections_refused_total"), 1.0);
    assert_eq!(metric(&metrics, "koogate_connections_evicted_total"), 0.0);
}

/// Refused before any MAC as parameter errors: the signed message would be ambiguous, or too costly to build.
#[tokio::test]
async fn a_v1_parameter_given_twice_or_too_many_parameters_get_000002() {
    let upstream = Upstream::start(Behaviour::App).await;
    let gateway = TestGateway::start_v1(&upstream).await;
    let mut twice = Call::v1(&[("activity", "releaseInstance"), ("instanceId", "i")]);
    twice.query = Some(format!("{}&instanceId=j", twice.query.unwrap()));
    gateway.client().send(&twice).await.assert_code("000002");
    let mut many = Call::v1(&[("activity", "releaseInstance"), ("instanceId", "i")]);
    let extra: String = (0..3_000).map(|i| format!("&{i:x}=")).collect();
    many.query = Some(format!("{}{extra}", many.query.unwrap()));
    gateway.client().send(&many).await.assert_code("000002");
    assert_eq!(upstream.count(), 0);
    let metrics = gateway.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            r#"koogate_rejections_total{reason="repeated_parameter"}"#
        ),
        1.0
    );
    assert_eq!(
        metric(
            &metrics,
            r#"koogate_rejections_total{reason="query_too_large"}"#
        ),
        1.0
    );
}

/// A V1 product filling its replay cache does not stop V2 calls: each generation has its own limit.
#[tokio::test]
async fn a_full_v1_replay_cache_leaves_v2_calls_alone() {
    let upstream = Upstream::start(Behaviour::App).await;
    let mut options = Options::new(&upstream);
    options.v1_toml = "enabled = true\nreplay_cache_max_entries = 1".into();
    let gateway = TestGateway::start_with(options).await;
    let v1 = |id: &str| Call::v1(&[("activity", "releaseInstance"), ("instanceId", id)]);
    gateway.client().send(&v1("a")).await.assert_code("000000");
    gateway.client().send(&v1("b")).await.assert_code("000005");
    gateway.client().send(&good()).await.assert_code("000000");
    let metrics = gateway.metrics().await;
    assert_eq!(
        metric(&metrics, r#"koogate_replay_cache_entries{generation="v1"}"#),
        1.0
    );
    assert_eq!(
        metric(
            &metrics,
            r#"koogate_replay_cache_capacity_entries{generation="v1"}"#
        ),
        1.0
    );
    assert_eq!(
        metric(
            &metrics,
            r#"koogate_replay_cache_capacity_entries{generation="v2"}"#
        ),
        100_000.0
    );
}

/// A flood of forged calls writes a few WARN lines per second, the next line carries the suppressed count, and
/// the metric counts every refusal. The real binary, its real log.
#[tokio::test]
async fn a_flood_of_forged_calls_writes_few_log_lines_and_exact_metrics() {
    const FORGED: usize = 200;
    let upstream = Upstream::start(Behaviour::App).await;
    let dir = TestCert::new();
    let config = crate::support::process::config(&upstream.url(), "backend = \"memory\"");
    let process = GatewayProcess::spawn(dir.path(), &config, &[("TEST_KOOGATE_KEY", KEY)]);
    let client = client::Client::new(process.https, &dir.cert_pem);
    let forged = || {
        let mut call = good();
        call.key = "not-the-key".into();
        call
    };
    let started = Instant::now();
    // Over a few keep-alive connections, so the flood is fast.
    let flood = (0..4).map(|_| {
        let client = client.clone();
        async move {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(
                hyper_util::rt::TokioIo::new(client.connect().await),
            )
            .await
            .unwrap();
            tokio::spawn(conn);
            for _ in 0..FORGED / 4 {
                let call = forged();
                let request = http::Request::post(call.uri())
                    .header("host", "localhost")
                    .body(http_body_util::Full::new(bytes::Bytes::from(call.body)))
                    .unwrap();
                let response = sender.send_request(request).await.unwrap();
                http_body_util::BodyExt::collect(response.into_body())
                    .await
                    .unwrap();
            }
        }
    });
    futures_util::future::join_all(flood).await;
    let elapsed = started.elapsed();
    // One more after the window: its line reports what was suppressed.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    client.send(&forged()).await.assert_code("000001");
    let metrics = client::admin_get(process.admin, "/metrics")
        .await
        .unwrap()
        .1;
    assert_eq!(
        metric(
            &metrics,
            r#"koogate_rejections_total{reason="bad_signature"}"#
        ),
        (FORGED + 1) as f64
    );
    process.signal("-TERM");
    let (_, logs) = process.wait_with_logs();
    let refused: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == "refused" || v["fields"]["message"] == "refused")
        .collect();
    let suppressed: u64 = refused
        .iter()
        .map(|v| {
            v["suppressed"]
                .as_u64()
                .or(v["fields"]["suppressed"].as_u64())
                .unwrap_or(0)
        })
        .sum();
    // Ten lines per second at most (plus the last one), and not one refusal unaccounted for.
    let bound = 10 * (elapsed.as_secs() as usize + 2) + 1;
    assert!(
        refused.len() <= bound,
        "{} lines for {FORGED} refusals in {elapsed:?}",
        refused.len()
    );
    assert_eq!(
        refused.len() as u64 + suppressed,
        (FORGED + 1) as u64,
        "{logs}"
    );
    assert_eq!(
        metric(&metrics, "koogate_refusal_log_lines_suppressed_total"),
        (FORGED + 1 - refused.len()) as f64
    );
}
