//! The real `koogate run` binary: configuration from a file and the environment, JSON logs, SIGTERM drain.

use crate::support::process::GatewayProcess;
use crate::support::*;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn the_binary_serves_drains_on_sigterm_and_logs_no_secrets() {
    let upstream = Upstream::start(Behaviour::Slow(
        Duration::from_millis(700),
        r#"{"instanceId":"bin-1"}"#.into(),
    ))
    .await;
    let cert = TestCert::new();
    let config = crate::support::process::config(
        &upstream.url(),
        "backend = \"local\"\ndata_dir = \"data\"\njournal_key_env = \"KOOGATE_JOURNAL_KEY\"",
    );
    let process = GatewayProcess::spawn(
        cert.path(),
        &config,
        &[
            ("TEST_KOOGATE_KEY", KEY),
            ("KOOGATE_JOURNAL_KEY", JOURNAL_KEY),
        ],
    );
    let (https, admin) = (process.https, process.admin);
    let client = client::Client::new(https, &cert.cert_pem);

    let call = Call::json(
        &json!({"activity":"newInstance","businessId":"b","orderId":"BIN-ORDER","orderLineId":"l"}),
    );
    let in_flight = {
        let (client, call) = (client.clone(), call.clone());
        tokio::spawn(async move { client.send(&call).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(upstream.count(), 1);
    process.signal("-TERM");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let ready = client::admin_get(admin, "/readyz").await;
    assert!(
        ready.map_or(true, |(status, _)| status == 503),
        "not ready while draining"
    );

    let reply = in_flight.await.unwrap();
    reply.assert_code("000000");
    assert_eq!(reply.json()["instanceId"], "bin-1");
    let (code, logs) = tokio::task::spawn_blocking(move || process.wait_with_logs())
        .await
        .unwrap();
    assert_eq!(code, Some(0), "exit code after a clean drain");
    assert!(
        logs.contains("\"result_code\":\"000000\""),
        "one line per request: {logs}"
    );
    let query = call.signed_query();
    let signature = query
        .split('&')
        .next()
        .unwrap()
        .trim_start_matches("signature=");
    for secret in [KEY, signature, call.nonce.as_str()] {
        assert!(
            !logs.contains(secret),
            "logs contain a secret or signature: {logs}"
        );
    }
}

#[tokio::test]
async fn sighup_reloads_the_running_binary_with_a_new_key() {
    let upstream = Upstream::start(Behaviour::App).await;
    let dir = TestCert::new();
    let config = crate::support::process::config(&upstream.url(), "backend = \"memory\"");
    let process = GatewayProcess::spawn(dir.path(), &config, &[("TEST_KOOGATE_KEY", KEY)]);
    let client = client::Client::new(process.https, &dir.cert_pem);
    let call = |key: &str, line: &str| {
        let mut call =
            Call::json(&json!({"activity":"orderNotify","orderId":"HUP","orderLineId":line}));
        call.key = key.into();
        call
    };
    let refused = client.send(&call(OLD_KEY, "HUP-1")).await;
    refused.assert_signed_by(KEY);
    assert_eq!(
        refused.code(),
        "000001",
        "the second key is not configured yet"
    );

    // Add the key in the config file the process was started with, then SIGHUP.
    std::fs::write(dir.path().join("next-key"), OLD_KEY).unwrap();
    let path = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "toml"))
        .unwrap();
    std::fs::write(
        &path,
        config.replace(
            "[upstream]",
            "[[access_keys]]\nname = \"next\"\nfile = \"next-key\"\n[upstream]",
        ),
    )
    .unwrap();
    assert!(std::process::Command::new("kill")
        .args(["-HUP", &process.child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let started = std::time::Instant::now();
    loop {
        let metrics = client::admin_get(process.admin, "/metrics")
            .await
            .unwrap()
            .1;
        if metric(
            &metrics,
            r#"koogate_config_reloads_total{result="success"}"#,
        ) >= 1.0
        {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "no reload after SIGHUP"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let accepted = client.send(&call(OLD_KEY, "HUP-2")).await;
    accepted.assert_signed_by(OLD_KEY);
    assert_eq!(accepted.code(), "000000");
    assert_eq!(process.terminate(), Some(0));
}
