//! Automatic certificates (`[acme]`): issued at start when none valid is stored, renewed at 2/3 of their
//! lifetime, retried with exponential backoff, and swapped into the HTTPS listener without dropping a call.
//!
//! The listener's TLS configuration resolves its certificate through [`CertResolver`], which holds the current
//! certified key in an `ArcSwap`: an installed certificate serves every new handshake, connections already
//! open keep theirs, and a failed renewal changes nothing (the old certificate keeps serving until it expires).

mod http01;
mod metrics;
mod order;
pub mod resolver;
mod store;

pub use metrics::AcmeMetrics;
pub use resolver::{CertResolver, ACME_TLS_ALPN};
pub use store::StateDir;

use crate::clock::Clock;
use crate::config::AcmeConfig;
use rustls_pki_types::{CertificateDer, ServerName};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// A whole attempt (account, order, validation, issuance) that takes longer than this has failed.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(300);

/// Why an attempt to obtain a certificate failed; [`AcmeError::outcome`] is its metric label.
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    #[error("cannot read acme.directory_ca_file {0}")]
    CaFile(String),
    #[error("ACME account")]
    Account(#[source] instant_acme::Error),
    #[error("ACME order")]
    Order(#[source] instant_acme::Error),
    #[error("the CA left an authorization {0}")]
    Authorization(String),
    #[error("the CA offers none of the configured challenges (acme.challenges)")]
    NoUsableChallenge,
    #[error("the challenge failed: {0}")]
    ChallengeFailed(String),
    #[error(transparent)]
    ChallengeCertificate(resolver::ChallengeCertError),
    #[error("the issued certificate is not usable: {0}")]
    Certificate(String),
    #[error(transparent)]
    Store(store::StoreError),
    #[error("the attempt took longer than {} s", ATTEMPT_TIMEOUT.as_secs())]
    Timeout,
}

impl AcmeError {
    /// The `outcome` label of `koogate_acme_attempts_total`.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::CaFile(_) => "config",
            Self::Account(_) => "account",
            Self::Order(_) | Self::Timeout => "order",
            Self::Authorization(_) | Self::NoUsableChallenge | Self::ChallengeFailed(_) => {
                "challenge"
            }
            Self::ChallengeCertificate(_) | Self::Certificate(_) => "certificate",
            Self::Store(_) => "storage",
        }
    }
}

/// The serving certificate's validity (Unix seconds).
struct Current {
    not_before: i64,
    not_after: i64,
}

impl Current {
    /// Renewal starts when 2/3 of the lifetime have passed (day 60 of a 90-day certificate), in Unix ms.
    fn renew_at_ms(&self) -> u64 {
        let at = self.not_before + (self.not_after - self.not_before) * 2 / 3;
        u64::try_from(at).unwrap_or(0).saturating_mul(1000)
    }
}

/// The running ACME service.
pub struct Acme {
    config: AcmeConfig,
    state: StateDir,
    resolver: Arc<CertResolver>,
    tokens: http01::Tokens,
    metrics: AcmeMetrics,
    expiry: prometheus::IntGauge,
    clock: Arc<dyn Clock>,
}

impl Acme {
    /// Opens the state directory and installs the stored certificate if it is still valid for the configured
    /// domains, so the listener serves it from the first handshake.
    pub fn new(
        config: AcmeConfig,
        metrics: &crate::metrics::Metrics,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        use anyhow::Context;
        let state = StateDir::open(&config.state_dir).context("acme.state_dir")?;
        let acme = Self {
            metrics: AcmeMetrics::register(metrics.registry())?,
            expiry: metrics.certificate_expiry.clone(),
            config,
            state,
            resolver: Arc::default(),
            tokens: http01::Tokens::default(),
            clock,
        };
        Ok(acme)
    }

    /// What the HTTPS listener resolves certificates through.
    pub fn resolver(&self) -> Arc<CertResolver> {
        self.resolver.clone()
    }

    /// Runs until `shutdown`: serves http-01 on `http01` (if configured) and keeps a valid certificate installed.
    pub async fn run(self, http01: Option<TcpListener>, shutdown: watch::Receiver<bool>) {
        if let Some(listener) = http01 {
            tokio::spawn(http01::serve(
                listener,
                self.tokens.clone(),
                shutdown.clone(),
            ));
        }
        let mut shutdown = shutdown;
        // Unix milliseconds of the next attempt: now without a usable stored certificate.
        let mut next_ms = self
            .load_stored()
            .map_or(self.clock.now_ms(), |c| c.renew_at_ms());
        let mut backoff = self.config.retry_initial;
        loop {
            let wait = Duration::from_millis(next_ms.saturating_sub(self.clock.now_ms()));
            if wait >= Duration::from_secs(1) {
                tracing::info!(
                    in_s = wait.as_secs(),
                    "next ACME certificate order scheduled"
                );
            }
            let outcome = tokio::select! {
                outcome = async { tokio::time::sleep(wait).await; self.attempt().await } => outcome,
                _ = crate::proxy::server::stop_requested(&mut shutdown) => return,
            };
            match outcome {
                Ok(issued) => {
                    next_ms = issued.renew_at_ms();
                    backoff = self.config.retry_initial;
                }
                Err(e) => {
                    tracing::error!(error = %format!("{:#}", anyhow::Error::from(e)),
                        retry_in_ms = backoff.as_millis() as u64,
                        serving_previous_certificate = self.resolver.has_certificate(),
                        "ACME certificate attempt failed");
                    next_ms = self
                        .clock
                        .now_ms()
                        .saturating_add(backoff.as_millis() as u64);
                    backoff = (backoff * 2).min(self.config.retry_max);
                }
            }
        }
    }

