//! Order enrichment end to end: the real gateway, the mock KooGallery OpenAPI over TLS (verifying SDK-HMAC-SHA256),
//! a recording app. What the app received is checked field by field and against the contract schema.

use crate::support::*;
use koogate::clock::SystemClock;
use koogate::openapi::mock::{Fault, MockOpenApi, MockOptions, ORDER_QUERY_PATH};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const IAM_AK: &str = "E2E-IAM-AK-0001";
pub const IAM_SK: &str = "e2e-iam-secret-key-must-never-be-logged";
const DEADLINE_MS: u64 = 1_500;
const BUDGET_MS: u64 = 500;

pub async fn start_mock() -> MockOpenApi {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    MockOpenApi::start(
        listener,
        MockOptions {
            ak: IAM_AK.into(),
            sk: IAM_SK.into(),
            access_key: KEY.into(),
            clock: Arc::new(SystemClock),
        },
    )
    .unwrap()
}

/// Writes the IAM AK/SK and the mock's certificate next to the gateway's, and returns the `[koogallery_api]` table.
pub fn api_table(cert: &TestCert, base_url: &str, ca_pem: &str, extra: &str) -> String {
    std::fs::write(cert.path().join("iam-ak"), IAM_AK).unwrap();
    std::fs::write(cert.path().join("iam-sk"), format!("{IAM_SK}\n")).unwrap();
    std::fs::write(cert.path().join("mock-ca.pem"), ca_pem).unwrap();
    format!(
        "\n[koogallery_api]\nbase_url = \"{base_url}\"\nak_file = \"iam-ak\"\nsk_file = \"iam-sk\"\n\
         ca_file = \"mock-ca.pem\"\norder_lookup_budget_ms = {BUDGET_MS}\n{extra}\n"
    )
}

struct Setup {
    mock: MockOpenApi,
    upstream: Upstream,
    gateway: TestGateway,
}

async fn setup(extra: &str) -> Setup {
    let mock = start_mock().await;
    let upstream = Upstream::start(Behaviour::App).await;
    let cert = Arc::new(TestCert::new());
    let mut options = Options::new(&upstream);
    options.extra_toml = api_table(&cert, &mock.base_url(), mock.ca_pem(), extra);
    options.dir = Some(cert);
    options.deadline_ms = DEADLINE_MS;
    let gateway = TestGateway::start_with(options).await;
    Setup {
        mock,
        upstream,
        gateway,
    }
}

fn schema() -> jsonschema::Validator {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/schema/upstream-request.schema.json"
    );
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap()
}

fn assert_schema_valid(sent: &Value) {
    let validator = schema();
    let errors: Vec<String> = validator
        .iter_errors(sent)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}\n{sent:#}");
}

fn new_instance(order: &str) -> Value {
    json!({"activity":"newInstance","businessId":"b-1","orderId":order,"orderLineId":format!("{order}-000001"),
        "testFlag":"1"})
}

fn enriched_calls() -> Vec<Value> {
    vec![
        new_instance("MOCKPERIODYEARNEW"),
        json!({"activity":"upgradeInstance","instanceId":"inst-1","orderId":"MOCKMONTYCHANGE",
            "orderLineId":"MOCKMONTYCHANGE-000001","testFlag":"1"}),
        json!({"activity":"refreshInstance","scene":"RENEWAL","instanceId":"inst-1","orderId":"MOCKMONTYRENEW",
            "orderLineId":"MOCKMONTYRENEW-000001","expireTime":"20250121235959","testFlag":"1"}),
        json!({"activity":"orderNotify","orderId":"MOCKONETIMENEW","orderLineId":"MOCKONETIMENEW-000001",
            "testFlag":"1"}),
    ]
}

