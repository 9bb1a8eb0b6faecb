//! Vectors from `koogallery-openapi.md` sections 2.1 and 4, and property tests for both signers.

use super::*;
use proptest::prelude::*;

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

struct Vector {
    id: &'static str,
    method: &'static str,
    path: &'static str,
    query: &'static [(&'static str, &'static str)],
    headers: &'static [(&'static str, &'static str)],
    body: &'static str,
    ak: &'static str,
    sk: &'static str,
    signed: &'static str,
    signature: &'static str,
}

const VECTORS: &[Vector] = &[
    Vector {
        id: "S1",
        method: "GET",
        path: "/path",
        query: &[("limit", "1")],
        headers: &[("X-Sdk-Date", "20060102T150405Z")],
        body: "",
        ak: "AccessKey",
        sk: "SecretKey",
        signed: "x-sdk-date",
        signature: "5a2ce64c865e0e6046321c6f3d5a77ba8413eeaf355c3166c03d58d02ac79624",
    },
    Vector {
        id: "S2",
        method: "POST",
        path: "/path",
        query: &[("key", "value")],
        headers: &[("X-Sdk-Date", "20060102T150405Z")],
        body: "{\"Name\":\"test\",\"Id\":1}\n",
        ak: "AccessKey",
        sk: "SecretKey",
        signed: "x-sdk-date",
        signature: "cecc2af119b18ab70b4d094c0750f3b42c02f254903179a0fc2cc72fc9db4f59",
    },
    Vector {
        id: "S3",
        method: "GET",
        path: "/resources",
        query: &[("size", "1")],
        headers: &[
            ("X-Sdk-Date", "20200608T023900Z"),
            ("Host", "service.endpoint.myhuaweicloud.com"),
        ],
        body: "",
        ak: "AccessKey",
        sk: "SecretKey",
        signed: "host;x-sdk-date",
        signature: "cfb4171acec81de07d50e53d57eb77edd537414d66ddb1d7d780f128e12cd842",
    },
    Vector {
        id: "S4",
        method: "POST",
        path: "/resources",
        query: &[("size", "1")],
        headers: &[
            ("X-Sdk-Date", "20200608T023900Z"),
            ("Host", "service.endpoint.myhuaweicloud.com"),
        ],
        body: "{\"name\":\"test\",\"id\":1}",
        ak: "AccessKey",
        sk: "SecretKey",
        signed: "host;x-sdk-date",
        signature: "436b1ac0a1ae03705934bb70ef2f2e09f7bfed2117d731a38235053199323a1f",
    },
    Vector {
        id: "S5",
        method: "POST",
        path: "/api/mkp-openapi-public/global/v1/license/activate",
        query: &[],
        headers: &[
            ("x-stage", "RELEASE"),
            ("X-Sdk-Date", "20240317T144237Z"),
            ("Content-Type", "application/json"),
            ("Host", "mkt.myhuaweicloud.com"),
        ],
        body: "",
        ak: "test",
        sk: "123",
        signed: "content-type;host;x-sdk-date;x-stage",
        signature: "77595ad624b6e4e49990b8c4e84bf1c287457fca61069c4e60b9b6765b52053d",
    },
];

#[test]
fn sdk_signer_vectors_s1_to_s5_match() {
    for v in VECTORS {
        let (query, headers) = (pairs(v.query), pairs(v.headers));
        let input = SignInput {
            method: v.method,
            path: v.path,
            query: &query,
            headers: &headers,
            body: v.body.as_bytes(),
        };
        let auth = authorize(v.ak, v.sk.as_bytes(), &input);
        assert_eq!(auth.signature, v.signature, "{}", v.id);
        assert_eq!(auth.signed_headers.join(";"), v.signed, "{}", v.id);
        assert_eq!(
            auth.header_value(),
            format!(
                "SDK-HMAC-SHA256 Access={}, SignedHeaders={}, Signature={}",
                v.ak, v.signed, v.signature
            ),
            "{}",
            v.id
        );
        assert_eq!(
            Authorization::parse(&auth.header_value()),
            Some(auth.clone())
        );
        assert!(verify(v.sk.as_bytes(), &auth, &input), "{}", v.id);
    }
}