    /// One order; on success the certificate is stored, counted, then installed — in that order, so whoever sees
    /// the new certificate served also sees it on disk and in `koogate_acme_attempts_total`.
    async fn attempt(&self) -> Result<Current, AcmeError> {
        self.metrics.last_attempt.set(self.now());
        let responders = order::Responders {
            resolver: &self.resolver,
            tokens: &self.tokens,
        };
        let issued = match tokio::time::timeout(
            ATTEMPT_TIMEOUT,
            order::issue(&self.config, &self.state, responders),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(AcmeError::Timeout),
        };
        let checked = issued.and_then(|issued| {
            let bundle = format!("{}\n{}", issued.key_pem.trim_end(), issued.chain_pem);
            let checked = usable(&bundle, &self.config.domains, self.now())
                .map_err(AcmeError::Certificate)?;
            Ok((issued, checked))
        });
        match checked {
            Err(e) => {
                self.count(Err(&e));
                Err(e)
            }
            // A certificate that cannot be stored is still served (it is valid); the attempt counts as failed.
            Ok((issued, checked)) => {
                let stored = self
                    .state
                    .save_certificate(&issued.key_pem, &issued.chain_pem)
                    .map_err(AcmeError::Store);
                self.count(stored.as_ref().map(|_| ()));
                let current = self.serve(checked);
                if stored.is_ok() {
                    tracing::info!(domains = ?self.config.domains, "ACME certificate issued and installed");
                }
                stored.map(|()| current)
            }
        }
    }

    fn count(&self, outcome: Result<(), &AcmeError>) {
        let label = outcome.map_or_else(|e| e.outcome(), |()| "success");
        self.metrics.attempts.with_label_values(&[label]).inc();
        if outcome.is_ok() {
            self.metrics.last_success.set(self.now());
        }
    }

    /// The stored certificate, installed if it is still valid and covers every configured domain.
    fn load_stored(&self) -> Option<Current> {
        let bundle = self.state.certificate()?;
        match self.install(&bundle) {
            Ok(current) => {
                tracing::info!(path = %self.state.certificate_path().display(), "serving the stored ACME certificate");
                Some(current)
            }
            Err(why) => {
                tracing::info!(
                    why,
                    "the stored ACME certificate is not used; ordering a new one"
                );
                None
            }
        }
    }

    /// Checks a key-and-chain PEM bundle and makes it the serving certificate.
    fn install(&self, bundle: &str) -> Result<Current, String> {
        let checked = usable(bundle, &self.config.domains, self.now())?;
        Ok(self.serve(checked))
    }

    /// Makes a checked certificate the serving one.
    fn serve(&self, (key, not_before, not_after): Checked) -> Current {
        self.resolver.install(key);
        self.expiry.set(not_after);
        Current {
            not_before,
            not_after,
        }
    }

    fn now(&self) -> i64 {
        i64::try_from(self.clock.now_ms() / 1000).unwrap_or(i64::MAX)
    }
}

/// What `koogate check` reports about the stored certificate: `(notBefore, notAfter)` if it would be served,
/// the reason if not, `Ok(None)` if there is none yet.
pub fn stored_certificate(config: &AcmeConfig, now: i64) -> Result<Option<(i64, i64)>, String> {
    let Ok(bundle) = std::fs::read_to_string(config.state_dir.join(store::CERTIFICATE_FILE)) else {
        return Ok(None);
    };
    usable(&bundle, &config.domains, now)
        .map(|(_, not_before, not_after)| Some((not_before, not_after)))
}

/// A PEM bundle's certified key and validity, if it is unexpired and names every domain.
/// A certificate that passed [`usable`]: the key to serve, and its validity (Unix seconds).
type Checked = (Arc<rustls::sign::CertifiedKey>, i64, i64);

fn usable(bundle: &str, domains: &[String], now: i64) -> Result<Checked, String> {
    let (chain, key) =
        resolver::parse_pem_bundle(bundle).ok_or("no certificate and key in PEM form")?;
    let (not_before, not_after) =
        crate::proxy::tls::leaf_validity(&chain[0]).ok_or("the leaf certificate does not parse")?;
    if not_after <= now {
        return Err("it has expired".to_owned());
    }
    covers(&chain[0], domains)?;
    let key = resolver::certified_key(&chain, key).map_err(|e| e.to_string())?;
    Ok((key, not_before, not_after))
}

/// The leaf is valid for every configured name (a domain added to `acme.domains` triggers a new order).
fn covers(leaf: &CertificateDer<'_>, domains: &[String]) -> Result<(), String> {
    let cert = webpki::EndEntityCert::try_from(leaf).map_err(|e| e.to_string())?;
    for domain in domains {
        let name = ServerName::try_from(domain.as_str()).map_err(|e| e.to_string())?;
        cert.verify_is_valid_for_subject_name(&name)
            .map_err(|_| format!("it does not name {domain}"))?;
    }
    Ok(())
}
