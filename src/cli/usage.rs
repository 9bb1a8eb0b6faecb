//! `koogate usage status`: the usage queue of a running gateway (over its usage listener) or of a stopped one
//! (read from `usage.data_dir`).

use crate::clock::{Clock, SystemClock};
use crate::usage::{queue::Queue, status};
use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Subcommand)]
pub enum UsageCommand {
    /// Queued records, the oldest one's age, sent and rejected counts, and the latest rejections with reasons.
    Status(StatusArgs),
}

#[derive(clap::Args)]
pub struct StatusArgs {
    /// The running gateway's usage listener (`usage.listen`).
    #[arg(long, default_value = crate::config::usage_defaults::DEFAULT_USAGE_LISTEN)]
    addr: SocketAddr,
    /// Environment variable holding the listener's bearer token (needed when it is not on loopback).
    #[arg(long, conflicts_with = "token_file")]
    token_env: Option<String>,
    /// File holding the listener's bearer token.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Read the queue file in this directory (`usage.data_dir`) instead; only while the gateway is stopped.
    #[arg(long, conflicts_with = "addr")]
    data_dir: Option<PathBuf>,
    /// Print the JSON document instead of text.
    #[arg(long)]
    json: bool,
}

pub async fn run(command: UsageCommand) -> anyhow::Result<bool> {
    let UsageCommand::Status(args) = command;
    let document = match &args.data_dir {
        Some(dir) => {
            let dir = dir.clone();
            let snapshot = tokio::task::spawn_blocking(move || {
                Queue::open(&dir)
                    .with_context(|| {
                        format!(
                            "cannot open the usage queue in {} (is koogate running? then use --addr)",
                            dir.display()
                        )
                    })?
                    .snapshot(100)
                    .context("cannot read the usage queue")
            })
            .await??;
            status::to_json(&snapshot, SystemClock.now_ms())
        }
        None => fetch(&args).await?,
    };
    if args.json {
        println!("{document}");
    } else {
        print!("{}", status::to_text(&document));
    }
    Ok(true)
}

async fn fetch(args: &StatusArgs) -> anyhow::Result<serde_json::Value> {
    let token = match (&args.token_env, &args.token_file) {
        (Some(var), _) => Some(std::env::var(var).with_context(|| format!("{var} is not set"))?),
        (None, Some(file)) => Some(
            std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?
                .trim_end_matches(['\r', '\n'])
                .to_owned(),
        ),
        (None, None) => None,
    };
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut request = http::Request::get(format!("http://{}/v1/usage/status", args.addr));
    if let Some(token) = token {
        request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let response = tokio::time::timeout(
        Duration::from_secs(10),
        client.request(request.body(Empty::new())?),
    )
    .await
    .context("the usage listener did not answer in time")?
    .with_context(|| format!("cannot reach the usage listener at {}", args.addr))?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        bail!(
            "the usage listener answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    serde_json::from_slice(&body).context("the usage listener's answer is not JSON")
}
