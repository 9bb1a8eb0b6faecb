//! The log's format: segment files `wal/<id, 16 hex>.log`, each a run of frames `len (u32 LE) ‖ crc32 (u32 LE) ‖
//! JSON entry`. A frame whose length or checksum does not hold ends its segment's readable part (a torn write
//! whose answer was never sent).

use super::fs::Fs;
use crate::state::journal::JournalEntry;
use crate::state::StoredRecord;
use serde::{Deserialize, Serialize};
use std::io;
use std::path::{Path, PathBuf};

/// Bytes before each entry: its length and its CRC-32.
pub const HEADER_LEN: usize = 8;
/// Larger frames are taken for corruption (an entry is a few KiB at most: bodies are capped at 64 KiB).
const MAX_FRAME_LEN: usize = 4 << 20;
/// How much a scan reads at a time.
const READ_CHUNK: usize = 1 << 20;

/// One call's durable effects: its replay key, its idempotency record and its journal line.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct LogEntry {
    /// When it was written (Unix ms): whole segments expire by their newest entry.
    #[serde(rename = "t")]
    pub at_ms: u64,
    /// Replay key and the instant after which it may be forgotten.
    #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<(String, u64)>,
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    pub record: Option<(String, StoredRecord)>,
    #[serde(rename = "j", default, skip_serializing_if = "Option::is_none")]
    pub journal: Option<JournalEntry>,
}

/// An entry read for rebuilding the indexes: the journal line is skipped without being decoded.
#[derive(Debug, Deserialize)]
pub struct IndexView {
    #[serde(rename = "t")]
    pub at_ms: u64,
    #[serde(rename = "n", default)]
    pub nonce: Option<(String, u64)>,
    #[serde(rename = "r", default)]
    pub record: Option<(String, RecordMeta)>,
}

/// What the index needs of a record.
#[derive(Debug, Deserialize)]
pub struct RecordMeta {
    pub at_ms: u64,
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
    serde_json::to_writer(&mut *out, entry)?;
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
        let entry = LogEntry {
            at_ms: 7,
            nonce: Some(("V2:ab".into(), 9)),
            ..LogEntry::default()
        };
        let mut out = Vec::new();
        encode(&entry, &mut out).unwrap();
        let (payload, len) = frame(&out).unwrap();
        assert_eq!(len, out.len());
        let back: IndexView = serde_json::from_slice(payload).unwrap();
        assert_eq!((back.at_ms, back.nonce), (7, Some(("V2:ab".into(), 9))));
        for i in 0..out.len() {
            let mut bad = out.clone();
            bad[i] ^= 0x40;
            assert!(frame(&bad).is_none_or(|(p, _)| p != payload), "byte {i}");
        }
        assert!(frame(&out[..out.len() - 1]).is_none(), "torn frame");
    }
}
