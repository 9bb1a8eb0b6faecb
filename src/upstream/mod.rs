//! The upstream client: koogate's own keep-alive HTTP/1.1 connections per route, POSTing normalised JSON within
//! the deadline.
//!
//! Each call takes the most recently used idle connection of its route (or opens one), sends on it and reads the
//! whole answer in the calling task ([`conn`]), then puts it back ([`pool`]). A connection that failed, or whose
//! answer was not read whole (too large, deadline), is closed, never reused. A call is sent again, once and on a
//! new connection, only when a reused connection turned out closed before any byte of the request was written
//! (the app closed it while idle): a request that may have reached the app is never repeated.

pub mod auth;
mod conn;
mod pool;
pub mod tls;

use crate::config::UpstreamConfig;
use crate::metrics::Metrics;
use crate::protocol::Activity;
use auth::{SIGNATURE_HEADER, TIMESTAMP_HEADER};
use bytes::Bytes;
use conn::ExchangeError;
use http::{header, HeaderMap, HeaderValue, Method, Request, Uri};
use http_body_util::Full;
use pool::Pool;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::time::Instant;

pub use tls::{tls_client_config, BuildError};

/// Header carrying koogate's request id to the upstream (and back to KooGallery).
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Header carrying the canonical activity, for apps that route on headers.
pub const ACTIVITY_HEADER: &str = "x-koogate-activity";
/// `1` on KooGallery debugging calls (`testFlag=1`), `0` otherwise.
pub const TEST_FLAG_HEADER: &str = "x-koogate-test-flag";
/// The W3C trace context header, passed on.
const TRACEPARENT_HEADER: &str = "traceparent";

/// One call as it goes to the app: the normalised JSON body (the gateway serialises it) and what goes into headers.
pub struct Outbound<'a> {
    pub body: Bytes,
    pub request_id: &'a str,
    pub activity: Activity,
    pub test_flag: bool,
    /// The caller's valid W3C `traceparent`, passed on.
    pub traceparent: Option<&'a str>,
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream refused or failed the connection")]
    Unreachable(#[source] ConnectionError),
    #[error("upstream did not answer before the deadline")]
    Timeout,
    #[error("upstream answered HTTP {0}")]
    Status(u16),
    #[error("upstream answer could not be read")]
    Body,
    #[error("upstream answer exceeds the configured limit")]
    TooLarge,
}

/// What went wrong on the way to an answer head.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("cannot connect")]
    Connect(#[source] std::io::Error),
    #[error("connect timed out")]
    ConnectTimeout,
    #[error("TLS handshake failed")]
    Tls(#[source] std::io::Error),
    #[error("HTTP exchange failed")]
    Http(#[source] hyper::Error),
}

impl UpstreamError {
    /// Every label [`UpstreamError::reason`] returns, for series created at 0 at start.
    pub const REASONS: &'static [&'static str] = &[
        "upstream_unreachable",
        "upstream_timeout",
        "upstream_status",
        "upstream_body_error",
        "upstream_answer_too_large",
    ];

    pub fn reason(&self) -> &'static str {
        match self {
            UpstreamError::Unreachable(_) => "upstream_unreachable",
            UpstreamError::Timeout => "upstream_timeout",
            UpstreamError::Status(_) => "upstream_status",
            UpstreamError::Body => "upstream_body_error",
            UpstreamError::TooLarge => "upstream_answer_too_large",
        }
    }
}

impl From<ExchangeError> for UpstreamError {
    fn from(e: ExchangeError) -> Self {
        match e {
            ExchangeError::NotSent { error, .. } | ExchangeError::Failed(error) => {
                UpstreamError::Unreachable(ConnectionError::Http(error))
            }
            ExchangeError::Body { status, .. } if !status.is_success() => {
                UpstreamError::Status(status.as_u16())
            }
            ExchangeError::Body {
                too_large: true, ..
            } => UpstreamError::TooLarge,
            ExchangeError::Body { .. } => UpstreamError::Body,
        }
    }
}

/// One route: its name, timeout, request template and connections.
struct Route {
    name: String,
    timeout: std::time::Duration,
    /// The request target in origin form (`/path?query`).
    target: Uri,
    /// `Host`, `Content-Type` and `Accept`, built once.
    headers: HeaderMap,
}

/// Every configured route with its connections. Routes are indexed as in [`UpstreamConfig::routes`].
pub struct Upstreams {
    routes: Vec<Route>,
    pools: Arc<[Pool]>,
    reaper_started: AtomicBool,
    config: UpstreamConfig,
    metrics: Metrics,
}

impl Upstreams {
    pub fn new(config: &UpstreamConfig, metrics: Metrics) -> Result<Self, BuildError> {
        let routes = config
            .routes
            .iter()
            .map(|route| Route::new(&route.name, &route.url, route.timeout))
            .collect::<Result<_, _>>()?;
        let pools = config
            .routes
            .iter()
            .map(|route| Pool::new(config, route))
            .collect::<Result<Arc<[Pool]>, BuildError>>()?;
        metrics.precreate_routes(config.routes.iter().map(|r| r.name.as_str()));
        Ok(Self {
            routes,
            pools,
            reaper_started: AtomicBool::new(false),
            config: config.clone(),
            metrics,
        })
    }

