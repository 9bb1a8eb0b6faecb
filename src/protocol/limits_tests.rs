//! Pre-authentication parsing at the sizes the listener accepts: 16 KiB V1 queries, 64 KiB bodies.

use super::v1::{self, V1Query, MAX_PARAMS, MAX_QUERY_BYTES};
use super::v2::{self, AuthError, SignedQuery};
use crate::protocol::keys::{AccessKey, AccessKeys};
use bytes::Bytes;
use proptest::prelude::*;
use std::time::Duration;

const KEY: &str = "test-access-key-0001";
const TS: &str = "20210916064657481";
const TOKEN: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
/// What the listener accepts as a body (`server.max_body_bytes` default).
const MAX_BODY: usize = 64 * 1024;

/// The quadratic-era reference: what `V1Query::parse` must decide, written the obvious way.
fn reference(params: &[(String, String)]) -> Result<String, AuthError> {
    if params.len() + 2 > MAX_PARAMS {
        return Err(AuthError::TooManyParameters);
    }
    for (i, (name, _)) in params.iter().enumerate() {
        if params[..i].iter().any(|(n, _)| n == name) || name == "timeStamp" {
            return Err(AuthError::RepeatedParameter);
        }
    }
    let mut all = params.to_vec();
    all.push(("timeStamp".into(), TS.into()));
    all.sort();
    Ok(v1::canonical_message(&all))
}

fn query_of(params: &[(String, String)]) -> String {
    let mut q = format!("timeStamp={TS}&authToken={TOKEN}");
    for (n, v) in params {
        q.push_str(&format!("&{n}={v}"));
    }
    q
}

#[test]
fn a_3000_parameter_query_is_refused_at_the_cap_without_decoding_the_rest() {
    // Distinct parameters, 12 KB: the audit's quadratic case. Every parameter past the cap is also invalid UTF-8,
    // so reaching any of them would report `NotUtf8` instead: the parser stopped at the cap.
    let mut q = format!("timeStamp={TS}&authToken={TOKEN}");
    for i in 0..3_000 {
        if i < MAX_PARAMS {
            q.push_str(&format!("&p{i}=1"));
        } else {
            q.push_str("&%FF");
        }
    }
    assert!(q.len() <= MAX_QUERY_BYTES);
    assert_eq!(
        V1Query::parse(&q).unwrap_err(),
        AuthError::TooManyParameters
    );
    let distinct: String = (0..3_000).map(|i| format!("&{i:x}=")).collect();
    let q = format!("timeStamp={TS}&authToken={TOKEN}{distinct}");
    assert!(q.len() <= MAX_QUERY_BYTES);
    assert_eq!(
        V1Query::parse(&q).unwrap_err(),
        AuthError::TooManyParameters
    );
}

#[test]
fn a_query_over_16_kib_is_refused_before_it_is_split() {
    let q = format!(
        "timeStamp={TS}&authToken={TOKEN}&a={}",
        "%FF".repeat(MAX_QUERY_BYTES)
    );
    assert_eq!(V1Query::parse(&q).unwrap_err(), AuthError::QueryTooLong);
}

#[test]
fn a_v1_post_body_over_the_parameter_cap_is_refused() {
    let fields: Vec<String> = (0..3_000).map(|i| format!("\"f{i}\":\"v\"")).collect();
    let body = format!("{{\"timeStamp\":\"{TS}\",{}}}", fields.join(","));
    assert!(body.len() <= MAX_BODY);
    assert_eq!(
        V1Query::from_post(body.as_bytes(), TOKEN).unwrap_err(),
        AuthError::TooManyParameters
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Up to 16 KiB of parameters drawn from a small name set (so duplicates are common): the sort-based parser
    /// decides exactly what the pairwise reference decides.
    #[test]
    fn v1_parsing_agrees_with_the_pairwise_reference(
        params in prop::collection::vec(("[a-e]{1,2}", "[A-Za-z0-9]{0,120}"), 0..140)
    ) {
        let q = query_of(&params);
        prop_assume!(q.len() <= MAX_QUERY_BYTES);
        match (V1Query::parse(&q), reference(&params)) {
            (Ok(parsed), Ok(message)) => prop_assert_eq!(parsed.message(), message),
            (Err(e), Err(expected)) => prop_assert_eq!(e, expected),
            (got, expected) => prop_assert!(false, "parse {:?} but reference {:?}", got.map(|q| q.message()), expected),
        }
    }

    /// Any printable query up to the listener's 16 KiB parses or is refused; it never panics.
    #[test]
    fn any_query_up_to_16_kib_is_parsed_or_refused(q in "[ -~]{0,16384}") {
        let _ = V1Query::parse(&q);
        let _ = SignedQuery::parse(&q);
    }

    /// A single flipped byte anywhere in a 64 KiB V2 body fails verification.
    #[test]
    fn any_flipped_byte_of_a_64_kib_body_fails(index in 0usize..MAX_BODY, flip in 1u8..=255) {
        let keys = AccessKeys::new(vec![AccessKey::new("k", KEY)]).unwrap();
        let body: Vec<u8> = (0..MAX_BODY).map(|i| b'a' + (i % 26) as u8).collect();
        let signed = v2::signed_query(KEY.as_bytes(), "nonce", 1_000, &body);
        let query = || SignedQuery::parse(&signed).unwrap();
        prop_assert!(v2::verify(&keys, query(), Bytes::from(body.clone()), 1_000, Duration::from_secs(60)).is_ok());
        let mut flipped = body;
        flipped[index] ^= flip;
        prop_assert_eq!(
            v2::verify(&keys, query(), Bytes::from(flipped), 1_000, Duration::from_secs(60)).unwrap_err(),
            AuthError::SignatureMismatch
        );
    }
}
