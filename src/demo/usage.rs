//! The demo's usage record: the demo app posts one record to koogate's usage listener, koogate signs and pushes it
//! to the demo's mock KooGallery OpenAPI (which verifies both signatures), and the demo waits for the acknowledgement.

use crate::openapi::mock::{MockOpenApi, USAGE_DATA_PATH};
use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;

/// Posts one usage record as the app would and waits until the mock KooGallery acknowledged it.
pub async fn send_record(usage: SocketAddr, mock: &MockOpenApi) -> anyhow::Result<()> {
    let now = time::OffsetDateTime::now_utc().replace_nanosecond(0)?;
    let rfc = |t: time::OffsetDateTime| crate::protocol::timefmt::rfc3339(t).unwrap_or_default();
    let sn = format!("demo-{}", hex::encode(rand::random::<[u8; 6]>()));
    let body = json!({"records": [{
        "instanceId": "demo-instance-0001",
        "meteringSn": sn,
        "recordTime": rfc(now),
        "beginTime": rfc(now - Duration::from_secs(3600)),
        "endTime": rfc(now),
        "usageValue": "2.5",
    }]});
    println!("\n$ curl -X POST http://{usage}/v1/usage -d '{body}'");
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let request = http::Request::post(format!("http://{usage}/v1/usage"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))?;
    let response = client
        .request(request)
        .await
        .context("usage listener unreachable")?;
    let answer: Value = serde_json::from_slice(&response.into_body().collect().await?.to_bytes())?;
    println!("  koogate answered {answer}");
    anyhow::ensure!(
        answer["accepted"] == 1,
        "the demo usage record was not accepted"
    );
    for _ in 0..250 {
        let acknowledged = mock
            .received()
            .into_iter()
            .find(|r| r.path == USAGE_DATA_PATH && r.code == "MKT.0000" && r.body.contains(&sn));
        if let Some(push) = acknowledged {
            println!("  mock KooGallery received {}", push.body);
            println!(
                "  AK/SK and body signature verified; answered {} (acknowledged)",
                push.code
            );
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    anyhow::bail!("the mock KooGallery did not acknowledge the demo usage record")
}
