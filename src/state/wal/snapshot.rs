//! Snapshots of the indexes, so a restart reads one file plus the log's tail instead of every segment.
//!
//! `wal/snapshot-<next, 16 hex>.bin` holds the record index and the live replay keys as they were once every segment
//! before `next` had been applied (it may hold later entries too; replaying them again is harmless), plus each of
//! those segments' newest entry. Layout: magic, `next`, segments (`id`, `max_at_ms`), records (16-byte key digest,
//! segment, offset, length, `at_ms`), replay keys (generation, 32-byte digest, expiry), CRC-32 of all before it.

use super::fs::Fs;
use super::index::{KeyHash, Location, RecordIndex};
use super::SegmentInfo;
use crate::protocol::Generation;
use crate::state::replay::ReplayKey;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"KGSNAP02";
const RECORD_LEN: usize = 16 + 8 + 8 + 4 + 8;
const NONCE_LEN: usize = 1 + 32 + 8;

/// A snapshot as loaded: its bytes, read entry by entry (no second copy of a million records).
#[derive(Default)]
pub struct Snapshot {
    pub next: u64,
    pub segments: BTreeMap<u64, SegmentInfo>,
    bytes: Vec<u8>,
    records: std::ops::Range<usize>,
    nonces: std::ops::Range<usize>,
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

/// About how many bytes a snapshot of `records` records and `nonces` replay keys takes.
pub fn estimated_len(records: usize, nonces: usize) -> u64 {
    (64 + records * RECORD_LEN + nonces * NONCE_LEN) as u64
}

/// What a snapshot is taken of.
pub struct Contents<'a> {
    pub next: u64,
    pub segments: &'a BTreeMap<u64, SegmentInfo>,
    pub index: &'a RecordIndex,
    /// Records older than this are left out.
    pub oldest_ms: u64,
    pub nonces: &'a [(ReplayKey, u64)],
}

/// Writes a snapshot and removes the older ones.
pub fn write(fs: &dyn Fs, dir: &Path, c: &Contents<'_>) -> io::Result<PathBuf> {
    let capacity = estimated_len(c.index.len(), c.nonces.len());
    let mut out = Vec::with_capacity(usize::try_from(capacity).unwrap_or(0));
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&c.next.to_le_bytes());
    out.extend_from_slice(&(c.segments.len() as u64).to_le_bytes());
    for (id, info) in c.segments {
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&info.max_at_ms.to_le_bytes());
    }
    let count_at = out.len();
    out.extend_from_slice(&0u64.to_le_bytes());
    let mut count = 0u64;
    c.index.for_each(|hash, l| {
        if l.at_ms >= c.oldest_ms {
            out.extend_from_slice(hash);
            out.extend_from_slice(&l.segment.to_le_bytes());
            out.extend_from_slice(&l.offset.to_le_bytes());
            out.extend_from_slice(&l.len.to_le_bytes());
            out.extend_from_slice(&l.at_ms.to_le_bytes());
            count += 1;
        }
    });
    out[count_at..count_at + 8].copy_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&(c.nonces.len() as u64).to_le_bytes());
    for (key, expires) in c.nonces {
        out.push(match key.generation {
            Generation::V1 => 1,
            Generation::V2 => 2,
        });
        out.extend_from_slice(&key.digest);
        out.extend_from_slice(&expires.to_le_bytes());
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    let path = dir.join(name(c.next));
    fs.write_atomic(&path, &out)?;
    for old in snapshot_ids(fs, dir)?.into_iter().filter(|id| *id < c.next) {
        fs.remove(&dir.join(name(old)))?;
    }
    Ok(path)
}

