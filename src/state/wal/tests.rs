//! Durability of the log, proved on a file layer that forgets every unsynced byte at a "power cut": an
//! acknowledged answer must survive it, an unacknowledged one may not, and a restart rebuilds the same indexes.

use super::fs::lossy::LossyFs;
use super::*;
use crate::clock::ManualClock;
use crate::state::tests::{call, NOW};
use crate::state::{Commit, Record};
use std::time::Duration;

const RETENTION_MS: u64 = 3_600_000;

struct Opened {
    store: WalStore,
    nonces: NonceCache,
    gauge: prometheus::IntGauge,
}

fn open(fs: &LossyFs, clock: &Arc<ManualClock>, segment_bytes: u64) -> Opened {
    let nonces = NonceCache::new(
        crate::state::replay::ReplayCapacity {
            v1: 10_000,
            v2: 10_000,
        },
        [(), ()].map(|()| crate::state::replay::ReplayGauges {
            entries: gauge(),
            capacity: gauge(),
        }),
    );
    let records = gauge();
    let store = WalStore::open(WalSettings {
        fs: Arc::new(fs.clone()),
        data_dir: "/data".into(),
        retention_ms: RETENTION_MS,
        clock: clock.clone(),
        full: true,
        max_records: 100_000,
        segment_bytes,
        nonces: nonces.clone(),
        records_gauge: records.clone(),
        sealer: crate::state::seal::Sealer::from_text(&"11".repeat(32)).unwrap(),
    })
    .unwrap();
    Opened {
        store,
        nonces,
        gauge: records,
    }
}

fn gauge() -> prometheus::IntGauge {
    prometheus::IntGauge::new("g", "test").unwrap()
}

fn commit(key: &str, at_ms: u64) -> Commit {
    Commit {
        nonce: Some((
            crate::state::replay::ReplayKey::of(&call(&format!("nonce-{key}"), NOW)),
            at_ms + 60_000,
        )),
        record: Some((
            key.to_owned(),
            Record {
                activity: "newInstance".into(),
                fingerprint: String::new(),
                at_ms,
                answer: format!("answer-{key}").into_bytes(),
            },
        )),
        entry: None,
    }
}

