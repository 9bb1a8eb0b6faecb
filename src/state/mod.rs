//! Durable state: replay protection, idempotency records and the audit journal.
//!
//! * `memory`: everything in process memory (no durability; for benchmarks and throwaway setups).
//! * `local` (default): an embedded redb file for nonces and idempotency records plus a JSON-lines journal, written
//!   by one thread that commits in groups, so each call costs a share of one `fsync`.
//!
//! Personal data (decrypted buyer fields, returned credentials) is sealed with the journal key before it is stored.

pub mod journal;
mod local;
mod redis;
pub mod replay;
pub mod seal;

use crate::metrics::Metrics;
use crate::protocol::verified::Verified;
use journal::JournalEntry;
use replay::{NonceCache, ReplayCapacity, ReplayError};
use seal::Sealer;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a claim outlives its call's deadline: room for saving the record and the journal after a late answer.
const CLAIM_COMMIT_ALLOWANCE: std::time::Duration = std::time::Duration::from_secs(5);

/// A call's hold on an idempotency key across replicas (Redis).
#[derive(Debug)]
pub struct Claim {
    key: String,
    /// Random per call: only the holder may release it.
    owner: String,
}

/// How often a call waits to see whether another replica's claim on the same operation is gone.
const CLAIM_POLL: Duration = Duration::from_millis(25);

/// Which backend holds the state.
#[derive(Debug, Clone)]
pub enum StoreKind {
    Memory,
    Local {
        data_dir: PathBuf,
    },
    /// Nonces, records and claims in Redis (shared by replicas); the journal stays in `data_dir`.
    Redis {
        url: String,
        prefix: String,
        timeout: Duration,
        data_dir: PathBuf,
        /// PEM CA trusted for `rediss://` instead of the system roots.
        ca_file: Option<PathBuf>,
    },
}

/// Settings for [`StateStore::open`].
#[derive(Debug, Clone)]
pub struct StoreSettings {
    pub kind: StoreKind,
    /// Idempotency records and journal files older than this are deleted.
    pub retention: Duration,
    pub replay_capacity: ReplayCapacity,
    pub sealer: Option<Sealer>,
}

/// The upstream's successful answer to one operation, replayed to KooGallery's retries.
#[derive(Clone, PartialEq)]
pub struct Record {
    pub activity: String,
    /// Distinguishes a retry from a new operation on the same key (for example the status of a status change).
    pub fingerprint: String,
    /// The upstream's answer body (may hold credentials: sealed at rest).
    pub answer: Vec<u8>,
    pub at_ms: u64,
}

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Record")
            .field("activity", &self.activity)
            .field("at_ms", &self.at_ms)
            .finish_non_exhaustive()
    }
}

/// How a record is stored: metadata in clear, the answer sealed.
#[derive(Serialize, Deserialize)]
struct StoredRecord {
    activity: String,
    fingerprint: String,
    at_ms: u64,
    sealed: String,
}

/// Everything one call writes, made durable together before the answer is sent.
#[derive(Debug, Default)]
pub struct Commit {
    /// Replay key and the instant after which it may be forgotten.
    pub nonce: Option<(String, u64)>,
    pub record: Option<(String, Record)>,
    pub entry: Option<JournalEntry>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state store failed")]
    Failed(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("state store writer has stopped")]
    Stopped,
    #[error("a stored record cannot be opened (wrong journal key?)")]
    Corrupt,
    #[error("state store did not answer in time")]
    Timeout,
    #[error("another replica holds this operation past the deadline")]
    Claimed,
}

enum Backend {
    Memory(Mutex<HashMap<String, StoredRecord>>),
    Local(local::LocalStore),
    Redis {
        redis: Arc<redis::RedisStore>,
        journal: local::LocalStore,
        retention: Duration,
    },
}

/// Replay protection, idempotency records and the journal behind one interface.
pub struct StateStore {
    replay: NonceCache,
    backend: Backend,
    sealer: Sealer,
    retention_ms: u64,
    /// Most records the memory backend keeps.
    memory_limit: usize,
}

