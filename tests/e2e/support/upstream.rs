//! A real upstream app on a loopback port that records what it received and answers as the test says.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

/// How the upstream answers.
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// Status and body.
    Answer(u16, String),
    /// Waits, then answers 200 with the body.
    Slow(Duration, String),
    /// Answers per activity like a small real app (instance ids derived from the order).
    App,
    /// Like `App`, but every `newInstance` gets a new random instance id: a second provisioning shows.
    Unique,
}

/// What one upstream call looked like on the wire.
#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

pub struct Upstream {
    pub addr: SocketAddr,
    scheme: &'static str,
    behaviour: Arc<Mutex<Behaviour>>,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Upstream {
    pub async fn start(behaviour: Behaviour) -> Self {
        Self::start_inner(behaviour, None).await
    }

    /// An HTTPS upstream with the given certificate and key (PEM files).
    pub async fn start_tls(
        behaviour: Behaviour,
        cert: &std::path::Path,
        key: &std::path::Path,
    ) -> Self {
        Self::start_tls_with(behaviour, cert, key, None).await
    }

    /// An HTTPS upstream that requires a client certificate issued by the CA in `client_ca` (PEM): rustls'
    /// WebPKI client verifier, so a connection without one fails the handshake.
    pub async fn start_mtls(
        behaviour: Behaviour,
        cert: &std::path::Path,
        key: &std::path::Path,
        client_ca: &std::path::Path,
    ) -> Self {
        Self::start_tls_with(behaviour, cert, key, Some(client_ca)).await
    }

    async fn start_tls_with(
        behaviour: Behaviour,
        cert: &std::path::Path,
        key: &std::path::Path,
        client_ca: Option<&std::path::Path>,
    ) -> Self {
        use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client_auth = match client_ca {
            None => rustls::server::WebPkiClientVerifier::no_client_auth(),
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for c in CertificateDer::pem_file_iter(ca).unwrap() {
                    roots.add(c.unwrap()).unwrap();
                }
                rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider.clone(),
                )
                .build()
                .unwrap()
            }
        };
        let certs = CertificateDer::pem_file_iter(cert)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(key).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(client_auth)
            .with_single_cert(certs, key)
            .unwrap();
        Self::start_inner(
            behaviour,
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))),
        )
        .await
    }

    async fn start_inner(behaviour: Behaviour, tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let behaviour = Arc::new(Mutex::new(behaviour));
        let received = Arc::new(Mutex::new(Vec::new()));
        let (b, r) = (behaviour.clone(), received.clone());
        let scheme = if tls.is_some() { "https" } else { "http" };
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (b, r, tls) = (b.clone(), r.clone(), tls.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let (b, r) = (b.clone(), r.clone());
                        async move { Ok::<_, Infallible>(answer(req, &b, &r).await) }
                    });
                    let builder = hyper::server::conn::http1::Builder::new();
                    match tls {
                        Some(acceptor) => {
                            if let Ok(s) = acceptor.accept(stream).await {
                                let _ = builder.serve_connection(TokioIo::new(s), service).await;
                            }
                        }
                        None => {
                            let _ = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                    }
                });
            }
        });
        Self {
            addr,
            scheme,
            behaviour,
            received,
        }
    }

    pub fn url(&self) -> String {
        // The TLS upstream's certificate names `localhost`; plain HTTP avoids a resolver round trip.
        let host = if self.scheme == "https" {
            "localhost"
        } else {
            "127.0.0.1"
        };
        format!(
            "{}://{host}:{}/koogallery/hook",
            self.scheme,
            self.addr.port()
        )
    }

    pub fn set(&self, behaviour: Behaviour) {
        *self.behaviour.lock().unwrap() = behaviour;
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.received.lock().unwrap().len()
    }

    pub fn last(&self) -> Received {
        self.received().pop().expect("the upstream received a call")
    }
}

async fn answer(
    request: hyper::Request<hyper::body::Incoming>,
    behaviour: &Mutex<Behaviour>,
    received: &Mutex<Vec<Received>>,
) -> hyper::Response<Full<Bytes>> {
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let headers = request.headers().clone();
    let body = request.into_body().collect().await.unwrap().to_bytes();
    let call: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    received.lock().unwrap().push(Received {
        method,
        path,
        headers,
        body,
    });
    let behaviour = behaviour.lock().unwrap().clone();
    let (status, text) = match behaviour {
        Behaviour::Answer(status, text) => (status, text),
        Behaviour::Slow(delay, text) => {
            tokio::time::sleep(delay).await;
            (200, text)
        }
        Behaviour::App => (200, app_answer(&call).to_string()),
        Behaviour::Unique if call["activity"] == "newInstance" => {
            let id = format!("inst-{}", hex::encode(rand::random::<[u8; 8]>()));
            (200, serde_json::json!({"instanceId": id, "appInfo": {"frontEndUrl": "https://app.example/", "password": "Sup3r-Secret-Pw"}}).to_string())
        }
        Behaviour::Unique => (200, app_answer(&call).to_string()),
    };
    let mut response = hyper::Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
    response
}

fn app_answer(call: &Value) -> Value {
    match call["activity"].as_str() {
        Some("newInstance") => {
            serde_json::json!({"instanceId": format!("inst-{}", call["orderId"].as_str().unwrap()),
                "appInfo": {"frontEndUrl": "https://app.example/", "userName": "admin", "password": "secret-pw"}})
        }
        Some("queryInstance") => {
            serde_json::json!({"info": call["instanceIds"].as_array().unwrap().iter()
            .map(|id| serde_json::json!({"instanceId": id, "appInfo": {"frontEndUrl": "https://app.example/", "memo": "m"}}))
            .collect::<Vec<_>>()})
        }
        _ => serde_json::json!({}),
    }
}
