//! Prometheus metrics, registered into a registry owned by the caller (no globals, so tests get fresh ones).

use crate::gateway::error::GatewayError;
use crate::protocol::verified::SignedForm;
use crate::protocol::{Activity, Generation, ResultCode};
use crate::upstream::UpstreamError;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::sync::{Arc, Mutex};

/// Buckets for a 5 s deadline: fine below 100 ms where healthy calls sit, coarse up to the deadline.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 4.5, 5.0, 10.0,
];

/// Every `reason` of `koogate_tls_handshake_failures_total` (see `handshake_failure_reason` in proxy::server, plus
/// `timeout`), created at 0 at start.
pub const TLS_HANDSHAKE_FAILURE_REASONS: &[&str] = &[
    "eof",
    "protocol_version",
    "incompatible",
    "certificate_rejected",
    "not_tls",
    "timeout",
    "error",
];

/// The protocol versions koogate negotiates (`koogate_tls_handshakes_total{protocol}`), created at 0 at start.
const TLS_PROTOCOLS: &[&str] = &["TLSv1.2", "TLSv1.3"];

/// Label used before a call's activity is known.
const UNKNOWN_ACTIVITY: &str = "unknown";

/// Pre-resolved per-call series, so the request path does not hash label values on every call.
#[derive(Clone)]
struct CallSeries {
    /// `[activity slot][result code]`; the last slot is `unknown`.
    requests: Vec<Vec<IntCounter>>,
    durations: Vec<Histogram>,
}

