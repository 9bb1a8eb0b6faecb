//! The Redis backend: nonces (set-if-absent with expiry), idempotency records and cross-replica claims live in
//! Redis so several koogate replicas behave as one. Every failure is reported, so callers fail closed; a
//! background probe keeps the health flag (and `/readyz`) current and reconnects when Redis returns. The journal
//! goes to a local log that holds nothing else. Answers are sealed before they leave for Redis.

use super::replay::ReplayError;
use super::seal::Sealer;
use super::wal::WalStore;
use super::{Backend, BoxFuture, Claim, Commit, Health, Record, StoreError, StoredRecord};
use crate::protocol::verified::Verified;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// How often the probe checks Redis.
const PROBE_EVERY: Duration = Duration::from_millis(500);
/// How long a claim outlives its call's deadline: room for saving the record and the journal after a late answer.
/// Longer than any commit may take (`store.commit_timeout_ms` is at most 4 s), so a claim cannot lapse first.
const CLAIM_COMMIT_ALLOWANCE: Duration = Duration::from_secs(5);
/// How often a call waits to see whether another replica's claim on the same operation is gone.
const CLAIM_POLL: Duration = Duration::from_millis(25);

pub(super) struct RedisSettings {
    pub url: String,
    pub prefix: String,
    pub timeout: Duration,
    /// PEM CA trusted for `rediss://` instead of the system roots.
    pub ca_file: Option<PathBuf>,
    /// Records expire in Redis after this.
    pub retention: Duration,
    pub sealer: Sealer,
}

pub(super) struct RedisStore {
    inner: Arc<Inner>,
    journal: WalStore,
    retention: Duration,
    sealer: Sealer,
}

struct Inner {
    client: redis::Client,
    connection: Mutex<Option<ConnectionManager>>,
    prefix: String,
    timeout: Duration,
    healthy: Arc<AtomicBool>,
}

use StoreError as E;
fn failed(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    E::failed(e)
}

impl RedisStore {
    /// Connects lazily (the probe reports whether Redis is up); `journal` keeps the journal.
    pub fn open(settings: RedisSettings, journal: WalStore) -> Result<Self, StoreError> {
        let url = settings.url.as_str();
        let client = match &settings.ca_file {
            None => redis::Client::open(url).map_err(failed)?,
            Some(path) => {
                let root_cert = std::fs::read(path).map_err(failed)?;
                let certificates = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root_cert),
                };
                redis::Client::build_with_tls(url, certificates).map_err(failed)?
            }
        };
        let store = Arc::new(Inner {
            client,
            connection: Mutex::new(None),
            prefix: settings.prefix,
            timeout: settings.timeout,
            healthy: Arc::new(AtomicBool::new(false)),
        });
        let probe = Arc::downgrade(&store);
        tokio::spawn(async move {
            while let Some(store) = probe.upgrade() {
                let up = store.ping().await.is_ok();
                store.healthy.store(up, Ordering::SeqCst);
                drop(store);
                tokio::time::sleep(PROBE_EVERY).await;
            }
        });
        Ok(Self {
            inner: store,
            journal,
            retention: settings.retention,
            sealer: settings.sealer,
        })
    }
}

impl Inner {
    async fn connection(&self) -> Result<ConnectionManager, StoreError> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            return Ok(connection.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let connect = ConnectionManager::new_with_config(self.client.clone(), config);
        let connection = tokio::time::timeout(self.timeout, connect)
            .await
            .map_err(|_| StoreError::Timeout)?
            .map_err(failed)?;
        *slot = Some(connection.clone());
        Ok(connection)
    }

    /// Runs one command with the timeout; marks the store unhealthy on failure.
    async fn query<T: redis::FromRedisValue>(&self, command: redis::Cmd) -> Result<T, StoreError> {
        let result = async {
            let mut connection = self.connection().await?;
            tokio::time::timeout(self.timeout, command.query_async::<T>(&mut connection))
                .await
                .map_err(|_| StoreError::Timeout)?
                .map_err(failed)
        }
        .await;
        if result.is_err() {
            self.healthy.store(false, Ordering::SeqCst);
        }
        result
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.query::<String>(redis::cmd("PING")).await.map(|_| ())
    }

