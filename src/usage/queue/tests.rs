//! The queue keeps what it accepted across reopening, deduplicates by `metering_sn`, and keeps rejections.

use super::*;

fn record(sn: &str) -> WireRecord {
    WireRecord {
        begin_time: "20261202T020000Z".into(),
        end_time: "20261202T030000Z".into(),
        instance_id: "inst-1".into(),
        metering_sn: sn.into(),
        record_time: "20261202T031000Z".into(),
        relate_pkg_instance: None,
        usage_value: "1".into(),
    }
}

#[test]
fn accepted_records_survive_reopening_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let queue = Queue::open(dir.path()).unwrap();
    let offers = queue.offer(&[record("a"), record("b")], 1_000, 10).unwrap();
    assert_eq!(offers, vec![Offer::Accepted, Offer::Accepted]);
    drop(queue);
    let queue = Queue::open(dir.path()).unwrap();
    let peeked = queue.peek(10).unwrap();
    let sns: Vec<_> = peeked
        .iter()
        .map(|(_, q)| q.record.metering_sn.as_str())
        .collect();
    assert_eq!(sns, ["a", "b"]);
    assert_eq!(queue.snapshot(5).unwrap().oldest_accepted_ms, Some(1_000));
}

#[test]
fn a_metering_sn_is_queued_once_even_after_it_was_sent() {
    let dir = tempfile::tempdir().unwrap();
    let queue = Queue::open(dir.path()).unwrap();
    let offers = queue.offer(&[record("a"), record("a")], 1, 10).unwrap();
    assert_eq!(offers[0], Offer::Accepted);
    assert!(matches!(
        offers[1],
        Offer::Duplicate(SnState::Queued { .. })
    ));
    let batch = queue.peek(10).unwrap();
    queue.mark_sent(&batch, 5).unwrap();
    let again = queue.offer(&[record("a")], 6, 10).unwrap();
    assert_eq!(again, vec![Offer::Duplicate(SnState::Sent { at_ms: 5 })]);
    let snapshot = queue.snapshot(5).unwrap();
    assert_eq!((snapshot.queued, snapshot.sent_total), (0, 1));
}

#[test]
fn a_full_queue_refuses_more() {
    let dir = tempfile::tempdir().unwrap();
    let queue = Queue::open(dir.path()).unwrap();
    let offers = queue.offer(&[record("a"), record("b")], 1, 1).unwrap();
    assert_eq!(offers, vec![Offer::Accepted, Offer::Full]);
    // The refused one was not remembered: it can be offered again once there is room.
    queue.mark_sent(&queue.peek(1).unwrap(), 2).unwrap();
    assert_eq!(
        queue.offer(&[record("b")], 3, 1).unwrap(),
        vec![Offer::Accepted]
    );
}

#[test]
fn a_rejection_is_kept_with_its_code_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let queue = Queue::open(dir.path()).unwrap();
    queue.offer(&[record("a"), record("b")], 1, 10).unwrap();
    let (seq, entry) = queue.peek(1).unwrap().remove(0);
    queue
        .mark_rejected(seq, &entry, "MKT.9001", "instance not found", 7)
        .unwrap();
    drop(queue);
    let queue = Queue::open(dir.path()).unwrap();
    let snapshot = queue.snapshot(5).unwrap();
    assert_eq!((snapshot.queued, snapshot.rejected_total), (1, 1));
    assert_eq!(snapshot.recent_rejected[0].code, "MKT.9001");
    assert_eq!(snapshot.recent_rejected[0].metering_sn, "a");
    assert!(matches!(
        queue.offer(&[record("a")], 8, 10).unwrap()[0],
        Offer::Duplicate(SnState::Rejected { .. })
    ));
}

