//! V1 request signatures (protocol section 3): `GET ?…&timeStamp=…&authToken=…`.
//!
//! ```text
//! message   = every query parameter except authToken, percent-decoded, sorted by name, joined name=value with &
//! authToken = base64(HMAC-SHA256(accessKey + timeStamp, message))
//! ```

use super::auth::{check_freshness, matching_key, AuthError};
use super::keys::AccessKeys;
use super::mac::hmac_sha256;
use super::query::QueryError;
use super::verified::{Payload, Verified};
use base64::{engine::general_purpose::STANDARD, Engine};
use percent_encoding::percent_decode_str;
use std::time::Duration;
use time::{macros::format_description, PrimitiveDateTime};

/// Longest raw V1 query accepted; real calls are under 2 KiB.
pub const MAX_QUERY_BYTES: usize = 16 * 1024;
/// Most parameters a V1 call may carry (query or "V1 POST" body). Real calls carry about 20; the cap bounds the
/// work done before the token is checked, whatever the query length.
pub const MAX_PARAMS: usize = 128;
/// Parameters whose raw `+` is always literal: base64 values (the token, encrypted fields, `saasExtendParams`).
pub const PLUS_LITERAL: &[&str] = &["authToken", "mobilePhone", "email", "saasExtendParams"];

/// The parameters of a V1 call, decoded but not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Query {
    /// Every parameter except `authToken`, sorted by name.
    params: Vec<(String, String)>,
    auth_token: [u8; 32],
    /// The base64 token as received, the replay-cache key.
    token_text: String,
    time_stamp: String,
    timestamp_ms: u64,
    /// The raw query when it holds a `+`: read again with `+` as a space if the literal reading does not verify.
    plus_source: Option<String>,
}

impl V1Query {
    /// Decodes a raw query string. A literal `+` stays `+` (KooGallery sends unencoded base64); a parameter given
    /// twice is refused because it makes the signed message ambiguous.
    ///
    /// Work before the token check is linear in the query: the parameter count is capped before anything is
    /// decoded, and duplicates are found by sorting, not by comparing every pair.
    pub fn parse(raw_query: &str) -> Result<Self, AuthError> {
        if raw_query.len() > MAX_QUERY_BYTES {
            return Err(AuthError::QueryTooLong);
        }
        let pairs: Vec<&str> = raw_query
            .split('&')
            .filter(|p| !p.is_empty())
            .take(MAX_PARAMS + 1)
            .collect();
        if pairs.len() > MAX_PARAMS {
            return Err(AuthError::TooManyParameters);
        }
        let mut params: Vec<(String, String)> = Vec::with_capacity(pairs.len());
        let mut token = None;
        for pair in pairs {
            let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = decode(raw_name).ok_or(AuthError::Query(QueryError::NotUtf8("name")))?;
            let value = decode(raw_value).ok_or(AuthError::Query(QueryError::NotUtf8("value")))?;
            if name == "authToken" {
                if token.replace(value).is_some() {
                    return Err(AuthError::RepeatedParameter);
                }
                continue;
            }
            params.push((name, value));
        }
        let mut query = Self::from_params(
            params,
            token.ok_or(AuthError::MissingParameter("authToken"))?,
        )?;
        query.plus_source = raw_query.contains('+').then(|| raw_query.to_owned());
        Ok(query)
    }

    fn from_params(
        mut params: Vec<(String, String)>,
        token_text: String,
    ) -> Result<Self, AuthError> {
        if params.len() > MAX_PARAMS {
            return Err(AuthError::TooManyParameters);
        }
        params.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        if params.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(AuthError::RepeatedParameter);
        }
        let mut auth_token = [0u8; 32];
        let decoded = STANDARD
            .decode(token_text.as_bytes())
            .map_err(|_| AuthError::MalformedParameter("authToken"))?;
        if decoded.len() != auth_token.len() {
            return Err(AuthError::MalformedParameter("authToken"));
        }
        auth_token.copy_from_slice(&decoded);
        let time_stamp = params
            .binary_search_by(|(n, _)| n.as_bytes().cmp(b"timeStamp"))
            .map(|at| params[at].1.clone())
            .map_err(|_| AuthError::MissingParameter("timeStamp"))?;
        let timestamp_ms =
            parse_time_stamp(&time_stamp).ok_or(AuthError::MalformedParameter("timeStamp"))?;
        Ok(Self {
            params,
            auth_token,
            token_text,
            time_stamp,
            timestamp_ms,
            plus_source: None,
        })
    }

    /// The "V1 POST" variant: the same fields as a JSON object body, `authToken` from a header; fields with blank
    /// values are left out of the signed message. Numbers and booleans are signed as their JSON text.
    pub fn from_post(body: &[u8], auth_token: &str) -> Result<Self, AuthError> {
        let fields: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(body).map_err(|_| AuthError::MalformedParameter("body"))?;
        if fields.len() > MAX_PARAMS {
            return Err(AuthError::TooManyParameters);
        }
        let mut query = Vec::with_capacity(fields.len() + 1);
        for (name, value) in &fields {
            let value = match value {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => continue,
                other @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_)) => {
                    other.to_string()
                }
                _ => return Err(AuthError::MalformedParameter("body")),
            };
            if !value.is_empty() && name != "authToken" {
                query.push((name.clone(), value));
            }
        }
        Self::from_params(query, auth_token.to_owned())
    }

    /// The signed message: `name=value` pairs joined with `&`, values raw UTF-8.
    pub fn message(&self) -> String {
        canonical_message(&self.params)
    }
}

