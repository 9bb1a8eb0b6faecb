//! V1 vectors and query edge cases.

use super::*;
use crate::protocol::keys::AccessKey;
use proptest::prelude::*;

const KEY: &str = "test-access-key-0001";
/// Vector V1-B as it arrives on the wire (customerName percent-encoded, authToken with raw `+`).
const WIRE: &str = "activity=newInstance&businessId=c50dd5ef-7787-4dba-9aa3-8002ff9cd075&customerId=68cbc86abc2018ab880d92f36422fa0e&customerName=%E9%A3%9E%E8%9D%B6%E6%B5%8B%E8%AF%951&expireTime=20210916133124&orderAmount=100&orderId=CS1906666666ABCDE&periodNumber=1&periodType=year&productId=00301-666666-0--0&provisionType=1&testFlag=1&timeStamp=20210916064657481&userId=fd1001&userName=fdtest&authToken=2+mNSsnDJXSBl+jvS14una6uw4JREw1QQhc8KJ7kEFo=";
const MESSAGE: &str = "activity=newInstance&businessId=c50dd5ef-7787-4dba-9aa3-8002ff9cd075&customerId=68cbc86abc2018ab880d92f36422fa0e&customerName=飞蝶测试1&expireTime=20210916133124&orderAmount=100&orderId=CS1906666666ABCDE&periodNumber=1&periodType=year&productId=00301-666666-0--0&provisionType=1&testFlag=1&timeStamp=20210916064657481&userId=fd1001&userName=fdtest";
const TOKEN: &str = "2+mNSsnDJXSBl+jvS14una6uw4JREw1QQhc8KJ7kEFo=";
const WINDOW: Duration = Duration::from_secs(24 * 3600);

fn keys() -> AccessKeys {
    AccessKeys::new(vec![AccessKey::new("k", KEY)]).unwrap()
}

fn at() -> u64 {
    parse_time_stamp("20210916064657481").unwrap()
}

/// Protocol section 8, vector V1-B.
#[test]
fn v1b_vector_matches() {
    assert_eq!(
        STANDARD.encode(auth_token(KEY.as_bytes(), "20210916064657481", MESSAGE)),
        TOKEN
    );
    let query = V1Query::parse(WIRE).unwrap();
    assert_eq!(query.message(), MESSAGE);
    assert!(verify(&keys(), query, at(), WINDOW).is_ok());
}

#[test]
fn parameter_order_on_the_wire_does_not_matter() {
    let mut pairs: Vec<&str> = WIRE.split('&').collect();
    pairs.reverse();
    assert!(verify(
        &keys(),
        V1Query::parse(&pairs.join("&")).unwrap(),
        at(),
        WINDOW
    )
    .is_ok());
}

