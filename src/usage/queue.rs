//! The durable usage queue: a redb file of its own under `usage.data_dir` (`usage.redb`), committed with fsync
//! before the app hears "accepted". It also remembers every `metering_sn` it has seen, so a record submitted
//! twice is sent once, and the records KooGallery refused, with KooGallery's code and reason.

use super::record::WireRecord;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;

/// seq → [`Queued`] (JSON), oldest first.
const QUEUED: TableDefinition<u64, &[u8]> = TableDefinition::new("queued");
/// metering_sn → [`SnState`] (JSON).
const SNS: TableDefinition<&str, &[u8]> = TableDefinition::new("metering_sns");
/// seq → [`Rejected`] (JSON): records KooGallery refused for good.
const REJECTED: TableDefinition<u64, &[u8]> = TableDefinition::new("rejected");
/// Counters and the next sequence number.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

const NEXT_SEQ: &str = "next_seq";
const SENT_TOTAL: &str = "sent_total";
const REJECTED_TOTAL: &str = "rejected_total";

/// The file name inside `usage.data_dir`.
pub const FILE_NAME: &str = "usage.redb";

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("usage queue storage failed")]
    Store(#[source] Box<redb::Error>),
    #[error("usage queue entry is unreadable")]
    Corrupt(#[source] serde_json::Error),
    #[error("usage queue task failed")]
    Task(#[source] tokio::task::JoinError),
}

fn store<E: Into<redb::Error>>(e: E) -> QueueError {
    QueueError::Store(Box::new(e.into()))
}

/// A record waiting to be sent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Queued {
    pub record: WireRecord,
    pub accepted_ms: u64,
}

/// What koogate knows about a `metering_sn`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SnState {
    Queued {
        seq: u64,
    },
    Sent {
        at_ms: u64,
    },
    Rejected {
        at_ms: u64,
        code: String,
        reason: String,
    },
}

/// A record KooGallery refused for good.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    pub metering_sn: String,
    pub instance_id: String,
    pub code: String,
    pub reason: String,
    pub at_ms: u64,
}

/// The outcome of offering one record to the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offer {
    Accepted,
    /// The `metering_sn` is already known; nothing was added.
    Duplicate(SnState),
    /// `usage.max_queued_records` reached; nothing was added.
    Full,
}

/// Counts and the most recent rejections, for `koogate usage status` and the metrics.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub queued: u64,
    pub oldest_accepted_ms: Option<u64>,
    pub sent_total: u64,
    pub rejected_total: u64,
    pub recent_rejected: Vec<Rejected>,
}

/// The queue; cheap to clone. Every method blocks on disk I/O: call it from `spawn_blocking`.
#[derive(Clone)]
pub struct Queue {
    db: Arc<Database>,
}

impl Queue {
    /// Opens (or creates) `dir/usage.redb`. redb locks the file: one process at a time.
    pub fn open(dir: &Path) -> Result<Self, QueueError> {
        // 0700/0600: the queue holds the seller's billing data.
        crate::private_fs::create_dir_all(dir).map_err(store)?;
        crate::private_fs::create_if_missing(&dir.join(FILE_NAME)).map_err(store)?;
        Self::with_database(Database::create(dir.join(FILE_NAME)).map_err(store)?)
    }

    /// Uses an opened database (tests give it a storage layer that can lose unsynced writes).
    fn with_database(db: Database) -> Result<Self, QueueError> {
        let txn = db.begin_write().map_err(store)?;
        txn.open_table(QUEUED).map_err(store)?;
        txn.open_table(SNS).map_err(store)?;
        txn.open_table(REJECTED).map_err(store)?;
        txn.open_table(META).map_err(store)?;
        txn.commit().map_err(store)?;
        Ok(Self { db: Arc::new(db) })
    }

    /// Offers records in order, in one transaction made durable before it returns.
    pub fn offer(
        &self,
        records: &[WireRecord],
        now_ms: u64,
        max_queued: u64,
    ) -> Result<Vec<Offer>, QueueError> {
        let txn = self.db.begin_write().map_err(store)?;
        let mut offers = Vec::with_capacity(records.len());
        {
            let mut queued = txn.open_table(QUEUED).map_err(store)?;
            let mut sns = txn.open_table(SNS).map_err(store)?;
            let mut meta = txn.open_table(META).map_err(store)?;
            let mut next = get(&meta, NEXT_SEQ)?;
            let mut depth = queued.len().map_err(store)?;
            for record in records {
                if let Some(known) = sns.get(record.metering_sn.as_str()).map_err(store)? {
                    let state =
                        serde_json::from_slice(known.value()).map_err(QueueError::Corrupt)?;
                    offers.push(Offer::Duplicate(state));
                    continue;
                }
                if depth >= max_queued {
                    offers.push(Offer::Full);
                    continue;
                }
                let entry = Queued {
                    record: record.clone(),
                    accepted_ms: now_ms,
                };
                queued
                    .insert(next, json(&entry)?.as_slice())
                    .map_err(store)?;
                sns.insert(
                    record.metering_sn.as_str(),
                    json(&SnState::Queued { seq: next })?.as_slice(),
                )
                .map_err(store)?;
                next += 1;
                depth += 1;
                offers.push(Offer::Accepted);
            }
            meta.insert(NEXT_SEQ, next).map_err(store)?;
        }
        txn.commit().map_err(store)?;
        Ok(offers)
    }

