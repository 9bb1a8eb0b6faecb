//! A mock KooGallery OpenAPI for tests, the simulator and the demo: it verifies SDK-HMAC-SHA256 and the usage-data
//! signature exactly, answers order/query for the console's mock orders, accepts usage-data, and injects faults.
//!
//! Besides the API it serves unsigned inspection and control endpoints under `/__mock/` (never part of KooGallery):
//! `GET /__mock/received` (every API request received, as JSON), `POST /__mock/fault` (`{"kind":"internal_error",
//! "times":2}`, `{"kind":"none"}` to clear), `POST /__mock/unknown-instance` (`{"instance_id":"…"}`) and
//! `POST /__mock/reset`. Library users get the same through [`MockOpenApi`].

mod handler;
pub mod orders;
mod usage;

use crate::clock::Clock;
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// The gateway refuses `X-Sdk-Date` values further than this from its clock (`koogallery-openapi.md` section 2).
pub const SDK_DATE_WINDOW: Duration = Duration::from_secs(15 * 60);
pub use super::{ORDER_QUERY_PATH, USAGE_DATA_PATH};

/// The credentials the mock accepts.
#[derive(Clone)]
pub struct MockOptions {
    /// The IAM AK/SK that must sign every API call.
    pub ak: String,
    pub sk: Vec<u8>,
    /// The KooGallery access key that must sign usage-data bodies.
    pub access_key: Vec<u8>,
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for MockOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockOptions").finish_non_exhaustive()
    }
}

/// A fault to inject, applied after the signature is verified (except `slow`, which only delays).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// HTTP 401 `APIGW.0301` to every call, as if the AK/SK signature were wrong.
    RefuseSignature,
    /// usage-data: `MKT.0102` invalid body sign.
    InvalidBodySign,
    /// usage-data: `MKT.9003` more than 1000 records.
    TooManyRecords,
    /// usage-data: `MKT.9001` instance not found.
    UnknownInstance,
    /// HTTP 500 with `MKT.0999` (both endpoints).
    InternalError,
    /// This MKT code (with its documented HTTP status) on both endpoints.
    Mkt { code: String },
    /// Answer normally, after this delay.
    Slow { ms: u64 },
}

/// One API request as the mock received it, and what it answered.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub status: u16,
    /// `MKT.xxxx` or `APIGW.0301`.
    pub code: String,
}

#[derive(Default)]
struct Control {
    /// The fault and how many more calls it applies to (`None`: until cleared).
    fault: Option<(Fault, Option<u32>)>,
    unknown_instances: HashSet<String>,
    received: Vec<Received>,
}

struct Shared {
    options: MockOptions,
    control: Mutex<Control>,
}

impl Shared {
    fn control(&self) -> MutexGuard<'_, Control> {
        // A panic while holding the lock cannot leave the control state inconsistent (plain inserts).
        self.control.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current fault, consuming one of its remaining uses.
    fn take_fault(&self) -> Option<Fault> {
        let mut control = self.control();
        let (fault, remaining) = control.fault.clone()?;
        match remaining {
            Some(0) => {
                control.fault = None;
                return None;
            }
            Some(n) => control.fault = (n > 1).then(|| (fault.clone(), Some(n - 1))),
            None => {}
        }
        Some(fault)
    }
}

/// A running mock. Dropping it stops the server.
pub struct MockOpenApi {
    addr: SocketAddr,
    ca_pem: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MockOpenApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MockOpenApi {
    /// Serves on `listener` over TLS with a fresh self-signed certificate for `localhost` and `127.0.0.1`.
    pub fn start(listener: TcpListener, options: MockOptions) -> anyhow::Result<Self> {
        let addr = listener.local_addr()?;
        let generated = rcgen::generate_simple_self_signed(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
        ])
        .context("cannot generate the mock's certificate")?;
        let ca_pem = generated.cert.pem();
        let key = rustls_pki_types::PrivateKeyDer::try_from(generated.signing_key.serialize_der())
            .map_err(|e| anyhow::anyhow!("mock key: {e}"))?;
        let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![generated.cert.der().clone()], key)?;
        let shared = Arc::new(Shared {
            options,
            control: Mutex::new(Control::default()),
        });
        let task = tokio::spawn(handler::serve(
            listener,
            TlsAcceptor::from(Arc::new(tls)),
            shared.clone(),
        ));
        Ok(Self {
            addr,
            ca_pem,
            shared,
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:<port>`, for `[koogallery_api] base_url`.
    pub fn base_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.addr.port())
    }

    /// The self-signed certificate (PEM), for `[koogallery_api] ca_file`.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Injects `fault` for the next `times` API calls (`None`: until cleared).
    pub fn set_fault(&self, fault: Fault, times: Option<u32>) {
        self.shared.control().fault = Some((fault, times));
    }

    pub fn clear_fault(&self) {
        self.shared.control().fault = None;
    }

    /// Usage records for this instance are answered with `MKT.9001`.
    pub fn add_unknown_instance(&self, instance_id: &str) {
        self.shared
            .control()
            .unknown_instances
            .insert(instance_id.to_owned());
    }

    /// Every API request received so far (not the `/__mock/` ones), oldest first.
    pub fn received(&self) -> Vec<Received> {
        self.shared.control().received.clone()
    }

    /// How many API requests were received on `path`.
    pub fn calls_to(&self, path: &str) -> usize {
        self.shared
            .control()
            .received
            .iter()
            .filter(|r| r.path == path)
            .count()
    }
}

#[cfg(test)]
mod tests;
