//! The audit journal: one JSON line per verified call and koogate's answer, in daily files under
//! `<data_dir>/journal/`. Personal data (buyer fields, returned credentials) is sealed with the journal key.

use super::seal::Sealer;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
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
    /// Personal data (`{"buyer":…,"appInfo":…}`), AES-256-GCM under the journal key, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<String>,
}

fn day_of(entry: &JournalEntry) -> &str {
    entry.at.get(..10).unwrap_or("unknown")
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

/// Appends entries to the day's file; [`JournalWriter::append`] returns once the data reached the disk.
pub struct JournalWriter {
    dir: PathBuf,
    current: Option<(String, File)>,
}

impl JournalWriter {
    pub fn open(data_dir: &Path) -> std::io::Result<Self> {
        let dir = data_dir.join("journal");
        crate::private_fs::create_dir_all(&dir)?;
        Ok(Self { dir, current: None })
    }

    /// Writes the lines, each into its day's file, and `fdatasync`s every file written.
    pub fn append(&mut self, entries: &[JournalEntry]) -> std::io::Result<()> {
        let mut start = 0;
        while start < entries.len() {
            let day = day_of(&entries[start]);
            let end = entries[start..]
                .iter()
                .position(|e| day_of(e) != day)
                .map_or(entries.len(), |n| start + n);
            let mut text = String::new();
            for entry in &entries[start..end] {
                text.push_str(&serde_json::to_string(entry).map_err(std::io::Error::other)?);
                text.push('\n');
            }
            let file = self.file_for(day)?;
            if let Err(e) = file
                .write_all(text.as_bytes())
                .and_then(|()| file.sync_data())
            {
                // Reopen next time: opening trims a partial line, so the next entry starts on a line of its own.
                self.current = None;
                return Err(e);
            }
            start = end;
        }
        Ok(())
    }

    /// The day's file, opened for appending. A torn last line (a crash mid-write; its answer was never sent) is
    /// cut off first, so the next entry starts on a line of its own.
    fn file_for(&mut self, day: &str) -> std::io::Result<&mut File> {
        if self.current.as_ref().is_none_or(|(d, _)| d != day) {
            let path = self.dir.join(format!("{day}.jsonl"));
            let mut file = crate::private_fs::open_options()
                .create(true)
                .read(true)
                .append(true)
                .open(&path)?;
            let len = file.metadata()?.len();
            if len > 0 {
                let text = std::fs::read(&path)?;
                let keep = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1) as u64;
                if keep < len {
                    file.set_len(keep)?;
                    file.sync_data()?;
                }
            }
            file.flush()?;
            self.current = Some((day.to_owned(), file));
        }
        self.current
            .as_mut()
            .map(|(_, f)| f)
            .ok_or_else(|| std::io::Error::other("no journal file"))
    }

    /// Deletes daily files older than `keep_days` (by name, which is the UTC date).
    pub fn purge(&self, oldest_kept_day: &str) -> std::io::Result<()> {
        for entry in std::fs::read_dir(&self.dir)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if let Some(day) = name.strip_suffix(".jsonl") {
                if day < oldest_kept_day {
                    std::fs::remove_file(self.dir.join(&name))?;
                }
            }
        }
        Ok(())
    }
}

/// Every entry under `data_dir` matching `filter`, oldest first. A torn last line (crash mid-write) is skipped.
pub fn read(data_dir: &Path, filter: &Filter) -> std::io::Result<Vec<JournalEntry>> {
    let dir = data_dir.join("journal");
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
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
