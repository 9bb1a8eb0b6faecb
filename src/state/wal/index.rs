//! The in-memory index of idempotency records: the first 16 bytes of each key's SHA-256 mapped to where its latest
//! record sits in the log. Records themselves stay on disk and are read only for a retry (which checks the full
//! 32-byte digest kept in the log), so memory per record is fixed and capped (measured in docs/operations.md).

use super::log::RecordKey;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Shards, so a snapshot or a prune holds each lock only briefly.
const SHARDS: usize = 64;

/// The first 16 bytes of SHA-256 of an idempotency key (the full digest is checked when the record is read).
pub type KeyHash = [u8; 16];

/// Where a record is: segment, offset and length of its frame, and when it was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub segment: u64,
    pub offset: u64,
    pub len: u32,
    pub at_ms: u64,
}

pub fn key_hash(key: &RecordKey) -> KeyHash {
    let mut hash = [0u8; 16];
    hash.copy_from_slice(&key[..16]);
    hash
}

pub struct RecordIndex {
    shards: Vec<Mutex<HashMap<KeyHash, Location>>>,
    len: AtomicUsize,
}

impl Default for RecordIndex {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            len: AtomicUsize::new(0),
        }
    }
}

impl RecordIndex {
    fn shard(&self, hash: &KeyHash) -> std::sync::MutexGuard<'_, HashMap<KeyHash, Location>> {
        self.shards[hash[0] as usize % SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, hash: &KeyHash) -> Option<Location> {
        self.shard(hash).get(hash).copied()
    }

    /// Records `hash` at `location` unless a newer record for it is already indexed.
    pub fn insert(&self, hash: KeyHash, location: Location) {
        let mut shard = self.shard(&hash);
        match shard.get_mut(&hash) {
            Some(old) if (old.segment, old.offset) >= (location.segment, location.offset) => {}
            Some(old) => *old = location,
            None => {
                shard.insert(hash, location);
                self.len.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Forgets `hash` if its record is in `segment` (the segment expired).
    pub fn remove_in(&self, hash: &KeyHash, segment: u64) {
        let mut shard = self.shard(hash);
        if shard.get(hash).is_some_and(|l| l.segment == segment) {
            shard.remove(hash);
            self.len.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Makes room for `more` entries spread over the shards (a restart knows how many it will load).
    pub fn reserve(&self, more: usize) {
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            shard.reserve(more / SHARDS + more / (SHARDS * 8));
        }
    }

    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Calls `each` for every entry, one shard locked at a time.
    pub fn for_each(&self, mut each: impl FnMut(&KeyHash, &Location)) {
        for shard in &self.shards {
            let shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            for (hash, location) in shard.iter() {
                each(hash, location);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(segment: u64, offset: u64) -> Location {
        Location {
            segment,
            offset,
            len: 1,
            at_ms: 0,
        }
    }

    #[test]
    fn the_newest_location_wins_and_expired_segments_are_forgotten() {
        let index = RecordIndex::default();
        let k = key_hash(&super::super::log::record_key("k"));
        index.insert(k, at(2, 10));
        index.insert(k, at(1, 99));
        assert_eq!(index.get(&k), Some(at(2, 10)), "replaying an older entry");
        index.remove_in(&k, 1);
        assert_eq!(index.len(), 1, "the record is not in segment 1");
        index.remove_in(&k, 2);
        assert_eq!((index.get(&k), index.len()), (None, 0));
    }
}

/// Memory per record and per replay key, as docs/operations.md states it (a measurement, not a check):
/// `cargo test --release --lib bytes_per_entry -- --ignored --nocapture --test-threads 1`.
#[cfg(test)]
mod measure {
    use super::*;
    use crate::state::replay::{NonceCache, ReplayCapacity, ReplayGauges, ReplayKey};

    fn rss_bytes() -> usize {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<usize>().ok());
        kb.unwrap_or(0) * 1024
    }

    #[test]
    #[ignore = "a measurement; run it alone"]
    fn bytes_per_entry() {
        const N: usize = 1_000_000;
        let before = rss_bytes();
        let index = RecordIndex::default();
        for i in 0..N {
            let key = key_hash(&crate::state::wal::log::record_key(&i.to_string()));
            let location = Location {
                segment: 1,
                offset: i as u64,
                len: 500,
                at_ms: 1,
            };
            index.insert(key, location);
        }
        let records = rss_bytes() - before;
        let gauge = || prometheus::IntGauge::new("g", "test").unwrap();
        let gauges = [(), ()].map(|()| ReplayGauges {
            entries: gauge(),
            capacity: gauge(),
        });
        let capacity = ReplayCapacity { v1: N, v2: N };
        let nonces = NonceCache::new(capacity, gauges);
        let before = rss_bytes();
        for i in 0..N {
            let digest = crate::state::wal::log::record_key(&format!("n{i}"));
            let key = ReplayKey {
                generation: crate::protocol::Generation::V1,
                digest,
            };
            nonces.restore(key, u64::MAX);
        }
        let keys = rss_bytes() - before;
        println!(
            "{N} records: {} bytes each; {N} replay keys: {} bytes each",
            records / N,
            keys / N
        );
        assert_eq!((index.len(), nonces.len()), (N, N));
    }
}
