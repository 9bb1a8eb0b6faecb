//! `koogate simulate`: see [`crate::simulate`].

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
    /// Environment variable holding the access key.
    #[arg(long, conflicts_with = "key_file")]
    key_env: Option<String>,
    /// File holding the access key (a trailing newline is ignored).
    #[arg(long)]
    key_file: Option<PathBuf>,
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
    let key = read_key(args.key_env.as_deref(), args.key_file.as_ref())?;
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

/// The access key from an environment variable or a file; never from the command line (it would show in `ps`).
pub fn read_key(env: Option<&str>, file: Option<&PathBuf>) -> anyhow::Result<Vec<u8>> {
    let key = match (env, file) {
        (Some(name), None) => std::env::var(name)
            .with_context(|| format!("--key-env {name}: the variable is not set"))?,
        (None, Some(path)) => std::fs::read_to_string(path)
            .with_context(|| format!("--key-file {}: cannot read it", path.display()))?
            .trim_end_matches(['\r', '\n'])
            .to_owned(),
        _ => anyhow::bail!("give the access key with --key-env NAME or --key-file FILE"),
    };
    anyhow::ensure!(!key.is_empty(), "the access key is empty");
    Ok(key.into_bytes())
}
