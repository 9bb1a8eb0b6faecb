//! The memory backend: replay keys and records in process memory, nothing durable and no journal. Bounded: past
//! `max_records` it forgets the oldest half of the records (a throwaway store may forget; the log refuses instead).

use super::replay::{NonceCache, ReplayError};
use super::{Backend, BoxFuture, Commit, Health, StoreError, StoredRecord};
use crate::protocol::verified::Verified;
use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

pub struct MemoryStore {
    nonces: NonceCache,
    records: Mutex<HashMap<String, StoredRecord>>,
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

    fn lookup<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredRecord>, StoreError>> {
        Box::pin(async move {
            let records = self.records.lock().map_err(|_| StoreError::Stopped)?;
            Ok(records.get(key).cloned())
        })
    }

    fn commit<'a>(
        &'a self,
        commit: Commit<String>,
        _now_ms: u64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
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
            map.insert(key, record);
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
