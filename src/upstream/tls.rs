//! TLS to https:// routes: the web PKI roots plus the route's CA file, and its client identity for mTLS.

use crate::config::RouteConfig;
use rustls_pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

/// Why the upstream clients could not be built (bad CA file, unusable client identity).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot read CA certificates from {path}")]
    CaFile {
        path: String,
        source: rustls_pki_types::pem::Error,
    },
    #[error("no usable CA certificate in {path}")]
    NoCa { path: String },
    #[error("cannot read the client certificate or key {path}")]
    ClientIdentity {
        path: String,
        source: rustls_pki_types::pem::Error,
    },
    #[error("TLS client configuration failed")]
    Tls(#[from] rustls::Error),
    #[error("the route URL has no usable host or path")]
    Url,
    #[error("the route host is not a valid TLS server name")]
    ServerName(#[from] rustls_pki_types::InvalidDnsNameError),
}

/// The TLS client configuration of `route`: its roots and, when configured, its client certificate.
pub fn route_client_config(route: &RouteConfig) -> Result<rustls::ClientConfig, BuildError> {
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(root_store(route.ca_file.as_deref())?);
    match &route.client_identity {
        None => Ok(builder.with_no_client_auth()),
        Some((cert, key)) => {
            let failed = |path: &Path| {
                let path = path.display().to_string();
                move |source| BuildError::ClientIdentity { path, source }
            };
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                .and_then(|iter| iter.collect())
                .map_err(failed(cert))?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(failed(key))?;
            // A key that does not match the certificate is refused here (rustls::Error).
            Ok(builder.with_client_auth_cert(chain, key)?)
        }
    }
}

/// The web PKI roots plus, optionally, the certificates in `ca_file` (a private CA for the app, a mock, an egress
/// proxy).
fn root_store(ca_file: Option<&Path>) -> Result<rustls::RootCertStore, BuildError> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        let shown = path.display().to_string();
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .and_then(|iter| iter.collect())
            .map_err(|source| BuildError::CaFile {
                path: shown.clone(),
                source,
            })?;
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(BuildError::NoCa { path: shown });
        }
    }
    Ok(roots)
}

/// A TLS client configuration (no client certificate) trusting [`root_store`]'s roots.
pub fn tls_client_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, BuildError> {
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(root_store(ca_file)?)
    .with_no_client_auth())
}
