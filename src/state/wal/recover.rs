//! Rebuilding the indexes at start (the newest snapshot's records and replay keys, then every segment it does not
//! cover), and reading one record back for a retry.

use super::index::{key_hash, Location};
use super::log::{decode, frame, head, scan, segment_ids, segment_path, RecordKey};
use super::writer::Current;
use super::{snapshot, SegmentInfo, Shared, WalError, WalSettings};
use crate::state::{StoreError, StoredRecord};
use std::collections::BTreeMap;
use std::time::Instant;

pub(super) struct Recovered {
    pub current: Current,
    pub closed: BTreeMap<u64, SegmentInfo>,
    /// Bytes of the closed segments no snapshot covers (what the next restart would read again).
    pub unsnapshotted: u64,
}

pub(super) fn recover(shared: &Shared, settings: &WalSettings) -> Result<Recovered, StoreError> {
    let started = Instant::now();
    let (fs, dir) = (&*shared.fs, &shared.dir);
    let read_error = |source| {
        StoreError::failed(WalError::Read {
            path: dir.clone(),
            source,
        })
    };
    fs.create_dir_all(dir).map_err(read_error)?;
    let now = settings.clock.now_ms();
    let snapshot = if shared.indexes_records {
        snapshot::load(fs, dir).map_err(read_error)?
    } else {
        None
    }
    .unwrap_or_default();
    let loaded_ms = started.elapsed().as_millis() as u64;
    let oldest = now.saturating_sub(settings.retention_ms);
    shared.index.reserve(snapshot.record_count());
    for (hash, location) in snapshot.records() {
        if location.at_ms >= oldest {
            shared.index.insert(hash, location);
        }
    }
    let mut nonces = 0usize;
    for (key, expires) in snapshot.nonces() {
        if expires >= now {
            shared.nonces.restore(key, expires);
            nonces += 1;
        }
    }
    let indexed_ms = started.elapsed().as_millis() as u64;
    let ids = segment_ids(fs, dir).map_err(read_error)?;
    let mut closed = BTreeMap::new();
    let mut scanned = 0usize;
    let mut unsnapshotted = 0u64;
    for &id in &ids {
        // Segments the snapshot covers are not read again: their records and live replay keys are in it.
        if let Some(info) = snapshot.segments.get(&id).filter(|_| id < snapshot.next) {
            closed.insert(id, *info);
            continue;
        }
        scanned += 1;
        let mut info = SegmentInfo::default();
        let path = segment_path(dir, id);
        unsnapshotted += scan(fs, &path, 0, |offset, len, payload| {
            let Some(head) = head(payload) else {
                return;
            };
            info.max_at_ms = info.max_at_ms.max(head.at_ms);
            if !shared.indexes_records {
                return;
            }
            if let Some((key, expires)) = head.nonce.filter(|(_, e)| *e >= now) {
                shared.nonces.restore(key, expires);
                nonces += 1;
            }
            if let Some((key, at_ms)) = head.record.filter(|(_, at)| *at >= oldest) {
                let location = Location {
                    segment: id,
                    offset,
                    len,
                    at_ms,
                };
                shared.index.insert(key_hash(&key), location);
            }
        })
        .map_err(|source| StoreError::failed(WalError::Read { path, source }))?;
        closed.insert(id, info);
    }
    // Always a fresh segment: nothing is ever appended after a torn tail.
    let id = ids.last().map_or(0, |last| last + 1);
    let path = segment_path(dir, id);
    let (file, len) = fs.open_append(&path).map_err(|source| {
        StoreError::failed(WalError::Create {
            path: path.clone(),
            source,
        })
    })?;
    fs.sync_dir(dir).map_err(|source| {
        StoreError::failed(WalError::SyncDir {
            path: dir.clone(),
            source,
        })
    })?;
    tracing::info!(
        segments = ids.len(),
        segments_read = scanned,
        records = shared.index.len(),
        replay_keys = nonces,
        snapshot_read_ms = loaded_ms,
        snapshot_indexed_ms = indexed_ms,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "log opened"
    );
    Ok(Recovered {
        current: Current {
            id,
            file,
            len,
            info: SegmentInfo::default(),
            opened_ms: now,
            broken: false,
        },
        closed,
        unsnapshotted,
    })
}

/// The record for `key` at `location`; `None` when the segment has expired meanwhile (or the 16 bytes the index
/// keeps collided: the log holds the whole digest). Blocking: called off the runtime's workers.
pub(super) fn read_record(
    shared: &Shared,
    key: &RecordKey,
    location: Location,
) -> Result<Option<StoredRecord>, StoreError> {
    let path = segment_path(&shared.dir, location.segment);
    let bytes = match shared
        .fs
        .read_at(&path, location.offset, location.len as usize)
    {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(StoreError::failed(WalError::Read { path, source })),
    };
    let (payload, _) = frame(&bytes).ok_or(StoreError::Corrupt)?;
    let entry = decode(payload).ok_or(StoreError::Corrupt)?;
    Ok(entry.record.filter(|(k, _)| k == key).map(|(_, r)| r))
}
