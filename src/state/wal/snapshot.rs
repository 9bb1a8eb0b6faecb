//! Snapshots of the record index, so a restart reads one file plus the log's tail instead of every segment.
//!
//! `wal/snapshot-<next, 16 hex>.bin` holds the index as it was once every segment before `next` had been applied
//! (it may hold later entries too; replaying them again is harmless), plus each of those segments' newest entry
//! and newest replay-key expiry. Layout: magic, `next`, segments, records, CRC-32 of everything before it.

use super::fs::Fs;
use super::index::{KeyHash, Location, RecordIndex};
use super::SegmentInfo;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"KGSNAP01";
const RECORD_LEN: usize = 16 + 8 + 8 + 4 + 8;

/// A snapshot as loaded.
#[derive(Default)]
pub struct Snapshot {
    pub next: u64,
    pub segments: BTreeMap<u64, SegmentInfo>,
    pub records: Vec<(KeyHash, Location)>,
}

fn name(next: u64) -> String {
    format!("snapshot-{next:016x}.bin")
}

fn snapshot_ids(fs: &dyn Fs, dir: &Path) -> io::Result<Vec<u64>> {
    let mut ids: Vec<u64> = fs
        .list(dir)?
        .iter()
        .filter_map(|n| n.strip_prefix("snapshot-")?.strip_suffix(".bin"))
        .filter_map(|id| u64::from_str_radix(id, 16).ok())
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

/// Writes a snapshot of `index` (records older than `oldest_ms` left out) and removes the older snapshots.
pub fn write(
    fs: &dyn Fs,
    dir: &Path,
    next: u64,
    segments: &BTreeMap<u64, SegmentInfo>,
    index: &RecordIndex,
    oldest_ms: u64,
) -> io::Result<PathBuf> {
    let mut out = Vec::with_capacity(64 + index.len() * RECORD_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&next.to_le_bytes());
    out.extend_from_slice(&(segments.len() as u64).to_le_bytes());
    for (id, info) in segments {
        for n in [*id, info.max_at_ms, info.max_expiry_ms] {
            out.extend_from_slice(&n.to_le_bytes());
        }
    }
    let count_at = out.len();
    out.extend_from_slice(&0u64.to_le_bytes());
    let mut count = 0u64;
    index.for_each(|hash, l| {
        if l.at_ms >= oldest_ms {
            out.extend_from_slice(hash);
            out.extend_from_slice(&l.segment.to_le_bytes());
            out.extend_from_slice(&l.offset.to_le_bytes());
            out.extend_from_slice(&l.len.to_le_bytes());
            out.extend_from_slice(&l.at_ms.to_le_bytes());
            count += 1;
        }
    });
    out[count_at..count_at + 8].copy_from_slice(&count.to_le_bytes());
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    let path = dir.join(name(next));
    fs.write_atomic(&path, &out)?;
    for old in snapshot_ids(fs, dir)?.into_iter().filter(|id| *id < next) {
        fs.remove(&dir.join(name(old)))?;
    }
    Ok(path)
}

/// The newest intact snapshot in `dir`, if any (a damaged one is skipped for an older one, or none).
pub fn load(fs: &dyn Fs, dir: &Path) -> io::Result<Option<Snapshot>> {
    for id in snapshot_ids(fs, dir)?.into_iter().rev() {
        let bytes = fs.read_all(&dir.join(name(id)))?;
        match parse(&bytes) {
            Some(snapshot) if snapshot.next == id => return Ok(Some(snapshot)),
            _ => tracing::warn!(snapshot = %name(id), "ignoring a damaged snapshot"),
        }
    }
    Ok(None)
}

fn parse(bytes: &[u8]) -> Option<Snapshot> {
    let (body, crc) = bytes.split_at_checked(bytes.len().checked_sub(4)?)?;
    if crc32fast::hash(body).to_le_bytes() != crc || body.get(..8)? != MAGIC {
        return None;
    }
    let mut at = 8;
    let u64_at = |at: &mut usize| -> Option<u64> {
        let n = u64::from_le_bytes(body.get(*at..*at + 8)?.try_into().ok()?);
        *at += 8;
        Some(n)
    };
    let next = u64_at(&mut at)?;
    let mut segments = BTreeMap::new();
    for _ in 0..u64_at(&mut at)? {
        let id = u64_at(&mut at)?;
        let info = SegmentInfo {
            max_at_ms: u64_at(&mut at)?,
            max_expiry_ms: u64_at(&mut at)?,
        };
        segments.insert(id, info);
    }
    let count = u64_at(&mut at)? as usize;
    let records = body.get(at..)?;
    if records.len() != count.checked_mul(RECORD_LEN)? {
        return None;
    }
    let records = records
        .chunks_exact(RECORD_LEN)
        .map(|r| {
            let n =
                |from: usize| u64::from_le_bytes(r[from..from + 8].try_into().unwrap_or_default());
            let mut hash = [0u8; 16];
            hash.copy_from_slice(&r[..16]);
            let len = u32::from_le_bytes(r[32..36].try_into().unwrap_or_default());
            let location = Location {
                segment: n(16),
                offset: n(24),
                len,
                at_ms: n(36),
            };
            (hash, location)
        })
        .collect();
    Some(Snapshot {
        next,
        segments,
        records,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::wal::fs::lossy::LossyFs;

    #[test]
    fn a_snapshot_round_trips_without_expired_records_and_a_damaged_one_is_ignored() {
        let fs = LossyFs::default();
        let dir = Path::new("/wal");
        let index = RecordIndex::default();
        let loc = |at_ms| Location {
            segment: 3,
            offset: 8,
            len: 99,
            at_ms,
        };
        index.insert([1; 16], loc(1_000));
        index.insert([2; 16], loc(10));
        let segments = BTreeMap::from([(
            3,
            SegmentInfo {
                max_at_ms: 1_000,
                max_expiry_ms: 2_000,
            },
        )]);
        write(&fs, dir, 4, &segments, &index, 500).unwrap();
        let snapshot = load(&fs, dir).unwrap().unwrap();
        assert_eq!(snapshot.next, 4);
        assert_eq!(snapshot.records, vec![([1; 16], loc(1_000))]);
        assert_eq!(snapshot.segments[&3].max_expiry_ms, 2_000);

        let path = dir.join(name(4));
        let mut bytes = fs.read_at(&path, 0, 1 << 20).unwrap();
        bytes[20] ^= 1;
        fs.write_atomic(&path, &bytes).unwrap();
        assert!(load(&fs, dir).unwrap().is_none());
    }
}
