//! `koogate mock-openapi`: a mock KooGallery OpenAPI (see [`crate::openapi::mock`]) for local tests and demos.

use super::key::KeyArgs;
use crate::openapi::mock::{MockOpenApi, MockOptions};
use anyhow::Context;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(clap::Args)]
pub struct MockOpenApiArgs {
    /// Address to serve HTTPS on (port 0 picks a free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:9443")]
    listen: SocketAddr,
    /// Environment variable holding the IAM access key ID the mock accepts.
    #[arg(long, value_name = "NAME", default_value = "KOOGATE_IAM_AK")]
    ak_env: String,
    /// Environment variable holding the IAM secret key the mock accepts.
    #[arg(long, value_name = "NAME", default_value = "KOOGATE_IAM_SK")]
    sk_env: String,
    /// The KooGallery access key that must sign usage-data bodies.
    #[command(flatten)]
    key: KeyArgs,
    /// Write the mock's self-signed certificate (PEM) here, for `[koogallery_api] ca_file`.
    #[arg(long, value_name = "FILE")]
    ca_out: PathBuf,
}

pub async fn run(args: MockOpenApiArgs) -> anyhow::Result<bool> {
    let var = |name: &str| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .with_context(|| format!("environment variable `{name}` is not set"))
    };
    let options = MockOptions {
        ak: var(&args.ak_env)?,
        sk: var(&args.sk_env)?.into_bytes(),
        access_key: args.key.read()?.as_bytes().to_vec(),
        clock: Arc::new(crate::clock::SystemClock),
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let mock = MockOpenApi::start(listener, options)?;
    std::fs::write(&args.ca_out, mock.ca_pem())
        .with_context(|| format!("cannot write {}", args.ca_out.display()))?;
    println!("mock KooGallery OpenAPI listening on {}", mock.base_url());
    println!("  certificate {}", args.ca_out.display());
    println!("  inspect     GET {}/__mock/received", mock.base_url());
    super::shutdown_signal().await;
    Ok(true)
}
