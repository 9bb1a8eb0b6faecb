//! ACME metrics, registered into the gateway's registry: attempts by outcome and the last attempt and success.

use prometheus::{IntCounterVec, IntGauge, Opts, Registry};

/// Every `outcome` label value of `koogate_acme_attempts_total` (see `AcmeError::outcome`).
pub const OUTCOMES: &[&str] = &[
    "success",
    "config",
    "account",
    "order",
    "challenge",
    "certificate",
    "storage",
];

#[derive(Clone)]
pub struct AcmeMetrics {
    /// Attempts to obtain a certificate, by outcome.
    pub attempts: IntCounterVec,
    pub last_attempt: IntGauge,
    pub last_success: IntGauge,
}

impl AcmeMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let attempts = IntCounterVec::new(
            Opts::new(
                "koogate_acme_attempts_total",
                "Attempts to obtain a certificate from the ACME CA, by outcome",
            ),
            &["outcome"],
        )?;
        let last_attempt = IntGauge::new(
            "koogate_acme_last_attempt_timestamp_seconds",
            "When the last attempt to obtain a certificate started (Unix seconds; 0 before the first)",
        )?;
        let last_success = IntGauge::new(
            "koogate_acme_last_success_timestamp_seconds",
            "When a certificate was last obtained (Unix seconds; 0 if none since start)",
        )?;
        for outcome in OUTCOMES {
            // Every series exists from the start, so rate() and the alerts see a zero, not a gap.
            attempts.with_label_values(&[outcome]);
        }
        registry.register(Box::new(attempts.clone()))?;
        registry.register(Box::new(last_attempt.clone()))?;
        registry.register(Box::new(last_success.clone()))?;
        Ok(Self {
            attempts,
            last_attempt,
            last_success,
        })
    }
}
