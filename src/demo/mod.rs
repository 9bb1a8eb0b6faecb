//! `koogate demo`: the gateway with a generated development certificate, a built-in demo upstream and a signed
//! KooGallery call for every V2 activity, so a new user sees a verified, signed round trip in one command.

pub mod app;
pub mod client;
mod openapi;
pub mod usage;

use crate::config::{Config, ProcessEnv};
use crate::Listeners;
use anyhow::Context;
use std::net::SocketAddr;
use std::path::Path;
use tokio::net::TcpListener;

/// The demo's access key. It is not a secret: it exists only so the demo can sign calls to itself.
pub const DEMO_ACCESS_KEY: &str = "koogate-demo-access-key-not-a-secret";
/// The demo's configuration; `{upstream}` is replaced by the demo app's address.
const DEMO_CONFIG: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/config/demo.toml"));

/// Options of `koogate demo`.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Where the development certificate and the demo key are kept (created on first run).
    pub dir: std::path::PathBuf,
    /// HTTPS address of the gateway.
    pub listen: SocketAddr,
    /// Keep serving after the calls, until Ctrl-C.
    pub serve: bool,
}

/// Runs the demo; returns an error if any call did not round-trip correctly.
pub async fn run(options: DemoOptions) -> anyhow::Result<()> {
    crate::private_fs::create_dir_all(&options.dir)
        .with_context(|| format!("cannot create {}", options.dir.display()))?;
    let cert_pem = ensure_dev_certificate(&options.dir)?;
    crate::private_fs::write(&options.dir.join("demo-access-key"), DEMO_ACCESS_KEY)?;
    let journal_key = options.dir.join("journal-key");
    if !journal_key.exists() {
        crate::private_fs::write(&journal_key, hex::encode(rand::random::<[u8; 32]>()))?;
    }

    let app = app::DemoApp::start().await?;
    // Kept alive for the whole demo: order lookups and the usage record (`usage::send_record`) go to it.
    let (mock_openapi, api_table) = openapi::start(&options.dir, DEMO_ACCESS_KEY).await?;
    let text = DEMO_CONFIG.replace("{upstream}", &format!("http://{}/koogallery", app.addr()))
        + &api_table;
    let config = Config::from_toml(&text, &options.dir, &ProcessEnv)?;
    let listeners = Listeners {
        https: TcpListener::bind(options.listen)
            .await
            .with_context(|| format!("cannot listen on {}", options.listen))?,
        plain_http: None,
        admin: TcpListener::bind("127.0.0.1:0").await?,
        usage: Some(TcpListener::bind("127.0.0.1:0").await?),
        acme_http: None,
    };
    let https = listeners.https.local_addr()?;
    let admin = listeners.admin.local_addr()?;
    let usage_addr = listeners
        .usage
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()?
        .context("the demo binds a usage listener")?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let gateway = tokio::spawn(crate::run(config, listeners, async {
        let _ = stopped.await;
    }));

    println!("koogate demo");
    println!(
        "  gateway  https://localhost:{}/  (development certificate in {})",
        https.port(),
        options.dir.display()
    );
    println!("  upstream {} (built-in demo app)", app.addr());
    println!(
        "  openapi  {} (mock KooGallery OpenAPI: order query, usage-data)",
        mock_openapi.base_url()
    );
    println!("  metrics  http://{admin}/metrics");
    println!("  usage    http://{usage_addr}/v1/usage (records for pay-per-use products)");
    println!(
        "  journal  koogate journal --data-dir {}\n",
        options.dir.join("data").display()
    );
    let trust = crate::simulate::client::Trust {
        extra_ca_pem: Some(cert_pem),
        ..Default::default()
    };
    let client = crate::simulate::client::KooClient::new(
        &trust,
        DEMO_ACCESS_KEY.as_bytes(),
        std::time::Duration::from_secs(5),
    )?;
    let url = format!("https://localhost:{}/koogallery", https.port());
    let mut outcome = client::run_demo_calls(&client, &url, &app).await;
    if outcome.is_ok() {
        outcome = run_simulate(&client, &url).await;
    }
    if outcome.is_ok() {
        outcome = usage::send_record(usage_addr, &mock_openapi).await;
    }

    if options.serve && outcome.is_ok() {
        println!(
            "\nserving until Ctrl-C; sign your own calls with the key in {}",
            options.dir.join("demo-access-key").display()
        );
        tokio::signal::ctrl_c().await?;
    }
    let _ = stop.send(());
    gateway.await??;
    outcome
}

/// Runs `koogate simulate`'s built-in V2 and V1 suites against the demo, as KooGallery's console would.
async fn run_simulate(
    client: &crate::simulate::client::KooClient,
    url: &str,
) -> anyhow::Result<()> {
    use crate::protocol::fields::{FieldCipher, FieldKey};
    let field_key = FieldKey::derive(DEMO_ACCESS_KEY.as_bytes(), FieldCipher::Aes256Cbc);
    let mut failed = 0;
    for v1 in [false, true] {
        println!(
            "\n$ koogate simulate --url {url} --key-file …/demo-access-key{}",
            if v1 { " --v1" } else { "" }
        );
        let cases = crate::simulate::case::builtin(v1)?;
        let options = crate::simulate::RunOptions {
            field_key: &field_key,
            probes: !v1,
            fresh_order_ids: true,
            instance_id: None,
        };
        let report = crate::simulate::run(client, url, &cases, &options, &mut |_| {}).await;
        print!("{}", report.table(crate::cli::colour(&std::io::stdout())));
        failed += report.failed;
    }
    anyhow::ensure!(failed == 0, "{failed} simulate case(s) failed");
    Ok(())
}

/// Creates a self-signed certificate for `localhost` and `127.0.0.1` on first run; returns the certificate PEM.
fn ensure_dev_certificate(dir: &Path) -> anyhow::Result<String> {
    let (cert_path, key_path) = (dir.join("dev-cert.pem"), dir.join("dev-key.pem"));
    if !cert_path.exists() || !key_path.exists() {
        let generated = rcgen::generate_simple_self_signed(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
        ])?;
        crate::private_fs::write(&key_path, generated.signing_key.serialize_pem())?;
        crate::private_fs::write(&cert_path, generated.cert.pem())?;
        println!("generated a development certificate in {}", dir.display());
    }
    Ok(std::fs::read_to_string(cert_path)?)
}
