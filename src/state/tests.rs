//! The same tests for every backend: memory, the local log, and Redis when `redis-server` is installed.

use super::*;
use crate::clock::ManualClock;
use crate::protocol::keys::{AccessKey, AccessKeys};
use crate::protocol::v2::{signed_query, verify, SignedQuery};
use bytes::Bytes;

const WINDOW: Duration = Duration::from_secs(60);
const RETENTION: Duration = Duration::from_secs(3_600);
pub(crate) const NOW: u64 = 1_800_000_000_000;

pub(crate) fn call(nonce: &str, ts: u64) -> Verified {
    let keys = AccessKeys::new(vec![AccessKey::new("k", "key")]).unwrap();
    let q = SignedQuery::parse(&signed_query(b"key", nonce, ts, b"{}")).unwrap();
    verify(&keys, q, Bytes::from_static(b"{}"), ts, WINDOW).unwrap()
}

pub(crate) fn record(answer: &str, at_ms: u64) -> Record {
    Record {
        activity: "newInstance".into(),
        fingerprint: String::new(),
        answer: answer.as_bytes().to_vec(),
        at_ms,
    }
}

pub(crate) fn settings(kind: StoreKind) -> StoreSettings {
    StoreSettings {
        kind,
        retention: RETENTION,
        replay_capacity: replay::ReplayCapacity {
            v1: 1_000,
            v2: 1_000,
        },
        max_records: 1_000,
        commit_timeout: Duration::from_secs(2),
        sealer: Some(Sealer::from_text(&"11".repeat(32)).unwrap()),
    }
}

/// A redis-server on a free port, stopped on drop.
struct RedisServer(std::process::Child, u16);

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn redis_server() -> Option<RedisServer> {
    if cfg!(not(feature = "redis")) {
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = std::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .ok()?;
    Some(RedisServer(child, port))
}

/// Every backend, opened on fresh state, with whatever keeps it alive.
async fn backends() -> Vec<(&'static str, StateStore, Box<dyn std::any::Any>)> {
    let metrics = Metrics::new().unwrap();
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(NOW));
    let mut out: Vec<(&'static str, StateStore, Box<dyn std::any::Any>)> = Vec::new();
    let memory = StateStore::open(settings(StoreKind::Memory), &metrics, clock.clone()).unwrap();
    out.push(("memory", memory, Box::new(())));
    let dir = tempfile::tempdir().unwrap();
    let local = StoreKind::Local {
        data_dir: dir.path().to_owned(),
    };
    let local = StateStore::open(settings(local), &metrics, clock.clone()).unwrap();
    out.push(("local", local, Box::new(dir)));
    if let Some(server) = redis_server() {
        let dir = tempfile::tempdir().unwrap();
        let kind = StoreKind::Redis {
            url: format!("redis://127.0.0.1:{}/0", server.1),
            prefix: "t:".into(),
            timeout: Duration::from_millis(500),
            data_dir: dir.path().to_owned(),
            ca_file: None,
        };
        let store = StateStore::open(settings(kind), &metrics, clock).unwrap();
        // The server needs a moment to listen; the probe reports it.
        for _ in 0..200 {
            if store.health().is_healthy() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        out.push(("redis", store, Box::new((server, dir))));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_backend_finds_a_committed_record_until_retention_ends() {
    for (name, store, _keep) in backends().await {
        assert_eq!(store.lookup("k", NOW).await.unwrap(), None, "{name}");
        let commit = Commit {
            record: Some(("k".into(), record("{\"a\":1}", NOW))),
            ..Commit::default()
        };
        store.commit(commit, NOW).await.unwrap();
        let found = store.lookup("k", NOW).await.unwrap().unwrap();
        assert_eq!(found.answer, b"{\"a\":1}", "{name}");
        let later = NOW + RETENTION.as_millis() as u64 + 1;
        assert_eq!(store.lookup("k", later).await.unwrap(), None, "{name}");
        assert!(store.health().is_healthy(), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_backend_refuses_a_replayed_nonce() {
    for (name, store, _keep) in backends().await {
        let first = call("n-1", NOW);
        assert_eq!(
            store.check_replay(&first, NOW).await.unwrap(),
            Ok(()),
            "{name}"
        );
        assert_eq!(
            store
                .check_replay(&call("n-1", NOW), NOW + 1)
                .await
                .unwrap(),
            Err(ReplayError::Replayed),
            "{name}"
        );
        assert_eq!(
            store.check_replay(&call("n-2", NOW), NOW).await.unwrap(),
            Ok(()),
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_backend_but_memory_journals_and_keeps_answers_sealed() {
    for (name, store, _keep) in backends().await {
        assert_eq!(store.journals(), name != "memory", "{name}");
        let sealed = store.seal(b"+8613800138000");
        assert!(!sealed.contains("13800138000"), "{name}");
    }
}

#[tokio::test]
async fn a_commit_that_stalls_past_the_timeout_fails_and_marks_the_store_unhealthy() {
    let fs = wal::fs::lossy::LossyFs::default();
    let metrics = Metrics::new().unwrap();
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(NOW));
    let mut settings = settings(StoreKind::Local {
        data_dir: "/data".into(),
    });
    settings.commit_timeout = Duration::from_millis(100);
    let store = StateStore::open_on(settings, &metrics, clock, Arc::new(fs.clone())).unwrap();
    fs.hold_syncs(true);
    let started = std::time::Instant::now();
    let stalled = store.commit(Commit::default(), NOW).await;
    assert!(matches!(stalled, Err(StoreError::Timeout)), "{stalled:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "bounded");
    assert!(!store.health().is_healthy(), "a stalled store is not ready");
    fs.hold_syncs(false);
    store.commit(Commit::default(), NOW).await.unwrap();
    assert!(
        store.health().is_healthy(),
        "healthy again once a commit succeeds"
    );
}

#[tokio::test]
async fn the_memory_backend_stays_bounded() {
    let metrics = Metrics::new().unwrap();
    let mut settings = settings(StoreKind::Memory);
    settings.max_records = 10;
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(NOW));
    let store = StateStore::open(settings, &metrics, clock).unwrap();
    for i in 0..100u64 {
        let commit = Commit {
            record: Some((format!("k{i}"), record("{}", NOW + i))),
            ..Commit::default()
        };
        store.commit(commit, NOW).await.unwrap();
    }
    assert!(metrics.store_records.get() <= 10);
    assert!(
        store.lookup("k99", NOW).await.unwrap().is_some(),
        "the newest records are kept"
    );
}
