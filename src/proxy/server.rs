//! Listeners and connections: accept (evicting idle connections at the limit), TLS handshake with a timeout, HTTP
//! with a header-read timeout, and graceful shutdown.

use super::http_errors::{self, SignedErrors};
use super::slots::{Admission, Slot, Slots};
use crate::config::ServerConfig;
use crate::gateway::Gateway;
use crate::metrics::Metrics;
use arc_swap::ArcSwap;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// HTTP/2 hardening (only when enabled): KooGallery sends one call at a time, so small limits cost nothing.
const H2_MAX_CONCURRENT_STREAMS: u32 = 16;
const H2_MAX_HEADER_LIST_BYTES: u32 = 16 * 1024;
const H2_MAX_PENDING_RESETS: usize = 16;
/// Request headers larger than this are refused by hyper (KooGallery's are well under 1 KiB).
const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Pause after an accept error (for example EMFILE) so the loop does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// The gateway currently serving; a reload swaps it. Each connection takes the TLS settings, and each request
/// the whole snapshot, that are current when it starts.
pub type CurrentGateway = Arc<ArcSwap<Gateway>>;

/// Accepts connections on `listener` until `shutdown` turns true, then waits (up to the grace period) for
/// in-flight requests. `tls` is false only for the explicitly configured plain-HTTP listener. Every connection is
/// accepted; at the limit (the one configured at start) the oldest that has not sent a request is evicted
/// ([`Slots`]).
pub async fn serve(
    listener: TcpListener,
    tls: bool,
    gateways: CurrentGateway,
    mut shutdown: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    let max_connections = gateways.load().config().server.max_connections;
    let slots = Slots::new(max_connections);
    let metrics = gateways.load().metrics().clone();
    metrics.connections_max.add(max_connections as i64);
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    continue;
                }
            },
            _ = stop_requested(&mut shutdown) => break,
        };
        metrics.connections_accepted.inc();
        let mut slot = match slots.admit() {
            Admission::Admitted { slot, evicted } => {
                if evicted {
                    metrics.connections_evicted.inc();
                }
                slot
            }
            Admission::Full => {
                // Every slot serves a request; closing at once beats a wait KooGallery would time out on.
                metrics.connections_refused.inc();
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let watcher = graceful.watcher();
        let (gateways, metrics) = (gateways.clone(), metrics.clone());
        tokio::spawn(async move {
            metrics.connections_open.inc();
            let eviction = slot.eviction();
            let slot = Arc::new(slot);
            tokio::select! {
                _ = eviction => tracing::debug!("idle connection evicted for a new one"),
                _ = connection(stream, tls, gateways, &metrics, slot.clone(), watcher) => {}
            }
            drop(slot);
            metrics.connections_open.dec();
        });
    }
    drop(listener);
    metrics.connections_max.sub(max_connections as i64);
    let grace = gateways.load().config().server.shutdown_grace;
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_ms = grace.as_millis() as u64,
            "grace period over; closing remaining connections"
        );
    }
}

/// The TCP peer of a request (a request extension): KooGallery's address, or the load balancer's behind
/// `[plain_http]`. Only logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub std::net::SocketAddr);

/// One connection: the TLS handshake (with its timeout) when `tls`, then HTTP.
async fn connection(
    stream: TcpStream,
    tls: bool,
    gateways: CurrentGateway,
    metrics: &Metrics,
    slot: Arc<Slot>,
    watcher: Watcher,
) {
    let snapshot = gateways.load_full();
    let limits = snapshot.config().server.clone();
    let peer = stream.peer_addr().ok().map(ClientAddr);
    if !tls {
        return serve_connection(stream, gateways, &limits, slot, watcher, peer).await;
    }
    let acceptor = TlsAcceptor::from(snapshot.tls());
    let started = std::time::Instant::now();
    match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls_stream)) => {
            metrics
                .handshake_duration
                .observe(started.elapsed().as_secs_f64());
            let version = tls_stream
                .get_ref()
                .1
                .protocol_version()
                .map_or("unknown", protocol_label);
            metrics.tls_handshakes.with_label_values(&[version]).inc();
            if tls_stream.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
                metrics.tls_resumed_handshakes.inc();
            }
            serve_connection(tls_stream, gateways, &limits, slot, watcher, peer).await;
        }
        Ok(Err(e)) => {
            let reason = handshake_failure_reason(&e);
            metrics
                .tls_handshake_failures
                .with_label_values(&[reason])
                .inc();
            tracing::debug!(error = %e, reason, "TLS handshake failed");
        }
        Err(_) => {
            metrics
                .tls_handshake_failures
                .with_label_values(&["timeout"])
                .inc();
            tracing::debug!("TLS handshake timed out");
        }
    }
}

