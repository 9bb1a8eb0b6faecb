//! V1 (legacy GET) calls end to end: verification, normalisation, encrypted answers, replay and freshness.

use crate::support::client::{now_ms, v1_time_stamp};
use crate::support::*;
use koogate::protocol::fields::{FieldCipher, FieldKey};
use serde_json::json;

fn key(cipher: FieldCipher) -> FieldKey {
    FieldKey::derive(KEY.as_bytes(), cipher)
}

#[tokio::test]
async fn every_v1_activity_reaches_the_upstream_under_its_canonical_name() {
    let upstream = Upstream::start(Behaviour::App).await;
    let gateway = TestGateway::start_v1(&upstream).await;
    let calls: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![
                ("activity", "newInstance"),
                ("orderId", "CS1906666666ABCDE"),
                ("testFlag", "1"),
            ],
            "newInstance",
        ),
        (
            vec![
                ("activity", "refreshInstance"),
                ("instanceId", "inst-1"),
                ("orderId", "o"),
                ("expireTime", "20300101000000"),
            ],
            "refreshInstance",
        ),
        (
            vec![
                ("activity", "expireInstance"),
                ("instanceId", "inst-1"),
                ("orderId", "o"),
            ],
            "expireInstance",
        ),
        (
            vec![
                ("activity", "releaseInstance"),
                ("instanceId", "inst-1"),
                ("orderId", "o"),
                ("orderAmount", "0"),
            ],
            "releaseInstance",
        ),
        (
            vec![
                ("activity", "upgrade"),
                ("instanceId", "inst-1"),
                ("orderId", "o2"),
                ("skuCode", "gold"),
            ],
            "upgradeInstance",
        ),
        (
            vec![
                ("activity", "instanceStatus"),
                ("instanceId", "inst-1"),
                ("instanceStatus", "NORMAL"),
            ],
            "updateInstanceStatus",
        ),
        (
            vec![
                ("activity", "queryInstance"),
                ("instanceId", "inst-1,inst-2"),
            ],
            "queryInstance",
        ),
    ];
    for (params, canonical) in calls {
        let reply = gateway.client().send(&Call::v1(&params)).await;
        reply.assert_code("000000");
        let seen = upstream.last().json();
        assert_eq!(seen["activity"], canonical);
        assert_eq!(seen["generation"], "v1");
        assert!(seen["raw"].get("authToken").is_none());
        assert_eq!(seen["raw"]["activity"], params[0].1);
    }
    assert_eq!(upstream.count(), 7);
}

#[tokio::test]
async fn v1_new_instance_decrypts_buyer_fields_and_encrypts_returned_credentials() {
    let upstream = Upstream::start(Behaviour::Answer(
        200,
        r#"{"instanceId":"v1-inst","appInfo":{"frontEndUrl":"https://app.example/","userName":"admin@example.com","password":"Passw0rd!Test"}}"#.into(),
    ))
    .await;
    let gateway = TestGateway::start_v1(&upstream).await;
    let k = key(FieldCipher::Aes256Cbc);
    let (phone, email) = (k.encrypt("+8613800138000"), k.encrypt("buyer@example.com"));
    let extend = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        r#"[{"name":"seats","value":"10"}]"#,
    );
    let call = Call::v1(&[
        ("activity", "newInstance"),
        ("orderId", "CS1906666666ABCDE"),
        ("customerName", "飞蝶测试1"),
        ("mobilePhone", &phone),
        ("email", &email),
        ("chargingMode", "1"),
        ("saasExtendParams", &extend),
    ]);
    // Base64 `+` travels raw, as KooGallery sends it (the gateway must not read it as a space).
    assert!(!call.uri().contains("%2B"), "{}", call.uri());
    assert!(
        call.uri().contains(phone.as_str()) && call.uri().contains(email.as_str()),
        "{}",
        call.uri()
    );
    let reply = gateway.client().send(&call).await;
    reply.assert_code("000000");

    let seen = upstream.last().json();
    assert_eq!(seen["buyer"]["mobilePhone"], "+8613800138000");
    assert_eq!(seen["buyer"]["email"], "buyer@example.com");
    assert_eq!(seen["buyer"]["customerName"], "飞蝶测试1");
    assert_eq!(seen["chargingMode"], "PERIOD");
    assert_eq!(seen["extendParams"], json!([{"name":"seats","value":"10"}]));
    assert_eq!(
        seen["raw"]["email"],
        email.as_str(),
        "raw keeps the ciphertext"
    );

    let answer = reply.json();
    assert_eq!(answer["instanceId"], "v1-inst");
    assert_eq!(answer["encryptType"], "1");
    let app_info = &answer["appInfo"];
    assert_eq!(app_info["frontEndUrl"], "https://app.example/");
    let user = app_info["userName"].as_str().unwrap();
    let password = app_info["password"].as_str().unwrap();
    assert_ne!(
        user, "admin@example.com",
        "credentials never travel in plain text in V1"
    );
    assert!(user.len() <= 128 && password.len() <= 128);
    assert_eq!(k.decrypt(user).unwrap().as_str(), "admin@example.com");
    assert_eq!(k.decrypt(password).unwrap().as_str(), "Passw0rd!Test");
}

