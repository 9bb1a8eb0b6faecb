//! The `koogate` command line: one subcommand per file, each with its arguments and its `run`.

mod check;
mod check_acme;
mod field;
mod journal;
mod key;
#[cfg(feature = "demo")]
mod mock_openapi;
mod order;
mod run;
mod simulate;
mod tools;
mod usage;

use crate::config::LogFormat;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "koogate",
    version = env!("KOOGATE_LONG_VERSION"),
    about = "KooGallery SaaS gateway: TLS, signatures and normalised JSON for your app"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Run {
        /// The TOML configuration file.
        #[arg(long, short, env = "KOOGATE_CONFIG")]
        config: PathBuf,
    },
    /// Validate a configuration file, listing every error with its key path, and print the routes.
    Check(check::CheckArgs),
    /// Print the audit journal as JSON lines (oldest first), optionally filtered.
    Journal(journal::JournalArgs),
    /// Act as KooGallery: send the debugging cases to a production URL and judge the answers like the console.
    Simulate(simulate::SimulateArgs),
    /// Sign a V2 body (or V1 parameters) as KooGallery would, for curl scripts.
    Sign(tools::SignArgs),
    /// Verify a response's `Body-Sign` header against its body.
    Verify(tools::VerifyArgs),
    /// Encrypt a sensitive field with a product's key and algorithm.
    Encrypt(field::FieldArgs),
    /// Decrypt a sensitive field with a product's key and algorithm.
    Decrypt(field::FieldArgs),
    /// Look an order up in KooGallery's order query (signed with the IAM AK/SK) and print it normalised.
    Order(order::OrderArgs),
    #[cfg(feature = "demo")]
    /// Serve a mock KooGallery OpenAPI (order query, usage-data) that verifies both signatures, for tests.
    MockOpenapi(mock_openapi::MockOpenApiArgs),
    /// The usage-records relay (pay-per-use products).
    #[command(subcommand)]
    Usage(usage::UsageCommand),
    #[cfg(feature = "demo")]
    /// Start the gateway with a development certificate and a demo upstream, and send it signed calls.
    Demo {
        /// Where the development certificate and demo key are kept.
        #[arg(long, default_value = ".koogate-dev")]
        dir: PathBuf,
        /// HTTPS address of the demo gateway.
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: std::net::SocketAddr,
        /// Keep serving after the demo calls, until Ctrl-C.
        #[arg(long)]
        serve: bool,
    },
}

/// Runs the parsed command; `Ok(false)` means "ran, but the outcome is a failure" (non-zero exit, no error text).
pub async fn run(cli: Cli) -> anyhow::Result<bool> {
    match cli.command {
        Command::Run { config: path } => run::run(path).await,
        Command::Check(args) => check::run(args).await,
        Command::Journal(args) => journal::run(args),
        Command::Simulate(args) => simulate::run(args).await,
        Command::Sign(args) => tools::sign(args),
        Command::Verify(args) => tools::verify(args),
        Command::Encrypt(args) => field::encrypt(args),
        Command::Decrypt(args) => field::decrypt(args),
        Command::Order(args) => order::run(args).await,
        #[cfg(feature = "demo")]
        Command::MockOpenapi(args) => {
            init_logging(LogFormat::Text, "warn");
            mock_openapi::run(args).await
        }
        Command::Usage(command) => usage::run(command).await,
        #[cfg(feature = "demo")]
        Command::Demo { dir, listen, serve } => {
            init_logging(LogFormat::Text, "warn");
            crate::demo::run(crate::demo::DemoOptions { dir, listen, serve }).await?;
            Ok(true)
        }
    }
}

/// Whether to colour output on `stream`: a terminal, and no `NO_COLOR` (<https://no-color.org>) set.
pub(crate) fn colour(stream: &impl std::io::IsTerminal) -> bool {
    stream.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

pub(crate) fn init_logging(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let ansi = colour(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// Completes on SIGTERM or SIGINT.
pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = tokio::signal::ctrl_c() => {},
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
