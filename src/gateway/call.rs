//! The values the inner step ([`Gateway::process`](super::Gateway)) hands the outer one: what is known about a
//! call, the guards it holds until its answer is durable, and its answer or its error.

use super::error::GatewayError;
use super::single_flight::KeyGuard;
use crate::protocol::keys::KeyIndex;
use crate::protocol::request::{CallIds, UpstreamRequest};
use crate::protocol::response::KooResponse;
use crate::protocol::{Activity, Generation};
use crate::state::replay::ReplayKey;
use crate::state::{Claim, Record};
use tokio::time::Instant;

/// What the outer handler knows before the call is read: when it started, its id and where it came from.
pub(super) struct CallMeta {
    pub started: Instant,
    pub request_id: String,
    pub path: String,
    pub client_ip: ClientIp,
    /// The caller's valid W3C `traceparent`: logged, journalled and passed to the upstream.
    pub traceparent: Option<String>,
}

/// The peer's address as logged (`unknown` when the listener did not say), formatted only when a line is written.
pub(super) struct ClientIp(pub Option<std::net::IpAddr>);

impl std::fmt::Display for ClientIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(ip) => ip.fmt(f),
            None => f.write_str("unknown"),
        }
    }
}

/// What is known about a call, on success and on failure: it picks the signing key and labels, logs and journals
/// the answer.
#[derive(Debug, Default, Clone)]
pub(super) struct Known {
    pub generation: Option<Generation>,
    /// The access key that verified the call (it signs the answer).
    pub key: Option<KeyIndex>,
    pub activity: Option<Activity>,
    pub test_flag: bool,
    /// The ids as sent, known once the call parses (the journal's, when the call fails later).
    pub ids: Option<CallIds>,
    /// The order lookup's outcome (`api`, `cache` or the failure reason), for the log line.
    pub order_lookup: Option<&'static str>,
    pub upstream_us: Option<u64>,
}

impl Known {
    /// The failure of a call with what is known so far.
    pub fn fail(&self, held: Option<Held>, error: impl Into<GatewayError>) -> Failed {
        Failed {
            known: self.clone(),
            held,
            error: error.into(),
        }
    }
}

/// What a verified, fresh call holds until its answer is durable.
pub(super) struct Held {
    /// The replay key and when it may be forgotten: committed with the answer, whatever the answer.
    pub nonce: (ReplayKey, u64),
    /// The idempotency key in this process, so a concurrent duplicate finds the record.
    pub flight: Option<KeyGuard>,
    /// The idempotency key across replicas (Redis): released after the commit.
    pub claim: Option<Claim>,
}

impl Held {
    /// A verified call that holds no idempotency key (yet).
    pub fn nonce(nonce: (ReplayKey, u64)) -> Self {
        Self {
            nonce,
            flight: None,
            claim: None,
        }
    }
}

/// The answer of a call that got one, from the upstream or from its idempotency record.
pub(super) struct Reply {
    pub response: KooResponse,
    /// The normalised call (ids and decrypted buyer fields for the journal).
    pub call: UpstreamRequest,
    /// The upstream's final answer under its idempotency key, to record for retries.
    pub record: Option<(String, Record)>,
    pub from_record: bool,
}

/// A call that got an answer.
pub(super) struct Answered {
    pub known: Known,
    pub held: Held,
    pub reply: Reply,
}

/// A call that failed: the error, what was known and (once verified) what it holds.
pub(super) struct Failed {
    pub known: Known,
    pub held: Option<Held>,
    pub error: GatewayError,
}

/// A call after its commit: what the outer handler signs and logs.
pub(super) struct Finished {
    pub known: Known,
    pub response: KooResponse,
    pub error: Option<GatewayError>,
    pub from_record: bool,
}

impl Finished {
    /// Replaces the answer with the error's (a commit that failed).
    pub fn fail(&mut self, error: GatewayError) {
        self.response = error.to_response();
        self.error = Some(error);
    }
}
