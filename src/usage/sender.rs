//! The background sender: takes queued records oldest first, pushes batches of at most `usage.batch_max_records`
//! to KooGallery, and settles each record by KooGallery's answer (see [`super::verdict`]).

use super::metrics::{PushOutcome, UsageMetrics};
use super::queue::{Queue, QueueError, Queued};
use super::record::WireRecord;
use super::verdict::{classify, PushAnswer, PushFailure, Verdict};
use crate::clock::Clock;
use serde::Serialize;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};

/// Sends one signed usage-data call (`POST …/isv/usage-data`) with this body and returns what came back.
pub trait UsagePush: Send + Sync + 'static {
    fn push(
        &self,
        body: Vec<u8>,
    ) -> Pin<Box<dyn Future<Output = Result<PushAnswer, PushFailure>> + Send + '_>>;
}

/// How often the gauges are refreshed and old outcomes purged while the queue is idle.
const IDLE_TICK: Duration = Duration::from_secs(5);
/// Forgetting old outcomes is housekeeping; hourly is plenty.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone)]
pub struct SenderSettings {
    pub batch_max_records: usize,
    pub batch_linger: Duration,
    pub retry_initial: Duration,
    pub retry_max: Duration,
    pub retention: Duration,
}

pub struct Sender {
    pub queue: Queue,
    pub push: Arc<dyn UsagePush>,
    pub metrics: UsageMetrics,
    pub clock: Arc<dyn Clock>,
    pub settings: SenderSettings,
    /// Notified when the listener queued records.
    pub wake: Arc<Notify>,
}

/// The body KooGallery receives: one key, records with sorted keys, compact.
#[derive(Serialize)]
struct Body<'a> {
    usage_records: Vec<&'a WireRecord>,
}

/// The usage-data body for these records (`{"usage_records":[…]}`, keys in natural order, no whitespace).
pub fn body(records: &[(u64, Queued)]) -> Vec<u8> {
    let body = Body {
        usage_records: records.iter().map(|(_, q)| &q.record).collect(),
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

/// The wait before retry number `attempt` (0-based): exponential from `initial`, capped at `max`, with "equal
/// jitter" (half fixed, half random by `fraction` in 0..1), so retries spread out but never come back at once.
pub fn backoff(initial: Duration, max: Duration, attempt: u32, fraction: f64) -> Duration {
    let exp = initial.saturating_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX));
    let capped = exp.min(max);
    capped / 2 + capped.mul_f64(fraction.clamp(0.0, 1.0) / 2.0)
}

/// Why the sender loop stopped delivering.
enum Halt {
    Stopped,
    Queue(QueueError),
}

