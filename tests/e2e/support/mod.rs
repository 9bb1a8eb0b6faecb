//! Test harness: the real gateway on port 0 with real TLS, a recording upstream, and clients that sign calls
//! and check `Body-Sign` with `ring` (independently of koogate's own HMAC code).

pub mod client;
pub mod process;
pub mod upstream;

use koogate::clock::SystemClock;
use koogate::config::Config;
use koogate::metrics::Metrics;
use koogate::Listeners;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use client::Call;
pub use upstream::{Behaviour, Upstream};

pub const KEY: &str = "test-access-key-0001";
pub const OLD_KEY: &str = "827d93f9-2e75-4842-a142-8813f31aaef9";
/// The journal key the test gateways seal personal data with (64 hex characters).
pub const JOURNAL_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const JOURNAL_KEY_ENV: &str = "TEST_JOURNAL_KEY";

/// A self-signed certificate for localhost and 127.0.0.1, written into a directory.
pub struct TestCert {
    pub dir: TempDir,
    pub cert_pem: String,
}

impl TestCert {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let generated =
            rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
                .unwrap();
        std::fs::write(dir.path().join("cert.pem"), generated.cert.pem()).unwrap();
        std::fs::write(
            dir.path().join("key.pem"),
            generated.signing_key.serialize_pem(),
        )
        .unwrap();
        Self {
            dir,
            cert_pem: generated.cert.pem(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn cert_path(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }
}

/// Knobs for a test gateway; the defaults are the production defaults except where a test needs short timers.
pub struct Options {
    pub upstream_url: String,
    /// Extra TOML appended to the generated config (more routes, `[plain_http]`, ...).
    pub extra_toml: String,
    pub server_toml: String,
    /// Extra keys for the `[verify]` table.
    pub verify_toml: String,
    /// Keys for the `[v1]` table (V1 is off unless a test enables it: `enabled = true`).
    pub v1_toml: String,
    /// Keys for the `[test_calls]` table; the default forwards debugging calls (`mode = "forward"`).
    pub test_calls_toml: String,
    /// The `[store]` table; the default is the durable local store in the test's directory.
    pub store_toml: String,
    /// Reuse this directory (certificate, data) instead of a fresh one: a restart of the "same" gateway.
    pub dir: Option<std::sync::Arc<TestCert>>,
    pub keys: Vec<(&'static str, &'static str)>,
    /// Extra TOML lines for every `[[access_keys]]` entry (`field_cipher`, `encrypt_app_info`).
    pub key_toml: String,
    pub deadline_ms: u64,
    pub plain_http: bool,
    /// Short by default so tests do not wait on silent connections.
    pub handshake_timeout_ms: u64,
    /// Extra keys for the `[upstream]` table (`signature_key_env`, ...).
    pub upstream_toml: String,
    /// Extra TOML for the `[upstream.routes.app]` table (`ca_file`, `client_cert_file`, ...).
    pub route_toml: String,
    /// Extra environment variables the config may name.
    pub env: Vec<(&'static str, String)>,
    /// The `[admin]` table's keys (the listener itself is always bound on 127.0.0.1:0 by the harness).
    pub admin_toml: String,
    /// The gateway's clock; the system clock by default.
    pub clock: Option<Arc<dyn koogate::clock::Clock>>,
}

impl Options {
    pub fn new(upstream: &Upstream) -> Self {
        Self {
            upstream_url: upstream.url(),
            extra_toml: String::new(),
            server_toml: String::new(),
            verify_toml: String::new(),
            v1_toml: String::new(),
            test_calls_toml: "mode = \"forward\"".into(),
            store_toml: format!(
                "backend = \"local\"\ndata_dir = \"data\"\njournal_key_env = \"{JOURNAL_KEY_ENV}\""
            ),
            dir: None,
            keys: vec![("primary", KEY)],
            key_toml: String::new(),
            deadline_ms: 1_500,
            plain_http: false,
            handshake_timeout_ms: 500,
            upstream_toml: String::new(),
            route_toml: String::new(),
            env: Vec::new(),
            admin_toml: "listen = \"127.0.0.1:0\"".into(),
            clock: None,
        }
    }
}

/// A running gateway. Dropping it without [`TestGateway::stop`] aborts it.
pub struct TestGateway {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub plain: Option<SocketAddr>,
    /// The usage-records listener (serving only when the config has `[usage]`).
    pub usage: SocketAddr,
    pub cert: std::sync::Arc<TestCert>,
    /// The config file the gateway reloads from.
    pub config_path: PathBuf,
    reload: tokio::sync::mpsc::Sender<()>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestGateway {
    pub async fn start(upstream: &Upstream) -> Self {
        Self::start_with(Options::new(upstream)).await
    }

    /// A gateway that also accepts V1 calls (`[v1] enabled = true`; V1 is off by default).
    pub async fn start_v1(upstream: &Upstream) -> Self {
        let mut options = Options::new(upstream);
        options.v1_toml = "enabled = true".into();
        Self::start_with(options).await
    }

    pub async fn start_with(options: Options) -> Self {
        let cert = options
            .dir
            .clone()
            .unwrap_or_else(|| std::sync::Arc::new(TestCert::new()));
        let keys: String = options
            .keys
            .iter()
            .map(|(name, _)| {
                format!(
                    "[[access_keys]]\nname = \"{name}\"\nenv = \"KEY_{name}\"\n{}\n",
                    options.key_toml
                )
            })
            .collect();
        let text = format!(
            r#"
[server]
listen = "127.0.0.1:0"
cert_chain_file = "cert.pem"
private_key_file = "key.pem"
body_read_timeout_ms = 500
header_read_timeout_ms = 500
handshake_timeout_ms = {handshake}
shutdown_grace_ms = 3000
{server}
{plain}
[admin]
{admin}

[verify]
{verify}

[v1]
{v1}

[test_calls]
{test_calls}

[store]
{store}

{keys}
[upstream]
deadline_ms = {deadline}
default_route = "app"
{upstream_extra}

[upstream.routes.app]
url = "{url}"
{route_extra}
{extra}
"#,
            server = options.server_toml,
            admin = options.admin_toml,
            verify = options.verify_toml,
            v1 = options.v1_toml,
            test_calls = options.test_calls_toml,
            store = options.store_toml,
            plain = if options.plain_http {
                "[plain_http]\nlisten = \"127.0.0.1:0\"\n"
            } else {
                ""
            },
            deadline = options.deadline_ms,
            handshake = options.handshake_timeout_ms,
            url = options.upstream_url,
            extra = options.extra_toml,
            upstream_extra = options.upstream_toml,
            route_extra = options.route_toml,
        );
        let secrets = options.keys.clone();
        let extra_env = options.env.clone();
        let clock = options
            .clock
            .clone()
            .unwrap_or_else(|| Arc::new(SystemClock));
        let env = move |name: &str| {
            if name == JOURNAL_KEY_ENV {
                return Some(JOURNAL_KEY.to_owned());
            }
            if let Some((_, value)) = extra_env.iter().find(|(n, _)| *n == name) {
                return Some(value.clone());
            }
            secrets
                .iter()
                .find(|(n, _)| format!("KEY_{n}") == name)
                .map(|(_, k)| (*k).to_owned())
        };
        let config =
            Config::from_toml(&text, cert.path(), &env).unwrap_or_else(|e| panic!("{e}\n{text}"));
        // The config is also written to a file, so a test can edit it and trigger a reload.
        let config_path = cert.path().join(format!(
            "koogate-{}.toml",
            hex::encode(rand::random::<[u8; 4]>())
        ));
        std::fs::write(&config_path, &text).unwrap();
        let (reload_tx, triggers) = tokio::sync::mpsc::channel(4);
        let reload = koogate::Reload {
            path: config_path.clone(),
            env: Box::new(env),
            triggers,
        };
        let listeners = Listeners {
            https: TcpListener::bind("127.0.0.1:0").await.unwrap(),
            plain_http: if options.plain_http {
                Some(TcpListener::bind("127.0.0.1:0").await.unwrap())
            } else {
                None
            },
            admin: TcpListener::bind("127.0.0.1:0").await.unwrap(),
            // Used only when the config has `[usage]`.
            usage: Some(TcpListener::bind("127.0.0.1:0").await.unwrap()),
            acme_http: None,
        };
        let addr = listeners.https.local_addr().unwrap();
        let usage = listeners.usage.as_ref().unwrap().local_addr().unwrap();
        let admin = listeners.admin.local_addr().unwrap();
        let plain = listeners
            .plain_http
            .as_ref()
            .map(|l| l.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(koogate::run_with(
            config,
            listeners,
            Metrics::new().unwrap(),
            clock,
            async {
                let _ = stopped.await;
            },
            Some(reload),
        ));
        let gateway = Self {
            addr,
            admin,
            plain,
            usage,
            cert,
            stop: Some(stop),
            task: Some(task),
            config_path,
            reload: reload_tx,
        };
        gateway.wait_ready().await;
        gateway
    }

    async fn wait_ready(&self) {
        for _ in 0..200 {
            if client::admin_get(self.admin, "/readyz")
                .await
                .map(|(s, _)| s == 200)
                .unwrap_or(false)
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("gateway never became ready");
    }

    /// Requests shutdown; returns the task so a test can await `run`'s result.
    pub fn begin_shutdown(&mut self) -> JoinHandle<anyhow::Result<()>> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.take().expect("gateway already stopped")
    }

    /// Asks the gateway to reload its config file (as SIGHUP does).
    pub async fn reload(&self) {
        self.reload.send(()).await.unwrap();
    }

    /// A client that trusts this gateway's certificate.
    pub fn client(&self) -> client::Client {
        client::Client::new(self.addr, &self.cert.cert_pem)
    }

    pub async fn metrics(&self) -> String {
        client::admin_get(self.admin, "/metrics").await.unwrap().1
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The value of one sample in Prometheus text, e.g. `koogate_requests_total{activity="newInstance",result_code="000000"}`.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            line.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0.0)
}
