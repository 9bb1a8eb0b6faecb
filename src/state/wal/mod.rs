//! The local backend: one append-only log in segments under `<data_dir>/wal/`, written by one thread with group
//! commit (one write and one `fdatasync` per group; an answer leaves only after its group is durable). Replay keys
//! and a record index live in memory, rebuilt at start from the newest snapshot plus the log's tail; records are
//! read back from the log only for a retry, on a blocking thread. Old data goes by whole segments. Answers are
//! sealed before they are written. See docs/operations.md.

mod background;
pub mod fs;
mod index;
pub mod log;
mod recover;
mod snapshot;
mod writer;

use super::replay::{NonceCache, ReplayError};
use super::seal::Sealer;
use super::{Backend, BoxFuture, Commit, Health, Record, StoreError};
use crate::clock::Clock;
use crate::protocol::verified::Verified;
use fs::Fs;
use index::{key_hash, RecordIndex};
use log::{record_key, LogEntry};
use std::io;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc};
use tokio::sync::oneshot;
use writer::Job;

/// A segment is closed once it holds this much (and a snapshot taken): bounds what a restart replays.
pub const SEGMENT_BYTES: u64 = 64 << 20;
/// ... or once it is this old, so quiet stores still expire by whole segments about on time.
pub const SEGMENT_AGE_MS: u64 = 3_600_000;

/// Everything that can go wrong in the log, with the file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("cannot write log segment {path}")]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot sync log segment {path}")]
    Sync { path: PathBuf, source: io::Error },
    #[error("cannot create log segment {path}")]
    Create { path: PathBuf, source: io::Error },
    #[error("cannot sync the log directory {path}")]
    SyncDir { path: PathBuf, source: io::Error },
    #[error("cannot read {path}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot encode a log entry")]
    Encode(#[source] serde_json::Error),
    #[error("cannot start the log writer")]
    Thread(#[source] io::Error),
}

/// A segment's newest entry: when it may go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct SegmentInfo {
    pub max_at_ms: u64,
}

/// What the writer, the background thread and the readers share.
pub(super) struct Shared {
    pub fs: Arc<dyn Fs>,
    pub dir: PathBuf,
    pub index: RecordIndex,
    pub healthy: Arc<AtomicBool>,
    /// False when another backend keeps records and this log holds only the journal.
    pub indexes_records: bool,
    /// The replay keys (snapshots carry the live ones). Every key in the log was put here by the replay check
    /// before its commit, so a snapshot of this cache holds every live key of the segments it covers.
    pub nonces: NonceCache,
    /// Seals answers before they are written, opens them for a retry.
    pub sealer: Sealer,
}

/// How to open a log.
pub struct WalSettings {
    pub fs: Arc<dyn Fs>,
    pub data_dir: PathBuf,
    pub retention_ms: u64,
    pub clock: Arc<dyn Clock>,
    /// Replay keys and records live here (`false`: the journal only, for the Redis backend).
    pub full: bool,
    pub max_records: usize,
    /// [`SEGMENT_BYTES`] but in tests.
    pub segment_bytes: u64,
    pub nonces: NonceCache,
    pub records_gauge: prometheus::IntGauge,
    pub sealer: Sealer,
}

pub struct WalStore {
    shared: Arc<Shared>,
    max_records: usize,
    records_gauge: prometheus::IntGauge,
    jobs: Option<mpsc::Sender<Job>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl WalStore {
    /// Opens (or creates) the log, rebuilds the indexes and starts the writer and background threads.
    pub fn open(settings: WalSettings) -> Result<Self, StoreError> {
        let dir = settings.data_dir.join("wal");
        let shared = Arc::new(Shared {
            fs: settings.fs.clone(),
            dir: dir.clone(),
            index: RecordIndex::default(),
            healthy: Arc::new(AtomicBool::new(true)),
            indexes_records: settings.full,
            nonces: settings.nonces.clone(),
            sealer: settings.sealer.clone(),
        });
        let recovered = recover::recover(&shared, &settings)?;
        let (tasks, task_queue) = mpsc::channel();
        let (jobs, job_queue) = mpsc::channel();
        let writer = writer::Writer {
            shared: shared.clone(),
            clock: settings.clock.clone(),
            retention_ms: settings.retention_ms,
            limits: writer::Limits {
                segment_bytes: settings.segment_bytes,
                segment_age_ms: SEGMENT_AGE_MS,
            },
            current: recovered.current,
            closed: recovered.closed,
            unsnapshotted: recovered.unsnapshotted,
            background: tasks,
        };
        let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(f)
                .map_err(|e| StoreError::failed(WalError::Thread(e)))
        };
        let (bg_shared, clock, retention) = (shared.clone(), settings.clock, settings.retention_ms);
        let threads = vec![
            spawn("koogate-log", Box::new(move || writer.run(job_queue)))?,
            spawn(
                "koogate-log-bg",
                Box::new(move || background::run(bg_shared, clock, retention, task_queue)),
            )?,
        ];
        settings.records_gauge.set(shared.index.len() as i64);
        Ok(Self {
            shared,
            max_records: settings.max_records,
            records_gauge: settings.records_gauge,
            jobs: Some(jobs),
            threads,
        })
    }