#[tokio::test]
async fn every_enriched_activity_reaches_the_app_with_its_order() {
    let s = setup(
        "enrich = [\"newInstance\", \"upgradeInstance\", \"refreshInstance\", \"orderNotify\"]",
    )
    .await;
    let client = s.gateway.client();
    let expected = [
        ("NEW", "PERIOD", Some(("year", 1)), "2025-11-21T23:59:59Z"),
        (
            "CHANGE",
            "PERIOD",
            Some(("month", 1)),
            "2024-12-21T23:59:59Z",
        ),
        (
            "RENEW",
            "PERIOD",
            Some(("month", 1)),
            "2025-01-21T23:59:59Z",
        ),
        ("NEW", "ONE_TIME", None, ""),
    ];
    for (call, (order_type, mode, period, expire)) in enriched_calls().iter().zip(expected) {
        client.send(&Call::json(call)).await.assert_code("000000");
        let sent = s.upstream.last().json();
        assert_schema_valid(&sent);
        let order = &sent["order"];
        assert_eq!(order["orderId"], call["orderId"], "{sent:#}");
        assert_eq!(order["orderType"], order_type);
        assert!(order["createTime"].as_str().unwrap().ends_with('Z'));
        let line = &order["lines"][0];
        assert_eq!(order["lines"].as_array().unwrap().len(), 1);
        assert_eq!(line["orderLineId"], call["orderLineId"]);
        assert_eq!(line["chargingMode"], mode);
        match period {
            Some((unit, n)) => {
                assert_eq!(
                    (line["periodType"].as_str(), line["periodNumber"].as_i64()),
                    (Some(unit), Some(n))
                );
                assert_eq!(line["expireTime"], expire);
            }
            None => assert!(line.get("periodType").is_none() && line.get("expireTime").is_none()),
        }
        assert_eq!(line["products"][0]["productId"], "OFFI846204237451911168");
        assert!(
            line["currency"].is_number() && line["extendParams"][0]["name"] == "emailDomainName"
        );
        assert_eq!(
            order["buyer"]["mobilePhone"], "18688888888",
            "the app gets the buyer in plain text"
        );
        assert!(sent.get("orderLookup").is_none());
    }
    assert_eq!(
        s.mock.calls_to(ORDER_QUERY_PATH),
        4,
        "one signed lookup per call, all verified"
    );
    assert!(s.mock.received().iter().all(|r| r.status == 200));

    // Activities that carry no order to look up are forwarded untouched.
    let status = json!({"activity":"updateInstanceStatus","instanceId":"inst-1","status":"FREEZE"});
    client
        .send(&Call::json(&status))
        .await
        .assert_code("000000");
    assert!(s.upstream.last().json().get("order").is_none());
    assert_eq!(s.mock.calls_to(ORDER_QUERY_PATH), 4);
}

#[tokio::test]
async fn order_notify_is_not_enriched_by_default() {
    let s = setup("").await;
    let notify = enriched_calls().pop().unwrap();
    s.gateway
        .client()
        .send(&Call::json(&notify))
        .await
        .assert_code("000000");
    assert!(s.upstream.last().json().get("order").is_none());
    assert_eq!(s.mock.calls_to(ORDER_QUERY_PATH), 0);
}

