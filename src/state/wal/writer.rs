//! The log's one writer thread: takes every call queued since the last group, appends their frames with one write
//! and one `fdatasync`, indexes them, and only then acknowledges each caller (group commit). Between groups it
//! rotates segments (by size and age, syncing the directory) and hands expired segments to the background thread.

use super::background::Task;
use super::fs::AppendFile;
use super::index::{KeyHash, Location};
use super::log::segment_path;
use super::{SegmentInfo, Shared, WalError};
use crate::clock::Clock;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::Duration;
use tokio::sync::oneshot;

/// Most calls folded into one group.
const MAX_GROUP: usize = 1024;
/// How often the writer looks at rotation, expiry and recovery when no call arrives.
const MAINTENANCE_EVERY: Duration = Duration::from_secs(1);
/// The file the writer writes to learn whether a failed disk takes writes again (see [`Writer::probe`]).
const PROBE_FILE: &str = "probe";
/// A page's worth, so a file system with no free block refuses it.
const PROBE_BYTES: usize = 4096;

/// One call's frame and what the index learns once it is durable.
pub(super) struct Job {
    pub frame: Vec<u8>,
    pub at_ms: u64,
    /// The record's key digest and creation time.
    pub record: Option<(KeyHash, u64)>,
    pub done: oneshot::Sender<Result<(), Arc<WalError>>>,
}

/// When a segment is closed and a new one started.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub segment_bytes: u64,
    pub segment_age_ms: u64,
}

/// The segment being appended to.
pub(super) struct Current {
    pub id: u64,
    pub file: Box<dyn AppendFile>,
    pub len: u64,
    pub info: SegmentInfo,
    pub opened_ms: u64,
    /// A failed write could not be cut back: the next group starts a new segment.
    pub broken: bool,
}

pub(super) struct Writer {
    pub shared: Arc<Shared>,
    pub clock: Arc<dyn Clock>,
    pub retention_ms: u64,
    pub limits: Limits,
    pub current: Current,
    pub closed: BTreeMap<u64, SegmentInfo>,
    /// Bytes of the closed segments since the last snapshot was asked for.
    pub unsnapshotted: u64,
    pub background: mpsc::Sender<Task>,
}

