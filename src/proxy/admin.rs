//! The admin listener: `/metrics` (Prometheus text), `/healthz` (process alive), `/readyz` (accepting traffic),
//! and the seller's console under `/console` ([`crate::console`]).

use super::server::stop_requested;
use crate::metrics::Metrics;
use crate::state::Health;
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Whether `/readyz` answers 200: false while starting, from the moment shutdown begins, and while the state store
/// cannot take commits (a failed or stalled disk, Redis unreachable).
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    serving: Arc<AtomicBool>,
    store: Health,
}

impl Readiness {
    /// Readiness that also requires the store to be healthy.
    pub fn depending_on(store: Health) -> Self {
        Self {
            serving: Arc::default(),
            store,
        }
    }

    pub fn set(&self, ready: bool) {
        self.serving.store(ready, Ordering::SeqCst);
    }

    pub fn get(&self) -> bool {
        self.serving.load(Ordering::SeqCst) && self.store.is_healthy()
    }
}

/// Serves the admin endpoints until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    metrics: Metrics,
    readiness: Readiness,
    console: Option<Arc<crate::console::Console>>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => { tokio::time::sleep(Duration::from_millis(50)).await; continue; }
            },
            _ = stop_requested(&mut shutdown) => return,
        };
        let (metrics, readiness, console) = (metrics.clone(), readiness.clone(), console.clone());
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let console = console
                    .clone()
                    .filter(|_| crate::console::serves(request.uri().path()));
                let (metrics, readiness) = (metrics.clone(), readiness.clone());
                async move {
                    Ok::<_, Infallible>(match console {
                        Some(console) => console.answer(request).await,
                        None => answer(&request, &metrics, &readiness),
                    })
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(5))
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn answer(
    request: &Request<Incoming>,
    metrics: &Metrics,
    readiness: &Readiness,
) -> Response<Full<Bytes>> {
    // HEAD answers as GET does (status, headers, Content-Length) without the body: monitors and load balancers
    // probe with it.
    let head = request.method() == Method::HEAD;
    let method = if head { &Method::GET } else { request.method() };
    let (status, content_type, body) = match (method, request.uri().path()) {
        (&Method::GET, "/metrics") => {
            metrics
                .store_healthy
                .set(i64::from(readiness.store.is_healthy()));
            (
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                metrics.render(),
            )
        }
        (&Method::GET, "/healthz") => (StatusCode::OK, "text/plain", "ok\n".to_owned()),
        (&Method::GET, "/readyz") if readiness.get() => {
            (StatusCode::OK, "text/plain", "ready\n".to_owned())
        }
        (&Method::GET, "/readyz") => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "not ready\n".to_owned(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_owned(),
        ),
    };
    let length = body.len();
    let body = if head {
        Bytes::new()
    } else {
        Bytes::from(body)
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, header::HeaderValue::from(length));
    if let Ok(value) = header::HeaderValue::from_str(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}
