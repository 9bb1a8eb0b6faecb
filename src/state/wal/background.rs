//! Work kept off the request path and off the writer: snapshots after a segment closes, and removing expired
//! segments (their records leave the index first, found by reading the segment, never by scanning the index).

use super::index::key_hash;
use super::log::{head, scan, segment_path};
use super::{snapshot, SegmentInfo, Shared};
use crate::clock::Clock;
use std::collections::BTreeMap;
use std::sync::{mpsc, Arc};

pub(super) enum Task {
    /// Every segment before `next` is closed: snapshot the index.
    Snapshot {
        next: u64,
        segments: BTreeMap<u64, SegmentInfo>,
    },
    /// Every entry of this segment is past retention.
    Expire { segment: u64 },
}

pub(super) fn run(
    shared: Arc<Shared>,
    clock: Arc<dyn Clock>,
    retention_ms: u64,
    tasks: mpsc::Receiver<Task>,
) {
    while let Ok(first) = tasks.recv() {
        // Snapshots that queued up behind a slow one are superseded by the newest: take only that one.
        let mut queued = vec![first];
        queued.extend(tasks.try_iter());
        let newest = queued
            .iter()
            .rposition(|t| matches!(t, Task::Snapshot { .. }));
        for (i, task) in queued.into_iter().enumerate() {
            match task {
                Task::Snapshot { .. } if Some(i) != newest => {}
                task => handle(&shared, &*clock, retention_ms, task),
            }
        }
    }
}

fn handle(shared: &Shared, clock: &dyn Clock, retention_ms: u64, task: Task) {
    match task {
        Task::Snapshot { next, segments } => {
            if !shared.indexes_records {
                return;
            }
            let now = clock.now_ms();
            let nonces = shared.nonces.live(now);
            let contents = snapshot::Contents {
                next,
                segments: &segments,
                index: &shared.index,
                oldest_ms: now.saturating_sub(retention_ms),
                nonces: &nonces,
            };
            match snapshot::write(&*shared.fs, &shared.dir, &contents) {
                Ok(path) => tracing::debug!(path = %path.display(), "snapshot written"),
                Err(e) => tracing::warn!(error = %e, "cannot write a snapshot"),
            }
        }
        Task::Expire { segment } => expire(shared, segment),
    }
}

fn expire(shared: &Shared, segment: u64) {
    let path = segment_path(&shared.dir, segment);
    if shared.indexes_records {
        let scanned = scan(&*shared.fs, &path, 0, |_, _, payload| {
            if let Some((key, _)) = head(payload).and_then(|h| h.record) {
                shared.index.remove_in(&key_hash(&key), segment);
            }
        });
        if let Err(e) = scanned {
            tracing::warn!(error = %e, path = %path.display(), "cannot read an expired segment");
        }
    }
    let removed = shared
        .fs
        .remove(&path)
        .and_then(|()| shared.fs.sync_dir(&shared.dir));
    match removed {
        Ok(()) => tracing::info!(path = %path.display(), "expired log segment removed"),
        Err(e) => {
            tracing::warn!(error = %e, path = %path.display(), "cannot remove an expired segment")
        }
    }
}
