//! The inner step of the request path: the protocol pipeline, one step per line, returning the answer and what it
//! holds (or the error and what was known) for the outer handler to commit, release, sign and log.

use super::call::{Answered, CallMeta, Failed, Held, Known, Reply};
use super::error::GatewayError;
use super::test_responder;
use super::Gateway;
use crate::config::TestCalls;
use crate::protocol::fields::FieldKey;
use crate::protocol::idempotency;
use crate::protocol::request::{self, UpstreamRequest};
use crate::protocol::response::{build_response, parse_answer};
use crate::protocol::verified::Verified;
use crate::protocol::Generation;
use crate::state::replay::ReplayKey;
use crate::state::Record;
use crate::upstream::Outbound;
use bytes::Bytes;
use http::Request;
use hyper::body::Incoming;
use tokio::time::Instant;

/// The idempotency key of a call and the fingerprint that tells a retry from a new operation.
type IdempotencyKey = (String, String);

/// What the reply step learnt on the way, known whether or not it got an answer.
#[derive(Default)]
struct Trace {
    order_lookup: Option<&'static str>,
    upstream_us: Option<u64>,
}

impl Gateway {
    /// admit (verify → replay check) → parse → normalise (decrypting) → hold the idempotency key → recorded
    /// answer, or order lookup → forward (deadline) → build the answer.
    pub(super) async fn process(
        &self,
        request: Request<Incoming>,
        meta: &CallMeta,
    ) -> Result<Answered, Failed> {
        let (known, verified) = self.admit(request).await?;
        let now_ms = verified.checked_at_ms();
        let nonce = (ReplayKey::of(&verified), verified.replay_expires_ms());
        let call =
            request::parse(&verified).map_err(|e| known.fail(Some(Held::nonce(nonce)), e))?;
        let known = Known {
            activity: Some(call.activity),
            ids: Some(call.ids()),
            ..known
        };
        let key = self.config.keys.get(verified.key());
        let call = call.normalise(meta.request_id.clone(), key.field_key());
        let mut call = call.map_err(|e| known.fail(Some(Held::nonce(nonce)), e))?;
        call.traceparent = meta.traceparent.clone();
        let known = Known {
            test_flag: call.test_flag,
            ..known
        };
        let generation = call.generation;
        let encrypt =
            (generation == Generation::V1 || key.encrypt_app_info()).then(|| key.field_key());
        let deadline = meta.started + self.config.upstream.deadline;
        let idempotency = idempotency::key(&call);
        let held = self.hold(nonce, idempotency.as_ref(), deadline).await;
        let held = held.map_err(|(held, e)| known.fail(Some(held), e))?;
        let (trace, reply) = self
            .reply(call, idempotency, encrypt, deadline, now_ms)
            .await;
        let known = Known {
            order_lookup: trace.order_lookup,
            upstream_us: trace.upstream_us,
            ..known
        };
        match reply {
            Ok(reply) => Ok(Answered { known, held, reply }),
            Err(error) => Err(Failed {
                known,
                held: Some(held),
                error,
            }),
        }
    }

    /// The generation, the signature and the nonce: a verified, fresh call (or the refusal, with what was known).
    async fn admit(&self, request: Request<Incoming>) -> Result<(Known, Verified), Failed> {
        let generation = self.generation_of(&request).map_err(|e| {
            let generation = matches!(e, GatewayError::V1Disabled).then_some(Generation::V1);
            Known {
                generation,
                ..Known::default()
            }
            .fail(None, e)
        })?;
        let known = Known {
            generation: Some(generation),
            ..Known::default()
        };
        let verified =
            (self.authenticate(request, generation).await).map_err(|e| known.fail(None, e))?;
        let known = Known {
            key: Some(verified.key()),
            ..known
        };
        self.count_signature_form(generation, &verified);
        let fresh = self
            .store
            .check_replay(&verified, verified.checked_at_ms())
            .await;
        fresh
            .map_err(|e| known.fail(None, e))?
            .map_err(|e| known.fail(None, e))?;
        Ok((known, verified))
    }

    fn count_signature_form(&self, generation: Generation, verified: &Verified) {
        if generation == Generation::V2 {
            self.metrics.count_signature_form(verified.signed_form());
        }
    }

