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

/// Runs `koogate simulate --json` and returns (exit success, report).
async fn simulate(url: &str, ca: &Path, extra: &[&str]) -> (bool, Value) {
    let (url, ca) = (url.to_owned(), ca.to_owned());
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let output = Command::new(env!("CARGO_BIN_EXE_koogate"))
            .args([
                "simulate",
                "--json",
                "--url",
                &url,
                "--key-env",
                "SIMULATE_KEY",
                "--ca",
            ])
            .arg(&ca)
            .args(&extra)
            .env("SIMULATE_KEY", KEY)
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
    let reply = if replay || !sig_ok {
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