impl StateStore {
    /// Opens (or creates) the store and restores the nonces that are still inside their window.
    pub fn open(
        settings: StoreSettings,
        metrics: &Metrics,
        now_ms: u64,
    ) -> Result<Self, StoreError> {
        let replay = NonceCache::new(settings.replay_capacity, metrics.replay_gauges());
        // Memory stores never persist, so an ephemeral key is enough for them.
        let sealer = settings.sealer.unwrap_or_else(Sealer::random);
        let retention_ms = u64::try_from(settings.retention.as_millis()).unwrap_or(u64::MAX);
        let backend = match settings.kind {
            StoreKind::Memory => Backend::Memory(Mutex::default()),
            StoreKind::Local { data_dir } => {
                let store = local::LocalStore::open(&data_dir, retention_ms, true)?;
                for (key, expires_ms) in store.live_nonces(now_ms)? {
                    replay.restore(&key, expires_ms);
                }
                Backend::Local(store)
            }
            StoreKind::Redis {
                url,
                prefix,
                timeout,
                data_dir,
                ca_file,
            } => Backend::Redis {
                redis: redis::RedisStore::open(&url, prefix, timeout, ca_file.as_deref())?,
                journal: local::LocalStore::open(&data_dir, retention_ms, false)?,
                retention: settings.retention,
            },
        };
        Ok(Self {
            replay,
            backend,
            sealer,
            retention_ms,
            memory_limit: settings.replay_capacity.v2.max(1),
        })
    }

    /// Brings `koogate_replay_cache_entries` up to date at `now_ms` (local and memory backends; Redis keeps
    /// nonces itself).
    pub fn refresh_replay_gauge(&self, now_ms: u64) {
        self.replay.refresh(now_ms);
    }

    /// Refuses a call whose nonce (V2) or token (V1) was seen inside its window: here, before a restart, or (with
    /// Redis) on another replica. The outer error is the store failing; the inner one is the replay.
    pub async fn check_replay(
        &self,
        call: &Verified,
        now_ms: u64,
    ) -> Result<Result<(), ReplayError>, StoreError> {
        match &self.backend {
            Backend::Memory(_) | Backend::Local(_) => {
                Ok(self.replay.check_and_remember(call, now_ms))
            }
            Backend::Redis { redis, .. } => {
                let fresh = redis
                    .remember(call.replay_key(), call.replay_expires_ms(), now_ms)
                    .await?;
                Ok(if fresh {
                    Ok(())
                } else {
                    Err(ReplayError::Replayed)
                })
            }
        }
    }

