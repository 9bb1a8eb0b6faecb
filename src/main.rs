//! The `koogate` command: parse the command line, load config, initialise logging, run.
#![forbid(unsafe_code)]

use anyhow::Context;
use clap::{Parser, Subcommand};
use koogate::config::{Config, LogFormat, ProcessEnv};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

/// mimalloc: the request path allocates many small short-lived objects; the benchmark showed the system
/// allocator among the top costs.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "koogate",
    version,
    about = "KooGallery SaaS gateway: TLS, signatures and normalised JSON for your app"
)]
struct Cli {
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
    Check {
        #[arg(long, short, env = "KOOGATE_CONFIG")]
        config: PathBuf,
    },
    /// Print the audit journal as JSON lines (oldest first), optionally filtered.
    Journal {
        /// The store's data directory (`store.data_dir`).
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        order: Option<String>,
        #[arg(long)]
        instance: Option<String>,
        #[arg(long)]
        activity: Option<String>,
        /// Only entries at or after this RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// Only entries at or before this RFC 3339 time.
        #[arg(long)]
        until: Option<String>,
        /// Include the sealed personal data, opened with the journal key (from --journal-key-env or -file).
        #[arg(long)]
        personal_data: bool,
        #[arg(long, default_value = "KOOGATE_JOURNAL_KEY")]
        journal_key_env: String,
        #[arg(long)]
        journal_key_file: Option<PathBuf>,
    },
    /// Start the gateway with a development certificate and a demo upstream, and send it signed calls.
    Demo {
        /// Where the development certificate and demo key are kept.
        #[arg(long, default_value = ".koogate-dev")]
        dir: PathBuf,
        /// HTTPS address of the demo gateway.
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: SocketAddr,
        /// Keep serving after the demo calls, until Ctrl-C.
        #[arg(long)]
        serve: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("koogate: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("koogate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run { config } => {
            let config = Config::load(&config, &ProcessEnv)?;
            init_logging(config.log.format, &config.log.level);
            let listeners = koogate::Listeners::bind(&config).await?;
            koogate::run(config, listeners, shutdown_signal()).await
        }
        Command::Check { config: path } => {
            let config = Config::load(&path, &ProcessEnv)?;
            koogate::proxy::tls::server_config(
                &config.server.cert_chain_file,
                &config.server.private_key_file,
                false,
            )
            .context("the certificate and key do not load")?;
            println!("{}: valid", path.display());
            for activity in koogate::protocol::Activity::ALL {
                let route = config.upstream.route_for(activity);
                println!("  {:<22} → {} ({})", activity.name(), route.url, route.name);
            }
            Ok(())
        }
        Command::Journal {
            data_dir,
            order,
            instance,
            activity,
            since,
            until,
            personal_data,
            journal_key_env,
            journal_key_file,
        } => {
            use koogate::state::{journal, seal::Sealer};
            let time = |flag: &str, value: Option<String>| -> anyhow::Result<Option<u64>> {
                value
                    .map(|v| {
                        let at = time::OffsetDateTime::parse(&v, &time::format_description::well_known::Rfc3339)
                            .with_context(|| format!("--{flag} `{v}` is not an RFC 3339 time such as 2026-11-25T00:00:00Z"))?;
                        Ok((at.unix_timestamp_nanos() / 1_000_000) as u64)
                    })
                    .transpose()
            };
            let filter = journal::Filter {
                order_id: order,
                instance_id: instance,
                activity,
                since_ms: time("since", since)?,
                until_ms: time("until", until)?,
            };
            let sealer = if personal_data {
                let text = match &journal_key_file {
                    Some(file) => std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?,
                    None => std::env::var(&journal_key_env)
                        .with_context(|| format!("--personal-data needs the journal key: set {journal_key_env} or pass --journal-key-file"))?,
                };
                Some(Sealer::from_text(&text)?)
            } else {
                None
            };
            let entries = journal::read(&data_dir, &filter)
                .with_context(|| format!("cannot read the journal in {}", data_dir.display()))?;
            let mut out = std::io::stdout().lock();
            for entry in &entries {
                match writeln!(out, "{}", journal::export(entry, sealer.as_ref())) {
                    // `koogate journal | head` closes the pipe early: that is not an error.
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
                    other => other?,
                }
            }
            Ok(())
        }
        Command::Demo { dir, listen, serve } => {
            init_logging(LogFormat::Text, "warn");
            koogate::demo::run(koogate::demo::DemoOptions { dir, listen, serve }).await
        }
    }
}

fn init_logging(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
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