    /// POSTs `call` to route `route` (an index into [`UpstreamConfig::routes`], see
    /// [`UpstreamConfig::call_route`]) and returns the answer body, all before `deadline` (and the route's own
    /// timeout). `now_ms` (Unix milliseconds) timestamps koogate's signature, if configured.
    pub async fn forward(
        &self,
        route: usize,
        call: Outbound<'_>,
        deadline: Instant,
        now_ms: u64,
    ) -> Result<Bytes, UpstreamError> {
        let started = Instant::now();
        let (config, pool) = (&self.routes[route], &self.pools[route]);
        let deadline = deadline.min(started + config.timeout);
        let request = self.request(config, call, now_ms);
        // Boxed: the exchange's state (request, connection future, answer) would otherwise be inlined into every
        // future that awaits `forward`, which the server moves when it spawns a call (the callgrind phase of
        // bench/run.sh showed the memcpy).
        let exchange = Box::pin(self.exchange(pool, request));
        let result = tokio::time::timeout_at(deadline, exchange)
            .await
            .unwrap_or(Err(UpstreamError::Timeout));
        self.metrics
            .upstream_duration
            .with_label_values(&[config.name.as_str()])
            .observe(started.elapsed().as_secs_f64());
        if let Err(e) = &result {
            self.metrics
                .upstream_failures
                .with_label_values(&[config.name.as_str(), e.reason()])
                .inc();
        }
        result
    }

    /// The request for `call`: the route's template plus the call's headers (and koogate's signature).
    fn request(&self, route: &Route, call: Outbound<'_>, now_ms: u64) -> Request<Full<Bytes>> {
        let mut headers = route.headers.clone();
        if let Ok(id) = HeaderValue::from_str(call.request_id) {
            headers.insert(REQUEST_ID_HEADER, id);
        }
        headers.insert(
            ACTIVITY_HEADER,
            HeaderValue::from_static(call.activity.name()),
        );
        headers.insert(
            TEST_FLAG_HEADER,
            HeaderValue::from_static(if call.test_flag { "1" } else { "0" }),
        );
        if let Some(value) = call.traceparent.and_then(|t| HeaderValue::from_str(t).ok()) {
            headers.insert(TRACEPARENT_HEADER, value);
        }
        if let Some(key) = &self.config.signature_key {
            let (timestamp, signature) = key.headers(now_ms, &call.body);
            for (name, value) in [(TIMESTAMP_HEADER, timestamp), (SIGNATURE_HEADER, signature)] {
                // Digits and lowercase hex: always valid header values.
                if let Ok(value) = HeaderValue::try_from(value) {
                    headers.insert(name, value);
                }
            }
        }
        let mut request = Request::new(Full::new(call.body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = route.target.clone();
        *request.headers_mut() = headers;
        request
    }

    /// One exchange on an idle connection of `pool` or a new one; sent again on a new connection only if a reused
    /// one had closed before the request was written.
    async fn exchange(
        &self,
        pool: &Pool,
        request: Request<Full<Bytes>>,
    ) -> Result<Bytes, UpstreamError> {
        let limit = self.config.max_answer_bytes;
        let (mut conn, reused) = match pool.take_idle() {
            Some(conn) => (conn, true),
            None => (
                pool.connect().await.map_err(UpstreamError::Unreachable)?,
                false,
            ),
        };
        let answer = match conn.exchange(request, limit).await {
            Err(ExchangeError::NotSent { request, .. }) if reused => {
                drop(conn);
                conn = pool.connect().await.map_err(UpstreamError::Unreachable)?;
                conn.exchange(*request, limit).await
            }
            answer => answer,
        };
        let (status, body) = answer?;
        if pool.put(conn) {
            self.start_reaper();
        }
        if !status.is_success() {
            return Err(UpstreamError::Status(status.as_u16()));
        }
        Ok(body)
    }

    /// Starts the task closing expired idle connections, the first time one is kept (in a runtime by then).
    fn start_reaper(&self) {
        if !self.reaper_started.swap(true, Ordering::Relaxed) {
            tokio::spawn(pool::reap(
                Arc::downgrade(&self.pools),
                self.config.pool_idle_timeout,
            ));
        }
    }
}

impl Route {
    fn new(name: &str, url: &Uri, timeout: std::time::Duration) -> Result<Self, BuildError> {
        let host = url.host().ok_or(BuildError::Url)?;
        let default_port = if url.scheme_str() == Some("https") {
            443
        } else {
            80
        };
        let host = match url.port_u16() {
            Some(port) if port != default_port => format!("{host}:{port}"),
            _ => host.to_owned(),
        };
        let target = url
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse::<Uri>()
            .map_err(|_| BuildError::Url)?;
        let mut headers = HeaderMap::with_capacity(10);
        headers.insert(
            header::HOST,
            HeaderValue::from_str(&host).map_err(|_| BuildError::Url)?,
        );
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        Ok(Self {
            name: name.to_owned(),
            timeout,
            target,
            headers,
        })
    }
}
