//! Durability of the local store with the real binary: an answer KooGallery received survives `kill -9` (journal
//! line and idempotency record), the `koogate journal` CLI filters and opens personal data only with the key, and
//! neither the logs nor the files under the data directory hold personal data or secrets.

use crate::support::client::Reply;
use crate::support::*;
use base64::{engine::general_purpose::STANDARD, Engine};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use koogate::protocol::fields::{FieldCipher, FieldKey};
use rustls::pki_types::ServerName;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

const BIN: &str = env!("CARGO_BIN_EXE_koogate");
const CANNOT_OPEN: &str = "<cannot open: wrong journal key?>";

/// Writes `koogate.toml` next to the test certificate: the durable local store under `data`, JSON logs.
fn write_config(dir: &Path, upstream: &Upstream) -> PathBuf {
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:0"
cert_chain_file = "cert.pem"
private_key_file = "key.pem"
shutdown_grace_ms = 3000
[admin]
listen = "127.0.0.1:0"
[[access_keys]]
name = "primary"
env = "TEST_KOOGATE_KEY"
[store]
backend = "local"
data_dir = "data"
journal_key_env = "KOOGATE_JOURNAL_KEY"
[upstream]
default_route = "app"
deadline_ms = 3000
[upstream.routes.app]
url = "{}"
[test_calls]
mode = "forward"
[v1]
enabled = true
[log]
format = "json"
level = "info"
"#,
        upstream.url()
    );
    let path = dir.join("koogate.toml");
    std::fs::write(&path, config).unwrap();
    path
}

