//! The demo's KooGallery OpenAPI: the mock (verifying SDK-HMAC-SHA256) in-process, and the `[koogallery_api]`
//! table that points the demo gateway at it, so newInstance reaches the demo app with the order details.

use crate::openapi::mock::{MockOpenApi, MockOptions};
use std::path::Path;
use std::sync::Arc;

/// The demo's IAM credentials. Not secrets: they exist only so the demo gateway can sign calls to its own mock.
const DEMO_IAM_AK: &str = "KOOGATEDEMOAK0000001";
const DEMO_IAM_SK: &str = "koogate-demo-iam-sk-not-a-secret";

/// Starts the mock on a free loopback port; returns it and the `[koogallery_api]` table (files written to `dir`).
pub async fn start(dir: &Path, access_key: &str) -> anyhow::Result<(MockOpenApi, String)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let mock = MockOpenApi::start(
        listener,
        MockOptions {
            ak: DEMO_IAM_AK.to_owned(),
            sk: DEMO_IAM_SK.as_bytes().to_vec(),
            access_key: access_key.as_bytes().to_vec(),
            clock: Arc::new(crate::clock::SystemClock),
        },
    )?;
    std::fs::write(dir.join("demo-iam-ak"), DEMO_IAM_AK)?;
    std::fs::write(dir.join("demo-iam-sk"), DEMO_IAM_SK)?;
    std::fs::write(dir.join("mock-openapi-ca.pem"), mock.ca_pem())?;
    // `forward`: `koogate simulate`'s suite (run by the demo too) uses fresh order ids the mock does not know;
    // those calls reach the app with `orderLookup` instead of being refused.
    let table = format!(
        "\n[koogallery_api]\nbase_url = \"{}\"\nak_file = \"demo-iam-ak\"\nsk_file = \"demo-iam-sk\"\n\
         ca_file = \"mock-openapi-ca.pem\"\non_failure = \"forward\"\n",
        mock.base_url()
    );
    Ok((mock, table))
}
