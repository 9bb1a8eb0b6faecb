//! The closed set of ways a call can fail, each mapped to a KooGallery result code and a metric reason.

use crate::protocol::request::ParamError;
use crate::protocol::response::{AnswerError, KooResponse};
use crate::protocol::v2::AuthError;
use crate::protocol::ResultCode;
use crate::proxy::body::BodyError;
use crate::state::replay::ReplayError;
use crate::state::StoreError;
use crate::upstream::UpstreamError;

/// Every failure on the request path. The mappings below are exhaustive matches without a catch-all arm, so a new
/// variant forces a decision about its result code and metric label.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A V1 (GET) call while `[v1] enabled` is false (the default).
    #[error("V1 call refused: V1 is off ([v1] enabled = false)")]
    V1Disabled,
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Body(#[from] BodyError),
    #[error(transparent)]
    Replay(#[from] ReplayError),
    #[error(transparent)]
    Params(#[from] ParamError),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error(transparent)]
    Answer(#[from] AnswerError),
    #[error("another call with the same idempotency key did not finish before the deadline")]
    DuplicateInFlight,
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `on_failure = "retry"`: KooGallery gets `000005` and retries later.
    #[error(transparent)]
    OrderLookup(#[from] crate::openapi::lookup::LookupFailure),
}

impl GatewayError {
    /// Every label [`GatewayError::reason`] returns apart from the upstream's ([`UpstreamError::REASONS`]), so
    /// `koogate_rejections_total` can start every series at 0 (an `increase()` alert then fires on the first
    /// failure after a restart).
    pub const OWN_REASONS: &'static [&'static str] = &[
        "method_not_allowed",
        "v1_disabled",
        "missing_auth_parameter",
        "malformed_auth_parameter",
        "query_too_large",
        "repeated_parameter",
        "stale_timestamp",
        "future_timestamp",
        "bad_signature",
        "duplicate_json_key",
        "body_too_large",
        "body_timeout",
        "body_read_error",
        "replayed_nonce",
        "replay_cache_full",
        "invalid_json",
        "not_json_object",
        "unknown_activity",
        "missing_field",
        "invalid_field",
        "field_decrypt_failed",
        "encrypted_field_too_long",
        "upstream_invalid_answer",
        "duplicate_in_flight",
        "store_failed",
        "store_full",
        "order_lookup_failed",
    ];

    /// Every label of `koogate_rejections_total{reason}`.
    pub fn all_reasons() -> impl Iterator<Item = &'static str> {
        Self::OWN_REASONS
            .iter()
            .chain(UpstreamError::REASONS)
            .copied()
    }

    /// The result code KooGallery receives.
    pub fn result_code(&self) -> ResultCode {
        match self {
            GatewayError::MethodNotAllowed | GatewayError::V1Disabled => {
                ResultCode::InvalidParameters
            }
            GatewayError::Auth(AuthError::DuplicateJsonKey(_)) => ResultCode::InvalidParameters,
            GatewayError::Auth(
                AuthError::QueryTooLong
                | AuthError::TooManyParameters
                | AuthError::RepeatedParameter,
            ) => ResultCode::InvalidParameters,
            GatewayError::Auth(
                AuthError::MissingParameter(_)
                | AuthError::MalformedParameter(_)
                | AuthError::Query(_)
                | AuthError::StaleTimestamp
                | AuthError::FutureTimestamp
                | AuthError::SignatureMismatch,
            ) => ResultCode::AuthenticationFailed,
            GatewayError::Body(BodyError::TooLarge | BodyError::Timeout | BodyError::Read) => {
                ResultCode::InvalidParameters
            }
            GatewayError::Replay(ReplayError::Replayed) => ResultCode::AuthenticationFailed,
            GatewayError::Replay(ReplayError::Full) => ResultCode::InternalError,
            GatewayError::Params(_) => ResultCode::InvalidParameters,
            GatewayError::Upstream(_)
            | GatewayError::Answer(_)
            | GatewayError::DuplicateInFlight
            | GatewayError::Store(_)
            | GatewayError::OrderLookup(_) => ResultCode::InternalError,
        }
    }

    /// A bounded label for `koogate_rejections_total{reason}` and the log line.
    pub fn reason(&self) -> &'static str {
        match self {
            GatewayError::MethodNotAllowed => "method_not_allowed",
            GatewayError::V1Disabled => "v1_disabled",
            GatewayError::Auth(e) => match e {
                AuthError::MissingParameter(_) => "missing_auth_parameter",
                AuthError::MalformedParameter(_) | AuthError::Query(_) => {
                    "malformed_auth_parameter"
                }
                AuthError::StaleTimestamp => "stale_timestamp",
                AuthError::FutureTimestamp => "future_timestamp",
                AuthError::SignatureMismatch => "bad_signature",
                AuthError::QueryTooLong | AuthError::TooManyParameters => "query_too_large",
                AuthError::RepeatedParameter => "repeated_parameter",
                AuthError::DuplicateJsonKey(_) => "duplicate_json_key",
            },
            GatewayError::Body(e) => match e {
                BodyError::TooLarge => "body_too_large",
                BodyError::Timeout => "body_timeout",
                BodyError::Read => "body_read_error",
            },
            GatewayError::Replay(ReplayError::Replayed) => "replayed_nonce",
            GatewayError::Replay(ReplayError::Full) => "replay_cache_full",
            GatewayError::Params(e) => match e {
                ParamError::NotUtf8 | ParamError::NotJson => "invalid_json",
                ParamError::NotObject => "not_json_object",
                ParamError::MissingActivity | ParamError::UnknownActivity => "unknown_activity",
                ParamError::MissingField(_) => "missing_field",
                ParamError::InvalidField(_) => "invalid_field",
                ParamError::Undecryptable { .. } => "field_decrypt_failed",
            },
            GatewayError::Upstream(e) => e.reason(),
            GatewayError::Answer(AnswerError::EncryptedTooLong(_)) => "encrypted_field_too_long",
            GatewayError::Answer(_) => "upstream_invalid_answer",
            GatewayError::DuplicateInFlight => "duplicate_in_flight",
            GatewayError::Store(e) => match e {
                StoreError::Full => "store_full",
                StoreError::Timeout
                | StoreError::Claimed
                | StoreError::Corrupt
                | StoreError::Failed(_)
                | StoreError::Stopped => "store_failed",
            },
            GatewayError::OrderLookup(_) => "order_lookup_failed",
        }
    }

    /// The signed answer KooGallery gets for this failure.
    pub fn to_response(&self) -> KooResponse {
        KooResponse {
            result_msg: self.result_msg(),
            ..KooResponse::error(self.result_code())
        }
    }

    /// The `resultMsg` sent back: the generic message for the code, plus the name of the offending field for
    /// parameter errors (a constant from koogate, never request content) to help sellers in the debugging console.
    pub fn result_msg(&self) -> String {
        let code = self.result_code();
        match self {
            GatewayError::Params(ParamError::MissingField(f)) => {
                format!("{}: missing {f}", code.default_message())
            }
            GatewayError::Params(ParamError::InvalidField(f)) => {
                format!("{}: invalid {f}", code.default_message())
            }
            GatewayError::Params(ParamError::Undecryptable { field, .. }) => {
                format!("{}: cannot decrypt {field}", code.default_message())
            }
            GatewayError::Params(ParamError::UnknownActivity | ParamError::MissingActivity) => {
                format!("{}: unsupported activity", code.default_message())
            }
            _ => code.default_message().to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::fields::FieldError;
    use std::collections::BTreeSet;

    /// One value of every variant that can be built without a network (all but `Upstream(Unreachable)`).
    fn samples() -> Vec<GatewayError> {
        vec![
            GatewayError::MethodNotAllowed,
            GatewayError::V1Disabled,
            AuthError::MissingParameter("nonce").into(),
            AuthError::MalformedParameter("nonce").into(),
            AuthError::QueryTooLong.into(),
            AuthError::RepeatedParameter.into(),
            AuthError::StaleTimestamp.into(),
            AuthError::FutureTimestamp.into(),
            AuthError::SignatureMismatch.into(),
            AuthError::DuplicateJsonKey(crate::protocol::canonical_json::DuplicateKey).into(),
            BodyError::TooLarge.into(),
            BodyError::Timeout.into(),
            BodyError::Read.into(),
            ReplayError::Replayed.into(),
            ReplayError::Full.into(),
            ParamError::NotUtf8.into(),
            ParamError::NotObject.into(),
            ParamError::UnknownActivity.into(),
            ParamError::MissingField("orderId").into(),
            ParamError::InvalidField("orderId").into(),
            ParamError::Undecryptable {
                field: "mobilePhone",
                source: FieldError::BadPadding,
            }
            .into(),
            UpstreamError::Timeout.into(),
            UpstreamError::Status(500).into(),
            UpstreamError::Body.into(),
            UpstreamError::TooLarge.into(),
            AnswerError::EncryptedTooLong("userName").into(),
            AnswerError::NotContractJson.into(),
            GatewayError::DuplicateInFlight,
            StoreError::Stopped.into(),
            StoreError::Full.into(),
            crate::openapi::lookup::LookupFailure::Timeout.into(),
        ]
    }

    #[test]
    fn every_reason_is_in_the_precreated_list() {
        let listed: BTreeSet<&str> = GatewayError::all_reasons().collect();
        let mut produced: BTreeSet<&str> = samples().iter().map(GatewayError::reason).collect();
        produced.insert("upstream_unreachable");
        assert_eq!(listed, produced);
        assert_eq!(
            listed.len(),
            GatewayError::all_reasons().count(),
            "no duplicates"
        );
    }
}
