//! Certificate files as operators get them wrong, made with the real `openssl` command: a chain in reverse order,
//! an X.509 v1 leaf, an encrypted private key. `koogate check` and `koogate run` must name each as such.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const KEY_ENV: &str = "KOOGATE_TEST_CERTS_KEY";
const JOURNAL_KEY_ENV: &str = "KOOGATE_TEST_CERTS_JOURNAL_KEY";
/// A `run` that does not stop on its own within this is killed (and the test fails on its exit status).
const RUN_LIMIT: Duration = Duration::from_secs(30);

/// Runs `openssl` in `dir`; panics with its output if it fails.
fn openssl(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("openssl must be installed (tests/run.sh installs it)");
    assert!(output.status.success(), "openssl {args:?}: {output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A P-256 key in PKCS#8 PEM.
fn key(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            name,
        ],
    );
}

/// A test CA (ca.pem, ca.key) and a v3 leaf for localhost issued by it (leaf.pem, leaf.key).
fn ca_and_leaf(dir: &Path) {
    key(dir, "ca.key");
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            "ca.key",
            "-subj",
            "/CN=koogate test CA",
            "-days",
            "30",
            "-out",
            "ca.pem",
        ],
    );
    key(dir, "leaf.key");
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            "leaf.key",
            "-subj",
            "/CN=localhost",
            "-out",
            "leaf.csr",
        ],
    );
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "30",
            "-extfile",
            "leaf.ext",
            "-out",
            "leaf.pem",
        ],
    );
}

fn write_config(dir: &Path, cert: &str, key: &str) -> String {
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:0"
cert_chain_file = "{cert}"
private_key_file = "{key}"

[admin]
listen = "127.0.0.1:0"

[[access_keys]]
name = "primary"
env = "{KEY_ENV}"

[upstream]
default_route = "app"

[upstream.routes.app]
url = "http://127.0.0.1:3000/koogallery"

[test_calls]
mode = "forward"

[store]
backend = "local"
data_dir = "data"
journal_key_env = "{JOURNAL_KEY_ENV}"
"#
    );
    let path = dir.join("koogate.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// `koogate <command> --config <config>`; a process still running after [`RUN_LIMIT`] is killed.
fn koogate(command: &str, config: &str) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_koogate"))
        .args([command, "--config", config])
        .env(KEY_ENV, "certificate-test-access-key")
        .env(JOURNAL_KEY_ENV, "22".repeat(32))
        .env_remove("KOOGATE_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let killer = std::thread::spawn(move || {
        if finished.recv_timeout(RUN_LIMIT).is_err() {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    });
    let output = child.wait_with_output().unwrap();
    let _ = done.send(());
    killer.join().unwrap();
    output
}

/// `check` and `run` both fail, and each names `expected` (and never `unexpected`) on standard error.
fn both_refuse(config: &str, expected: &[&str], unexpected: &str) {
    for command in ["check", "run"] {
        let output = koogate(command, config);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{command}: {output:?}");
        for text in expected {
            assert!(
                stderr.contains(text),
                "{command}: {text:?} missing from:\n{stderr}"
            );
        }
        assert!(!stderr.contains(unexpected), "{command}: {stderr}");
    }
}

#[test]
fn a_chain_with_the_ca_first_is_reported_as_out_of_order_not_as_a_key_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ca_and_leaf(d);
    let (leaf, ca) = (
        std::fs::read_to_string(d.join("leaf.pem")).unwrap(),
        std::fs::read_to_string(d.join("ca.pem")).unwrap(),
    );
    std::fs::write(d.join("reversed.pem"), format!("{ca}{leaf}")).unwrap();
    std::fs::write(d.join("fullchain.pem"), format!("{leaf}{ca}")).unwrap();

    let config = write_config(d, "reversed.pem", "leaf.key");
    both_refuse(
        &config,
        &["wrong order", "certificate 2 of 2"],
        "does not match",
    );
    let check = String::from_utf8_lossy(&koogate("check", &config).stderr).into_owned();
    assert!(
        check.contains("error: server.cert_chain_file: the certificates in")
            && check.contains("the first one is a CA certificate")
            && check.contains("put the leaf first"),
        "{check}"
    );

    // The same two certificates leaf first pass (with the warning that the test CA is not public).
    let config = write_config(d, "fullchain.pem", "leaf.key");
    let output = koogate("check", &config);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
}

