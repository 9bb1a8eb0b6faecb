//! Every V2 activity end to end: what the upstream received, and a response signed over the exact bytes.

use crate::support::*;
use serde_json::{json, Value};

fn calls() -> Vec<Value> {
    vec![
        json!({"activity":"newInstance","businessId":"1a2b3c4d-0000-0000-0000-000000000001","orderId":"MOCKPERIODYEARNEW","orderLineId":"MOCKPERIODYEARNEW-000001","testFlag":"1"}),
        json!({"activity":"queryInstance","instanceId":"inst-1,inst-2","testFlag":"1"}),
        json!({"activity":"refreshInstance","scene":"TRIAL_TO_FORMAL","orderId":"MOCKMONTYTRIALTOFORMAL","orderLineId":"MOCKMONTYTRIALTOFORMAL-000001","instanceId":"inst-1","productId":"00301-666666-0--0","expireTime":"20270101120000123","testFlag":"1"}),
        json!({"activity":"updateInstanceStatus","instanceId":"inst-1","status":"FREEZE","testFlag":"0"}),
        json!({"activity":"releaseInstance","instanceId":"inst-1","orderId":"MOCKMONTYUNSUBSCRIBE","orderLineId":"MOCKMONTYUNSUBSCRIBE-000001"}),
        json!({"activity":"upgradeInstance","instanceId":"inst-1","orderId":"MOCKMONTYCHANGE","orderLineId":"MOCKMONTYCHANGE-000001","testFlag":"1"}),
        json!({"activity":"orderNotify","orderId":"MOCKONETIMENEW","orderLineId":"MOCKONETIMENEW-000001","testFlag":"1"}),
    ]
}

#[tokio::test]
async fn every_v2_activity_reaches_the_upstream_normalised_and_is_answered_signed() {
    let upstream = Upstream::start(Behaviour::App).await;
    let gateway = TestGateway::start(&upstream).await;
    let client = gateway.client();

    for (i, body) in calls().into_iter().enumerate() {
        let reply = client.send(&Call::json(&body)).await;
        reply.assert_code("000000");
        assert_eq!(
            upstream.count(),
            i + 1,
            "exactly one upstream call per KooGallery call"
        );

        let seen = upstream.last();
        assert_eq!(seen.method, "POST");
        assert_eq!(seen.path, "/koogallery/hook");
        assert_eq!(seen.headers["content-type"], "application/json");
        let request_id = seen.headers["x-request-id"].to_str().unwrap().to_owned();
        assert_eq!(request_id.len(), 32);
        assert_eq!(
            reply.headers["x-request-id"].to_str().unwrap(),
            request_id,
            "same id on both hops"
        );
        assert_eq!(
            seen.headers["x-koogate-activity"],
            body["activity"].as_str().unwrap()
        );
        let test_flag = body["testFlag"] == "1";
        assert_eq!(
            seen.headers["x-koogate-test-flag"],
            if test_flag { "1" } else { "0" }
        );

        let got = seen.json();
        assert_eq!(got["contractVersion"], 1);
        assert_eq!(got["requestId"], request_id.as_str());
        assert_eq!(got["activity"], body["activity"]);
        assert_eq!(got["generation"], "v2");
        assert_eq!(got["testFlag"], test_flag);
        assert_eq!(got["raw"], body, "raw keeps KooGallery's fields");
        for id in ["businessId", "orderId", "orderLineId", "productId"] {
            assert_eq!(got[id], body[id], "{id}");
        }
        match body["activity"].as_str().unwrap() {
            "queryInstance" => {
                assert_eq!(got["instanceIds"], json!(["inst-1", "inst-2"]));
                assert!(got.get("instanceId").is_none());
                assert_eq!(
                    reply.json()["info"],
                    json!([{"instanceId":"inst-1","appInfo":{"frontEndUrl":"https://app.example/","memo":"m"}},
                           {"instanceId":"inst-2","appInfo":{"frontEndUrl":"https://app.example/","memo":"m"}}])
                );
            }
            "newInstance" => {
                assert_eq!(
                    String::from_utf8(reply.body.to_vec()).unwrap(),
                    r#"{"resultCode":"000000","resultMsg":"success.","instanceId":"inst-MOCKPERIODYEARNEW"}"#
                );
            }
            "refreshInstance" => {
                assert_eq!(got["expireTime"], "2027-01-01T12:00:00.123Z");
                assert_eq!(got["scene"], "TRIAL_TO_FORMAL");
                assert_eq!(got["instanceId"], "inst-1");
            }
            "updateInstanceStatus" => assert_eq!(got["status"], "FREEZE"),
            _ => {
                assert_eq!(got["instanceId"], body["instanceId"]);
                assert_eq!(
                    String::from_utf8(reply.body.to_vec()).unwrap(),
                    r#"{"resultCode":"000000","resultMsg":"success."}"#
                );
            }
        }
    }
}