/// The newest intact snapshot in `dir`, if any (a damaged one is skipped for an older one, or none).
pub fn load(fs: &dyn Fs, dir: &Path) -> io::Result<Option<Snapshot>> {
    for id in snapshot_ids(fs, dir)?.into_iter().rev() {
        let bytes = fs.read_all(&dir.join(name(id)))?;
        match parse(bytes) {
            Some(snapshot) if snapshot.next == id => return Ok(Some(snapshot)),
            _ => tracing::warn!(snapshot = %name(id), "ignoring a damaged snapshot"),
        }
    }
    Ok(None)
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

fn parse(bytes: Vec<u8>) -> Option<Snapshot> {
    let body_len = bytes.len().checked_sub(4)?;
    let (body, crc) = bytes.split_at(body_len);
    if crc32fast::hash(body).to_le_bytes() != crc || body.get(..8)? != MAGIC {
        return None;
    }
    let next = u64_at(body, 8)?;
    let mut segments = BTreeMap::new();
    let mut at = 24;
    for _ in 0..u64_at(body, 16)? {
        let id = u64_at(body, at)?;
        let max_at_ms = u64_at(body, at + 8)?;
        segments.insert(id, SegmentInfo { max_at_ms });
        at += 16;
    }
    let span = |at: usize, each: usize| -> Option<std::ops::Range<usize>> {
        let count = usize::try_from(u64_at(body, at)?).ok()?;
        let end = (at + 8).checked_add(count.checked_mul(each)?)?;
        (end <= body.len()).then_some(at + 8..end)
    };
    let records = span(at, RECORD_LEN)?;
    let nonces = span(records.end, NONCE_LEN)?;
    if nonces.end != body.len() {
        return None;
    }
    Some(Snapshot {
        next,
        segments,
        bytes,
        records,
        nonces,
    })
}

impl Snapshot {
    pub fn record_count(&self) -> usize {
        self.records.len() / RECORD_LEN
    }

    /// The indexed records, as written.
    pub fn records(&self) -> impl Iterator<Item = (KeyHash, Location)> + '_ {
        let n = |r: &[u8], at: usize| u64_at(r, at).unwrap_or_default();
        self.bytes[self.records.clone()]
            .chunks_exact(RECORD_LEN)
            .map(move |r| {
                let mut hash = [0u8; 16];
                hash.copy_from_slice(&r[..16]);
                let mut len = [0u8; 4];
                len.copy_from_slice(&r[32..36]);
                let location = Location {
                    segment: n(r, 16),
                    offset: n(r, 24),
                    len: u32::from_le_bytes(len),
                    at_ms: n(r, 36),
                };
                (hash, location)
            })
    }

    /// The replay keys live when it was written, with their expiries.
    pub fn nonces(&self) -> impl Iterator<Item = (ReplayKey, u64)> + '_ {
        self.bytes[self.nonces.clone()]
            .chunks_exact(NONCE_LEN)
            .map(|n| {
                let generation = if n[0] == 1 {
                    Generation::V1
                } else {
                    Generation::V2
                };
                let mut digest = [0u8; 32];
                digest.copy_from_slice(&n[1..33]);
                let expires = u64_at(n, 33).unwrap_or_default();
                (ReplayKey { generation, digest }, expires)
            })
    }
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
        let segments = BTreeMap::from([(3, SegmentInfo { max_at_ms: 1_000 })]);
        let key = ReplayKey {
            generation: Generation::V1,
            digest: [9; 32],
        };
        let contents = Contents {
            next: 4,
            segments: &segments,
            index: &index,
            oldest_ms: 500,
            nonces: &[(key, 2_000)],
        };
        write(&fs, dir, &contents).unwrap();
        let snapshot = load(&fs, dir).unwrap().unwrap();
        assert_eq!(snapshot.next, 4);
        assert_eq!(
            snapshot.records().collect::<Vec<_>>(),
            vec![([1; 16], loc(1_000))]
        );
        assert_eq!(snapshot.nonces().collect::<Vec<_>>(), vec![(key, 2_000)]);
        assert_eq!(snapshot.segments[&3].max_at_ms, 1_000);

        let path = dir.join(name(4));
        let mut bytes = fs.read_at(&path, 0, 1 << 20).unwrap();
        bytes[20] ^= 1;
        fs.write_atomic(&path, &bytes).unwrap();
        assert!(load(&fs, dir).unwrap().is_none());
    }
}
