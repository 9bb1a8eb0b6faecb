//! The app-facing listener: `POST /v1/usage` validates each record, queues the good ones durably and answers per
//! record; `GET /v1/usage/status` reports the queue. A bearer token guards both when one is configured.

use super::auth::BearerToken;
use super::metrics::UsageMetrics;
use super::queue::{Offer, Queue, SnState};
use super::record::{self, Rejection};
use super::status;
use crate::clock::Clock;
use crate::proxy::body::{read_bounded, BodyError};
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};

/// The app is local; a body that has not arrived in 10 s is not coming.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How many kept rejections the status endpoint lists.
const STATUS_RECENT: usize = 100;

/// Everything a request needs; shared by all connections.
pub struct Intake {
    pub queue: Queue,
    pub metrics: UsageMetrics,
    pub clock: Arc<dyn Clock>,
    pub wake: Arc<Notify>,
    pub token: Option<BearerToken>,
    pub max_body_bytes: usize,
    pub max_records_per_request: usize,
    pub max_queued_records: u64,
}

/// Serves until `shutdown` turns true; connections in progress finish their request.
pub async fn serve(
    listener: TcpListener,
    intake: Arc<Intake>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => { tokio::time::sleep(Duration::from_millis(50)).await; continue; }
            },
            _ = crate::proxy::server::stop_requested(&mut shutdown) => return,
        };
        let intake = intake.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let intake = intake.clone();
                async move { Ok::<_, Infallible>(intake.answer(request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(5))
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

impl Intake {
    async fn answer(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        if let Some(token) = &self.token {
            let presented = request
                .headers()
                .get(header::AUTHORIZATION)
                .map(|v| v.as_bytes());
            if !token.admits(presented) {
                let mut response =
                    error(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer"),
                );
                return response;
            }
        }
        match (request.method(), request.uri().path()) {
            (&Method::POST, "/v1/usage") => self.submit(request).await,
            (&Method::GET, "/v1/usage/status") => self.status().await,
            (_, "/v1/usage" | "/v1/usage/status") => {
                error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
            }
            _ => error(StatusCode::NOT_FOUND, "not found"),
        }
    }

    async fn submit(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let length = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let body = match read_bounded(
            request.into_body(),
            length,
            self.max_body_bytes,
            BODY_READ_TIMEOUT,
        )
        .await
        {
            Ok(body) => body,
            Err(BodyError::TooLarge) => {
                return error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "the body exceeds usage.max_body_bytes",
                )
            }
            Err(BodyError::Timeout | BodyError::Read) => {
                return error(StatusCode::BAD_REQUEST, "the body could not be read")
            }
        };
        let records = match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(mut object)) => match object.remove("records") {
                Some(Value::Array(records)) if object.is_empty() => records,
                _ => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "the body must be {\"records\":[…]} and nothing else",
                    )
                }
            },
            _ => return error(StatusCode::BAD_REQUEST, "the body must be a JSON object"),
        };
        if records.is_empty() || records.len() > self.max_records_per_request {
            return error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "records must hold 1 to {} records (usage.max_records_per_request)",
                    self.max_records_per_request
                ),
            );
        }
        let now = self.clock.now_ms();
        let verdicts: Vec<_> = records.iter().map(|r| record::validate(r, now)).collect();
        let valid: Vec<_> = verdicts
            .iter()
            .filter_map(|v| v.as_ref().ok().cloned())
            .collect();
        let offers = if valid.is_empty() {
            Vec::new()
        } else {
            let (queue, max) = (self.queue.clone(), self.max_queued_records);
            match tokio::task::spawn_blocking(move || queue.offer(&valid, now, max)).await {
                Ok(Ok(offers)) => offers,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "usage records could not be queued");
                    return error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the usage queue could not be written; nothing was accepted",
                    );
                }
                Err(_) => {
                    return error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the usage queue could not be written; nothing was accepted",
                    )
                }
            }
        };
        let mut offers = offers.into_iter();
        let mut counts = [0u64; 3];
        let results: Vec<Value> = verdicts
            .iter()
            .zip(&records)
            .enumerate()
            .map(|(index, (verdict, raw))| {
                let sn = record::metering_sn(raw);
                let (slot, mut result) = match verdict {
                    Err(rejection) => (2, rejected(rejection)),
                    Ok(_) => match offers.next() {
                        Some(Offer::Accepted) => (0, json!({"status": "accepted"})),
                        Some(Offer::Duplicate(state)) => (1, duplicate(&state)),
                        Some(Offer::Full) | None => (2, rejected(&Rejection::QueueFull)),
                    },
                };
                counts[slot] += 1;
                result["index"] = json!(index);
                result["meteringSn"] = json!(sn);
                result
            })
            .collect();
        for (slot, outcome) in ["accepted", "duplicate", "rejected"].iter().enumerate() {
            self.metrics
                .submitted
                .with_label_values(&[outcome])
                .inc_by(counts[slot]);
        }
        if counts[0] > 0 {
            self.wake.notify_one();
        }
        tracing::info!(
            accepted = counts[0],
            duplicates = counts[1],
            rejected = counts[2],
            "usage records submitted"
        );
        respond(
            StatusCode::OK,
            &json!({
                "accepted": counts[0],
                "duplicates": counts[1],
                "rejected": counts[2],
                "results": results,
            }),
        )
    }

    async fn status(&self) -> Response<Full<Bytes>> {
        let queue = self.queue.clone();
        match tokio::task::spawn_blocking(move || queue.snapshot(STATUS_RECENT)).await {
            Ok(Ok(snapshot)) => respond(
                StatusCode::OK,
                &status::to_json(&snapshot, self.clock.now_ms()),
            ),
            _ => error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the usage queue could not be read",
            ),
        }
    }
}

fn rejected(rejection: &Rejection) -> Value {
    json!({"status": "rejected", "code": rejection.code(), "reason": rejection.message()})
}

fn duplicate(state: &SnState) -> Value {
    match state {
        SnState::Queued { .. } => json!({"status": "duplicate", "state": "queued"}),
        SnState::Sent { .. } => json!({"status": "duplicate", "state": "sent"}),
        SnState::Rejected { code, reason, .. } => {
            json!({"status": "duplicate", "state": "rejected", "code": code, "reason": reason})
        }
    }
}

fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    respond(status, &json!({ "error": message }))
}

fn respond(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}
