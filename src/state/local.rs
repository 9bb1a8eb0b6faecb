//! The local backend: redb for nonces and idempotency records, a JSON-lines journal, and one writer thread that
//! commits whatever has queued up in one transaction and one `fsync` per file (group commit).

use super::journal::{JournalEntry, JournalWriter};
use super::{StoreError, StoredRecord};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

const NONCES: TableDefinition<&str, u64> = TableDefinition::new("nonces");
const RECORDS: TableDefinition<&str, &[u8]> = TableDefinition::new("idempotency");
/// Most commits folded into one transaction.
const MAX_BATCH: usize = 512;
/// How often expired nonces, old records and old journal files are purged.
const PURGE_EVERY: Duration = Duration::from_secs(60);

pub(super) struct Batch {
    pub nonce: Option<(String, u64)>,
    pub record: Option<(String, StoredRecord)>,
    pub entry: Option<JournalEntry>,
}

type Job = (Batch, oneshot::Sender<Result<(), String>>);

pub(super) struct LocalStore {
    /// `None` when another backend keeps nonces and records and this store writes only the journal.
    db: Option<Arc<Database>>,
    jobs: Option<mpsc::Sender<Job>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Drop for LocalStore {
    /// Stops the writer after it has written everything queued, so the database file is closed (and can be
    /// reopened) once the store is gone.
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

fn failed(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Failed(Box::new(e))
}

impl LocalStore {
    /// Opens the journal and, when `with_database`, the redb file for nonces and records.
    pub fn open(
        data_dir: &Path,
        retention_ms: u64,
        with_database: bool,
    ) -> Result<Self, StoreError> {
        crate::private_fs::create_dir_all(data_dir).map_err(failed)?;
        let db = if with_database {
            let path = data_dir.join("state.redb");
            crate::private_fs::create_if_missing(&path).map_err(failed)?;
            let db = Arc::new(Database::create(path).map_err(failed)?);
            let txn = db.begin_write().map_err(failed)?;
            txn.open_table(NONCES).map_err(failed)?;
            txn.open_table(RECORDS).map_err(failed)?;
            txn.commit().map_err(failed)?;
            Some(db)
        } else {
            None
        };
        let journal = JournalWriter::open(data_dir).map_err(failed)?;
        let (jobs, queue) = mpsc::channel::<Job>();
        let writer_db = db.clone();
        let writer = std::thread::Builder::new()
            .name("koogate-store".into())
            .spawn(move || writer(writer_db, journal, queue, retention_ms))
            .map_err(failed)?;
        Ok(Self {
            db,
            jobs: Some(jobs),
            writer: Some(writer),
        })
    }

    /// Nonces still inside their window, to restore replay protection after a restart.
    pub fn live_nonces(&self, now_ms: u64) -> Result<Vec<(String, u64)>, StoreError> {
        let Some(db) = &self.db else {
            return Ok(Vec::new());
        };
        let txn = db.begin_read().map_err(failed)?;
        let table = txn.open_table(NONCES).map_err(failed)?;
        let mut live = Vec::new();
        for item in table.iter().map_err(failed)? {
            let (key, expires) = item.map_err(failed)?;
            if expires.value() >= now_ms {
                live.push((key.value().to_owned(), expires.value()));
            }
        }
        Ok(live)
    }

    pub fn record(&self, key: &str) -> Result<Option<StoredRecord>, StoreError> {
        let Some(db) = &self.db else { return Ok(None) };
        let txn = db.begin_read().map_err(failed)?;
        let table = txn.open_table(RECORDS).map_err(failed)?;
        let Some(bytes) = table.get(key).map_err(failed)? else {
            return Ok(None);
        };
        serde_json::from_slice(bytes.value())
            .map(Some)
            .map_err(|_| StoreError::Corrupt)
    }

    pub async fn commit(&self, batch: Batch) -> Result<(), StoreError> {
        let (done, wait) = oneshot::channel();
        let jobs = self.jobs.as_ref().ok_or(StoreError::Stopped)?;
        jobs.send((batch, done)).map_err(|_| StoreError::Stopped)?;
        match wait.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(StoreError::Failed(message.into())),
            Err(_) => Err(StoreError::Stopped),
        }
    }
}

/// The writer thread: waits for work, takes everything queued, writes the journal lines (one `fdatasync`), then
/// the nonces and records (one redb commit), then acknowledges every caller.
fn writer(
    db: Option<Arc<Database>>,
    mut journal: JournalWriter,
    queue: mpsc::Receiver<Job>,
    retention_ms: u64,
) {
    let mut last_purge = Instant::now();
    while let Ok(first) = queue.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let result = write(db.as_deref(), &mut journal, &jobs);
        if let Err(e) = &result {
            tracing::error!(error = %e, "state store write failed");
        }
        for (_, done) in jobs {
            let _ = done.send(result.clone());
        }
        if last_purge.elapsed() >= PURGE_EVERY {
            last_purge = Instant::now();
            if let Err(e) = purge(db.as_deref(), &journal, retention_ms) {
                tracing::warn!(error = %e, "state store purge failed");
            }
        }
    }
}

/// The journal's `fdatasync` and the redb commit run side by side (they touch different files); both must
/// succeed before any caller is acknowledged.
fn write(db: Option<&Database>, journal: &mut JournalWriter, jobs: &[Job]) -> Result<(), String> {
    let entries: Vec<JournalEntry> = jobs.iter().filter_map(|(b, _)| b.entry.clone()).collect();
    std::thread::scope(|scope| {
        let journal_written = scope.spawn(|| {
            journal
                .append(&entries)
                .map_err(|e| format!("journal: {e}"))
        });
        let committed = match db {
            Some(db) => commit(db, jobs).map_err(|e| format!("state.redb: {e}")),
            None => Ok(()),
        };
        let journal_written = journal_written
            .join()
            .unwrap_or_else(|_| Err("journal writer panicked".into()));
        journal_written.and(committed)
    })
}

fn commit(db: &Database, jobs: &[Job]) -> Result<(), Box<dyn std::error::Error>> {
    let txn = db.begin_write()?;
    {
        let mut nonces = txn.open_table(NONCES)?;
        let mut records = txn.open_table(RECORDS)?;
        for (batch, _) in jobs {
            if let Some((key, expires)) = &batch.nonce {
                nonces.insert(key.as_str(), *expires)?;
            }
            if let Some((key, record)) = &batch.record {
                records.insert(key.as_str(), serde_json::to_vec(record)?.as_slice())?;
            }
        }
    }
    txn.commit()?;
    Ok(())
}

fn purge(
    db: Option<&Database>,
    journal: &JournalWriter,
    retention_ms: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    let now_ms = crate::clock::Clock::now_ms(&crate::clock::SystemClock);
    let cutoff = now_ms.saturating_sub(retention_ms);
    if let Some(db) = db {
        let txn = db.begin_write()?;
        {
            txn.open_table(NONCES)?
                .retain(|_, expires| expires >= now_ms)?;
            txn.open_table(RECORDS)?.retain(|_, bytes| {
                serde_json::from_slice::<StoredRecord>(bytes)
                    .map(|r| r.at_ms >= cutoff)
                    .unwrap_or(false)
            })?;
        }
        txn.commit()?;
    }
    let oldest_kept =
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(cutoff) * 1_000_000)
            .ok()
            .and_then(crate::protocol::timefmt::rfc3339)
            .unwrap_or_default();
    journal.purge(oldest_kept.get(..10).unwrap_or(""))?;
    Ok(())
}
