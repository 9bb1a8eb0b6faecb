//! The outer step of the request path: runs the inner one, then finishes the call in named steps — commit →
//! release → sign → log — and turns it into the signed HTTP answer KooGallery gets.

use super::call::{Answered, CallMeta, ClientIp, Failed, Finished, Held};
use super::error::GatewayError;
use super::Gateway;
use crate::protocol::body_sign;
use crate::protocol::request::UpstreamRequest;
use crate::protocol::{Activity, Generation};
use crate::state::{Commit, Record};
use crate::upstream::REQUEST_ID_HEADER;
use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use tokio::time::Instant;

/// A signed answer body and the name of the key that signed it.
struct Signed<'a> {
    body: Vec<u8>,
    signature: String,
    /// The configured name of the key that verified the call (never the key), `none` when none did.
    access_key: &'a str,
}

impl Gateway {
    /// Answers one call: process → commit → release → sign → log.
    pub(super) async fn answer(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let _in_flight = InFlight::start(&self.metrics.in_flight);
        let meta = CallMeta::of(&request);
        let processed = self.process(request, &meta).await;
        let (finished, held) = self.commit(processed, &meta).await;
        self.release(held).await;
        let signed = self.sign(&finished, &meta);
        self.log(&finished, &signed, &meta);
        signed_response(
            signed.body,
            signed.signature,
            &meta.request_id,
            finished.from_record,
        )
    }

    /// A verified call's nonce, record and journal entry reach the store before its answer leaves; a failed
    /// commit replaces the answer with `store_failed`'s.
    async fn commit(
        &self,
        processed: Result<Answered, Failed>,
        meta: &CallMeta,
    ) -> (Finished, Option<Held>) {
        let (mut finished, to_commit) = split(processed);
        let Some(ToCommit { held, call, record }) = to_commit else {
            return (finished, None);
        };
        let entry = self.journal_entry(&finished, call.as_ref(), meta);
        let commit = Commit {
            nonce: Some(held.nonce),
            record,
            entry,
        };
        let committed = self.store.commit(commit, self.clock.now_ms()).await;
        self.metrics.count_journal_write(committed.is_ok());
        if let Err(e) = committed {
            finished.fail(GatewayError::Store(e));
        }
        (finished, Some(held))
    }

    /// Lets a concurrent duplicate go ahead (it now finds the record): the claim across replicas, then the
    /// in-process key.
    async fn release(&self, held: Option<Held>) {
        let Some(held) = held else {
            return;
        };
        if let Some(claim) = &held.claim {
            self.store.release(claim).await;
        }
        drop(held.flight);
    }

    /// Signs the answer with the key that verified the call, or with the key for unauthenticated answers to the
    /// path; notes when each key last verified a call (shows when a rotation is done).
    fn sign<'a>(&'a self, finished: &Finished, meta: &CallMeta) -> Signed<'a> {
        let body = finished.response.to_bytes();
        let keys = &self.config.keys;
        let verified_by = finished.known.key;
        let key = keys.get(verified_by.unwrap_or_else(|| keys.for_unauthenticated(&meta.path)));
        let access_key = match verified_by {
            Some(index) => {
                if let Some(gauge) = self.key_last_use.get(index.position()) {
                    gauge.set((self.clock.now_ms() / 1000) as i64);
                }
                key.name()
            }
            None => "none",
        };
        let signature = body_sign::header_value_prepared(key.hmac(), &body);
        Signed {
            body,
            signature,
            access_key,
        }
    }

    /// The call's metrics and its one log line (refusals rate-limited per reason; the metrics stay exact).
    fn log(&self, finished: &Finished, signed: &Signed<'_>, meta: &CallMeta) {
        let known = &finished.known;
        let elapsed = meta.started.elapsed();
        let code = finished.response.result_code;
        self.metrics.record_call(known.activity, code, elapsed);
        let (request_id, client_ip) = (meta.request_id.as_str(), &meta.client_ip);
        let traceparent = meta.traceparent.as_deref();
        let activity = known.activity.map_or("unknown", Activity::name);
        let generation = known.generation.map_or("unknown", Generation::name);
        let (result_code, test_flag, access_key) =
            (code.as_str(), known.test_flag, signed.access_key);
        let order_lookup = known.order_lookup.unwrap_or("none");
        let latency_us = elapsed.as_micros() as u64;
        let Some(e) = &finished.error else {
            let from_record = finished.from_record;
            tracing::info!(
                request_id,
                client_ip = %client_ip,
                traceparent,
                activity,
                generation,
                result_code,
                test_flag,
                from_record,
                access_key,
                order_lookup,
                latency_us,
                "answered"
            );
            return;
        };
        let reason = e.reason();
        self.metrics.count_rejection(reason);
        match self.refusals.admit(reason, Instant::now()) {
            Some(suppressed) => {
                tracing::warn!(request_id, client_ip = %client_ip, traceparent, activity, generation,
                result_code, test_flag, access_key, order_lookup, reason, error = %e, latency_us, suppressed,
                "refused")
            }
            None => self.metrics.refusal_lines_suppressed.inc(),
        }
    }
}

/// What a verified call commits (its nonce, its record, what its journal entry needs) and then releases.
struct ToCommit {
    held: Held,
    call: Option<UpstreamRequest>,
    record: Option<(String, Record)>,
}

/// The inner step's value taken apart: what is signed and logged, and (once verified) what is committed.
fn split(processed: Result<Answered, Failed>) -> (Finished, Option<ToCommit>) {
    match processed {
        Ok(Answered { known, held, reply }) => {
            let finished = Finished {
                known,
                response: reply.response,
                error: None,
                from_record: reply.from_record,
            };
            let commit = ToCommit {
                held,
                call: Some(reply.call),
                record: reply.record,
            };
            (finished, Some(commit))
        }
        Err(Failed { known, held, error }) => {
            let finished = Finished {
                known,
                response: error.to_response(),
                error: Some(error),
                from_record: false,
            };
            let commit = held.map(|held| ToCommit {
                held,
                call: None,
                record: None,
            });
            (finished, commit)
        }
    }
}

impl CallMeta {
    /// Starts a call: its clock, a new request id, and what the request says about where it came from.
    fn of(request: &Request<Incoming>) -> Self {
        let client_ip = request
            .extensions()
            .get::<crate::proxy::server::ClientAddr>()
            .map(|peer| peer.0.ip());
        Self {
            started: Instant::now(),
            request_id: new_request_id(),
            path: request.uri().path().to_owned(),
            client_ip: ClientIp(client_ip),
            traceparent: crate::proxy::traceparent::from_headers(request.headers()),
        }
    }
}

/// The answer KooGallery gets. `from_record` adds `X-Koogate-From-Record: true` (an answer replayed from the
/// idempotency record, the app not asked), which `koogate simulate` shows.
pub(super) fn signed_response(
    body: Vec<u8>,
    signature: String,
    request_id: &str,
    from_record: bool,
) -> Response<Full<Bytes>> {
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
    if from_record {
        headers.insert(
            crate::simulate::client::FROM_RECORD_HEADER,
            HeaderValue::from_static("true"),
        );
    }
    response
}

/// A random 128-bit request id, hex encoded (CSPRNG, so ids are not guessable).
fn new_request_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// Counts the call in `koogate_requests_in_flight` until it ends, even if the client went away and the future was
/// dropped.
struct InFlight<'a>(&'a prometheus::IntGauge);

impl<'a> InFlight<'a> {
    fn start(gauge: &'a prometheus::IntGauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}
