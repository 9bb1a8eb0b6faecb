//! A real Pebble (Let's Encrypt's RFC 8555 test CA, Debian package `pebble`) on loopback, and a gateway whose
//! `[acme]` section points at it. Pebble validates challenges against koogate's own listeners.

use crate::support::{client, JOURNAL_KEY, KEY};
use koogate::clock::SystemClock;
use koogate::config::Config;
use koogate::metrics::Metrics;
use koogate::Listeners;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The name every test certificate is ordered for (Pebble resolves it through /etc/hosts).
pub const DOMAIN: &str = "localhost";

/// Pebble's own HTTPS identity: a CA generated per test, and a `localhost` certificate it signed.
pub struct PebbleTls {
    pub ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

impl PebbleTls {
    pub fn new() -> Self {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "pebble test listener CA");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        Self {
            ca_pem: ca_cert.pem(),
            cert_pem: leaf.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// What Pebble validates against and how long its certificates live.
pub struct PebbleOptions {
    /// koogate's HTTPS port (tls-alpn-01).
    pub tls_port: u16,
    /// koogate's http-01 port.
    pub http_port: u16,
    /// `certificateValidityPeriod`, seconds; `None` is Pebble's default (5 years).
    pub validity_s: Option<u64>,
}

/// A running `pebble`; killed on drop.
pub struct Pebble {
    child: Child,
    pub listen: SocketAddr,
    pub management: SocketAddr,
    tls: Arc<PebbleTls>,
}

impl Pebble {
    /// Starts Pebble on `listen` (a free loopback port when `None`) and waits until it accepts connections.
    pub async fn start(
        dir: &Path,
        tls: Arc<PebbleTls>,
        options: &PebbleOptions,
        listen: Option<SocketAddr>,
    ) -> Self {
        let listen = match listen {
            Some(addr) => addr,
            None => free_port().await,
        };
        let management = free_port().await;
        std::fs::write(dir.join("pebble-cert.pem"), &tls.cert_pem).unwrap();
        std::fs::write(dir.join("pebble-key.pem"), &tls.key_pem).unwrap();
        let mut pebble = serde_json::json!({
            "listenAddress": listen.to_string(),
            "managementListenAddress": management.to_string(),
            "certificate": dir.join("pebble-cert.pem"),
            "privateKey": dir.join("pebble-key.pem"),
            "httpPort": options.http_port,
            "tlsPort": options.tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        });
        if let Some(validity) = options.validity_s {
            pebble["certificateValidityPeriod"] = validity.into();
        }
        let config = dir.join(format!("pebble-{}.json", listen.port()));
        std::fs::write(&config, serde_json::json!({ "pebble": pebble }).to_string()).unwrap();
        let child = Command::new("pebble")
            .arg("-config")
            .arg(&config)
            .args(["-strict", "false"])
            // Validate at once, really validate, and never reject a nonce (keeps timings predictable).
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_VA_ALWAYS_VALID", "0")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start `pebble` ({e}): the ACME tests need Let's Encrypt's test CA; install the \
                     Debian package `pebble` (tests/run.sh installs it when missing)"
                )
            });
        let pebble = Self {
            child,
            listen,
            management,
            tls,
        };
        let started = Instant::now();
        while TcpStream::connect(listen).await.is_err()
            || TcpStream::connect(management).await.is_err()
        {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "pebble did not start listening"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        pebble
    }

    pub fn directory_url(&self) -> String {
        format!("https://{}/dir", self.listen)
    }