#[tokio::test]
async fn a_retry_is_served_from_the_cache_and_the_cache_survives_a_restart() {
    let s = setup("").await;
    // The app is not ready yet: nothing is recorded, so KooGallery's retry is forwarded again.
    s.upstream.set(Behaviour::Answer(
        200,
        r#"{"resultCode":"000005","resultMsg":"busy"}"#.into(),
    ));
    let call = new_instance("MOCKPERIODYEARNEW");
    s.gateway
        .client()
        .send(&Call::json(&call))
        .await
        .assert_code("000005");
    s.upstream.set(Behaviour::App);
    s.gateway
        .client()
        .send(&Call::json(&call))
        .await
        .assert_code("000000");
    assert_eq!(s.upstream.count(), 2);
    assert_eq!(
        s.upstream.received()[0].json()["order"],
        s.upstream.last().json()["order"]
    );
    assert_eq!(
        s.mock.calls_to(ORDER_QUERY_PATH),
        1,
        "the retry's order came from the cache"
    );
    let metrics = s.gateway.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            r#"koogate_order_lookups_total{code="MKT.0000",outcome="api"}"#
        ),
        1.0
    );
    assert_eq!(
        metric(
            &metrics,
            r#"koogate_order_lookups_total{code="MKT.0000",outcome="cache"}"#
        ),
        1.0
    );

    // Same data directory, the API now unreachable: a fresh gateway still has the order.
    let Setup {
        mock,
        upstream,
        mut gateway,
    } = s;
    let dir = gateway.cert.clone();
    gateway.begin_shutdown().await.unwrap().unwrap();
    drop(mock);
    let mut options = Options::new(&upstream);
    options.extra_toml = std::fs::read_to_string(&gateway.config_path)
        .unwrap()
        .split("\n[koogallery_api]")
        .nth(1)
        .map(|t| format!("\n[koogallery_api]{t}"))
        .unwrap();
    options.dir = Some(dir);
    options.deadline_ms = DEADLINE_MS;
    let restarted = TestGateway::start_with(options).await;
    let upgrade = json!({"activity":"newInstance","businessId":"b-2","orderId":"MOCKPERIODYEARNEW",
        "orderLineId":"MOCKPERIODYEARNEW-000001"});
    restarted
        .client()
        .send(&Call::json(&upgrade))
        .await
        .assert_code("000000");
    assert_eq!(upstream.last().json()["order"]["orderType"], "NEW");
    let data = std::fs::read_to_string(gateway.cert.path().join("data/order-cache.jsonl")).unwrap();
    assert!(
        !data.contains("18688888888") && !data.contains("MOCKPERIODYEARNEW"),
        "sealed at rest"
    );
    // The journal records the calls, the order's buyer only sealed.
    let journal: String = std::fs::read_dir(gateway.cert.path().join("data/journal"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert!(journal.contains("MOCKPERIODYEARNEW"), "{journal}");
    for personal in ["18688888888", "测试用户1"] {
        assert!(
            !journal.contains(personal),
            "the journal holds {personal} in plain text"
        );
    }
}

/// One way the lookup can fail, set up on a running mock.
#[derive(Clone, Copy, Debug)]
enum Failure {
    Down,
    Slow,
    Mkt,
    UnknownOrder,
    SignatureRefused,
}

impl Failure {
    const ALL: [Failure; 5] = [
        Failure::Down,
        Failure::Slow,
        Failure::Mkt,
        Failure::UnknownOrder,
        Failure::SignatureRefused,
    ];

    /// Applies the failure; returns the order id to call with and the expected `(reason, code)`.
    fn apply(
        self,
        s: &mut Option<MockOpenApi>,
    ) -> (&'static str, &'static str, Option<&'static str>) {
        let mock = s.as_ref().unwrap();
        match self {
            Failure::Down => {
                *s = None;
                ("MOCKPERIODYEARNEW", "unreachable", None)
            }
            Failure::Slow => {
                mock.set_fault(Fault::Slow { ms: 3_000 }, None);
                ("MOCKPERIODYEARNEW", "timeout", None)
            }
            Failure::Mkt => {
                mock.set_fault(Fault::InternalError, None);
                ("MOCKPERIODYEARNEW", "mkt_error", Some("MKT.0999"))
            }
            Failure::UnknownOrder => ("CS2411210000NOSUCH", "mkt_error", Some("MKT.0101")),
            Failure::SignatureRefused => {
                mock.set_fault(Fault::RefuseSignature, None);
                ("MOCKPERIODYEARNEW", "signature_refused", Some("APIGW.0301"))
            }
        }
    }
}

#[tokio::test]
async fn failed_lookups_answer_000005_inside_the_deadline_and_forward_nothing() {
    for failure in Failure::ALL {
        let s = setup("").await;
        let (mut mock, upstream, gateway) = (Some(s.mock), s.upstream, s.gateway);
        let (order, reason, code) = failure.apply(&mut mock);
        let started = Instant::now();
        let reply = gateway
            .client()
            .send(&Call::json(&new_instance(order)))
            .await;
        let took = started.elapsed();
        reply.assert_code("000005");
        assert!(
            took < Duration::from_millis(DEADLINE_MS),
            "{failure:?} took {took:?}"
        );
        assert_eq!(upstream.count(), 0, "{failure:?}: nothing forwarded");
        let metrics = gateway.metrics().await;
        let series = format!(
            r#"koogate_order_lookups_total{{code="{}",outcome="{reason}"}}"#,
            code.unwrap_or("none")
        );
        assert_eq!(
            metric(&metrics, &series),
            1.0,
            "{failure:?}: {series}\n{metrics}"
        );
        assert_eq!(
            metric(
                &metrics,
                r#"koogate_rejections_total{reason="order_lookup_failed"}"#
            ),
            1.0
        );
    }
}

#[tokio::test]
async fn with_on_failure_forward_the_app_gets_the_call_with_the_failure_marker() {
    for failure in Failure::ALL {
        let s = setup("on_failure = \"forward\"").await;
        let (mut mock, upstream, gateway) = (Some(s.mock), s.upstream, s.gateway);
        let (order, reason, code) = failure.apply(&mut mock);
        let started = Instant::now();
        gateway
            .client()
            .send(&Call::json(&new_instance(order)))
            .await
            .assert_code("000000");
        assert!(
            started.elapsed() < Duration::from_millis(DEADLINE_MS),
            "{failure:?}"
        );
        let sent = upstream.last().json();
        assert_schema_valid(&sent);
        assert!(sent.get("order").is_none(), "{failure:?}");
        let mut marker = json!({"status": "failed", "reason": reason});
        if let Some(code) = code {
            marker["code"] = json!(code);
        }
        assert_eq!(sent["orderLookup"], marker, "{failure:?}");
    }
}

#[tokio::test]
async fn the_documented_enriched_examples_are_what_the_app_receives() {
    let bless = std::env::var_os("KOOGATE_BLESS").is_some();
    let s = setup("on_failure = \"forward\"").await;
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/examples/request/enriched"
    );
    let cases = [
        ("newInstance", "MOCKPERIODYEARNEW"),
        ("newInstance-lookup-failed", "CS2411210000NOSUCH"),
    ];
    for (stem, order) in cases {
        let mut call = new_instance(order);
        call["businessId"] = json!("1a2b3c4d-0000-0000-0000-000000000001");
        s.gateway
            .client()
            .send(&Call::json(&call))
            .await
            .assert_code("000000");
        let mut sent = s.upstream.last().json();
        assert_schema_valid(&sent);
        sent["requestId"] = json!("c41d7e2a9b0f4c8e8d3a6b1f2e5c7d90");
        let file = format!("{dir}/{stem}.json");
        if bless {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(&file, serde_json::to_string_pretty(&sent).unwrap() + "\n").unwrap();
        }
        let documented: Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(sent, documented, "{file}");
    }
}
