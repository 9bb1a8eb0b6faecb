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
use std::time::{Duration, Instant};

/// The response header in which koogate says that an answer was replayed from its idempotency record.
pub const FROM_RECORD_HEADER: &str = "x-koogate-from-record";

/// An answer as received.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body_sign: Option<String>,
    pub body: Bytes,
    pub elapsed: Duration,
    /// The target's request id (`X-Request-Id`), to find the call in its logs.
    pub request_id: Option<String>,
    /// koogate answered from its record of an earlier call (the app was not asked).
    pub from_record: bool,
}

/// Why a call got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The target cannot be reached at all (connection refused, TLS, DNS): every other case would fail the same
    /// way, so a run stops at the first one.
    Transport(String),
    /// This call got no (complete) answer in time.
    Failed(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Transport(reason) | CallError::Failed(reason) => f.write_str(reason),
        }
    }
}

/// How the client decides whether to trust the target's certificate.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// Extra CA certificates (PEM) trusted besides the public web PKI: a test CA, or a self-signed certificate.
    pub extra_ca_pem: Option<String>,
    /// Accept any certificate (local tests only; shown in the report).
    pub insecure: bool,
    /// Allow `http://` targets (a `[plain_http]` listener behind a TLS-terminating load balancer).
    pub plain: bool,
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
    insecure: bool,
}

impl KooClient {
    pub fn new(trust: &Trust, key: &[u8], timeout: Duration) -> anyhow::Result<Self> {
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let Some(pem) = &trust.extra_ca_pem {
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                roots.add(cert?)?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        // KooGallery requires TLS 1.2 or newer; so does this client, so a TLS 1.1-only server fails here too.
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
        let tls = if trust.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth()
        } else {
            builder.with_root_certificates(roots).with_no_client_auth()
        };
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(timeout));
        let connector = HttpsConnectorBuilder::new().with_tls_config(tls);
        let connector = if trust.plain {
            connector.https_or_http()
        } else {
            connector.https_only()
        }
        .enable_http1()
        .wrap_connector(http);
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            key: key.to_vec(),
            timeout,
            insecure: trust.insecure,
        })
    }

    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// Whether certificates go unchecked (`--insecure`).
    pub fn insecure(&self) -> bool {
        self.insecure
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
    pub async fn send_v2(&self, url: &str, call: &SignedV2) -> Result<Answer, CallError> {
        let separator = if url.contains('?') { '&' } else { '?' };
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!("{url}{separator}{}", call.query))
            .header(header::CONTENT_TYPE, "application/json;charset=UTF-8")
            .body(Full::new(Bytes::from(call.body.clone())))
            .map_err(|e| CallError::Transport(format!("cannot build the request: {e}")))?;
        self.send(request).await
    }

    /// Signs and POSTs `body` (V2).
    pub async fn call(&self, url: &str, body: &str) -> Result<Answer, CallError> {
        self.send_v2(url, &self.sign_v2(body.as_bytes())).await
    }

    /// Like [`KooClient::call`], but signed with another key (to show what a wrong key gets).
    pub async fn call_signed_with(
        &self,
        url: &str,
        body: &str,
        key: &[u8],
    ) -> Result<Answer, CallError> {
        let nonce = hex::encode(rand::random::<[u8; 16]>()).to_uppercase();
        let call = SignedV2 {
            query: v2::signed_query(key, &nonce, now_ms(), body.as_bytes()),
            body: body.as_bytes().to_vec(),
        };
        self.send_v2(url, &call).await
    }

    /// A V1 call: `GET` with the parameters and a `timeStamp` of now, signed into `authToken`.
    pub async fn call_v1(
        &self,
        url: &str,
        params: &[(String, String)],
    ) -> Result<Answer, CallError> {
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
            .map_err(|e| CallError::Transport(format!("cannot build the request: {e}")))?;
        self.send(request).await
    }

    async fn send(&self, request: Request<Full<Bytes>>) -> Result<Answer, CallError> {
        let started = Instant::now();
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(describe_transport_error)?;
            let status = response.status().as_u16();
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let body_sign = header(body_sign::HEADER);
            let request_id = header("x-request-id");
            let from_record = header(FROM_RECORD_HEADER).is_some_and(|v| v == "true");
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| CallError::Failed(format!("the answer body broke off: {e}")))?
                .to_bytes();
            Ok(Answer {
                status,
                body_sign,
                body,
                elapsed: started.elapsed(),
                request_id,
                from_record,
            })
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(CallError::Failed(format!(
                "no answer within {} ms (KooGallery gives up after 5000 ms)",
                self.timeout.as_millis()
            ))),
        }
    }
}

/// Names the likely cause of a transport failure, with what to do next. A failure before any byte of the answer
/// (connect, TLS) is a [`CallError::Transport`]; one after the request was sent only fails this call.
fn describe_transport_error(e: hyper_util::client::legacy::Error) -> CallError {
    let connect = e.is_connect();
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        detail = format!("{detail}: {s}");
        source = s.source();
    }
    let lower = detail.to_lowercase();
    let reason = if lower.contains("protocolversion")
        || lower.contains("protocol_version")
        || lower.contains("peer is incompatible")
    {
        format!("TLS handshake failed: the server does not offer TLS 1.2 or newer, which KooGallery requires ({detail})")
    } else if lower.contains("notvalidforname") || lower.contains("not valid for name") {
        format!(
            "TLS certificate is not valid for the URL's host name: KooGallery checks that the certificate names the \
             domain of the production URL; call the domain the certificate was issued for ({detail})"
        )
    } else if lower.contains("certificate") || lower.contains("unknownissuer") {
        format!(
            "TLS certificate not trusted: KooGallery trusts certificates issued by a public CA for the URL's domain. \
             For a test certificate pass --ca FILE with the CA certificate that issued it (the CA, not the server's \
             leaf — or the self-signed certificate itself when there is no CA), or --insecure for local tests only \
             ({detail})"
        )
    } else if lower.contains("connection refused") {
        format!("connection refused: is the server listening on that host and port? ({detail})")
    } else if lower.contains("invalid uri scheme") || lower.contains("scheme") {
        format!("KooGallery only calls https:// URLs ({detail})")
    } else {
        format!("request failed: {detail}")
    };
    if connect {
        CallError::Transport(reason)
    } else {
        CallError::Failed(reason)
    }
}

/// `--insecure`: any certificate is accepted (the handshake signature is still checked, so the connection is
/// encrypted to whoever holds the presented key — there is just no proof who that is).
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn now_ms() -> u64 {
    crate::clock::unix_ms()
}
