//! Normalisation tests for V2 flat, V2 EU nested and V1 calls.

use super::*;
use crate::protocol::fields::FieldCipher;
use crate::protocol::keys::{AccessKey, AccessKeys};
use crate::protocol::v1::{self, V1Query};
use crate::protocol::v2::{signed_query, verify, SignedQuery};
use base64::{engine::general_purpose::STANDARD, Engine};
use bytes::Bytes;
use serde_json::json;
use std::time::Duration;

const KEY: &str = "test-access-key-0001";

fn keys() -> AccessKeys {
    AccessKeys::new(vec![AccessKey::new("k", KEY)]).unwrap()
}

fn field_key() -> FieldKey {
    FieldKey::derive(KEY.as_bytes(), FieldCipher::Aes256Cbc)
}

fn v2(body: &str) -> Result<UpstreamRequest, ParamError> {
    let q = SignedQuery::parse(&signed_query(KEY.as_bytes(), "n1", 1000, body.as_bytes())).unwrap();
    let verified = verify(
        &keys(),
        q,
        Bytes::copy_from_slice(body.as_bytes()),
        1000,
        Duration::from_secs(60),
    )
    .unwrap();
    parse(&verified)?.normalise("req-1".into(), &field_key())
}

/// Signs decoded V1 parameters the way KooGallery does and normalises the call.
fn v1(params: &[(&str, &str)]) -> Result<UpstreamRequest, ParamError> {
    let ts = "20250101000000000";
    let mut sorted: Vec<(String, String)> = params
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .chain([("timeStamp".into(), ts.into())])
        .collect();
    sorted.sort();
    let token = STANDARD.encode(v1::auth_token(
        KEY.as_bytes(),
        ts,
        &v1::canonical_message(&sorted),
    ));
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let query: Vec<String> = sorted
        .iter()
        .map(|(n, v)| format!("{n}={}", enc(v)))
        .chain([format!("authToken={}", enc(&token))])
        .collect();
    let q = V1Query::parse(&query.join("&")).unwrap();
    let now = v1::parse_time_stamp(ts).unwrap();
    let verified = v1::verify(&keys(), q, now, Duration::from_secs(86_400)).unwrap();
    parse(&verified)?.normalise("req-1".into(), &field_key())
}

fn json_of(r: &UpstreamRequest) -> Value {
    serde_json::to_value(r).unwrap()
}

