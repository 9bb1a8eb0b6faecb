//! The relay in process: per-record verdicts, deduplication, KooGallery's refusals, retries, batch sizes, token.

use super::*;
use crate::support::{metric, Behaviour, Options, TestCert, TestGateway, Upstream};
use koogate::openapi::mock::Fault;
use std::time::Instant;

async fn gateway(usage: &str) -> (TestGateway, MockOpenApi, Upstream) {
    let upstream = Upstream::start(Behaviour::Answer(200, "{}".into())).await;
    let cert = Arc::new(TestCert::new());
    let mock = mock(cert.path()).await;
    let mut options = Options::new(&upstream);
    options.extra_toml = tables(&mock, usage);
    options.dir = Some(cert);
    (TestGateway::start_with(options).await, mock, upstream)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_record_is_answered_and_only_valid_ones_reach_koogallery() {
    let (gw, mock, _up) = gateway("").await;
    let mut old = record("sn-old", "inst-1");
    old["beginTime"] = json!("2020-01-01T00:00:00Z");
    let mut no_value = record("sn-novalue", "inst-1");
    no_value.as_object_mut().unwrap().remove("usageValue");
    let mut decimals = record("sn-decimals", "inst-1");
    decimals["usageValue"] = json!("1.23456");
    let body = json!({"records": [record("sn-good", "inst-1"), old, no_value, decimals, record("sn-good2", "inst-2")]});
    let (status, answer) = post(gw.usage, None, &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (answer["accepted"].as_u64(), answer["rejected"].as_u64()),
        (Some(2), Some(3))
    );
    let results = answer["results"].as_array().unwrap();
    let verdicts: Vec<(&str, &str)> = results
        .iter()
        .map(|r| {
            (
                r["meteringSn"].as_str().unwrap(),
                r["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        verdicts,
        [
            ("sn-good", "accepted"),
            ("sn-old", "rejected"),
            ("sn-novalue", "rejected"),
            ("sn-decimals", "rejected"),
            ("sn-good2", "accepted")
        ]
    );
    assert_eq!(results[1]["code"], "begin_too_old");
    assert_eq!(results[2]["reason"], "usageValue is required");
    assert_eq!(results[3]["code"], "bad_usage_value");

    until("the accepted records to be acknowledged", || {
        acknowledged_sns(&mock).len() == 2
    })
    .await;
    let sent = acknowledged_sns(&mock);
    assert!(
        sent.contains_key("sn-good") && sent.contains_key("sn-good2"),
        "{sent:?}"
    );
    // The wire form: KooGallery's time format and a canonical value.
    let push: Value = serde_json::from_str(&acknowledged(&mock)[0].body).unwrap();
    let first = &push["usage_records"][0];
    assert!(first["begin_time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(first["begin_time"].as_str().unwrap().len(), 16);
    assert_eq!(first["usage_value"], "1.25");

    settled(gw.usage).await;
    // The sender counts a batch as sent right after it leaves the queue: poll, do not race it.
    let mut metrics = gw.metrics().await;
    for _ in 0..250 {
        if metric(&metrics, "koogate_usage_records_sent_total") == 2.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        metrics = gw.metrics().await;
    }
    assert_eq!(
        metric(
            &metrics,
            r#"koogate_usage_records_submitted_total{outcome="accepted"}"#
        ),
        2.0
    );
    assert_eq!(
        metric(
            &metrics,
            r#"koogate_usage_records_submitted_total{outcome="rejected"}"#
        ),
        3.0
    );
    assert_eq!(metric(&metrics, "koogate_usage_records_sent_total"), 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metering_sn_submitted_twice_is_sent_once() {
    let (gw, mock, _up) = gateway("").await;
    let body = json!({"records": [record("sn-dup", "inst-1"), record("sn-dup", "inst-1")]});
    let (_, answer) = post(gw.usage, None, &body).await;
    assert_eq!(answer["results"][0]["status"], "accepted");
    assert_eq!(answer["results"][1]["status"], "duplicate");
    until("the record to be acknowledged", || {
        acknowledged_sns(&mock).contains_key("sn-dup")
    })
    .await;
    settled(gw.usage).await;
    // Submitted again after it was sent: still a duplicate, not sent again.
    let (_, again) = post(
        gw.usage,
        None,
        &json!({"records": [record("sn-dup", "inst-1")]}),
    )
    .await;
    assert_eq!(again["results"][0]["status"], "duplicate");
    assert_eq!(again["results"][0]["state"], "sent");
    post(
        gw.usage,
        None,
        &json!({"records": [record("sn-after", "inst-1")]}),
    )
    .await;
    until("the next record", || {
        acknowledged_sns(&mock).contains_key("sn-after")
    })
    .await;
    assert_eq!(acknowledged_sns(&mock)["sn-dup"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_koogallery_refuses_is_kept_with_its_code_and_reason_and_the_rest_are_sent() {
    let (gw, mock, _up) = gateway("").await;
    mock.add_unknown_instance("inst-gone");
    let body = json!({"records": [
        record("sn-a", "inst-1"), record("sn-b", "inst-gone"), record("sn-c", "inst-1"), record("sn-d", "inst-1"),
    ]});
    let (_, answer) = post(gw.usage, None, &body).await;
    assert_eq!(answer["accepted"], 4);
    until("the good records", || acknowledged_sns(&mock).len() == 3).await;
    let s = settled(gw.usage).await;
    assert_eq!(s["queued"], 0);
    assert_eq!(s["rejected"], 1);
    let kept = &s["recentRejected"][0];
    assert_eq!(kept["meteringSn"], "sn-b");
    assert_eq!(kept["code"], "MKT.9001");
    assert!(!kept["reason"].as_str().unwrap().is_empty());
    assert!(!acknowledged_sns(&mock).contains_key("sn-b"));
    // Not retried forever: the mock sees no more pushes once everything is settled.
    let pushes = mock.calls_to(USAGE_DATA_PATH);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(mock.calls_to(USAGE_DATA_PATH), pushes);
    let metrics = gw.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            r#"koogate_usage_records_rejected_total{code="MKT.9001"}"#
        ),
        1.0
    );
    // A resubmission of the rejected record is answered with KooGallery's verdict.
    let (_, again) = post(
        gw.usage,
        None,
        &json!({"records": [record("sn-b", "inst-gone")]}),
    )
    .await;
    assert_eq!(again["results"][0]["state"], "rejected");
    assert_eq!(again["results"][0]["code"], "MKT.9001");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_are_retried_with_backoff_until_acknowledged() {
    let (gw, mock, _up) = gateway("").await;
    mock.set_fault(Fault::InternalError, Some(2));
    let started = Instant::now();
    post(
        gw.usage,
        None,
        &json!({"records": [record("sn-retry", "inst-1")]}),
    )
    .await;
    until("the record to be acknowledged", || {
        acknowledged_sns(&mock).contains_key("sn-retry")
    })
    .await;
    let pushes: Vec<Received> = mock
        .received()
        .into_iter()
        .filter(|r| r.path == USAGE_DATA_PATH)
        .collect();
    let codes: Vec<&str> = pushes.iter().map(|r| r.code.as_str()).collect();
    assert_eq!(codes, ["MKT.0999", "MKT.0999", "MKT.0000"]);
    // Backoff: at least retry_initial/2 (25 ms), then at least 50 ms more.
    assert!(
        started.elapsed() >= Duration::from_millis(75),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(acknowledged_sns(&mock)["sn-retry"], 1);
    settled(gw.usage).await;
    let metrics = gw.metrics().await;
    assert_eq!(
        metric(&metrics, r#"koogate_usage_pushes_total{outcome="retry"}"#),
        2.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_keep_the_records_queued() {
    let (gw, mock, _up) = gateway("").await;
    mock.set_fault(Fault::InvalidBodySign, None);
    post(
        gw.usage,
        None,
        &json!({"records": [record("sn-held", "inst-1")]}),
    )
    .await;
    until("a refused push", || mock.calls_to(USAGE_DATA_PATH) >= 2).await;
    let (_, s) = status(gw.usage, None).await;
    assert_eq!(
        (s["queued"].as_u64(), s["rejected"].as_u64()),
        (Some(1), Some(0))
    );
    mock.clear_fault();
    until("the record after the fix", || {
        acknowledged_sns(&mock).contains_key("sn-held")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_five_hundred_records_travel_in_batches_of_at_most_a_thousand() {
    let (gw, mock, _up) = gateway("").await;
    // Held back until all are queued, so the sender sees full batches.
    mock.set_fault(Fault::InternalError, None);
    for chunk in 0..3 {
        let records: Vec<Value> = (0..1000)
            .map(|i| chunk * 1000 + i)
            .filter(|n| *n < 2500)
            .map(|n| record(&format!("sn-{n:05}"), "inst-1"))
            .collect();
        let (status, answer) = post(gw.usage, None, &json!({ "records": records })).await;
        assert_eq!(status, 200);
        assert_eq!(answer["accepted"].as_u64().unwrap() as usize, records.len());
    }
    mock.clear_fault();
    until("all 2,500", || acknowledged_sns(&mock).len() == 2500).await;
    let sizes: Vec<usize> = acknowledged(&mock)
        .iter()
        .map(|r| {
            serde_json::from_str::<Value>(&r.body).unwrap()["usage_records"]
                .as_array()
                .unwrap()
                .len()
        })
        .collect();
    assert!(sizes.iter().all(|s| *s <= 1000), "{sizes:?}");
    assert!(sizes.contains(&1000), "{sizes:?}");
    assert!(acknowledged_sns(&mock).values().all(|n| *n == 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_off_loopback_enforces_its_bearer_token() {
    // The config names a non-loopback address (which requires the token); the test binds the socket itself.
    let (gw, mock, _up) = gateway("listen = \"0.0.0.0:9902\"\ntoken_file = \"usage-token\"").await;
    let body = json!({"records": [record("sn-tok", "inst-1")]});
    for token in [
        None,
        Some("wrong-token-0123456789"),
        Some(&TOKEN[..TOKEN.len() - 1]),
    ] {
        let (status, _) = post(gw.usage, token, &body).await;
        assert_eq!(status, 401, "{token:?}");
        assert_eq!(status_of(gw.usage, token).await, 401);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        mock.calls_to(USAGE_DATA_PATH),
        0,
        "refused requests must queue nothing"
    );
    let (status, answer) = post(gw.usage, Some(TOKEN), &body).await;
    assert_eq!((status, answer["accepted"].as_u64()), (200, Some(1)));
    assert_eq!(status_of(gw.usage, Some(TOKEN)).await, 200);
    until("the record", || {
        acknowledged_sns(&mock).contains_key("sn-tok")
    })
    .await;
}

/// The status once nothing is queued any more.
async fn settled(addr: SocketAddr) -> Value {
    for _ in 0..1000 {
        let (_, s) = status(addr, None).await;
        if s["queued"] == 0 {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the usage queue never emptied");
}

async fn status_of(addr: SocketAddr, token: Option<&str>) -> u16 {
    status(addr, token).await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_are_refused_whole() {
    let (gw, mock, _up) = gateway("").await;
    for body in [
        json!([1]),
        json!({"records": []}),
        json!({"records": "x"}),
        json!({"records": [], "extra": 1}),
    ] {
        let (status, answer) = post(gw.usage, None, &body).await;
        assert_eq!(status, 400, "{body}");
        assert!(answer["error"].is_string());
    }
    let too_many: Vec<Value> = (0..1001).map(|i| record(&format!("m-{i}"), "i")).collect();
    assert_eq!(
        post(gw.usage, None, &json!({ "records": too_many }))
            .await
            .0,
        400
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(mock.calls_to(USAGE_DATA_PATH), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_that_times_out_is_retried() {
    // The API client gives up after koogallery_api.timeout_ms (2000 ms in these tests).
    let (gw, mock, _up) = gateway("").await;
    mock.set_fault(Fault::Slow { ms: 2_600 }, Some(1));
    let started = Instant::now();
    post(
        gw.usage,
        None,
        &json!({"records": [record("sn-slow", "inst-1")]}),
    )
    .await;
    let s = settled(gw.usage).await;
    assert_eq!(
        (s["sent"].as_u64(), s["rejected"].as_u64()),
        (Some(1), Some(0))
    );
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // The mock records a call when it answers; the abandoned one never was.
    assert_eq!(acknowledged_sns(&mock)["sn-slow"], 1);
    let metrics = gw.metrics().await;
    assert!(metric(&metrics, r#"koogate_usage_pushes_total{outcome="retry"}"#) >= 1.0);
}
