//! The server TLS configuration: rustls with TLS 1.2 and 1.3 only, certificate chain and key from PEM files.

use super::certificate::{self, Misfit};
use rustls::server::ServerConfig;
use rustls_pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

/// TLS 1.2 sessions remembered by id for callers without ticket support (about 200 bytes each).
const SESSION_CACHE_ENTRIES: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read certificate chain {path}")]
    Certs {
        path: String,
        source: rustls_pki_types::pem::Error,
    },
    #[error("no certificate in {path}")]
    NoCerts { path: String },
    #[error("cannot read private key {path}")]
    Key {
        path: String,
        source: rustls_pki_types::pem::Error,
    },
    #[error(
        "the private key {path} is encrypted ({format}): koogate reads only unencrypted keys; decrypt it once with \
         `openssl pkey -in {path} -out {plain}` (it asks for the passphrase), keep the result 0600 and point \
         server.private_key_file at it"
    )]
    EncryptedKey {
        path: String,
        plain: String,
        format: &'static str,
    },
    #[error(
        "the first certificate in {path} is X.509 version {version}: rustls (webpki) accepts only version 3 server \
         certificates; re-issue it as v3 with a subjectAltName (a CA-issued certificate always is; for a self-signed \
         one `openssl req -x509 -new -key KEY -subj /CN=HOST -addext subjectAltName=DNS:HOST -days 365 -out CERT`)"
    )]
    OldCertificate { path: String, version: u8 },
    #[error(
        "the certificates in {path} are in the wrong order: the key belongs to certificate {position} of {count}, \
         but the server's own (leaf) certificate must come first, then the intermediates that issued it"
    )]
    LeafNotFirst {
        path: String,
        position: usize,
        count: usize,
        first_is_ca: bool,
    },
    #[error("certificate and key are not usable together")]
    Rustls(#[from] rustls::Error),
}

/// The HTTPS listener's TLS configuration for `server`: from the certificate files, or through the ACME
/// resolver (which must be given under `[acme]`; adding `[acme]` needs a restart).
/// `resumption` is the session state every snapshot shares (so sessions resume across reloads).
pub fn for_listener(
    server: &crate::config::ServerConfig,
    acme: Option<Arc<crate::acme::CertResolver>>,
    resumption: &Resumption,
) -> anyhow::Result<Arc<ServerConfig>> {
    use anyhow::Context;
    let config = match (server.certificates.files(), acme) {
        (Some((cert, key)), _) => server_config(cert, key, server.http2).context(
            "cannot load the TLS certificate and key (server.cert_chain_file, server.private_key_file)",
        )?,
        (None, Some(resolver)) => server_config_with_resolver(resolver, server.http2)?,
        (None, None) => anyhow::bail!("[acme] was added: restart koogate to obtain certificates"),
    };
    // Just built, so not shared yet: unwrapping does not copy.
    let mut config = Arc::unwrap_or_clone(config);
    resumption.apply(&mut config);
    Ok(Arc::new(config))
}

/// Builds the listener's TLS configuration. TLS 1.0 and 1.1 are not compiled into rustls at all, so such clients
/// fail the handshake with a `protocol_version` alert. ALPN offers `h2` only when `http2` is set.
pub fn server_config(
    cert_chain: &Path,
    private_key: &Path,
    http2: bool,
) -> Result<Arc<ServerConfig>, TlsError> {
    let shown = |p: &Path| p.display().to_string();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_chain)
        .and_then(|iter| iter.collect())
        .map_err(|source| TlsError::Certs {
            path: shown(cert_chain),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCerts {
            path: shown(cert_chain),
        });
    }
    let key = read_key(private_key)?;
    let builder =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_no_client_auth();
    let mut config = match builder.with_single_cert(certs.clone(), key.clone_key()) {
        Ok(config) => config,
        // rustls says "key mismatch" or "bad certificate"; the certificates tell why.
        Err(error) => {
            return Err(match certificate::misfit(&certs, &key) {
                Some(Misfit::OldVersion { version }) => TlsError::OldCertificate {
                    path: shown(cert_chain),
                    version,
                },
                Some(Misfit::LeafNotFirst {
                    position,
                    count,
                    first_is_ca,
                }) => TlsError::LeafNotFirst {
                    path: shown(cert_chain),
                    position,
                    count,
                    first_is_ca,
                },
                None => TlsError::Rustls(error),
            })
        }
    };
    config.alpn_protocols = alpn(http2);
    Ok(Arc::new(config))
}

