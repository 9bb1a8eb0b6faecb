//! A client that calls a KooGallery production URL the way KooGallery does: signed V2 calls over HTTPS.

use super::app::DemoApp;
use crate::protocol::fields::{FieldCipher, FieldKey};
use crate::protocol::{body_sign, v1, v2};
use bytes::Bytes;
use http::{header, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::{pem::PemObject, CertificateDer};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A signed answer as received.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body_sign: Option<String>,
    pub body: Bytes,
}

impl Answer {
    /// Whether `Body-Sign` is present and matches the body under `key`.
    pub fn signature_valid(&self, key: &[u8]) -> bool {
        let expected = body_sign::signature(key, &self.body);
        self.body_sign
            .as_deref()
            .and_then(body_sign::parse_header)
            .is_some_and(|got| got == expected)
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// Sends signed V2 calls, trusting the given CA certificate (PEM).
pub struct KooClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    key: Vec<u8>,
}

impl KooClient {
    pub fn new(ca_pem: &str, key: &[u8]) -> anyhow::Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(cert?)?;
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .build();
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            key: key.to_vec(),
        })
    }

    /// POSTs `body` to `url` with a fresh nonce and the current timestamp, as KooGallery would.
    pub async fn call(&self, url: &str, body: &str) -> anyhow::Result<Answer> {
        self.call_signed_with(url, body, &self.key).await
    }

    /// A V1 call: `GET` with the parameters and a `timeStamp` of now, signed into `authToken`.
    pub async fn call_v1(&self, url: &str, params: &[(&str, &str)]) -> anyhow::Result<Answer> {
        let now = time::OffsetDateTime::now_utc();
        let time_stamp = format!(
            "{:04}{:02}{:02}{:02}{:02}{:02}{:03}",
            now.year(),
            u8::from(now.month()),
            now.day(),
            now.hour(),
            now.minute(),
            now.second(),
            now.millisecond()
        );
        let mut sorted: Vec<(String, String)> = params
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .chain([("timeStamp".to_owned(), time_stamp.clone())])
            .collect();
        sorted.sort();
        let token = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            v1::auth_token(&self.key, &time_stamp, &v1::canonical_message(&sorted)),
        );
        let encode = |v: &str| {
            percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC).to_string()
        };
        let query: Vec<String> = sorted
            .iter()
            .map(|(n, v)| format!("{n}={}", encode(v)))
            .chain([format!("authToken={}", encode(&token))])
            .collect();
        let request = Request::builder()
            .method(Method::GET)
            .uri(format!("{url}?{}", query.join("&")))
            .body(Full::new(Bytes::new()))?;
        self.send(request).await
    }

    /// Like [`KooClient::call`], but signs with `key` (to show what a wrong key gets).
    pub async fn call_signed_with(
        &self,
        url: &str,
        body: &str,
        key: &[u8],
    ) -> anyhow::Result<Answer> {
        let nonce = hex::encode(rand::random::<[u8; 16]>()).to_uppercase();
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as u64;
        let uri = format!(
            "{url}?{}",
            v2::signed_query(key, &nonce, now_ms, body.as_bytes())
        );
        let request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json;charset=UTF-8")
            .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))?;
        self.send(request).await
    }

    async fn send(&self, request: Request<Full<Bytes>>) -> anyhow::Result<Answer> {
        let response =
            tokio::time::timeout(Duration::from_secs(5), self.client.request(request)).await??;
        let status = response.status().as_u16();
        let body_sign = response
            .headers()
            .get(body_sign::HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Answer {
            status,
            body_sign,
            body,
        })
    }
}

/// The demo's calls: one per V2 activity, with `testFlag=1` as the console sends.
fn demo_calls() -> Vec<Value> {
    vec![
        json!({"activity":"newInstance","businessId":"1a2b3c4d-0000-0000-0000-000000000001","orderId":"MOCKPERIODYEARNEW","orderLineId":"MOCKPERIODYEARNEW-000001","testFlag":"1"}),
        json!({"activity":"queryInstance","instanceId":"demo-MOCKPERIODYEARNEW","testFlag":"1"}),
        json!({"activity":"refreshInstance","scene":"RENEWAL","orderId":"MOCKMONTYRENEW","orderLineId":"MOCKMONTYRENEW-000001","instanceId":"demo-MOCKPERIODYEARNEW","expireTime":"20271125000000","testFlag":"1"}),
        json!({"activity":"updateInstanceStatus","instanceId":"demo-MOCKPERIODYEARNEW","status":"FREEZE","testFlag":"1"}),
        json!({"activity":"upgradeInstance","instanceId":"demo-MOCKPERIODYEARNEW","orderId":"MOCKMONTYCHANGE","orderLineId":"MOCKMONTYCHANGE-000001","testFlag":"1"}),
        json!({"activity":"orderNotify","orderId":"MOCKONETIMENEW","orderLineId":"MOCKONETIMENEW-000001","testFlag":"1"}),
        json!({"activity":"releaseInstance","instanceId":"demo-MOCKPERIODYEARNEW","testFlag":"1"}),
    ]
}

