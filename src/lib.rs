//! koogate: a TLS-terminating sidecar that speaks KooGallery's SaaS protocol for an existing web app.
//!
//! * [`protocol`] — the wire protocol, pure and network-free (signatures, activities, result codes, contract).
//! * [`gateway`] — the request path: verify, replay-check, normalise, forward, sign.
//! * [`proxy`] — plumbing: TLS, listeners, upstream client, admin endpoint.
//! * [`config`], [`metrics`], [`secret`], [`clock`] — operations.
//!
//! [`run`] is what `koogate run` calls and what the integration tests drive, on listeners they bind themselves.
#![forbid(unsafe_code)]

pub mod acme;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
#[cfg(feature = "demo")]
pub mod demo;
pub mod gateway;
pub mod metrics;
pub mod openapi;
pub mod private_fs;
pub mod protocol;
pub mod proxy;
pub mod reload;
pub mod secret;
pub mod simulate;
pub mod state;
pub mod upstream;
pub mod usage;

use anyhow::Context;
use arc_swap::ArcSwap;
use clock::{Clock, SystemClock};
use config::Config;
use config::Env;
use gateway::Gateway;
use metrics::Metrics;
use proxy::admin::{self, Readiness};
use proxy::server::CurrentGateway;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::sync::watch;

/// The sockets koogate serves. Bound by the caller, so tests can use port 0 and read the addresses.
pub struct Listeners {
    pub https: TcpListener,
    /// Only when `[plain_http]` is configured.
    pub plain_http: Option<TcpListener>,
    pub admin: TcpListener,
    /// The usage-records listener; when `None` and `[usage]` is configured, `run` binds `usage.listen`.
    pub usage: Option<TcpListener>,
    /// Only when `[acme]` answers `http-01` (`acme.http01_listen`).
    pub acme_http: Option<TcpListener>,
}

impl Listeners {
    /// Binds the addresses named in the configuration.
    pub async fn bind(config: &Config) -> anyhow::Result<Self> {
        let https = TcpListener::bind(config.server.listen)
            .await
            .with_context(|| format!("cannot listen on server.listen {}", config.server.listen))?;
        let plain_http = match config.plain_http {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on plain_http.listen {addr}"))?,
            ),
            None => None,
        };
        let admin = TcpListener::bind(config.admin_listen)
            .await
            .with_context(|| format!("cannot listen on admin.listen {}", config.admin_listen))?;
        let usage = match &config.usage {
            Some(usage) => Some(
                TcpListener::bind(usage.listen)
                    .await
                    .with_context(|| format!("cannot listen on usage.listen {}", usage.listen))?,
            ),
            None => None,
        };
        let acme_http = match config
            .server
            .certificates
            .acme()
            .and_then(|a| a.http01_listen)
        {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on acme.http01_listen {addr}"))?,
            ),
            None => None,
        };
        Ok(Self {
            https,
            plain_http,
            admin,
            usage,
            acme_http,
        })
    }
}

/// Serves until `shutdown` completes, then drains: readiness turns false, the listeners keep serving for
/// `server.drain_delay_ms` (so load balancers notice), then stop accepting, in-flight requests finish (bounded by
/// `server.shutdown_grace_ms`), and `run` returns.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    run_with(
        config,
        listeners,
        Metrics::new()?,
        Arc::new(SystemClock),
        shutdown,
        None,
    )
    .await
}

/// How a running gateway is told to reload: each message on `triggers` reloads `path`.
pub struct Reload {
    pub path: PathBuf,
    pub env: Box<dyn Env + Send + Sync>,
    pub triggers: mpsc::Receiver<()>,
}

