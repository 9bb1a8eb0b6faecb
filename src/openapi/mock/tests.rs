//! The signed client against the mock over real TLS sockets: both signatures are verified, faults are injected.

use super::*;
use crate::clock::SystemClock;
use crate::config::{KooGalleryApiConfig, OnFailure};
use crate::openapi::client::OpenApiClient;
use crate::openapi::sign;
use crate::protocol::Activity;
use crate::secret::IamCredentials;
use bytes::Bytes;
use http::{HeaderName, Method};
use serde_json::{json, Value};

const AK: &str = "MOCK-AK-0001";
const SK: &str = "mock-sk-not-a-secret";
const ACCESS_KEY: &str = "test-access-key-0001";

/// A clock `offset_s` seconds away from the system's.
struct Skewed(i64);
impl Clock for Skewed {
    fn now_ms(&self) -> u64 {
        (SystemClock.now_ms() as i64 + self.0 * 1000) as u64
    }
}

struct Fixture {
    mock: MockOpenApi,
    _dir: tempfile::TempDir,
    ca_file: std::path::PathBuf,
}

async fn fixture() -> Fixture {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mock = MockOpenApi::start(
        listener,
        MockOptions {
            ak: AK.into(),
            sk: SK.into(),
            access_key: ACCESS_KEY.into(),
            clock: Arc::new(SystemClock),
        },
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("mock-ca.pem");
    std::fs::write(&ca_file, mock.ca_pem()).unwrap();
    Fixture {
        mock,
        _dir: dir,
        ca_file,
    }
}

impl Fixture {
    fn client_with(&self, sk: &str, clock: Arc<dyn Clock>) -> OpenApiClient {
        self.client_timing_out(sk, clock, Duration::from_secs(5))
    }

    fn client_timing_out(
        &self,
        sk: &str,
        clock: Arc<dyn Clock>,
        timeout: Duration,
    ) -> OpenApiClient {
        let config = KooGalleryApiConfig {
            site: None,
            base_url: self.mock.base_url().parse().unwrap(),
            credentials: IamCredentials::new(AK, sk),
            ca_file: Some(self.ca_file.clone()),
            connect_timeout: Duration::from_secs(1),
            timeout,
            order_lookup_budget: Duration::from_secs(2),
            enrich: vec![Activity::NewInstance],
            on_failure: OnFailure::Retry,
            order_cache_max_entries: 10,
            order_cache_ttl: Duration::from_secs(60),
        };
        OpenApiClient::new(Arc::new(config), clock).unwrap()
    }

    fn client(&self) -> OpenApiClient {
        self.client_with(SK, Arc::new(SystemClock))
    }
}

async fn query_order(client: &OpenApiClient, order: &str, line: &str) -> (u16, Value) {
    let query = vec![
        ("orderId".to_owned(), order.to_owned()),
        ("orderLineId".to_owned(), line.to_owned()),
    ];
    let answer = client
        .send_signed(Method::GET, ORDER_QUERY_PATH, &query, Bytes::new(), &[])
        .await
        .unwrap();
    (answer.status, serde_json::from_slice(&answer.body).unwrap())
}

fn usage_body(records: usize, instance: &str) -> String {
    let now = (SystemClock.now_ms() / 1000) as i64;
    let at = sign::sdk_date_value(now - 3600).unwrap();
    let list: Vec<Value> = (0..records)
        .map(|i| {
            json!({"instance_id": instance, "record_time": at, "begin_time": at, "end_time": at,
                "usage_value": "1.5", "metering_sn": format!("sn-{i}")})
        })
        .collect();
    sign::natural_order_json(&json!({ "usage_records": list }))
}

async fn push_usage(client: &OpenApiClient, key: &str, body: String) -> (u16, Value) {
    let (ts, nonce) = (
        SystemClock.now_ms().to_string(),
        "6c63c221-1f6b-4141-8ff4-22f5dfe82b65",
    );
    let signature = sign::usage_signature(key.as_bytes(), &ts, nonce, body.as_bytes());
    let headers = [
        (HeaderName::from_static("ts"), ts),
        (HeaderName::from_static("nonce"), nonce.to_owned()),
        (HeaderName::from_static("signature"), signature),
    ];
    let answer = client
        .send_signed(
            Method::POST,
            USAGE_DATA_PATH,
            &[],
            Bytes::from(body),
            &headers,
        )
        .await
        .unwrap();
    (answer.status, serde_json::from_slice(&answer.body).unwrap())
}

#[tokio::test]
async fn every_mock_order_is_answered_to_a_signed_query() {
    let f = fixture().await;
    let client = f.client();
    for id in orders::MOCK_ORDERS {
        let (status, body) = query_order(&client, id, &format!("{id}-000001")).await;
        assert_eq!(
            (status, body["resultCode"].as_str()),
            (200, Some("MKT.0000")),
            "{id}"
        );
        assert_eq!(body["orderInfo"]["orderId"], id);
    }
    let received = f.mock.received();
    assert_eq!(received.len(), orders::MOCK_ORDERS.len());
    let auth = received[0]
        .headers
        .iter()
        .find(|(n, _)| n == "authorization")
        .unwrap();
    assert!(
        auth.1.starts_with(
            "SDK-HMAC-SHA256 Access=MOCK-AK-0001, SignedHeaders=host;x-sdk-date, Signature="
        ),
        "{}",
        auth.1
    );
}

#[tokio::test]
async fn an_unknown_order_is_mkt_0101() {
    let f = fixture().await;
    let (status, body) = query_order(&f.client(), "CS0000000000", "CS0000000000-000001").await;
    assert_eq!(
        (status, body["resultCode"].as_str()),
        (400, Some("MKT.0101"))
    );
}

#[tokio::test]
async fn a_wrong_secret_key_is_refused_with_apigw_0301() {
    let f = fixture().await;
    let (status, body) = query_order(
        &f.client_with("wrong-sk", Arc::new(SystemClock)),
        "MOCKONDEMAND",
        "MOCKONDEMAND-000001",
    )
    .await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (401, Some("APIGW.0301"))
    );
}