/// The other per-call series, resolved once: the request path never looks a label up.
#[derive(Clone)]
struct HotSeries {
    /// By [`SignedForm::index`].
    signature_forms: [IntCounter; 2],
    /// `[success, failure]`.
    journal_writes: [IntCounter; 2],
    /// Every reason of [`GatewayError::all_reasons`], in that order.
    rejections: Vec<(&'static str, IntCounter)>,
}

type RenderHook = Box<dyn Fn() + Send + Sync>;

/// Every metric koogate exports. Label values come only from enums and configured route names.
#[derive(Clone)]
pub struct Metrics {
    calls: CallSeries,
    hot: HotSeries,
    /// Runs before each render, to update gauges computed from state (the replay cache's size).
    before_render: Arc<Mutex<Option<RenderHook>>>,
    registry: Registry,
    /// Calls answered, by canonical activity (`unknown` before it is known) and result code.
    pub requests: IntCounterVec,
    /// Calls refused or failed by koogate itself, by reason.
    pub rejections: IntCounterVec,
    pub request_duration: HistogramVec,
    pub upstream_duration: HistogramVec,
    /// Upstream calls that failed, by route and reason.
    pub upstream_failures: IntCounterVec,
    pub in_flight: IntGauge,
    pub connections_open: IntGauge,
    pub tls_handshakes: IntCounterVec,
    pub tls_handshake_failures: IntCounterVec,
    /// Completed handshakes that resumed an earlier session (a ticket or a session id); also in `tls_handshakes`.
    pub tls_resumed_handshakes: IntCounter,
    /// Replay keys remembered, by generation (in-memory cache; Redis keeps its own).
    pub replay_cache_entries: IntGaugeVec,
    /// The replay cache's limit, by generation: calls of that generation fail closed at it.
    pub replay_cache_capacity: IntGaugeVec,
    /// Idempotency records indexed (capped by `store.max_records`).
    pub store_records: IntGauge,
    /// 1 while the store takes commits, 0 after a failed or timed-out one until it recovers.
    pub store_healthy: IntGauge,
    pub build_info: IntGaugeVec,
    pub ready: IntGauge,
    pub handshake_duration: Histogram,
    /// Calls answered from an idempotency record without calling the upstream.
    pub idempotency_hits: IntCounter,
    /// Calls whose client went away mid-call and that finished in a tracked task of their own.
    pub calls_detached: IntCounter,
    /// Configuration reloads by result (`success`, `failure`).
    pub config_reloads: IntCounterVec,
    pub config_last_reload_success: IntGauge,
    /// The serving certificate's `notAfter`, Unix seconds.
    pub certificate_expiry: IntGauge,
    /// Durable commits of a call's record and journal entry, by result (`success`, `failure`).
    pub journal_writes: IntCounterVec,
    pub connections_accepted: IntCounter,
    /// Idle connections (no request yet) closed to make room for a new one at `server.max_connections`.
    pub connections_evicted: IntCounter,
    /// Connections closed at once because every slot was serving a request.
    pub connections_refused: IntCounter,
    /// The connection limits of the running listeners, summed.
    pub connections_max: IntGauge,
    /// Refusal log lines not written because their reason's budget was spent (the refusals are still counted).
    pub refusal_lines_suppressed: IntCounter,
    /// Verified V2 calls by which bytes the signature matched (`raw`, `canonical`).
    pub v2_signature_forms: IntCounterVec,
    /// When each configured access key (by name) last verified a call, Unix seconds (0: not since start).
    pub access_key_last_use: IntGaugeVec,
    /// KooGallery OpenAPI calls (order lookups).
    pub openapi: crate::openapi::metrics::OpenApiMetrics,
}

impl Metrics {
    /// Creates and registers every metric in a fresh registry.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "koogate_requests_total",
                "KooGallery calls answered, by activity and result code",
            ),
            &["activity", "result_code"],
        )?;
        let rejections = IntCounterVec::new(
            Opts::new(
                "koogate_rejections_total",
                "Calls refused or failed by koogate, by reason",
            ),
            &["reason"],
        )?;
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "koogate_request_duration_seconds",
                "Time from request headers to answer written",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["activity"],
        )?;
        let upstream_duration = HistogramVec::new(
            HistogramOpts::new(
                "koogate_upstream_duration_seconds",
                "Upstream call time, by route",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route"],
        )?;
        let upstream_failures = IntCounterVec::new(
            Opts::new(
                "koogate_upstream_failures_total",
                "Upstream calls that failed, by route and reason",
            ),
            &["route", "reason"],
        )?;
        let in_flight = IntGauge::new(
            "koogate_requests_in_flight",
            "KooGallery calls being processed",
        )?;
        let connections_open =
            IntGauge::new("koogate_connections_open", "Client connections open")?;
        let connections_accepted = IntCounter::new(
            "koogate_connections_accepted_total",
            "Client connections accepted",
        )?;
        let tls_handshakes = IntCounterVec::new(
            Opts::new(
                "koogate_tls_handshakes_total",
                "Completed TLS handshakes, by protocol version",
            ),
            &["protocol"],
        )?;
        let tls_resumed_handshakes = IntCounter::new(
            "koogate_tls_resumed_handshakes_total",
            "Completed TLS handshakes that resumed an earlier session (also counted in koogate_tls_handshakes_total)",
        )?;
        let tls_handshake_failures = IntCounterVec::new(
            Opts::new(
                "koogate_tls_handshake_failures_total",
                "Failed TLS handshakes, by reason",
            ),
            &["reason"],
        )?;
        let handshake_duration = Histogram::with_opts(
            HistogramOpts::new(
                "koogate_tls_handshake_duration_seconds",
                "TLS handshake time",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )?;
        let idempotency_hits = IntCounter::new(
            "koogate_idempotency_hits_total",
            "Calls answered from an idempotency record without calling the upstream",
        )?;
        registry.register(Box::new(idempotency_hits.clone()))?;
        let calls_detached = IntCounter::new(
            "koogate_calls_detached_total",
            "Calls whose client went away before the answer; they finished (recorded, journalled) in a task of their own",
        )?;
        registry.register(Box::new(calls_detached.clone()))?;
        let config_reloads = IntCounterVec::new(
            Opts::new(
                "koogate_config_reloads_total",
                "Configuration reloads, by result",
            ),
            &["result"],
        )?;
        let config_last_reload_success = IntGauge::new(
            "koogate_config_last_reload_success_timestamp_seconds",
            "When the running configuration was loaded (start or last successful reload), Unix seconds",
        )?;
        let certificate_expiry = IntGauge::new(
            "koogate_certificate_expiry_timestamp_seconds",
            "notAfter of the serving certificate, Unix seconds",
        )?;
        let journal_writes = IntCounterVec::new(
            Opts::new(
                "koogate_journal_writes_total",
                "Durable commits of calls' records and journal entries, by result",
            ),
            &["result"],
        )?;
        registry.register(Box::new(config_reloads.clone()))?;
        registry.register(Box::new(config_last_reload_success.clone()))?;
        registry.register(Box::new(certificate_expiry.clone()))?;
        registry.register(Box::new(journal_writes.clone()))?;
        let v2_signature_forms = IntCounterVec::new(
            Opts::new(
                "koogate_v2_signature_forms_total",
                "Verified V2 calls, by the bytes the signature matched: the raw body or its canonical JSON form",
            ),
            &["form"],
        )?;
        registry.register(Box::new(v2_signature_forms.clone()))?;
        let replay_cache_entries = IntGaugeVec::new(
            Opts::new(
                "koogate_replay_cache_entries",
                "Replay keys (V2 nonces, V1 authTokens) remembered in memory, by generation",
            ),
            &["generation"],
        )?;
        let replay_cache_capacity = IntGaugeVec::new(
            Opts::new(
                "koogate_replay_cache_capacity_entries",
                "Most replay keys remembered per generation; at it, that generation's calls fail closed",
            ),
            &["generation"],
        )?;
        registry.register(Box::new(replay_cache_entries.clone()))?;
        registry.register(Box::new(replay_cache_capacity.clone()))?;
        let store_records = IntGauge::new(
            "koogate_store_records",
            "Idempotency records held by the store (capped by store.max_records)",
        )?;
        let store_healthy = IntGauge::new(
            "koogate_store_healthy",
            "1 while the state store takes commits, 0 after a failed or timed-out one until it recovers",
        )?;
        let build_info = IntGaugeVec::new(
            Opts::new("koogate_build_info", "Always 1; labels describe the build"),
            &["version"],
        )?;
        let ready = IntGauge::new(
            "koogate_ready",
            "1 while the gateway accepts traffic, 0 while starting or draining",
        )?;

        for c in [
            &requests,
            &rejections,
            &upstream_failures,
            &tls_handshakes,
            &tls_handshake_failures,
        ] {
            registry.register(Box::new(c.clone()))?;
        }
        for h in [&request_duration, &upstream_duration] {
            registry.register(Box::new(h.clone()))?;
        }
        for g in [
            &in_flight,
            &connections_open,
            &store_records,
            &store_healthy,
            &ready,
        ] {
            registry.register(Box::new(g.clone()))?;
        }
        registry.register(Box::new(handshake_duration.clone()))?;
        registry.register(Box::new(connections_accepted.clone()))?;
        registry.register(Box::new(tls_resumed_handshakes.clone()))?;
        let connections_evicted = IntCounter::new(
            "koogate_connections_evicted_total",
            "Connections that had not sent a request, closed to make room for a new one at the limit",
        )?;
        let connections_refused = IntCounter::new(
            "koogate_connections_refused_total",
            "Connections closed at once because every slot was serving a request",
        )?;
        let connections_max = IntGauge::new(
            "koogate_connections_max",
            "Connection limit (server.max_connections) of the running listeners, summed",
        )?;
        registry.register(Box::new(connections_evicted.clone()))?;
        registry.register(Box::new(connections_refused.clone()))?;
        registry.register(Box::new(connections_max.clone()))?;
        let refusal_lines_suppressed = IntCounter::new(
            "koogate_refusal_log_lines_suppressed_total",
            "Refusal log lines not written because their reason wrote its budget of lines this second",
        )?;
        registry.register(Box::new(refusal_lines_suppressed.clone()))?;
        let access_key_last_use = IntGaugeVec::new(
            Opts::new(
                "koogate_access_key_last_use_timestamp_seconds",
                "When each configured access key last verified a call, Unix seconds (0: not since start)",
            ),
            &["key"],
        )?;
        registry.register(Box::new(access_key_last_use.clone()))?;
        registry.register(Box::new(build_info.clone()))?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);

        let activity_labels: Vec<&str> = Activity::ALL
            .iter()
            .map(|a| a.name())
            .chain([UNKNOWN_ACTIVITY])
            .collect();
        let calls = CallSeries {
            requests: activity_labels
                .iter()
                .map(|a| {
                    ResultCode::ALL
                        .iter()
                        .map(|c| requests.with_label_values(&[a, c.as_str()]))
                        .collect()
                })
                .collect(),
            durations: activity_labels
                .iter()
                .map(|a| request_duration.with_label_values(&[a]))
                .collect(),
        };

        // Failure counters start at 0 for every label combination: `increase()` needs a sample before the first
        // failure, or the first failure after a restart (at KooGallery's traffic often the only one) goes unseen.
        for reason in GatewayError::all_reasons() {
            rejections.with_label_values(&[reason]);
        }
        for reason in TLS_HANDSHAKE_FAILURE_REASONS {
            tls_handshake_failures.with_label_values(&[reason]);
        }
        for protocol in TLS_PROTOCOLS {
            tls_handshakes.with_label_values(&[protocol]);
        }
        for result in ["success", "failure"] {
            config_reloads.with_label_values(&[result]);
        }
        let hot = HotSeries {
            signature_forms: [SignedForm::Raw, SignedForm::Canonical]
                .map(|form| v2_signature_forms.with_label_values(&[form.name()])),
            journal_writes: ["success", "failure"].map(|r| journal_writes.with_label_values(&[r])),
            rejections: GatewayError::all_reasons()
                .map(|reason| (reason, rejections.with_label_values(&[reason])))
                .collect(),
        };
        let openapi = crate::openapi::metrics::OpenApiMetrics::register(&registry)?;
        Ok(Self {
            openapi,
            calls,
            hot,
            before_render: Arc::default(),
            registry,
            requests,
            rejections,
            request_duration,
            upstream_duration,
            upstream_failures,
            in_flight,
            connections_open,
            tls_handshakes,
            tls_handshake_failures,
            tls_resumed_handshakes,
            replay_cache_entries,
            replay_cache_capacity,
            store_records,
            store_healthy,
            build_info,
            ready,
            handshake_duration,
            idempotency_hits,
            calls_detached,
            config_reloads,
            config_last_reload_success,
            certificate_expiry,
            journal_writes,
            connections_accepted,
            connections_evicted,
            connections_refused,
            connections_max,
            refusal_lines_suppressed,
            v2_signature_forms,
            access_key_last_use,
        })
    }

    /// Counts one answered call and its duration.
    pub fn record_call(
        &self,
        activity: Option<Activity>,
        code: ResultCode,
        elapsed: std::time::Duration,
    ) {
        let slot = activity.map_or(Activity::ALL.len(), Activity::index);
        self.calls.requests[slot][code.index()].inc();
        self.calls.durations[slot].observe(elapsed.as_secs_f64());
    }

    /// Counts a verified V2 call by the bytes its signature matched.
    pub fn count_signature_form(&self, form: SignedForm) {
        self.hot.signature_forms[form.index()].inc();
    }

    /// Counts a durable commit of a call's record and journal entry.
    pub fn count_journal_write(&self, success: bool) {
        self.hot.journal_writes[usize::from(!success)].inc();
    }

    /// Counts a refused or failed call by its reason (one of [`GatewayError::all_reasons`]).
    pub fn count_rejection(&self, reason: &'static str) {
        match self.hot.rejections.iter().find(|(r, _)| *r == reason) {
            Some((_, counter)) => counter.inc(),
            // A reason missing from the list (a bug, caught by a test) still counts.
            None => self.rejections.with_label_values(&[reason]).inc(),
        }
    }

    /// Creates `koogate_upstream_failures_total` at 0 for every configured route and reason (called whenever
    /// the routes are built, so a reload's new routes start at 0 too).
    pub fn precreate_routes<'a>(&self, routes: impl Iterator<Item = &'a str>) {
        for route in routes {
            for reason in UpstreamError::REASONS {
                self.upstream_failures.with_label_values(&[route, reason]);
            }
        }
    }

    /// `koogate_access_key_last_use_timestamp_seconds` of every configured key name, in key order, created at 0
    /// (start, reload): resolved once per snapshot, so the request path only sets a gauge.
    pub fn key_last_use<'a>(&self, names: impl Iterator<Item = &'a str>) -> Vec<IntGauge> {
        names
            .map(|name| self.access_key_last_use.with_label_values(&[name]))
            .collect()
    }

    /// Sets what runs before every render (replacing any earlier hook).
    pub fn on_render(&self, hook: impl Fn() + Send + Sync + 'static) {
        let mut slot = self
            .before_render
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *slot = Some(Box::new(hook));
    }

    /// The replay cache's gauges for both generations, `[V1, V2]`.
    pub fn replay_gauges(&self) -> [crate::state::replay::ReplayGauges; 2] {
        [Generation::V1, Generation::V2].map(|g| crate::state::replay::ReplayGauges {
            entries: self.replay_cache_entries.with_label_values(&[g.name()]),
            capacity: self.replay_cache_capacity.with_label_values(&[g.name()]),
        })
    }

    /// The registry, for metrics families kept by their own module (the usage relay's).
    /// The registry, for metrics families kept by their own module (the usage relay's, ACME's).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        if let Some(hook) = self
            .before_render
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .as_ref()
        {
            hook();
        }
        let mut out = Vec::new();
        // Encoding into a Vec only fails on invalid metric families, which registration already rejected.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pre_resolved_series_count_under_their_labels() {
        let metrics = Metrics::new().unwrap();
        metrics.count_signature_form(SignedForm::Canonical);
        metrics.count_journal_write(false);
        for reason in GatewayError::all_reasons() {
            metrics.count_rejection(reason);
        }
        let text = metrics.render();
        assert!(text.contains("koogate_v2_signature_forms_total{form=\"canonical\"} 1"));
        assert!(text.contains("koogate_v2_signature_forms_total{form=\"raw\"} 0"));
        assert!(text.contains("koogate_journal_writes_total{result=\"failure\"} 1"));
        assert!(text.contains("koogate_journal_writes_total{result=\"success\"} 0"));
        for reason in GatewayError::all_reasons() {
            let series = format!("koogate_rejections_total{{reason=\"{reason}\"}} 1");
            assert!(text.contains(&series), "{series}");
        }
    }
}