#[tokio::test]
async fn v1_query_instance_answers_encrypted_credentials_and_usage() {
    let upstream = Upstream::start(Behaviour::Answer(
        200,
        r#"{"info":[{"instanceId":"i1","appInfo":{"frontEndUrl":"https://a/","userName":"u","password":"p"},"usageInfo":[{"usageValue":"3","statisticalTime":"20250101000000","relatedInstanceId":"i1","dashboardUrl":"https://a/usage"}]}]}"#.into(),
    ))
    .await;
    let gateway = TestGateway::start_v1(&upstream).await;
    let reply = gateway
        .client()
        .send(&Call::v1(&[
            ("activity", "queryInstance"),
            ("instanceId", "i1"),
        ]))
        .await;
    reply.assert_code("000000");
    let answer = reply.json();
    assert_eq!(answer["encryptType"], "1");
    assert_eq!(answer["info"][0]["usageInfo"][0]["usageValue"], "3");
    let k = key(FieldCipher::Aes256Cbc);
    assert_eq!(
        k.decrypt(answer["info"][0]["appInfo"]["password"].as_str().unwrap())
            .unwrap()
            .as_str(),
        "p"
    );
}

#[tokio::test]
async fn v1_new_instance_without_front_end_url_or_with_overlong_credentials_gives_000005() {
    for body in [
        r#"{"instanceId":"x"}"#.to_owned(),
        format!(
            r#"{{"instanceId":"x","appInfo":{{"frontEndUrl":"https://a/","password":"{}"}}}}"#,
            "p".repeat(100)
        ),
    ] {
        let upstream = Upstream::start(Behaviour::Answer(200, body)).await;
        let gateway = TestGateway::start_v1(&upstream).await;
        let reply = gateway
            .client()
            .send(&Call::v1(&[("activity", "newInstance"), ("orderId", "o")]))
            .await;
        reply.assert_code("000005");
        assert!(!String::from_utf8_lossy(&reply.body).contains("ppppp"));
    }
}

#[tokio::test]
async fn malformed_ciphertexts_are_refused_with_000002_and_not_forwarded() {
    let upstream = Upstream::start(Behaviour::App).await;
    let gateway = TestGateway::start_v1(&upstream).await;
    let wrong_algorithm = key(FieldCipher::Aes128Cbc).encrypt("13800138000");
    for bad in [
        "short",
        "AbCdEf0123456789!!!!",
        "AbCdEf0123456789AAAA",
        "AbCdEf0123456789QRozfB7o+81cfg464xP34Q==",
        wrong_algorithm.as_str(),
    ] {
        let reply = gateway
            .client()
            .send(&Call::v1(&[
                ("activity", "newInstance"),
                ("orderId", "o"),
                ("mobilePhone", bad),
            ]))
            .await;
        reply.assert_code("000002");
        assert_eq!(
            reply.json()["resultMsg"],
            "invalid request parameters: cannot decrypt mobilePhone"
        );
    }
    assert_eq!(upstream.count(), 0);
    let metrics = gateway.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            r#"koogate_rejections_total{reason="field_decrypt_failed"}"#
        ),
        5.0
    );
}

#[tokio::test]
async fn a_replayed_v1_call_is_refused_and_stale_ones_too() {
    let upstream = Upstream::start(Behaviour::App).await;
    let gateway = TestGateway::start_v1(&upstream).await;
    let call = Call::v1(&[("activity", "releaseInstance"), ("instanceId", "i")]);
    gateway.client().send(&call).await.assert_code("000000");
    gateway.client().send(&call).await.assert_code("000001");
    assert_eq!(upstream.count(), 1);

    let day_and_a_minute_ago = v1_time_stamp(now_ms() - 24 * 3600 * 1000 - 60_000);
    let stale = Call::v1_at(
        &[("activity", "releaseInstance"), ("instanceId", "i")],
        &day_and_a_minute_ago,
    );
    gateway.client().send(&stale).await.assert_code("000001");
    let mut forged = Call::v1(&[("activity", "releaseInstance"), ("instanceId", "i")]);
    forged.query = Some(
        forged
            .query
            .unwrap()
            .replace("instanceId=i", "instanceId=j"),
    );
    gateway.client().send(&forged).await.assert_code("000001");
    assert_eq!(upstream.count(), 1);
}

#[tokio::test]
async fn v1_is_off_unless_configured_and_refusals_say_why() {
    let upstream = Upstream::start(Behaviour::App).await;
    let gateway = TestGateway::start(&upstream).await;
    let call = Call::v1(&[("activity", "releaseInstance"), ("instanceId", "i")]);
    let reply = gateway.client().send(&call).await;
    reply.assert_code("000002");
    reply.assert_signed_by(KEY);
    assert_eq!(upstream.count(), 0);
    let metrics = gateway.metrics().await;
    assert_eq!(
        metric(&metrics, "koogate_rejections_total{reason=\"v1_disabled\"}"),
        1.0,
        "{metrics}"
    );

    // The same call is served once V1 is enabled explicitly.
    let gateway = TestGateway::start_v1(&upstream).await;
    gateway.client().send(&call).await.assert_code("000000");
    assert_eq!(upstream.count(), 1);
}

