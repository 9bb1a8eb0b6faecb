//! The audit journal: one entry per verified call and koogate's answer, carried by the call's log entry (see
//! [`super::wal`]). Personal data (buyer fields, returned credentials) is sealed with the journal key.

use super::seal::Sealer;
use super::wal::fs::{Fs, RealFs};
use super::wal::log::{decode_journal, scan, segment_ids, segment_path};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

/// One verified call and its answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JournalEntry {
    /// When the answer was decided, RFC 3339 UTC.
    pub at: String,
    pub at_ms: u64,
    pub request_id: String,
    pub generation: String,
    pub activity: String,
    pub result_code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub test_flag: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_line_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// Answered from the idempotency record without calling the upstream.
    #[serde(default)]
    pub from_record: bool,
    pub latency_us: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_us: Option<u64>,
    /// The caller's W3C `traceparent`, when it sent a valid one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// Personal data (`{"buyer":…,"appInfo":…}`), AES-256-GCM under the journal key, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<String>,
}

/// Which entries `koogate journal` prints.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub order_id: Option<String>,
    pub instance_id: Option<String>,
    pub activity: Option<String>,
    pub since_ms: Option<u64>,
    pub until_ms: Option<u64>,
}

impl Filter {
    pub fn matches(&self, e: &JournalEntry) -> bool {
        self.order_id
            .as_ref()
            .is_none_or(|o| e.order_id.as_ref() == Some(o))
            && self
                .instance_id
                .as_ref()
                .is_none_or(|i| e.instance_id.as_ref() == Some(i))
            && self.activity.as_ref().is_none_or(|a| &e.activity == a)
            && self.since_ms.is_none_or(|s| e.at_ms >= s)
            && self.until_ms.is_none_or(|u| e.at_ms <= u)
    }
}

/// Every entry under `data_dir` matching `filter`, oldest first: from the log (`wal/`), and from a v1 store's
/// daily files (`journal/*.jsonl`) if they were not migrated yet. A torn last entry (crash mid-write) is skipped.
pub fn read(data_dir: &Path, filter: &Filter) -> std::io::Result<Vec<JournalEntry>> {
    read_new(data_dir, filter, &mut Cursor::default())
}

/// How far an incremental reader ([`read_new`]) got: per log segment, the end of its last intact entry read.
#[derive(Debug, Default)]
pub struct Cursor {
    segments: BTreeMap<u64, u64>,
    v1_read: bool,
}

/// What [`read`] returns, but only the entries written since `cursor` (every entry the first time), which it then
/// moves on: the console page reads the journal's new tail each time instead of the whole journal.
pub fn read_new(
    data_dir: &Path,
    filter: &Filter,
    cursor: &mut Cursor,
) -> std::io::Result<Vec<JournalEntry>> {
    let mut out = Vec::new();
    if !cursor.v1_read {
        out = read_v1(&data_dir.join("journal"), filter)?;
        cursor.v1_read = true;
    }
    let fs = RealFs;
    let dir = data_dir.join("wal");
    let ids = match segment_ids(&fs, &dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        other => other?,
    };
    // Segments expire whole: forget the offsets of those gone.
    cursor.segments.retain(|id, _| ids.contains(id));
    for id in ids {
        let path = segment_path(&dir, id);
        let from = cursor.segments.get(&id).copied().unwrap_or(0);
        let scanned = scan(&fs as &dyn Fs, &path, from, |_, _, payload| {
            if let Some(entry) = decode_journal(payload) {
                if filter.matches(&entry) {
                    out.push(entry);
                }
            }
        });
        match scanned {
            // Expired and removed while being read.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
            Ok(end) => {
                cursor.segments.insert(id, end);
            }
        }
    }
    Ok(out)
}

/// Entries from a v1 store's daily JSON-lines files.
pub(super) fn read_v1(dir: &Path, filter: &Filter) -> std::io::Result<Vec<JournalEntry>> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    files.sort();
    let mut out = Vec::new();
    for file in files {
        for line in BufReader::new(File::open(file)?).lines() {
            if let Ok(entry) = serde_json::from_str::<JournalEntry>(&line?) {
                if filter.matches(&entry) {
                    out.push(entry);
                }
            }
        }
    }
    Ok(out)
}

/// An entry as exported: with the personal data opened when a sealer is given, else without it.
pub fn export(entry: &JournalEntry, sealer: Option<&Sealer>) -> serde_json::Value {
    let mut value = serde_json::to_value(entry).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        let sealed = map.remove("sealed");
        if let (Some(sealer), Some(serde_json::Value::String(sealed))) = (sealer, sealed) {
            let personal = sealer
                .open(&sealed)
                .ok()
                .and_then(|plain| serde_json::from_slice::<serde_json::Value>(&plain).ok())
                .unwrap_or(serde_json::Value::String(
                    "<cannot open: wrong journal key?>".into(),
                ));
            map.insert("personalData".into(), personal);
        }
    }
    value
}