    /// Up to `limit` queued records, oldest first.
    pub fn peek(&self, limit: usize) -> Result<Vec<(u64, Queued)>, QueueError> {
        let txn = self.db.begin_read().map_err(store)?;
        let table = txn.open_table(QUEUED).map_err(store)?;
        let mut out = Vec::new();
        for item in table.iter().map_err(store)?.take(limit) {
            let (seq, value) = item.map_err(store)?;
            let entry = serde_json::from_slice(value.value()).map_err(QueueError::Corrupt)?;
            out.push((seq.value(), entry));
        }
        Ok(out)
    }

    /// KooGallery acknowledged these records: they leave the queue, their `metering_sn` is remembered as sent.
    pub fn mark_sent(&self, sent: &[(u64, Queued)], now_ms: u64) -> Result<(), QueueError> {
        let txn = self.db.begin_write().map_err(store)?;
        {
            let mut queued = txn.open_table(QUEUED).map_err(store)?;
            let mut sns = txn.open_table(SNS).map_err(store)?;
            let mut meta = txn.open_table(META).map_err(store)?;
            let state = json(&SnState::Sent { at_ms: now_ms })?;
            let mut removed = 0;
            for (seq, entry) in sent {
                if queued.remove(*seq).map_err(store)?.is_some() {
                    removed += 1;
                }
                sns.insert(entry.record.metering_sn.as_str(), state.as_slice())
                    .map_err(store)?;
            }
            let total = get(&meta, SENT_TOTAL)? + removed;
            meta.insert(SENT_TOTAL, total).map_err(store)?;
        }
        txn.commit().map_err(store)
    }

    /// KooGallery refused this record for good: it leaves the queue and is kept with the code and reason.
    pub fn mark_rejected(
        &self,
        seq: u64,
        entry: &Queued,
        code: &str,
        reason: &str,
        now_ms: u64,
    ) -> Result<(), QueueError> {
        let txn = self.db.begin_write().map_err(store)?;
        {
            let mut queued = txn.open_table(QUEUED).map_err(store)?;
            let mut sns = txn.open_table(SNS).map_err(store)?;
            let mut rejected = txn.open_table(REJECTED).map_err(store)?;
            let mut meta = txn.open_table(META).map_err(store)?;
            queued.remove(seq).map_err(store)?;
            let sn = entry.record.metering_sn.as_str();
            let state = SnState::Rejected {
                at_ms: now_ms,
                code: code.to_owned(),
                reason: reason.to_owned(),
            };
            sns.insert(sn, json(&state)?.as_slice()).map_err(store)?;
            let kept = Rejected {
                metering_sn: sn.to_owned(),
                instance_id: entry.record.instance_id.clone(),
                code: code.to_owned(),
                reason: reason.to_owned(),
                at_ms: now_ms,
            };
            rejected
                .insert(seq, json(&kept)?.as_slice())
                .map_err(store)?;
            let total = get(&meta, REJECTED_TOTAL)? + 1;
            meta.insert(REJECTED_TOTAL, total).map_err(store)?;
        }
        txn.commit().map_err(store)
    }

    /// Counts, the oldest queued record's acceptance time, and the `recent` latest rejections (newest first).
    pub fn snapshot(&self, recent: usize) -> Result<Snapshot, QueueError> {
        let txn = self.db.begin_read().map_err(store)?;
        let queued = txn.open_table(QUEUED).map_err(store)?;
        let rejected = txn.open_table(REJECTED).map_err(store)?;
        let meta = txn.open_table(META).map_err(store)?;
        let oldest = match queued.first().map_err(store)? {
            Some((_, value)) => Some(
                serde_json::from_slice::<Queued>(value.value())
                    .map_err(QueueError::Corrupt)?
                    .accepted_ms,
            ),
            None => None,
        };
        let mut recent_rejected = Vec::new();
        for item in rejected.iter().map_err(store)?.rev().take(recent) {
            let (_, value) = item.map_err(store)?;
            recent_rejected
                .push(serde_json::from_slice(value.value()).map_err(QueueError::Corrupt)?);
        }
        Ok(Snapshot {
            queued: queued.len().map_err(store)?,
            oldest_accepted_ms: oldest,
            sent_total: read(&meta, SENT_TOTAL)?,
            rejected_total: read(&meta, REJECTED_TOTAL)?,
            recent_rejected,
        })
    }

    /// Forgets sent and rejected `metering_sn`s (and kept rejections) older than `before_ms`; queued ones stay.
    pub fn purge(&self, before_ms: u64) -> Result<(), QueueError> {
        let txn = self.db.begin_write().map_err(store)?;
        {
            let mut sns = txn.open_table(SNS).map_err(store)?;
            sns.retain(|_, value| match serde_json::from_slice::<SnState>(value) {
                Ok(SnState::Sent { at_ms } | SnState::Rejected { at_ms, .. }) => at_ms >= before_ms,
                _ => true,
            })
            .map_err(store)?;
            let mut rejected = txn.open_table(REJECTED).map_err(store)?;
            rejected
                .retain(|_, value| {
                    serde_json::from_slice::<Rejected>(value).is_ok_and(|r| r.at_ms >= before_ms)
                })
                .map_err(store)?;
        }
        txn.commit().map_err(store)
    }
}

fn json<T: Serialize>(value: &T) -> Result<Vec<u8>, QueueError> {
    serde_json::to_vec(value).map_err(QueueError::Corrupt)
}

fn get(meta: &redb::Table<'_, &str, u64>, key: &str) -> Result<u64, QueueError> {
    Ok(meta.get(key).map_err(store)?.map_or(0, |v| v.value()))
}

fn read(meta: &redb::ReadOnlyTable<&str, u64>, key: &str) -> Result<u64, QueueError> {
    Ok(meta.get(key).map_err(store)?.map_or(0, |v| v.value()))
}

#[cfg(test)]
mod tests;