    /// Appends one entry (its answer sealed) and waits until its group is durable.
    pub async fn append(&self, commit: Commit, at_ms: u64) -> Result<(), StoreError> {
        let full = self.shared.indexes_records;
        let record = commit.record.filter(|_| full).map(|(key, r)| {
            let sealed = Record {
                answer: self.shared.sealer.seal(&r.answer),
                activity: r.activity,
                fingerprint: r.fingerprint,
                at_ms: r.at_ms,
            };
            (record_key(&key), sealed)
        });
        let entry = LogEntry {
            at_ms,
            nonce: commit.nonce.filter(|_| full),
            record,
            journal: commit.entry,
        };
        let mut frame = Vec::with_capacity(512);
        log::encode(&entry, &mut frame).map_err(|e| StoreError::failed(WalError::Encode(e)))?;
        let (done, wait) = oneshot::channel();
        let job = Job {
            frame,
            at_ms,
            record: entry
                .record
                .as_ref()
                .map(|(key, r)| (key_hash(key), r.at_ms)),
            done,
        };
        let jobs = self.jobs.as_ref().ok_or(StoreError::Stopped)?;
        jobs.send(job).map_err(|_| StoreError::Stopped)?;
        let result = wait.await.map_err(|_| StoreError::Stopped)?;
        self.records_gauge.set(self.shared.index.len() as i64);
        result.map_err(StoreError::failed)
    }

    /// The record for `key`, read (and opened) on a blocking thread: a retry never waits on the disk on a worker.
    async fn read(&self, key: &str) -> Result<Option<Record>, StoreError> {
        let key = record_key(key);
        let Some(location) = self.shared.index.get(&key_hash(&key)) else {
            if self.shared.index.len() >= self.max_records {
                return Err(StoreError::Full);
            }
            return Ok(None);
        };
        let shared = self.shared.clone();
        let read = tokio::task::spawn_blocking(move || {
            let Some(stored) = recover::read_record(&shared, &key, location)? else {
                return Ok(None);
            };
            let answer = shared
                .sealer
                .open(&stored.answer)
                .map_err(|_| StoreError::Corrupt)?;
            Ok(Some(Record {
                activity: stored.activity,
                fingerprint: stored.fingerprint,
                at_ms: stored.at_ms,
                answer: answer.to_vec(),
            }))
        });
        read.await.map_err(|_| StoreError::Stopped)?
    }
}

impl WalStore {
    /// Up while writes succeed; down after a failed or timed-out one until the next succeeds.
    pub fn healthy_flag(&self) -> Arc<AtomicBool> {
        self.shared.healthy.clone()
    }
}

impl Drop for WalStore {
    /// Stops the threads after everything queued is written, so the files are closed once the store is gone.
    fn drop(&mut self) {
        drop(self.jobs.take());
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Backend for WalStore {
    fn check_replay<'a>(
        &'a self,
        call: &'a Verified,
        now_ms: u64,
    ) -> BoxFuture<'a, Result<Result<(), ReplayError>, StoreError>> {
        Box::pin(async move { Ok(self.shared.nonces.check_and_remember(call, now_ms)) })
    }

    fn lookup<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Record>, StoreError>> {
        Box::pin(self.read(key))
    }

    fn commit<'a>(&'a self, commit: Commit, now_ms: u64) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.append(commit, now_ms))
    }

    fn health(&self) -> Health {
        Health::of([self.shared.healthy.clone()])
    }

    fn journals(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests;
