//! The `http-01` listener (port 80): answers `GET /.well-known/acme-challenge/<token>` for a pending challenge
//! and 404 with an empty body to everything else. It never forwards anything to the app.

use bytes::Bytes;
use http::{Method, Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

const CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";
/// Validators open a handful of connections; anything beyond this waits.
const MAX_CONNECTIONS: usize = 64;
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection's whole life: a validator sends one request.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// Pending `http-01` answers: token → key authorization.
#[derive(Debug, Default, Clone)]
pub struct Tokens(Arc<Mutex<HashMap<String, String>>>);

impl Tokens {
    pub fn insert(&self, token: String, key_authorization: String) {
        if let Ok(mut map) = self.0.lock() {
            map.insert(token, key_authorization);
        }
    }

    pub fn clear(&self) {
        if let Ok(mut map) = self.0.lock() {
            map.clear();
        }
    }

    fn answer(&self, method: &Method, path: &str) -> Option<String> {
        if method != Method::GET && method != Method::HEAD {
            return None;
        }
        let token = path.strip_prefix(CHALLENGE_PREFIX)?;
        self.0.lock().ok()?.get(token).cloned()
    }
}

/// Serves until `shutdown` turns true.
pub async fn serve(listener: TcpListener, tokens: Tokens, mut shutdown: watch::Receiver<bool>) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit { Ok(p) => p, Err(_) => break },
            _ = crate::proxy::server::stop_requested(&mut shutdown) => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "acme http-01 accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = crate::proxy::server::stop_requested(&mut shutdown) => break,
        };
        let tokens = tokens.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                let answer = tokens.answer(request.method(), request.uri().path());
                async move { Ok::<_, Infallible>(respond(answer)) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_TIMEOUT, connection).await;
        });
    }
}

fn respond(answer: Option<String>) -> Response<Full<Bytes>> {
    let (status, body) = match answer {
        Some(key_authorization) => (StatusCode::OK, Bytes::from(key_authorization)),
        None => (StatusCode::NOT_FOUND, Bytes::new()),
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pending_tokens_are_answered() {
        let tokens = Tokens::default();
        tokens.insert("abc".into(), "abc.thumb".into());
        let path = |t: &str| format!("{CHALLENGE_PREFIX}{t}");
        assert_eq!(
            tokens.answer(&Method::GET, &path("abc")).as_deref(),
            Some("abc.thumb")
        );
        assert_eq!(tokens.answer(&Method::POST, &path("abc")), None);
        assert_eq!(tokens.answer(&Method::GET, &path("other")), None);
        assert_eq!(tokens.answer(&Method::GET, "/abc"), None);
        tokens.clear();
        assert_eq!(tokens.answer(&Method::GET, &path("abc")), None);
    }
}