#[test]
fn v2_new_instance_is_normalised_with_raw_fields_kept() {
    let r = v2(r#"{"activity":"newInstance","businessId":"b","orderId":"o","orderLineId":"o-1","testFlag":"1","extra":5}"#).unwrap();
    let v = json_of(&r);
    assert_eq!(v["activity"], "newInstance");
    assert_eq!(v["generation"], "v2");
    assert_eq!(v["testFlag"], true);
    assert_eq!(v["orderLineId"], "o-1");
    assert_eq!(v["raw"]["extra"], 5);
    assert!(v.get("instanceId").is_none() && v.get("buyer").is_none() && v.get("orders").is_none());
}

#[test]
fn query_instance_ids_are_split() {
    let r = v2(r#"{"activity":"queryInstance","instanceId":"a,b , c"}"#).unwrap();
    assert_eq!(
        r.instance_ids,
        Some(vec!["a".into(), "b".into(), "c".into()])
    );
    assert!(!r.test_flag);
}

#[test]
fn query_instance_accepts_a_hundred_ids_and_no_more() {
    let ids: Vec<String> = (0..100)
        .map(|i| format!("instance-{i:04}-0123456789"))
        .collect();
    let r =
        v2(&json!({"activity":"queryInstance","instanceId":ids.join(",")}).to_string()).unwrap();
    assert_eq!(r.instance_ids.map(|v| v.len()), Some(100));
    let too_many = format!("{},x", ids.join(","));
    assert_eq!(
        v2(&json!({"activity":"queryInstance","instanceId":too_many}).to_string()).unwrap_err(),
        ParamError::InvalidField("instanceId")
    );
}

#[test]
fn buyer_fields_are_read_only_on_new_instance() {
    let body = json!({"activity":"refreshInstance","scene":"RENEWAL","orderId":"o","orderLineId":"l","instanceId":"i",
        "expireTime":"20250101000000","customerId":"c","email":"not-decryptable"});
    let r = v2(&body.to_string()).unwrap();
    assert!(r.buyer.is_none());
    assert_eq!(r.raw.get("email").unwrap(), "not-decryptable");
}

#[test]
fn refresh_expire_time_becomes_rfc3339() {
    let r = v2(r#"{"activity":"refreshInstance","scene":"RENEWAL","orderId":"o","orderLineId":"l","instanceId":"i","expireTime":"20250101000000"}"#).unwrap();
    assert_eq!(r.terms.expire_time.as_deref(), Some("2025-01-01T00:00:00Z"));
    assert_eq!(r.scene.as_deref(), Some("RENEWAL"));
}

#[test]
fn bad_v2_bodies_are_refused_with_the_right_reason() {
    let long_ids = vec!["x"; 101].join(",");
    let cases: Vec<(String, ParamError)> = vec![
        ("{".into(), ParamError::NotJson),
        ("[1,2]".into(), ParamError::NotObject),
        ("\"s\"".into(), ParamError::NotObject),
        ("{}".into(), ParamError::MissingActivity),
        (r#"{"activity":"mineBitcoin"}"#.into(), ParamError::UnknownActivity),
        (r#"{"activity":"expireInstance","instanceId":"i"}"#.into(), ParamError::UnknownActivity),
        (r#"{"activity":7}"#.into(), ParamError::UnknownActivity),
        (r#"{"activity":"newInstance","orderId":"o","orderLineId":"l"}"#.into(), ParamError::MissingField("businessId")),
        (r#"{"activity":"newInstance","businessId":" ","orderId":"o","orderLineId":"l"}"#.into(), ParamError::MissingField("businessId")),
        (r#"{"activity":"newInstance","businessId":1,"orderId":"o","orderLineId":"l"}"#.into(), ParamError::InvalidField("businessId")),
        (r#"{"activity":"updateInstanceStatus","instanceId":"i","status":"DELETE"}"#.into(), ParamError::InvalidField("status")),
        (r#"{"activity":"refreshInstance","scene":"RENEWAL","orderId":"o","orderLineId":"l","instanceId":"i","expireTime":"2025"}"#.into(), ParamError::InvalidField("expireTime")),
        (format!(r#"{{"activity":"queryInstance","instanceId":"{long_ids}"}}"#), ParamError::InvalidField("instanceId")),
        (r#"{"activity":"orderNotify","orderId":"o","orderLineId":"l","testFlag":"yes"}"#.into(), ParamError::InvalidField("testFlag")),
        (r#"{"activity":"newInstance","orderInfo":[]}"#.into(), ParamError::MissingField("orderInfo")),
        (r#"{"activity":"newInstance","orderInfo":{}}"#.into(), ParamError::InvalidField("orderInfo")),
        (r#"{"activity":"newInstance","orderInfo":[{"businessId":"b"}]}"#.into(), ParamError::MissingField("orderId")),
    ];
    for (body, expected) in cases {
        assert_eq!(v2(&body).unwrap_err(), expected, "{body}");
    }
}

#[test]
fn an_undocumented_unreadable_expire_time_is_left_in_raw() {
    let r = v2(r#"{"activity":"orderNotify","orderId":"o","orderLineId":"l","expireTime":"soon"}"#)
        .unwrap();
    assert_eq!(r.terms.expire_time, None);
    assert_eq!(r.raw.get("expireTime").unwrap(), "soon");
}

#[test]
fn every_v2_activity_accepts_its_documented_minimum() {
    let bodies = [
        json!({"activity":"newInstance","businessId":"b","orderId":"o","orderLineId":"l"}),
        json!({"activity":"queryInstance","instanceId":"i"}),
        json!({"activity":"refreshInstance","scene":"RENEWAL","orderId":"o","orderLineId":"l","instanceId":"i","expireTime":"20250101000000000"}),
        json!({"activity":"updateInstanceStatus","instanceId":"i","status":"UNFREEZE"}),
        json!({"activity":"releaseInstance","instanceId":"i"}),
        json!({"activity":"upgradeInstance","instanceId":"i","orderId":"o","orderLineId":"l"}),
        json!({"activity":"orderNotify","orderId":"o","orderLineId":"l"}),
    ];
    for body in bodies {
        let r = v2(&body.to_string()).unwrap();
        assert_eq!(r.activity.name(), body["activity"]);
    }
}

fn encrypt(plain: &str) -> String {
    field_key().encrypt(plain)
}

#[test]
fn eu_nested_new_instance_is_normalised_and_buyer_fields_decrypted() {
    let body = json!({"activity":"newInstance",
        "buyerInfo":{"customerId":"c1","customerName":"Erika","userId":"u1","userName":"erika","mobilePhone":encrypt("+4915112345678"),"email":encrypt("erika@example.de")},
        "orderInfo":[{"businessId":"b1","orderId":"CS-EU-1","trialFlag":"0","orderAmount":12.78,"chargingMode":"PERIOD",
            "periodType":"month","periodNumber":5,"provisionType":1,
            "productInfo":[{"skuCode":"sku-1","productId":"p-1","linearValue":20}],
            "createTime":"20250101000000","expireTime":"20250601000000","extendParams":[{"name":"region","value":"eu-west-0"},{"name":"seats","value":5}]}],
        "testFlag":"1"});
    let r = v2(&body.to_string()).unwrap();
    let v = json_of(&r);
    assert_eq!(v["orderId"], "CS-EU-1");
    assert_eq!(v["businessId"], "b1");
    assert_eq!(v["skuCode"], "sku-1");
    assert_eq!(v["productId"], "p-1");
    assert_eq!(v["chargingMode"], "PERIOD");
    assert_eq!(v["orderAmount"], 12.78);
    assert_eq!(v["periodNumber"], 5);
    assert_eq!(v["trialFlag"], false);
    assert_eq!(v["createTime"], "2025-01-01T00:00:00Z");
    assert_eq!(
        v["buyer"],
        json!({"customerId":"c1","customerName":"Erika","userId":"u1","userName":"erika","mobilePhone":"+4915112345678","email":"erika@example.de"})
    );
    assert_eq!(
        v["extendParams"],
        json!([{"name":"region","value":"eu-west-0"},{"name":"seats","value":"5"}])
    );
    assert_eq!(
        v["orders"][0]["products"],
        json!([{"skuCode":"sku-1","productId":"p-1","linearValue":20}])
    );
    assert_eq!(v["orders"][0]["expireTime"], "2025-06-01T00:00:00Z");
    assert_eq!(
        v["raw"], body,
        "raw keeps the ciphertexts, not the plaintexts"
    );
    assert!(
        !format!("{r:?}").contains("erika@example.de"),
        "Debug never shows decrypted data"
    );
}

#[test]
fn undecryptable_buyer_fields_are_refused() {
    for (field, value) in [
        ("email", "short"),
        ("email", "AbCdEf0123456789!!!"),
        (
            "mobilePhone",
            "AbCdEf0123456789AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        ),
    ] {
        let mut buyer = json!({"customerId":"c"});
        buyer[field] = json!(value);
        let body =
            json!({"activity":"newInstance","buyerInfo":buyer,"orderInfo":[{"orderId":"o"}]});
        assert!(
            matches!(v2(&body.to_string()).unwrap_err(), ParamError::Undecryptable { field: f, .. } if f == field),
            "{value}"
        );
    }
}

#[test]
fn v1_new_instance_maps_buyer_terms_and_extend_params() {
    let extend = STANDARD.encode(r#"[{"name":"plan","value":"gold"}]"#);
    let email = encrypt("buyer@example.com");
    let r = v1(&[
        ("activity", "newInstance"),
        ("orderId", "CS1906666666ABCDE"),
        ("businessId", "b"),
        ("customerId", "c"),
        ("customerName", "飞蝶测试1"),
        ("userName", "fdtest"),
        ("email", &email),
        ("chargingMode", "1"),
        ("periodType", "year"),
        ("periodNumber", "1"),
        ("orderAmount", "100"),
        ("trialFlag", "0"),
        ("expireTime", "20210916133124"),
        ("amount", "3"),
        ("saasExtendParams", &extend),
        ("testFlag", "1"),
    ])
    .unwrap();
    let v = json_of(&r);
    assert_eq!(v["generation"], "v1");
    assert_eq!(v["testFlag"], true);
    assert_eq!(v["chargingMode"], "PERIOD");
    assert_eq!(v["periodNumber"], 1);
    assert_eq!(v["orderAmount"], 100);
    assert_eq!(v["amount"], 3);
    assert_eq!(v["expireTime"], "2021-09-16T13:31:24Z");
    assert_eq!(v["buyer"]["email"], "buyer@example.com");
    assert_eq!(v["buyer"]["customerName"], "飞蝶测试1");
    assert_eq!(v["extendParams"], json!([{"name":"plan","value":"gold"}]));
    assert_eq!(v["raw"]["email"], email.as_str());
    assert!(v["raw"].get("authToken").is_none());
}

#[test]
fn v1_activities_map_onto_canonical_ones() {
    let r = v1(&[
        ("activity", "upgrade"),
        ("instanceId", "i"),
        ("orderId", "o2"),
        ("skuCode", "s"),
    ])
    .unwrap();
    assert_eq!(r.activity, Activity::UpgradeInstance);
    let r = v1(&[
        ("activity", "instanceStatus"),
        ("instanceId", "i"),
        ("instanceStatus", "NORMAL"),
    ])
    .unwrap();
    assert_eq!(
        (r.activity, r.status.as_deref()),
        (Activity::UpdateInstanceStatus, Some("UNFREEZE"))
    );
    let r = v1(&[
        ("activity", "instanceStatus"),
        ("instanceId", "i"),
        ("instanceStatus", "FREEZE"),
    ])
    .unwrap();
    assert_eq!(r.status.as_deref(), Some("FREEZE"));
    let r = v1(&[
        ("activity", "refreshInstance"),
        ("instanceId", "i"),
        ("trialToFormal", "1"),
    ])
    .unwrap();
    assert_eq!(
        (r.scene.as_deref(), r.trial_to_formal),
        (Some("TRIAL_TO_FORMAL"), Some(true))
    );
    let r = v1(&[
        ("activity", "expireInstance"),
        ("instanceId", "i"),
        ("orderId", "o"),
    ])
    .unwrap();
    assert_eq!(r.activity, Activity::ExpireInstance);
    let r = v1(&[("activity", "queryInstance"), ("instanceId", "a,b")]).unwrap();
    assert_eq!(r.instance_ids, Some(vec!["a".into(), "b".into()]));
}

#[test]
fn v1_debugging_calls_may_omit_documented_fields() {
    assert!(v1(&[
        ("activity", "newInstance"),
        ("orderId", "o"),
        ("testFlag", "1")
    ])
    .is_ok());
}

#[test]
fn bad_v1_calls_are_refused() {
    let cases: Vec<(Vec<(&str, &str)>, ParamError)> = vec![
        (
            vec![("activity", "orderNotify"), ("orderId", "o")],
            ParamError::UnknownActivity,
        ),
        (
            vec![("activity", "upgradeInstance"), ("instanceId", "i")],
            ParamError::UnknownActivity,
        ),
        (vec![("orderId", "o")], ParamError::MissingActivity),
        (
            vec![("activity", "newInstance")],
            ParamError::MissingField("orderId"),
        ),
        (
            vec![("activity", "releaseInstance")],
            ParamError::MissingField("instanceId"),
        ),
        (
            vec![
                ("activity", "instanceStatus"),
                ("instanceId", "i"),
                ("instanceStatus", "UNFREEZE"),
            ],
            ParamError::InvalidField("instanceStatus"),
        ),
        (
            vec![
                ("activity", "newInstance"),
                ("orderId", "o"),
                ("saasExtendParams", "%%%"),
            ],
            ParamError::InvalidField("saasExtendParams"),
        ),
        (
            vec![
                ("activity", "newInstance"),
                ("orderId", "o"),
                ("periodNumber", "one"),
            ],
            ParamError::InvalidField("periodNumber"),
        ),
    ];
    for (params, expected) in cases {
        assert_eq!(v1(&params).unwrap_err(), expected, "{params:?}");
    }
    let not_a_list = STANDARD.encode(r#"{"name":"x"}"#);
    assert_eq!(
        v1(&[
            ("activity", "newInstance"),
            ("orderId", "o"),
            ("saasExtendParams", &not_a_list)
        ])
        .unwrap_err(),
        ParamError::InvalidField("saasExtendParams")
    );
    assert!(matches!(
        v1(&[
            ("activity", "newInstance"),
            ("orderId", "o"),
            ("mobilePhone", "AbCdEf0123456789QRozfB7o+81cfg464xP34Q==")
        ])
        .unwrap_err(),
        ParamError::Undecryptable {
            field: "mobilePhone",
            ..
        }
    ));
}
