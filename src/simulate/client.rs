//! A client that calls a KooGallery production URL the way KooGallery does: signed V2 and V1 calls over HTTPS
//! (TLS 1.2 or newer only), timing each answer.

use crate::protocol::{body_sign, timefmt, v1, v2};
use base64::{engine::general_purpose::STANDARD, Engine};
use bytes::Bytes;
use http::{header, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::{pem::PemObject, CertificateDer};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// An answer as received.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body_sign: Option<String>,
    pub body: Bytes,
    pub elapsed: Duration,
}

impl Answer {
    /// Whether `Body-Sign` is present and matches the body under `key`.
    pub fn signature_valid(&self, key: &[u8]) -> bool {
        let expected = body_sign::signature(key, &self.body);
        self.body_sign
            .as_deref()
            .and_then(body_sign::parse_header)
            .is_some_and(|got| got == expected)
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// A signed V2 call, prepared so the same bytes can be sent twice (a replay probe).
#[derive(Debug, Clone)]
pub struct SignedV2 {
    pub query: String,
    pub body: Vec<u8>,
}

/// Sends calls as KooGallery does, trusting the public web PKI plus an optional CA (PEM).
pub struct KooClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    key: Vec<u8>,
    timeout: Duration,
}

impl KooClient {
    pub fn new(extra_ca_pem: Option<&str>, key: &[u8], timeout: Duration) -> anyhow::Result<Self> {
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let Some(pem) = extra_ca_pem {
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                roots.add(cert?)?;
            }
        }
        // KooGallery requires TLS 1.2 or newer; so does this client, so a TLS 1.1-only server fails here too.
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(timeout));
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .wrap_connector(http);
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            key: key.to_vec(),
            timeout,
        })
    }

    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// Signs `body` with a fresh nonce and the current time, as KooGallery would.
    pub fn sign_v2(&self, body: &[u8]) -> SignedV2 {
        let nonce = hex::encode(rand::random::<[u8; 16]>()).to_uppercase();
        SignedV2 {
            query: v2::signed_query(&self.key, &nonce, now_ms(), body),
            body: body.to_vec(),
        }
    }

    /// POSTs a signed V2 call.
    pub async fn send_v2(&self, url: &str, call: &SignedV2) -> Result<Answer, String> {
        let separator = if url.contains('?') { '&' } else { '?' };
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!("{url}{separator}{}", call.query))
            .header(header::CONTENT_TYPE, "application/json;charset=UTF-8")
            .body(Full::new(Bytes::from(call.body.clone())))
            .map_err(|e| format!("cannot build the request: {e}"))?;
        self.send(request).await
    }

    /// Signs and POSTs `body` (V2).
    pub async fn call(&self, url: &str, body: &str) -> Result<Answer, String> {
        self.send_v2(url, &self.sign_v2(body.as_bytes())).await
    }

    /// Like [`KooClient::call`], but signed with another key (to show what a wrong key gets).
    pub async fn call_signed_with(
        &self,
        url: &str,
        body: &str,
        key: &[u8],
    ) -> Result<Answer, String> {
        let nonce = hex::encode(rand::random::<[u8; 16]>()).to_uppercase();
        let call = SignedV2 {
            query: v2::signed_query(key, &nonce, now_ms(), body.as_bytes()),
            body: body.as_bytes().to_vec(),
        };
        self.send_v2(url, &call).await
    }

    /// A V1 call: `GET` with the parameters and a `timeStamp` of now, signed into `authToken`.
    pub async fn call_v1(&self, url: &str, params: &[(String, String)]) -> Result<Answer, String> {
        let time_stamp = timefmt::koogallery(time::OffsetDateTime::now_utc(), true);
        let mut sorted: Vec<(String, String)> = params
            .iter()
            .cloned()
            .chain([("timeStamp".to_owned(), time_stamp.clone())])
            .collect();
        sorted.sort();
        let token = STANDARD.encode(v1::auth_token(
            &self.key,
            &time_stamp,
            &v1::canonical_message(&sorted),
        ));
        let encode = |v: &str| {
            percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC).to_string()
        };
        let query: Vec<String> = sorted
            .iter()
            .map(|(n, v)| format!("{n}={}", encode(v)))
            .chain([format!("authToken={}", encode(&token))])
            .collect();
        let separator = if url.contains('?') { '&' } else { '?' };
        let request = Request::builder()
            .method(Method::GET)
            .uri(format!("{url}{separator}{}", query.join("&")))
            .body(Full::new(Bytes::new()))
            .map_err(|e| format!("cannot build the request: {e}"))?;
        self.send(request).await
    }

    async fn send(&self, request: Request<Full<Bytes>>) -> Result<Answer, String> {
        let started = Instant::now();
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(describe_transport_error)?;
            let status = response.status().as_u16();
            let body_sign = response
                .headers()
                .get(body_sign::HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("the answer body broke off: {e}"))?
                .to_bytes();
            Ok(Answer {
                status,
                body_sign,
                body,
                elapsed: started.elapsed(),
            })
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "no answer within {} ms (KooGallery gives up after 5000 ms)",
                self.timeout.as_millis()
            )),
        }
    }
}

/// Names the likely cause of a transport failure, with what to do next.
fn describe_transport_error(e: hyper_util::client::legacy::Error) -> String {
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        detail = format!("{detail}: {s}");
        source = s.source();
    }
    let lower = detail.to_lowercase();
    if lower.contains("protocolversion")
        || lower.contains("protocol_version")
        || lower.contains("peer is incompatible")
    {
        format!("TLS handshake failed: the server does not offer TLS 1.2 or newer, which KooGallery requires ({detail})")
    } else if lower.contains("certificate") || lower.contains("unknownissuer") {
        format!("TLS certificate not trusted: use a CA-issued certificate for the domain, or --ca FILE for a test CA ({detail})")
    } else if lower.contains("connection refused") {
        format!("connection refused: is the server listening on that host and port? ({detail})")
    } else {
        format!("request failed: {detail}")
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
