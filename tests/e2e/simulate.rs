//! `koogate simulate` (the real binary) against koogate in front of the example Python app, and against
//! deliberately broken targets: each failure is reported with the right reason and a non-zero exit.

use crate::support::*;
use base64::{engine::general_purpose::STANDARD, Engine};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

/// Runs `koogate simulate --json --ca CA` and returns (exit success, report).
async fn simulate(url: &str, ca: &Path, extra: &[&str]) -> (bool, Value) {
    let mut args = vec!["--ca".to_owned(), ca.display().to_string()];
    args.extend(extra.iter().map(|s| s.to_string()));
    simulate_with(url, KEY, args).await
}

/// Runs `koogate simulate --json --url URL` with `key` and `args`; returns (exit success, report).
async fn simulate_with(url: &str, key: &str, args: Vec<String>) -> (bool, Value) {
    let (url, key) = (url.to_owned(), key.to_owned());
    tokio::task::spawn_blocking(move || {
        let output = Command::new(env!("CARGO_BIN_EXE_koogate"))
            .args([
                "simulate",
                "--json",
                "--url",
                &url,
                "--key-env",
                "SIMULATE_KEY",
            ])
            .args(&args)
            .env("SIMULATE_KEY", key)
            .output()
            .unwrap();
        let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|_| {
            panic!(
                "no JSON report: {}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
        (output.status.success(), report)
    })
    .await
    .unwrap()
}

fn failures(report: &Value) -> Vec<String> {
    report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == false)
        .map(|c| {
            format!(
                "{}: {}",
                c["name"].as_str().unwrap(),
                c["reason"].as_str().unwrap_or("")
            )
        })
        .collect()
}

#[tokio::test]
async fn simulate_passes_every_case_against_koogate_in_front_of_the_python_app() {
    let app = crate::python_app::PythonApp::start();
    let placeholder = Upstream::start(Behaviour::App).await;
    let mut options = Options::new(&placeholder);
    options.v1_toml = "enabled = true".into();
    options.upstream_url = app.url();
    let gateway = TestGateway::start_with(options).await;
    let url = format!("https://localhost:{}/koogallery", gateway.addr.port());
    for extra in [&[][..], &["--v1"][..]] {
        let (ok, report) = simulate(&url, &gateway.cert.cert_path(), extra).await;
        assert!(ok, "{extra:?}: {:#?}", failures(&report));
        assert!(report["passed"].as_u64().unwrap() >= 8, "{report:#}");
        assert_eq!(report["failed"], 0);
    }
}

/// How a broken target answers.
#[derive(Clone, Copy)]
enum Broken {
    NoBodySign,
    WrongBodySign,
    NewInstanceIdEachTime,
    Slow,
    NoFrontEndUrl,
    Http500,
    /// Accepts every call, forged or replayed.
    NoVerification,
}

/// A TLS server that answers KooGallery calls like an app, except for one flaw.
async fn broken_target(flaw: Broken, cert: &TestCert) -> String {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        rustls::pki_types::pem::PemObject::pem_file_iter(cert.cert_path())
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap(),
        rustls::pki_types::pem::PemObject::from_pem_file(cert.path().join("key.pem")).unwrap(),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let service = service_fn(
                    move |request: hyper::Request<hyper::body::Incoming>| async move {
                        Ok::<_, Infallible>(answer(flaw, request).await)
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    format!("https://localhost:{port}/koogallery")
}

async fn answer(
    flaw: Broken,
    request: hyper::Request<hyper::body::Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let query = request.uri().query().unwrap_or("").to_owned();
    let body = request.into_body().collect().await.unwrap().to_bytes();
    let call: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    // Forged or replayed probes: a real app refuses them; so does this one (a crude nonce memory is enough).
    static SEEN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let replay = !SEEN.lock().unwrap().iter().all(|q| q != &query) || !query.contains("signature=");
    SEEN.lock().unwrap().push(query.clone());
    let sig_ok = signature_ok(&query, &body);
    let refuse = !matches!(flaw, Broken::NoVerification) && (replay || !sig_ok);
    let reply = if refuse {
        json!({"resultCode":"000001","resultMsg":"authentication failed"})
    } else {
        match call["activity"].as_str() {
            Some("newInstance") => {
                let id = match flaw {
                    Broken::NewInstanceIdEachTime => {
                        format!("inst-{}", hex::encode(rand::random::<[u8; 6]>()))
                    }
                    _ => "inst-stable".to_owned(),
                };
                json!({"resultCode":"000000","resultMsg":"success.","instanceId":id})
            }
            Some("queryInstance") => {
                let app_info = match flaw {
                    Broken::NoFrontEndUrl => json!({"adminUrl":"https://admin.example/"}),
                    _ => json!({"frontEndUrl":"https://app.example/"}),
                };
                json!({"resultCode":"000000","resultMsg":"success.","info":[{"instanceId":"inst-stable","appInfo":app_info}]})
            }
            _ => json!({"resultCode":"000000","resultMsg":"success."}),
        }
    };
    if let Broken::Slow = flaw {
        tokio::time::sleep(Duration::from_millis(800)).await;
    }
    let bytes = reply.to_string().into_bytes();
    let mut response = hyper::Response::new(Full::new(Bytes::from(bytes.clone())));
    let key: &[u8] = if let Broken::WrongBodySign = flaw {
        b"another-key"
    } else {
        KEY.as_bytes()
    };
    let sign = STANDARD.encode(
        ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key), &bytes).as_ref(),
    );
    if !matches!(flaw, Broken::NoBodySign) {
        response.headers_mut().insert(
            "Body-Sign",
            format!("sign_type=\"HMAC-SHA256\", signature= \"{sign}\"")
                .parse()
                .unwrap(),
        );
    }
    if let Broken::Http500 = flaw {
        *response.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
    }
    response
}

fn signature_ok(query: &str, body: &[u8]) -> bool {
    let get = |name: &str| {
        query
            .split('&')
            .find_map(|p| p.strip_prefix(&format!("{name}=")))
            .unwrap_or("")
            .to_owned()
    };
    let (signature, timestamp, nonce) = (get("signature"), get("timestamp"), get("nonce"));
    client::sign_v2(KEY, &nonce, &timestamp, body).eq_ignore_ascii_case(&signature)
}

#[tokio::test]
async fn simulate_reports_each_broken_target_with_the_right_reason_and_fails() {
    let cert = TestCert::new();
    let cases: [(Broken, &[&str], &str); 6] = [
        (Broken::NoBodySign, &[], "http header->bodySign is empty"),
        (
            Broken::WrongBodySign,
            &[],
            "Body-Sign does not match the body: expected sign_type=\"HMAC-SHA256\", signature= \"",
        ),
        (Broken::NewInstanceIdEachTime, &[], "must be idempotent"),
        (
            Broken::Slow,
            &["--timeout-ms", "300"],
            "no answer within 300 ms",
        ),
        (Broken::NoFrontEndUrl, &[], "appInfo.frontEndUrl is missing"),
        (Broken::Http500, &[], "HTTP 500"),
    ];
    for (flaw, extra, reason) in cases {
        let url = broken_target(flaw, &cert).await;
        let (ok, report) = simulate(&url, &cert.cert_path(), extra).await;
        assert!(!ok, "{reason}: simulate must exit non-zero");
        let found = failures(&report);
        assert!(
            found.iter().any(|f| f.contains(reason)),
            "expected a failure with {reason:?}, got {found:#?}"
        );
    }
}

#[tokio::test]
async fn simulate_refuses_a_tls_1_1_only_server() {
    let cert = TestCert::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new("openssl")
        .args([
            "s_server",
            "-tls1_1",
            "-cipher",
            "DEFAULT@SECLEVEL=0",
            "-www",
            "-accept",
            &port.to_string(),
            "-cert",
        ])
        .arg(cert.cert_path())
        .arg("-key")
        .arg(cert.path().join("key.pem"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl is installed");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let url = format!("https://localhost:{port}/koogallery");
    let (ok, report) = simulate(
        &url,
        &cert.cert_path(),
        &[
            "--case",
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/config/cases/08-orderNotify.toml"
            ),
        ],
    )
    .await;
    let _ = server.kill();
    let _ = server.wait();
    assert!(!ok);
    let found = failures(&report);
    assert!(found.iter().any(|f| f.contains("TLS 1.2")), "{found:#?}");
}

#[tokio::test]
async fn simulate_calls_a_target_that_accepts_forged_calls_a_security_failure() {
    let cert = TestCert::new();
    let url = broken_target(Broken::NoVerification, &cert).await;
    let (ok, report) = simulate(&url, &cert.cert_path(), &[]).await;
    assert!(!ok);
    let found = failures(&report);
    assert!(
        found.iter().any(|f| f.contains(
            "tampered signature is refused: SECURITY: the target does not verify signatures"
        )),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|f| f.contains("SECURITY: the target does not check nonces")),
        "{found:#?}"
    );
}

#[tokio::test]
async fn simulate_names_a_wrong_key_as_the_cause_and_shows_what_the_target_said() {
    let upstream = Upstream::start(Behaviour::App).await;
    let gateway = TestGateway::start(&upstream).await;
    let url = format!("https://localhost:{}/koogallery", gateway.addr.port());
    let ca = gateway.cert.cert_path().display().to_string();
    let (ok, report) = simulate_with(&url, OLD_KEY, vec!["--ca".into(), ca, "-v".into()]).await;
    assert!(!ok);
    let first = &report["cases"][0];
    assert!(
        first["reason"]
            .as_str()
            .unwrap()
            .starts_with("authentication failed (000001): the target refused the call's signature"),
        "{first:#}"
    );
    // What the console shows too: the message, the HTTP status and koogate's request id (to find it in the logs).
    assert_eq!(first["resultCode"], "000001");
    assert_eq!(first["httpStatus"], 200);
    assert!(
        first["resultMsg"].as_str().is_some_and(|m| !m.is_empty()),
        "{first:#}"
    );
    assert_eq!(
        first["requestId"].as_str().map(str::len),
        Some(32),
        "{first:#}"
    );
    assert!(first["body"].as_str().unwrap().contains("000001"));
    assert!(
        report["version"].is_string()
            && report["startedAt"].is_string()
            && report["finishedAt"].is_string()
    );
    assert!(upstream.received().is_empty(), "nothing reached the app");
    // Without -v the report keeps no answer bodies.
    let ca = gateway.cert.cert_path().display().to_string();
    let (_, quiet) = simulate_with(&url, OLD_KEY, vec!["--ca".into(), ca]).await;
    assert!(quiet["cases"][0].get("body").is_none(), "{quiet:#}");
}

#[tokio::test]
async fn simulate_stops_at_the_first_transport_failure_with_one_message() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Nothing listens there any more.
    let url = format!("https://localhost:{port}/koogallery");
    let (ok, report) = simulate_with(&url, KEY, vec!["--insecure".into()]).await;
    assert!(!ok);
    let cases = report["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 1, "one failure, not one per case: {report:#}");
    assert!(
        report["stopped"]
            .as_str()
            .unwrap()
            .contains("connection refused"),
        "{report:#}"
    );
    assert!(report["notRun"].as_u64().unwrap() >= 9, "{report:#}");
}

#[tokio::test]
async fn simulate_refuses_an_http_url_unless_plain_is_asked_for() {
    let output = Command::new(env!("CARGO_BIN_EXE_koogate"))
        .args([
            "simulate",
            "--url",
            "http://127.0.0.1:9/koogallery",
            "--key-env",
            "SIMULATE_KEY",
        ])
        .env("SIMULATE_KEY", KEY)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("KooGallery only calls https:// production URLs"),
        "{stderr}"
    );
    assert!(stderr.contains("--plain"), "{stderr}");
}

#[tokio::test]
async fn simulate_tests_a_plain_http_listener_with_plain() {
    let upstream = Upstream::start(Behaviour::App).await;
    let mut options = Options::new(&upstream);
    options.plain_http = true;
    let gateway = TestGateway::start_with(options).await;
    let plain = gateway.plain.expect("plain listener");
    let url = format!("http://127.0.0.1:{}/koogallery", plain.port());
    let (ok, report) = simulate_with(&url, KEY, vec!["--plain".into()]).await;
    assert!(ok, "{:#?}", failures(&report));
}

#[tokio::test]
async fn simulate_insecure_skips_the_certificate_check_and_says_so() {
    let upstream = Upstream::start(Behaviour::App).await;
    let gateway = TestGateway::start(&upstream).await;
    let url = format!("https://localhost:{}/koogallery", gateway.addr.port());
    // Without --ca or --insecure the self-signed certificate is not trusted, with advice about CA and leaf.
    let (ok, report) = simulate_with(&url, KEY, vec![]).await;
    assert!(!ok);
    assert!(
        report["stopped"]
            .as_str()
            .unwrap()
            .contains("--ca FILE with the CA certificate that issued it"),
        "{report:#}"
    );
    let (ok, report) = simulate_with(&url, KEY, vec!["--insecure".into()]).await;
    assert!(ok, "{:#?}", failures(&report));
    assert_eq!(report["insecure"], true);
    // The table says it too.
    let output = Command::new(env!("CARGO_BIN_EXE_koogate"))
        .args([
            "simulate",
            "--insecure",
            "--url",
            &url,
            "--key-env",
            "SIMULATE_KEY",
        ])
        .env("SIMULATE_KEY", KEY)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains("certificate is NOT checked"), "{table}");
    assert!(!table.contains('\u{1b}'), "NO_COLOR: {table}");
}

