//! Durable state: replay protection, idempotency records and the audit journal, behind one [`Backend`] trait.
//!
//! * [`memory`]: everything in process memory (no durability; for benchmarks and throwaway setups).
//! * [`wal`] (`local`, the default): one append-only log with group commit and in-memory indexes.
//! * [`redis`]: replay keys, records and claims in Redis (shared by replicas); the journal in a local log.
//!
//! [`StateStore`] adds what every backend shares: retention and a bound on every commit. Only the durable backends
//! seal answers (they write them somewhere); the memory backend keeps them as they are.

pub mod journal;
mod memory;
pub mod migrate;
#[cfg(feature = "redis")]
mod redis;
pub mod replay;
pub mod seal;
pub mod wal;

use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::protocol::verified::Verified;
use journal::JournalEntry;
use replay::{NonceCache, ReplayCapacity, ReplayError, ReplayKey};
use seal::Sealer;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A boxed future, so the backends can sit behind one `dyn` trait.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A call's hold on an idempotency key across replicas (Redis).
#[derive(Debug)]
// Only the Redis backend makes and reads claims.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub struct Claim {
    key: String,
    /// Random per call: only the holder may release it.
    owner: String,
}

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
    /// Idempotency records and journal entries older than this are deleted.
    pub retention: Duration,
    pub replay_capacity: ReplayCapacity,
    /// Most idempotency records kept; past it new operations are refused (signed `000005`, `store_full`).
    pub max_records: usize,
    /// Longest a commit may take before the call is answered `000005` and the store reported unready.
    pub commit_timeout: Duration,
    pub sealer: Option<Sealer>,
}

/// The upstream's successful answer to one operation, replayed to KooGallery's retries. `A` is the answer: plain
/// bytes in memory, sealed text (`sealed` in JSON) when stored.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Record<A = Vec<u8>> {
    pub activity: String,
    /// Distinguishes a retry from a new operation on the same key (for example the status of a status change).
    pub fingerprint: String,
    pub at_ms: u64,
    /// The upstream's answer body (may hold credentials: sealed at rest).
    #[serde(rename = "sealed")]
    pub answer: A,
}

/// A record as stored: its answer sealed.
pub type StoredRecord = Record<String>;

impl<A> std::fmt::Debug for Record<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Record")
            .field("activity", &self.activity)
            .field("at_ms", &self.at_ms)
            .finish_non_exhaustive()
    }
}

/// Everything one call writes, made durable together before the answer is sent.
#[derive(Debug, Default)]
pub struct Commit {
    /// Replay key and the instant after which it may be forgotten.
    pub nonce: Option<(ReplayKey, u64)>,
    /// The idempotency key and the upstream's answer (plain: a durable backend seals it).
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
    #[error("the idempotency record limit (store.max_records) is reached")]
    Full,
}

impl StoreError {
    pub fn failed(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::Failed(Box::new(e))
    }
}

/// Whether a backend can take commits: every flag must be up (`/readyz` reads it).
#[derive(Debug, Clone, Default)]
pub struct Health(Vec<Arc<AtomicBool>>);

impl Health {
    pub fn of(flags: impl IntoIterator<Item = Arc<AtomicBool>>) -> Self {
        Self(flags.into_iter().collect())
    }

    pub fn is_healthy(&self) -> bool {
        self.0.iter().all(|f| f.load(Ordering::SeqCst))
    }

    /// Marks the backend unhealthy until it reports success again (a commit timed out).
    fn mark_down(&self) {
        for flag in &self.0 {
            flag.store(false, Ordering::SeqCst);
        }
    }
}

/// What every backend does; [`StateStore`] adds retention and the commit bound around it. Records cross the trait
/// plain: a backend that stores them outside the process seals them.
pub trait Backend: Send + Sync {
    /// Refuses a call whose replay key was seen inside its window. Outer error: the store failed.
    fn check_replay<'a>(
        &'a self,
        call: &'a Verified,
        now_ms: u64,
    ) -> BoxFuture<'a, Result<Result<(), ReplayError>, StoreError>>;
    /// The stored record for `key`; [`StoreError::Full`] when there is none and no room for one.
    fn lookup<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Record>, StoreError>>;
    /// Makes the call's effects durable; returns once they are.
    fn commit<'a>(&'a self, commit: Commit, now_ms: u64) -> BoxFuture<'a, Result<(), StoreError>>;
    fn health(&self) -> Health;
    /// Whether entries go to a journal (all but the memory backend).
    fn journals(&self) -> bool;
    /// Holds `key` against other replicas until `deadline` plus a commit allowance; `None` for one process.
    fn claim<'a>(
        &'a self,
        _key: &'a str,
        _deadline: tokio::time::Instant,
    ) -> BoxFuture<'a, Result<Option<Claim>, StoreError>> {
        Box::pin(async { Ok(None) })
    }
    fn release<'a>(&'a self, _claim: &'a Claim) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

