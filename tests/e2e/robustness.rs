//! Parsers never panic, whatever the input (property tests standing in for fuzz targets: cargo-fuzz needs a
//! nightly toolchain this project does not use). Each runs the same parsing code the gateway runs.

use koogate::config::Config;
use koogate::protocol::fields::{FieldCipher, FieldKey};
use koogate::protocol::keys::{AccessKey, AccessKeys};
use koogate::protocol::v1::V1Query;
use koogate::protocol::v2::{self, SignedQuery};
use koogate::protocol::{body_sign, request, response};
use proptest::prelude::*;
use std::time::Duration;

fn keys() -> AccessKeys {
    AccessKeys::new(vec![AccessKey::new("k", "key")]).unwrap()
}

/// JSON-ish text: structural characters and KooGallery field names mixed with arbitrary text.
fn jsonish() -> impl Strategy<Value = String> {
    let atoms = prop_oneof![
        Just("{".to_owned()),
        Just("}".to_owned()),
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just(",".to_owned()),
        Just(":".to_owned()),
        Just("\"activity\"".to_owned()),
        Just("\"newInstance\"".to_owned()),
        Just("\"orderInfo\"".to_owned()),
        Just("\"buyerInfo\"".to_owned()),
        Just("\"instanceId\"".to_owned()),
        Just("\"expireTime\"".to_owned()),
        Just("\"email\"".to_owned()),
        Just("null".to_owned()),
        Just("1e999".to_owned()),
        "\\PC{0,12}".prop_map(|s| format!("{s:?}")),
    ];
    proptest::collection::vec(atoms, 0..40).prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn query_parsers_never_panic(query in "[a-zA-Z=&%+0-9/ ._-]{0,200}") {
        let _ = SignedQuery::parse(&query);
        if let Ok(q) = V1Query::parse(&query) {
            let _ = koogate::protocol::v1::verify(&keys(), q, 0, Duration::from_secs(60));
        }
    }

    #[test]
    fn body_sign_headers_never_panic(header in "\\PC{0,120}") {
        let _ = body_sign::parse_header(&header);
    }

    #[test]
    fn verified_bodies_of_any_shape_never_panic_the_normaliser(body in jsonish()) {
        let q = SignedQuery::parse(&v2::signed_query(b"key", "n", 1_000, body.as_bytes())).unwrap();
        let verified = match v2::verify(&keys(), q, bytes::Bytes::from(body), 1_000, Duration::from_secs(60)) {
            Ok(verified) => verified,
            // A body repeating a key is refused before anything reads it (the generator makes some).
            Err(v2::AuthError::DuplicateJsonKey(_)) => return Ok(()),
            Err(e) => panic!("a correctly signed body was refused: {e:?}"),
        };
        if let Ok(call) = request::parse(&verified) {
            let _ = call.normalise("r".into(), &FieldKey::derive(b"key", FieldCipher::Aes256Cbc));
        }
    }

    #[test]
    fn upstream_answers_of_any_shape_never_panic(body in jsonish()) {
        for activity in koogate::protocol::Activity::ALL {
            if let Ok(answer) = response::parse_answer(body.as_bytes()) {
                let key = FieldKey::derive(b"key", FieldCipher::Aes128Cbc);
                let _ = response::build_response(activity, koogate::protocol::Generation::V1, answer, Some(&key));
            }
        }
    }

    #[test]
    fn config_text_of_any_shape_never_panics(text in "[\\[\\]a-z_.=\"0-9 \n:/]{0,300}") {
        let _ = Config::from_toml(&text, std::path::Path::new("."), &|_: &str| None);
    }
}
