//! The two signatures of KooGallery's seller-side OpenAPI: SDK-HMAC-SHA256 (IAM AK/SK) and the usage-data body sign.
//!
//! Pure functions over bytes and time, shared by the client, the mock OpenAPI server and the tests
//! (`koogallery-openapi.md` sections 2 and 4).

use crate::protocol::mac::hmac_sha256;
use base64::{engine::general_purpose::STANDARD, Engine};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The algorithm name, first word of `Authorization` and first line of the string to sign.
pub const ALGORITHM: &str = "SDK-HMAC-SHA256";
/// The always-signed date header, UTC `yyyyMMdd'T'HHmmss'Z'`.
pub const DATE_HEADER: &str = "X-Sdk-Date";
/// When sent, its value replaces the body hash in the canonical request.
pub const CONTENT_SHA256_HEADER: &str = "X-Sdk-Content-Sha256";

/// RFC 3986 unreserved characters (`A-Z a-z 0-9 - . _ ~`) are kept; everything else is `%XX`-encoded.
const UNRESERVED_KEPT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// One request to sign or verify. `path` is the decoded path (`/api/.../order/query`); `query` holds decoded
/// parameters in any order (repeated keys allowed); `headers` are exactly the headers to sign, in any order and case.
#[derive(Debug, Clone, Copy)]
pub struct SignInput<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a [(String, String)],
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

/// The parts of an `Authorization: SDK-HMAC-SHA256 ...` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub access: String,
    /// Lowercase header names, as announced (`host;x-sdk-date`).
    pub signed_headers: Vec<String>,
    pub signature: String,
}

impl Authorization {
    /// The header value: `SDK-HMAC-SHA256 Access=<AK>, SignedHeaders=<a;b>, Signature=<hex>`.
    pub fn header_value(&self) -> String {
        format!(
            "{ALGORITHM} Access={}, SignedHeaders={}, Signature={}",
            self.access,
            self.signed_headers.join(";"),
            self.signature
        )
    }

    /// Parses a header value; `None` unless the algorithm and all three fields are present exactly once.
    pub fn parse(value: &str) -> Option<Self> {
        let rest = value.trim().strip_prefix(ALGORITHM)?;
        let rest = rest.strip_prefix(' ')?;
        let (mut access, mut signed, mut signature) = (None, None, None);
        for part in rest.split(',') {
            let (name, field) = part.trim().split_once('=')?;
            let slot = match name {
                "Access" => &mut access,
                "SignedHeaders" => &mut signed,
                "Signature" => &mut signature,
                _ => return None,
            };
            if slot.replace(field.to_owned()).is_some() {
                return None;
            }
        }
        let signed: String = signed?;
        Some(Self {
            access: access?,
            signed_headers: signed.split(';').map(str::to_owned).collect(),
            signature: signature?,
        })
    }
}

/// Percent-encodes one path segment, query key or query value (space → `%20`, `*` → `%2A`, `~` kept).
pub fn escape(value: &str) -> String {
    utf8_percent_encode(value, UNRESERVED_KEPT).to_string()
}

/// Each segment of the decoded `path` escaped, `/` between, a trailing `/` appended if absent.
pub fn canonical_uri(path: &str) -> String {
    let mut uri = path.split('/').map(escape).collect::<Vec<_>>().join("/");
    if !uri.starts_with('/') {
        uri.insert(0, '/');
    }
    if !uri.ends_with('/') {
        uri.push('/');
    }
    uri
}

/// Escaped `key=value` pairs sorted by key, then value; a key without a value gives `key=`.
pub fn canonical_query(query: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, String)> =
        query.iter().map(|(k, v)| (escape(k), escape(v))).collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The signed headers' names, lowercase, sorted and deduplicated.
