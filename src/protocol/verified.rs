//! A call whose signature and freshness were checked. Only the verifiers (`v1::verify`, `v2::verify`) make one,
//! so code that takes `&Verified` (replay check, decryption, normalisation) cannot run on unauthenticated input.

use super::activity::Generation;
use super::keys::KeyIndex;
use bytes::Bytes;
use sha2::Digest;
use std::time::Duration;

/// How long a replay key outlives its call's window. A call's freshness is judged at one clock reading and its
/// replay check runs a little later (a Redis round trip, other calls purging in between); replicas' clocks differ by
/// a little too. Keeping the key this much longer means a replay that passed freshness at the window's edge still
/// finds it.
pub const REPLAY_MARGIN: Duration = Duration::from_secs(5);

/// What was signed, as received.
#[derive(Debug, Clone)]
pub enum Payload {
    /// V2: the raw JSON body bytes.
    V2(Bytes),
    /// V1: the decoded query parameters (without `authToken`), sorted by name.
    V1(Vec<(String, String)>),
}

/// Which bytes a V2 signature matched: the body as received, or its canonical form (see
/// [`super::canonical_json`]). V1 calls are always `Raw`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignedForm {
    Raw,
    Canonical,
}

impl SignedForm {
    /// Position in `[Raw, Canonical]` (the metric series of each form are resolved once, in that order).
    pub const fn index(self) -> usize {
        match self {
            SignedForm::Raw => 0,
            SignedForm::Canonical => 1,
        }
    }

    /// The `form` label of `koogate_v2_signature_forms_total`.
    pub const fn name(self) -> &'static str {
        match self {
            SignedForm::Raw => "raw",
            SignedForm::Canonical => "canonical",
        }
    }
}

#[derive(Debug)]
pub struct Verified {
    key: KeyIndex,
    /// What must not be accepted twice: SHA-256 of the V2 nonce or V1 authToken (with the generation, the key).
    replay_digest: [u8; 32],
    /// Until this instant the replay key is kept: the end of the window plus [`REPLAY_MARGIN`].
    replay_expires_ms: u64,
    /// The one clock reading of this call: freshness was judged at it, and the replay check uses it too.
    checked_at_ms: u64,
    payload: Payload,
    signed_form: SignedForm,
}

impl Verified {
    /// `window_end_ms`: after it the freshness check alone refuses a replay. `checked_at_ms`: when it was judged.
    pub(super) fn new(
        key: KeyIndex,
        token: String,
        (window_end_ms, checked_at_ms): (u64, u64),
        payload: Payload,
    ) -> Self {
        // Stored on disk and in Redis: a digest, so neither nonces nor V1 tokens (signatures) are kept in clear.
        Self {
            key,
            replay_digest: sha2::Sha256::digest(token.as_bytes()).into(),
            replay_expires_ms: window_end_ms.saturating_add(REPLAY_MARGIN.as_millis() as u64),
            checked_at_ms,
            payload,
            signed_form: SignedForm::Raw,
        }
    }

    pub(super) fn with_signed_form(mut self, form: SignedForm) -> Self {
        self.signed_form = form;
        self
    }

    /// Which bytes the signature matched.
    pub fn signed_form(&self) -> SignedForm {
        self.signed_form
    }

    /// The access key that matched; it also signs the answer (and derives field keys).
    pub fn key(&self) -> KeyIndex {
        self.key
    }

    pub fn generation(&self) -> Generation {
        match self.payload {
            Payload::V2(_) => Generation::V2,
            Payload::V1(_) => Generation::V1,
        }
    }

    /// The replay key in text form, `v1:`/`v2:` and 64 lowercase hex digits, as Redis keeps it.
    pub fn replay_key(&self) -> String {
        format!(
            "{}:{}",
            self.generation().name(),
            hex::encode(self.replay_digest)
        )
    }

    /// The SHA-256 digest behind [`Verified::replay_key`], as the durable and memory stores keep it (binary).
    pub fn replay_digest(&self) -> [u8; 32] {
        self.replay_digest
    }

    pub fn replay_expires_ms(&self) -> u64 {
        self.replay_expires_ms
    }

    /// The clock reading freshness was judged at; the rest of the call (replay, records) uses the same instant.
    pub fn checked_at_ms(&self) -> u64 {
        self.checked_at_ms
    }

    pub fn payload(&self) -> &Payload {
        &self.payload
    }
}