#[test]
fn plus_percent_2b_and_space_are_distinct() {
    // `%2B` decodes to `+`, so the token still matches; `%20` is a space and breaks it.
    let encoded = WIRE.replace("authToken=2+mN", "authToken=2%2BmN");
    assert!(verify(&keys(), V1Query::parse(&encoded).unwrap(), at(), WINDOW).is_ok());
    let spaced = WIRE.replace("authToken=2+mN", "authToken=2%20mN");
    assert_eq!(
        V1Query::parse(&spaced).unwrap_err(),
        AuthError::MalformedParameter("authToken")
    );
    // A `+` in a signed value is a plus, not a space: changing it to %20 changes the message.
    let q = V1Query::parse("a=x+y&b=x%20y&timeStamp=20210916064657481&authToken=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap();
    assert_eq!(q.message(), "a=x+y&b=x y&timeStamp=20210916064657481");
}

#[test]
fn non_ascii_values_are_signed_as_raw_utf8() {
    let q = V1Query::parse(WIRE).unwrap();
    assert!(q.message().contains("customerName=飞蝶测试1"));
}

#[test]
fn malformed_queries_are_refused() {
    let no_ts = WIRE.replace("&timeStamp=20210916064657481", "");
    let bad_ts = WIRE.replace("timeStamp=20210916064657481", "timeStamp=2021-09-16");
    let repeated = format!("{WIRE}&orderId=other");
    let two_tokens = format!("{WIRE}&authToken={TOKEN}");
    let no_token = WIRE.split("&authToken").next().unwrap().to_owned();
    let short_token = WIRE.replace(TOKEN, "AAAA");
    let cases = [
        (no_ts, AuthError::MissingParameter("timeStamp")),
        (bad_ts, AuthError::MalformedParameter("timeStamp")),
        (repeated, AuthError::RepeatedParameter),
        (two_tokens, AuthError::RepeatedParameter),
        (no_token, AuthError::MissingParameter("authToken")),
        (short_token, AuthError::MalformedParameter("authToken")),
    ];
    for (query, expected) in cases {
        assert_eq!(V1Query::parse(&query).unwrap_err(), expected, "{query}");
    }
}

#[test]
fn freshness_window_applies_both_ways() {
    let q = || V1Query::parse(WIRE).unwrap();
    let day = 24 * 3600 * 1000;
    assert!(verify(&keys(), q(), at() + day, WINDOW).is_ok());
    assert_eq!(
        verify(&keys(), q(), at() + day + 1, WINDOW).unwrap_err(),
        AuthError::StaleTimestamp
    );
    assert_eq!(
        verify(&keys(), q(), at() - day - 1, WINDOW).unwrap_err(),
        AuthError::FutureTimestamp
    );
}

#[test]
fn wrong_key_is_rejected() {
    let other = AccessKeys::new(vec![AccessKey::new("k", "other")]).unwrap();
    assert_eq!(
        verify(&other, V1Query::parse(WIRE).unwrap(), at(), WINDOW).unwrap_err(),
        AuthError::SignatureMismatch
    );
}

proptest! {
    /// Changing any single byte of the decoded query (outside the token) fails verification or parsing.
    #[test]
    fn any_flipped_query_byte_fails(index in 0usize..WIRE.len() - 55, flip in 1u8..=127) {
        let mut bytes = WIRE.as_bytes().to_vec();
        bytes[index] ^= flip;
        if let Ok(text) = String::from_utf8(bytes) {
            if let Ok(q) = V1Query::parse(&text) {
                // Flipping the case of a percent-escape's hex digit decodes to the same text: same message.
                if q.message() != MESSAGE {
                    prop_assert!(verify(&keys(), q, at(), WINDOW).is_err());
                }
            }
        }
    }
}

/// A query signed over `message` (what the sender meant), with `wire` as sent.
fn signed(message_params: &[(&str, &str)], wire: &str) -> V1Query {
    let ts = "20210916064657481";
    let mut sorted: Vec<(String, String)> = message_params
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .chain([("timeStamp".into(), ts.into())])
        .collect();
    sorted.sort();
    let token = STANDARD.encode(auth_token(KEY.as_bytes(), ts, &canonical_message(&sorted)));
    V1Query::parse(&format!("{wire}&timeStamp={ts}&authToken={token}")).unwrap()
}

#[test]
fn a_plus_meaning_a_space_verifies_on_the_second_reading() {
    // Java's URLEncoder sends `John Smith` as `John+Smith`; the signed message has the space.
    let query = signed(&[("customerName", "John Smith")], "customerName=John+Smith");
    let verified = verify(&keys(), query, at(), WINDOW).unwrap();
    let Payload::V1(params) = verified.payload() else {
        panic!("not V1")
    };
    assert!(params.contains(&("customerName".into(), "John Smith".into())));
    // A literal plus still verifies on the first reading and stays a plus.
    let query = signed(&[("customerName", "A+B")], "customerName=A+B");
    let verified = verify(&keys(), query, at(), WINDOW).unwrap();
    let Payload::V1(params) = verified.payload() else {
        panic!("not V1")
    };
    assert!(params.contains(&("customerName".into(), "A+B".into())));
}

#[test]
fn base64_values_keep_their_plus_in_both_readings() {
    // An encrypted field's `+` is base64: the second reading must not turn it into a space.
    let query = signed(
        &[("customerName", "John Smith"), ("mobilePhone", "AbC+dEf=")],
        "customerName=John+Smith&mobilePhone=AbC+dEf=",
    );
    let verified = verify(&keys(), query, at(), WINDOW).unwrap();
    let Payload::V1(params) = verified.payload() else {
        panic!("not V1")
    };
    assert!(params.contains(&("mobilePhone".into(), "AbC+dEf=".into())));
    // Signed with the space in the encrypted field: neither reading gives that message.
    let query = signed(&[("mobilePhone", "AbC dEf=")], "mobilePhone=AbC+dEf=");
    assert_eq!(
        verify(&keys(), query, at(), WINDOW).unwrap_err(),
        AuthError::SignatureMismatch
    );
    // Neither reading verifies a forged value.
    let query = signed(&[("customerName", "John Smith")], "customerName=Joan+Smith");
    assert_eq!(
        verify(&keys(), query, at(), WINDOW).unwrap_err(),
        AuthError::SignatureMismatch
    );
}