async fn found(store: &WalStore, key: &str) -> bool {
    store
        .lookup(key)
        .await
        .unwrap()
        .is_some_and(|r| r.answer == format!("answer-{key}").as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_acknowledged_answer_is_lost_when_unsynced_bytes_are_dropped() {
    let fs = LossyFs::default();
    let clock = Arc::new(ManualClock::new(NOW));
    let opened = open(&fs, &clock, 4_096);
    let store = Arc::new(opened.store);
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..300 {
        let (store, nonces) = (store.clone(), opened.nonces.clone());
        calls.spawn(async move {
            let key = format!("k{i}");
            // As the gateway does: the replay check remembers the key, the commit makes it durable.
            let checked = nonces.check_and_remember(&call(&format!("nonce-{key}"), NOW), NOW);
            assert_eq!(checked, Ok(()));
            store.append(commit(&key, NOW), NOW).await.map(|()| key)
        });
    }
    let mut acknowledged = Vec::new();
    while let Some(result) = calls.join_next().await {
        acknowledged.push(result.unwrap().unwrap());
    }
    let syncs = fs.syncs();
    assert!(syncs <= 300, "one sync per group, not per call: {syncs}");
    assert!(fs.dir_syncs() >= 2, "new segments are linked durably");
    drop(store);
    fs.power_cut();

    let reopened = open(&fs, &clock, 4_096);
    for key in &acknowledged {
        assert!(
            found(&reopened.store, key).await,
            "{key} was acknowledged but is gone"
        );
    }
    assert_eq!(reopened.gauge.get(), 300);
    assert_eq!(
        reopened
            .nonces
            .check_and_remember(&call("nonce-k7", NOW), NOW),
        Err(crate::state::replay::ReplayError::Replayed),
        "replay keys survive too"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_is_acknowledged_only_after_its_sync() {
    let fs = LossyFs::default();
    let clock = Arc::new(ManualClock::new(NOW));
    let store = Arc::new(open(&fs, &clock, 1 << 20).store);
    fs.hold_syncs(true);
    let pending = {
        let store = store.clone();
        tokio::spawn(async move { store.append(commit("held", NOW), NOW).await })
    };
    let early = tokio::time::timeout(Duration::from_millis(200), async {
        while !pending.is_finished() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(early.is_err(), "acknowledged before its sync");
    let syncs = fs.syncs();
    fs.hold_syncs(false);
    pending.await.unwrap().unwrap();
    assert!(fs.syncs() > syncs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sync_is_reported_and_its_entry_is_not_indexed() {
    let fs = LossyFs::default();
    let clock = Arc::new(ManualClock::new(NOW));
    let store = open(&fs, &clock, 1 << 20).store;
    store.append(commit("good", NOW), NOW).await.unwrap();
    fs.fail_syncs(true);
    let failed = store.append(commit("bad", NOW), NOW).await.unwrap_err();
    // Typed all the way down (issue 10 item 7): store error → log error naming the segment → the io error.
    let mut chain = vec![failed.to_string()];
    let mut source = std::error::Error::source(&failed);
    while let Some(e) = source {
        chain.push(e.to_string());
        source = e.source();
    }
    assert!(chain.len() >= 3, "{chain:?}");
    assert!(
        chain[1].starts_with("cannot sync log segment /data/wal/"),
        "{chain:?}"
    );
    assert_eq!(
        chain.last().map(String::as_str),
        Some("injected sync failure")
    );
    assert!(!store.health().is_healthy());
    assert_eq!(store.lookup("bad").await.unwrap(), None);
    fs.fail_syncs(false);
    store.append(commit("after", NOW), NOW).await.unwrap();
    assert!(store.health().is_healthy(), "recovers by itself");
    drop(store);
    fs.power_cut();
    let reopened = open(&fs, &clock, 1 << 20).store;
    assert!(found(&reopened, "good").await && found(&reopened, "after").await);
    assert_eq!(reopened.lookup("bad").await.unwrap(), None);
}

/// A full disk: the failed write takes the store down, and it stays down (`/readyz` false) while the disk is full,
/// even with no call arriving, although a sync of nothing succeeds; it comes back by itself once space returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_keeps_the_store_down_until_writes_succeed_again_without_a_call() {
    let fs = LossyFs::default();
    let clock = Arc::new(ManualClock::new(NOW));
    let store = open(&fs, &clock, 1 << 20).store;
    store.append(commit("good", NOW), NOW).await.unwrap();
    fs.fill_disk(true);
    let failed = store.append(commit("bad", NOW), NOW).await.unwrap_err();
    assert!(format!("{failed:?}").contains("StorageFull"), "{failed:?}");
    assert!(!store.health().is_healthy());
    // The writer looks every second: after three looks the disk is still full, so the store is still down.
    tokio::time::sleep(Duration::from_millis(3_200)).await;
    assert!(!store.health().is_healthy(), "up again on a full disk");
    fs.fill_disk(false);
    let started = std::time::Instant::now();
    while !store.health().is_healthy() {
        assert!(started.elapsed() < Duration::from_secs(5), "never up again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let files = fs.list(Path::new("/data/wal")).unwrap();
    assert!(!files.iter().any(|f| f.starts_with("probe")), "{files:?}");
    store.append(commit("after", NOW), NOW).await.unwrap();
    assert!(found(&store, "good").await && found(&store, "after").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_reads_the_snapshot_plus_the_tail_and_keeps_the_newest_record() {
    let fs = LossyFs::default();
    let clock = Arc::new(ManualClock::new(NOW));
    let store = open(&fs, &clock, 2_048).store;
    for i in 0..100 {
        store
            .append(commit(&format!("k{i}"), NOW), NOW)
            .await
            .unwrap();
    }
    let mut newer = commit("k1", NOW + 5);
    if let Some((_, r)) = &mut newer.record {
        r.answer = b"answer-newer".to_vec();
    }
    store.append(newer, NOW).await.unwrap();
    drop(store);
    let files = fs.list(Path::new("/data/wal")).unwrap();
    assert!(
        files.iter().any(|f| f.starts_with("snapshot-")),
        "{files:?}"
    );
    fs.power_cut();
    let reopened = open(&fs, &clock, 2_048).store;
    assert!(found(&reopened, "k99").await);
    let k1 = reopened.lookup("k1").await.unwrap().unwrap();
    assert_eq!(k1.answer, b"answer-newer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_segments_expire_after_retention_and_their_records_leave_the_index() {
    let fs = LossyFs::default();
    let clock = Arc::new(ManualClock::new(NOW));
    let opened = open(&fs, &clock, 1_024);
    let store = opened.store;
    for i in 0..20 {
        store
            .append(commit(&format!("old{i}"), NOW), NOW)
            .await
            .unwrap();
    }
    clock.advance(RETENTION_MS + SEGMENT_AGE_MS);
    let later = NOW + RETENTION_MS + SEGMENT_AGE_MS;
    store.append(commit("new", later), later).await.unwrap();
    // Removal happens on the background thread; give it a bounded moment.
    for _ in 0..200 {
        if store.shared.index.len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(store.shared.index.len(), 1, "only the new record is left");
    assert!(found(&store, "new").await);
    let segments = log::segment_ids(&fs, Path::new("/data/wal")).unwrap();
    assert!(segments.len() <= 3, "old segments removed: {segments:?}");
}

#[test]
fn a_torn_tail_is_ignored_and_the_next_entry_lands_in_a_new_segment() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let fs = LossyFs::default();
        let clock = Arc::new(ManualClock::new(NOW));
        let store = open(&fs, &clock, 1 << 20).store;
        store.append(commit("before", NOW), NOW).await.unwrap();
        drop(store);
        let dir = Path::new("/data/wal");
        let last = *log::segment_ids(&fs, dir).unwrap().last().unwrap();
        // A crash mid-write: half a frame at the end.
        let (mut file, _) = fs.open_append(&log::segment_path(dir, last)).unwrap();
        file.append(&[200, 0, 0, 0, 1, 2]).unwrap();
        file.sync().unwrap();
        let store = open(&fs, &clock, 1 << 20).store;
        store.append(commit("after", NOW), NOW).await.unwrap();
        drop(store);
        let store = open(&fs, &clock, 1 << 20).store;
        assert!(found(&store, "before").await && found(&store, "after").await);
    });
}

use std::path::{Path, PathBuf};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_record_cap_new_operations_are_refused_and_recorded_ones_still_answered() {
    let fs = LossyFs::default();
    let clock = Arc::new(ManualClock::new(NOW));
    let mut opened = open(&fs, &clock, 1 << 20);
    opened.store.max_records = 2;
    let store = opened.store;
    store.append(commit("a", NOW), NOW).await.unwrap();
    store.append(commit("b", NOW), NOW).await.unwrap();
    assert!(matches!(store.lookup("c").await, Err(StoreError::Full)));
    assert!(
        found(&store, "a").await,
        "retries of recorded operations still work"
    );
    assert_eq!(
        opened.gauge.get(),
        2,
        "koogate_store_records shows the fill level"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_reads_the_snapshot_and_only_the_segments_after_it() {
    let fs = LossyFs::default();
    let clock = Arc::new(ManualClock::new(NOW));
    let opened = open(&fs, &clock, 2_048);
    for i in 0..100 {
        let key = format!("k{i}");
        let checked = opened
            .nonces
            .check_and_remember(&call(&format!("nonce-{key}"), NOW), NOW);
        assert_eq!(checked, Ok(()));
        opened.store.append(commit(&key, NOW), NOW).await.unwrap();
    }
    drop(opened);
    let dir = Path::new("/data/wal");
    let before = log::segment_ids(&fs, dir).unwrap();
    let segments = before.len();
    fs.take_reads();
    let reopened = open(&fs, &clock, 2_048);
    let mut read: Vec<PathBuf> = fs
        .take_reads()
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    read.dedup();
    assert!(segments >= 10, "{segments} segments");
    // Only the segments from the newest snapshot's `next` on (snapshots are rate-limited: a few segments).
    let newest = fs
        .list(dir)
        .unwrap()
        .iter()
        .filter_map(|n| n.strip_prefix("snapshot-")?.strip_suffix(".bin"))
        .filter_map(|id| u64::from_str_radix(id, 16).ok())
        .max()
        .expect("a snapshot");
    let expected: Vec<PathBuf> = before
        .into_iter()
        .filter(|id| *id >= newest)
        .map(|id| log::segment_path(dir, id))
        .collect();
    assert!(read.len() < segments / 2, "read again: {read:?}");
    assert!(
        read.iter().all(|p| expected.contains(p)),
        "read again: {read:?}, expected {expected:?}"
    );
    assert_eq!(reopened.gauge.get(), 100);
    // k0's replay key sits in the first segment, which the restart did not read: it came from the snapshot.
    assert_eq!(
        reopened
            .nonces
            .check_and_remember(&call("nonce-k0", NOW), NOW),
        Err(crate::state::replay::ReplayError::Replayed)
    );
    assert!(found(&reopened.store, "k0").await);
}

/// A retry's record is read from the disk, which may stall: never on the runtime's own thread.
#[tokio::test]
async fn a_retry_lookup_reads_the_log_off_the_runtime_thread() {
    let fs = LossyFs::default();
    let clock = Arc::new(ManualClock::new(NOW));
    let store = open(&fs, &clock, 1 << 20).store;
    store.append(commit("k", NOW), NOW).await.unwrap();
    fs.take_reads();
    assert!(found(&store, "k").await);
    let reads = fs.take_reads();
    assert!(!reads.is_empty(), "the record was read from the log");
    let runtime_thread = std::thread::current().id();
    assert!(reads.iter().all(|(_, thread)| *thread != runtime_thread));
}

/// Snapshots rewrite the whole index, so they are rate-limited: one is taken only once the closed segments since the
/// last hold at least its size. With many records and small segments (a large store with a quiet hourly segment),
/// snapshots write no more than the log itself (one per segment wrote about ten times the log here), and a restart
/// still finds every record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_write_no_more_than_the_log_when_the_index_is_large_against_a_segment() {
    let fs = LossyFs::default();
    let clock = Arc::new(ManualClock::new(NOW));
    let store = open(&fs, &clock, 2_048).store;
    for i in 0..400 {
        store
            .append(commit(&format!("k{i}"), NOW), NOW)
            .await
            .unwrap();
    }
    drop(store);
    let (log_bytes, snapshot_bytes) = fs.bytes_written();
    let snapshot = snapshot::estimated_len(400, 0) as usize;
    let segments = log::segment_ids(&fs, Path::new("/data/wal")).unwrap().len();
    assert!(segments >= 40, "{segments} segments");
    assert!(snapshot_bytes > 0, "a snapshot was taken");
    assert!(
        snapshot_bytes <= log_bytes + snapshot,
        "snapshots wrote {snapshot_bytes} bytes for {log_bytes} bytes of log"
    );
    fs.power_cut();
    let reopened = open(&fs, &clock, 2_048);
    assert_eq!(reopened.gauge.get(), 400);
    assert!(found(&reopened.store, "k0").await && found(&reopened.store, "k399").await);
}
