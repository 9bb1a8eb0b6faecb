//! KooGallery as it really behaves: bodies signed over their canonical JSON form, V1 `+` meaning a space, masked
//! buyer fields; and what is refused on the way (repeated JSON keys).

use crate::support::client::sign_v2;
use crate::support::*;
use serde_json::json;

/// As sent: another key order, whitespace and a null member; what Huawei's Spring Boot sample signs is `CANONICAL`.
const SENT: &str = r#"{ "orderLineId":"CS-INTEROP-1-000001", "testFlag":"1", "orderId":"CS-INTEROP-1", "activity":"newInstance", "businessId":"b-1", "expireTime":null }"#;
const CANONICAL: &str = r#"{"activity":"newInstance","businessId":"b-1","orderId":"CS-INTEROP-1","orderLineId":"CS-INTEROP-1-000001","testFlag":"1"}"#;

fn signed_over(signed: &str, sent: &str) -> Call {
    let mut call = Call::new(sent);
    let sig = sign_v2(KEY, &call.nonce, &call.timestamp, signed.as_bytes());
    call.query = Some(format!(
        "signature={sig}&timestamp={}&nonce={}",
        call.timestamp, call.nonce
    ));
    call
}

#[tokio::test]
async fn a_body_signed_over_its_canonical_form_is_accepted_and_counted() {
    let upstream = Upstream::start(Behaviour::App).await;
    let gateway = TestGateway::start(&upstream).await;
    gateway
        .client()
        .send(&signed_over(CANONICAL, SENT))
        .await
        .assert_code("000000");
    assert_eq!(upstream.count(), 1);
    assert_eq!(upstream.last().json()["orderId"], "CS-INTEROP-1");
    gateway
        .client()
        .send(&Call::new(SENT))
        .await
        .assert_code("000000");
    let metrics = gateway.metrics().await;
    for form in ["raw", "canonical"] {
        let series = format!("koogate_v2_signature_forms_total{{form=\"{form}\"}}");
        assert_eq!(metric(&metrics, &series), 1.0, "{series}\n{metrics}");
    }
    // A changed value matches neither form.
    let forged = signed_over(CANONICAL, &SENT.replace("b-1", "b-2"));
    gateway.client().send(&forged).await.assert_code("000001");
    // The raw-signed repeat of the same order was answered from its idempotency record.
    assert_eq!(upstream.count(), 1);
}

#[tokio::test]
async fn a_body_repeating_a_key_is_refused_signed_before_any_check() {
    let upstream = Upstream::start(Behaviour::App).await;
    let gateway = TestGateway::start(&upstream).await;
    let body = r#"{"activity":"newInstance","businessId":"b","orderId":"CS-A","orderLineId":"CS-A-1","orderId":"CS-B"}"#;
    // Correctly signed over the raw bytes: still refused, and nothing reaches the app.
    let reply = gateway.client().send(&Call::new(body)).await;
    reply.assert_code("000002");
    assert_eq!(upstream.count(), 0);
    let metrics = gateway.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "koogate_rejections_total{reason=\"duplicate_json_key\"}"
        ),
        1.0
    );
}

#[tokio::test]
async fn a_v1_name_sent_with_plus_for_space_verifies_and_reaches_the_app_with_the_space() {
    let upstream = Upstream::start(Behaviour::App).await;
    let gateway = TestGateway::start_v1(&upstream).await;
    // Signed over `John Smith`, sent as a form encoder does: `John+Smith` (Call::v1 leaves `+` raw).
    let mut call = Call::v1(&[
        ("activity", "newInstance"),
        ("orderId", "CS-V1-PLUS"),
        ("customerName", "John Smith"),
    ]);
    let query = call
        .query
        .take()
        .unwrap()
        .replace("John%20Smith", "John+Smith");
    assert!(query.contains("customerName=John+Smith"), "{query}");
    call.query = Some(query);
    gateway.client().send(&call).await.assert_code("000000");
    assert_eq!(
        upstream.last().json()["buyer"]["customerName"],
        "John Smith"
    );
}

#[tokio::test]
async fn masked_buyer_fields_of_the_eu_variant_pass_only_with_buyer_fields_auto() {
    let body = json!({"activity":"newInstance","testFlag":"1",
        "buyerInfo":{"customerId":"c-1","mobilePhone":"138****1234"},
        "orderInfo":[{"businessId":"b-eu","orderId":"CS-EU-MASKED","orderLineId":"CS-EU-MASKED-1"}]});
    let upstream = Upstream::start(Behaviour::App).await;
    let strict = TestGateway::start(&upstream).await;
    strict
        .client()
        .send(&Call::json(&body))
        .await
        .assert_code("000002");
    assert_eq!(upstream.count(), 0);

    let mut options = Options::new(&upstream);
    options.key_toml = "buyer_fields = \"auto\"".into();
    let auto = TestGateway::start_with(options).await;
    auto.client()
        .send(&Call::json(&body))
        .await
        .assert_code("000000");
    let buyer = upstream.last().json()["buyer"].clone();
    assert_eq!(
        buyer,
        json!({"customerId":"c-1","mobilePhone":"138****1234","plainFields":["mobilePhone"]})
    );
}