#[tokio::test]
async fn the_v1_post_variant_works_only_when_enabled() {
    let upstream = Upstream::start(Behaviour::App).await;
    let v1_get = Call::v1(&[("activity", "releaseInstance"), ("instanceId", "i")]);
    // Same fields as a JSON body, token in a header; blank values (`orderId` here) are not signed.
    let query = v1_get.query.clone().unwrap();
    let mut body = serde_json::Map::new();
    for pair in query.split('&').filter(|p| !p.starts_with("authToken=")) {
        let (n, v) = pair.split_once('=').unwrap();
        body.insert(
            n.into(),
            json!(percent_encoding::percent_decode_str(v)
                .decode_utf8()
                .unwrap()),
        );
    }
    body.insert("orderId".into(), json!(""));
    let mut post = Call::new(serde_json::Value::Object(body).to_string());
    post.query = Some(String::new());
    post.headers
        .push(("authToken".into(), v1_get.nonce.clone()));

    let gateway = TestGateway::start(&upstream).await;
    gateway.client().send(&post).await.assert_code("000001");
    assert_eq!(
        upstream.count(),
        0,
        "without the switch a V1 POST is read as V2 and fails authentication"
    );

    let mut options = Options::new(&upstream);
    options.v1_toml = "enabled = true\npost = true".into();
    let gateway = TestGateway::start_with(options).await;
    gateway.client().send(&post).await.assert_code("000000");
    assert_eq!(upstream.last().json()["generation"], "v1");
}

#[tokio::test]
async fn a_product_using_aes_256_gcm_gets_its_fields_decrypted_and_encrypted_with_it() {
    let upstream = Upstream::start(Behaviour::App).await;
    let mut options = Options::new(&upstream);
    options.key_toml = "field_cipher = \"aes-256-gcm\"".into();
    options.v1_toml = "enabled = true".into();
    let gateway = TestGateway::start_with(options).await;
    let k = key(FieldCipher::Aes256Gcm);
    let email = k.encrypt("gcm@example.com");
    let reply = gateway
        .client()
        .send(&Call::v1(&[
            ("activity", "newInstance"),
            ("orderId", "o"),
            ("email", &email),
        ]))
        .await;
    reply.assert_code("000000");
    assert_eq!(upstream.last().json()["buyer"]["email"], "gcm@example.com");
    let answer = reply.json();
    assert_eq!(answer["encryptType"], "3");
    assert_eq!(
        k.decrypt(answer["appInfo"]["password"].as_str().unwrap())
            .unwrap()
            .as_str(),
        "secret-pw"
    );

    // A CBC field sent to a GCM product fails authentication of the field: refused, not forwarded.
    let cbc = key(FieldCipher::Aes256Cbc).encrypt("x@example.com");
    let before = upstream.count();
    let reply = gateway
        .client()
        .send(&Call::v1(&[
            ("activity", "newInstance"),
            ("orderId", "o"),
            ("email", &cbc),
        ]))
        .await;
    reply.assert_code("000002");
    assert_eq!(upstream.count(), before);
}

#[tokio::test]
async fn v2_answers_encrypt_credentials_only_when_the_key_says_so() {
    let upstream = Upstream::start(Behaviour::App).await;
    let query = json!({"activity":"queryInstance","instanceId":"i1"});
    let plain = TestGateway::start(&upstream).await;
    let reply = plain.client().send(&Call::json(&query)).await;
    reply.assert_code("000000");
    assert!(reply.json().get("encryptType").is_none());

    upstream.set(Behaviour::Answer(200, r#"{"info":[{"instanceId":"i1","appInfo":{"frontEndUrl":"https://a/","userName":"u1","password":"p1"},"usageInfo":[{"usageValue":"1"}]}]}"#.into()));
    let reply = plain.client().send(&Call::json(&query)).await;
    assert_eq!(
        reply.json()["info"][0]["appInfo"]["password"],
        "p1",
        "V2 default: plain, as current pages show"
    );
    assert!(
        reply.json()["info"][0].get("usageInfo").is_none(),
        "usageInfo is V1 only"
    );

    let mut options = Options::new(&upstream);
    options.key_toml = "field_cipher = \"aes-128-cbc\"\nencrypt_app_info = true".into();
    let encrypting = TestGateway::start_with(options).await;
    let reply = encrypting.client().send(&Call::json(&query)).await;
    reply.assert_code("000000");
    let answer = reply.json();
    assert_eq!(answer["encryptType"], "2");
    let k = key(FieldCipher::Aes128Cbc);
    assert_eq!(
        k.decrypt(answer["info"][0]["appInfo"]["userName"].as_str().unwrap())
            .unwrap()
            .as_str(),
        "u1"
    );
    assert_eq!(
        k.decrypt(answer["info"][0]["appInfo"]["password"].as_str().unwrap())
            .unwrap()
            .as_str(),
        "p1"
    );
}