    /// Holds the call's idempotency key in this process, then across replicas; an error (with what is held so
    /// far) when a duplicate holds it past the deadline or the store cannot say.
    async fn hold(
        &self,
        nonce: (ReplayKey, u64),
        idempotency: Option<&IdempotencyKey>,
        deadline: Instant,
    ) -> Result<Held, (Held, GatewayError)> {
        let mut held = Held::nonce(nonce);
        let Some((id, _)) = idempotency else {
            return Ok(held);
        };
        match tokio::time::timeout_at(deadline, self.locks.lock(id)).await {
            Ok(flight) => held.flight = Some(flight),
            Err(_) => return Err((held, GatewayError::DuplicateInFlight)),
        }
        match self.store.claim(id, deadline).await {
            Ok(claim) => held.claim = claim,
            Err(e) => return Err((held, e.into())),
        }
        Ok(held)
    }

    /// The recorded answer of a retry, or the upstream's (after the order lookup) built into KooGallery's answer.
    async fn reply(
        &self,
        call: UpstreamRequest,
        idempotency: Option<IdempotencyKey>,
        encrypt: Option<&FieldKey>,
        deadline: Instant,
        now_ms: u64,
    ) -> (Trace, Result<Reply, GatewayError>) {
        let mut trace = Trace::default();
        let result = async {
            if let Some(reply) = self
                .recorded(&call, idempotency.as_ref(), encrypt, now_ms)
                .await?
            {
                return Ok(reply.with_call(call));
            }
            let (order_lookup, call) = self.enrich(call, deadline).await;
            trace.order_lookup = order_lookup;
            let call = call?;
            let upstream_started = Instant::now();
            let answer = self.ask_upstream(&call, deadline).await?;
            trace.upstream_us = Some(upstream_started.elapsed().as_micros() as u64);
            let response = build_response(
                call.activity,
                call.generation,
                parse_answer(&answer)?,
                encrypt,
            )?;
            // Only a final answer is recorded: `000004` (still provisioning) must let the next retry reach the app.
            let record = idempotency
                .filter(|_| response.result_code.is_final_success())
                .map(|(id, fingerprint)| {
                    let record = Record {
                        activity: call.activity.name().to_owned(),
                        fingerprint,
                        answer: answer.to_vec(),
                        at_ms: now_ms,
                    };
                    (id, record)
                });
            Ok(Reply {
                response,
                call,
                record,
                from_record: false,
            })
        }
        .await;
        (trace, result)
    }

    /// The answer recorded for this operation (a retry), if any.
    async fn recorded(
        &self,
        call: &UpstreamRequest,
        idempotency: Option<&IdempotencyKey>,
        encrypt: Option<&FieldKey>,
        now_ms: u64,
    ) -> Result<Option<RecordedReply>, GatewayError> {
        let Some((id, fingerprint)) = idempotency else {
            return Ok(None);
        };
        let Some(record) = self
            .store
            .lookup(id, now_ms)
            .await?
            .filter(|r| r.fingerprint == *fingerprint)
        else {
            return Ok(None);
        };
        self.metrics.idempotency_hits.inc();
        let answer = parse_answer(&record.answer)?;
        let response = build_response(call.activity, call.generation, answer, encrypt)?;
        Ok(Some(RecordedReply(response)))
    }

    /// The built-in test responder's answer to a test call (`[test_calls] mode = "builtin"`), else the upstream's.
    async fn ask_upstream(
        &self,
        call: &UpstreamRequest,
        deadline: Instant,
    ) -> Result<Bytes, GatewayError> {
        if let TestCalls::Builtin { front_end_url } = &self.config.upstream.test_calls {
            if call.test_flag {
                return Ok(test_responder::answer(call, front_end_url).into());
            }
        }
        let now_ms = self.clock.now_ms();
        let route = self
            .config
            .upstream
            .call_route(call.activity, call.test_flag);
        // Serialising the derived contract struct cannot fail.
        let body = serde_json::to_vec(call).unwrap_or_default();
        let outbound = Outbound {
            body: Bytes::from(body),
            request_id: &call.request_id,
            activity: call.activity,
            test_flag: call.test_flag,
            traceparent: call.traceparent.as_deref(),
        };
        Ok(self
            .upstreams
            .forward(route, outbound, deadline, now_ms)
            .await?)
    }
}

/// An answer replayed from an idempotency record (the app not asked).
struct RecordedReply(crate::protocol::response::KooResponse);

impl RecordedReply {
    fn with_call(self, call: UpstreamRequest) -> Reply {
        Reply {
            response: self.0,
            call,
            record: None,
            from_record: true,
        }
    }
}