#[test]
fn a_v1_leaf_is_reported_with_how_to_reissue_it_as_v3() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    key(d, "key.pem");
    openssl(
        d,
        &[
            "req",
            "-new",
            "-key",
            "key.pem",
            "-subj",
            "/CN=localhost",
            "-out",
            "req.csr",
        ],
    );
    // `x509 -req` without -extfile writes a version 1 certificate (OpenSSL 3.0 and 1.1).
    openssl(
        d,
        &[
            "x509", "-req", "-in", "req.csr", "-signkey", "key.pem", "-days", "30", "-out",
            "cert.pem",
        ],
    );
    let text = openssl(d, &["x509", "-in", "cert.pem", "-noout", "-text"]);
    assert!(
        text.contains("Version: 1 (0x0)"),
        "not a v1 certificate:\n{text}"
    );

    let config = write_config(d, "cert.pem", "key.pem");
    both_refuse(
        &config,
        &["X.509 version 1", "re-issue it as v3", "subjectAltName"],
        "supported (RSA, ECDSA or Ed25519) key",
    );
    let check = String::from_utf8_lossy(&koogate("check", &config).stderr).into_owned();
    assert!(
        check.contains("error: server.cert_chain_file: the leaf certificate in")
            && check.contains("rustls (webpki) refuses v1"),
        "{check}"
    );

    // The suggested command gives a certificate that passes.
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            "key.pem",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
            "-days",
            "30",
            "-out",
            "cert.pem",
        ],
    );
    let output = koogate("check", &config);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
}

#[test]
fn an_encrypted_key_is_named_with_the_command_that_decrypts_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    key(d, "plain.key");
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            "plain.key",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
            "-days",
            "30",
            "-out",
            "cert.pem",
        ],
    );
    // PKCS#8 (`-----BEGIN ENCRYPTED PRIVATE KEY-----`) and the traditional form (`Proc-Type: 4,ENCRYPTED`).
    openssl(
        d,
        &[
            "pkey",
            "-in",
            "plain.key",
            "-aes-256-cbc",
            "-passout",
            "pass:s3cret",
            "-out",
            "pkcs8.pem",
        ],
    );
    openssl(
        d,
        &[
            "ec",
            "-in",
            "plain.key",
            "-aes-128-cbc",
            "-passout",
            "pass:s3cret",
            "-out",
            "traditional.pem",
        ],
    );
    for (file, format) in [
        ("pkcs8.pem", "ENCRYPTED PRIVATE KEY"),
        ("traditional.pem", "Proc-Type: 4,ENCRYPTED"),
    ] {
        let pem = std::fs::read_to_string(d.join(file)).unwrap();
        assert!(pem.contains(format), "{pem}");
        let config = write_config(d, "cert.pem", file);
        let path = d.join(file).display().to_string();
        let plain = path.replace(".pem", ".plain.pem");
        both_refuse(
            &config,
            &[
                &format!("the private key {path} is encrypted"),
                format,
                &format!("openssl pkey -in {path} -out {plain}"),
            ],
            "cannot read the private key",
        );
        let check = String::from_utf8_lossy(&koogate("check", &config).stderr).into_owned();
        assert!(
            check.contains("error: server.private_key_file: the private key"),
            "{check}"
        );

        // The suggested command (with the passphrase given here) makes a key that passes.
        openssl(
            d,
            &[
                "pkey",
                "-in",
                &path,
                "-passin",
                "pass:s3cret",
                "-out",
                &plain,
            ],
        );
        let output = koogate("check", &write_config(d, "cert.pem", &plain));
        assert_eq!(output.status.code(), Some(0), "{file}: {output:?}");
    }
}
