//! Test clients: signed KooGallery calls over real TLS, raw bytes over TLS, and plain HTTP for the admin port.

use base64::{engine::general_purpose::STANDARD, Engine};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use ring::hmac;
use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::{client::TlsStream, TlsConnector};

pub fn now_ms() -> u64 {
    koogate::clock::unix_ms()
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), message)
        .as_ref()
        .to_vec()
}

/// KooGallery's V2 signature, computed with `ring` (not koogate's code).
pub fn sign_v2(key: &str, nonce: &str, timestamp: &str, body: &[u8]) -> String {
    let inner = hex::encode(hmac_sha256(key.as_bytes(), body));
    hex::encode(hmac_sha256(
        key.as_bytes(),
        format!("{key}{nonce}{timestamp}{inner}").as_bytes(),
    ))
}

/// One KooGallery call: what is signed and what is sent may differ, so tests can tamper with either.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: &'static str,
    pub path: String,
    /// The query string; `None` means "sign the body with the fields below".
    pub query: Option<String>,
    pub key: String,
    pub nonce: String,
    pub timestamp: String,
    pub body: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

impl Call {
    pub fn new(body: impl Into<Vec<u8>>) -> Self {
        Self {
            method: "POST",
            path: "/koogallery".into(),
            query: None,
            key: super::KEY.into(),
            nonce: hex::encode(rand::random::<[u8; 16]>()).to_uppercase(),
            timestamp: now_ms().to_string(),
            body: body.into(),
            headers: vec![(
                "content-type".into(),
                "application/json;charset=UTF-8".into(),
            )],
        }
    }

    pub fn json(value: &Value) -> Self {
        Self::new(value.to_string())
    }

    /// A V1 call: `GET` with the parameters (plus `timeStamp`, now) signed into `authToken` as KooGallery does,
    /// computed with `ring`. Values are percent-encoded except that base64 `+`, `/`, `=` are left raw, as
    /// KooGallery sends them.
    pub fn v1(params: &[(&str, &str)]) -> Self {
        Self::v1_at(params, &v1_time_stamp(now_ms()))
    }

    pub fn v1_at(params: &[(&str, &str)], time_stamp: &str) -> Self {
        let mut sorted: Vec<(String, String)> = params
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .chain([("timeStamp".to_string(), time_stamp.to_string())])
            .collect();
        sorted.sort();
        let message: Vec<String> = sorted.iter().map(|(n, v)| format!("{n}={v}")).collect();
        let token = STANDARD.encode(hmac_sha256(
            format!("{}{time_stamp}", super::KEY).as_bytes(),
            message.join("&").as_bytes(),
        ));
        let query: Vec<String> = sorted
            .iter()
            .map(|(n, v)| format!("{n}={}", v1_encode(v)))
            .chain([format!("authToken={}", v1_encode(&token))])
            .collect();
        let mut call = Self::new(Vec::new());
        call.method = "GET";
        call.nonce = token;
        call.query = Some(query.join("&"));
        call.headers.clear();
        call
    }

    pub fn signed_query(&self) -> String {
        let sig = sign_v2(&self.key, &self.nonce, &self.timestamp, &self.body);
        format!(
            "signature={sig}&timestamp={}&nonce={}",
            self.timestamp, self.nonce
        )
    }

    pub fn uri(&self) -> String {
        format!(
            "{}?{}",
            self.path,
            self.query.clone().unwrap_or_else(|| self.signed_query())
        )
    }
}

/// `yyyyMMddHHmmssSSS` in UTC.
pub fn v1_time_stamp(ms: u64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap();
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}{:03}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    )
}

/// Percent-encodes a V1 value but leaves base64's `+`, `/` and `=` raw (KooGallery's habit).
fn v1_encode(value: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'+')
        .remove(b'/')
        .remove(b'=')
        .remove(b'-')
        .remove(b'_')
        .remove(b'.');
    percent_encoding::utf8_percent_encode(value, KEEP).to_string()
}

/// An answer as it crossed the wire.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| panic!("not JSON: {:?}", self.body))
    }

    pub fn code(&self) -> String {
        self.json()["resultCode"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Checks status 200, JSON content type, and a `Body-Sign` over the exact bytes with `key` (via `ring`).
    pub fn assert_signed_by(&self, key: &str) {
        assert_eq!(
            self.status, 200,
            "KooGallery answers are always HTTP 200: {self:?}"
        );
        let ct = self
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(ct.starts_with("application/json"), "content type {ct}");
        let header = self
            .headers
            .get("body-sign")
            .expect("Body-Sign header present")
            .to_str()
            .unwrap();
        let expected = STANDARD.encode(hmac_sha256(key.as_bytes(), &self.body));
        assert_eq!(
            header,
            format!("sign_type=\"HMAC-SHA256\", signature= \"{expected}\""),
            "body {:?}",
            self.body
        );
    }

    /// A signed KooGallery answer with this result code.
    pub fn assert_code(&self, code: &str) {
        self.assert_signed_by(super::KEY);
        assert_eq!(
            self.code(),
            code,
            "body {:?}",
            String::from_utf8_lossy(&self.body)
        );
    }
}

/// A client for one gateway; every call uses a fresh TLS connection.
#[derive(Clone)]
pub struct Client {
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
}

pub fn tls_config(
    ca_pem: &str,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

impl Client {
    pub fn new(addr: SocketAddr, ca_pem: &str) -> Self {
        Self {
            addr,
            tls: tls_config(ca_pem, rustls::ALL_VERSIONS),
        }
    }

    pub async fn connect(&self) -> TlsStream<TcpStream> {
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        TlsConnector::from(self.tls.clone())
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap()
    }

    pub async fn send(&self, call: &Call) -> Reply {
        let stream = self.connect().await;
        send_over(stream, call).await
    }

    /// Writes raw bytes on a fresh TLS connection and reads until the server closes (or 3 s pass).
    pub async fn raw(&self, bytes: &[u8]) -> Vec<u8> {
        let mut stream = self.connect().await;
        stream.write_all(bytes).await.unwrap();
        stream.flush().await.unwrap();
        read_to_close(&mut stream, Duration::from_secs(3)).await
    }
}

/// Sends one call over an established connection (TLS or plain).
pub async fn send_over<S>(stream: S, call: &Call) -> Reply
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    // On a multi-threaded runtime the connection task may not have run yet.
    sender.ready().await.unwrap();
    let mut request = http::Request::builder()
        .method(call.method)
        .uri(call.uri())
        .header("host", "localhost");
    for (name, value) in &call.headers {
        request = request.header(name, value);
    }
    let request = request
        .body(Full::new(Bytes::from(call.body.clone())))
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), sender.send_request(request))
        .await
        .unwrap()
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body,
    }
}

pub async fn read_to_close<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
    limit: Duration,
) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(limit, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    out
}

/// Splits a raw HTTP/1.1 response into (status, lower-cased header text, body).
pub fn parse_raw_response(raw: &[u8]) -> (u16, String, Vec<u8>) {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP response in {text:?}"));
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_lowercase(), body.as_bytes().to_vec())
}

/// GET on the admin port: (status, body).
pub async fn admin_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nhost: admin\r\nconnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let raw = read_to_close(&mut stream, Duration::from_secs(3)).await;
    let (status, _, body) = parse_raw_response(&raw);
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}
