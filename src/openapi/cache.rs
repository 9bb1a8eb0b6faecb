//! Order/query answers cached per (orderId, orderLineId): bounded, with a TTL, and — where the store is durable —
//! kept across restarts in a sealed file of its own (`<data_dir>/order-cache.jsonl`, one AES-256-GCM sealed entry
//! per line under the journal key, because the answers hold buyer personal data).
//!
//! The file is a cache, not a record: appends are not fsynced, and a lost or unreadable line only costs one more
//! API call. It is compacted at start and whenever it holds twice as many lines as entries.

use crate::state::seal::Sealer;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// The file name under `data_dir`.
pub const FILE_NAME: &str = "order-cache.jsonl";

type Key = (String, String);

#[derive(Serialize, Deserialize)]
struct Stored {
    order_id: String,
    order_line_id: String,
    at_ms: u64,
    answer: String,
}

struct Persist {
    path: PathBuf,
    sealer: Sealer,
    lines: usize,
}

struct Inner {
    entries: HashMap<Key, (u64, Bytes)>,
    /// Insertion order, for evicting the oldest when full.
    order: VecDeque<Key>,
    persist: Option<Persist>,
}

/// The cache. All methods take the current time, so tests control expiry.
pub struct OrderCache {
    inner: Mutex<Inner>,
    max_entries: usize,
    ttl: Duration,
}

impl std::fmt::Debug for OrderCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderCache")
            .field("max_entries", &self.max_entries)
            .finish_non_exhaustive()
    }
}

