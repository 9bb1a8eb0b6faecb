//! The request path's state: one [`Gateway`] per configuration snapshot, and [`Gateway::handle`], its entry.
//! The outer step (`respond.rs`) times the call, commits, signs and logs it; the inner one (`process.rs`) is the
//! protocol pipeline, one step per line; `call.rs` holds the values they exchange.

mod auth;
mod call;
mod detach;
mod enrich;
pub mod error;
mod journal;
mod process;
mod refusal_log;
mod respond;
mod single_flight;
mod test_responder;

use crate::clock::Clock;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::protocol::body_sign;
use crate::protocol::response::KooResponse;
use crate::state::{StateStore, StoreSettings};
use crate::upstream::Upstreams;
use anyhow::Context;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use refusal_log::RefusalLog;
use single_flight::KeyLocks;
use std::sync::Arc;
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
    /// TLS session tickets and cache, shared by every snapshot so sessions resume across reloads.
    resumption: Arc<crate::proxy::tls::Resumption>,
    /// `koogate_access_key_last_use_timestamp_seconds` per key, in key order (resolved per snapshot).
    key_last_use: Vec<prometheus::IntGauge>,
}

/// What outlives a reload: the store, the in-flight keys, the call tasks and the TLS sessions.
struct Shared {
    store: Arc<StateStore>,
    locks: Arc<KeyLocks>,
    refusals: Arc<RefusalLog>,
    tasks: TaskTracker,
    acme: Option<Arc<crate::acme::CertResolver>>,
    order_cache: Arc<crate::openapi::cache::OrderCache>,
    resumption: Arc<crate::proxy::tls::Resumption>,
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
            resumption: Arc::default(),
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
            resumption: self.resumption.clone(),
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
        let tls =
            crate::proxy::tls::for_listener(&config.server, acme.clone(), &shared.resumption)?;
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
            resumption: shared.resumption,
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
        let signature = body_sign::header_value_prepared(key.hmac(), &body);
        (body, signature)
    }

    /// Answers one HTTP request. Always HTTP 200 with a signed KooGallery body.
    ///
    /// The call runs inline in the connection's task. If the client goes away first (KooGallery gives up after
    /// 5 s) the rest of the call moves into a tracked task, so it still completes — the upstream's answer recorded
    /// and journalled — and KooGallery's retry does not reach the app again.
    pub async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let (tasks, detached) = (self.tasks.clone(), self.metrics.calls_detached.clone());
        let path = request.uri().path().to_owned();
        let gateway = self.clone();
        let call = async move { gateway.answer(request).await };
        match detach::Detachable::new(call, tasks, detached).await {
            Ok(response) => response,
            Err(_) => {
                // Only a bug can get here (the call panicked); still answer KooGallery properly.
                tracing::error!("request failed");
                let (body, signature) =
                    self.unauthenticated_answer(&path, crate::protocol::ResultCode::InternalError);
                respond::signed_response(body, signature, "", false)
            }
        }
    }
}