#[tokio::test]
async fn v2_raw_is_the_body_exactly_as_sent() {
    let upstream = Upstream::start(Behaviour::App).await;
    let gateway = TestGateway::start(&upstream).await;
    // Key order, spacing and a number's digits as KooGallery wrote them: a parsed and re-serialised body would
    // change all three.
    let body = r#"{ "orderId":"RAW-1",  "activity":"newInstance", "orderLineId":"RAW-1-1", "businessId":"b", "orderAmount":12.780 }"#;
    gateway
        .client()
        .send(&Call::new(body))
        .await
        .assert_code("000000");
    let sent = String::from_utf8(upstream.last().body.to_vec()).unwrap();
    assert!(sent.contains(&format!(r#""raw":{body}"#)), "{sent}");
}

#[tokio::test]
async fn upstream_business_codes_and_messages_pass_through_signed() {
    let upstream = Upstream::start(Behaviour::Answer(
        200,
        r#"{"resultCode":"000003","resultMsg":"no such instance"}"#.into(),
    ))
    .await;
    let gateway = TestGateway::start(&upstream).await;
    let reply = gateway
        .client()
        .send(&Call::json(
            &json!({"activity":"releaseInstance","instanceId":"gone"}),
        ))
        .await;
    reply.assert_code("000003");
    assert_eq!(reply.json()["resultMsg"], "no such instance");

    upstream.set(Behaviour::Answer(
        200,
        r#"{"resultCode":"000004","instanceId":"pending-1"}"#.into(),
    ));
    let reply = gateway
        .client()
        .send(&Call::json(
            &json!({"activity":"newInstance","businessId":"b","orderId":"o","orderLineId":"o-1"}),
        ))
        .await;
    reply.assert_code("000004");
    assert_eq!(reply.json()["instanceId"], "pending-1");
}

#[tokio::test]
async fn both_keys_of_a_rotation_verify_and_each_answer_is_signed_with_the_callers_key() {
    let upstream = Upstream::start(Behaviour::App).await;
    let mut options = Options::new(&upstream);
    options.keys = vec![("old", OLD_KEY), ("new", KEY)];
    let gateway = TestGateway::start_with(options).await;
    for key in [OLD_KEY, KEY] {
        let mut call = Call::json(
            &json!({"activity":"orderNotify","orderId":"o","orderLineId":format!("o-{key}")}),
        );
        call.key = key.into();
        let reply = gateway.client().send(&call).await;
        reply.assert_signed_by(key);
        assert_eq!(reply.code(), "000000");
    }
    assert_eq!(upstream.count(), 2);
}

#[tokio::test]
async fn activities_follow_their_configured_routes() {
    let app = Upstream::start(Behaviour::App).await;
    let provisioning = Upstream::start(Behaviour::App).await;
    let mut options = Options::new(&app);
    options.extra_toml = format!(
        "[upstream.routes.provisioning]\nurl = \"{}\"\nactivities = [\"newInstance\"]\ntimeout_ms = 1000\n",
        provisioning.url()
    );
    let gateway = TestGateway::start_with(options).await;
    let client = gateway.client();
    client
        .send(&Call::json(
            &json!({"activity":"newInstance","businessId":"b","orderId":"o","orderLineId":"l"}),
        ))
        .await
        .assert_code("000000");
    client
        .send(&Call::json(
            &json!({"activity":"orderNotify","orderId":"o","orderLineId":"l"}),
        ))
        .await
        .assert_code("000000");
    assert_eq!(provisioning.count(), 1);
    assert_eq!(provisioning.last().json()["activity"], "newInstance");
    assert_eq!(app.count(), 1);
    assert_eq!(app.last().json()["activity"], "orderNotify");
}

#[tokio::test]
async fn an_https_upstream_is_reached_with_its_configured_ca() {
    let upstream_cert = TestCert::new();
    let upstream = Upstream::start_tls(
        Behaviour::App,
        &upstream_cert.cert_path(),
        &upstream_cert.path().join("key.pem"),
    )
    .await;
    let mut options = Options::new(&upstream);
    options.extra_toml = format!("ca_file = \"{}\"\n", upstream_cert.cert_path().display());
    let gateway = TestGateway::start_with(options).await;
    let reply = gateway
        .client()
        .send(&Call::json(
            &json!({"activity":"newInstance","businessId":"b","orderId":"tls","orderLineId":"l"}),
        ))
        .await;
    reply.assert_code("000000");
    assert_eq!(reply.json()["instanceId"], "inst-tls");
    assert_eq!(upstream.count(), 1);
}

#[tokio::test]
async fn keep_alive_connections_serve_several_calls() {
    let upstream = Upstream::start(Behaviour::App).await;
    let gateway = TestGateway::start(&upstream).await;
    let stream = gateway.client().connect().await;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    for i in 0..5 {
        let call = Call::json(
            &json!({"activity":"orderNotify","orderId":format!("o{i}"),"orderLineId":"l"}),
        );
        let request = http::Request::post(call.uri())
            .header("host", "localhost")
            .body(http_body_util::Full::new(bytes::Bytes::from(
                call.body.clone(),
            )))
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        assert!(String::from_utf8_lossy(&body).contains("000000"));
    }
    assert_eq!(upstream.count(), 5);
}

#[tokio::test]
async fn the_plain_http_listener_serves_only_when_configured() {
    let upstream = Upstream::start(Behaviour::App).await;
    let mut options = Options::new(&upstream);
    options.plain_http = true;
    let gateway = TestGateway::start_with(options).await;
    let stream = tokio::net::TcpStream::connect(gateway.plain.unwrap())
        .await
        .unwrap();
    let reply = client::send_over(
        stream,
        &Call::json(&json!({"activity":"orderNotify","orderId":"o","orderLineId":"l"})),
    )
    .await;
    reply.assert_code("000000");

    let without = TestGateway::start(&upstream).await;
    assert!(without.plain.is_none());
}