/// The parameters (without `authToken`, sorted) with a raw `+` read as a space, as Java's `URLEncoder` and form
/// encoders mean it, except in [`PLUS_LITERAL`] parameters; `None` when that changes nothing. The query was
/// already parsed once, so its names decode and are unique.
fn plus_as_space(raw_query: &str) -> Option<Vec<(String, String)>> {
    let mut changed = false;
    let mut params = Vec::new();
    for pair in raw_query.split('&').filter(|p| !p.is_empty()) {
        let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = decode(raw_name)?;
        if name == "authToken" {
            continue;
        }
        let value = if raw_value.contains('+') && !PLUS_LITERAL.contains(&name.as_str()) {
            changed = true;
            decode(&raw_value.replace('+', " "))?
        } else {
            decode(raw_value)?
        };
        params.push((name, value));
    }
    params.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    changed.then_some(params)
}

/// `name=value` pairs (already sorted) joined with `&`.
pub fn canonical_message(sorted: &[(String, String)]) -> String {
    let mut message = String::new();
    for (i, (name, value)) in sorted.iter().enumerate() {
        if i > 0 {
            message.push('&');
        }
        message.push_str(name);
        message.push('=');
        message.push_str(value);
    }
    message
}

fn decode(raw: &str) -> Option<String> {
    percent_decode_str(raw)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

/// `yyyyMMddHHmmssSSS` (UTC) to Unix milliseconds.
pub fn parse_time_stamp(value: &str) -> Option<u64> {
    if value.len() != 17 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let format = format_description!("[year][month][day][hour][minute][second]");
    let at = PrimitiveDateTime::parse(&value[..14], &format)
        .ok()?
        .assume_utc();
    let millis: u64 = value[14..].parse().ok()?;
    u64::try_from(at.unix_timestamp())
        .ok()?
        .checked_mul(1000)?
        .checked_add(millis)
}

/// The V1 `authToken` of `message` signed at `time_stamp`.
pub fn auth_token(key: &[u8], time_stamp: &str, message: &str) -> [u8; 32] {
    let mut signing_key = key.to_vec();
    signing_key.extend_from_slice(time_stamp.as_bytes());
    let token = hmac_sha256(&signing_key, &[message.as_bytes()]);
    zeroize::Zeroize::zeroize(&mut signing_key);
    token
}

/// Checks the freshness window and the token against every configured key: over the values with `+` literal
/// first, and only when that fails (and a `+` could mean a space) over the values with `+` read as a space.
/// Both readings are HMAC-checked; the app receives the one that verified.
pub fn verify(
    keys: &AccessKeys,
    query: V1Query,
    now_ms: u64,
    window: Duration,
) -> Result<Verified, AuthError> {
    let expires_ms = check_freshness(query.timestamp_ms, now_ms, window)?;
    let over = |params: &[(String, String)]| {
        let message = canonical_message(params);
        matching_key(keys, &query.auth_token, |key| {
            auth_token(key.expose(), &query.time_stamp, &message)
        })
    };
    let (key, params) = match over(&query.params) {
        Ok(key) => (key, query.params),
        Err(mismatch) => {
            let spaced = query
                .plus_source
                .as_deref()
                .and_then(plus_as_space)
                .ok_or(mismatch)?;
            (over(&spaced)?, spaced)
        }
    };
    Ok(Verified::new(
        key,
        query.token_text,
        (expires_ms, now_ms),
        Payload::V1(params),
    ))
}

#[cfg(test)]
mod tests;
