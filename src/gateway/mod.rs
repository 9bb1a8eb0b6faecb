//! The request path. [`Gateway::handle`] (outer) times the call, records metrics, logs once and turns any error
//! into a signed KooGallery answer; [`Gateway::process`] (inner) is the protocol pipeline, one step per line.

mod auth;
pub mod error;
pub mod replay;

use crate::clock::Clock;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::protocol::request;
use crate::protocol::response::{build_response, parse_answer, KooResponse};
use crate::protocol::{body_sign, Activity, Generation};
use crate::proxy::upstream::{Upstreams, REQUEST_ID_HEADER};
use crate::secret::KeyIndex;
use bytes::Bytes;
use error::GatewayError;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use replay::NonceCache;
use std::sync::Arc;
use tokio::time::Instant;

/// Everything the request path needs, built once from a validated [`Config`].
pub struct Gateway {
    config: Arc<Config>,
    replay: NonceCache,
    upstreams: Upstreams,
    metrics: Metrics,
    clock: Arc<dyn Clock>,
}

/// What is known about a call so far; the outer handler uses it to sign, label and log the answer.
struct CallContext {
    key: KeyIndex,
    generation: Generation,
    activity: Option<Activity>,
    test_flag: bool,
}

impl Gateway {
    pub fn new(
        config: Arc<Config>,
        metrics: Metrics,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, crate::proxy::upstream::BuildError> {
        let replay = NonceCache::new(
            config.verify.replay_cache_max_entries,
            metrics.replay_cache_entries.clone(),
        );
        let upstreams = Upstreams::new(&config.upstream, metrics.clone())?;
        Ok(Self {
            config,
            replay,
            upstreams,
            metrics,
            clock,
        })
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Answers one HTTP request. Always HTTP 200 with a signed KooGallery body.
    pub async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let started = Instant::now();
        let request_id = new_request_id();
        self.metrics.in_flight.inc();
        let _in_flight = scopeguard(&self.metrics.in_flight);
        let mut ctx = CallContext {
            key: self.config.keys.primary(),
            generation: Generation::V2,
            activity: None,
            test_flag: false,
        };

        let outcome = self.process(request, &request_id, started, &mut ctx).await;
        let (response, error) = match outcome {
            Ok(response) => (response, None),
            Err(e) => (
                KooResponse {
                    result_msg: e.result_msg(),
                    ..KooResponse::error(e.result_code())
                },
                Some(e),
            ),
        };
        let body = response.to_bytes();
        let signature = body_sign::header_value(self.config.keys.get(ctx.key).expose(), &body);

        let activity = ctx.activity.map_or("unknown", Activity::name);
        let code = response.result_code.as_str();
        let elapsed = started.elapsed();
        self.metrics
            .record_call(ctx.activity, response.result_code, elapsed);
        let latency_us = elapsed.as_micros() as u64;
        match &error {
            None => tracing::info!(
                request_id,
                activity,
                generation = ctx.generation.name(),
                result_code = code,
                test_flag = ctx.test_flag,
                latency_us,
                "answered"
            ),
            Some(e) => {
                self.metrics
                    .rejections
                    .with_label_values(&[e.reason()])
                    .inc();
                tracing::warn!(request_id, activity, generation = ctx.generation.name(), result_code = code,
                    test_flag = ctx.test_flag, reason = e.reason(), error = %e, latency_us, "refused");
            }
        }
        signed_response(body, signature, &request_id)
    }

    /// read bounded body → verify → replay check → normalise → forward (deadline) → build answer.
    async fn process(
        &self,
        request: Request<Incoming>,
        request_id: &str,
        started: Instant,
        ctx: &mut CallContext,
    ) -> Result<KooResponse, GatewayError> {
        let generation = self
            .generation_of(&request)
            .ok_or(GatewayError::MethodNotAllowed)?;
        ctx.generation = generation;
        let verified = self.authenticate(request, generation).await?;
        ctx.key = verified.key();
        self.replay
            .check_and_remember(&verified, self.clock.now_ms())?;
        let call = request::parse(&verified)?;
        ctx.activity = Some(call.activity);
        let key = self.config.keys.get(verified.key());
        let normalised = call.normalise(request_id.to_owned(), key.field_key())?;
        ctx.test_flag = normalised.test_flag;
        let answer = self
            .upstreams
            .forward(&normalised, started + self.config.upstream.deadline)
            .await?;
        let encrypt =
            (generation == Generation::V1 || key.encrypt_app_info()).then(|| key.field_key());
        Ok(build_response(
            normalised.activity,
            generation,
            parse_answer(&answer)?,
            encrypt,
        )?)
    }
}

fn signed_response(body: Vec<u8>, signature: String, request_id: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    if let Ok(value) = HeaderValue::from_str(&signature) {
        headers.insert(body_sign::HEADER, value);
    }
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert(REQUEST_ID_HEADER, value);
    }
    response
}

/// A random 128-bit request id, hex encoded (CSPRNG, so ids are not guessable).
fn new_request_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// Decrements the in-flight gauge when the call ends, even if the client went away and the future was dropped.
fn scopeguard(gauge: &prometheus::IntGauge) -> impl Drop + '_ {
    struct Guard<'a>(&'a prometheus::IntGauge);
    impl Drop for Guard<'_> {
        fn drop(&mut self) {
            self.0.dec();
        }
    }
    Guard(gauge)
}
