//! Canonical-form vectors (constructed by hand from Jackson's rules) and the V2 fallback built on them.

use super::*;
use crate::protocol::keys::{AccessKey, AccessKeys};
use crate::protocol::v2::{self, signature, AuthError, SignedQuery};
use crate::protocol::verified::SignedForm;
use bytes::Bytes;
use proptest::prelude::*;
use std::time::Duration;

fn canon(body: &str) -> String {
    String::from_utf8(canonicalise(body.as_bytes()).unwrap()).unwrap()
}

#[test]
fn canonical_form_vectors() {
    let cases = [
        // Sorted keys, no whitespace, nulls dropped at every depth, array order and array nulls kept.
        (
            r#"{ "orderId" : "o", "activity":"newInstance", "extra": null, "buyerInfo": {"email": "e", "customerId": "c", "x": null},
               "orderInfo": [ {"orderLineId": "l", "orderId": "o"}, null, [3, 1] ] }"#,
            r#"{"activity":"newInstance","buyerInfo":{"customerId":"c","email":"e"},"orderId":"o","orderInfo":[{"orderId":"o","orderLineId":"l"},null,[3,1]]}"#,
        ),
        // Jackson string escaping: `/` and non-ASCII raw, short escapes, other controls as uppercase \u00XX.
        (
            r#"{"a":"http:\/\/x/y é 飞 \u2028 \u007f","b":"q\"b\\t\tn\nr\rf\fb\bc\u001fd\u0000"}"#,
            "{\"a\":\"http://x/y é 飞 \u{2028} \u{7f}\",\"b\":\"q\\\"b\\\\t\\tn\\nr\\rf\\fb\\bc\\u001Fd\\u0000\"}",
        ),
        // Integers exactly as sent; other numbers as Java's Double.toString.
        (
            r#"{"i":[0,-0,-7,123456789012345678901234567890],"f":[12.78,100.0,1e2,1E7,9999999.0,0.001,1.0e-4,-2.5,1.5e300,1e21,0.1,123.456e2]}"#,
            r#"{"f":[12.78,100.0,100.0,1.0E7,9999999.0,0.001,1.0E-4,-2.5,1.5E300,1.0E21,0.1,12345.6],"i":[0,0,-7,123456789012345678901234567890]}"#,
        ),
        // Java's String order is UTF-16 code units: U+1F600 (a surrogate pair, D83D) sorts before U+FF61.
        (
            "{\"\u{FF61}\":1,\"\u{1F600}\":2,\"b\":true,\"B\":false,\"a\":null}",
            "{\"B\":false,\"b\":true,\"\u{1F600}\":2,\"\u{FF61}\":1}",
        ),
    ];
    for (body, expected) in cases {
        assert_eq!(canon(body), expected, "{body}");
    }
    assert_eq!(java_double(-0.0), "-0.0");
    assert_eq!(java_double(1.0), "1.0");
    assert_eq!(java_double(1234567.0), "1234567.0");
    assert!(
        canonicalise(b"{\"a\":1e400}").is_none(),
        "no double: no canonical form"
    );
    assert!(canonicalise(b"not json").is_none());
}

#[test]
fn repeated_keys_are_found_at_any_depth() {
    for body in [
        r#"{"a":1,"a":2}"#,
        r#"{"a":1,"b":{"c":1,"c":1}}"#,
        r#"{"orderInfo":[{"orderId":"x"},{"orderId":"y","orderId":"z"}]}"#,
        r#"{"activity":"x","\u0061ctivity":"y"}"#,
    ] {
        assert_eq!(
            check_unique_keys(body.as_bytes()),
            Err(DuplicateKey),
            "{body}"
        );
    }
    for body in [
        r#"{"a":1,"b":{"a":1},"c":[{"a":1},{"a":2}],"n":123456789012345678901234567890}"#,
        "not json",
        "[1,2]",
        "",
    ] {
        assert_eq!(check_unique_keys(body.as_bytes()), Ok(()), "{body}");
    }
}

const KEY: &str = "test-access-key-0001";
const TS: u64 = 1_700_000_000_000;
/// As KooGallery might send it: keys in another order, whitespace, a null.
const SENT: &str = r#"{"testFlag":"1", "orderId":"CS-1","activity":"newInstance","businessId":"b","orderLineId":"CS-1-1","expireTime":null}"#;
/// Its canonical form, written by hand.
const CANONICAL: &str = r#"{"activity":"newInstance","businessId":"b","orderId":"CS-1","orderLineId":"CS-1-1","testFlag":"1"}"#;