#[test]
fn purge_forgets_old_outcomes_but_never_queued_records() {
    let dir = tempfile::tempdir().unwrap();
    let queue = Queue::open(dir.path()).unwrap();
    queue.offer(&[record("a"), record("b")], 1, 10).unwrap();
    queue.mark_sent(&queue.peek(1).unwrap(), 2).unwrap();
    queue.purge(100).unwrap();
    assert_eq!(
        queue.offer(&[record("a"), record("b")], 101, 10).unwrap()[0],
        Offer::Accepted
    );
    assert!(matches!(
        queue.offer(&[record("b")], 101, 10).unwrap()[0],
        Offer::Duplicate(SnState::Queued { .. })
    ));
}

/// A disk that keeps only what was synced: `write` lands in a page cache, `sync_data` makes it durable, and a
/// crash throws the cache away (what a power loss does; `kill -9` would keep the cache).
#[derive(Debug, Clone, Default)]
struct LossyDisk {
    durable: Arc<std::sync::Mutex<Vec<u8>>>,
    cache: Arc<std::sync::Mutex<Vec<u8>>>,
}

impl LossyDisk {
    /// The disk as it is after a power loss: only the synced bytes.
    fn after_crash(&self) -> LossyDisk {
        let durable = self.durable.lock().unwrap().clone();
        LossyDisk {
            durable: Arc::new(std::sync::Mutex::new(durable.clone())),
            cache: Arc::new(std::sync::Mutex::new(durable)),
        }
    }
}

impl redb::StorageBackend for LossyDisk {
    fn len(&self) -> Result<u64, std::io::Error> {
        Ok(self.cache.lock().unwrap().len() as u64)
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        let cache = self.cache.lock().unwrap();
        let start = offset as usize;
        let bytes = cache
            .get(start..start + out.len())
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::UnexpectedEof))?;
        out.copy_from_slice(bytes);
        Ok(())
    }
    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        self.cache.lock().unwrap().resize(len as usize, 0);
        Ok(())
    }
    fn sync_data(&self) -> Result<(), std::io::Error> {
        *self.durable.lock().unwrap() = self.cache.lock().unwrap().clone();
        Ok(())
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        let mut cache = self.cache.lock().unwrap();
        let end = offset as usize + data.len();
        if cache.len() < end {
            cache.resize(end, 0);
        }
        cache[offset as usize..end].copy_from_slice(data);
        Ok(())
    }
}

fn open_on(disk: &LossyDisk) -> Database {
    Database::builder()
        .create_with_backend(disk.clone())
        .unwrap()
}

#[test]
fn accepted_records_survive_a_power_loss_right_after_the_offer() {
    let disk = LossyDisk::default();
    let queue = Queue::with_database(open_on(&disk)).unwrap();
    let offers = queue.offer(&[record("a"), record("b")], 1, 10).unwrap();
    assert_eq!(offers, vec![Offer::Accepted, Offer::Accepted]);
    let crashed = disk.after_crash();
    drop(queue);
    let queue = Queue::with_database(open_on(&crashed)).unwrap();
    assert_eq!(queue.peek(10).unwrap().len(), 2);
    assert!(matches!(
        queue.offer(&[record("a")], 2, 10).unwrap()[0],
        Offer::Duplicate(SnState::Queued { .. })
    ));
}

#[test]
fn the_lossy_disk_does_lose_what_was_not_synced() {
    // The control for the test above: a commit without fsync is gone after the crash.
    let disk = LossyDisk::default();
    let queue = Queue::with_database(open_on(&disk)).unwrap();
    let mut txn = queue.db.begin_write().unwrap();
    txn.set_durability(redb::Durability::None).unwrap();
    {
        let mut table = txn.open_table(QUEUED).unwrap();
        let entry = json(&Queued {
            record: record("x"),
            accepted_ms: 1,
        })
        .unwrap();
        table.insert(7, entry.as_slice()).unwrap();
    }
    txn.commit().unwrap();
    assert_eq!(queue.peek(10).unwrap().len(), 1);
    let crashed = disk.after_crash();
    drop(queue);
    let queue = Queue::with_database(open_on(&crashed)).unwrap();
    assert!(queue.peek(10).unwrap().is_empty());
}
