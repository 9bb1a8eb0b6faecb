//! The request path. [`Gateway::handle`] (outer) times the call, records metrics, logs once and turns any error
//! into a signed KooGallery answer; [`Gateway::process`] (inner) is the protocol pipeline, one step per line.

mod auth;
mod enrich;
pub mod error;
mod journal;
mod refusal_log;
mod single_flight;
mod test_responder;

use crate::clock::Clock;
use crate::config::{Config, TestCalls};
use crate::metrics::Metrics;
use crate::protocol::idempotency;
use crate::protocol::request;
use crate::protocol::request::UpstreamRequest;
use crate::protocol::response::{build_response, parse_answer, KooResponse};
use crate::protocol::{body_sign, Activity, Generation};
use crate::secret::KeyIndex;
use crate::state::{Claim, Commit, Record, StateStore, StoreSettings};
use crate::upstream::{Outbound, Upstreams, REQUEST_ID_HEADER};
use anyhow::Context;
use bytes::Bytes;
use error::GatewayError;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use refusal_log::RefusalLog;
use single_flight::{KeyGuard, KeyLocks};
use std::sync::Arc;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

/// Everything the request path needs: one snapshot of the configuration (keys, routes, limits, certificate)
/// plus the state that outlives reloads (store, in-flight keys, metrics). A reload builds a new `Gateway` with
/// [`Gateway::reloaded`]; calls in flight finish on the snapshot they started with.
pub struct Gateway {
    config: Arc<Config>,
    tls: Arc<rustls::ServerConfig>,
    /// Under `[acme]`: the certificate resolver the ACME task keeps current (shared by every snapshot).
    acme: Option<Arc<crate::acme::CertResolver>>,
    upstreams: Upstreams,
    store: Arc<StateStore>,
    locks: Arc<KeyLocks>,
    /// Shared across reloads, so a reload does not reset the budgets.
    refusals: Arc<RefusalLog>,
    /// Every call's task, shared across reloads, so shutdown waits for calls whose client went away.
    tasks: TaskTracker,
    metrics: Metrics,
    clock: Arc<dyn Clock>,
    /// `[koogallery_api]`: the order lookup of this snapshot; its cache outlives reloads.
    orders: Option<crate::openapi::lookup::OrderLookup>,
    order_cache: Arc<crate::openapi::cache::OrderCache>,
    /// `koogate_access_key_last_use_timestamp_seconds` per key, in key order (resolved per snapshot).
    key_last_use: Vec<prometheus::IntGauge>,
}

/// What outlives a reload: the store, the in-flight keys and the call tasks.
struct Shared {
    store: Arc<StateStore>,
    locks: Arc<KeyLocks>,
    refusals: Arc<RefusalLog>,
    tasks: TaskTracker,
    acme: Option<Arc<crate::acme::CertResolver>>,
    order_cache: Arc<crate::openapi::cache::OrderCache>,
}

/// What is known about a call so far; the outer handler uses it to sign, label, log and journal the answer.
#[derive(Default)]
struct CallContext {
    key: Option<KeyIndex>,
    generation: Option<Generation>,
    activity: Option<Activity>,
    test_flag: bool,
    /// Replay key of a verified call: persisted with the answer.
    nonce: Option<(crate::state::replay::ReplayKey, u64)>,
    /// The normalised call (ids and decrypted buyer fields for the journal).
    call: Option<UpstreamRequest>,
    /// The upstream's answer when it is to be recorded for retries.
    record: Option<(String, Record)>,
    from_record: bool,
    upstream_us: Option<u64>,
    /// Held until the answer is durable, so a concurrent duplicate finds the record.
    _flight: Option<KeyGuard>,
    /// The same across replicas (Redis): released after the commit.
    claim: Option<Claim>,
    /// The order lookup's outcome (`api`, `cache` or the failure reason), for the log line.
    order_lookup: Option<&'static str>,
    /// The ids as sent, known once the call parses (the journal's, when the call fails later).
    ids: Option<request::CallIds>,
    /// The caller's valid W3C `traceparent`: logged, journalled and passed to the upstream.
    traceparent: Option<String>,
}