impl Sender {
    /// Runs until `stop` turns true. A push in flight is finished and settled first, so the queue is left exactly
    /// as KooGallery's answers say: nothing is dropped, nothing acknowledged is sent again.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut last_purge: Option<Instant> = None;
        loop {
            if *stop.borrow() {
                return;
            }
            if last_purge.is_none_or(|at| at.elapsed() > PURGE_EVERY) {
                let before = self
                    .clock
                    .now_ms()
                    .saturating_sub(self.settings.retention.as_millis() as u64);
                if let Err(e) = self.blocking(move |q| q.purge(before)).await {
                    tracing::warn!(error = %e, "usage queue purge failed");
                }
                last_purge = Some(Instant::now());
            }
            let batch = match self
                .blocking({
                    let limit = self.settings.batch_max_records;
                    move |q| q.peek(limit)
                })
                .await
            {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::error!(error = %e, "usage queue unreadable; retrying");
                    if self.pause(self.settings.retry_max, &mut stop).await {
                        return;
                    }
                    continue;
                }
            };
            self.publish().await;
            if batch.is_empty() {
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(IDLE_TICK) => {}
                    _ = stopped(&mut stop) => return,
                }
                if self.pause(self.settings.batch_linger, &mut stop).await {
                    return;
                }
                continue;
            }
            match self.deliver(batch, &mut stop).await {
                Ok(()) => {}
                Err(Halt::Stopped) => return,
                Err(Halt::Queue(e)) => {
                    tracing::error!(error = %e, "usage queue write failed; the batch stays queued");
                    if self.pause(self.settings.retry_max, &mut stop).await {
                        return;
                    }
                }
            }
        }
    }

    /// Pushes one batch until every record in it is settled (sent or rejected), splitting it on record-level
    /// refusals and retrying it with backoff on transient ones.
    async fn deliver(
        &self,
        batch: Vec<(u64, Queued)>,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), Halt> {
        let mut pending = vec![batch];
        let mut attempt = 0u32;
        while let Some(batch) = pending.pop() {
            if *stop.borrow() {
                return Err(Halt::Stopped);
            }
            let started = Instant::now();
            let outcome = self.push.push(body(&batch)).await;
            let verdict = classify(&outcome);
            let records = batch.len();
            let latency_ms = started.elapsed().as_millis() as u64;
            match verdict {
                Verdict::Done => {
                    self.metrics.push(PushOutcome::Success);
                    let now = self.clock.now_ms();
                    let settled = batch.clone();
                    self.blocking(move |q| q.mark_sent(&settled, now))
                        .await
                        .map_err(Halt::Queue)?;
                    self.metrics.sent.inc_by(records as u64);
                    tracing::info!(
                        records,
                        latency_ms,
                        "usage records acknowledged by KooGallery"
                    );
                    attempt = 0;
                }
                Verdict::TooMany { reason } | Verdict::RecordError { reason, .. }
                    if records > 1 =>
                {
                    self.metrics.push(PushOutcome::RecordError);
                    tracing::warn!(records, reason = %reason, "usage batch refused; splitting it to find the record");
                    let mut first = batch;
                    let second = first.split_off(records / 2);
                    pending.push(second);
                    pending.push(first);
                }
                Verdict::TooMany { reason } => {
                    self.reject(&batch, "MKT.9003", &reason).await?;
                }
                Verdict::RecordError { code, reason } => {
                    self.metrics.push(PushOutcome::RecordError);
                    self.reject(&batch, &code, &reason).await?;
                }
                Verdict::Retry { reason } => {
                    self.metrics.push(PushOutcome::Retry);
                    let wait = self.wait(attempt);
                    tracing::warn!(records, attempt, reason = %reason, retry_in_ms = wait.as_millis() as u64,
                        "usage push failed; retrying");
                    pending.push(batch);
                    attempt = attempt.saturating_add(1);
                    if self.pause(wait, stop).await {
                        return Err(Halt::Stopped);
                    }
                }
                Verdict::Blocked { code, reason } => {
                    self.metrics.push(PushOutcome::Blocked);
                    let wait = self.wait(attempt);
                    tracing::error!(records, code = %code, reason = %reason, retry_in_ms = wait.as_millis() as u64,
                        "KooGallery refused the usage push's credentials or signature; records stay queued");
                    pending.push(batch);
                    attempt = attempt.saturating_add(1);
                    if self.pause(wait, stop).await {
                        return Err(Halt::Stopped);
                    }
                }
            }
            self.publish().await;
        }
        Ok(())
    }

    async fn reject(&self, batch: &[(u64, Queued)], code: &str, reason: &str) -> Result<(), Halt> {
        let now = self.clock.now_ms();
        for (seq, entry) in batch {
            let (seq, entry, c, r) = (*seq, entry.clone(), code.to_owned(), reason.to_owned());
            tracing::warn!(metering_sn = %entry.record.metering_sn, code = %c, reason = %r,
                "usage record rejected by KooGallery; kept as rejected");
            self.blocking(move |q| q.mark_rejected(seq, &entry, &c, &r, now))
                .await
                .map_err(Halt::Queue)?;
            self.metrics.rejected(code);
        }
        Ok(())
    }

    fn wait(&self, attempt: u32) -> Duration {
        backoff(
            self.settings.retry_initial,
            self.settings.retry_max,
            attempt,
            rand::random::<f64>(),
        )
    }

    /// Sleeps for `wait`; true when `stop` turned true meanwhile.
    async fn pause(&self, wait: Duration, stop: &mut watch::Receiver<bool>) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(wait) => *stop.borrow(),
            _ = stopped(stop) => true,
        }
    }

    async fn publish(&self) {
        if let Ok(snapshot) = self.blocking(|q| q.snapshot(0)).await {
            self.metrics.queue(
                snapshot.queued,
                snapshot.oldest_accepted_ms,
                self.clock.now_ms(),
            );
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Queue) -> Result<T, QueueError> + Send + 'static,
    ) -> Result<T, QueueError> {
        let queue = self.queue.clone();
        tokio::task::spawn_blocking(move || f(&queue))
            .await
            .map_err(QueueError::Task)?
    }
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    while !*stop.borrow() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests;