#[test]
fn canonical_query_vector_matches() {
    let query = pairs(&[
        ("limit", "1"),
        ("enable", "true"),
        ("test", "一 (&=?!#%.*)"),
        ("path", "/tmp/123"),
        ("multi", "3"),
        ("multi", "1"),
        ("multi", "2"),
    ]);
    assert_eq!(
        canonical_query(&query),
        "enable=true&limit=1&multi=1&multi=2&multi=3&path=%2Ftmp%2F123&test=%E4%B8%80%20%28%26%3D%3F%21%23%25.%2A%29"
    );
}

#[test]
fn canonical_request_has_the_documented_layout() {
    let (query, headers) = (
        pairs(&[("orderId", "A B")]),
        pairs(&[("X-Sdk-Date", "20240101T000000Z")]),
    );
    let input = SignInput {
        method: "GET",
        path: "/a b/c",
        query: &query,
        headers: &headers,
        body: b"",
    };
    assert_eq!(
        canonical_request(&input),
        "GET\n/a%20b/c/\norderId=A%20B\nx-sdk-date:20240101T000000Z\n\nx-sdk-date\n\
         e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

#[test]
fn content_sha256_header_replaces_the_body_hash() {
    let headers = pairs(&[
        ("X-Sdk-Date", "20240101T000000Z"),
        ("X-Sdk-Content-Sha256", "UNSIGNED-PAYLOAD"),
    ]);
    let input = SignInput {
        method: "PUT",
        path: "/",
        query: &[],
        headers: &headers,
        body: b"ignored",
    };
    assert!(canonical_request(&input).ends_with("\nUNSIGNED-PAYLOAD"));
}

#[test]
fn verification_refuses_a_wrong_key_and_a_changed_header_list() {
    let headers = pairs(&[("X-Sdk-Date", "20240101T000000Z"), ("Host", "h")]);
    let input = SignInput {
        method: "GET",
        path: "/x",
        query: &[],
        headers: &headers,
        body: b"",
    };
    let auth = authorize("ak", b"sk", &input);
    assert!(!verify(b"other", &auth, &input));
    let mut fewer = auth.clone();
    fewer.signed_headers = vec!["x-sdk-date".into()];
    assert!(!verify(b"sk", &fewer, &input));
}

#[test]
fn malformed_authorization_headers_do_not_parse() {
    for v in [
        "",
        "SDK-HMAC-SHA256",
        "SDK-HMAC-SHA1 Access=a, SignedHeaders=h, Signature=s",
        "SDK-HMAC-SHA256 Access=a, SignedHeaders=h",
        "SDK-HMAC-SHA256 Access=a, Access=b, SignedHeaders=h, Signature=s",
        "SDK-HMAC-SHA256 Access=a, SignedHeaders=h, Signature=s, Extra=x",
    ] {
        assert_eq!(Authorization::parse(v), None, "{v}");
    }
}

#[test]
fn sdk_dates_format_and_parse() {
    assert_eq!(
        sdk_date_value(1136214245).as_deref(),
        Some("20060102T150405Z")
    );
    assert_eq!(parse_sdk_date("20060102T150405Z"), Some(1136214245));
    for bad in ["", "20060102150405", "20061302T150405Z", "20060102T150405"] {
        assert_eq!(parse_sdk_date(bad), None, "{bad}");
    }
}

#[test]
fn raw_queries_decode_to_pairs() {
    assert_eq!(
        parse_query("orderId=A%20B&orderLineId=&flag&&x=%E4%B8%80"),
        pairs(&[
            ("orderId", "A B"),
            ("orderLineId", ""),
            ("flag", ""),
            ("x", "一")
        ])
    );
}

const USAGE_BODY: &str = r#"{"usage_records":[{"begin_time":"20220809T080000Z","end_time":"20220809T090000Z","instance_id":"7f141bf1-aec8-4859-8323-fb3a8ad50721","metering_sn":"sn-0001","record_time":"20220809T091000Z","usage_value":"99"}]}"#;

#[test]
fn usage_signature_vector_matches() {
    let sig = usage_signature(
        b"test-access-key-0001",
        "1709690865879",
        "6c63c221-1f6b-4141-8ff4-22f5dfe82b65",
        USAGE_BODY.as_bytes(),
    );
    assert_eq!(sig, "fGAXw8HsUw4Q5rd+mx1zhQuHgKolgCzBqCKATyF0QFM=");
    assert!(verify_usage(
        b"test-access-key-0001",
        "1709690865879",
        "6c63c221-1f6b-4141-8ff4-22f5dfe82b65",
        USAGE_BODY.as_bytes(),
        &sig
    ));
    assert!(!verify_usage(
        b"other",
        "1709690865879",
        "n",
        USAGE_BODY.as_bytes(),
        &sig
    ));
}

#[test]
fn natural_order_json_sorts_keys_at_every_level_and_is_compact() {
    let shuffled: serde_json::Value = serde_json::from_str(
        r#"{"usage_records":[{"usage_value":"99","record_time":"20220809T091000Z","metering_sn":"sn-0001",
            "instance_id":"7f141bf1-aec8-4859-8323-fb3a8ad50721","end_time":"20220809T090000Z",
            "begin_time":"20220809T080000Z"}]}"#,
    )
    .unwrap();
    assert_eq!(natural_order_json(&shuffled), USAGE_BODY);
    let nested: serde_json::Value =
        serde_json::from_str(r#"{"b":{"z":1,"a":[true,null,"\"q"]},"a":1.5}"#).unwrap();
    assert_eq!(
        natural_order_json(&nested),
        r#"{"a":1.5,"b":{"a":[true,null,"\"q"],"z":1}}"#
    );
}

