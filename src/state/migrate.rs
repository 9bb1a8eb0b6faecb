//! One-time migration from a v1 local store (`state.redb` plus `journal/<day>.jsonl`) into the log.
//!
//! The v1 data is written as log segments into `wal.migrating/`, each synced; renaming that directory to `wal/`
//! is the commit point; then `state.redb` and `journal/` are renamed with a `.v1-migrated` suffix (kept for the
//! operator to delete). A crash before the commit point redoes the migration; after it, only the renames.
//! Records are keyed again with the call's generation (issue 10 item 4): a v1 key did not say which generation
//! made it, so each record is imported under both, which keeps the old behaviour for exactly those records.

use super::journal::{read_v1, Filter};
use super::replay::ReplayKey;
use super::wal::log::{encode, record_key, segment_name, LogEntry};
use super::wal::SEGMENT_BYTES;
use super::{StoreError, StoredRecord};
use crate::clock::Clock;
use crate::protocol::Generation;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use std::io::Write;
use std::path::Path;

const NONCES: TableDefinition<&str, u64> = TableDefinition::new("nonces");
const RECORDS: TableDefinition<&str, &[u8]> = TableDefinition::new("idempotency");
/// Suffix given to the v1 files once migrated.
const MIGRATED: &str = ".v1-migrated";

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("cannot read the v1 store state.redb")]
    Redb(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("cannot read the v1 journal")]
    Journal(#[source] std::io::Error),
    #[error("cannot write the migrated log")]
    Write(#[source] std::io::Error),
}

fn redb_error(e: impl std::error::Error + Send + Sync + 'static) -> MigrateError {
    MigrateError::Redb(Box::new(e))
}

/// Migrates `data_dir` if it holds a v1 store; does nothing otherwise.
pub fn migrate_if_needed(data_dir: &Path, clock: &dyn Clock) -> Result<(), StoreError> {
    let redb = data_dir.join("state.redb");
    if !redb.exists() {
        return Ok(());
    }
    let wal = data_dir.join("wal");
    if !wal.exists() {
        let count = write_segments(data_dir, &redb, clock.now_ms()).map_err(StoreError::failed)?;
        tracing::info!(entries = count, "migrated the v1 store into the log");
    }
    let finish = || -> std::io::Result<()> {
        std::fs::rename(&redb, data_dir.join(format!("state.redb{MIGRATED}")))?;
        let journal = data_dir.join("journal");
        if journal.exists() {
            std::fs::rename(&journal, data_dir.join(format!("journal{MIGRATED}")))?;
        }
        std::fs::File::open(data_dir)?.sync_all()
    };
    finish().map_err(|e| StoreError::failed(MigrateError::Write(e)))
}

/// Writes the v1 journal, records and live replay keys as segments, then renames them into place.
fn write_segments(data_dir: &Path, redb: &Path, now_ms: u64) -> Result<usize, MigrateError> {
    let staging = data_dir.join("wal.migrating");
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(MigrateError::Write)?;
    }
    std::fs::create_dir_all(&staging).map_err(MigrateError::Write)?;
    let mut out = Segments {
        dir: &staging,
        next: 0,
        buf: Vec::new(),
        count: 0,
    };
    for entry in
        read_v1(&data_dir.join("journal"), &Filter::default()).map_err(MigrateError::Journal)?
    {
        out.push(LogEntry {
            at_ms: entry.at_ms,
            journal: Some(entry),
            ..LogEntry::default()
        })?;
    }
    let db = redb::Database::open(redb).map_err(redb_error)?;
    let txn = db.begin_read().map_err(redb_error)?;
    for item in txn
        .open_table(RECORDS)
        .map_err(redb_error)?
        .iter()
        .map_err(redb_error)?
    {
        let (key, bytes) = item.map_err(redb_error)?;
        let Ok(record) = serde_json::from_slice::<StoredRecord>(bytes.value()) else {
            continue;
        };
        for key in with_generations(key.value()) {
            out.push(LogEntry {
                at_ms: record.at_ms,
                record: Some((record_key(&key), record.clone())),
                ..LogEntry::default()
            })?;
        }
    }
    for item in txn
        .open_table(NONCES)
        .map_err(redb_error)?
        .iter()
        .map_err(redb_error)?
    {
        let (key, expires) = item.map_err(redb_error)?;
        // A key not in the verifier's form (`v2:` and 64 hex digits) can never match a call: nothing to keep.
        if let Some(key) = ReplayKey::parse(key.value()).filter(|_| expires.value() >= now_ms) {
            out.push(LogEntry {
                at_ms: now_ms,
                nonce: Some((key, expires.value())),
                ..LogEntry::default()
            })?;
        }
    }
    out.flush()?;
    let sync = |dir: &Path| std::fs::File::open(dir).and_then(|d| d.sync_all());
    sync(&staging).map_err(MigrateError::Write)?;
    std::fs::rename(&staging, data_dir.join("wal")).map_err(MigrateError::Write)?;
    sync(data_dir).map_err(MigrateError::Write)?;
    Ok(out.count)
}

