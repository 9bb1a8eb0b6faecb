//! The server TLS configuration: rustls with TLS 1.2 and 1.3 only, certificate chain and key from PEM files.

use rustls::server::ServerConfig;
use rustls_pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

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
    #[error("certificate and key are not usable together")]
    Rustls(#[from] rustls::Error),
}

/// The HTTPS listener's TLS configuration for `server`: from the certificate files, or through the ACME
/// resolver (which must be given under `[acme]`; adding `[acme]` needs a restart).
pub fn for_listener(
    server: &crate::config::ServerConfig,
    acme: Option<Arc<crate::acme::CertResolver>>,
) -> anyhow::Result<Arc<ServerConfig>> {
    use anyhow::Context;
    match (server.certificates.files(), acme) {
        (Some((cert, key)), _) => server_config(cert, key, server.http2).context(
            "cannot load the TLS certificate and key (server.cert_chain_file, server.private_key_file)",
        ),
        (None, Some(resolver)) => Ok(server_config_with_resolver(resolver, server.http2)?),
        (None, None) => anyhow::bail!("[acme] was added: restart koogate to obtain certificates"),
    }
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
    let key = PrivateKeyDer::from_pem_file(private_key).map_err(|source| TlsError::Key {
        path: shown(private_key),
        source,
    })?;

    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
    config.alpn_protocols = alpn(http2);
    Ok(Arc::new(config))
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
    let leaf = CertificateDer::pem_file_iter(cert_chain)
        .ok()?
        .next()?
        .ok()?;
    leaf_validity(&leaf)
}

/// A DER certificate's `(notBefore, notAfter)` as Unix seconds.
pub fn leaf_validity(leaf: &CertificateDer<'_>) -> Option<(i64, i64)> {
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    Some((
        parsed.validity().not_before.timestamp(),
        parsed.validity().not_after.timestamp(),
    ))
}
