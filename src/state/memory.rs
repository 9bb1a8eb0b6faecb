//! The memory backend: replay keys and records in process memory, nothing durable and no journal. Bounded: past
//! `max_records` it forgets the oldest half of the records (a throwaway store may forget; the log refuses instead).
//! Answers stay as they are: nothing leaves the process, so nothing is sealed.

use super::replay::{NonceCache, ReplayError};
use super::wal::log::{record_key, RecordKey};
use super::{Backend, BoxFuture, Commit, Health, Record, StoreError};
use crate::protocol::verified::Verified;
use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

pub struct MemoryStore {
    nonces: NonceCache,
    records: Mutex<HashMap<RecordKey, Record>>,
    max_records: usize,
    gauge: prometheus::IntGauge,
    healthy: Arc<AtomicBool>,
}

impl MemoryStore {
    pub fn new(nonces: NonceCache, max_records: usize, gauge: prometheus::IntGauge) -> Self {
        Self {
            nonces,
            records: Mutex::default(),
            max_records: max_records.max(2),
            gauge,
            healthy: Arc::new(AtomicBool::new(true)),
        }
    }
}

impl Backend for MemoryStore {
    fn check_replay<'a>(
        &'a self,
        call: &'a Verified,
        now_ms: u64,
    ) -> BoxFuture<'a, Result<Result<(), ReplayError>, StoreError>> {
        Box::pin(async move { Ok(self.nonces.check_and_remember(call, now_ms)) })
    }

    fn lookup<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Record>, StoreError>> {
        Box::pin(async move {
            let records = self.records.lock().map_err(|_| StoreError::Stopped)?;
            Ok(records.get(&record_key(key)).cloned())
        })
    }

    fn commit<'a>(&'a self, commit: Commit, _now_ms: u64) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let Some((key, record)) = commit.record else {
                return Ok(());
            };
            let mut map = self.records.lock().map_err(|_| StoreError::Stopped)?;
            if map.len() >= self.max_records {
                let mut ages: Vec<u64> = map.values().map(|r| r.at_ms).collect();
                ages.sort_unstable();
                let cutoff = ages[ages.len() / 2];
                map.retain(|_, r| r.at_ms > cutoff);
            }
            map.insert(record_key(&key), record);
            self.gauge.set(map.len() as i64);
            Ok(())
        })
    }

    fn health(&self) -> Health {
        Health::of([self.healthy.clone()])
    }

    fn journals(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The memory backend writes nothing anywhere, so it must not pay for AES-GCM: what it keeps is the answer itself.
    #[tokio::test]
    async fn answers_are_kept_as_they_are_not_sealed() {
        let gauge = || prometheus::IntGauge::new("g", "test").unwrap();
        let gauges = [(), ()].map(|()| crate::state::replay::ReplayGauges {
            entries: gauge(),
            capacity: gauge(),
        });
        let capacity = crate::state::replay::ReplayCapacity { v1: 1, v2: 1 };
        let store = MemoryStore::new(NonceCache::new(capacity, gauges), 10, gauge());
        let record = crate::state::tests::record("{\"password\":\"x\"}", 1);
        let commit = Commit {
            record: Some(("k".into(), record.clone())),
            ..Commit::default()
        };
        store.commit(commit, 1).await.unwrap();
        let kept = store.records.lock().unwrap()[&record_key("k")].clone();
        assert_eq!(kept.answer, record.answer);
    }
}
