//! Nonce replay protection: a bounded in-memory set per generation whose entries live as long as their timestamp
//! is inside the window (plus a margin). Keys are fixed-size digests ([`ReplayKey`]), never strings.

use crate::protocol::verified::Verified;
use crate::protocol::Generation;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::sync::{Arc, Mutex};

/// A call's replay key: its generation and the SHA-256 of its V2 nonce or V1 authToken (33 bytes in the log,
/// 32 in memory, where each generation has its own set).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReplayKey {
    pub generation: Generation,
    pub digest: [u8; 32],
}

impl ReplayKey {
    /// The key of a verified call (its [`Verified::replay_key`], `v1:`/`v2:` and 64 hex digits, as binary).
    pub fn of(call: &Verified) -> Self {
        Self {
            generation: call.generation(),
            digest: call.replay_digest(),
        }
    }

    /// Reads the text form (`v2:` and 64 hex digits), as a v1 store and Redis keep it.
    pub fn parse(text: &str) -> Option<Self> {
        let (generation, hex_digest) = match text.split_once(':')? {
            ("v1", digest) => (Generation::V1, digest),
            ("v2", digest) => (Generation::V2, digest),
            _ => return None,
        };
        let mut digest = [0u8; 32];
        hex::decode_to_slice(hex_digest, &mut digest).ok()?;
        Some(Self { generation, digest })
    }
}

impl std::fmt::Debug for ReplayKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.generation.name(), hex::encode(self.digest))
    }
}

/// Why a verified call must not be processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error("nonce was already used within the timestamp window")]
    Replayed,
    #[error("replay cache is full; refusing calls until entries expire")]
    Full,
}

/// Most replay keys remembered per generation. V2 keys live for 60 s, V1 keys for 24 h, so one shared limit sized
/// for one would be wrong for the other: a slow V1 product would fill a V2-sized cache in a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayCapacity {
    pub v1: usize,
    pub v2: usize,
}

/// The gauges one generation's partition keeps current.
#[derive(Debug, Clone)]
pub struct ReplayGauges {
    /// Live entries (`koogate_replay_cache_entries{generation}`).
    pub entries: prometheus::IntGauge,
    /// The limit (`koogate_replay_cache_capacity_entries{generation}`), set once.
    pub capacity: prometheus::IntGauge,
}

/// Remembers replay keys until their call's timestamp leaves the window, after which the timestamp check alone
/// refuses a replay. When a generation's partition holds its limit of live keys, that generation's calls fail
/// closed rather than forgetting one early; the other generation is unaffected.
#[derive(Debug, Clone)]
pub struct NonceCache {
    /// `[V1, V2]`.
    partitions: Arc<[Partition; 2]>,
}

#[derive(Debug)]
struct Partition {
    inner: Mutex<Inner>,
    max_entries: usize,
    size: prometheus::IntGauge,
}

/// One generation's keys: the set answers "seen?", the heap says what expires next. Each holds the 32-byte digest
/// (no allocation per key); see docs/operations.md for the bytes per key.
#[derive(Debug, Default)]
struct Inner {
    live: HashSet<[u8; 32]>,
    /// Expiry order, so purging touches only what expired.
    expiries: BinaryHeap<Reverse<(u64, [u8; 32])>>,
}

impl NonceCache {
    /// `gauges` is `[V1, V2]`, like the partitions.
    pub fn new(capacity: ReplayCapacity, gauges: [ReplayGauges; 2]) -> Self {
        let [v1, v2] = gauges;
        let partition = |max_entries: usize, gauges: ReplayGauges| {
            gauges.capacity.set(max_entries as i64);
            gauges.entries.set(0);
            Partition {
                inner: Mutex::default(),
                max_entries,
                size: gauges.entries,
            }
        };
        Self {
            partitions: Arc::new([partition(capacity.v1, v1), partition(capacity.v2, v2)]),
        }
    }

    fn partition(&self, generation: Generation) -> &Partition {
        match generation {
            Generation::V1 => &self.partitions[0],
            Generation::V2 => &self.partitions[1],
        }
    }