async fn serve_connection<IO>(
    io: IO,
    gateways: CurrentGateway,
    limits: &ServerConfig,
    slot: Arc<Slot>,
    watcher: Watcher,
    peer: Option<ClientAddr>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // hyper's own answers to requests it cannot parse become signed KooGallery errors (see `http_errors`).
    let (answers, refusals) = (
        gateways.clone(),
        gateways.load().metrics().rejections.clone(),
    );
    let io = SignedErrors::new(
        io,
        Box::new(move || http_errors::invalid_request(&answers.load())),
        Box::new(move || refusals.with_label_values(&["malformed_http"]).inc()),
    );
    let service = service_fn(move |mut request: http::Request<_>| {
        // A connection that sent a request is KooGallery's (or at least speaks HTTP): no longer evictable.
        slot.activate();
        if let Some(peer) = peer {
            request.extensions_mut().insert(peer);
        }
        let gateway = gateways.load_full();
        let method = request.method().clone();
        async move {
            let answer = gateway.handle(request).await;
            Ok::<_, Infallible>(http_errors::fit_to_method(&method, answer))
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(MAX_HEADER_BYTES.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(H2_MAX_CONCURRENT_STREAMS)
        .max_header_list_size(H2_MAX_HEADER_LIST_BYTES)
        .max_pending_accept_reset_streams(H2_MAX_PENDING_RESETS)
        .keep_alive_interval(Some(limits.header_read_timeout))
        .keep_alive_timeout(limits.header_read_timeout);
    if !limits.http2 {
        builder = builder.http1_only();
    }
    let connection = builder
        .serve_connection(TokioIo::new(io), service)
        .into_owned();
    if let Err(e) = watcher.watch(connection).await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// A bounded label for a failed handshake (every value is in `metrics::TLS_HANDSHAKE_FAILURE_REASONS`):
/// * `protocol_version`: TLS 1.0/1.1 (KooGallery's console refuses those too). Real OpenSSL 1.0/1.1 clients are
///   refused before the version check because their ClientHello has no `signature_algorithms` extension (it only
///   exists since TLS 1.2), so that refusal counts here too;
/// * `certificate_rejected`: the client refused koogate's certificate with an alert (unknown CA, bad or expired
///   certificate...) — the console's "certificate not trusted";
/// * `eof`: the client closed early (TCP health checks); `not_tls`: bytes that are not TLS; `incompatible`: no
///   cipher suite or group in common and the like; `error`: anything else.
fn handshake_failure_reason(error: &std::io::Error) -> &'static str {
    use rustls::{AlertDescription as Alert, PeerIncompatible as Incompatible};
    if error.kind() == std::io::ErrorKind::UnexpectedEof {
        return "eof";
    }
    match error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::PeerIncompatible(
            Incompatible::Tls12NotOffered
            | Incompatible::Tls12NotOfferedOrEnabled
            | Incompatible::SupportedVersionsExtensionRequired
            | Incompatible::SignatureAlgorithmsExtensionRequired,
        )) => "protocol_version",
        Some(rustls::Error::PeerIncompatible(_)) => "incompatible",
        Some(rustls::Error::AlertReceived(
            Alert::BadCertificate
            | Alert::UnsupportedCertificate
            | Alert::CertificateRevoked
            | Alert::CertificateExpired
            | Alert::CertificateUnknown
            | Alert::UnknownCA
            | Alert::BadCertificateStatusResponse,
        )) => "certificate_rejected",
        Some(rustls::Error::AlertReceived(Alert::ProtocolVersion)) => "protocol_version",
        Some(rustls::Error::InvalidMessage(_)) => "not_tls",
        _ => "error",
    }
}

fn protocol_label(version: rustls::ProtocolVersion) -> &'static str {
    match version {
        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3",
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2",
        _ => "other",
    }
}

/// Completes once shutdown has been requested (or the sender is gone).
pub(crate) async fn stop_requested(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await.is_ok();
}
