//! A usage record: the app's JSON shape, its validation, and KooGallery's wire form (`koogallery-openapi.md` §4).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// KooGallery refuses a `begin_time` older than 21 days (`MKT.9004`).
pub const MAX_BEGIN_AGE_MS: u64 = 21 * 24 * 3600 * 1000;
/// Usage cannot be metered before it happens; 15 minutes absorbs clock skew between the app and koogate.
pub const MAX_FUTURE_MS: u64 = 15 * 60 * 1000;
/// koogate's bound on the identifiers (KooGallery documents none; its ids are UUID-sized).
pub const MAX_ID_CHARS: usize = 64;
/// `Double(12,4)`: at most 12 digits, 4 of them decimals.
pub const MAX_DECIMALS: usize = 4;
pub const MAX_INTEGER_DIGITS: usize = 8;

/// One record as KooGallery receives it. Fields are declared in natural (sorted) key order, so serialising it
/// yields the sorted keys the usage signature is computed over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireRecord {
    pub begin_time: String,
    pub end_time: String,
    pub instance_id: String,
    pub metering_sn: String,
    pub record_time: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub relate_pkg_instance: Option<String>,
    pub usage_value: String,
}

/// Why a record was refused before it was queued. `code` is stable (for the app's logic); `message` is for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    NotAnObject,
    Missing(&'static str),
    WrongType(&'static str),
    Empty(&'static str),
    TooLong(&'static str),
    BadCharacters(&'static str),
    BadTime(&'static str),
    InFuture(&'static str),
    BeginTooOld,
    EndNotAfterBegin,
    BadValue,
    UnknownField(String),
    /// The queue is at `usage.max_queued_records`; the app may retry later.
    QueueFull,
}

impl Rejection {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::NotAnObject => "not_an_object",
            Rejection::Missing(_) => "missing_field",
            Rejection::WrongType(_) => "wrong_type",
            Rejection::Empty(_) => "empty_field",
            Rejection::TooLong(_) => "too_long",
            Rejection::BadCharacters(_) => "bad_characters",
            Rejection::BadTime(_) => "bad_time",
            Rejection::InFuture(_) => "in_future",
            Rejection::BeginTooOld => "begin_too_old",
            Rejection::EndNotAfterBegin => "end_not_after_begin",
            Rejection::BadValue => "bad_usage_value",
            Rejection::UnknownField(_) => "unknown_field",
            Rejection::QueueFull => "queue_full",
        }
    }

    /// A human-readable reason; never echoes a value from the request (field names only).
    pub fn message(&self) -> String {
        match self {
            Rejection::NotAnObject => "a record must be a JSON object".into(),
            Rejection::Missing(f) => format!("{f} is required"),
            Rejection::WrongType(f) => format!("{f} has the wrong type"),
            Rejection::Empty(f) => format!("{f} must not be empty"),
            Rejection::TooLong(f) => format!("{f} is longer than {MAX_ID_CHARS} characters"),
            Rejection::BadCharacters(f) => format!("{f} must be printable ASCII"),
            Rejection::BadTime(f) => format!("{f} must be an RFC 3339 time in whole seconds"),
            Rejection::InFuture(f) => format!("{f} is more than 15 minutes in the future"),
            Rejection::BeginTooOld => "beginTime is more than 21 days old".into(),
            Rejection::EndNotAfterBegin => "endTime must be after beginTime".into(),
            Rejection::BadValue => format!(
                "usageValue must be a decimal > 0 with at most {MAX_INTEGER_DIGITS} integer digits and {MAX_DECIMALS} decimals"
            ),
            Rejection::UnknownField(f) => format!("unknown field {f}"),
            Rejection::QueueFull => "the usage queue is full; retry later".into(),
        }
    }
}

const FIELDS: &[&str] = &[
    "instanceId",
    "meteringSn",
    "recordTime",
    "beginTime",
    "endTime",
    "usageValue",
    "relatePkgInstance",
];

/// Validates one record of the app's request (`docs/schema/usage-request.schema.json`) at `now_ms`.
pub fn validate(value: &Value, now_ms: u64) -> Result<WireRecord, Rejection> {
    let object = value.as_object().ok_or(Rejection::NotAnObject)?;
    if let Some(unknown) = object.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(Rejection::UnknownField(printable_name(unknown)));
    }
    let instance_id = identifier(object, "instanceId")?;
    let metering_sn = identifier(object, "meteringSn")?;
    let relate_pkg_instance = match object.get("relatePkgInstance") {
        None | Some(Value::Null) => None,
        Some(_) => Some(identifier(object, "relatePkgInstance")?),
    };
    let record = instant(object, "recordTime")?;
    let begin = instant(object, "beginTime")?;
    let end = instant(object, "endTime")?;
    let now = now_ms as i128 * 1_000_000;
    let future_limit = now + MAX_FUTURE_MS as i128 * 1_000_000;
    for (name, at) in [
        ("recordTime", record),
        ("beginTime", begin),
        ("endTime", end),
    ] {
        if at.unix_timestamp_nanos() > future_limit {
            return Err(Rejection::InFuture(name));
        }
    }
    if begin.unix_timestamp_nanos() < now - MAX_BEGIN_AGE_MS as i128 * 1_000_000 {
        return Err(Rejection::BeginTooOld);
    }
    if end <= begin {
        return Err(Rejection::EndNotAfterBegin);
    }
    let usage_value = match object.get("usageValue") {
        None | Some(Value::Null) => return Err(Rejection::Missing("usageValue")),
        Some(Value::String(s)) => decimal(s)?,
        Some(Value::Number(n)) => decimal(&n.to_string())?,
        Some(_) => return Err(Rejection::WrongType("usageValue")),
    };
    Ok(WireRecord {
        begin_time: koogallery_utc(begin),
        end_time: koogallery_utc(end),
        instance_id,
        metering_sn,
        record_time: koogallery_utc(record),
        relate_pkg_instance,
        usage_value,
    })
}

/// The `meteringSn` of a record, if it has a usable one (to report it next to the verdict).
pub fn metering_sn(value: &Value) -> Option<&str> {
    value
        .get("meteringSn")
        .and_then(Value::as_str)
        .filter(|s| s.len() <= MAX_ID_CHARS && s.bytes().all(|b| b.is_ascii_graphic()))
}

fn printable_name(name: &str) -> String {
    let clean: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(32)
        .collect();
    if clean.is_empty() {
        "(unprintable)".into()
    } else {
        clean
    }
}

fn identifier(object: &Map<String, Value>, name: &'static str) -> Result<String, Rejection> {
    let text = match object.get(name) {
        None | Some(Value::Null) => return Err(Rejection::Missing(name)),
        Some(Value::String(s)) => s,
        Some(_) => return Err(Rejection::WrongType(name)),
    };
    if text.is_empty() {
        return Err(Rejection::Empty(name));
    }
    if text.chars().count() > MAX_ID_CHARS {
        return Err(Rejection::TooLong(name));
    }
    if !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Rejection::BadCharacters(name));
    }
    Ok(text.clone())
}

fn instant(object: &Map<String, Value>, name: &'static str) -> Result<OffsetDateTime, Rejection> {
    let text = match object.get(name) {
        None | Some(Value::Null) => return Err(Rejection::Missing(name)),
        Some(Value::String(s)) => s,
        Some(_) => return Err(Rejection::WrongType(name)),
    };
    let at = OffsetDateTime::parse(text, &Rfc3339).map_err(|_| Rejection::BadTime(name))?;
    if at.nanosecond() != 0 {
        return Err(Rejection::BadTime(name));
    }
    Ok(at)
}

/// `yyyyMMdd'T'HHmmss'Z'` in UTC, the usage-data time format.
pub fn koogallery_utc(at: OffsetDateTime) -> String {
    crate::protocol::timefmt::basic_utc(at)
}

/// A decimal > 0 with bounded digits, in canonical form (no leading zeros, no trailing fractional zeros).
fn decimal(text: &str) -> Result<String, Rejection> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !digits(int) || !digits(frac) || (text.contains('.') && frac.is_empty()) {
        return Err(Rejection::BadValue);
    }
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    if int.len() > MAX_INTEGER_DIGITS || frac.len() > MAX_DECIMALS {
        return Err(Rejection::BadValue);
    }
    if int.is_empty() && frac.is_empty() {
        return Err(Rejection::BadValue);
    }
    let int = if int.is_empty() { "0" } else { int };
    Ok(if frac.is_empty() {
        int.to_owned()
    } else {
        format!("{int}.{frac}")
    })
}

#[cfg(test)]
mod tests;
