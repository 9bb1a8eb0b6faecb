//! Buyer fields: `buyer_fields` modes (encrypted / plain / auto), bounds and cleaning; exact large numbers.

use super::*;
use crate::protocol::fields::{FieldCipher, InboundFields};
use crate::protocol::keys::{AccessKey, AccessKeys};
use crate::protocol::v2::{signed_query, verify, SignedQuery};
use bytes::Bytes;
use serde_json::json;
use std::time::Duration;

const KEY: &str = "test-access-key-0001";

fn field_key(inbound: InboundFields) -> FieldKey {
    FieldKey::derive(KEY.as_bytes(), FieldCipher::Aes256Cbc).with_inbound(inbound)
}

fn v2(body: &str, inbound: InboundFields) -> Result<UpstreamRequest, ParamError> {
    let keys = AccessKeys::new(vec![AccessKey::new("k", KEY)]).unwrap();
    let q = SignedQuery::parse(&signed_query(KEY.as_bytes(), "n1", 1000, body.as_bytes())).unwrap();
    let body = Bytes::copy_from_slice(body.as_bytes());
    let verified = verify(&keys, q, body, 1000, Duration::from_secs(60)).unwrap();
    parse(&verified)?.normalise("req-1".into(), &field_key(inbound))
}

/// The EU nested `newInstance` with these `buyerInfo` fields.
fn nested(buyer: Value) -> String {
    json!({"activity":"newInstance","buyerInfo":buyer,"orderInfo":[{"orderId":"CS-EU-1"}]})
        .to_string()
}

fn buyer_of(r: &UpstreamRequest) -> Value {
    serde_json::to_value(r).unwrap()["buyer"].clone()
}

#[test]
fn masked_buyer_fields_pass_as_plain_only_when_the_key_says_so() {
    let body =
        nested(json!({"customerId":"c1","mobilePhone":"138****1234","email":"e***@example.com"}));
    let err = v2(&body, InboundFields::Encrypted).unwrap_err();
    assert!(
        matches!(
            err,
            ParamError::Undecryptable {
                field: "mobilePhone",
                ..
            }
        ),
        "{err:?}"
    );
    for mode in [InboundFields::Plain, InboundFields::Auto] {
        let r = v2(&body, mode).unwrap();
        assert_eq!(
            buyer_of(&r),
            json!({"customerId":"c1","mobilePhone":"138****1234","email":"e***@example.com",
                "plainFields":["mobilePhone","email"]}),
            "{mode:?}"
        );
    }
}

#[test]
fn auto_decrypts_well_formed_ciphertext_and_refuses_it_when_it_does_not_decrypt() {
    let key = field_key(InboundFields::Auto);
    let body = nested(json!({"mobilePhone":key.encrypt("13800001234"),"email":"a@example.com"}));
    let r = v2(&body, InboundFields::Auto).unwrap();
    assert_eq!(
        buyer_of(&r),
        json!({"mobilePhone":"13800001234","email":"a@example.com","plainFields":["email"]})
    );
    // Well-formed ciphertext under another key is not taken for plain text.
    let other = FieldKey::derive(b"another-key", FieldCipher::Aes256Cbc).encrypt("13800001234");
    let body = nested(json!({ "mobilePhone": other }));
    assert!(matches!(
        v2(&body, InboundFields::Auto).unwrap_err(),
        ParamError::Undecryptable {
            field: "mobilePhone",
            ..
        }
    ));
    // `plain` never decrypts: the ciphertext reaches the app as sent, marked as plain.
    let body = nested(json!({ "mobilePhone": other }));
    let r = v2(&body, InboundFields::Plain).unwrap();
    assert_eq!(buyer_of(&r)["mobilePhone"], other.as_str());
}

#[test]
fn decrypted_buyer_fields_are_bounded_and_clean() {
    let key = field_key(InboundFields::Encrypted);
    let refused = |plain: &str| {
        let body = nested(json!({ "mobilePhone": key.encrypt(plain) }));
        v2(&body, InboundFields::Encrypted).unwrap_err()
    };
    for bad in [
        "1".repeat(257),
        "138\r\n0000".into(),
        "138\u{0}1".into(),
        "\u{1b}[31m".into(),
        "a\u{85}".into(),
    ] {
        assert_eq!(
            refused(&bad),
            ParamError::InvalidField("mobilePhone"),
            "{bad:?}"
        );
    }
    let at_limit = "1".repeat(256);
    let body =
        nested(json!({ "mobilePhone": key.encrypt(&at_limit), "email": key.encrypt("   ") }));
    let r = v2(&body, InboundFields::Encrypted).unwrap();
    assert_eq!(
        buyer_of(&r),
        json!({ "mobilePhone": at_limit }),
        "blank email is absent"
    );
    let body = nested(json!({ "mobilePhone": key.encrypt(" \t ") }));
    assert!(v2(&body, InboundFields::Encrypted).unwrap().buyer.is_none());
    // The same rules for the plain buyer fields.
    let body = nested(json!({ "customerName": "Erika\u{7}" }));
    assert_eq!(
        v2(&body, InboundFields::Encrypted).unwrap_err(),
        ParamError::InvalidField("customerName")
    );
    let body = nested(json!({ "mobilePhone": "138\n1", "customerId": "c" }));
    assert_eq!(
        v2(&body, InboundFields::Plain).unwrap_err(),
        ParamError::InvalidField("mobilePhone")
    );
}

#[test]
fn very_large_numbers_reach_the_app_exactly() {
    let digits = "123456789012345678901234567890";
    let body = format!(
        r#"{{"activity":"orderNotify","orderId":"o","orderLineId":"l","orderAmount":{digits},"price":0.1000000000000000055511151231257827}}"#
    );
    let r = v2(&body, InboundFields::Encrypted).unwrap();
    let sent = serde_json::to_string(&r).unwrap();
    assert!(
        sent.contains(&format!(r#""orderAmount":{digits}"#)),
        "{sent}"
    );
    assert!(
        sent.contains(r#""price":0.1000000000000000055511151231257827"#),
        "{sent}"
    );
    // A decimal string too (V1 sends every value as text).
    let body = format!(
        r#"{{"activity":"orderNotify","orderId":"o","orderLineId":"l","orderAmount":"{digits}.5"}}"#
    );
    let sent = serde_json::to_string(&v2(&body, InboundFields::Encrypted).unwrap()).unwrap();
    assert!(
        sent.contains(&format!(r#""orderAmount":{digits}.5"#)),
        "{sent}"
    );
}
