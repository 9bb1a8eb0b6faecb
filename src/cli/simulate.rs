//! `koogate simulate`: see [`crate::simulate`].

use super::key::KeyArgs;
use crate::protocol::fields::{FieldCipher, FieldKey};
use crate::simulate::{self, case, client::KooClient};
use anyhow::Context;
use std::io::IsTerminal;
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
    /// The product's sensitive-information algorithm: aes-256-cbc, aes-128-cbc or aes-256-gcm.
    #[arg(long, default_value = "aes-256-cbc")]
    cipher: String,
    /// Also trust this CA certificate (PEM), for test or development certificates.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// How long to wait for an answer; KooGallery gives up after 5000 ms.
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    /// Print a machine-readable JSON report instead of the table.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: SimulateArgs) -> anyhow::Result<bool> {
    let key = args.key.read()?.as_bytes().to_vec();
    let cipher = FieldCipher::from_name(&args.cipher).with_context(|| {
        format!(
            "--cipher `{}`: expected aes-256-cbc, aes-128-cbc or aes-256-gcm",
            args.cipher
        )
    })?;
    let ca = args
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
    let client = KooClient::new(
        ca.as_deref(),
        &key,
        Duration::from_millis(args.timeout_ms.max(1)),
    )?;
    let probes = !args.v1 && args.case.is_none();
    let report = simulate::run(
        &client,
        &args.url,
        &cases,
        &FieldKey::derive(&key, cipher),
        probes,
    )
    .await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.json())?);
    } else {
        print!("{}", report.table(std::io::stdout().is_terminal()));
    }
    Ok(report.failed == 0)
}
