//! The usage relay's metrics, registered into the gateway's registry. Labels come only from fixed lists.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// KooGallery's documented usage-data codes; anything else is counted as `other`.
const KNOWN_CODES: &[&str] = &[
    "MKT.0100", "MKT.0101", "MKT.0102", "MKT.0150", "MKT.0154", "MKT.0999", "MKT.9001", "MKT.9002",
    "MKT.9003", "MKT.9004",
];

/// How a push attempt ended (`koogate_usage_pushes_total{outcome}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    Success,
    /// `MKT.0999`, HTTP 5xx, timeout, unreachable: retried with backoff.
    Retry,
    /// Credentials or configuration refused (`MKT.0102`, `MKT.0154`, `APIGW.0301`, ...): kept and retried slowly.
    Blocked,
    /// A record-level refusal: the batch is split until the record is found.
    RecordError,
    /// More than KooGallery takes in one call (`MKT.9003`): the batch is split.
    TooMany,
}

impl PushOutcome {
    fn label(self) -> &'static str {
        match self {
            PushOutcome::Success => "success",
            PushOutcome::Retry => "retry",
            PushOutcome::Blocked => "blocked",
            PushOutcome::RecordError => "record_error",
            PushOutcome::TooMany => "too_many",
        }
    }
}

#[derive(Clone)]
pub struct UsageMetrics {
    pub queue_records: IntGauge,
    pub oldest_queued_age_seconds: IntGauge,
    /// Records the app submitted, by outcome (`accepted`, `duplicate`, `rejected`).
    pub submitted: IntCounterVec,
    pub sent: IntCounter,
    /// Records KooGallery refused for good, by code.
    pub rejected: IntCounterVec,
    pub pushes: IntCounterVec,
}

impl UsageMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let metrics = Self {
            queue_records: IntGauge::new(
                "koogate_usage_queue_records",
                "Usage records accepted and not yet acknowledged by KooGallery",
            )?,
            oldest_queued_age_seconds: IntGauge::new(
                "koogate_usage_oldest_queued_age_seconds",
                "Age of the oldest queued usage record (0 when the queue is empty)",
            )?,
            submitted: IntCounterVec::new(
                Opts::new(
                    "koogate_usage_records_submitted_total",
                    "Usage records submitted by the app, by outcome",
                ),
                &["outcome"],
            )?,
            sent: IntCounter::new(
                "koogate_usage_records_sent_total",
                "Usage records acknowledged by KooGallery (MKT.0000)",
            )?,
            rejected: IntCounterVec::new(
                Opts::new(
                    "koogate_usage_records_rejected_total",
                    "Usage records KooGallery refused for good, by code",
                ),
                &["code"],
            )?,
            pushes: IntCounterVec::new(
                Opts::new(
                    "koogate_usage_pushes_total",
                    "Calls to KooGallery's usage-data API, by outcome",
                ),
                &["outcome"],
            )?,
        };
        registry.register(Box::new(metrics.queue_records.clone()))?;
        registry.register(Box::new(metrics.oldest_queued_age_seconds.clone()))?;
        registry.register(Box::new(metrics.submitted.clone()))?;
        registry.register(Box::new(metrics.sent.clone()))?;
        registry.register(Box::new(metrics.rejected.clone()))?;
        registry.register(Box::new(metrics.pushes.clone()))?;
        for outcome in ["accepted", "duplicate", "rejected"] {
            metrics.submitted.with_label_values(&[outcome]);
        }
        Ok(metrics)
    }

    pub fn push(&self, outcome: PushOutcome) {
        self.pushes.with_label_values(&[outcome.label()]).inc();
    }

    pub fn rejected(&self, code: &str) {
        let label = KNOWN_CODES
            .iter()
            .find(|c| **c == code)
            .copied()
            .unwrap_or("other");
        self.rejected.with_label_values(&[label]).inc();
    }

    /// Publishes the queue's depth and the age of its oldest record.
    pub fn queue(&self, depth: u64, oldest_accepted_ms: Option<u64>, now_ms: u64) {
        self.queue_records.set(depth as i64);
        let age = oldest_accepted_ms.map_or(0, |at| now_ms.saturating_sub(at) / 1000);
        self.oldest_queued_age_seconds.set(age as i64);
    }
}