#[tokio::test]
async fn a_stale_sdk_date_is_refused_and_a_slightly_skewed_one_accepted() {
    let f = fixture().await;
    let stale = f.client_with(SK, Arc::new(Skewed(-16 * 60)));
    let (status, body) = query_order(&stale, "MOCKONDEMAND", "MOCKONDEMAND-000001").await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (401, Some("APIGW.0301"))
    );
    let skewed = f.client_with(SK, Arc::new(Skewed(14 * 60)));
    assert_eq!(
        query_order(&skewed, "MOCKONDEMAND", "MOCKONDEMAND-000001")
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn signed_usage_data_is_accepted_and_a_wrong_body_key_is_mkt_0102() {
    let f = fixture().await;
    let client = f.client();
    let (status, body) = push_usage(&client, ACCESS_KEY, usage_body(2, "inst-1")).await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (200, Some("MKT.0000")),
        "{body}"
    );
    let (status, body) = push_usage(&client, "another-key", usage_body(2, "inst-1")).await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (400, Some("MKT.0102"))
    );
    let unsorted = r#"{"usage_records":[{"metering_sn":"a","instance_id":"i"}]}"#.to_owned();
    assert_eq!(
        push_usage(&client, ACCESS_KEY, unsorted).await.1["error_code"],
        "MKT.0102"
    );
    let received = f.mock.received();
    assert_eq!(received[0].path, USAGE_DATA_PATH);
    assert!(received[0].headers.iter().any(|(n, _)| n == "signature"));
}