    /// The root of the chain Pebble issues (it makes a new one at every start), from its management endpoint.
    pub async fn issuing_root_pem(&self) -> String {
        let tls = client::tls_config(&self.tls.ca_pem, rustls::ALL_VERSIONS);
        let tcp = TcpStream::connect(self.management).await.unwrap();
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(
                rustls_pki_types::ServerName::try_from("localhost").unwrap(),
                tcp,
            )
            .await
            .unwrap();
        let mut stream = stream;
        tokio::io::AsyncWriteExt::write_all(
            &mut stream,
            b"GET /roots/0 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
        let raw = client::read_to_close(&mut stream, Duration::from_secs(5)).await;
        let (status, _, body) = client::parse_raw_response(&raw);
        assert_eq!(status, 200, "pebble management /roots/0");
        String::from_utf8(body).unwrap()
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port (bound and released; nothing else on this machine races for it in practice).
pub async fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A gateway under `[acme]`, on listeners bound before Pebble starts (Pebble must know their ports).
pub struct AcmeGateway {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub http01: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

/// Listeners bound up front.
pub struct Bound {
    pub https: TcpListener,
    pub admin: TcpListener,
    pub http01: Option<TcpListener>,
}

impl Bound {
    pub async fn new(http01: bool) -> Self {
        Self {
            https: TcpListener::bind("127.0.0.1:0").await.unwrap(),
            admin: TcpListener::bind("127.0.0.1:0").await.unwrap(),
            http01: if http01 {
                Some(TcpListener::bind("127.0.0.1:0").await.unwrap())
            } else {
                None
            },
        }
    }

    pub fn https_port(&self) -> u16 {
        self.https.local_addr().unwrap().port()
    }

    /// The http-01 port, or an unused one when http-01 is not configured.
    pub async fn http_port(&self) -> u16 {
        match &self.http01 {
            Some(l) => l.local_addr().unwrap().port(),
            None => free_port().await.port(),
        }
    }
}

/// The `[acme]` table for Pebble at `directory_url`; `challenges` is TOML (`["tls-alpn-01"]`).
pub fn acme_toml(
    directory_url: &str,
    ca_file: &Path,
    state_dir: &Path,
    challenges: &str,
    http01: bool,
) -> String {
    format!(
        "[acme]\ndomains = [\"{DOMAIN}\"]\ncontact_email = \"ops@example.com\"\ndirectory_url = \"{directory_url}\"\n\
         directory_ca_file = \"{}\"\nchallenges = {challenges}\nstate_dir = \"{}\"\n{}\
         retry_initial_ms = 200\nretry_max_ms = 1000\n",
        ca_file.display(),
        state_dir.display(),
        if http01 { "http01_listen = \"127.0.0.1:0\"\n" } else { "" },
    )
}

impl AcmeGateway {
    /// Starts the gateway with `acme` as its `[acme]` table, forwarding to `upstream_url`.
    /// The whole configuration: memory store, one route to `upstream_url`, the key from `KEY_primary`.
    pub fn config_toml(acme: &str, upstream_url: &str) -> String {
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nhandshake_timeout_ms = 2000\nshutdown_grace_ms = 2000\n\
             [admin]\nlisten = \"127.0.0.1:0\"\n\
             [[access_keys]]\nname = \"primary\"\nenv = \"KEY_primary\"\n\
             [store]\nbackend = \"memory\"\n[test_calls]\nmode = \"forward\"\n\
             [upstream]\ndefault_route = \"app\"\n[upstream.routes.app]\nurl = \"{upstream_url}\"\n{acme}"
        )
    }

    pub async fn start(bound: Bound, acme: &str, upstream_url: &str, dir: &Path) -> Self {
        // The ACME task's log lines show in a failing test's output.
        let _ = tracing_subscriber::fmt()
            .with_env_filter("koogate=info")
            .with_test_writer()
            .try_init();
        let text = Self::config_toml(acme, upstream_url);
        let env = |name: &str| match name {
            "KEY_primary" => Some(KEY.to_owned()),
            "KOOGATE_JOURNAL_KEY" => Some(JOURNAL_KEY.to_owned()),
            _ => None,
        };
        let config = Config::from_toml(&text, dir, &env).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let listeners = Listeners {
            https: bound.https,
            plain_http: None,
            admin: bound.admin,
            usage: None,
            acme_http: bound.http01,
        };
        let addr = listeners.https.local_addr().unwrap();
        let admin = listeners.admin.local_addr().unwrap();
        let http01 = listeners
            .acme_http
            .as_ref()
            .map(|l| l.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(koogate::run_with(
            config,
            listeners,
            Metrics::new().unwrap(),
            Arc::new(SystemClock),
            async {
                let _ = stopped.await;
            },
            None,
        ));
        Self {
            addr,
            admin,
            http01,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Waits until /readyz answers 200: a certificate is installed.
    pub async fn wait_ready(&self, limit: Duration) {
        let started = Instant::now();
        while started.elapsed() < limit {
            if client::admin_get(self.admin, "/readyz")
                .await
                .is_ok_and(|(status, _)| status == 200)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "no certificate within {limit:?}; metrics:\n{}",
            self.metrics().await
        );
    }

    pub async fn metrics(&self) -> String {
        client::admin_get(self.admin, "/metrics").await.unwrap().1
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

impl Drop for AcmeGateway {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The state directory's files, for the permission checks.
pub fn state_files(state_dir: &Path) -> Vec<PathBuf> {
    vec![
        state_dir.join("account.json"),
        state_dir.join("certificate.pem"),
    ]
}