impl Gateway {
    /// Opens the state store and builds the first snapshot; `acme` is the certificate resolver when `[acme]` is
    /// configured.
    pub fn new(
        config: Arc<Config>,
        metrics: Metrics,
        clock: Arc<dyn Clock>,
        acme: Option<Arc<crate::acme::CertResolver>>,
    ) -> anyhow::Result<Self> {
        let settings = StoreSettings {
            kind: config.store.kind.clone(),
            retention: config.store.retention,
            replay_capacity: crate::state::replay::ReplayCapacity {
                v1: config.verify.v1_replay_cache_max_entries,
                v2: config.verify.replay_cache_max_entries,
            },
            max_records: config.store.max_records,
            commit_timeout: config.store.commit_timeout,
            sealer: config.store.sealer.clone(),
        };
        let store = StateStore::open(settings, &metrics, clock.clone())
            .context("cannot open the state store")?;
        let store = Arc::new(store);
        // Nonces expire while no call arrives: each scrape brings koogate_replay_cache_entries up to date.
        let (weak, now) = (Arc::downgrade(&store), clock.clone());
        metrics.on_render(move || {
            if let Some(store) = weak.upgrade() {
                store.refresh_replay_gauge(now.now_ms());
            }
        });
        let order_cache = Arc::new(
            enrich::open_cache(&config, clock.now_ms()).context("cannot open the order cache")?,
        );
        let shared = Shared {
            store,
            locks: Arc::default(),
            refusals: Arc::default(),
            tasks: TaskTracker::new(),
            acme,
            order_cache,
        };
        Self::build(config, shared, metrics, clock)
    }

    /// A new snapshot from `config`, sharing this gateway's store, in-flight keys and metrics. Fails (and the
    /// caller keeps this one) if the certificate, key or upstream settings do not load.
    pub fn reloaded(&self, config: Arc<Config>) -> anyhow::Result<Self> {
        let shared = Shared {
            store: self.store.clone(),
            locks: self.locks.clone(),
            refusals: self.refusals.clone(),
            tasks: self.tasks.clone(),
            acme: self.acme.clone(),
            order_cache: self.order_cache.clone(),
        };
        Self::build(config, shared, self.metrics.clone(), self.clock.clone())
    }

    fn build(
        config: Arc<Config>,
        shared: Shared,
        metrics: Metrics,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let order_cache = shared.order_cache;
        let acme = shared.acme;
        let tls = crate::proxy::tls::for_listener(&config.server, acme.clone())?;
        let key_last_use = metrics.key_last_use(config.keys.iter().map(|(_, k)| k.name()));
        let upstreams = Upstreams::new(&config.upstream, metrics.clone())
            .context("cannot build upstream clients")?;
        let orders = enrich::order_lookup(&config, &order_cache, &metrics, &clock)
            .context("cannot build the KooGallery API client ([koogallery_api])")?;
        Ok(Self {
            config,
            tls,
            acme,
            upstreams,
            store: shared.store,
            locks: shared.locks,
            refusals: shared.refusals,
            tasks: shared.tasks,
            metrics,
            clock,
            orders,
            order_cache,
            key_last_use,
        })
    }

