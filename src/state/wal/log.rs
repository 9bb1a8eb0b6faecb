//! The log's format: segment files `wal/<id, 16 hex>.log`, each a run of frames `len (u32 LE) ‖ crc32 (u32 LE) ‖
//! payload`. A frame whose length or checksum does not hold ends its segment's readable part (a torn write whose
//! answer was never sent).
//!
//! Payload: a fixed binary head that a restart reads without parsing JSON — version (1 byte, 2), `at_ms` (u64 LE),
//! flags (1 byte: 1 = replay key, 2 = record), then the replay key (generation 1 byte, SHA-256 32 bytes, expiry
//! u64) and the record's key (SHA-256 of the idempotency key, 32 bytes, and its `at_ms` u64) when present — then,
//! only if there is a record or a journal line, the JSON body `{"r": record, "j": journal line}`.

use super::fs::Fs;
use crate::protocol::Generation;
use crate::state::journal::JournalEntry;
use crate::state::replay::ReplayKey;
use crate::state::StoredRecord;
use serde::{Deserialize, Serialize};
use sha2::Digest;
use std::io;
use std::path::{Path, PathBuf};

/// Bytes before each entry: its length and its CRC-32.
pub const HEADER_LEN: usize = 8;
/// Larger frames are taken for corruption (an entry is a few KiB at most: bodies are capped at 64 KiB).
const MAX_FRAME_LEN: usize = 4 << 20;
/// How much a scan reads at a time.
const READ_CHUNK: usize = 1 << 20;
const VERSION: u8 = 2;
const HAS_NONCE: u8 = 1;
const HAS_RECORD: u8 = 2;
const NONCE_LEN: usize = 1 + 32 + 8;
const RECORD_LEN: usize = 32 + 8;

/// SHA-256 of an idempotency key: what the log and the index know it by.
pub type RecordKey = [u8; 32];

pub fn record_key(key: &str) -> RecordKey {
    sha2::Sha256::digest(key.as_bytes()).into()
}

/// One call's durable effects: its replay key, its idempotency record and its journal line.
#[derive(Debug, Default)]
pub struct LogEntry {
    /// When it was written (Unix ms): whole segments expire by their newest entry.
    pub at_ms: u64,
    /// Replay key and the instant after which it may be forgotten.
    pub nonce: Option<(ReplayKey, u64)>,
    pub record: Option<(RecordKey, StoredRecord)>,
    pub journal: Option<JournalEntry>,
}

/// The binary head of an entry: all a restart or an expiry needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub at_ms: u64,
    pub nonce: Option<(ReplayKey, u64)>,
    /// The record's key and creation time.
    pub record: Option<(RecordKey, u64)>,
    /// Where the JSON body starts.
    body_at: usize,
}

#[derive(Serialize)]
struct BodyOut<'a> {
    #[serde(rename = "r", skip_serializing_if = "Option::is_none")]
    record: Option<&'a StoredRecord>,
    #[serde(rename = "j", skip_serializing_if = "Option::is_none")]
    journal: Option<&'a JournalEntry>,
}

#[derive(Deserialize)]
struct Body {
    #[serde(rename = "r", default)]
    record: Option<StoredRecord>,
    #[serde(rename = "j", default)]
    journal: Option<JournalEntry>,
}

/// Only the journal line (`koogate journal` skips the record).
#[derive(Deserialize)]
struct JournalBody {
    #[serde(rename = "j", default)]
    journal: Option<JournalEntry>,
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// Reads the head of a payload; `None` if it is not one (a damaged or foreign frame).
pub fn head(payload: &[u8]) -> Option<Head> {
    if *payload.first()? != VERSION {
        return None;
    }
    let at_ms = u64_at(payload, 1)?;
    let flags = *payload.get(9)?;
    let mut at = 10;
    let nonce = if flags & HAS_NONCE != 0 {
        let generation = match *payload.get(at)? {
            1 => Generation::V1,
            2 => Generation::V2,
            _ => return None,
        };
        let digest = payload.get(at + 1..at + 33)?.try_into().ok()?;
        let expires = u64_at(payload, at + 33)?;
        at += NONCE_LEN;
        Some((ReplayKey { generation, digest }, expires))
    } else {
        None
    };
    let record = if flags & HAS_RECORD != 0 {
        let key: RecordKey = payload.get(at..at + 32)?.try_into().ok()?;
        let record_at = u64_at(payload, at + 32)?;
        at += RECORD_LEN;
        Some((key, record_at))
    } else {
        None
    };
    Some(Head {
        at_ms,
        nonce,
        record,
        body_at: at,
    })
}

/// The whole entry; `None` if its head or body cannot be read.
pub fn decode(payload: &[u8]) -> Option<LogEntry> {
    let head = head(payload)?;
    let body = payload.get(head.body_at..)?;
    let (record, journal) = if body.is_empty() {
        (None, None)
    } else {
        let body: Body = serde_json::from_slice(body).ok()?;
        (body.record, body.journal)
    };
    Some(LogEntry {
        at_ms: head.at_ms,
        nonce: head.nonce,
        record: head.record.zip(record).map(|((key, _), r)| (key, r)),
        journal,
    })
}

/// Only the journal line of a payload, if it has one.
pub fn decode_journal(payload: &[u8]) -> Option<JournalEntry> {
    let body = payload.get(head(payload)?.body_at..)?;
    if body.is_empty() {
        return None;
    }
    serde_json::from_slice::<JournalBody>(body).ok()?.journal
}

/// The file name of segment `id`.
pub fn segment_name(id: u64) -> String {
    format!("{id:016x}.log")
}

pub fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(segment_name(id))
}

