//! The connections of one route: how to open one, and a small LIFO stack of idle ones.
//!
//! LIFO keeps the warmest connections busy and lets the others age out. An idle connection older than the idle
//! timeout is never handed out (the timeout is kept below common app keep-alive defaults, so koogate gives up a
//! connection before the app would close it under a request); [`reap`] closes the expired ones in the background.

use super::conn::{Conn, Stream};
use super::tls::BuildError;
use super::ConnectionError;
use crate::config::{RouteConfig, UpstreamConfig};
use rustls_pki_types::ServerName;
use std::sync::{Mutex, PoisonError, Weak};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Where and how one route's connections are opened.
struct Connector {
    /// Host as for `connect` (no IPv6 brackets) and port.
    host: String,
    port: u16,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    connect_timeout: Duration,
}

impl Connector {
    fn new(config: &UpstreamConfig, route: &RouteConfig) -> Result<Self, BuildError> {
        let url = &route.url;
        let host = url.host().ok_or(BuildError::Url)?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let https = url.scheme_str() == Some("https");
        let port = url.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tls = match https {
            false => None,
            true => {
                let config = super::tls::route_client_config(route)?;
                let name = ServerName::try_from(host.clone())?;
                Some((
                    tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)),
                    name,
                ))
            }
        };
        Ok(Self {
            host,
            port,
            tls,
            connect_timeout: config.connect_timeout,
        })
    }

    async fn connect(&self) -> Result<Conn, ConnectionError> {
        let connecting = TcpStream::connect((self.host.as_str(), self.port));
        let tcp = tokio::time::timeout(self.connect_timeout, connecting)
            .await
            .map_err(|_| ConnectionError::ConnectTimeout)?
            .map_err(ConnectionError::Connect)?;
        let _ = tcp.set_nodelay(true);
        let stream = match &self.tls {
            None => Stream::Plain(tcp),
            Some((connector, name)) => Stream::Tls(Box::new(
                connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(ConnectionError::Tls)?,
            )),
        };
        Conn::open(stream).await.map_err(ConnectionError::Http)
    }
}

/// One route's connector and idle connections.
pub struct Pool {
    connector: Connector,
    /// Most recently used last.
    idle: Mutex<Vec<Conn>>,
    max_idle: usize,
    idle_timeout: Duration,
}

impl Pool {
    pub fn new(config: &UpstreamConfig, route: &RouteConfig) -> Result<Self, BuildError> {
        Ok(Self {
            connector: Connector::new(config, route)?,
            idle: Mutex::new(Vec::new()),
            max_idle: config.pool_max_idle_per_host,
            idle_timeout: config.pool_idle_timeout,
        })
    }

    /// A new connection (TCP connect within the connect timeout, then TLS for https routes).
    pub async fn connect(&self) -> Result<Conn, ConnectionError> {
        self.connector.connect().await
    }

    /// The most recently used idle connection that is still open and not expired; the others met on the way are
    /// closed.
    pub fn take_idle(&self) -> Option<Conn> {
        loop {
            let mut conn = self.lock().pop()?;
            if conn.idle_since.elapsed() >= self.idle_timeout {
                // Everything under it is older still.
                let expired = std::mem::take(&mut *self.lock());
                drop((conn, expired));
                return None;
            }
            if conn.is_usable() {
                return Some(conn);
            }
        }
    }

    /// Puts `conn` (its last answer read whole) back for reuse, unless it closed or the stack is full. Returns
    /// whether it was kept.
    pub fn put(&self, mut conn: Conn) -> bool {
        if self.max_idle == 0 || !conn.is_usable() {
            return false;
        }
        conn.idle_since = Instant::now();
        let mut idle = self.lock();
        if idle.len() >= self.max_idle {
            return false;
        }
        idle.push(conn);
        true
    }

    /// Closes the expired idle connections; returns when the oldest remaining one expires.
    fn close_expired(&self, now: Instant) -> Option<Instant> {
        let mut idle = self.lock();
        let fresh = idle
            .iter()
            .position(|c| now.duration_since(c.idle_since) < self.idle_timeout)
            .unwrap_or(idle.len());
        let expired: Vec<Conn> = idle.drain(..fresh).collect();
        let next = idle.first().map(|c| c.idle_since + self.idle_timeout);
        drop(idle);
        drop(expired);
        next
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Conn>> {
        // The stack holds no invariant a panic could break.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Closes expired idle connections of `pools` as they expire, until the pools are dropped (a reload builds new
/// ones). Without it an idle connection would stay open, polled by no one, until the next call found it expired.
pub async fn reap(pools: Weak<[Pool]>, idle_timeout: Duration) {
    let mut wake = Instant::now() + idle_timeout;
    loop {
        tokio::time::sleep_until(wake).await;
        let Some(pools) = pools.upgrade() else {
            return;
        };
        let now = Instant::now();
        wake = pools
            .iter()
            .filter_map(|pool| pool.close_expired(now))
            .min()
            .unwrap_or(now + idle_timeout)
            // Never spin on a clock that does not move.
            .max(now + Duration::from_millis(10));
    }
}
