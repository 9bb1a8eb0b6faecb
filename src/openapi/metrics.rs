//! Metrics of KooGallery OpenAPI calls, registered into the gateway's registry.

use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry};

/// An order lookup shares KooGallery's 5 s; buckets up to the default 2 s budget and a little beyond.
const LOOKUP_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0,
];

#[derive(Clone)]
pub struct OpenApiMetrics {
    /// Order lookups by outcome (`api`, `cache`, or a failure reason) and code (a documented MKT/APIGW code,
    /// `other` or `none`).
    pub order_lookups: IntCounterVec,
    /// Time of lookups that called the API.
    pub order_lookup_duration: Histogram,
    pub order_cache_entries: IntGauge,
}

impl OpenApiMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let order_lookups = IntCounterVec::new(
            Opts::new(
                "koogate_order_lookups_total",
                "KooGallery order lookups, by outcome (api, cache or the failure reason) and MKT code",
            ),
            &["outcome", "code"],
        )?;
        let order_lookup_duration = Histogram::with_opts(
            HistogramOpts::new(
                "koogate_order_lookup_duration_seconds",
                "Time of order lookups that called the KooGallery API",
            )
            .buckets(LOOKUP_BUCKETS.to_vec()),
        )?;
        let order_cache_entries = IntGauge::new(
            "koogate_order_cache_entries",
            "Order answers held in the order cache",
        )?;
        registry.register(Box::new(order_lookups.clone()))?;
        registry.register(Box::new(order_lookup_duration.clone()))?;
        registry.register(Box::new(order_cache_entries.clone()))?;
        Ok(Self {
            order_lookups,
            order_lookup_duration,
            order_cache_entries,
        })
    }
}
