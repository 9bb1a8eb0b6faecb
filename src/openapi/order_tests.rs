//! The captured order/query answer (`koogallery-openapi.md` section 3) and hostile variations of it.

use super::*;
use serde_json::json;

/// The capture, ids as printed there.
const CAPTURED: &str = r#"{"resultCode":"MKT.0000","resultMsg":"Success",
 "orderInfo":{"orderId":"MOCKPERIODYEARNEW","orderType":"NEW","createTime":"20241121090846",
  "orderLine":[{"orderLineId":"MOCKPERIODYEARNEW-000001","chargingMode":"PERIOD","periodType":"year","periodNumber":1,
    "expireTime":"20251121235959",
    "productInfo":[{"productId":"OFFI846204237451911168","skuCode":"0a4d1578-…","linearValue":50,"productName":"MOCK…"}],
    "extendParams":[{"name":"emailDomainName","value":"test.xxxx.com"},{"name":"ip","value":"127.0.0.1"}],
    "currency":"100","currencyAfterDiscount":"100"}],
  "buyerInfo":{"mobilePhone":"18688888888","email":null,"customerId":"459b…","customerName":"mock_user_01",
    "customerRealName":"测试用户1","customerType":0,"userId":null,"userName":null},
  "extendParams":[]}}"#;

#[test]
fn the_captured_answer_normalises_to_the_documented_order() {
    let order = parse_answer(CAPTURED.as_bytes(), Some("MOCKPERIODYEARNEW-000001")).unwrap();
    assert_eq!(
        serde_json::to_value(&order).unwrap(),
        json!({
            "orderId": "MOCKPERIODYEARNEW",
            "orderType": "NEW",
            "createTime": "2024-11-21T09:08:46Z",
            "lines": [{
                "orderLineId": "MOCKPERIODYEARNEW-000001",
                "chargingMode": "PERIOD",
                "periodType": "year",
                "periodNumber": 1,
                "expireTime": "2025-11-21T23:59:59Z",
                "products": [{"productId": "OFFI846204237451911168", "skuCode": "0a4d1578-…",
                    "linearValue": 50, "productName": "MOCK…"}],
                "extendParams": [{"name": "emailDomainName", "value": "test.xxxx.com"},
                    {"name": "ip", "value": "127.0.0.1"}],
                "currency": 100,
                "currencyAfterDiscount": 100
            }],
            "buyer": {"customerId": "459b…", "customerName": "mock_user_01", "customerRealName": "测试用户1",
                "customerType": 0, "mobilePhone": "18688888888"}
        })
    );
}

#[test]
fn debug_output_never_shows_buyer_personal_data() {
    let order = parse_answer(CAPTURED.as_bytes(), None).unwrap();
    let printed = format!("{order:?}");
    assert!(
        !printed.contains("18688888888") && !printed.contains("测试用户1"),
        "{printed}"
    );
}

#[test]
fn mkt_errors_and_missing_orders_are_reported() {
    let cases: [(&str, AnswerError); 6] = [
        (
            r#"{"resultCode":"MKT.0101","resultMsg":"bad"}"#,
            AnswerError::Mkt("MKT.0101".into()),
        ),
        (
            r#"{"resultCode":"MKT.4242"}"#,
            AnswerError::Mkt("other".into()),
        ),
        (r#"{"resultCode":"MKT.0000"}"#, AnswerError::NoOrder),
        (
            r#"{"resultCode":"MKT.0000","orderInfo":{"orderType":"NEW"}}"#,
            AnswerError::NoOrder,
        ),
        (r#"{"error_code":"APIGW.0301"}"#, AnswerError::NotJson),
        ("not json", AnswerError::NotJson),
    ];
    for (body, expected) in cases {
        assert_eq!(parse_answer(body.as_bytes(), None), Err(expected), "{body}");
    }
    assert_eq!(
        parse_answer(CAPTURED.as_bytes(), Some("MOCKPERIODYEARNEW-000002")),
        Err(AnswerError::LineNotFound)
    );
}

#[test]
fn unexpected_field_types_are_left_out_and_charging_modes_use_the_contract_names() {
    let body = json!({"resultCode":"MKT.0000","orderInfo":{"orderId":"o","createTime":"yesterday","orderType":7,
        "orderLine":[{"orderLineId":"o-1","chargingMode":"ON_DEMAND_PKG","periodNumber":"x","currency":"1e9",
            "currencyAfterDiscount":"12.5","productInfo":[{"linearValue":"20"}, 5]}, {"chargingMode":"PERIOD"}],
        "buyerInfo":{"customerType":"individual","email":""}}});
    let order = parse_answer(body.to_string().as_bytes(), None).unwrap();
    assert_eq!(
        serde_json::to_value(&order).unwrap(),
        json!({"orderId":"o","lines":[{"orderLineId":"o-1","chargingMode":"PACKAGE","products":[{"linearValue":20}],
            "currencyAfterDiscount":12.5}],"buyer":{}})
    );
}

#[test]
fn codes_outside_the_documented_set_become_other() {
    assert_eq!(bounded_code("MKT.0154"), "MKT.0154");
    assert_eq!(bounded_code("APIGW.0301"), "APIGW.0301");
    assert_eq!(bounded_code("MKT.0154\n"), "other");
    assert_eq!(bounded_code(&"x".repeat(1000)), "other");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    /// KooGallery's answer is outside koogate's control: no bytes make the parser panic.
    #[test]
    fn any_answer_parses_or_fails_without_panicking(
        bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
        at in proptest::prelude::any::<usize>(), byte in proptest::prelude::any::<u8>(),
    ) {
        let _ = parse_answer(&bytes, None);
        let mut captured = CAPTURED.as_bytes().to_vec();
        let i = at % captured.len();
        captured[i] = byte;
        let _ = parse_answer(&captured, Some("MOCKPERIODYEARNEW-000001"));
    }
}