/// A v1 key `[namespace, parts]` as the keys both generations use now, `[namespace, generation, parts]`.
pub fn with_generations(v1_key: &str) -> Vec<String> {
    match serde_json::from_str::<serde_json::Value>(v1_key) {
        Ok(serde_json::Value::Array(parts)) if parts.len() == 2 => [Generation::V1, Generation::V2]
            .iter()
            .map(|g| serde_json::json!([parts[0], g.name(), parts[1]]).to_string())
            .collect(),
        _ => vec![v1_key.to_owned()],
    }
}

/// Frames cut into segment files of about [`SEGMENT_BYTES`], each synced.
struct Segments<'a> {
    dir: &'a Path,
    next: u64,
    buf: Vec<u8>,
    count: usize,
}

impl Segments<'_> {
    fn push(&mut self, entry: LogEntry) -> Result<(), MigrateError> {
        encode(&entry, &mut self.buf).map_err(|e| MigrateError::Write(e.into()))?;
        self.count += 1;
        if self.buf.len() as u64 >= SEGMENT_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), MigrateError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let path = self.dir.join(segment_name(self.next));
        let mut file = std::fs::File::create(path).map_err(MigrateError::Write)?;
        file.write_all(&self.buf)
            .and_then(|()| file.sync_all())
            .map_err(MigrateError::Write)?;
        self.next += 1;
        self.buf.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::metrics::Metrics;
    use crate::state::journal::{read, JournalEntry};
    use crate::state::seal::Sealer;
    use crate::state::tests::{settings, NOW};
    use crate::state::{StateStore, StoreKind};
    use std::sync::Arc;

    /// A v1 store as the previous version left it: a record sealed without a key id, a live nonce, a journal line.
    fn write_v1(dir: &Path, sealer: &Sealer) {
        let sealed = sealer.seal(b"{\"instanceId\":\"i-1\"}");
        let legacy = sealed.split_once('.').unwrap().1.to_owned();
        let record = serde_json::json!({"activity":"newInstance","fingerprint":"","at_ms":NOW,"sealed":legacy});
        let db = redb::Database::create(dir.join("state.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut records = txn.open_table(RECORDS).unwrap();
            let bytes = serde_json::to_vec(&record).unwrap();
            records
                .insert(r#"["real",["order","O-1"]]"#, bytes.as_slice())
                .unwrap();
            txn.open_table(NONCES)
                .unwrap()
                .insert(format!("v2:{}", "ab".repeat(32)).as_str(), NOW + 60_000)
                .unwrap();
        }
        txn.commit().unwrap();
        std::fs::create_dir_all(dir.join("journal")).unwrap();
        let entry = JournalEntry {
            at: "2027-01-15T08:00:00Z".into(),
            at_ms: NOW,
            request_id: "r-1".into(),
            order_id: Some("O-1".into()),
            ..JournalEntry::default()
        };
        let line = serde_json::to_string(&entry).unwrap() + "\n";
        std::fs::write(dir.join("journal/2027-01-15.jsonl"), line).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_v1_store_is_migrated_once_with_records_for_both_generations() {
        let dir = tempfile::tempdir().unwrap();
        let settings = settings(StoreKind::Local {
            data_dir: dir.path().to_owned(),
        });
        write_v1(dir.path(), settings.sealer.as_ref().unwrap());
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(NOW));
        let metrics = Metrics::new().unwrap();
        let store = StateStore::open(settings.clone(), &metrics, clock.clone()).unwrap();
        for generation in ["v1", "v2"] {
            let key = format!(r#"["real","{generation}",["order","O-1"]]"#);
            let record = store.lookup(&key, NOW).await.unwrap().expect(generation);
            assert_eq!(record.answer, b"{\"instanceId\":\"i-1\"}");
        }
        assert_eq!(
            (metrics
                .replay_cache_entries
                .with_label_values(&["v1"])
                .get()
                + metrics
                    .replay_cache_entries
                    .with_label_values(&["v2"])
                    .get()),
            1,
            "the live nonce"
        );
        drop(store);
        assert!(!dir.path().join("state.redb").exists());
        assert!(dir.path().join("state.redb.v1-migrated").exists());
        assert!(dir.path().join("journal.v1-migrated").exists());
        let journal = read(dir.path(), &Filter::default()).unwrap();
        assert_eq!(journal.len(), 1, "{journal:?}");
        assert_eq!(journal[0].request_id, "r-1");
        // A second start does not migrate again.
        let store = StateStore::open(settings, &metrics, clock).unwrap();
        drop(store);
        assert_eq!(read(dir.path(), &Filter::default()).unwrap().len(), 1);
    }
}
