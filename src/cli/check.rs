//! `koogate check`: validate a configuration without starting anything.

use crate::config::{Config, ProcessEnv};
use anyhow::Context;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct CheckArgs {
    #[arg(long, short, env = "KOOGATE_CONFIG")]
    config: PathBuf,
}

pub async fn run(args: CheckArgs) -> anyhow::Result<bool> {
    let config = Config::load(&args.config, &ProcessEnv)?;
    crate::proxy::tls::server_config(
        &config.server.cert_chain_file,
        &config.server.private_key_file,
        false,
    )
    .context("the certificate and key do not load")?;
    println!("{}: valid", args.config.display());
    for activity in crate::protocol::Activity::ALL {
        let route = config.upstream.route_for(activity);
        println!("  {:<22} → {} ({})", activity.name(), route.url, route.name);
    }
    Ok(true)
}
