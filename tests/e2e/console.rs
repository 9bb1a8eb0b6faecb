//! The console page in a real browser: a gateway (its clock moved day by day, so the journal holds probes of
//! earlier days written by the real request path), signed calls over TLS, then headless Chromium loads the page,
//! runs its script under the page's Content-Security-Policy, and the test reads the DOM it ends with.

use crate::support::client::{admin_get, Call};
use crate::support::*;
use koogate::clock::{Clock, ManualClock};
use koogate::protocol::fields::{FieldCipher, FieldKey};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DAY_MS: u64 = 86_400_000;
/// Distinctive personal data: none of it may appear in anything the page loads.
const PHONE: &str = "+8613900112233";
const EMAIL: &str = "console-buyer-7q@example.com";
const CUSTOMER_NAME: &str = "Zhang Consoletest";
const APP_PASSWORD: &str = "Pw-Console-9xQ!z";

/// Chromium from Debian (`chromium`), or `KOOGATE_CHROMIUM`; tests/run.sh installs it.
pub fn chromium() -> PathBuf {
    let path = std::env::var_os("KOOGATE_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    assert!(
        path.exists(),
        "{} is missing: install Debian's chromium (tests/run.sh does)",
        path.display()
    );
    path
}

/// Runs headless Chromium on `url` with `args`; returns (stdout, stderr). Bounded: killed after 60 s.
pub fn run_chromium(args: &[String], url: &str) -> (String, String) {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium starts");
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("chromium did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn probe(clock: &ManualClock, order: &str) -> Call {
    let mut call = Call::json(&json!({
        "activity": "newInstance",
        "businessId": "1a2b3c4d-0000-0000-0000-000000000001",
        "orderId": order,
        "orderLineId": format!("{order}-000001"),
        "testFlag": "1"
    }));
    call.timestamp = clock.now_ms().to_string();
    call
}

fn buyer_call(clock: &ManualClock, order: &str) -> Call {
    let k = FieldKey::derive(KEY.as_bytes(), FieldCipher::Aes256Cbc);
    let mut call = Call::json(&json!({
        "activity": "newInstance",
        "buyerInfo": {
            "customerId": "68cbc86abc2018ab880d92f36422fa0e",
            "customerName": CUSTOMER_NAME,
            "userId": "0f6e1c2d3b4a59687766554433221100",
            "userName": "zhang",
            "mobilePhone": k.encrypt(PHONE),
            "email": k.encrypt(EMAIL)
        },
        "orderInfo": [{
            "businessId": "9b3f2a10-5c4d-4e6f-8a7b-1c2d3e4f5a6b",
            "orderId": order,
            "orderLineId": format!("{order}-000001"),
            "trialFlag": "0",
            "chargingMode": "PERIOD",
            "periodType": "month",
            "periodNumber": 1,
            "productInfo": [{"skuCode": "a1b2c3d4-sku-standard", "productId": "OFFI000000000000001"}],
            "createTime": "20250601120000",
            "expireTime": "20251101120000"
        }]
    }));
    call.timestamp = clock.now_ms().to_string();
    call
}

fn refresh_call(clock: &ManualClock, instance: &str) -> Call {
    let mut call = Call::json(&json!({
        "activity": "refreshInstance",
        "scene": "RENEWAL",
        "instanceId": instance,
        "orderId": "CS-REFRESH-1",
        "orderLineId": "CS-REFRESH-1-000001",
        "expireTime": "20271101120000"
    }));
    call.timestamp = clock.now_ms().to_string();
    call
}

fn no_personal_data(what: &str, text: &str) {
    for secret in [PHONE, EMAIL, CUSTOMER_NAME, APP_PASSWORD] {
        assert!(
            !text.contains(secret),
            "{what} shows personal data {secret:?}"
        );
    }
}

/// The request id of the calls-table row for `order`, from the page's HTML.
fn request_id_of(html: &str, order: &str) -> String {
    html.split(r#"<tr class="call" data-id=""#)
        .skip(1)
        .find(|row| row.split("</tr>").next().unwrap().contains(order))
        .and_then(|row| row.split('"').next())
        .unwrap_or_else(|| panic!("no row for {order}"))
        .to_owned()
}

fn screenshot_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshot.png")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_calls_health_and_the_at_risk_banner_in_a_real_browser() {
    let password_answer = json!({"instanceId": "inst-console-1",
        "appInfo": {"frontEndUrl": "https://app.example/", "userName": "admin", "password": APP_PASSWORD}});
    let upstream = Upstream::start(Behaviour::Answer(200, password_answer.to_string())).await;
    let clock = Arc::new(ManualClock::new(client::now_ms() - 3 * DAY_MS));
    let mut options = Options::new(&upstream);
    options.clock = Some(clock.clone() as Arc<dyn Clock>);
    let gateway = TestGateway::start_with(options).await;
    let client = gateway.client();
    let ok = Behaviour::Answer(200, password_answer.to_string());

    // Three days ago: a buyer's order and a passing probe. Then two days of failing probes (the app answers 500).
    client
        .send(&buyer_call(&clock, "CS-DAY3-BUYER"))
        .await
        .assert_code("000000");
    client
        .send(&probe(&clock, "CS-PROBE-D3"))
        .await
        .assert_code("000000");
    upstream.set(Behaviour::Answer(500, "down".into()));
    for day in ["CS-PROBE-D2", "CS-PROBE-D1"] {
        clock.advance(DAY_MS);
        client.send(&probe(&clock, day)).await.assert_code("000005");
    }
    // Today: a buyer's order that succeeds, one that fails, a refresh, and a failing probe.
    clock.advance(DAY_MS);
    upstream.set(ok.clone());
    client
        .send(&buyer_call(&clock, "CS-TODAY-BUYER"))
        .await
        .assert_code("000000");
    upstream.set(Behaviour::Answer(200, json!({}).to_string()));
    client
        .send(&refresh_call(&clock, "inst-console-1"))
        .await
        .assert_code("000000");
    upstream.set(Behaviour::Answer(500, "down".into()));
    client
        .send(&buyer_call(&clock, "CS-TODAY-FAIL"))
        .await
        .assert_code("000005");
    client
        .send(&probe(&clock, "CS-PROBE-D0"))
        .await
        .assert_code("000005");

    // Plain HTTP first: the page, its live part and its assets, none with personal data.
    let (status, html) = admin_get(gateway.admin, "/console").await.unwrap();
    assert_eq!(status, 200, "{html}");
    let (_, live) = admin_get(gateway.admin, "/console/live").await.unwrap();
    let (_, script) = admin_get(gateway.admin, "/console/console.js")
        .await
        .unwrap();
    let (_, style) = admin_get(gateway.admin, "/console/console.css")
        .await
        .unwrap();
    let (_, filtered) = admin_get(gateway.admin, "/console/live?order=TODAY-BUYER&result=ok")
        .await
        .unwrap();
    for (what, text) in [
        ("page", &html),
        ("live part", &live),
        ("script", &script),
        ("style", &style),
        ("filtered", &filtered),
    ] {
        no_personal_data(what, text);
    }
    assert!(
        filtered.contains("CS-TODAY-BUYER")
            && !filtered.contains("CS-DAY3-BUYER")
            && !filtered.contains("CS-REFRESH-1"),
        "{filtered}"
    );
    assert!(live.contains("CS-DAY3-BUYER") && live.contains("CS-REFRESH-1"));
    let refresh_id = request_id_of(&html, "CS-REFRESH-1");

    // The browser: loads the page with the refresh call's details asked for, lets its script refresh once.
    let url = format!("http://{}/console#call-{refresh_id}", gateway.admin);
    let (dom, log) = tokio::task::spawn_blocking({
        let url = url.clone();
        move || {
            run_chromium(
                &["--virtual-time-budget=3000".into(), "--dump-dom".into()],
                &url,
            )
        }
    })
    .await
    .unwrap();
    no_personal_data("the browser's DOM", &dom);
    assert!(
        !log.contains("Content Security Policy") && !log.contains("Refused to"),
        "CSP blocked something:\n{log}"
    );
    assert!(
        dom.contains(r#"data-state="live""#),
        "the script did not refresh the page:\n{dom}\n{log}"
    );

    // The banner: probes failed on 3 consecutive days (two days ago, yesterday, today).
    let banner = dom
        .split(r#"<div id="banner""#)
        .nth(1)
        .expect("a banner")
        .split("</div>")
        .next()
        .unwrap();
    assert!(
        banner.contains("at-risk")
            && banner.contains("3 consecutive days")
            && banner.contains("2 left"),
        "{banner}"
    );

    // Health: newInstance had 3 calls in 24 h (1 succeeded), 7 over 7 days (3 succeeded); refreshInstance 1 of 1.
    let health = dom
        .split(r#"<table id="health">"#)
        .nth(1)
        .unwrap()
        .split("</table>")
        .next()
        .unwrap();
    let row = |activity: &str| {
        health
            .split("<tr>")
            .find(|r| r.starts_with(&format!(r#"<td class="">{activity}</td>"#)))
            .unwrap_or_else(|| panic!("no health row for {activity}: {health}"))
            .to_owned()
    };
    let new_instance = row("newInstance");
    for figure in [">3<", "33.3 %", ">7<", "42.9 %", "000005 upstream_status"] {
        assert!(
            new_instance.contains(figure),
            "{figure} missing: {new_instance}"
        );
    }
    assert!(row("refreshInstance").contains("100.0 %"));

    // The calls table: every call, newest first, with test/real, code, reason and ids.
    let calls = dom
        .split(r#"<table id="calls">"#)
        .nth(1)
        .unwrap()
        .split("</table>")
        .next()
        .unwrap();
    let rows: Vec<&str> = calls.split(r#"<tr class="call""#).skip(1).collect();
    assert_eq!(rows.len(), 8, "{calls}");
    assert!(
        rows[0].contains("000005")
            && rows[0].contains(">test<")
            && rows[0].contains("upstream_status")
    );
    assert!(
        rows[2].contains("CS-REFRESH-1")
            && rows[2].contains("inst-console-1")
            && rows[2].contains(">real<")
    );
    assert!(rows[7].contains("CS-DAY3-BUYER") && rows[7].contains("000000"));
    // The click target: the refresh call's details are open (the script opened them from the address).
    let detail = calls
        .split(&format!(r#"id="detail-{refresh_id}""#))
        .nth(1)
        .unwrap()
        .split("</tr>")
        .next()
        .unwrap();
    assert!(
        !detail.starts_with(" hidden"),
        "details not opened: {detail}"
    );
    assert!(
        detail.contains("The call, normalised") && detail.contains("CS-REFRESH-1-000001"),
        "{detail}"
    );
    assert!(
        detail.contains("<dt>route</dt><dd>app</dd>")
            && detail.contains("<dt>instanceId</dt><dd>inst-console-1</dd>"),
        "{detail}"
    );
    // The route's last failure (the failing probe, after the last success) is marked.
    let routes = dom.split(r#"<table id="routes">"#).nth(1).unwrap();
    assert!(
        routes.contains(r#"<td class="bad">"#) && routes.contains("upstream_status"),
        "{routes}"
    );

    // Status tables: the route's last failure, the key's last use, the healthy store, the certificate.
    for id in ["certificate", "keys", "routes", "store"] {
        assert!(
            dom.contains(&format!(r#"<table id="{id}">"#)),
            "no {id} table"
        );
    }
    let keys = dom
        .split(r#"<table id="keys">"#)
        .nth(1)
        .unwrap()
        .split("</table>")
        .next()
        .unwrap();
    assert!(
        keys.contains("primary") && !keys.contains("never"),
        "{keys}"
    );
    assert!(
        dom.contains("taking commits") && dom.contains("localhost"),
        "store or certificate missing"
    );

    let shot = screenshot_path();
    let _ = std::fs::remove_file(&shot);
    let (_, log) = tokio::task::spawn_blocking(move || {
        run_chromium(
            &[
                "--virtual-time-budget=3000".into(),
                "--window-size=1400,1900".into(),
                "--hide-scrollbars".into(),
                format!("--screenshot={}", screenshot_path().display()),
            ],
            &url,
        )
    })
    .await
    .unwrap();
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 10_000,
        "no screenshot at {} ({size} bytes):\n{log}",
        shot.display()
    );
    println!("console screenshot: {}", shot.display());
}
