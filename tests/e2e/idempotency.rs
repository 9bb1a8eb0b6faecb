//! Exactly-once provisioning under KooGallery's retries: records survive restarts, concurrent duplicates reach
//! the upstream once, failures are not recorded, and personal data is sealed at rest.

use crate::support::*;
use futures_util::future::join_all;
use serde_json::json;
use std::sync::Arc;

fn new_instance(order: &str) -> Call {
    Call::json(
        &json!({"activity":"newInstance","businessId":"b","orderId":order,"orderLineId":format!("{order}-000001")}),
    )
}

#[tokio::test]
async fn a_retry_storm_reaches_the_upstream_once_and_always_gets_the_same_instance() {
    let upstream = Upstream::start(Behaviour::Unique).await;
    // The production deadline and handshake timeout: 100 concurrent duplicates are answered one after the other
    // (each waits for the first one's durable commit), which on a loaded 2-core CI machine can pass the harness's
    // short 1.5 s deadline and 500 ms handshake timeout. The test is about idempotency, not about those limits.
    let mut options = Options::new(&upstream);
    options.deadline_ms = 4_500;
    options.handshake_timeout_ms = 2_000;
    let gateway = TestGateway::start_with(options).await;
    let client = gateway.client();
    let first = client.send(&new_instance("STORM-1")).await;
    first.assert_code("000000");
    let instance = first.json()["instanceId"].clone();
    for _ in 0..99 {
        let reply = client.send(&new_instance("STORM-1")).await;
        reply.assert_code("000000");
        assert_eq!(reply.json()["instanceId"], instance);
    }
    assert_eq!(
        upstream.count(),
        1,
        "100 sequential retries, one provisioning"
    );

    let concurrent = join_all((0..100).map(|_| {
        let client = client.clone();
        async move { client.send(&new_instance("STORM-2")).await }
    }))
    .await;
    let ids: std::collections::HashSet<String> = concurrent
        .iter()
        .map(|reply| {
            reply.assert_code("000000");
            reply.json()["instanceId"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        ids.len(),
        1,
        "100 concurrent retries, one instance id: {ids:?}"
    );
    assert_eq!(upstream.count(), 2, "and one more provisioning");
    let metrics = gateway.metrics().await;
    assert_eq!(metric(&metrics, "koogate_idempotency_hits_total"), 198.0);
}

#[tokio::test]
async fn a_restart_between_retries_keeps_the_instance_and_refuses_replayed_nonces() {
    let upstream = Upstream::start(Behaviour::Unique).await;
    let dir = Arc::new(TestCert::new());
    let mut options = Options::new(&upstream);
    options.dir = Some(dir.clone());
    let mut first_gateway = TestGateway::start_with(options).await;
    let call = new_instance("RESTART-1");
    let reply = first_gateway.client().send(&call).await;
    reply.assert_code("000000");
    let instance = reply.json()["instanceId"].clone();
    first_gateway.begin_shutdown().await.unwrap().unwrap();

    let mut options = Options::new(&upstream);
    options.dir = Some(dir.clone());
    let second_gateway = TestGateway::start_with(options).await;
    let retry = second_gateway
        .client()
        .send(&new_instance("RESTART-1"))
        .await;
    retry.assert_code("000000");
    assert_eq!(retry.json()["instanceId"], instance);
    assert_eq!(
        upstream.count(),
        1,
        "no second provisioning after the restart"
    );

    let replay = second_gateway.client().send(&call).await;
    replay.assert_code("000001");
    assert_eq!(upstream.count(), 1);
}

#[tokio::test]
async fn a_failed_answer_is_not_recorded_so_the_next_retry_reaches_the_upstream() {
    let upstream = Upstream::start(Behaviour::Answer(500, "oops".into())).await;
    let gateway = TestGateway::start(&upstream).await;
    gateway
        .client()
        .send(&new_instance("FAIL-1"))
        .await
        .assert_code("000005");
    upstream.set(Behaviour::Answer(200, r#"{"resultCode":"000100"}"#.into()));
    gateway
        .client()
        .send(&new_instance("FAIL-1"))
        .await
        .assert_code("000100");
    upstream.set(Behaviour::Unique);
    let ok = gateway.client().send(&new_instance("FAIL-1")).await;
    ok.assert_code("000000");
    assert_eq!(
        upstream.count(),
        3,
        "each failed attempt was retried against the upstream"
    );
    let again = gateway.client().send(&new_instance("FAIL-1")).await;
    assert_eq!(again.json()["instanceId"], ok.json()["instanceId"]);
    assert_eq!(upstream.count(), 3);
}

#[tokio::test]
async fn status_changes_replay_only_the_same_status() {
    let upstream = Upstream::start(Behaviour::App).await;
    let gateway = TestGateway::start(&upstream).await;
    let status = |s: &str| {
        Call::json(&json!({"activity":"updateInstanceStatus","instanceId":"i-1","status":s}))
    };
    for (s, expected_calls) in [
        ("FREEZE", 1),
        ("FREEZE", 1),
        ("UNFREEZE", 2),
        ("FREEZE", 3),
        ("FREEZE", 3),
    ] {
        gateway
            .client()
            .send(&status(s))
            .await
            .assert_code("000000");
        assert_eq!(upstream.count(), expected_calls, "after {s}");
    }
}

#[tokio::test]
async fn debugging_calls_and_real_orders_do_not_share_records() {
    let upstream = Upstream::start(Behaviour::Unique).await;
    let gateway = TestGateway::start(&upstream).await;
    let real = gateway
        .client()
        .send(&new_instance("MOCKPERIODYEARNEW"))
        .await;
    let mut test_body = json!({"activity":"newInstance","businessId":"b","orderId":"MOCKPERIODYEARNEW","orderLineId":"MOCKPERIODYEARNEW-000001","testFlag":"1"});
    let test = gateway.client().send(&Call::json(&test_body)).await;
    assert_ne!(real.json()["instanceId"], test.json()["instanceId"]);
    test_body["businessId"] = json!("another-business-id");
    let test_again = gateway.client().send(&Call::json(&test_body)).await;
    assert_eq!(
        test.json()["instanceId"],
        test_again.json()["instanceId"],
        "debugging calls are idempotent too"
    );
    assert_eq!(upstream.count(), 2);
}

#[tokio::test]
async fn personal_data_never_reaches_the_disk_in_plain_text_and_the_journal_records_every_call() {
    let upstream = Upstream::start(Behaviour::Unique).await;
    let gateway = TestGateway::start_v1(&upstream).await;
    let k = koogate::protocol::fields::FieldKey::derive(
        KEY.as_bytes(),
        koogate::protocol::fields::FieldCipher::Aes256Cbc,
    );
    let (phone, email) = ("+8613912345678", "plaintext-buyer@example.com");
    let call = Call::v1(&[
        ("activity", "newInstance"),
        ("orderId", "PII-1"),
        ("mobilePhone", &k.encrypt(phone)),
        ("email", &k.encrypt(email)),
    ]);
    let reply = gateway.client().send(&call).await;
    reply.assert_code("000000");
    // A retry answered from the record: the stored password is encrypted afresh for KooGallery.
    let again = gateway
        .client()
        .send(&Call::v1(&[
            ("activity", "newInstance"),
            ("orderId", "PII-1"),
        ]))
        .await;
    again.assert_code("000000");
    assert_eq!(
        k.decrypt(again.json()["appInfo"]["password"].as_str().unwrap())
            .unwrap()
            .as_str(),
        "Sup3r-Secret-Pw"
    );
    gateway
        .client()
        .send(&Call::json(
            &json!({"activity":"releaseInstance","instanceId":"x-1"}),
        ))
        .await
        .assert_code("000000");

    let data = gateway.cert.path().join("data");
    let mut bytes = Vec::new();
    for path in walk(&data) {
        bytes.extend(std::fs::read(path).unwrap());
    }
    assert!(!bytes.is_empty());
    for secret in [phone, email, "Sup3r-Secret-Pw"] {
        assert!(
            !contains(&bytes, secret.as_bytes()),
            "`{secret}` is stored in plain text under {}",
            data.display()
        );
    }

    let entries = koogate::state::journal::read(&data, &Default::default()).unwrap();
    let activities: Vec<(&str, &str, bool)> = entries
        .iter()
        .map(|e| (e.activity.as_str(), e.result_code.as_str(), e.from_record))
        .collect();
    assert_eq!(
        activities,
        [
            ("newInstance", "000000", false),
            ("newInstance", "000000", true),
            ("releaseInstance", "000000", false)
        ]
    );
    let sealer = koogate::state::seal::Sealer::from_text(JOURNAL_KEY).unwrap();
    let opened = koogate::state::journal::export(&entries[0], Some(&sealer));
    assert_eq!(opened["personalData"]["buyer"]["email"], email);
    assert!(koogate::state::journal::export(&entries[0], None)
        .get("personalData")
        .is_none());
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn debugging_calls_can_go_to_a_sandbox_route_and_never_touch_production() {
    let production = Upstream::start(Behaviour::Unique).await;
    let sandbox = Upstream::start(Behaviour::Unique).await;
    let mut options = Options::new(&production);
    options.extra_toml = format!("[upstream.routes.sandbox]\nurl = \"{}\"\n", sandbox.url());
    options.test_calls_toml = "mode = \"sandbox\"\nsandbox_route = \"sandbox\"\n".into();
    let gateway = TestGateway::start_with(options).await;
    let test = json!({"activity":"newInstance","businessId":"b","orderId":"MOCKPERIODYEARNEW","orderLineId":"MOCKPERIODYEARNEW-000001","testFlag":"1"});
    let first = gateway.client().send(&Call::json(&test)).await;
    first.assert_code("000000");
    let again = gateway.client().send(&Call::json(&test)).await;
    assert_eq!(again.json()["instanceId"], first.json()["instanceId"]);
    gateway
        .client()
        .send(&new_instance("REAL-1"))
        .await
        .assert_code("000000");
    assert_eq!(
        (sandbox.count(), production.count()),
        (1, 1),
        "test calls in the sandbox, real ones in production"
    );
}

#[tokio::test]
async fn the_builtin_responder_answers_debugging_calls_deterministically_without_any_upstream() {
    let production = Upstream::start(Behaviour::Unique).await;
    let mut options = Options::new(&production);
    options.test_calls_toml =
        "mode = \"builtin\"\nfront_end_url = \"https://test.example/\"\n".into();
    let gateway = TestGateway::start_with(options).await;
    let new = |order: &str| {
        Call::json(
            &json!({"activity":"newInstance","businessId":"b","orderId":order,"orderLineId":format!("{order}-000001"),"testFlag":"1"}),
        )
    };
    let first = gateway.client().send(&new("MOCKONETIMENEW")).await;
    first.assert_code("000000");
    let id = first.json()["instanceId"].as_str().unwrap().to_owned();
    assert!(id.starts_with("test-"));
    let query = gateway
        .client()
        .send(&Call::json(
            &json!({"activity":"queryInstance","instanceId":id,"testFlag":"1"}),
        ))
        .await;
    query.assert_code("000000");
    assert_eq!(
        query.json()["info"][0]["appInfo"]["frontEndUrl"],
        "https://test.example/"
    );
    for activity in [
        json!({"activity":"refreshInstance","scene":"RENEWAL","orderId":"MOCKMONTYRENEW","orderLineId":"MOCKMONTYRENEW-000001","instanceId":id,"expireTime":"20300101000000","testFlag":"1"}),
        json!({"activity":"updateInstanceStatus","instanceId":id,"status":"FREEZE","testFlag":"1"}),
        json!({"activity":"releaseInstance","instanceId":id,"testFlag":"1"}),
    ] {
        gateway
            .client()
            .send(&Call::json(&activity))
            .await
            .assert_code("000000");
    }
    assert_eq!(
        production.count(),
        0,
        "debugging calls never reach production"
    );

    // Deterministic: a fresh gateway (no records) gives the same instance for the same mock order.
    let mut options = Options::new(&production);
    options.test_calls_toml = "mode = \"builtin\"\n".into();
    let other = TestGateway::start_with(options).await;
    assert_eq!(
        other.client().send(&new("MOCKONETIMENEW")).await.json()["instanceId"],
        id.as_str()
    );
    gateway
        .client()
        .send(&new_instance("REAL-2"))
        .await
        .assert_code("000000");
    assert_eq!(production.count(), 1);
}

#[tokio::test]
async fn a_call_whose_client_went_away_is_still_recorded_and_its_retry_deduplicated() {
    let upstream = Upstream::start(Behaviour::Slow(
        std::time::Duration::from_millis(600),
        r#"{"instanceId":"inst-slow"}"#.into(),
    ))
    .await;
    let gateway = TestGateway::start(&upstream).await;
    let client = gateway.client();
    let abandoned = tokio::time::timeout(
        std::time::Duration::from_millis(200),
        client.send(&new_instance("GONE-1")),
    )
    .await;
    assert!(abandoned.is_err(), "the client gave up first");
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    assert_eq!(upstream.count(), 1);
    let retry = client.send(&new_instance("GONE-1")).await;
    retry.assert_code("000000");
    assert_eq!(retry.json()["instanceId"], "inst-slow");
    assert_eq!(
        upstream.count(),
        1,
        "the abandoned call's answer was recorded"
    );
    let journal =
        koogate::state::journal::read(&gateway.cert.path().join("data"), &Default::default())
            .unwrap();
    assert_eq!(journal.len(), 2, "both calls are journalled");
}

#[tokio::test]
async fn the_builtin_responder_copes_with_any_instance_id() {
    let production = Upstream::start(Behaviour::App).await;
    let mut options = Options::new(&production);
    options.test_calls_toml = "mode = \"builtin\"\n".into();
    let gateway = TestGateway::start_with(options).await;
    let reply = gateway
        .client()
        .send(&Call::json(&json!({"activity":"queryInstance","instanceId":"aéééééééé,飞蝶测试飞蝶测试","testFlag":"1"})))
        .await;
    reply.assert_code("000000");
    assert_eq!(reply.json()["info"].as_array().unwrap().len(), 2);
}
