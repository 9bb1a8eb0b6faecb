//! The upstream client: one pooled keep-alive client per route, POSTing normalised JSON within the deadline.

use super::upstream_auth::{SIGNATURE_HEADER, TIMESTAMP_HEADER};
use crate::config::{RouteConfig, UpstreamConfig};
use crate::metrics::Metrics;
use crate::protocol::Activity;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls_pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
use std::sync::Arc;
use tokio::time::Instant;

/// Header carrying koogate's request id to the upstream (and back to KooGallery).
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Header carrying the canonical activity, for apps that route on headers.
pub const ACTIVITY_HEADER: &str = "x-koogate-activity";
/// `1` on KooGallery debugging calls (`testFlag=1`), `0` otherwise.
pub const TEST_FLAG_HEADER: &str = "x-koogate-test-flag";

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
    Unreachable(#[source] hyper_util::client::legacy::Error),
    #[error("upstream did not answer before the deadline")]
    Timeout,
    #[error("upstream answered HTTP {0}")]
    Status(u16),
    #[error("upstream answer could not be read")]
    Body,
    #[error("upstream answer exceeds the configured limit")]
    TooLarge,
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

/// Why the upstream clients could not be built (bad CA file).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot read CA certificates from {path}")]
    CaFile {
        path: String,
        source: rustls_pki_types::pem::Error,
    },
    #[error("no usable CA certificate in {path}")]
    NoCa { path: String },
    #[error("cannot read the client certificate or key {path}")]
    ClientIdentity {
        path: String,
        source: rustls_pki_types::pem::Error,
    },
    #[error("TLS client configuration failed")]
    Tls(#[from] rustls::Error),
}

type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

struct Route {
    config: RouteConfig,
    client: HttpClient,
}

/// Every configured route with its client. Routes are indexed as in [`UpstreamConfig::routes`].
pub struct Upstreams {
    routes: Vec<Route>,
    config: UpstreamConfig,
    metrics: Metrics,
}

impl Upstreams {
    pub fn new(config: &UpstreamConfig, metrics: Metrics) -> Result<Self, BuildError> {
        let routes = config
            .routes
            .iter()
            .map(|route| {
                Ok(Route {
                    config: route.clone(),
                    client: client_for(config, route)?,
                })
            })
            .collect::<Result<_, BuildError>>()?;
        metrics.precreate_routes(config.routes.iter().map(|r| r.name.as_str()));
        Ok(Self {
            routes,
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
        let route = &self.routes[route];
        let started = Instant::now();
        let deadline = deadline.min(started + route.config.timeout);
        let result = tokio::time::timeout_at(deadline, self.exchange(route, call, now_ms))
            .await
            .unwrap_or(Err(UpstreamError::Timeout));
        let labels = [route.config.name.as_str()];
        self.metrics
            .upstream_duration
            .with_label_values(&labels)
            .observe(started.elapsed().as_secs_f64());
        if let Err(e) = &result {
            self.metrics
                .upstream_failures
                .with_label_values(&[route.config.name.as_str(), e.reason()])
                .inc();
        }
        result
    }

    async fn exchange(
        &self,
        route: &Route,
        call: Outbound<'_>,
        now_ms: u64,
    ) -> Result<Bytes, UpstreamError> {
        let body = call.body;
        let signature = self
            .config
            .signature_key
            .as_ref()
            .map(|key| key.headers(now_ms, &body));
        let mut http_request = Request::builder()
            .method(Method::POST)
            .uri(route.config.url.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json")
            .body(Full::new(body))
            .map_err(|_| UpstreamError::Body)?;
        let headers = http_request.headers_mut();
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
        if let Some(value) = call
            .traceparent
            .and_then(|t| HeaderValue::from_str(t).ok())
        {
            headers.insert(super::traceparent::HEADER, value);
        }
        if let Some((timestamp, signature)) = signature {
            for (name, value) in [(TIMESTAMP_HEADER, timestamp), (SIGNATURE_HEADER, signature)] {
                // Digits and lowercase hex: always valid header values.
                if let Ok(value) = HeaderValue::from_str(&value) {
                    headers.insert(name, value);
                }
            }
        }

        let response = route
            .client
            .request(http_request)
            .await
            .map_err(UpstreamError::Unreachable)?;
        let status = response.status();
        let collected = Limited::new(response.into_body(), self.config.max_answer_bytes)
            .collect()
            .await;
        if !status.is_success() {
            return Err(UpstreamError::Status(status.as_u16()));
        }
        match collected {
            Ok(body) => Ok(body.to_bytes()),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(UpstreamError::TooLarge),
            Err(_) => Err(UpstreamError::Body),
        }
    }
}

fn client_for(config: &UpstreamConfig, route: &RouteConfig) -> Result<HttpClient, BuildError> {
    let roots = root_store(route.ca_file.as_deref())?;
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots);
    let tls = match &route.client_identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let failed = |path: &std::path::Path| {
                let path = path.display().to_string();
                move |source| BuildError::ClientIdentity { path, source }
            };
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                .and_then(|iter| iter.collect())
                .map_err(failed(cert))?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(failed(key))?;
            // A key that does not match the certificate is refused here (rustls::Error).
            builder.with_client_auth_cert(chain, key)?
        }
    };

    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(config.connect_timeout));
    let connector = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(config.pool_idle_timeout)
        .pool_max_idle_per_host(config.pool_max_idle_per_host)
        .build(connector))
}

/// The web PKI roots plus, optionally, the certificates in `ca_file` (a private CA for the app, a mock, an egress
/// proxy).
fn root_store(ca_file: Option<&std::path::Path>) -> Result<rustls::RootCertStore, BuildError> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        let shown = path.display().to_string();
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .and_then(|iter| iter.collect())
            .map_err(|source| BuildError::CaFile {
                path: shown.clone(),
                source,
            })?;
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(BuildError::NoCa { path: shown });
        }
    }
    Ok(roots)
}

/// A TLS client configuration (no client certificate) trusting [`root_store`]'s roots.
pub fn tls_client_config(
    ca_file: Option<&std::path::Path>,
) -> Result<rustls::ClientConfig, BuildError> {
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(root_store(ca_file)?)
    .with_no_client_auth())
}
