//! A small HTTPS client for KooGallery's OpenAPI: every call signed with SDK-HMAC-SHA256 (IAM AK/SK).

use super::sign::{self, SignInput};
use crate::clock::Clock;
use crate::config::KooGalleryApiConfig;
use crate::upstream::{tls_client_config, BuildError};
use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::sync::Arc;
use std::time::Duration;

/// An OpenAPI answer is a small JSON document; anything larger is refused rather than buffered.
pub const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// Why an OpenAPI call produced no HTTP answer. An answer with any status is not an error here: callers read the
/// body's MKT code (or the gateway's `APIGW.*` code) themselves.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the KooGallery API could not be reached")]
    Unreachable(#[source] hyper_util::client::legacy::Error),
    #[error("the KooGallery API did not answer in time")]
    Timeout,
    #[error("the KooGallery API answer could not be read")]
    Body,
    #[error("the KooGallery API answer exceeds {MAX_ANSWER_BYTES} bytes")]
    TooLarge,
    #[error("the request could not be built (invalid header or path)")]
    Request,
}

impl ClientError {
    /// A bounded label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            ClientError::Unreachable(_) => "unreachable",
            ClientError::Timeout => "timeout",
            ClientError::Body => "body_error",
            ClientError::TooLarge => "answer_too_large",
            ClientError::Request => "request_invalid",
        }
    }
}

/// An HTTP answer from the API.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: u16,
    pub body: Bytes,
}

type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The signed client. Cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct OpenApiClient {
    config: Arc<KooGalleryApiConfig>,
    http: HttpClient,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for OpenApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenApiClient")
            .field("base_url", &self.config.base_url)
            .finish_non_exhaustive()
    }
}

impl OpenApiClient {
    /// Builds the client (HTTPS only, strict certificate verification; `ca_file` adds trusted roots).
    pub fn new(
        config: Arc<KooGalleryApiConfig>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, BuildError> {
        let tls = tls_client_config(config.ca_file.as_deref())?;
        let mut connector = HttpConnector::new();
        connector.enforce_http(false);
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(config.connect_timeout));
        let https = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .wrap_connector(connector);
        let http = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(https);
        Ok(Self {
            config,
            http,
            clock,
        })
    }

    pub fn config(&self) -> &KooGalleryApiConfig {
        &self.config
    }

    /// Sends one signed request to `{base_url}{path}?{query}` within `timeout_ms`. Signed headers: `host`,
    /// `x-sdk-date`, `content-type` (when there is a body) and every one of `extra_headers` (for example the
    /// usage-data `ts`, `nonce`, `signature`). `path` is the decoded path below the base URL.
    pub async fn send_signed(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Bytes,
        extra_headers: &[(HeaderName, String)],
    ) -> Result<ApiResponse, ClientError> {
        tokio::time::timeout(
            self.config.timeout,
            self.exchange(method, path, query, body, extra_headers),
        )
        .await
        .unwrap_or(Err(ClientError::Timeout))
    }

    async fn exchange(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Bytes,
        extra_headers: &[(HeaderName, String)],
    ) -> Result<ApiResponse, ClientError> {
        let request = self.signed_request(method, path, query, body, extra_headers)?;
        let response = self
            .http
            .request(request)
            .await
            .map_err(ClientError::Unreachable)?;
        let status = response.status().as_u16();
        match Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
        {
            Ok(body) => Ok(ApiResponse {
                status,
                body: body.to_bytes(),
            }),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ClientError::TooLarge),
            Err(_) => Err(ClientError::Body),
        }
    }

    /// The request exactly as sent: what is signed is what crosses the wire.
    fn signed_request(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Bytes,
        extra_headers: &[(HeaderName, String)],
    ) -> Result<Request<Full<Bytes>>, ClientError> {
        let base = &self.config.base_url;
        let authority = base.authority().ok_or(ClientError::Request)?.as_str();
        let full_path = format!("{}{}", base.path().trim_end_matches('/'), path);
        let encoded_path = full_path
            .split('/')
            .map(sign::escape)
            .collect::<Vec<_>>()
            .join("/");
        let encoded_query = query
            .iter()
            .map(|(k, v)| format!("{}={}", sign::escape(k), sign::escape(v)))
            .collect::<Vec<_>>()
            .join("&");
        let uri = if encoded_query.is_empty() {
            format!("https://{authority}{encoded_path}")
        } else {
            format!("https://{authority}{encoded_path}?{encoded_query}")
        };
        let date = sign::sdk_date_value((self.clock.now_ms() / 1000) as i64)
            .ok_or(ClientError::Request)?;
        let mut signed: Vec<(String, String)> = vec![
            ("Host".to_owned(), authority.to_owned()),
            (sign::DATE_HEADER.to_owned(), date),
        ];
        if !body.is_empty() {
            signed.push(("Content-Type".to_owned(), "application/json".to_owned()));
        }
        signed.extend(
            extra_headers
                .iter()
                .map(|(n, v)| (n.as_str().to_owned(), v.clone())),
        );
        let credentials = &self.config.credentials;
        let auth = sign::authorize(
            credentials.ak(),
            credentials.expose_sk(),
            &SignInput {
                method: method.as_str(),
                path: &full_path,
                query,
                headers: &signed,
                body: &body,
            },
        );
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::ACCEPT, "application/json")
            .body(Full::new(body))
            .map_err(|_| ClientError::Request)?;
        let headers = request.headers_mut();
        for (name, value) in &signed {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| ClientError::Request)?;
            let value = HeaderValue::from_str(value).map_err(|_| ClientError::Request)?;
            headers.insert(name, value);
        }
        let authorization =
            HeaderValue::from_str(&auth.header_value()).map_err(|_| ClientError::Request)?;
        headers.insert(header::AUTHORIZATION, authorization);
        Ok(request)
    }
}