#[tokio::test]
async fn record_limits_and_unknown_instances_have_their_codes() {
    let f = fixture().await;
    let client = f.client();
    assert_eq!(
        push_usage(&client, ACCESS_KEY, usage_body(1001, "inst-1"))
            .await
            .1["error_code"],
        "MKT.9003"
    );
    assert_eq!(
        push_usage(&client, ACCESS_KEY, usage_body(1000, "inst-1"))
            .await
            .1["error_code"],
        "MKT.0000"
    );
    f.mock.add_unknown_instance("inst-gone");
    let (status, body) = push_usage(&client, ACCESS_KEY, usage_body(1, "inst-gone")).await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (500, Some("MKT.9001"))
    );
}

#[tokio::test]
async fn injected_faults_apply_the_given_number_of_times() {
    let f = fixture().await;
    let client = f.client();
    f.mock.set_fault(Fault::InternalError, Some(2));
    for _ in 0..2 {
        let (status, body) = push_usage(&client, ACCESS_KEY, usage_body(1, "i")).await;
        assert_eq!(
            (status, body["error_code"].as_str()),
            (500, Some("MKT.0999"))
        );
    }
    assert_eq!(
        push_usage(&client, ACCESS_KEY, usage_body(1, "i")).await.0,
        200
    );
    for (fault, code) in [
        (Fault::InvalidBodySign, "MKT.0102"),
        (Fault::TooManyRecords, "MKT.9003"),
        (Fault::UnknownInstance, "MKT.9001"),
        (
            Fault::Mkt {
                code: "MKT.0154".into(),
            },
            "MKT.0154",
        ),
    ] {
        f.mock.set_fault(fault, Some(1));
        assert_eq!(
            push_usage(&client, ACCESS_KEY, usage_body(1, "i")).await.1["error_code"],
            code
        );
    }
    f.mock.set_fault(
        Fault::Mkt {
            code: "MKT.0150".into(),
        },
        None,
    );
    let (_, body) = query_order(&client, "MOCKONDEMAND", "MOCKONDEMAND-000001").await;
    assert_eq!(body["resultCode"], "MKT.0150");
    f.mock.set_fault(Fault::RefuseSignature, None);
    assert_eq!(
        query_order(&client, "MOCKONDEMAND", "MOCKONDEMAND-000001")
            .await
            .0,
        401
    );
    f.mock.clear_fault();
    assert_eq!(
        query_order(&client, "MOCKONDEMAND", "MOCKONDEMAND-000001")
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn a_slow_mock_makes_the_client_time_out() {
    let f = fixture().await;
    f.mock.set_fault(Fault::Slow { ms: 5_000 }, None);
    let query = vec![("orderId".to_owned(), "MOCKONDEMAND".to_owned())];
    let client = f.client_timing_out(SK, Arc::new(SystemClock), Duration::from_millis(300));
    let result = client
        .send_signed(Method::GET, ORDER_QUERY_PATH, &query, Bytes::new(), &[])
        .await;
    assert!(
        matches!(result, Err(crate::openapi::client::ClientError::Timeout)),
        "{result:?}"
    );
}

#[tokio::test]
async fn the_control_endpoints_set_faults_and_show_what_was_received() {
    let f = fixture().await;
    let client = f.client();
    query_order(&client, "MOCKONDEMAND", "MOCKONDEMAND-000001").await;
    // The controls are plain HTTPS calls; the client's signature on them is ignored.
    let fault = client
        .send_signed(
            Method::POST,
            "/__mock/fault",
            &[],
            Bytes::from(r#"{"kind":"internal_error","times":1}"#),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(fault.status, 200);
    let (status, body) = query_order(&client, "MOCKONDEMAND", "MOCKONDEMAND-000001").await;
    assert_eq!(
        (status, body["resultCode"].as_str()),
        (500, Some("MKT.0999"))
    );
    let seen = client
        .send_signed(Method::GET, "/__mock/received", &[], Bytes::new(), &[])
        .await
        .unwrap();
    let seen: Vec<Received> = serde_json::from_slice(&seen.body).unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].code, "MKT.0999");
    assert_eq!(
        seen[0].query,
        "orderId=MOCKONDEMAND&orderLineId=MOCKONDEMAND-000001"
    );
}
