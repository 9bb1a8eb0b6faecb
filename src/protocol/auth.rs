//! What both generations' authentication shares: the error, the timestamp window and the constant-time search for
//! the key that signed a call.

use super::canonical_json::DuplicateKey;
use super::keys::{AccessKey, AccessKeys, KeyIndex};
use super::query::QueryError;
use std::time::Duration;
use subtle::ConstantTimeEq;

/// Why a call failed authentication: result code `000001`, except the query-shape variants (`QueryTooLong`,
/// `TooManyParameters`, `RepeatedParameter`: a V1 query that cannot be read as one unambiguous signed message) and a
/// repeated JSON key, which are parameter errors (`000002`, as the upstream contract says), found before any MAC.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("query parameter `{0}` is missing")]
    MissingParameter(&'static str),
    #[error("query parameter `{0}` is malformed")]
    MalformedParameter(&'static str),
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error("timestamp is older than the accepted window")]
    StaleTimestamp,
    #[error("timestamp is further in the future than the accepted window")]
    FutureTimestamp,
    #[error("signature does not match any configured access key")]
    SignatureMismatch,
    #[error("query is longer than accepted")]
    QueryTooLong,
    #[error("query has more parameters than accepted")]
    TooManyParameters,
    #[error("a query parameter is repeated")]
    RepeatedParameter,
    /// Refused before the signature is checked; answered `000002` (a body problem, not a key problem).
    #[error(transparent)]
    DuplicateJsonKey(#[from] DuplicateKey),
}

/// Refuses a timestamp outside `now ± window` (cheap, so it runs before any MAC); returns when the call's
/// replay key may be forgotten (`timestamp + window`). Shared by both generations.
pub fn check_freshness(timestamp_ms: u64, now_ms: u64, window: Duration) -> Result<u64, AuthError> {
    let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
    if timestamp_ms.saturating_add(window_ms) < now_ms {
        return Err(AuthError::StaleTimestamp);
    }
    if timestamp_ms > now_ms.saturating_add(window_ms) {
        return Err(AuthError::FutureTimestamp);
    }
    Ok(timestamp_ms.saturating_add(window_ms))
}

/// The key whose `expected` MAC equals `presented`. Every key is tried, without stopping early and with a
/// constant-time comparison, so timing reveals neither the MAC nor which key matched.
pub fn matching_key(
    keys: &AccessKeys,
    presented: &[u8; 32],
    expected: impl Fn(&AccessKey) -> [u8; 32],
) -> Result<KeyIndex, AuthError> {
    let mut matched = None;
    for (index, key) in keys.iter() {
        if bool::from(expected(key).ct_eq(presented)) && matched.is_none() {
            matched = Some(index);
        }
    }
    matched.ok_or(AuthError::SignatureMismatch)
}
