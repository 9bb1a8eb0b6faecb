//! The usage-records relay for pay-per-use products: the app POSTs plain JSON records on a local listener,
//! koogate validates and durably queues them, and a background sender pushes them, signed, to KooGallery's
//! usage-data API (`koogallery-openapi.md` §4).
//!
//! * [`record`] — the app's record shape, validation, KooGallery's wire form.
//! * [`queue`] — the durable queue (its own redb file), deduplication by `metering_sn`, kept rejections.
//! * [`listener`] — `POST /v1/usage` and `GET /v1/usage/status`, bearer token when configured.
//! * [`sender`] and [`verdict`] — batching, backoff, and what KooGallery's answer codes mean.
//! * [`status`], [`metrics`], [`auth`] — operations.

pub mod auth;
pub mod listener;
pub mod metrics;
pub mod push;
pub mod queue;
pub mod record;
pub mod sender;
pub mod status;
pub mod verdict;

use crate::clock::Clock;
use crate::config::UsageConfig;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

/// The running relay: the listener and the sender, each stopping when the gateway's stop signal turns true.
pub struct Relay {
    pub listener: JoinHandle<()>,
    pub sender: JoinHandle<()>,
}

impl Relay {
    /// Opens the queue and starts the listener on `listener` and the sender pushing through `push`.
    pub fn start(
        config: &UsageConfig,
        listener: TcpListener,
        push: Arc<dyn sender::UsagePush>,
        registry: &prometheus::Registry,
        clock: Arc<dyn Clock>,
        stop: watch::Receiver<bool>,
    ) -> anyhow::Result<Self> {
        use anyhow::Context;
        let queue = queue::Queue::open(&config.data_dir).with_context(|| {
            format!(
                "cannot open the usage queue in {}",
                config.data_dir.display()
            )
        })?;
        let metrics = metrics::UsageMetrics::register(registry)?;
        let wake = Arc::new(Notify::new());
        let intake = Arc::new(listener::Intake {
            queue: queue.clone(),
            metrics: metrics.clone(),
            clock: clock.clone(),
            wake: wake.clone(),
            token: config.token.clone(),
            max_body_bytes: config.max_body_bytes,
            max_records_per_request: config.max_records_per_request,
            max_queued_records: config.max_queued_records,
        });
        let sender = sender::Sender {
            queue,
            push,
            metrics,
            clock,
            settings: sender::SenderSettings {
                batch_max_records: config.batch_max_records,
                batch_linger: config.batch_linger,
                retry_initial: config.retry_initial,
                retry_max: config.retry_max,
                retention: config.retention,
            },
            wake,
        };
        Ok(Self {
            listener: tokio::spawn(listener::serve(listener, intake, stop.clone())),
            sender: tokio::spawn(sender.run(stop)),
        })
    }

    /// Starts the relay when `[usage]` is configured, on `listener` (bound by the caller; `None` binds
    /// `usage.listen`).
    pub async fn from_config(
        config: &crate::config::Config,
        listener: Option<TcpListener>,
        registry: &prometheus::Registry,
        clock: Arc<dyn Clock>,
        stop: watch::Receiver<bool>,
    ) -> anyhow::Result<Option<Self>> {
        use anyhow::Context;
        let (Some(usage), Some(api)) = (&config.usage, &config.koogallery_api) else {
            return Ok(None);
        };
        let access_key = match &usage.access_key {
            Some(name) => config.keys.iter().find(|(_, k)| k.name() == name),
            None => config.keys.iter().next(),
        }
        .map(|(_, key)| key.clone())
        .context("usage.access_key names no configured access key")?;
        let client =
            crate::openapi::client::OpenApiClient::new(Arc::new(api.clone()), clock.clone())
                .context("cannot build the KooGallery API client for the usage relay")?;
        let listener = match listener {
            Some(listener) => listener,
            None => TcpListener::bind(usage.listen)
                .await
                .with_context(|| format!("cannot listen on usage.listen {}", usage.listen))?,
        };
        tracing::info!(listen = %listener.local_addr()?, "usage records endpoint (POST /v1/usage)");
        let push = Arc::new(push::OpenApiPush {
            client,
            access_key,
            clock: clock.clone(),
        });
        Self::start(usage, listener, push, registry, clock, stop).map(Some)
    }

    /// Waits for both to stop (after the stop signal).
    pub async fn join(self) {
        let _ = self.listener.await;
        let _ = self.sender.await;
    }
}
