//! The built-in demo upstream: a tiny app that implements the upstream contract (`docs/upstream-contract.md`).

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

/// A running demo app. It remembers the last normalised request it received, so the demo can show it.
pub struct DemoApp {
    addr: SocketAddr,
    last: Arc<Mutex<Option<Value>>>,
}

impl DemoApp {
    /// Starts the app on a free loopback port.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let last = Arc::new(Mutex::new(None));
        let seen = last.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let seen = seen.clone();
                        async move { Ok::<_, Infallible>(answer(req, &seen).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self { addr, last })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The last request body received, as JSON.
    pub fn last_request(&self) -> Option<Value> {
        self.last.lock().ok()?.clone()
    }
}

async fn answer(request: Request<Incoming>, seen: &Mutex<Option<Value>>) -> Response<Full<Bytes>> {
    let body = Limited::new(request.into_body(), 1 << 20)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let call: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if let Ok(mut last) = seen.lock() {
        *last = Some(call.clone());
    }
    let reply = match call["activity"].as_str() {
        // Same order → same instance id: derived from the order, so retries are naturally idempotent.
        Some("newInstance") => {
            let id = format!("demo-{}", call["orderId"].as_str().unwrap_or("order"));
            json!({ "instanceId": id, "appInfo": { "frontEndUrl": "https://app.example.com/", "userName": "admin", "password": "demo-Passw0rd" } })
        }
        Some("queryInstance") => {
            let ids = call["instanceIds"].as_array().cloned().unwrap_or_default();
            let info: Vec<Value> = ids
                .iter()
                .map(|id| json!({ "instanceId": id, "appInfo": { "frontEndUrl": "https://app.example.com/", "adminUrl": "https://app.example.com/admin" } }))
                .collect();
            json!({ "info": info })
        }
        Some(_) => json!({}),
        None => json!({ "resultCode": "000002" }),
    };
    Response::new(Full::new(Bytes::from(reply.to_string())))
}