#[tokio::test]
async fn simulate_marks_answers_from_records_and_uses_fresh_order_ids_by_default() {
    let upstream = Upstream::start(Behaviour::App).await;
    let gateway = TestGateway::start(&upstream).await;
    let url = format!("https://localhost:{}/koogallery", gateway.addr.port());
    let ca = gateway.cert.cert_path().display().to_string();
    let new_instance = |report: &Value| report["cases"][0].clone();
    // The console's fixed ids, twice: the second run's newInstance is answered from koogate's record.
    let args = vec!["--ca".to_owned(), ca.clone(), "--console-ids".to_owned()];
    let (ok, first) = simulate_with(&url, KEY, args.clone()).await;
    assert!(ok, "{:#?}", failures(&first));
    assert_eq!(new_instance(&first)["fromRecord"], false);
    assert_eq!(
        first["cases"][1]["fromRecord"], true,
        "the retry case is a record"
    );
    let (_, second) = simulate_with(&url, KEY, args).await;
    assert_eq!(new_instance(&second)["fromRecord"], true, "{second:#}");
    // By default each run has its own order ids: the app is asked again.
    let calls_before = upstream.received().len();
    let (ok, third) = simulate_with(&url, KEY, vec!["--ca".to_owned(), ca]).await;
    assert!(ok, "{:#?}", failures(&third));
    assert_eq!(new_instance(&third)["fromRecord"], false, "{third:#}");
    let received = upstream.received();
    let fresh = received[calls_before..]
        .iter()
        .find(|r| r.json()["activity"] == "newInstance")
        .expect("the app got newInstance");
    let order = fresh.json()["orderId"].as_str().unwrap().to_owned();
    assert!(
        order.starts_with("MOCKPERIODYEARNEW-") && order.len() > 18,
        "{order}"
    );
    assert!(fresh.json()["orderLineId"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{order}-")));
}

#[tokio::test]
async fn simulate_runs_query_instance_alone_with_an_instance_id_and_writes_junit() {
    let upstream = Upstream::start(Behaviour::App).await;
    let gateway = TestGateway::start(&upstream).await;
    let url = format!("https://localhost:{}/koogallery", gateway.addr.port());
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("simulate.xml");
    let case = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/cases/03-queryInstance.toml"
    );
    let (ok, report) = simulate(
        &url,
        &gateway.cert.cert_path(),
        &["--case", case, "--junit", junit.to_str().unwrap()],
    )
    .await;
    assert!(!ok);
    assert!(
        failures(&report)[0].contains("pass --instance-id ID"),
        "{report:#}"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains("<testsuite name=\"koogate simulate\" tests=\"1\" failures=\"1\""),
        "{xml}"
    );
    assert!(
        xml.contains("<failure message=\"case not runnable"),
        "{xml}"
    );

    let (ok, report) = simulate(
        &url,
        &gateway.cert.cert_path(),
        &[
            "--case",
            case,
            "--instance-id",
            "inst-42",
            "--junit",
            junit.to_str().unwrap(),
        ],
    )
    .await;
    assert!(ok, "{:#?}", failures(&report));
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains("failures=\"0\"")
            && xml.contains("<testcase classname=\"koogate.simulate\" name=\"queryInstance\""),
        "{xml}"
    );
    let asked = upstream.received();
    assert_eq!(asked.last().unwrap().json()["instanceIds"][0], "inst-42");
}