    /// Records the call's replay key, or refuses it if it was seen (or its generation's partition is full). `now_ms`
    /// is the call's one clock reading ([`Verified::checked_at_ms`]).
    pub fn check_and_remember(&self, call: &Verified, now_ms: u64) -> Result<(), ReplayError> {
        let partition = self.partition(call.generation());
        let mut inner = partition.lock();
        inner.purge(now_ms);
        partition.size.set(inner.live.len() as i64);
        let nonce = ReplayKey::of(call).digest;
        if inner.live.contains(&nonce) {
            return Err(ReplayError::Replayed);
        }
        if inner.live.len() >= partition.max_entries {
            return Err(ReplayError::Full);
        }
        // Kept until the window's end plus the margin (`Verified::replay_expires_ms`).
        let expires = call.replay_expires_ms();
        inner.live.insert(nonce);
        inner.expiries.push(Reverse((expires, nonce)));
        partition.size.set(inner.live.len() as i64);
        Ok(())
    }

    /// Re-adds a replay key remembered before a restart.
    pub fn restore(&self, key: ReplayKey, expires_ms: u64) {
        let partition = self.partition(key.generation);
        let mut inner = partition.lock();
        if inner.live.insert(key.digest) {
            inner.expiries.push(Reverse((expires_ms, key.digest)));
        }
        partition.size.set(inner.live.len() as i64);
    }

    /// Every key live at `now_ms` with its expiry, for a snapshot (one partition locked at a time, for a copy).
    pub fn live(&self, now_ms: u64) -> Vec<(ReplayKey, u64)> {
        let mut out = Vec::new();
        for (partition, generation) in self.partitions.iter().zip([Generation::V1, Generation::V2])
        {
            let inner = partition.lock();
            out.reserve(inner.expiries.len());
            let live = inner.expiries.iter().filter(|Reverse((e, _))| *e >= now_ms);
            out.extend(live.map(|Reverse((expires, digest))| {
                let key = ReplayKey {
                    generation,
                    digest: *digest,
                };
                (key, *expires)
            }));
        }
        out
    }

    /// Forgets what expired by `now_ms` and updates the gauges: called at every scrape, so they are current while
    /// no call arrives.
    pub fn refresh(&self, now_ms: u64) {
        for partition in self.partitions.iter() {
            let mut inner = partition.lock();
            inner.purge(now_ms);
            partition.size.set(inner.live.len() as i64);
        }
    }