fn flip(bytes: &mut [u8], at: usize) {
    if !bytes.is_empty() {
        let i = at % bytes.len();
        bytes[i] ^= 0x01;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn signing_never_panics_on_any_input(
        method in ".{0,8}", path in ".{0,64}",
        query in proptest::collection::vec((".{0,12}", ".{0,12}"), 0..6),
        headers in proptest::collection::vec((".{0,12}", ".{0,24}"), 0..6),
        body in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let input = SignInput { method: &method, path: &path, query: &query, headers: &headers, body: &body };
        let auth = authorize("ak", b"sk", &input);
        prop_assert!(verify(b"sk", &auth, &input));
        let _ = parse_query(&path);
        let _ = Authorization::parse(&path);
        let _ = parse_sdk_date(&path);
    }

    #[test]
    fn a_flipped_byte_in_any_signed_part_changes_the_signature(
        path in "/[a-z]{1,12}/[a-zA-Z0-9]{1,12}",
        key in "[a-zA-Z]{1,8}", value in "[a-zA-Z0-9 ]{1,12}",
        header in "[a-z0-9 ]{1,24}",
        body in proptest::collection::vec(any::<u8>(), 1..64),
        part in 0usize..7, at in any::<usize>(),
    ) {
        let headers = vec![
            ("X-Sdk-Date".to_string(), "20240101T000000Z".to_string()),
            ("x-custom".to_string(), header.clone()),
        ];
        let query = vec![(key.clone(), value.clone())];
        let input = SignInput { method: "POST", path: &path, query: &query, headers: &headers, body: &body };
        let original = signature(b"sk", &input);

        let (mut m, mut p, mut k, mut v, mut h, mut b) =
            (b"POST".to_vec(), path.clone().into_bytes(), key.into_bytes(), value.into_bytes(),
             header.into_bytes(), body.clone());
        let mut date = b"20240101T000000Z".to_vec();
        match part {
            0 => flip(&mut m, at),
            1 => flip(&mut p, at),
            2 => flip(&mut k, at),
            3 => flip(&mut v, at),
            4 => flip(&mut h, at),
            5 => flip(&mut date, at),
            _ => flip(&mut b, at),
        }
        let s = |bytes: Vec<u8>| String::from_utf8_lossy(&bytes).into_owned();
        let headers = vec![("X-Sdk-Date".to_string(), s(date)), ("x-custom".to_string(), s(h))];
        let query = vec![(s(k), s(v))];
        let (m, p) = (s(m), s(p));
        let changed = SignInput { method: &m, path: &p, query: &query, headers: &headers, body: &b };
        prop_assert_ne!(signature(b"sk", &changed), original);
    }

    #[test]
    fn a_flipped_byte_in_a_usage_body_changes_its_signature(
        body in proptest::collection::vec(any::<u8>(), 1..128), at in any::<usize>(), part in 0usize..3,
    ) {
        let original = usage_signature(b"key", "1700000000000", "nonce", &body);
        let (mut ts, mut nonce, mut b) = (b"1700000000000".to_vec(), b"nonce".to_vec(), body.clone());
        match part {
            0 => flip(&mut ts, at),
            1 => flip(&mut nonce, at),
            _ => flip(&mut b, at),
        }
        let changed = usage_signature(
            b"key", &String::from_utf8_lossy(&ts), &String::from_utf8_lossy(&nonce), &b);
        prop_assert_ne!(changed, original);
    }
}
