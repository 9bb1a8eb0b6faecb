//! Rebuilding the indexes at start (newest snapshot, then every segment after it, then the replay keys of older
//! segments that may still hold live ones), and reading one record back for a retry.

use super::index::{key_hash, Location};
use super::log::{frame, scan, segment_ids, segment_path, IndexView, LogEntry};
use super::writer::Current;
use super::{snapshot, SegmentInfo, Shared, WalError, WalSettings};
use crate::state::{StoreError, StoredRecord};
use std::collections::BTreeMap;
use std::time::Instant;

pub(super) struct Recovered {
    pub current: Current,
    pub closed: BTreeMap<u64, SegmentInfo>,
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
    let oldest = now.saturating_sub(settings.retention_ms);
    for (hash, location) in &snapshot.records {
        if location.at_ms >= oldest {
            shared.index.insert(*hash, *location);
        }
    }
    let ids = segment_ids(fs, dir).map_err(read_error)?;
    let mut closed = BTreeMap::new();
    let mut nonces = 0usize;
    for &id in &ids {
        let known = snapshot.segments.get(&id).filter(|_| id < snapshot.next);
        // Segments the snapshot covers are read again only for replay keys that may still be live.
        if known.is_some_and(|info| info.max_expiry_ms < now) {
            closed.insert(id, *known.unwrap_or(&SegmentInfo::default()));
            continue;
        }
        let mut info = SegmentInfo::default();
        let path = segment_path(dir, id);
        scan(fs, &path, 0, |offset, len, payload| {
            let Ok(view) = serde_json::from_slice::<IndexView>(payload) else {
                return;
            };
            info.max_at_ms = info.max_at_ms.max(view.at_ms);
            if let Some((key, expires)) = &view.nonce {
                info.max_expiry_ms = info.max_expiry_ms.max(*expires);
                if *expires >= now && shared.indexes_records {
                    settings.nonces.restore(key, *expires);
                    nonces += 1;
                }
            }
            if let (Some((key, record)), None) = (&view.record, known) {
                if record.at_ms >= oldest && shared.indexes_records {
                    let location = Location {
                        segment: id,
                        offset,
                        len,
                        at_ms: record.at_ms,
                    };
                    shared.index.insert(key_hash(key), location);
                }
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
        records = shared.index.len(),
        replay_keys = nonces,
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
    })
}

/// The record for `key` at `location`; `None` when the segment has expired meanwhile (or a digest collided).
pub(super) fn read_record(
    shared: &Shared,
    key: &str,
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
    let entry: LogEntry = serde_json::from_slice(payload).map_err(|_| StoreError::Corrupt)?;
    Ok(entry.record.filter(|(k, _)| k == key).map(|(_, r)| r))
}