fn signed_header_names(headers: &[(String, String)]) -> Vec<String> {
    let mut names: Vec<String> = headers
        .iter()
        .map(|(n, _)| n.to_ascii_lowercase())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The canonical request (section 2): method, URI, query, headers (each line ending in `\n`), signed names, body hash.
pub fn canonical_request(input: &SignInput<'_>) -> String {
    let names = signed_header_names(input.headers);
    let mut headers = String::new();
    let mut content_sha256 = None;
    for name in &names {
        // Repeated headers are joined with "," in order of appearance, as HTTP folds them.
        let values: Vec<&str> = input
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
            .collect();
        if name.eq_ignore_ascii_case(CONTENT_SHA256_HEADER) {
            content_sha256 = values.first().map(|v| v.to_string());
        }
        headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    let body_hash = content_sha256.unwrap_or_else(|| hex::encode(Sha256::digest(input.body)));
    format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        input.method,
        canonical_uri(input.path),
        canonical_query(input.query),
        headers,
        names.join(";"),
        body_hash
    )
}

/// `SDK-HMAC-SHA256\n<date>\n<hex sha256 of the canonical request>`.
pub fn string_to_sign(canonical_request: &str, sdk_date: &str) -> String {
    format!(
        "{ALGORITHM}\n{sdk_date}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    )
}

/// The `X-Sdk-Date` value among the signed headers, if any.
fn sdk_date(headers: &[(String, String)]) -> Option<&str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(DATE_HEADER))
        .map(|(_, v)| v.trim())
}

/// Lowercase hex HMAC-SHA256 under `sk` of the string to sign. The date comes from the signed `X-Sdk-Date`
/// header (empty when absent, which no gateway accepts).
pub fn signature(sk: &[u8], input: &SignInput<'_>) -> String {
    let date = sdk_date(input.headers).unwrap_or("");
    let to_sign = string_to_sign(&canonical_request(input), date);
    hex::encode(hmac_sha256(sk, &[to_sign.as_bytes()]))
}

/// Signs `input` and returns the `Authorization` header's parts.
pub fn authorize(ak: &str, sk: &[u8], input: &SignInput<'_>) -> Authorization {
    Authorization {
        access: ak.to_owned(),
        signed_headers: signed_header_names(input.headers),
        signature: signature(sk, input),
    }
}

/// Checks a received request: `input.headers` must be the headers named in `auth.signed_headers` (the caller picks
/// them from the request). Constant-time on the signature.
pub fn verify(sk: &[u8], auth: &Authorization, input: &SignInput<'_>) -> bool {
    if signed_header_names(input.headers) != auth.signed_headers {
        return false;
    }
    let expected = signature(sk, input);
    expected.as_bytes().ct_eq(auth.signature.as_bytes()).into()
}

/// Formats a Unix time in seconds as `X-Sdk-Date` (`yyyyMMdd'T'HHmmss'Z'`); `None` outside the representable range.
pub fn sdk_date_value(unix_seconds: i64) -> Option<String> {
    let at = time::OffsetDateTime::from_unix_timestamp(unix_seconds).ok()?;
    Some(crate::protocol::timefmt::basic_utc(at))
}

/// Parses an `X-Sdk-Date` value back to Unix seconds.
pub fn parse_sdk_date(value: &str) -> Option<i64> {
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let at = time::PrimitiveDateTime::parse(value, &format).ok()?;
    Some(at.assume_utc().unix_timestamp())
}

/// Decodes a raw query string (`a=1&b=%20`) into pairs; `+` stays `+` (RFC 3986, as the signer never emits it).
pub fn parse_query(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// Percent-decodes, replacing invalid UTF-8 (which then fails verification rather than panicking).
pub fn decode(value: &str) -> String {
    percent_decode_str(value).decode_utf8_lossy().into_owned()
}

/// The usage-data body signature (section 4): base64(HMAC-SHA256(accessKey, `ts=<ts>&nonce=<nonce>&body=<body>`)).
pub fn usage_signature(access_key: &[u8], ts: &str, nonce: &str, body: &[u8]) -> String {
    let mac = hmac_sha256(
        access_key,
        &[
            b"ts=",
            ts.as_bytes(),
            b"&nonce=",
            nonce.as_bytes(),
            b"&body=",
            body,
        ],
    );
    STANDARD.encode(mac)
}

/// Constant-time check of a received usage-data signature.
pub fn verify_usage(
    access_key: &[u8],
    ts: &str,
    nonce: &str,
    body: &[u8],
    signature: &str,
) -> bool {
    let expected = usage_signature(access_key, ts, nonce, body);
    expected.as_bytes().ct_eq(signature.as_bytes()).into()
}

/// Compact JSON with every object's keys in natural (byte-wise sorted) order, the body form the usage signature
/// covers. Independent of serde_json's map ordering features.
pub fn natural_order_json(value: &serde_json::Value) -> String {
    let mut out = String::new();
    write_sorted(value, &mut out);
    out
}

fn write_sorted(value: &serde_json::Value, out: &mut String) {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String(key.clone()).to_string());
                out.push(':');
                write_sorted(item, out);
            }
            out.push('}');
        }
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_sorted(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
#[path = "sign_tests.rs"]
mod tests;