/// The segment ids in `dir`, oldest first.
pub fn segment_ids(fs: &dyn Fs, dir: &Path) -> io::Result<Vec<u64>> {
    let mut ids: Vec<u64> = fs
        .list(dir)?
        .iter()
        .filter_map(|name| name.strip_suffix(".log"))
        .filter_map(|id| u64::from_str_radix(id, 16).ok())
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

/// Appends `entry` as one frame to `out`.
pub fn encode(entry: &LogEntry, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    let start = out.len();
    out.extend_from_slice(&[0u8; HEADER_LEN]);
    let flags =
        entry.nonce.map_or(0, |_| HAS_NONCE) | entry.record.as_ref().map_or(0, |_| HAS_RECORD);
    out.push(VERSION);
    out.extend_from_slice(&entry.at_ms.to_le_bytes());
    out.push(flags);
    if let Some((key, expires)) = &entry.nonce {
        out.push(match key.generation {
            Generation::V1 => 1,
            Generation::V2 => 2,
        });
        out.extend_from_slice(&key.digest);
        out.extend_from_slice(&expires.to_le_bytes());
    }
    if let Some((key, record)) = &entry.record {
        out.extend_from_slice(key);
        out.extend_from_slice(&record.at_ms.to_le_bytes());
    }
    if entry.record.is_some() || entry.journal.is_some() {
        let body = BodyOut {
            record: entry.record.as_ref().map(|(_, r)| r),
            journal: entry.journal.as_ref(),
        };
        serde_json::to_writer(&mut *out, &body)?;
    }
    let payload = &out[start + HEADER_LEN..];
    let len = (payload.len() as u32).to_le_bytes();
    let crc = crc32fast::hash(payload).to_le_bytes();
    out[start..start + 4].copy_from_slice(&len);
    out[start + 4..start + HEADER_LEN].copy_from_slice(&crc);
    Ok(())
}

/// The payload of the frame at the start of `bytes` and the frame's length; `None` if incomplete or corrupt.
pub fn frame(bytes: &[u8]) -> Option<(&[u8], usize)> {
    let header = bytes.get(..HEADER_LEN)?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len > MAX_FRAME_LEN {
        return None;
    }
    let payload = bytes.get(HEADER_LEN..HEADER_LEN + len)?;
    (crc32fast::hash(payload) == crc).then_some((payload, HEADER_LEN + len))
}

/// Calls `each(offset, frame_len, payload)` for every intact frame of a segment from `from`, and returns the
/// offset where the intact part ends (the file's length unless its tail is torn).
pub fn scan(
    fs: &dyn Fs,
    path: &Path,
    from: u64,
    mut each: impl FnMut(u64, u32, &[u8]),
) -> io::Result<u64> {
    let mut buf: Vec<u8> = Vec::new();
    let mut buf_at = from;
    let mut eof = false;
    loop {
        let mut used = 0;
        while let Some((payload, len)) = frame(&buf[used..]) {
            each(buf_at + used as u64, len as u32, payload);
            used += len;
        }
        buf.drain(..used);
        buf_at += used as u64;
        if eof {
            return Ok(buf_at);
        }
        // An incomplete frame needs more bytes; an intact-length frame that fails its checksum ends the segment.
        if buf.len() >= HEADER_LEN {
            let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
            if len > MAX_FRAME_LEN || buf.len() >= HEADER_LEN + len {
                return Ok(buf_at);
            }
        }
        let chunk = fs.read_at(path, buf_at + buf.len() as u64, READ_CHUNK)?;
        eof = chunk.len() < READ_CHUNK;
        buf.extend_from_slice(&chunk);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_round_trips_and_any_flipped_byte_is_refused() {
        let key = ReplayKey {
            generation: Generation::V2,
            digest: [0xab; 32],
        };
        let record = StoredRecord {
            activity: "newInstance".into(),
            fingerprint: String::new(),
            at_ms: 5,
            answer: "sealed".into(),
        };
        let entry = LogEntry {
            at_ms: 7,
            nonce: Some((key, 9)),
            record: Some((record_key("k"), record.clone())),
            journal: None,
        };
        let mut out = Vec::new();
        encode(&entry, &mut out).unwrap();
        let (payload, len) = frame(&out).unwrap();
        assert_eq!(len, out.len());
        let back = head(payload).unwrap();
        assert_eq!(
            (back.at_ms, back.nonce, back.record),
            (7, Some((key, 9)), Some((record_key("k"), 5)))
        );
        let whole = decode(payload).unwrap();
        assert_eq!(whole.record, Some((record_key("k"), record)));
        for i in 0..out.len() {
            let mut bad = out.clone();
            bad[i] ^= 0x40;
            assert!(frame(&bad).is_none_or(|(p, _)| p != payload), "byte {i}");
        }
        assert!(frame(&out[..out.len() - 1]).is_none(), "torn frame");
    }

    #[test]
    fn a_replay_key_alone_costs_a_fixed_59_bytes() {
        let entry = LogEntry {
            at_ms: 1,
            nonce: Some((
                ReplayKey {
                    generation: Generation::V1,
                    digest: [1; 32],
                },
                2,
            )),
            ..LogEntry::default()
        };
        let mut out = Vec::new();
        encode(&entry, &mut out).unwrap();
        assert_eq!(out.len(), HEADER_LEN + 10 + NONCE_LEN);
        assert_eq!(decode_journal(frame(&out).unwrap().0), None);
    }
}