/// [`run`] with the metrics registry and clock supplied by the caller, and optionally reloadable.
pub async fn run_with(
    config: Config,
    listeners: Listeners,
    metrics: Metrics,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()>,
    mut reload: Option<Reload>,
) -> anyhow::Result<()> {
    let (stop, stopped) = watch::channel(false);
    let relay = usage::Relay::from_config(
        &config,
        listeners.usage,
        metrics.registry(),
        clock.clone(),
        stopped.clone(),
    )
    .await?;
    let acme = match config.server.certificates.acme() {
        Some(settings) => Some(acme::Acme::new(settings.clone(), &metrics, clock.clone())?),
        None => None,
    };
    let resolver = acme.as_ref().map(acme::Acme::resolver);
    let gateway = Gateway::new(
        Arc::new(config),
        metrics.clone(),
        clock.clone(),
        resolver.clone(),
    )
    .context("cannot start the gateway")?;
    metrics
        .config_last_reload_success
        .set(clock::unix_seconds());
    gateway.publish_certificate_expiry();
    let readiness = Readiness::depending_on(gateway.store_health());
    let current: CurrentGateway = Arc::new(ArcSwap::from_pointee(gateway));

    let mut servers = tokio::task::JoinSet::new();
    tracing::info!(listen = %listeners.https.local_addr()?, "serving KooGallery calls over HTTPS (TLS 1.2+)");
    servers.spawn(proxy::server::serve(
        listeners.https,
        true,
        current.clone(),
        stopped.clone(),
    ));
    if let Some(plain) = listeners.plain_http {
        tracing::warn!(listen = %plain.local_addr()?,
            "plain-HTTP listener enabled: only safe behind a load balancer that terminates TLS 1.2+ itself");
        servers.spawn(proxy::server::serve(
            plain,
            false,
            current.clone(),
            stopped.clone(),
        ));
    }
    tracing::info!(listen = %listeners.admin.local_addr()?, "admin endpoint (/metrics, /healthz, /readyz, /console)");
    let console = console::Console::new(current.clone(), metrics.clone(), clock.clone());
    let admin = tokio::spawn(admin::serve(
        listeners.admin,
        metrics.clone(),
        readiness.clone(),
        Some(Arc::new(console)),
        stopped.clone(),
    ));

    if let Some(acme) = acme {
        servers.spawn(acme.run(listeners.acme_http, stopped.clone()));
    }
    match resolver {
        // Not ready until the first certificate is installed: before that every handshake fails.
        Some(resolver) if !resolver.has_certificate() => {
            let (readiness, metrics, mut stopped) =
                (readiness.clone(), metrics.clone(), stopped.clone());
            tokio::spawn(async move {
                tokio::select! {
                    _ = resolver.installed() => { readiness.set(true); metrics.ready.set(1); }
                    _ = stopped.wait_for(|stop| *stop) => {}
                }
            });
        }
        _ => {
            readiness.set(true);
            metrics.ready.set(1);
        }
    }
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let trigger = async {
            match reload.as_mut() {
                Some(reload) => reload.triggers.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut shutdown => break,
            Some(()) = trigger => {
                if let Some(reload) = &reload {
                    reload::apply(&current, reload);
                }
            }
        }
    }
    readiness.set(false);
    metrics.ready.set(0);
    let drain = current.load().config().server.drain_delay;
    tracing::info!(
        drain_delay_ms = drain.as_millis() as u64,
        "shutting down: not ready; draining before closing listeners"
    );
    tokio::time::sleep(drain).await;
    let _ = stop.send(true);
    while servers.join_next().await.is_some() {}
    // Calls whose client hung up run on in their own tasks (their answer must still be recorded): wait for them
    // too, within the grace period, so KooGallery's retry finds the record instead of reaching the app again.
    let (tasks, grace) = {
        let gateway = current.load();
        (gateway.tasks(), gateway.config().server.shutdown_grace)
    };
    tasks.close();
    if tokio::time::timeout(grace, tasks.wait()).await.is_err() {
        tracing::warn!(
            calls = tasks.len(),
            "grace period over; calls still running are cancelled"
        );
    }
    let _ = admin.await;
    if let Some(relay) = relay {
        // The sender finishes a push in flight and settles it; whatever is still queued stays on disk.
        relay.join().await;
    }
    tracing::info!("stopped");
    Ok(())
}