    /// Holds `key` against other replicas until [`StateStore::release`], waiting (until `deadline`) while another
    /// replica holds it. The claim outlives the deadline by [`CLAIM_COMMIT_ALLOWANCE`], so it cannot lapse between
    /// the upstream's answer and the record being saved. `None` for single-process backends.
    pub async fn claim(
        &self,
        key: &str,
        deadline: tokio::time::Instant,
    ) -> Result<Option<Claim>, StoreError> {
        let Backend::Redis { redis, .. } = &self.backend else {
            return Ok(None);
        };
        let owner = hex::encode(rand::random::<[u8; 16]>());
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Err(StoreError::Claimed);
            }
            if redis
                .claim(key, &owner, left + CLAIM_COMMIT_ALLOWANCE)
                .await?
            {
                return Ok(Some(Claim {
                    key: key.to_owned(),
                    owner,
                }));
            }
            tokio::time::sleep(CLAIM_POLL.min(left)).await;
        }
    }

    /// Gives a claim back, if it is still this call's.
    pub async fn release(&self, claim: &Claim) {
        if let Backend::Redis { redis, .. } = &self.backend {
            if let Err(e) = redis.release(&claim.key, &claim.owner).await {
                tracing::warn!(error = %e, "cannot release an idempotency claim; it expires by itself");
            }
        }
    }

    /// The recorded answer for an idempotency key, if any (and not past retention).
    pub async fn lookup(&self, key: &str, now_ms: u64) -> Result<Option<Record>, StoreError> {
        let stored = match &self.backend {
            Backend::Memory(map) => {
                map.lock()
                    .map_err(|_| StoreError::Stopped)?
                    .get(key)
                    .map(|r| StoredRecord {
                        activity: r.activity.clone(),
                        fingerprint: r.fingerprint.clone(),
                        at_ms: r.at_ms,
                        sealed: r.sealed.clone(),
                    })
            }
            Backend::Local(store) => store.record(key)?,
            Backend::Redis { redis, .. } => redis.record(key).await?,
        };
        let Some(stored) = stored.filter(|r| r.at_ms.saturating_add(self.retention_ms) >= now_ms)
        else {
            return Ok(None);
        };
        let answer = self
            .sealer
            .open(&stored.sealed)
            .map_err(|_| StoreError::Corrupt)?;
        Ok(Some(Record {
            activity: stored.activity,
            fingerprint: stored.fingerprint,
            answer: answer.to_vec(),
            at_ms: stored.at_ms,
        }))
    }

    /// Whether the backend is reachable (Redis only; the others are always healthy while the process runs).
    pub fn health(&self) -> Option<Arc<AtomicBool>> {
        match &self.backend {
            Backend::Redis { redis, .. } => Some(redis.health()),
            Backend::Memory(_) | Backend::Local(_) => None,
        }
    }

    /// Makes a call's nonce, record and journal entry durable; returns once they are on disk.
    pub async fn commit(&self, commit: Commit) -> Result<(), StoreError> {
        let record = commit.record.map(|(key, r)| {
            let sealed = self.sealer.seal(&r.answer);
            (
                key,
                StoredRecord {
                    activity: r.activity,
                    fingerprint: r.fingerprint,
                    at_ms: r.at_ms,
                    sealed,
                },
            )
        });
        match &self.backend {
            Backend::Memory(map) => {
                if let Some((key, record)) = record {
                    let mut map = map.lock().map_err(|_| StoreError::Stopped)?;
                    // Bounded like the replay cache: past the limit, forget the oldest half.
                    if map.len() >= self.memory_limit {
                        let mut ages: Vec<u64> = map.values().map(|r| r.at_ms).collect();
                        ages.sort_unstable();
                        let cutoff = ages[ages.len() / 2];
                        map.retain(|_, r| r.at_ms > cutoff);
                    }
                    map.insert(key, record);
                }
                Ok(())
            }
            Backend::Local(store) => {
                store
                    .commit(local::Batch {
                        nonce: commit.nonce,
                        record,
                        entry: commit.entry,
                    })
                    .await
            }
            Backend::Redis {
                redis,
                journal,
                retention,
            } => {
                if let Some((key, record)) = &record {
                    redis.save(key, record, *retention).await?;
                }
                journal
                    .commit(local::Batch {
                        nonce: None,
                        record: None,
                        entry: commit.entry,
                    })
                    .await
            }
        }
    }

    /// Seals personal data for a journal entry.
    pub fn seal(&self, plain: &[u8]) -> String {
        self.sealer.seal(plain)
    }

    /// Whether this store writes a journal (only the durable backend does).
    pub fn journals(&self) -> bool {
        matches!(self.backend, Backend::Local(_) | Backend::Redis { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_memory_backend_stays_bounded() {
        let metrics = Metrics::new().unwrap();
        let settings = StoreSettings {
            kind: StoreKind::Memory,
            retention: Duration::from_secs(60),
            replay_capacity: ReplayCapacity { v1: 10, v2: 10 },
            sealer: None,
        };
        let store = StateStore::open(settings, &metrics, 0).unwrap();
        for i in 0..100u64 {
            let record = Record {
                activity: "orderNotify".into(),
                fingerprint: String::new(),
                answer: b"{}".to_vec(),
                at_ms: i,
            };
            store
                .commit(Commit {
                    record: Some((format!("k{i}"), record)),
                    ..Commit::default()
                })
                .await
                .unwrap();
        }
        let Backend::Memory(map) = &store.backend else {
            unreachable!()
        };
        assert!(map.lock().unwrap().len() <= 10);
        assert!(
            store.lookup("k99", 99).await.unwrap().is_some(),
            "the newest records are kept"
        );
    }
}