    /// `true` when the replay key was new (and is now remembered until `expires_ms`, which already holds the replay
    /// margin past the window). The expiry is sent as a TTL relative to `now_ms`, the call's one clock reading (the
    /// one its freshness was judged at), so it does not depend on Redis's clock agreeing with this host's.
    async fn remember(&self, key: &str, expires_ms: u64, now_ms: u64) -> Result<bool, StoreError> {
        let ttl_ms = expires_ms.saturating_sub(now_ms).max(1);
        let mut cmd = redis::cmd("SET");
        cmd.arg(format!("{}nonce:{key}", self.prefix))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms);
        Ok(self.query::<Option<String>>(cmd).await?.is_some())
    }

    async fn record(&self, key: &str) -> Result<Option<StoredRecord>, StoreError> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(format!("{}record:{key}", self.prefix));
        match self.query::<Option<Vec<u8>>>(cmd).await? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|_| StoreError::Corrupt),
        }
    }

    async fn save(
        &self,
        key: &str,
        record: &StoredRecord,
        retention: Duration,
    ) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(record).map_err(failed)?;
        let mut cmd = redis::cmd("SET");
        cmd.arg(format!("{}record:{key}", self.prefix))
            .arg(bytes)
            .arg("PX")
            .arg(retention.as_millis().max(1) as u64);
        self.query::<String>(cmd).await.map(|_| ())
    }

    /// Claims `key` for `owner` until `ttl` passes or [`Inner::release`]; `false` if another holds it.
    async fn claim(&self, key: &str, owner: &str, ttl: Duration) -> Result<bool, StoreError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(format!("{}claim:{key}", self.prefix))
            .arg(owner)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64);
        Ok(self.query::<Option<String>>(cmd).await?.is_some())
    }

    /// Releases `key` only if `owner` still holds it (a claim that expired may belong to another replica now).
    async fn release(&self, key: &str, owner: &str) -> Result<(), StoreError> {
        const COMPARE_AND_DELETE: &str =
            "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(COMPARE_AND_DELETE)
            .arg(1)
            .arg(format!("{}claim:{key}", self.prefix))
            .arg(owner);
        self.query::<i64>(cmd).await.map(|_| ())
    }
}

impl Backend for RedisStore {
    fn check_replay<'a>(
        &'a self,
        call: &'a Verified,
        now_ms: u64,
    ) -> BoxFuture<'a, Result<Result<(), ReplayError>, StoreError>> {
        Box::pin(async move {
            let fresh = self
                .inner
                .remember(&call.replay_key(), call.replay_expires_ms(), now_ms)
                .await?;
            Ok(if fresh {
                Ok(())
            } else {
                Err(ReplayError::Replayed)
            })
        })
    }

    fn lookup<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Record>, StoreError>> {
        Box::pin(async move {
            let Some(stored) = self.inner.record(key).await? else {
                return Ok(None);
            };
            let answer = self
                .sealer
                .open(&stored.answer)
                .map_err(|_| StoreError::Corrupt)?;
            Ok(Some(Record {
                activity: stored.activity,
                fingerprint: stored.fingerprint,
                at_ms: stored.at_ms,
                answer: answer.to_vec(),
            }))
        })
    }

    fn commit<'a>(&'a self, commit: Commit, now_ms: u64) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            if let Some((key, r)) = commit.record {
                let sealed = StoredRecord {
                    answer: self.sealer.seal(&r.answer),
                    activity: r.activity,
                    fingerprint: r.fingerprint,
                    at_ms: r.at_ms,
                };
                self.inner.save(&key, &sealed, self.retention).await?;
            }
            let journal = Commit {
                entry: commit.entry,
                ..Commit::default()
            };
            self.journal.append(journal, now_ms).await
        })
    }

    fn health(&self) -> Health {
        let mut flags = self.journal_health();
        flags.push(self.inner.healthy.clone());
        Health::of(flags)
    }

    fn journals(&self) -> bool {
        true
    }

    /// Waits (until `deadline`) while another replica holds `key`. The claim outlives the deadline by
    /// [`CLAIM_COMMIT_ALLOWANCE`], so it cannot lapse between the upstream's answer and the record being saved.
    fn claim<'a>(
        &'a self,
        key: &'a str,
        deadline: tokio::time::Instant,
    ) -> BoxFuture<'a, Result<Option<Claim>, StoreError>> {
        Box::pin(async move {
            let owner = hex::encode(rand::random::<[u8; 16]>());
            loop {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                if left.is_zero() {
                    return Err(StoreError::Claimed);
                }
                if self
                    .inner
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
        })
    }

    fn release<'a>(&'a self, claim: &'a Claim) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let Err(e) = self.inner.release(&claim.key, &claim.owner).await {
                tracing::warn!(error = %e, "cannot release an idempotency claim; it expires by itself");
            }
        })
    }
}

impl RedisStore {
    fn journal_health(&self) -> Vec<Arc<AtomicBool>> {
        vec![self.journal.healthy_flag()]
    }
}
