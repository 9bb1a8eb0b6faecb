//! The sender against a scripted KooGallery: retries, splitting, settling, and the exact body form.

use super::*;
use crate::clock::SystemClock;
use std::sync::Mutex;

/// Answers pushes from a script (then `MKT.0000`), refusing any batch that contains `bad_sn` with `MKT.9001`.
struct Scripted {
    script: Mutex<Vec<(u16, &'static str)>>,
    bad_sn: Option<&'static str>,
    bodies: Mutex<Vec<serde_json::Value>>,
}

impl UsagePush for Scripted {
    fn push(
        &self,
        body: Vec<u8>,
    ) -> Pin<Box<dyn Future<Output = Result<PushAnswer, PushFailure>> + Send + '_>> {
        Box::pin(async move {
            let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
            self.bodies.lock().unwrap().push(value.clone());
            let next = {
                let mut script = self.script.lock().unwrap();
                (!script.is_empty()).then(|| script.remove(0))
            };
            let (status, code) = match next {
                Some(step) => step,
                None if self.bad_sn.is_some_and(|bad| body_has(&value, bad)) => (500, "MKT.9001"),
                None => (200, "MKT.0000"),
            };
            Ok(PushAnswer {
                status,
                body: format!(r#"{{"error_code":"{code}","error_msg":"scripted"}}"#).into_bytes(),
            })
        })
    }
}

fn body_has(value: &serde_json::Value, sn: &str) -> bool {
    value["usage_records"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["metering_sn"] == sn)
}

fn record(sn: &str) -> WireRecord {
    WireRecord {
        begin_time: "20220809T080000Z".into(),
        end_time: "20220809T090000Z".into(),
        instance_id: "7f141bf1-aec8-4859-8323-fb3a8ad50721".into(),
        metering_sn: sn.into(),
        record_time: "20220809T091000Z".into(),
        relate_pkg_instance: None,
        usage_value: "99".into(),
    }
}

async fn run_until_empty(queue: &Queue, push: Arc<Scripted>, batch: usize) -> UsageMetrics {
    let metrics = UsageMetrics::register(&prometheus::Registry::new()).unwrap();
    let sender = Sender {
        queue: queue.clone(),
        push,
        metrics: metrics.clone(),
        clock: Arc::new(SystemClock),
        settings: SenderSettings {
            batch_max_records: batch,
            batch_linger: Duration::ZERO,
            retry_initial: Duration::from_millis(2),
            retry_max: Duration::from_millis(20),
            retention: Duration::from_secs(86_400 * 30),
        },
        wake: Arc::new(Notify::new()),
    };
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(sender.run(stopped));
    for _ in 0..500 {
        if queue.snapshot(0).unwrap().queued == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.send(true).unwrap();
    task.await.unwrap();
    metrics
}

#[test]
fn the_body_is_the_reference_body() {
    let queued = vec![(
        0,
        Queued {
            record: record("sn-0001"),
            accepted_ms: 0,
        },
    )];
    assert_eq!(
        String::from_utf8(body(&queued)).unwrap(),
        r#"{"usage_records":[{"begin_time":"20220809T080000Z","end_time":"20220809T090000Z","instance_id":"7f141bf1-aec8-4859-8323-fb3a8ad50721","metering_sn":"sn-0001","record_time":"20220809T091000Z","usage_value":"99"}]}"#
    );
}

#[test]
fn backoff_doubles_up_to_the_cap_with_bounded_jitter() {
    let (initial, max) = (Duration::from_millis(100), Duration::from_millis(1_000));
    assert_eq!(backoff(initial, max, 0, 0.0), Duration::from_millis(50));
    assert_eq!(backoff(initial, max, 0, 1.0), Duration::from_millis(100));
    assert_eq!(backoff(initial, max, 2, 0.0), Duration::from_millis(200));
    assert_eq!(backoff(initial, max, 3, 1.0), Duration::from_millis(800));
    assert_eq!(backoff(initial, max, 4, 1.0), max);
    assert_eq!(backoff(initial, max, 60, 0.5), Duration::from_millis(750));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_are_retried_until_success() {
    let dir = tempfile::tempdir().unwrap();
    let queue = Queue::open(dir.path()).unwrap();
    queue.offer(&[record("a"), record("b")], 1, 10).unwrap();
    let push = Arc::new(Scripted {
        script: Mutex::new(vec![(500, "MKT.0999"), (503, "none")]),
        bad_sn: None,
        bodies: Mutex::default(),
    });
    let metrics = run_until_empty(&queue, push.clone(), 10).await;
    assert_eq!(push.bodies.lock().unwrap().len(), 3);
    let snapshot = queue.snapshot(5).unwrap();
    assert_eq!(
        (
            snapshot.queued,
            snapshot.sent_total,
            snapshot.rejected_total
        ),
        (0, 2, 0)
    );
    assert_eq!(metrics.sent.get(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_record_is_isolated_and_the_others_are_sent() {
    let dir = tempfile::tempdir().unwrap();
    let queue = Queue::open(dir.path()).unwrap();
    let records: Vec<_> = ["a", "b", "c", "d", "e"]
        .iter()
        .map(|s| record(s))
        .collect();
    queue.offer(&records, 1, 10).unwrap();
    let push = Arc::new(Scripted {
        script: Mutex::default(),
        bad_sn: Some("c"),
        bodies: Mutex::default(),
    });
    run_until_empty(&queue, push.clone(), 10).await;
    let snapshot = queue.snapshot(5).unwrap();
    assert_eq!((snapshot.sent_total, snapshot.rejected_total), (4, 1));
    assert_eq!(snapshot.recent_rejected[0].metering_sn, "c");
    assert_eq!(snapshot.recent_rejected[0].code, "MKT.9001");
    assert_eq!(snapshot.recent_rejected[0].reason, "scripted");
    // Every acknowledged record was acknowledged exactly once.
    let bodies = push.bodies.lock().unwrap();
    for sn in ["a", "b", "d", "e"] {
        let acknowledged = bodies
            .iter()
            .filter(|b| body_has(b, sn) && !body_has(b, "c"))
            .count();
        assert_eq!(acknowledged, 1, "{sn}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_never_exceed_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let queue = Queue::open(dir.path()).unwrap();
    let records: Vec<_> = (0..25).map(|i| record(&format!("sn-{i}"))).collect();
    queue.offer(&records, 1, 100).unwrap();
    let push = Arc::new(Scripted {
        script: Mutex::default(),
        bad_sn: None,
        bodies: Mutex::default(),
    });
    run_until_empty(&queue, push.clone(), 10).await;
    let sizes: Vec<usize> = push
        .bodies
        .lock()
        .unwrap()
        .iter()
        .map(|b| b["usage_records"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [10, 10, 5]);
}