fn verify(signed_over: &str, sent: &str) -> Result<crate::protocol::verified::Verified, AuthError> {
    let keys = AccessKeys::new(vec![AccessKey::new("k", KEY)]).unwrap();
    let sig = hex::encode(signature(
        KEY.as_bytes(),
        "n",
        &TS.to_string(),
        signed_over.as_bytes(),
    ));
    let query = SignedQuery::parse(&format!("signature={sig}&timestamp={TS}&nonce=n")).unwrap();
    v2::verify(
        &keys,
        query,
        Bytes::copy_from_slice(sent.as_bytes()),
        TS,
        Duration::from_secs(60),
    )
}

#[test]
fn a_signature_over_the_canonical_form_verifies_a_body_sent_in_another_order() {
    assert_eq!(canon(SENT), CANONICAL);
    let verified = verify(CANONICAL, SENT).unwrap();
    assert_eq!(verified.signed_form(), SignedForm::Canonical);
    // The app gets the body as sent.
    assert!(
        matches!(verified.payload(), crate::protocol::verified::Payload::V2(b) if b.as_ref() == SENT.as_bytes())
    );
    let raw = verify(SENT, SENT).unwrap();
    assert_eq!(raw.signed_form(), SignedForm::Raw);
    // A canonical body signed as such verifies as raw.
    assert_eq!(
        verify(CANONICAL, CANONICAL).unwrap().signed_form(),
        SignedForm::Raw
    );
}

#[test]
fn the_canonical_fallback_does_not_accept_a_changed_value() {
    let changed = SENT.replace("CS-1-1", "CS-1-2");
    assert_eq!(
        verify(CANONICAL, &changed).unwrap_err(),
        AuthError::SignatureMismatch
    );
    // Dropping a null member is the only change the canonical form allows: a non-null one counts.
    let extra = SENT.replace("null", "\"20250101000000\"");
    assert_eq!(
        verify(CANONICAL, &extra).unwrap_err(),
        AuthError::SignatureMismatch
    );
}

#[test]
fn a_body_with_a_repeated_key_is_refused_before_either_check() {
    let body = r#"{"activity":"newInstance","orderId":"CS-1","orderId":"CS-EVIL"}"#;
    // Even correctly signed over the raw bytes.
    assert_eq!(
        verify(body, body).unwrap_err(),
        AuthError::DuplicateJsonKey(DuplicateKey)
    );
}

proptest! {
    /// Any flipped byte of a body that only verifies through the canonical form fails.
    #[test]
    fn any_flipped_byte_of_a_canonically_signed_body_fails(index in 0usize..SENT.len(), flip in 1u8..=255) {
        let mut sent = SENT.as_bytes().to_vec();
        sent[index] ^= flip;
        let Ok(sent) = String::from_utf8(sent) else { return Ok(()) };
        // Whitespace between tokens and the null member's value are outside what is signed.
        prop_assume!(canonicalise(sent.as_bytes()).is_none_or(|c| c != CANONICAL.as_bytes()));
        prop_assert!(verify(CANONICAL, &sent).is_err());
    }
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e9f64..1e9).prop_map(Value::from),
        "\\PC{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map("[a-zA-Z\u{e9}\u{1F600}]{0,4}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// The value without object members that are null (what the canonical form drops).
fn without_null_members(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_null_members(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_null_members).collect()),
        other => other.clone(),
    }
}

proptest! {
    /// The canonical form is a fixed point, and reads back as the same JSON (numbers compared as doubles).
    #[test]
    fn canonical_form_is_stable_and_keeps_the_meaning(value in any_json()) {
        let text = serde_json::to_string_pretty(&value).unwrap();
        let canonical = canonicalise(text.as_bytes()).unwrap();
        prop_assert_eq!(canonicalise(&canonical).unwrap(), canonical.clone());
        let back: Value = serde_json::from_slice(&canonical).unwrap();
        let as_f64 = |v: &Value| serde_json::to_string(&normalise_numbers(v)).unwrap();
        prop_assert_eq!(as_f64(&back), as_f64(&without_null_members(&value)));
    }
}

/// Every number as an f64, so `100` and `100.0` compare equal.
fn normalise_numbers(value: &Value) -> Value {
    match value {
        Value::Number(n) => Value::from(n.as_f64().unwrap_or(f64::NAN)),
        Value::Array(items) => Value::Array(items.iter().map(normalise_numbers).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), normalise_numbers(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}
