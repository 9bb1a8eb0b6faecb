//! `koogate simulate`: see [`crate::simulate`].

use super::key::KeyArgs;
use crate::protocol::fields::{FieldCipher, FieldKey};
use crate::simulate::client::{KooClient, Trust};
use crate::simulate::{self, case, report::Table, RunOptions};
use anyhow::Context;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args)]
pub struct SimulateArgs {
    /// The production system API URL KooGallery calls (https://…).
    #[arg(long)]
    url: String,
    #[command(flatten)]
    key: KeyArgs,
    /// Run the V1 (legacy GET) suite instead of V2.
    #[arg(long)]
    v1: bool,
    /// Run one case file.
    #[arg(long, conflicts_with = "cases")]
    case: Option<PathBuf>,
    /// Run every `*.toml` case in this directory (default: the built-in suite, as in config/cases/).
    #[arg(long)]
    cases: Option<PathBuf>,
    /// The instance `{instanceId}` stands for until a newInstance case answers one (e.g. to run queryInstance
    /// alone with --case).
    #[arg(long, value_name = "ID")]
    instance_id: Option<String>,
    /// Send the console's fixed mock order ids (MOCKPERIODYEARNEW, …) as they are. By default each run gives them
    /// a unique suffix, so an answer koogate recorded for an earlier run cannot hide a broken app.
    #[arg(long)]
    console_ids: bool,
    /// The product's sensitive-information algorithm: aes-256-cbc, aes-128-cbc or aes-256-gcm.
    #[arg(long, default_value = "aes-256-cbc")]
    cipher: String,
    /// Also trust this certificate (PEM): the test CA that issued the target's certificate, or a self-signed
    /// certificate itself.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Do not check the target's certificate at all (local tests only; the report says so).
    #[arg(long, conflicts_with = "ca")]
    insecure: bool,
    /// Allow an http:// URL: a `[plain_http]` listener behind a load balancer that terminates TLS. KooGallery
    /// itself only calls https:// URLs.
    #[arg(long)]
    plain: bool,
    /// How long to wait for an answer; KooGallery gives up after 5000 ms.
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    /// Print a machine-readable JSON report instead of the table.
    #[arg(long)]
    json: bool,
    /// Also write the report as JUnit XML to this file (for CI test reports).
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Show each answer's body (also in --json and --junit reports; left out otherwise, as bodies may hold the
    /// app's initial passwords).
    #[arg(long, short)]
    verbose: bool,
}

pub async fn run(args: SimulateArgs) -> anyhow::Result<bool> {
    check_scheme(&args.url, args.plain)?;
    let key = args.key.read()?.as_bytes().to_vec();
    let cipher = FieldCipher::from_name(&args.cipher).with_context(|| {
        format!(
            "--cipher `{}`: expected aes-256-cbc, aes-128-cbc or aes-256-gcm",
            args.cipher
        )
    })?;
    let extra_ca_pem = args
        .ca
        .as_ref()
        .map(|p| {
            std::fs::read_to_string(p).with_context(|| format!("cannot read --ca {}", p.display()))
        })
        .transpose()?;
    let cases = match (&args.case, &args.cases) {
        (Some(file), _) | (None, Some(file)) => case::load(file)?,
        (None, None) => case::builtin(args.v1)?,
    };
    let trust = Trust {
        extra_ca_pem,
        insecure: args.insecure,
        plain: args.plain,
    };
    let client = KooClient::new(&trust, &key, Duration::from_millis(args.timeout_ms.max(1)))?;
    let field_key = FieldKey::derive(&key, cipher);
    let options = RunOptions {
        field_key: &field_key,
        probes: !args.v1 && args.case.is_none(),
        fresh_order_ids: !args.console_ids,
        instance_id: args.instance_id.clone(),
    };
    let table = Table {
        colour: super::colour(&std::io::stdout()),
        verbose: args.verbose,
    };
    // The table is printed case by case, so a slow target shows progress.
    let mut stdout = std::io::stdout();
    if !args.json {
        print!("{}", table.header(&args.url, args.insecure));
        let _ = stdout.flush();
    }
    let mut progress = |outcome: &simulate::Outcome| {
        if !args.json {
            print!("{}", table.line(outcome));
            let _ = std::io::stdout().flush();
        }
    };
    let report = simulate::run(&client, &args.url, &cases, &options, &mut progress).await;
    let report = if args.verbose {
        report
    } else {
        report.without_bodies()
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.json())?);
    } else {
        print!("{}", table.footer(&report));
    }
    if let Some(path) = &args.junit {
        std::fs::write(path, report.junit())
            .with_context(|| format!("cannot write --junit {}", path.display()))?;
    }
    Ok(report.failed == 0 && report.stopped.is_none())
}

/// KooGallery calls only `https://` production URLs; anything else is refused up front with what to do.
fn check_scheme(url: &str, plain: bool) -> anyhow::Result<()> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("https://") || (plain && lower.starts_with("http://")) {
        return Ok(());
    }
    if lower.starts_with("http://") {
        anyhow::bail!(
            "--url {url}: KooGallery only calls https:// production URLs (TLS 1.2 or newer, a CA-issued \
             certificate); use the https:// URL, or --plain to test a [plain_http] listener behind a load \
             balancer that terminates TLS"
        );
    }
    anyhow::bail!("--url {url}: expected an https:// URL, as entered in the seller console")
}