/// Session resumption for callers that reconnect per call (KooGallery opens a connection per call): TLS 1.3 and
/// 1.2 session tickets, plus a TLS 1.2 session-id cache. The gateway keeps one across reloads and gives it to every
/// server configuration it builds ([`for_listener`]), so a session taken before a reload (which builds a new
/// `ServerConfig`) resumes after it. The ticketer's keys are random per instance and rotate every 6 hours
/// (rustls' `Ticketer`).
pub struct Resumption {
    /// `None` if the system's random generator failed: full handshakes only.
    ticketer: Option<Arc<dyn rustls::server::ProducesTickets>>,
    cache: Arc<dyn rustls::server::StoresServerSessions>,
}

impl Resumption {
    pub fn new() -> Self {
        Self {
            ticketer: rustls::crypto::ring::Ticketer::new()
                .inspect_err(|e| tracing::warn!(error = %e, "no TLS session tickets"))
                .ok(),
            cache: rustls::server::ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES),
        }
    }

    fn apply(&self, config: &mut ServerConfig) {
        config.session_storage = self.cache.clone();
        if let Some(ticketer) = &self.ticketer {
            config.ticketer = ticketer.clone();
        }
    }
}

impl Default for Resumption {
    fn default() -> Self {
        Self::new()
    }
}

/// The private key in `path`; an encrypted one is named as such (rustls would only find no key in it).
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let shown = path.display().to_string();
    let pem = std::fs::read(path).map_err(|e| TlsError::Key {
        path: shown.clone(),
        source: rustls_pki_types::pem::Error::Io(e),
    })?;
    if let Some(format) = certificate::encrypted_key_format(&pem) {
        let plain = match shown.strip_suffix(".pem") {
            Some(stem) => format!("{stem}.plain.pem"),
            None => format!("{shown}.plain.pem"),
        };
        return Err(TlsError::EncryptedKey {
            path: shown,
            plain,
            format,
        });
    }
    PrivateKeyDer::from_pem_slice(&pem).map_err(|source| TlsError::Key {
        path: shown,
        source,
    })
}

/// The listener's TLS configuration under `[acme]`: certificates come from `resolver` (hot-swapped on renewal),
/// and ALPN also offers `acme-tls/1`, which only a CA's tls-alpn-01 validator asks for.
pub fn server_config_with_resolver(
    resolver: Arc<dyn rustls::server::ResolvesServerCert>,
    http2: bool,
) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_no_client_auth()
            .with_cert_resolver(resolver);
    config.alpn_protocols = alpn(http2);
    config
        .alpn_protocols
        .push(crate::acme::ACME_TLS_ALPN.to_vec());
    Ok(Arc::new(config))
}

fn alpn(http2: bool) -> Vec<Vec<u8>> {
    if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    }
}

/// The leaf certificate's `notAfter` as Unix seconds, for `koogate_certificate_expiry_timestamp_seconds`;
/// `None` if the file does not parse.
pub fn certificate_expiry(cert_chain: &Path) -> Option<i64> {
    certificate_validity(cert_chain).map(|(_, not_after)| not_after)
}

/// The leaf certificate's `(notBefore, notAfter)` as Unix seconds.
pub fn certificate_validity(cert_chain: &Path) -> Option<(i64, i64)> {
    leaf_facts(cert_chain).map(|facts| (facts.not_before, facts.not_after))
}

/// A DER certificate's `(notBefore, notAfter)` as Unix seconds.
pub fn leaf_validity(leaf: &CertificateDer<'_>) -> Option<(i64, i64)> {
    certificate::facts(leaf).map(|facts| (facts.not_before, facts.not_after))
}

/// The leaf certificate's facts (subject, validity, version), for start summaries and `check`.
pub fn leaf_facts(cert_chain: &Path) -> Option<certificate::CertificateFacts> {
    let leaf = CertificateDer::pem_file_iter(cert_chain)
        .ok()?
        .next()?
        .ok()?;
    certificate::facts(&leaf)
}
