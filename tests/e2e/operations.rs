//! Operations: reload of configuration, keys and certificates under load; draining on shutdown.

use crate::support::client::{send_over, tls_config};
use crate::support::*;
use rustls::pki_types::ServerName;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Sends signed calls with `key`, trusting every certificate in `trusted_pem`; returns the result code.
async fn call_with(addr: std::net::SocketAddr, trusted_pem: &str, key: &str, n: usize) -> String {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = TlsConnector::from(tls_config(trusted_pem, rustls::ALL_VERSIONS));
    let stream = tls
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let mut call = Call::json(
        &json!({"activity":"orderNotify","orderId":"LOAD","orderLineId":format!("LOAD-{n}")}),
    );
    call.key = key.into();
    let reply = send_over(stream, &call).await;
    reply.assert_signed_by(key);
    reply.code()
}

#[tokio::test]
async fn reload_swaps_keys_and_certificates_under_load_and_refuses_a_broken_config() {
    let upstream = Upstream::start(Behaviour::App).await;
    let gateway = TestGateway::start(&upstream).await;
    let original = std::fs::read_to_string(&gateway.config_path).unwrap();
    let old_cert = gateway.cert.cert_pem.clone();
    let new_cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let trusted = format!("{old_cert}{}", new_cert.cert.pem());

    // A steady stream of good calls for the whole test; none may fail.
    let (sent, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (addr, trusted, sent, failed, stop) = (
            gateway.addr,
            trusted.clone(),
            sent.clone(),
            failed.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let n = sent.fetch_add(1, Ordering::SeqCst);
                if call_with(addr, &trusted, KEY, n).await != "000000" {
                    failed.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
    };
    let wait_for_load = |min: usize| {
        let sent = sent.clone();
        async move {
            let target = sent.load(Ordering::SeqCst) + min;
            while sent.load(Ordering::SeqCst) < target {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    wait_for_load(5).await;

    // 1. Rotation step one: a second key, and a new certificate, in one reload.
    let with_new_key = original.replace(
        "[[access_keys]]",
        "[[access_keys]]\nname = \"next\"\nfile = \"next-key\"\n\n[[access_keys]]",
    );
    std::fs::write(gateway.cert.path().join("next-key"), OLD_KEY).unwrap();
    std::fs::write(&gateway.config_path, &with_new_key).unwrap();
    std::fs::write(gateway.cert.path().join("cert.pem"), new_cert.cert.pem()).unwrap();
    std::fs::write(
        gateway.cert.path().join("key.pem"),
        new_cert.signing_key.serialize_pem(),
    )
    .unwrap();
    gateway.reload().await;
    let metrics_ok = |text: &str| metric(text, r#"koogate_config_reloads_total{result="success"}"#);
    while metrics_ok(&gateway.metrics().await) < 1.0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    wait_for_load(5).await;
    assert_eq!(
        call_with(gateway.addr, &new_cert.cert.pem(), OLD_KEY, 10_001).await,
        "000000",
        "the new key verifies"
    );
    assert_eq!(
        call_with(gateway.addr, &new_cert.cert.pem(), KEY, 10_002).await,
        "000000",
        "and so does the old one"
    );

    // 2. A broken config (and a half-written certificate) is refused; the previous one keeps serving.
    std::fs::write(&gateway.config_path, "[server]\nlisten = \"nonsense\"\n").unwrap();
    gateway.reload().await;
    let failures = |text: &str| metric(text, r#"koogate_config_reloads_total{result="failure"}"#);
    while failures(&gateway.metrics().await) < 1.0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    std::fs::write(&gateway.config_path, &with_new_key).unwrap();
    std::fs::write(
        gateway.cert.path().join("cert.pem"),
        "-----BEGIN CERTIFICATE-----\nMIIB",
    )
    .unwrap();
    gateway.reload().await;
    while failures(&gateway.metrics().await) < 2.0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    wait_for_load(5).await;
    assert_eq!(
        call_with(gateway.addr, &new_cert.cert.pem(), OLD_KEY, 10_003).await,
        "000000"
    );

    // 3. Rotation step two: the old key (the harness's KEY) is removed and refused from now on.
    std::fs::write(gateway.cert.path().join("cert.pem"), new_cert.cert.pem()).unwrap();
    let only_new = with_new_key.replace(
        "[[access_keys]]\nname = \"primary\"\nenv = \"KEY_primary\"\n",
        "",
    );
    assert_ne!(only_new, with_new_key, "the old key entry was removed");
    stop.store(true, Ordering::SeqCst);
    load.await.unwrap();
    std::fs::write(&gateway.config_path, &only_new).unwrap();
    gateway.reload().await;
    while metrics_ok(&gateway.metrics().await) < 2.0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        call_with(gateway.addr, &new_cert.cert.pem(), OLD_KEY, 10_004).await,
        "000000"
    );
    let tcp = TcpStream::connect(gateway.addr).await.unwrap();
    let tls = TlsConnector::from(tls_config(&new_cert.cert.pem(), rustls::ALL_VERSIONS));
    let stream = tls
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let mut call =
        Call::json(&json!({"activity":"orderNotify","orderId":"OLD","orderLineId":"OLD-1"}));
    call.key = KEY.into();
    let reply = send_over(stream, &call).await;
    reply.assert_signed_by(OLD_KEY);
    assert_eq!(reply.code(), "000001", "the removed key is refused");

    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "every call of the stream succeeded across the reloads"
    );
    assert!(sent.load(Ordering::SeqCst) >= 15);
    let metrics = gateway.metrics().await;
    assert!(metric(&metrics, "koogate_certificate_expiry_timestamp_seconds") > 1.7e9);
    assert!(
        metric(
            &metrics,
            "koogate_config_last_reload_success_timestamp_seconds"
        ) > 1.7e9
    );
}

#[tokio::test]
async fn draining_keeps_serving_while_not_ready_then_closes_and_finishes_in_flight_calls() {
    let upstream = Upstream::start(Behaviour::Slow(Duration::from_millis(700), "{}".into())).await;
    let mut options = Options::new(&upstream);
    options.server_toml = "drain_delay_ms = 400".into();
    let mut gateway = TestGateway::start_with(options).await;
    let client = gateway.client();
    let in_flight = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .send(&Call::json(
                    &json!({"activity":"orderNotify","orderId":"D","orderLineId":"D-1"}),
                ))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (admin, addr) = (gateway.admin, gateway.addr);
    let run = gateway.begin_shutdown();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        client::admin_get(admin, "/readyz").await.unwrap().0,
        503,
        "not ready first"
    );
    // During the drain delay a new connection is still served.
    upstream.set(Behaviour::App);
    client
        .send(&Call::json(
            &json!({"activity":"orderNotify","orderId":"D","orderLineId":"D-2"}),
        ))
        .await
        .assert_code("000000");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener is closed after the drain delay"
    );
    in_flight.await.unwrap().assert_code("000000");
    tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn watching_files_triggers_one_reload_per_burst_of_changes() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("access-key");
    std::fs::write(&secret, "v1").unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(8);
    let _watcher = koogate::reload::watch_files(
        std::slice::from_ref(&secret),
        Duration::from_millis(150),
        tx,
    )
    .unwrap();
    // A burst, as a Kubernetes Secret update (write a new file, swap the name) produces.
    for i in 0..5 {
        std::fs::write(dir.path().join("access-key.tmp"), format!("v{i}")).unwrap();
        std::fs::rename(dir.path().join("access-key.tmp"), &secret).unwrap();
    }
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("a reload was triggered")
        .unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(400), rx.recv())
            .await
            .is_err(),
        "one reload for the whole burst"
    );
}