    /// Live entries of both generations.
    pub fn len(&self) -> usize {
        self.partitions.iter().map(|p| p.lock().live.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Partition {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
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
    use crate::protocol::keys::{AccessKey, AccessKeys};
    use crate::protocol::v1::{self, V1Query};
    use crate::protocol::v2::{signed_query, verify, SignedQuery};
    use crate::protocol::verified::REPLAY_MARGIN;
    use base64::Engine;
    use bytes::Bytes;
    use std::time::Duration;

    const WINDOW: Duration = Duration::from_secs(60);
    const MARGIN: u64 = REPLAY_MARGIN.as_millis() as u64;

    fn gauges() -> [ReplayGauges; 2] {
        let gauge = || prometheus::IntGauge::new("g", "test").unwrap();
        [(); 2].map(|_| ReplayGauges {
            entries: gauge(),
            capacity: gauge(),
        })
    }

    fn cache(v1: usize, v2: usize) -> NonceCache {
        NonceCache::new(ReplayCapacity { v1, v2 }, gauges())
    }

    fn keys() -> AccessKeys {
        AccessKeys::new(vec![AccessKey::new("k", "key")]).unwrap()
    }

    /// A V2 call stamped `ts`, its freshness judged at `now`.
    fn call_at(nonce: &str, ts: u64, now: u64) -> Verified {
        let q = SignedQuery::parse(&signed_query(b"key", nonce, ts, b"{}")).unwrap();
        verify(&keys(), q, Bytes::from_static(b"{}"), now, WINDOW).unwrap()
    }

    fn call(nonce: &str, ts: u64) -> Verified {
        call_at(nonce, ts, ts)
    }

    fn v1_call(order: &str) -> Verified {
        let ts = "20210916064657481";
        let message = format!("orderId={order}&timeStamp={ts}");
        let token =
            base64::engine::general_purpose::STANDARD.encode(v1::auth_token(b"key", ts, &message));
        let query = V1Query::parse(&format!("{message}&authToken={token}")).unwrap();
        let now = v1::parse_time_stamp(ts).unwrap();
        v1::verify(&keys(), query, now, Duration::from_secs(86_400)).unwrap()
    }

    #[test]
    fn replayed_nonce_is_rejected() {
        let cache = cache(10, 10);
        cache.check_and_remember(&call("a", 1_000), 1_000).unwrap();
        assert_eq!(
            cache.check_and_remember(&call("a", 1_000), 1_001),
            Err(ReplayError::Replayed)
        );
        cache.check_and_remember(&call("b", 1_000), 1_001).unwrap();
    }

    #[test]
    fn nonce_is_remembered_until_its_window_ends_plus_the_margin() {
        let cache = cache(10, 10);
        // A call stamped 30 s in the future stays valid for 90 s from now: it must be remembered at least that long.
        cache.check_and_remember(&call("f", 31_000), 1_000).unwrap();
        let end = 91_000 + MARGIN;
        assert_eq!(
            cache.check_and_remember(&call("f", 31_000), end),
            Err(ReplayError::Replayed)
        );
        cache
            .check_and_remember(&call("f", 31_000), end + 1)
            .unwrap();
    }

    /// The audit's edge: a replay whose freshness was judged at the window's last millisecond, checked after a later
    /// call already purged expired keys, must still find its key.
    #[test]
    fn a_replay_judged_at_the_window_edge_is_refused_after_later_calls_purged() {
        let cache = cache(10, 10);
        cache.check_and_remember(&call("e", 0), 0).unwrap();
        // Another call, judged 1 ms after the edge, purges first.
        cache
            .check_and_remember(&call("later", 60_001), 60_001)
            .unwrap();
        let replay = call_at("e", 0, 60_000);
        assert_eq!(
            cache.check_and_remember(&replay, replay.checked_at_ms()),
            Err(ReplayError::Replayed)
        );
    }

    #[test]
    fn full_cache_fails_closed_until_entries_expire() {
        let cache = cache(10, 2);
        cache.check_and_remember(&call("a", 0), 0).unwrap();
        cache.check_and_remember(&call("b", 10), 10).unwrap();
        assert_eq!(
            cache.check_and_remember(&call("c", 20), 20),
            Err(ReplayError::Full)
        );
        assert_eq!(cache.len(), 2);
        let after = 60_001 + MARGIN;
        cache.check_and_remember(&call("c", after), after).unwrap();
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn each_generation_has_its_own_capacity_and_gauges() {
        let gauges = gauges();
        let cache = NonceCache::new(ReplayCapacity { v1: 1, v2: 3 }, gauges.clone());
        assert_eq!(gauges[0].capacity.get(), 1);
        assert_eq!(gauges[1].capacity.get(), 3);
        cache.check_and_remember(&v1_call("o1"), 0).unwrap();
        assert_eq!(
            cache.check_and_remember(&v1_call("o2"), 0),
            Err(ReplayError::Full)
        );
        // A full V1 partition leaves V2 calls alone.
        cache.check_and_remember(&call("a", 0), 0).unwrap();
        cache.check_and_remember(&call("b", 0), 0).unwrap();
        assert_eq!((gauges[0].entries.get(), gauges[1].entries.get()), (1, 2));
        let restored = ReplayKey {
            generation: Generation::V1,
            digest: [7; 32],
        };
        cache.restore(restored, u64::MAX);
        assert_eq!(cache.live(0).len(), 4);
        assert_eq!(gauges[0].entries.get(), 2);
    }

    #[test]
    fn the_gauges_drop_when_entries_expire_without_new_calls() {
        let gauges = gauges();
        let cache = NonceCache::new(ReplayCapacity { v1: 10, v2: 10 }, gauges.clone());
        cache.check_and_remember(&call("a", 0), 0).unwrap();
        cache
            .check_and_remember(&call("b", 30_000), 30_000)
            .unwrap();
        assert_eq!(gauges[1].entries.get(), 2);
        cache.refresh(60_001 + MARGIN);
        assert_eq!(gauges[1].entries.get(), 1, "a expired");
        cache.refresh(90_001 + MARGIN);
        assert_eq!(gauges[1].entries.get(), 0);
    }
}
