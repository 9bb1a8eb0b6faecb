//! Validation outcomes, one per rule, and the wire form KooGallery receives.

use super::*;
use serde_json::json;

/// 2026-12-02T04:00:00Z.
const NOW_MS: u64 = 1_796_184_000_000;

fn good() -> Value {
    json!({
        "instanceId": "7f141bf1-aec8-4859-8323-fb3a8ad50721",
        "meteringSn": "sn-0001",
        "recordTime": "2026-12-02T03:10:00Z",
        "beginTime": "2026-12-02T02:00:00Z",
        "endTime": "2026-12-02T03:00:00+00:00",
        "usageValue": "99",
    })
}

fn with(field: &str, value: Value) -> Value {
    let mut v = good();
    v[field] = value;
    v
}

fn without(field: &str) -> Value {
    let mut v = good();
    v.as_object_mut().unwrap().remove(field);
    v
}

#[test]
fn a_good_record_becomes_the_wire_form() {
    let wire = validate(&good(), NOW_MS).unwrap();
    assert_eq!(
        serde_json::to_string(&wire).unwrap(),
        r#"{"begin_time":"20261202T020000Z","end_time":"20261202T030000Z","instance_id":"7f141bf1-aec8-4859-8323-fb3a8ad50721","metering_sn":"sn-0001","record_time":"20261202T031000Z","usage_value":"99"}"#
    );
}

#[test]
fn offsets_are_converted_to_utc_and_the_package_instance_is_kept() {
    let mut v = with("beginTime", json!("2026-12-02T10:00:00+08:00"));
    v["relatePkgInstance"] = json!("pkg-1");
    let wire = validate(&v, NOW_MS).unwrap();
    assert_eq!(wire.begin_time, "20261202T020000Z");
    assert_eq!(wire.relate_pkg_instance.as_deref(), Some("pkg-1"));
}

#[test]
fn usage_values_are_canonical_decimals() {
    for (given, sent) in [
        (json!("1.5000"), "1.5"),
        (json!("007.25"), "7.25"),
        (json!(0.0001), "0.0001"),
        (json!(12345678.1234), "12345678.1234"),
        (json!(3), "3"),
    ] {
        assert_eq!(
            validate(&with("usageValue", given), NOW_MS)
                .unwrap()
                .usage_value,
            sent
        );
    }
}

#[test]
fn bad_usage_values_are_rejected() {
    for bad in [
        json!("0"),
        json!(0),
        json!("-1"),
        json!(-1.5),
        json!("1.23456"),
        json!("123456789"),
        json!("1e3"),
        json!("1."),
        json!(".5"),
        json!(""),
        json!(" 1"),
        json!(0.00001),
    ] {
        assert_eq!(
            validate(&with("usageValue", bad.clone()), NOW_MS),
            Err(Rejection::BadValue),
            "{bad}"
        );
    }
    assert_eq!(
        validate(&with("usageValue", json!(true)), NOW_MS),
        Err(Rejection::WrongType("usageValue"))
    );
}

#[test]
fn every_required_field_is_required() {
    for field in [
        "instanceId",
        "meteringSn",
        "recordTime",
        "beginTime",
        "endTime",
        "usageValue",
    ] {
        assert_eq!(
            validate(&without(field), NOW_MS),
            Err(Rejection::Missing(field))
        );
        assert_eq!(
            validate(&with(field, Value::Null), NOW_MS),
            Err(Rejection::Missing(field))
        );
    }
}

#[test]
fn identifiers_are_bounded_printable_strings() {
    assert_eq!(
        validate(&with("instanceId", json!("x".repeat(65))), NOW_MS),
        Err(Rejection::TooLong("instanceId"))
    );
    assert!(validate(&with("instanceId", json!("x".repeat(64))), NOW_MS).is_ok());
    assert_eq!(
        validate(&with("meteringSn", json!("a b")), NOW_MS),
        Err(Rejection::BadCharacters("meteringSn"))
    );
    assert_eq!(
        validate(&with("meteringSn", json!("")), NOW_MS),
        Err(Rejection::Empty("meteringSn"))
    );
    assert_eq!(
        validate(&with("instanceId", json!(7)), NOW_MS),
        Err(Rejection::WrongType("instanceId"))
    );
    assert_eq!(
        validate(&with("relatePkgInstance", json!("é")), NOW_MS),
        Err(Rejection::BadCharacters("relatePkgInstance"))
    );
}

#[test]
fn times_must_be_rfc3339_whole_seconds() {
    for bad in [
        "20261202T020000Z",
        "2026-12-02 02:00:00",
        "2026-12-02T02:00:00.500Z",
        "2026-12-02T02:00:00",
    ] {
        assert_eq!(
            validate(&with("beginTime", json!(bad)), NOW_MS),
            Err(Rejection::BadTime("beginTime")),
            "{bad}"
        );
    }
}

#[test]
fn begin_time_older_than_21_days_is_rejected() {
    assert_eq!(
        validate(&with("beginTime", json!("2026-11-11T03:59:59Z")), NOW_MS),
        Err(Rejection::BeginTooOld)
    );
    assert!(validate(&with("beginTime", json!("2026-11-11T04:00:01Z")), NOW_MS).is_ok());
}

#[test]
fn end_must_follow_begin() {
    assert_eq!(
        validate(&with("endTime", json!("2026-12-02T02:00:00Z")), NOW_MS),
        Err(Rejection::EndNotAfterBegin)
    );
}

#[test]
fn times_far_in_the_future_are_rejected() {
    assert_eq!(
        validate(&with("endTime", json!("2026-12-02T04:16:00Z")), NOW_MS),
        Err(Rejection::InFuture("endTime"))
    );
    assert!(validate(&with("endTime", json!("2026-12-02T04:14:00Z")), NOW_MS).is_ok());
}

#[test]
fn unknown_fields_and_non_objects_are_rejected_without_echoing_values() {
    let v = with("meteringSN", json!("secret value"));
    let rejection = validate(&v, NOW_MS).unwrap_err();
    assert_eq!(rejection, Rejection::UnknownField("meteringSN".into()));
    assert!(!rejection.message().contains("secret"));
    assert_eq!(validate(&json!([1]), NOW_MS), Err(Rejection::NotAnObject));
}