impl Writer {
    pub fn run(mut self, queue: mpsc::Receiver<Job>) {
        let mut buf = Vec::new();
        loop {
            match queue.recv_timeout(MAINTENANCE_EVERY) {
                Ok(first) => {
                    let mut jobs = vec![first];
                    while jobs.len() < MAX_GROUP {
                        match queue.try_recv() {
                            Ok(job) => jobs.push(job),
                            Err(_) => break,
                        }
                    }
                    self.write_group(jobs, &mut buf);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            self.maintain();
        }
    }

    /// One write and one `fdatasync` for the whole group; callers hear back only after both.
    fn write_group(&mut self, jobs: Vec<Job>, buf: &mut Vec<u8>) {
        buf.clear();
        for job in &jobs {
            buf.extend_from_slice(&job.frame);
        }
        let full =
            self.current.len > 0 && self.current.len + buf.len() as u64 > self.limits.segment_bytes;
        let result = if self.current.broken || full {
            self.rotate()
        } else {
            Ok(())
        }
        .and_then(|()| self.append(buf));
        let result = match result {
            Ok(start) => {
                self.index(&jobs, start);
                self.shared.healthy.store(true, Ordering::SeqCst);
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, source = ?std::error::Error::source(&e), "log write failed");
                self.shared.healthy.store(false, Ordering::SeqCst);
                Err(Arc::new(e))
            }
        };
        for job in jobs {
            let _ = job.done.send(result.clone());
        }
    }

    /// Appends and syncs; returns where the bytes start. A failure cuts the segment back to what was durable.
    fn append(&mut self, buf: &[u8]) -> Result<u64, WalError> {
        let start = self.current.len;
        let path = || segment_path(&self.shared.dir, self.current.id);
        let written = self
            .current
            .file
            .append(buf)
            .map_err(|source| WalError::Write {
                path: path(),
                source,
            })
            .and_then(|()| {
                self.current.file.sync().map_err(|source| WalError::Sync {
                    path: path(),
                    source,
                })
            });
        match written {
            Ok(()) => {
                self.current.len += buf.len() as u64;
                Ok(start)
            }
            Err(e) => {
                if self.current.file.truncate(start).is_err() {
                    self.current.broken = true;
                }
                Err(e)
            }
        }
    }

    fn index(&mut self, jobs: &[Job], start: u64) {
        let mut offset = start;
        for job in jobs {
            let info = &mut self.current.info;
            info.max_at_ms = info.max_at_ms.max(job.at_ms);
            if let Some((hash, at_ms)) = job.record {
                let location = Location {
                    segment: self.current.id,
                    offset,
                    len: job.frame.len() as u32,
                    at_ms,
                };
                self.shared.index.insert(hash, location);
            }
            offset += job.frame.len() as u64;
        }
    }

    /// Starts a new segment (its directory entry synced) and asks for a snapshot covering the ones before it.
    fn rotate(&mut self) -> Result<(), WalError> {
        let id = self.current.id + 1;
        let dir = &self.shared.dir;
        let path = segment_path(dir, id);
        let (file, len) = self
            .shared
            .fs
            .open_append(&path)
            .map_err(|source| WalError::Create {
                path: path.clone(),
                source,
            })?;
        self.shared
            .fs
            .sync_dir(dir)
            .map_err(|source| WalError::SyncDir {
                path: dir.clone(),
                source,
            })?;
        let old = std::mem::replace(
            &mut self.current,
            Current {
                id,
                file,
                len,
                info: SegmentInfo::default(),
                opened_ms: self.clock.now_ms(),
                broken: false,
            },
        );
        self.closed.insert(old.id, old.info);
        self.unsnapshotted += old.len;
        if self.snapshot_due() {
            self.unsnapshotted = 0;
            let _ = self.background.send(Task::Snapshot {
                next: id,
                segments: self.closed.clone(),
            });
        }
        Ok(())
    }

    /// A snapshot rewrites the whole index: it is taken only once the closed segments it would spare a restart
    /// from reading hold at least as many bytes as the snapshot itself. Snapshots then never write more than the
    /// log does (a store with 1M records and a quiet hourly segment no longer rewrites 44 MB an hour), and a
    /// restart reads at most about one snapshot's worth of log besides the snapshot.
    fn snapshot_due(&self) -> bool {
        let snapshot =
            super::snapshot::estimated_len(self.shared.index.len(), self.shared.nonces.len());
        self.unsnapshotted >= snapshot
    }

    /// Age-based rotation, expiry of whole segments, and recovery after a failed write.
    fn maintain(&mut self) {
        let now = self.clock.now_ms();
        let old = self.current.len > 0
            && now.saturating_sub(self.current.opened_ms) >= self.limits.segment_age_ms;
        if old || self.current.broken {
            if let Err(e) = self.rotate() {
                tracing::warn!(error = %e, "cannot start a new log segment");
                self.shared.healthy.store(false, Ordering::SeqCst);
            }
        }
        while let Some((&id, info)) = self.closed.first_key_value() {
            if info.max_at_ms.saturating_add(self.retention_ms) >= now {
                break;
            }
            self.closed.remove(&id);
            let _ = self.background.send(Task::Expire { segment: id });
        }
        if !self.shared.healthy.load(Ordering::SeqCst) && !self.current.broken {
            match self.probe() {
                Ok(()) => {
                    tracing::info!("the log can be written again");
                    self.shared.healthy.store(true, Ordering::SeqCst);
                }
                Err(e) => tracing::debug!(error = %e, "the log still cannot be written"),
            }
        }
    }

    /// Whether the disk takes writes again, asked while the store is down. A sync with nothing to write succeeds
    /// on a full file system, so the probe writes (and syncs, and removes) a small file next to the segments: only
    /// then can the next group be expected to succeed, and only then does `/readyz` come back.
    fn probe(&mut self) -> std::io::Result<()> {
        self.current.file.sync()?;
        let path = self.shared.dir.join(PROBE_FILE);
        self.shared.fs.write_atomic(&path, &[0u8; PROBE_BYTES])?;
        self.shared.fs.remove(&path)
    }
}