    /// Reports this snapshot's certificate expiry; called when the snapshot starts serving, so a refused reload
    /// never reports a certificate it did not install.
    /// Under `[acme]` the ACME task reports the certificates it installs instead.
    pub fn publish_certificate_expiry(&self) {
        let Some((cert_chain_file, _)) = self.config.server.certificates.files() else {
            return;
        };
        if let Some(expiry) = crate::proxy::tls::certificate_expiry(cert_chain_file) {
            self.metrics.certificate_expiry.set(expiry);
        }
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// The TLS configuration of this snapshot (new connections use the current snapshot's).
    pub fn tls(&self) -> Arc<rustls::ServerConfig> {
        self.tls.clone()
    }

    /// The store's health, for readiness.
    pub fn store_health(&self) -> crate::state::Health {
        self.store.health()
    }

    /// The tracker of every call's task: shutdown closes it and waits (within the grace period).
    pub fn tasks(&self) -> TaskTracker {
        self.tasks.clone()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The body and `Body-Sign` value of an error answer to a request to `path` that was not authenticated (signed
    /// with the key for unauthenticated answers to that path), for answers made outside the request path.
    pub fn unauthenticated_answer(
        &self,
        path: &str,
        code: crate::protocol::ResultCode,
    ) -> (Vec<u8>, String) {
        let body = KooResponse::error(code).to_bytes();
        let key = self
            .config
            .keys
            .get(self.config.keys.for_unauthenticated(path));
        let signature = body_sign::header_value(key.expose(), &body);
        (body, signature)
    }

    /// Answers one HTTP request. Always HTTP 200 with a signed KooGallery body.
    ///
    /// The call runs in its own task, so it completes — the upstream's answer recorded and journalled — even if
    /// KooGallery closes the connection first (it gives up after 5 s): otherwise its retry would reach the app
    /// again.
    pub async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = request.uri().path().to_owned();
        let gateway = self.clone();
        match self
            .tasks
            .spawn(async move { gateway.answer(request).await })
            .await
        {
            Ok(response) => response,
            Err(_) => {
                // Only a bug can get here (the task panicked); still answer KooGallery properly.
                tracing::error!("request task failed");
                let (body, signature) =
                    self.unauthenticated_answer(&path, crate::protocol::ResultCode::InternalError);
                signed_response(body, signature, "", false)
            }
        }
    }

    async fn answer(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let started = Instant::now();
        let request_id = new_request_id();
        self.metrics.in_flight.inc();
        let _in_flight = scopeguard(&self.metrics.in_flight);
        let path = request.uri().path().to_owned();
        let client_ip = request
            .extensions()
            .get::<crate::proxy::server::ClientAddr>()
            .map_or_else(|| "unknown".to_owned(), |peer| peer.0.ip().to_string());
        let mut ctx = CallContext {
            traceparent: crate::proxy::traceparent::from_headers(request.headers()),
            ..CallContext::default()
        };

        let outcome = self.process(request, &request_id, started, &mut ctx).await;
        let (mut response, mut error) = match outcome {
            Ok(response) => (response, None),
            Err(e) => (e.to_response(), Some(e)),
        };
        // A verified call's nonce, record and journal entry reach the disk before its answer leaves.
        if ctx.nonce.is_some() {
            let entry = self.journal_entry(
                &ctx,
                &request_id,
                &response,
                error.as_ref(),
                started.elapsed(),
            );
            let commit = Commit {
                nonce: ctx.nonce.take(),
                record: ctx.record.take(),
                entry,
            };
            let committed = self.store.commit(commit, self.clock.now_ms()).await;
            let result = if committed.is_ok() {
                "success"
            } else {
                "failure"
            };
            self.metrics
                .journal_writes
                .with_label_values(&[result])
                .inc();
            if let Err(e) = committed {
                let e = GatewayError::Store(e);
                response = e.to_response();
                error = Some(e);
            }
        }
        if let Some(claim) = ctx.claim.take() {
            self.store.release(&claim).await;
        }
        drop(ctx._flight.take());

        let body = response.to_bytes();
        let keys = &self.config.keys;
        let key = keys.get(ctx.key.unwrap_or_else(|| keys.for_unauthenticated(&path)));
        // The configured name of the key that verified the call (never the key): shows when a rotation is done.
        let access_key = if ctx.key.is_some() {
            if let Some(gauge) = ctx.key.and_then(|k| self.key_last_use.get(k.position())) {
                gauge.set((self.clock.now_ms() / 1000) as i64);
            }
            key.name()
        } else {
            "none"
        };
        let signature = body_sign::header_value(key.expose(), &body);
        let activity = ctx.activity.map_or("unknown", Activity::name);
        let generation = ctx.generation.map_or("unknown", Generation::name);
        let code = response.result_code.as_str();
        let elapsed = started.elapsed();
        self.metrics
            .record_call(ctx.activity, response.result_code, elapsed);
        let latency_us = elapsed.as_micros() as u64;
        let (test_flag, from_record) = (ctx.test_flag, ctx.from_record);
        let order_lookup = ctx.order_lookup.unwrap_or("none");
        let traceparent = ctx.traceparent.as_deref();
        match &error {
            None => tracing::info!(
                request_id,
                client_ip,
                traceparent,
                activity,
                generation,
                result_code = code,
                test_flag,
                from_record,
                access_key,
                order_lookup,
                latency_us,
                "answered"
            ),
            Some(e) => {
                self.metrics
                    .rejections
                    .with_label_values(&[e.reason()])
                    .inc();
                // Rate-limited per reason (a flood of forgeries is not a flood of lines); the metric stays exact.
                match self.refusals.admit(e.reason(), Instant::now()) {
                    Some(suppressed) => {
                        tracing::warn!(request_id, client_ip, traceparent, activity, generation, result_code = code,
                        test_flag, access_key, order_lookup, reason = e.reason(), error = %e, latency_us, suppressed, "refused")
                    }
                    None => self.metrics.refusal_lines_suppressed.inc(),
                }
            }
        }
        signed_response(body, signature, &request_id, from_record)
    }

    /// verify → replay check → normalise (decrypting) → idempotency lookup → order lookup → forward (deadline) →
    /// build answer.
    async fn process(
        &self,
        request: Request<Incoming>,
        request_id: &str,
        started: Instant,
        ctx: &mut CallContext,
    ) -> Result<KooResponse, GatewayError> {
        let generation = self.generation_of(&request).inspect_err(|e| {
            if matches!(e, GatewayError::V1Disabled) {
                ctx.generation = Some(Generation::V1);
            }
        })?;
        ctx.generation = Some(generation);
        let verified = self.authenticate(request, generation).await?;
        ctx.key = Some(verified.key());
        if generation == Generation::V2 {
            let form = verified.signed_form().name();
            self.metrics
                .v2_signature_forms
                .with_label_values(&[form])
                .inc();
        }
        let now_ms = verified.checked_at_ms();
        self.store.check_replay(&verified, now_ms).await??;
        ctx.nonce = Some((
            crate::state::replay::ReplayKey::of(&verified),
            verified.replay_expires_ms(),
        ));
        let call = request::parse(&verified)?;
        ctx.activity = Some(call.activity);
        ctx.ids = Some(call.ids());
        let key = self.config.keys.get(verified.key());
        let mut call = call.normalise(request_id.to_owned(), key.field_key())?;
        call.traceparent = ctx.traceparent.clone();
        ctx.test_flag = call.test_flag;
        let encrypt =
            (generation == Generation::V1 || key.encrypt_app_info()).then(|| key.field_key());
        let deadline = started + self.config.upstream.deadline;
        let idempotency = idempotency::key(&call);
        if let Some((id, fingerprint)) = &idempotency {
            let flight = tokio::time::timeout_at(deadline, self.locks.lock(id)).await;
            ctx._flight = Some(flight.map_err(|_| GatewayError::DuplicateInFlight)?);
            ctx.claim = self.store.claim(id, deadline).await?;
            if let Some(record) = self
                .store
                .lookup(id, now_ms)
                .await?
                .filter(|r| r.fingerprint == *fingerprint)
            {
                self.metrics.idempotency_hits.inc();
                ctx.from_record = true;
                let activity = call.activity;
                ctx.call = Some(call);
                return Ok(build_response(
                    activity,
                    generation,
                    parse_answer(&record.answer)?,
                    encrypt,
                )?);
            }
        }
        let call = self.enrich(call, deadline, ctx).await?;
        let upstream_started = Instant::now();
        let answer = match &self.config.upstream.test_calls {
            TestCalls::Builtin { front_end_url } if call.test_flag => {
                test_responder::answer(&call, front_end_url).into()
            }
            _ => {
                let now_ms = self.clock.now_ms();
                let route = self
                    .config
                    .upstream
                    .call_route(call.activity, call.test_flag);
                // Serialising the derived contract struct cannot fail.
                let body = serde_json::to_vec(&call).unwrap_or_default();
                let outbound = Outbound {
                    body: Bytes::from(body),
                    request_id: &call.request_id,
                    activity: call.activity,
                    test_flag: call.test_flag,
                    traceparent: call.traceparent.as_deref(),
                };
                self.upstreams
                    .forward(route, outbound, deadline, now_ms)
                    .await?
            }
        };
        ctx.upstream_us = Some(upstream_started.elapsed().as_micros() as u64);
        let response = build_response(call.activity, generation, parse_answer(&answer)?, encrypt)?;
        // Only a final answer is recorded: `000004` (still provisioning) must let the next retry reach the app.
        if let (true, Some((id, fingerprint))) =
            (response.result_code.is_final_success(), idempotency)
        {
            let record = Record {
                activity: call.activity.name().to_owned(),
                fingerprint,
                answer: answer.to_vec(),
                at_ms: now_ms,
            };
            ctx.record = Some((id, record));
        }
        ctx.call = Some(call);
        Ok(response)
    }
}

/// The answer KooGallery gets. `from_record` adds `X-Koogate-From-Record: true` (an answer replayed from the
/// idempotency record, the app not asked), which `koogate simulate` shows.
fn signed_response(
    body: Vec<u8>,
    signature: String,
    request_id: &str,
    from_record: bool,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    if let Ok(value) = HeaderValue::from_str(&signature) {
        headers.insert(body_sign::HEADER, value);
    }
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert(REQUEST_ID_HEADER, value);
    }
    if from_record {
        headers.insert(
            crate::simulate::client::FROM_RECORD_HEADER,
            HeaderValue::from_static("true"),
        );
    }
    response
}

/// A random 128-bit request id, hex encoded (CSPRNG, so ids are not guessable).
fn new_request_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// Decrements the in-flight gauge when the call ends, even if the client went away and the future was dropped.
fn scopeguard(gauge: &prometheus::IntGauge) -> impl Drop + '_ {
    struct Guard<'a>(&'a prometheus::IntGauge);
    impl Drop for Guard<'_> {
        fn drop(&mut self) {
            self.0.dec();
        }
    }
    Guard(gauge)
}
