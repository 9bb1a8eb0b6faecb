//! Nonce replay protection: a bounded in-memory set whose entries live exactly as long as their timestamp is
//! inside the window.

use crate::protocol::verified::Verified;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::sync::{Arc, Mutex};

/// Why a verified call must not be processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error("nonce was already used within the timestamp window")]
    Replayed,
    #[error("replay cache is full; refusing calls until entries expire")]
    Full,
}

/// Remembers nonces until their call's timestamp leaves the window, after which the timestamp check alone refuses
/// a replay. When `max_entries` live nonces are held the cache fails closed rather than forgetting one early.
#[derive(Debug, Clone)]
pub struct NonceCache {
    inner: Arc<Mutex<Inner>>,
    /// Mirrors the number of live entries (`koogate_replay_cache_entries`).
    size: prometheus::IntGauge,
    max_entries: usize,
}

#[derive(Debug, Default)]
struct Inner {
    live: HashSet<Box<str>>,
    /// Expiry order, so purging touches only what expired.
    expiries: BinaryHeap<Reverse<(u64, Box<str>)>>,
}

impl NonceCache {
    pub fn new(max_entries: usize, size: prometheus::IntGauge) -> Self {
        Self {
            inner: Arc::default(),
            size,
            max_entries,
        }
    }

    /// Records the call's nonce, or refuses it if it was seen (or the cache is full).
    pub fn check_and_remember(&self, call: &Verified, now_ms: u64) -> Result<(), ReplayError> {
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        inner.purge(now_ms);
        self.size.set(inner.live.len() as i64);
        if inner.live.contains(call.replay_key()) {
            return Err(ReplayError::Replayed);
        }
        if inner.live.len() >= self.max_entries {
            return Err(ReplayError::Full);
        }
        let nonce: Box<str> = call.replay_key().into();
        // The freshness check refuses this call once `timestamp + window` has passed; until then, remember it.
        let expires = call.replay_expires_ms();
        inner.live.insert(nonce.clone());
        inner.expiries.push(Reverse((expires, nonce)));
        self.size.set(inner.live.len() as i64);
        Ok(())
    }

    /// Re-adds a nonce remembered before a restart.
    pub fn restore(&self, key: &str, expires_ms: u64) {
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if inner.live.insert(key.into()) {
            inner.expiries.push(Reverse((expires_ms, key.into())));
        }
        self.size.set(inner.live.len() as i64);
    }

    /// Forgets what expired by `now_ms` and updates the gauge: called at every scrape, so the gauge is current
    /// while no call arrives.
    pub fn refresh(&self, now_ms: u64) {
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        inner.purge(now_ms);
        self.size.set(inner.live.len() as i64);
    }

    /// Live entries (for the `koogate_replay_cache_entries` gauge).
    pub fn len(&self) -> usize {
        self.inner.lock().map(|i| i.live.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Inner {
    fn purge(&mut self, now_ms: u64) {
        while let Some(Reverse((expires, _))) = self.expiries.peek() {
            if *expires >= now_ms {
                break;
            }
            if let Some(Reverse((_, nonce))) = self.expiries.pop() {
                self.live.remove(&nonce);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::v2::{signed_query, verify, SignedQuery};
    use crate::secret::{AccessKey, AccessKeys};
    use bytes::Bytes;
    use std::time::Duration;

    const WINDOW: Duration = Duration::from_secs(60);

    fn gauge() -> prometheus::IntGauge {
        prometheus::IntGauge::new("entries", "test").unwrap()
    }

    fn call(nonce: &str, ts: u64) -> Verified {
        let keys = AccessKeys::new(vec![AccessKey::new("k", "key")]).unwrap();
        let q = SignedQuery::parse(&signed_query(b"key", nonce, ts, b"{}")).unwrap();
        verify(&keys, q, Bytes::from_static(b"{}"), ts, WINDOW).unwrap()
    }

    #[test]
    fn replayed_nonce_is_rejected() {
        let cache = NonceCache::new(10, gauge());
        cache.check_and_remember(&call("a", 1_000), 1_000).unwrap();
        assert_eq!(
            cache.check_and_remember(&call("a", 1_000), 1_001),
            Err(ReplayError::Replayed)
        );
        cache.check_and_remember(&call("b", 1_000), 1_001).unwrap();
    }

    #[test]
    fn nonce_is_remembered_until_its_timestamp_leaves_the_window() {
        let cache = NonceCache::new(10, gauge());
        // A call stamped 30 s in the future stays valid for 90 s from now: it must be remembered that long.
        cache.check_and_remember(&call("f", 31_000), 1_000).unwrap();
        assert_eq!(
            cache.check_and_remember(&call("f", 31_000), 91_000),
            Err(ReplayError::Replayed)
        );
        cache
            .check_and_remember(&call("f", 31_000), 91_001)
            .unwrap();
    }

    #[test]
    fn full_cache_fails_closed_until_entries_expire() {
        let cache = NonceCache::new(2, gauge());
        cache.check_and_remember(&call("a", 0), 0).unwrap();
        cache.check_and_remember(&call("b", 10), 10).unwrap();
        assert_eq!(
            cache.check_and_remember(&call("c", 20), 20),
            Err(ReplayError::Full)
        );
        assert_eq!(cache.len(), 2);
        cache
            .check_and_remember(&call("c", 60_001), 60_001)
            .unwrap();
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn the_gauge_drops_when_entries_expire_without_new_calls() {
        let size = gauge();
        let cache = NonceCache::new(10, size.clone());
        cache.check_and_remember(&call("a", 0), 0).unwrap();
        cache
            .check_and_remember(&call("b", 30_000), 30_000)
            .unwrap();
        assert_eq!(size.get(), 2);
        cache.refresh(60_001);
        assert_eq!(size.get(), 1, "a expired at 60 s");
        cache.refresh(90_001);
        assert_eq!(size.get(), 0);
    }
}