impl OrderCache {
    /// An in-memory cache (no durable store).
    pub fn memory(max_entries: usize, ttl: Duration) -> Self {
        Self {
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                order: VecDeque::new(),
                persist: None,
            }),
            max_entries: max_entries.max(1),
            ttl,
        }
    }

    /// A cache kept in `data_dir`, loading what a previous run left (expired and unreadable lines are dropped).
    pub fn durable(
        max_entries: usize,
        ttl: Duration,
        data_dir: &Path,
        sealer: Sealer,
        now_ms: u64,
    ) -> std::io::Result<Self> {
        crate::private_fs::create_dir_all(data_dir)?;
        let path = data_dir.join(FILE_NAME);
        let cache = Self::memory(max_entries, ttl);
        if let Ok(text) = std::fs::read_to_string(&path) {
            for line in text.lines() {
                let Ok(plain) = sealer.open(line.trim()) else {
                    continue;
                };
                let Ok(stored) = serde_json::from_slice::<Stored>(&plain) else {
                    continue;
                };
                cache.insert_memory(
                    (stored.order_id, stored.order_line_id),
                    stored.at_ms,
                    stored.answer.into(),
                    now_ms,
                );
            }
        }
        cache.lock().persist = Some(Persist {
            path,
            sealer,
            lines: 0,
        });
        cache.compact()?;
        Ok(cache)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The maps stay consistent even if a holder panicked (each update is a few plain inserts).
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fresh(&self, at_ms: u64, now_ms: u64) -> bool {
        now_ms.saturating_sub(at_ms) < self.ttl.as_millis() as u64
    }

    /// The cached answer, if fresh.
    pub fn get(&self, order_id: &str, line: &str, now_ms: u64) -> Option<Bytes> {
        let mut inner = self.lock();
        let key = (order_id.to_owned(), line.to_owned());
        match inner.entries.get(&key) {
            Some((at, answer)) if self.fresh(*at, now_ms) => Some(answer.clone()),
            Some(_) => {
                inner.entries.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Remembers a successful answer (and appends it to the file when durable).
    pub fn insert(&self, order_id: &str, line: &str, answer: Bytes, now_ms: u64) {
        if self.ttl.is_zero() {
            return;
        }
        let key = (order_id.to_owned(), line.to_owned());
        self.insert_memory(key, now_ms, answer.clone(), now_ms);
        let needs_compaction = {
            let mut inner = self.lock();
            let Some(persist) = inner.persist.as_mut() else {
                return;
            };
            let stored = Stored {
                order_id: order_id.to_owned(),
                order_line_id: line.to_owned(),
                at_ms: now_ms,
                answer: String::from_utf8_lossy(&answer).into_owned(),
            };
            let sealed = serde_json::to_vec(&stored).map(|plain| persist.sealer.seal(&plain));
            let appended = sealed.ok().and_then(|line| {
                crate::private_fs::open_options()
                    .create(true)
                    .append(true)
                    .open(&persist.path)
                    .and_then(|mut f| writeln!(f, "{line}"))
                    .ok()
            });
            if appended.is_none() {
                tracing::warn!(file = %persist.path.display(), "cannot append to the order cache file");
            }
            persist.lines += 1;
            persist.lines > 2 * self.max_entries
        };
        if needs_compaction {
            if let Err(e) = self.compact() {
                tracing::warn!(error = %e, "cannot compact the order cache file");
            }
        }
    }

    fn insert_memory(&self, key: Key, at_ms: u64, answer: Bytes, now_ms: u64) {
        if !self.fresh(at_ms, now_ms) {
            return;
        }
        let mut inner = self.lock();
        if inner.entries.insert(key.clone(), (at_ms, answer)).is_none() {
            inner.order.push_back(key);
        }
        while inner.entries.len() > self.max_entries {
            let Some(oldest) = inner.order.pop_front() else {
                break;
            };
            inner.entries.remove(&oldest);
        }
        // Keys removed on expiry linger in `order`; drop them so it stays bounded too.
        if inner.order.len() > 2 * self.max_entries {
            let Inner { entries, order, .. } = &mut *inner;
            order.retain(|k| entries.contains_key(k));
        }
    }

    /// Rewrites the file with exactly the entries in memory (temporary file, then rename).
    fn compact(&self) -> std::io::Result<()> {
        let mut inner = self.lock();
        let Inner {
            entries,
            order,
            persist,
        } = &mut *inner;
        let Some(persist) = persist.as_mut() else {
            return Ok(());
        };
        let tmp = persist.path.with_extension("jsonl.tmp");
        let mut out = std::io::BufWriter::new(
            crate::private_fs::open_options()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?,
        );
        let mut lines = 0;
        for key in order.iter() {
            let Some((at_ms, answer)) = entries.get(key) else {
                continue;
            };
            let stored = Stored {
                order_id: key.0.clone(),
                order_line_id: key.1.clone(),
                at_ms: *at_ms,
                answer: String::from_utf8_lossy(answer).into_owned(),
            };
            let plain = serde_json::to_vec(&stored).map_err(std::io::Error::other)?;
            writeln!(out, "{}", persist.sealer.seal(&plain))?;
            lines += 1;
        }
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, &persist.path)?;
        persist.lines = lines;
        Ok(())
    }

    /// Entries held (fresh or not yet noticed as expired).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(60);

    #[test]
    fn entries_expire_after_the_ttl() {
        let cache = OrderCache::memory(10, TTL);
        cache.insert("o", "o-1", Bytes::from_static(b"a"), 1_000);
        assert_eq!(cache.get("o", "o-1", 60_999).as_deref(), Some(&b"a"[..]));
        assert_eq!(cache.get("o", "o-1", 61_000), None);
        assert!(cache.is_empty());
    }

    #[test]
    fn the_oldest_entry_is_evicted_when_full() {
        let cache = OrderCache::memory(2, TTL);
        for (i, id) in ["a", "b", "c"].iter().enumerate() {
            cache.insert(id, "l", Bytes::from_static(b"x"), i as u64);
        }
        assert_eq!(cache.len(), 2);
        assert!(cache.get("a", "l", 3).is_none());
        assert!(cache.get("c", "l", 3).is_some());
    }

    #[test]
    fn a_durable_cache_survives_a_restart_sealed_and_drops_expired_entries() {
        let dir = tempfile::tempdir().unwrap();
        let sealer = Sealer::from_text(&"22".repeat(32)).unwrap();
        let cache = OrderCache::durable(10, TTL, dir.path(), sealer.clone(), 0).unwrap();
        cache.insert(
            "o1",
            "o1-1",
            Bytes::from_static(b"{\"phone\":\"18688888888\"}"),
            1_000,
        );
        cache.insert("o2", "o2-1", Bytes::from_static(b"{}"), 50_000);
        drop(cache);
        let text = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        assert!(
            !text.contains("18688888888") && !text.contains("o1-1"),
            "{text}"
        );

        let reopened = OrderCache::durable(10, TTL, dir.path(), sealer.clone(), 70_000).unwrap();
        assert!(
            reopened.get("o1", "o1-1", 70_000).is_none(),
            "expired across the restart"
        );
        assert_eq!(
            reopened.get("o2", "o2-1", 70_000).as_deref(),
            Some(&b"{}"[..])
        );
        let other_key = Sealer::from_text(&"33".repeat(32)).unwrap();
        let foreign = OrderCache::durable(10, TTL, dir.path(), other_key, 70_000).unwrap();
        assert!(
            foreign.is_empty(),
            "entries sealed under another key are unreadable"
        );
    }

    #[test]
    fn the_file_is_compacted_when_it_grows() {
        let dir = tempfile::tempdir().unwrap();
        let sealer = Sealer::from_text(&"22".repeat(32)).unwrap();
        let cache = OrderCache::durable(2, TTL, dir.path(), sealer, 0).unwrap();
        for i in 0..20u64 {
            cache.insert(&format!("o{i}"), "l", Bytes::from_static(b"{}"), i);
        }
        let lines = std::fs::read_to_string(dir.path().join(FILE_NAME))
            .unwrap()
            .lines()
            .count();
        assert!(lines <= 5, "{lines} lines for 2 entries");
    }
}