/// Sends every demo call, prints what crossed each hop, and fails if any answer is not what it should be.
pub async fn run_demo_calls(client: &KooClient, url: &str, app: &DemoApp) -> anyhow::Result<()> {
    let mut outcomes = Vec::new();
    for call in demo_calls() {
        let activity = call["activity"].as_str().unwrap_or("?").to_owned();
        let answer = client.call(url, &call.to_string()).await?;
        outcomes.push(report(
            &activity,
            &format!("POST {url}?signature=…&timestamp=…&nonce=…  {call}"),
            &answer,
            client,
            app,
            "000000",
        ));
    }

    // The Europe site's nested newInstance carries the buyer's phone and email encrypted (AES-256-CBC here).
    let fields = FieldKey::derive(&client.key, FieldCipher::Aes256Cbc);
    let eu = json!({"activity":"newInstance",
        "buyerInfo":{"customerId":"68cbc86abc2018ab880d92f36422fa0e","userName":"erika",
            "mobilePhone":fields.encrypt("+4915112345678"),"email":fields.encrypt("erika@example.de")},
        "orderInfo":[{"businessId":"9b3f2a10-5c4d-4e6f-8a7b-1c2d3e4f5a6b","orderId":"MOCKEUROPE","chargingMode":"PERIOD",
            "periodType":"month","periodNumber":1,"productInfo":[{"skuCode":"standard","productId":"OFFI0001"}],
            "extendParams":[{"name":"companyName","value":"Example GmbH"}]}],"testFlag":"1"});
    let answer = client.call(url, &eu.to_string()).await?;
    outcomes.push(report(
        "newInstance (EU nested; phone and email encrypted)",
        &format!("POST …  {eu}"),
        &answer,
        client,
        app,
        "000000",
    ));

    // A legacy V1 call: GET with authToken; koogate encrypts the credentials in the answer.
    let v1_params = [
        ("activity", "newInstance"),
        ("orderId", "CS1906666666ABCDE"),
        ("customerName", "飞蝶测试1"),
        ("testFlag", "1"),
    ];
    let answer = client.call_v1(url, &v1_params).await?;
    outcomes.push(report(
        "newInstance (V1 GET)",
        "GET ?activity=newInstance&…&timeStamp=…&authToken=…",
        &answer,
        client,
        app,
        "000000",
    ));

    let before = app.last_request();
    let forged = client
        .call_signed_with(url, &demo_calls()[0].to_string(), b"not-the-access-key")
        .await?;
    let forwarded = app.last_request() != before;
    outcomes.push(
        !forwarded
            && report(
                "newInstance signed with a wrong key (refused, not forwarded)",
                "POST …",
                &forged,
                client,
                app,
                "000001",
            ),
    );

    let failures = outcomes.iter().filter(|ok| !**ok).count();
    println!(
        "\n{} calls checked end to end; {failures} failed",
        outcomes.len()
    );
    anyhow::ensure!(failures == 0, "{failures} demo call(s) failed");
    Ok(())
}

/// Prints one exchange and returns whether the answer is signed with the key and carries `expected`.
fn report(
    title: &str,
    sent: &str,
    answer: &Answer,
    client: &KooClient,
    app: &DemoApp,
    expected: &str,
) -> bool {
    let signed = answer.signature_valid(&client.key);
    let ok = answer.status == 200 && signed && answer.json()["resultCode"] == expected;
    println!("{} {title}", if ok { "PASS" } else { "FAIL" });
    println!("  KooGallery → koogate : {sent}");
    if expected == "000000" {
        if let Some(seen) = app.last_request() {
            println!("  koogate → app        : {seen}");
        }
    }
    let verdict = if signed { "valid" } else { "INVALID" };
    println!(
        "  koogate → KooGallery : HTTP {} Body-Sign {verdict}  {}",
        answer.status,
        String::from_utf8_lossy(&answer.body)
    );
    ok
}
