//! The Redis backend: nonces (set-if-absent with expiry), idempotency records and cross-replica claims live in
//! Redis so several koogate replicas behave as one. Every failure is reported, so callers fail closed; a
//! background probe keeps the health flag (and `/readyz`) current and reconnects when Redis returns.

use super::{StoreError, StoredRecord};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// How often the probe checks Redis.
const PROBE_EVERY: Duration = Duration::from_millis(500);

pub(super) struct RedisStore {
    client: redis::Client,
    connection: Mutex<Option<ConnectionManager>>,
    prefix: String,
    timeout: Duration,
    healthy: Arc<AtomicBool>,
}

fn failed(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Failed(Box::new(e))
}

impl RedisStore {
    /// `ca_file` (PEM) is trusted for `rediss://` instead of the system's roots, for a private CA.
    pub fn open(
        url: &str,
        prefix: String,
        timeout: Duration,
        ca_file: Option<&Path>,
    ) -> Result<Arc<Self>, StoreError> {
        let client = match ca_file {
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
        let store = Arc::new(Self {
            client,
            connection: Mutex::new(None),
            prefix,
            timeout,
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
        Ok(store)
    }

    pub fn health(&self) -> Arc<AtomicBool> {
        self.healthy.clone()
    }

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
    pub async fn remember(
        &self,
        key: &str,
        expires_ms: u64,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let ttl_ms = expires_ms.saturating_sub(now_ms).max(1);
        let mut cmd = redis::cmd("SET");
        cmd.arg(format!("{}nonce:{key}", self.prefix))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms);
        Ok(self.query::<Option<String>>(cmd).await?.is_some())
    }

    pub async fn record(&self, key: &str) -> Result<Option<StoredRecord>, StoreError> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(format!("{}record:{key}", self.prefix));
        match self.query::<Option<Vec<u8>>>(cmd).await? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|_| StoreError::Corrupt),
        }
    }

    pub async fn save(
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

    /// Claims `key` for `owner` until `ttl` passes or [`RedisStore::release`]; `false` if another holds it.
    pub async fn claim(&self, key: &str, owner: &str, ttl: Duration) -> Result<bool, StoreError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(format!("{}claim:{key}", self.prefix))
            .arg(owner)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64);
        Ok(self.query::<Option<String>>(cmd).await?.is_some())
    }

    /// Releases `key` only if `owner` still holds it (a claim that expired may belong to another replica now).
    pub async fn release(&self, key: &str, owner: &str) -> Result<(), StoreError> {
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
