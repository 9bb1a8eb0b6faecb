//! `check` and `run` agree on what stops a start: the real binary on a config with a broken data directory or an
//! expired certificate, `check`'s error count including the certificate, and `run`'s one start summary line.

use crate::support::process::GatewayProcess;
use crate::support::{TestCert, JOURNAL_KEY, KEY};
use std::path::Path;
use std::process::{Command, Stdio};

const STORE: &str =
    "backend = \"local\"\ndata_dir = \"data\"\njournal_key_env = \"KOOGATE_JOURNAL_KEY\"";
const ENV: [(&str, &str); 2] = [
    ("TEST_KOOGATE_KEY", KEY),
    ("KOOGATE_JOURNAL_KEY", JOURNAL_KEY),
];

/// Runs `koogate <command> --config <dir>/koogate.toml` to completion: exit code and standard error.
fn koogate(command: &str, dir: &Path, config: &str) -> (Option<i32>, String) {
    let path = dir.join("koogate.toml");
    std::fs::write(&path, config).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_koogate"));
    child
        .args([command, "--config"])
        .arg(&path)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .envs(ENV);
    let output = child.output().unwrap();
    (
        output.status.code(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

fn config() -> String {
    crate::support::process::config("http://127.0.0.1:9/app", STORE)
}

#[test]
fn check_counts_the_certificate_among_the_configuration_errors() {
    let dir = tempfile::tempdir().unwrap();
    // No cert.pem or key.pem in the directory, one misspelt key and one mistyped value.
    let text = config()
        .replace("format = \"json\"", "formt = \"json\"")
        .replace("mode = \"forward\"", "mode = 1");
    let (code, report) = koogate("check", dir.path(), &text);
    assert_eq!(code, Some(1), "{report}");
    assert!(
        report.contains("3 configuration error(s):"),
        "two in the file and the certificate:\n{report}"
    );
    assert!(
        report.contains("error: log.formt: unknown key `formt`; did you mean `format`?"),
        "{report}"
    );
    let line = text.lines().position(|l| l.contains("formt")).unwrap() + 1;
    assert!(
        report.contains(&format!(
            "at:       line {line}, column 1: formt = \"json\""
        )),
        "{report}"
    );
    assert!(
        report.contains("error: test_calls.mode: invalid type"),
        "{report}"
    );
    assert!(
        report.contains("error: server.cert_chain_file: "),
        "{report}"
    );
}

#[test]
fn check_and_run_name_a_data_dir_that_is_a_file() {
    let cert = TestCert::new();
    std::fs::write(cert.path().join("data"), "not a directory").unwrap();
    let shown = cert.path().join("data").display().to_string();

    let (code, report) = koogate("check", cert.path(), &config());
    assert_eq!(code, Some(1), "{report}");
    assert!(report.contains("1 configuration error(s):"), "{report}");
    assert!(
        report.contains(&format!(
            "error: store.data_dir: {shown} exists but is not a directory"
        )),
        "{report}"
    );

    let (code, logs) = koogate("run", cert.path(), &config());
    assert_ne!(code, Some(0), "{logs}");
    assert!(
        logs.contains(&format!(
            "store.data_dir: {shown} exists but is not a directory"
        )),
        "{logs}"
    );
}

#[test]
fn run_refuses_an_expired_certificate_that_check_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let now = time::OffsetDateTime::now_utc();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.not_before = now - time::Duration::days(30);
    params.not_after = now - time::Duration::days(1);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();

    let (code, report) = koogate("check", dir.path(), &config());
    assert_eq!(code, Some(1), "{report}");
    assert!(report.contains("has expired"), "{report}");
    let (code, logs) = koogate("run", dir.path(), &config());
    assert_ne!(code, Some(0), "{logs}");
    assert!(
        logs.contains("server.cert_chain_file: the certificate in") && logs.contains("expired"),
        "{logs}"
    );
}

#[test]
fn run_logs_one_start_summary_with_names_and_never_key_material() {
    let cert = TestCert::new();
    let process = GatewayProcess::spawn(cert.path(), &config(), &ENV);
    let https = process.https.to_string();
    process.signal("-TERM");
    let (_, logs) = process.wait_with_logs();
    let starting: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == "starting")
        .collect();
    assert_eq!(starting.len(), 1, "{logs}");
    let line = &starting[0];
    let version = line["version"].as_str().unwrap_or_default();
    assert!(version.starts_with(env!("CARGO_PKG_VERSION")), "{line}");
    assert!(
        line["listeners"]
            .as_str()
            .unwrap()
            .contains(&format!("https {https}")),
        "{line}"
    );
    assert_eq!(line["routes"], "app http://127.0.0.1:9/app");
    assert_eq!(line["keys"], "primary (aes-256-cbc)");
    let certificate = line["certificate"].as_str().unwrap();
    assert!(
        certificate.contains("for localhost")
            && certificate.contains(", expires 4096-01-01T00:00:00Z"),
        "{line}"
    );
    assert!(
        line["store"].as_str().unwrap().starts_with("local "),
        "{line}"
    );
    assert!(!logs.contains(KEY) && !logs.contains(JOURNAL_KEY), "{logs}");
}