/// A `koogate run` process. Dropping it kills the process (so a failed assertion leaves nothing behind).
struct Gateway {
    child: Option<Child>,
    https: SocketAddr,
    admin: SocketAddr,
    /// Every stderr line so far (JSON logs); complete once the process has exited and `reader` was joined.
    logs: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Gateway {
    fn spawn(config: &Path) -> Self {
        let mut child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(config)
            .env("TEST_KOOGATE_KEY", KEY)
            .env("KOOGATE_JOURNAL_KEY", JOURNAL_KEY)
            .env_remove("RUST_LOG")
            .env_remove("KOOGATE_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let mut gateway = Self {
            child: Some(child),
            https: "0.0.0.0:0".parse().unwrap(),
            admin: "0.0.0.0:0".parse().unwrap(),
            logs,
            reader: Some(reader),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (https, admin) = gateway.listeners();
            if let (Some(https), Some(admin)) = (https, admin) {
                gateway.https = https;
                gateway.admin = admin;
                return gateway;
            }
            if let Some(status) = gateway.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "koogate exited ({status}) before serving: {:#?}",
                    gateway.logs.lock().unwrap()
                );
            }
            assert!(
                Instant::now() < deadline,
                "koogate never reported its listeners: {:#?}",
                gateway.logs.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The listener addresses from the "serving" and "admin endpoint" log lines, once both were logged.
    fn listeners(&self) -> (Option<SocketAddr>, Option<SocketAddr>) {
        let (mut https, mut admin) = (None, None);
        for line in self.logs.lock().unwrap().iter() {
            let Ok(v) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let message = v["message"].as_str().unwrap_or_default();
            let listen = v["listen"].as_str().and_then(|a| a.parse().ok());
            if message.starts_with("serving KooGallery calls") {
                https = listen;
            } else if message.starts_with("admin endpoint") {
                admin = listen;
            }
        }
        (https, admin)
    }

    fn pid(&self) -> String {
        self.child.as_ref().unwrap().id().to_string()
    }

    fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([signal, &self.pid()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill {signal} failed");
    }

    /// Waits (polling, bounded) for the process to exit; returns its status and every log line it wrote.
    fn wait(mut self, limit: Duration) -> (ExitStatus, Vec<String>) {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "koogate did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        self.child = None;
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        let logs = std::mem::take(&mut *self.logs.lock().unwrap());
        (status, logs)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A client that reports failures (refused connection, reset, timeout) instead of panicking: calls cut off by
/// `kill -9` are simply not acknowledged.
#[derive(Clone)]
struct FallibleClient {
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
}

impl FallibleClient {
    fn new(addr: SocketAddr, ca_pem: &str) -> Self {
        Self {
            addr,
            tls: client::tls_config(ca_pem, rustls::ALL_VERSIONS),
        }
    }

    async fn send(&self, call: &Call) -> Result<Reply, String> {
        tokio::time::timeout(Duration::from_secs(10), self.exchange(call))
            .await
            .map_err(|_| "timed out".to_owned())?
    }

    async fn exchange(&self, call: &Call) -> Result<Reply, String> {
        let tcp = TcpStream::connect(self.addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let tls = TlsConnector::from(self.tls.clone())
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let (mut sender, conn) = http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| format!("http: {e}"))?;
        tokio::spawn(conn);
        let mut request = http::Request::builder()
            .method(call.method)
            .uri(call.uri())
            .header("host", "localhost");
        for (name, value) in &call.headers {
            request = request.header(name, value);
        }
        let request = request
            .body(Full::new(Bytes::from(call.body.clone())))
            .unwrap();
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("request: {e}"))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        Ok(Reply {
            status,
            headers,
            body,
        })
    }
}

/// Whether an answer is a KooGallery success a caller may rely on: HTTP 200, `resultCode` 000000 and a
/// `Body-Sign` over the exact bytes with the access key (checked with `ring`). Returns the instance id.
fn acknowledged(reply: &Reply) -> Option<String> {
    let expected = format!(
        "sign_type=\"HMAC-SHA256\", signature= \"{}\"",
        STANDARD.encode(ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, KEY.as_bytes()),
            &reply.body
        ))
    );
    let signed =
        reply.headers.get("body-sign").and_then(|v| v.to_str().ok()) == Some(expected.as_str());
    let body: Value = serde_json::from_slice(&reply.body).ok()?;
    (reply.status == 200 && signed && body["resultCode"] == "000000")
        .then(|| body["instanceId"].as_str().map(str::to_owned))
        .flatten()
}

fn new_instance(order: &str) -> Call {
    Call::json(
        &json!({"activity":"newInstance","businessId":"b","orderId":order,
        "orderLineId":format!("{order}-000001")}),
    )
}

/// Runs `koogate journal --data-dir DIR ARGS...` with exactly the given journal-key environment.
fn journal_cli(data_dir: &Path, args: &[&str], key: Option<&str>) -> Output {
    let mut command = Command::new(BIN);
    command
        .arg("journal")
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("KOOGATE_JOURNAL_KEY")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    if let Some(key) = key {
        command.env("KOOGATE_JOURNAL_KEY", key);
    }
    command.output().unwrap()
}

/// The CLI's output as JSON lines; the command must have succeeded.
fn journal_lines(data_dir: &Path, args: &[&str], key: Option<&str>) -> Vec<Value> {
    let out = journal_cli(data_dir, args, key);
    assert!(
        out.status.success(),
        "koogate journal {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect()
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// One sample of a Prometheus metric from the admin port.
async fn admin_metric(admin: SocketAddr, series: &str) -> f64 {
    metric(
        &client::admin_get(admin, "/metrics").await.unwrap().1,
        series,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_acknowledged_answer_survives_kill_9_and_retries_still_deduplicate() {
    let upstream = Upstream::start(Behaviour::Unique).await;
    let cert = TestCert::new();
    let config = write_config(cert.path(), &upstream);
    let data = cert.path().join("data");
    let gateway = tokio::task::block_in_place(|| Gateway::spawn(&config));
    let client = FallibleClient::new(gateway.https, &cert.cert_pem);

    // Load: 8 workers, each provisioning its own orders back to back until the gateway dies under them.
    // (order, instance id, the exact call that was answered)
    let acked: Arc<Mutex<Vec<(String, String, Call)>>> = Arc::default();
    // Answers that were not signed successes, and transport errors seen before the kill: both must stay empty.
    let unexpected: Arc<Mutex<Vec<String>>> = Arc::default();
    // Calls the kill cut off after the connection was made (handshake, request or answer in progress).
    let cut_off: Arc<Mutex<Vec<String>>> = Arc::default();
    let killing = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..8)
        .map(|task| {
            let (client, acked, unexpected, cut_off, killing) = (
                client.clone(),
                acked.clone(),
                unexpected.clone(),
                cut_off.clone(),
                killing.clone(),
            );
            tokio::spawn(async move {
                for n in 0..100_000 {
                    let order = format!("CRASH-{task}-{n}");
                    let call = new_instance(&order);
                    match client.send(&call).await {
                        Ok(reply) => match acknowledged(&reply) {
                            Some(instance) => acked.lock().unwrap().push((order, instance, call)),
                            None => unexpected.lock().unwrap().push(format!(
                                "{order}: {} {}",
                                reply.status,
                                String::from_utf8_lossy(&reply.body)
                            )),
                        },
                        Err(e) if !killing.load(Ordering::SeqCst) => {
                            unexpected.lock().unwrap().push(format!("{order}: {e}"));
                        }
                        // Cut off by the kill: not acknowledged, so nothing was promised. The gateway is gone.
                        Err(e) => {
                            if !e.starts_with("connect:") {
                                cut_off.lock().unwrap().push(format!("{order}: {e}"));
                            }
                            break;
                        }
                    }
                }
            })
        })
        .collect();

    let started = Instant::now();
    loop {
        let n = acked.lock().unwrap().len();
        if n >= 50 || (n >= 1 && started.elapsed() >= Duration::from_millis(300)) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no answers under load: {:?}",
            unexpected.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    killing.store(true, Ordering::SeqCst);
    gateway.signal("-KILL");
    let (status, _) = tokio::task::block_in_place(|| gateway.wait(Duration::from_secs(10)));
    assert_eq!(status.signal(), Some(9), "killed by SIGKILL: {status}");
    for worker in workers {
        tokio::time::timeout(Duration::from_secs(15), worker)
            .await
            .expect("a load worker hung after the kill")
            .unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let cut_off = cut_off.lock().unwrap().clone();
    assert!(
        unexpected.lock().unwrap().is_empty(),
        "before the kill every call got a signed success: {:?}",
        unexpected.lock().unwrap()
    );
    assert!(!acked.is_empty());
    assert!(
        !cut_off.is_empty(),
        "the kill should have cut off calls in flight"
    );
    eprintln!(
        "kill -9 after {} acknowledged answers; {} upstream calls; {} calls cut off: {cut_off:?}",
        acked.len(),
        upstream.count(),
        cut_off.len()
    );

    // The same directory, the same configuration: the restarted gateway picks new ports.
    let gateway = tokio::task::block_in_place(|| Gateway::spawn(&config));

    // (a) Every acknowledged answer is in the journal, as sent.
    let journal_started = Instant::now();
    let checks: Vec<_> = acked
        .iter()
        .cloned()
        .map(|(order, instance, _)| {
            let data = data.clone();
            tokio::task::spawn_blocking(move || {
                let lines = journal_lines(&data, &["--order", &order], None);
                assert!(
                    lines.iter().any(|l| l["resultCode"] == "000000"
                        && l["instanceId"] == instance.as_str()
                        && l["orderId"] == order.as_str()
                        && l["activity"] == "newInstance"),
                    "the acknowledged answer for {order} ({instance}) is not in the journal: {lines:?}"
                );
            })
        })
        .collect();
    for check in checks {
        check.await.unwrap();
    }
    eprintln!(
        "journal checked for {} orders in {:?}",
        acked.len(),
        journal_started.elapsed()
    );

    // (b) Retries (fresh nonces) are answered from the records: same instance, no second provisioning; replays
    // of the acknowledged calls themselves are refused.
    let before = upstream.count();
    let retry_client = FallibleClient::new(gateway.https, &cert.cert_pem);
    let retries: Vec<_> = acked
        .chunks(acked.len().div_ceil(8))
        .map(|chunk| {
            let (client, chunk) = (retry_client.clone(), chunk.to_vec());
            tokio::spawn(async move {
                for (order, instance, original) in chunk {
                    let reply = client
                        .send(&new_instance(&order))
                        .await
                        .unwrap_or_else(|e| panic!("retry of {order}: {e}"));
                    reply.assert_code("000000");
                    assert_eq!(
                        reply.json()["instanceId"],
                        instance.as_str(),
                        "retry of {order} after kill -9"
                    );
                    // The acknowledged call's own nonce was made durable with its answer: a replay is refused.
                    client
                        .send(&original)
                        .await
                        .unwrap_or_else(|e| panic!("replay of {order}: {e}"))
                        .assert_code("000001");
                }
            })
        })
        .collect();
    for retry in retries {
        retry.await.unwrap();
    }
    assert_eq!(
        upstream.count(),
        before,
        "a retry of an acknowledged order reached the upstream again"
    );
    assert_eq!(
        admin_metric(gateway.admin, "koogate_idempotency_hits_total").await as usize,
        acked.len()
    );

    // (c) The restarted process drains and exits cleanly.
    gateway.signal("-TERM");
    let (status, logs) = tokio::task::block_in_place(|| gateway.wait(Duration::from_secs(10)));
    assert_eq!(status.code(), Some(0), "exit after SIGTERM: {logs:#?}");
}

#[tokio::test]
async fn the_journal_cli_filters_and_reveals_personal_data_only_with_the_key() {
    let upstream = Upstream::start(Behaviour::Unique).await;
    let mut gateway = TestGateway::start_v1(&upstream).await;
    let client = gateway.client();
    let email = "cli-buyer@example.com";
    let k = FieldKey::derive(KEY.as_bytes(), FieldCipher::Aes256Cbc);
    let v1 = client
        .send(&Call::v1(&[
            ("activity", "newInstance"),
            ("orderId", "CLI-V1-1"),
            ("email", &k.encrypt(email)),
        ]))
        .await;
    v1.assert_code("000000");
    let instance = v1.json()["instanceId"].as_str().unwrap().to_owned();
    client
        .send(&Call::json(
            &json!({"activity":"releaseInstance","instanceId":"cli-inst-1",
            "orderId":"CLI-REL-1","orderLineId":"CLI-REL-1-000001"}),
        ))
        .await
        .assert_code("000000");
    client
        .send(&Call::json(
            &json!({"activity":"orderNotify","orderId":"CLI-NOTIFY-1",
            "orderLineId":"CLI-NOTIFY-1-000001"}),
        ))
        .await
        .assert_code("000000");
    // Every answer was durable before it was sent; stop the gateway so the files are quiet.
    gateway.begin_shutdown().await.unwrap().unwrap();
    let data = gateway.cert.path().join("data");

    tokio::task::spawn_blocking(move || {
        let all = journal_lines(&data, &[], None);
        let summary: Vec<(&str, &str, &str)> = all
            .iter()
            .map(|l| {
                (
                    l["activity"].as_str().unwrap(),
                    l["orderId"].as_str().unwrap_or_default(),
                    l["resultCode"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("newInstance", "CLI-V1-1", "000000"),
                ("releaseInstance", "CLI-REL-1", "000000"),
                ("orderNotify", "CLI-NOTIFY-1", "000000"),
            ],
            "oldest first"
        );
        assert_eq!(all[0]["generation"], "v1");
        assert_eq!(all[0]["instanceId"], instance.as_str());
        assert_eq!(all[1]["generation"], "v2");
        assert!(all
            .windows(2)
            .all(|w| w[0]["atMs"].as_u64() <= w[1]["atMs"].as_u64()));
        for line in &all {
            assert!(line.get("personalData").is_none(), "{line}");
            assert!(
                line.get("sealed").is_none(),
                "sealed data is not exported: {line}"
            );
        }

        let released = journal_lines(&data, &["--activity", "releaseInstance"], None);
        assert_eq!(released.len(), 1);
        assert_eq!(released[0]["instanceId"], "cli-inst-1");
        let by_order = journal_lines(&data, &["--order", "CLI-V1-1"], None);
        assert_eq!(by_order.len(), 1);
        assert_eq!(by_order[0]["activity"], "newInstance");
        let by_instance = journal_lines(&data, &["--instance", &instance], None);
        assert_eq!(by_instance.len(), 1);
        assert_eq!(by_instance[0]["orderId"], "CLI-V1-1");
        assert!(journal_lines(&data, &["--order", "NO-SUCH-ORDER"], None).is_empty());
        assert!(journal_lines(&data, &["--since", "2999-01-01T00:00:00Z"], None).is_empty());
        assert!(journal_lines(&data, &["--until", "2000-01-01T00:00:00Z"], None).is_empty());
        assert_eq!(
            journal_lines(
                &data,
                &[
                    "--since",
                    "2000-01-01T00:00:00Z",
                    "--until",
                    "2999-01-01T00:00:00Z"
                ],
                None
            )
            .len(),
            3
        );
        let bad_time = journal_cli(&data, &["--since", "yesterday"], None);
        assert!(!bad_time.status.success());
        assert!(
            String::from_utf8_lossy(&bad_time.stderr).contains("RFC 3339"),
            "{}",
            String::from_utf8_lossy(&bad_time.stderr)
        );

        // Without the flag the personal data stays sealed, even when the key is at hand.
        for key in [None, Some(JOURNAL_KEY)] {
            let out = journal_cli(&data, &[], key);
            assert!(out.status.success());
            let text = String::from_utf8(out.stdout).unwrap();
            assert!(!text.contains(email), "{text}");
            assert!(!text.contains("personalData"), "{text}");
        }

        // With the flag and the key: opened.
        let opened = journal_lines(&data, &["--personal-data"], Some(JOURNAL_KEY));
        assert_eq!(opened.len(), 3);
        assert_eq!(opened[0]["personalData"]["buyer"]["email"], email);
        assert!(
            opened[1].get("personalData").is_none() && opened[2].get("personalData").is_none(),
            "only the call with a buyer has personal data: {opened:?}"
        );
        // The same from a key file.
        let key_file = data.join("..").join("journal.key");
        std::fs::write(&key_file, format!("{JOURNAL_KEY}\n")).unwrap();
        let from_file = journal_lines(
            &data,
            &[
                "--personal-data",
                "--order",
                "CLI-V1-1",
                "--journal-key-file",
                key_file.to_str().unwrap(),
            ],
            None,
        );
        assert_eq!(from_file.len(), 1);
        assert_eq!(from_file[0]["personalData"]["buyer"]["email"], email);

        // With a wrong key: marked as unopenable, never shown.
        let wrong_key = "ff".repeat(32);
        let out = journal_cli(&data, &["--personal-data"], Some(&wrong_key));
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(!text.contains(email), "{text}");
        let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(first["personalData"], CANNOT_OPEN);

        // With the flag but no key at all: a clear refusal.
        let out = journal_cli(&data, &["--personal-data"], None);
        assert!(!out.status.success(), "no key, no personal data");
        assert!(out.stdout.is_empty());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("KOOGATE_JOURNAL_KEY") && stderr.contains("--journal-key-file"),
            "the refusal names the ways to give the key: {stderr}"
        );
        // A malformed key is refused too, not silently used.
        let out = journal_cli(&data, &["--personal-data"], Some("not-a-key"));
        assert!(!out.status.success());
        assert!(!String::from_utf8_lossy(&out.stdout).contains(email));
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_and_store_files_contain_no_personal_data_or_secrets() {
    let upstream = Upstream::start(Behaviour::Unique).await;
    let cert = TestCert::new();
    let config = write_config(cert.path(), &upstream);
    let gateway = tokio::task::block_in_place(|| Gateway::spawn(&config));
    let client = client::Client::new(gateway.https, &cert.cert_pem);
    let k = FieldKey::derive(KEY.as_bytes(), FieldCipher::Aes256Cbc);
    let (phone, email, name) = (
        "+4915112349876",
        "erika.secret@example.de",
        "Erika Mustermann",
    );

    // EU nested V2 newInstance with the buyer's phone and email encrypted, as KooGallery sends them.
    let eu = Call::json(&json!({
        "activity": "newInstance",
        "buyerInfo": {
            "customerId": "68cbc86abc2018ab880d92f36422fa0e",
            "customerName": name,
            "userId": "0f6e1c2d3b4a59687766554433221100",
            "userName": "erika",
            "mobilePhone": k.encrypt(phone),
            "email": k.encrypt(email)
        },
        "orderInfo": [{
            "businessId": "9b3f2a10-5c4d-4e6f-8a7b-1c2d3e4f5a6b",
            "orderId": "LEAK-EU-1",
            "orderLineId": "LEAK-EU-1-000001",
            "trialFlag": "0",
            "chargingMode": "PERIOD",
            "periodType": "month",
            "periodNumber": 5,
            "productInfo": [{"skuCode": "a1b2c3d4-sku-standard", "productId": "OFFI000000000000001"}],
            "createTime": "20250601120000",
            "expireTime": "20251101120000"
        }]
    }));
    let reply = client.send(&eu).await;
    reply.assert_code("000000");
    let forwarded = upstream.last().json();
    assert_eq!(
        forwarded["buyer"]["email"], email,
        "the app itself gets the plain text"
    );
    // A retry is answered from the (sealed) record.
    let retry = Call {
        nonce: hex::encode(rand::random::<[u8; 16]>()).to_uppercase(),
        ..eu.clone()
    };
    client.send(&retry).await.assert_code("000000");

    // V1 newInstance: the upstream's answer carries a password, returned encrypted and recorded sealed.
    let v1_call = Call::v1(&[
        ("activity", "newInstance"),
        ("orderId", "LEAK-V1-1"),
        ("mobilePhone", &k.encrypt(phone)),
        ("email", &k.encrypt(email)),
    ]);
    let v1 = client.send(&v1_call).await;
    v1.assert_code("000000");
    assert_eq!(
        k.decrypt(v1.json()["appInfo"]["password"].as_str().unwrap())
            .unwrap()
            .as_str(),
        "Sup3r-Secret-Pw"
    );
    assert_eq!(upstream.count(), 2);

    gateway.signal("-TERM");
    let (status, logs) = tokio::task::block_in_place(|| gateway.wait(Duration::from_secs(10)));
    assert_eq!(status.code(), Some(0));
    let logs = logs.join("\n");
    assert!(
        logs.matches("\"result_code\":\"000000\"").count() >= 3,
        "one log line per call: {logs}"
    );

    let data = cert.path().join("data");
    let files = files_under(&data);
    assert!(files.iter().any(|f| f.ends_with("state.redb")), "{files:?}");
    assert!(
        files
            .iter()
            .any(|f| f.extension().is_some_and(|x| x == "jsonl")),
        "{files:?}"
    );
    let signature_query = eu.signed_query();
    let signature = signature_query
        .split('&')
        .next()
        .unwrap()
        .trim_start_matches("signature=");
    assert_eq!(signature.len(), 64);
    let secrets = [
        ("phone", phone),
        ("phone digits", phone.trim_start_matches('+')),
        ("email", email),
        ("customer name", name),
        ("password", "Sup3r-Secret-Pw"),
        ("access key", KEY),
        ("journal key", JOURNAL_KEY),
        ("V2 signature", signature),
    ];
    // The replay keys too: the store keeps only their SHA-256.
    let replay_keys = [
        ("V2 nonce", eu.nonce.as_str()),
        ("V1 authToken", v1_call.nonce.as_str()),
    ];
    let stored: Vec<(PathBuf, Vec<u8>)> = files
        .iter()
        .map(|f| (f.clone(), std::fs::read(f).unwrap()))
        .collect();
    let mut leaks = Vec::new();
    for (what, secret) in secrets.iter().chain(replay_keys.iter()).copied() {
        if logs.contains(secret) {
            leaks.push(format!("the logs contain the {what}"));
        }
        for (file, bytes) in &stored {
            if contains(bytes, secret.as_bytes()) {
                leaks.push(format!("{} contains the {what}", file.display()));
            }
        }
    }
    assert!(leaks.is_empty(), "{leaks:#?}\nlogs: {logs}");

    // The personal data is there, sealed: the CLI opens it with the key.
    let opened = tokio::task::spawn_blocking(move || {
        journal_lines(&data, &["--personal-data"], Some(JOURNAL_KEY))
    })
    .await
    .unwrap();
    let buyer = &opened[0]["personalData"]["buyer"];
    assert_eq!(buyer["email"], email);
    assert_eq!(buyer["mobilePhone"], phone);
}

/// A crash in the middle of a journal write leaves a partial last line. The next process must not glue its first
/// entry onto that fragment (which would make the entry unreadable): the acknowledged answer must stay in the
/// journal. Ignored: koogate currently appends right after the fragment (reported).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_journal_line_does_not_swallow_the_next_acknowledged_entry() {
    let upstream = Upstream::start(Behaviour::Unique).await;
    let cert = TestCert::new();
    let config = write_config(cert.path(), &upstream);
    let data = cert.path().join("data");

    let gateway = tokio::task::block_in_place(|| Gateway::spawn(&config));
    let client = client::Client::new(gateway.https, &cert.cert_pem);
    client
        .send(&new_instance("TORN-1"))
        .await
        .assert_code("000000");
    gateway.signal("-KILL");
    tokio::task::block_in_place(|| gateway.wait(Duration::from_secs(10)));

    // What a crash during the next write would have left: the first half of a line, no newline.
    let file = files_under(&data.join("journal"))
        .into_iter()
        .find(|f| f.extension().is_some_and(|x| x == "jsonl"))
        .expect("a journal file");
    let text = std::fs::read_to_string(&file).unwrap();
    let line = text.lines().next().unwrap();
    let mut torn = std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap();
    std::io::Write::write_all(&mut torn, &line.as_bytes()[..line.len() / 2]).unwrap();
    drop(torn);

    let gateway = tokio::task::block_in_place(|| Gateway::spawn(&config));
    let client = client::Client::new(gateway.https, &cert.cert_pem);
    let reply = client.send(&new_instance("TORN-2")).await;
    reply.assert_code("000000");
    let instance = reply.json()["instanceId"].as_str().unwrap().to_owned();
    gateway.signal("-TERM");
    let (status, _) = tokio::task::block_in_place(|| gateway.wait(Duration::from_secs(10)));
    assert_eq!(status.code(), Some(0));

    let lines =
        tokio::task::spawn_blocking(move || journal_lines(&data, &["--order", "TORN-2"], None))
            .await
            .unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l["resultCode"] == "000000" && l["instanceId"] == instance.as_str()),
        "the acknowledged answer for TORN-2 is missing from the journal: {lines:?}\n{}",
        std::fs::read_to_string(&file).unwrap()
    );
}