/// Replay protection, idempotency records and the journal behind one interface.
pub struct StateStore {
    backend: Box<dyn Backend>,
    /// The in-memory replay keys the local and memory backends check (refreshed for the gauge at each scrape).
    replay: NonceCache,
    /// Seals journal entries' personal data (only journalling backends are asked to).
    sealer: Sealer,
    retention_ms: u64,
    commit_timeout: Duration,
}

impl StateStore {
    /// Opens (or creates) the store; the local log rebuilds its indexes (and migrates a v1 store) first.
    pub fn open(
        settings: StoreSettings,
        metrics: &Metrics,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StoreError> {
        Self::open_on(settings, metrics, clock, Arc::new(wal::fs::RealFs))
    }

    /// [`StateStore::open`] on a given file layer (tests use one that can lose unsynced bytes).
    pub fn open_on(
        settings: StoreSettings,
        metrics: &Metrics,
        clock: Arc<dyn Clock>,
        fs: Arc<dyn wal::fs::Fs>,
    ) -> Result<Self, StoreError> {
        let nonces = NonceCache::new(settings.replay_capacity, metrics.replay_gauges());
        // Memory stores never persist or journal: an ephemeral key that is never used.
        let sealer = settings.sealer.clone().unwrap_or_else(Sealer::random);
        let retention_ms = u64::try_from(settings.retention.as_millis()).unwrap_or(u64::MAX);
        let wal = |data_dir: PathBuf, full: bool| {
            wal::WalStore::open(wal::WalSettings {
                fs: fs.clone(),
                data_dir,
                retention_ms,
                clock: clock.clone(),
                full,
                max_records: settings.max_records,
                segment_bytes: wal::SEGMENT_BYTES,
                nonces: nonces.clone(),
                records_gauge: metrics.store_records.clone(),
                sealer: sealer.clone(),
            })
        };
        let backend: Box<dyn Backend> = match settings.kind {
            StoreKind::Memory => Box::new(memory::MemoryStore::new(
                nonces.clone(),
                settings.max_records,
                metrics.store_records.clone(),
            )),
            StoreKind::Local { data_dir } => {
                migrate::migrate_if_needed(&data_dir, &*clock)?;
                Box::new(wal(data_dir, true)?)
            }
            #[cfg(not(feature = "redis"))]
            StoreKind::Redis { .. } => {
                return Err(StoreError::failed(std::io::Error::new(
                    std::io::ErrorKind::Unsupported,
                    "this koogate was built without the `redis` feature",
                )))
            }
            #[cfg(feature = "redis")]
            StoreKind::Redis {
                url,
                prefix,
                timeout,
                data_dir,
                ca_file,
            } => Box::new(redis::RedisStore::open(
                redis::RedisSettings {
                    url,
                    prefix,
                    timeout,
                    ca_file,
                    retention: settings.retention,
                    sealer: sealer.clone(),
                },
                wal(data_dir, false)?,
            )?),
        };
        Ok(Self {
            backend,
            replay: nonces,
            sealer,
            retention_ms,
            commit_timeout: settings.commit_timeout,
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
        self.backend.check_replay(call, now_ms).await
    }

    /// Holds `key` against other replicas until [`StateStore::release`] (Redis); `None` for one process.
    pub async fn claim(
        &self,
        key: &str,
        deadline: tokio::time::Instant,
    ) -> Result<Option<Claim>, StoreError> {
        self.backend.claim(key, deadline).await
    }

    /// Gives a claim back, if it is still this call's.
    pub async fn release(&self, claim: &Claim) {
        self.backend.release(claim).await
    }

    /// The recorded answer for an idempotency key, if any (and not past retention).
    pub async fn lookup(&self, key: &str, now_ms: u64) -> Result<Option<Record>, StoreError> {
        let found = self.backend.lookup(key).await?;
        Ok(found.filter(|r| r.at_ms.saturating_add(self.retention_ms) >= now_ms))
    }

    /// Whether the backend can take commits, for readiness.
    pub fn health(&self) -> Health {
        self.backend.health()
    }

    /// Makes a call's nonce, record and journal entry durable; returns once they are, or fails after the commit
    /// timeout (a stalled disk or Redis): the call is then answered `000005` and the store reported unready.
    pub async fn commit(&self, commit: Commit, now_ms: u64) -> Result<(), StoreError> {
        match tokio::time::timeout(self.commit_timeout, self.backend.commit(commit, now_ms)).await {
            Ok(result) => result,
            Err(_) => {
                self.backend.health().mark_down();
                Err(StoreError::Timeout)
            }
        }
    }

    /// Seals personal data for a journal entry.
    pub fn seal(&self, plain: &[u8]) -> String {
        self.sealer.seal(plain)
    }

    /// Whether this store writes a journal (only the durable backends do).
    pub fn journals(&self) -> bool {
        self.backend.journals()
    }
}

#[cfg(test)]
mod tests;
