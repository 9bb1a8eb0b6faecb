//! koogate authenticating itself to the app: a signature on every upstream request, and mTLS client certificates.

use crate::support::client::now_ms;
use crate::support::*;
use ring::hmac;
use serde_json::json;

const SECRET: &str = "upstream-shared-secret-0001";

fn new_instance(order: &str) -> Call {
    Call::json(
        &json!({"activity":"newInstance","businessId":"b","orderId":order,"orderLineId":"l"}),
    )
}

#[tokio::test]
async fn every_upstream_request_carries_a_signature_over_the_exact_body() {
    let upstream = Upstream::start(Behaviour::App).await;
    let mut options = Options::new(&upstream);
    options.upstream_toml = "signature_key_env = \"TEST_UPSTREAM_SECRET\"".into();
    options.env = vec![("TEST_UPSTREAM_SECRET", SECRET.to_owned())];
    let gateway = TestGateway::start_with(options).await;
    gateway
        .client()
        .send(&new_instance("signed-1"))
        .await
        .assert_code("000000");

    let seen = upstream.last();
    let header = |name: &str| seen.headers.get(name).unwrap().to_str().unwrap().to_owned();
    let timestamp = header("x-koogate-timestamp");
    let signature = header("x-koogate-signature");
    let sent_ms: u64 = timestamp.parse().unwrap();
    assert!(now_ms().abs_diff(sent_ms) < 10_000, "{timestamp}");
    // Recomputed with ring over the bytes the app read, as the contract's recipe does.
    let mut message = format!("{timestamp}.").into_bytes();
    message.extend_from_slice(&seen.body);
    let key = hmac::Key::new(hmac::HMAC_SHA256, SECRET.as_bytes());
    let expected = hex::encode(hmac::sign(&key, &message).as_ref());
    assert_eq!(signature, expected);
    // Any other body does not verify.
    let mut other = format!("{timestamp}.").into_bytes();
    other.extend_from_slice(&seen.body[1..]);
    assert!(hmac::verify(&key, &other, &hex::decode(&signature).unwrap()).is_err());

    // Without the setting, requests are not signed.
    let plain = TestGateway::start(&upstream).await;
    plain
        .client()
        .send(&new_instance("unsigned-1"))
        .await
        .assert_code("000000");
    assert!(upstream.last().headers.get("x-koogate-signature").is_none());
}

#[tokio::test]
async fn an_upstream_requiring_client_certificates_is_reached_only_with_one() {
    let server = TestCert::new();
    let client = TestCert::new();
    let upstream = Upstream::start_mtls(
        Behaviour::App,
        &server.cert_path(),
        &server.path().join("key.pem"),
        &client.cert_path(),
    )
    .await;
    let ca = format!("ca_file = \"{}\"\n", server.cert_path().display());

    // No client certificate: the upstream's handshake refuses koogate, KooGallery gets 000005.
    let mut options = Options::new(&upstream);
    options.route_toml = ca.clone();
    let without = TestGateway::start_with(options).await;
    without
        .client()
        .send(&new_instance("mtls-0"))
        .await
        .assert_code("000005");
    assert_eq!(upstream.count(), 0);

    let mut options = Options::new(&upstream);
    options.route_toml = format!(
        "{ca}client_cert_file = \"{}\"\nclient_key_file = \"{}\"\n",
        client.cert_path().display(),
        client.path().join("key.pem").display()
    );
    let with = TestGateway::start_with(options).await;
    let reply = with.client().send(&new_instance("mtls-1")).await;
    reply.assert_code("000000");
    assert_eq!(upstream.count(), 1);
    assert_eq!(upstream.last().json()["orderId"], "mtls-1");
}
