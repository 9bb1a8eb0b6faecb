//! The mock's usage-data endpoint: the body signature (`ts`, `nonce`, `signature`), the record checks KooGallery
//! documents, and the injected usage faults.

use super::handler::{status_of, Answer};
use super::{Fault, Shared};
use crate::openapi::sign;
use http::HeaderMap;
use serde_json::{json, Value};

/// KooGallery's limit per call.
pub const MAX_RECORDS: usize = 1000;
/// `begin_time` may be at most this old.
const MAX_BEGIN_AGE_SECONDS: i64 = 21 * 86_400;
const REQUIRED: [&str; 6] = [
    "instance_id",
    "record_time",
    "begin_time",
    "end_time",
    "usage_value",
    "metering_sn",
];

fn answer(code: &str, message: &str) -> Answer {
    Answer {
        status: status_of(code),
        code: code.to_owned(),
        body: json!({"error_code": code, "error_msg": message}),
    }
}

pub(super) fn usage_data(
    headers: &HeaderMap,
    body: &[u8],
    fault: Option<Fault>,
    shared: &Shared,
) -> Answer {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(ts), Some(nonce), Some(signature)) =
        (header("ts"), header("nonce"), header("signature"))
    else {
        return answer("MKT.0102", "ts, nonce and signature headers are required");
    };
    if nonce.is_empty() || nonce.len() > 64 || ts.parse::<u64>().is_err() {
        return answer("MKT.0102", "invalid ts or nonce");
    }
    if !sign::verify_usage(&shared.options.access_key, ts, nonce, body, signature) {
        return answer("MKT.0102", "invalid body sign");
    }
    let Ok(parsed) = serde_json::from_slice::<Value>(body) else {
        return answer("MKT.0101", "the body is not JSON");
    };
    // KooGallery signs the body with its keys in natural order: another order would not verify there.
    if sign::natural_order_json(&parsed).as_bytes() != body {
        return answer(
            "MKT.0102",
            "the body is not compact JSON with keys in natural order",
        );
    }
    match fault {
        Some(Fault::InvalidBodySign) => return answer("MKT.0102", "invalid body sign"),
        Some(Fault::TooManyRecords) => return answer("MKT.9003", "too many records"),
        Some(Fault::UnknownInstance) => return answer("MKT.9001", "instance not found"),
        Some(Fault::InternalError) => return answer("MKT.0999", "internal error"),
        Some(Fault::Mkt { code }) => return answer(&code, "injected fault"),
        Some(Fault::RefuseSignature | Fault::Slow { .. }) | None => {}
    }
    let Some(records) = parsed["usage_records"].as_array() else {
        return answer("MKT.0101", "usage_records is required");
    };
    if records.len() > MAX_RECORDS {
        return answer("MKT.9003", "more than 1000 records");
    }
    if records.is_empty() {
        return answer("MKT.0101", "usage_records is empty");
    }
    let now = (shared.options.clock.now_ms() / 1000) as i64;
    let unknown = shared.control().unknown_instances.clone();
    for record in records {
        if let Some(missing) = REQUIRED.iter().find(|f| !record[**f].is_string()) {
            return answer("MKT.0101", &format!("{missing} is missing or not a string"));
        }
        let time = |field: &str| record[field].as_str().and_then(sign::parse_sdk_date);
        let (Some(_), Some(begin), Some(end)) =
            (time("record_time"), time("begin_time"), time("end_time"))
        else {
            return answer("MKT.0101", "times are yyyyMMddTHHmmssZ");
        };
        if begin > end {
            return answer("MKT.0100", "begin_time is after end_time");
        }
        if now - begin > MAX_BEGIN_AGE_SECONDS {
            return answer("MKT.9004", "begin_time is older than 21 days");
        }
        if !valid_usage_value(record["usage_value"].as_str().unwrap_or("")) {
            return answer(
                "MKT.0100",
                "usage_value must be > 0 with at most 4 decimals",
            );
        }
        if record["instance_id"]
            .as_str()
            .is_some_and(|id| unknown.contains(id))
        {
            return answer("MKT.9001", "instance not found");
        }
    }
    answer("MKT.0000", "success")
}

fn valid_usage_value(value: &str) -> bool {
    let (whole, decimals) = value.split_once('.').unwrap_or((value, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    !whole.is_empty()
        && digits(whole)
        && digits(decimals)
        && decimals.len() <= 4
        && (value.contains('.') != decimals.is_empty())
        && value.parse::<f64>().is_ok_and(|v| v > 0.0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn usage_values_need_a_positive_number_with_at_most_four_decimals() {
        for ok in ["99", "0.0001", "12.5", "1000000.1234"] {
            assert!(super::valid_usage_value(ok), "{ok}");
        }
        for bad in ["", "0", "0.0000", "-1", "1.23456", "1.", ".5", "1e3", "abc"] {
            assert!(!super::valid_usage_value(bad), "{bad}");
        }
    }
}
