//! The HTTPS listener's certificate under `[acme]`: the current certified key (swapped atomically on renewal)
//! and, for a ClientHello offering only ALPN `acme-tls/1`, the `tls-alpn-01` challenge certificate (RFC 8737).

use arc_swap::ArcSwapOption;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The ALPN protocol a CA's validator offers for `tls-alpn-01`.
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// Shared by every gateway snapshot; the ACME task installs new certificates and challenge answers into it.
pub struct CertResolver {
    current: ArcSwapOption<CertifiedKey>,
    /// Turns true with the first installed certificate (readiness waits for it).
    installed: tokio::sync::watch::Sender<bool>,
    /// Challenge certificates by lower-case domain, only while an order is being validated.
    challenges: Mutex<HashMap<String, Arc<CertifiedKey>>>,
}

impl std::fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertResolver")
            .field("has_certificate", &self.current.load().is_some())
            .finish_non_exhaustive()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let validating = hello
            .alpn()
            .is_some_and(|mut offered| offered.any(|p| p == ACME_TLS_ALPN));
        if validating {
            // Only the challenge certificate answers acme-tls/1; without one the handshake fails.
            let name = hello.server_name()?.to_ascii_lowercase();
            return self.challenges.lock().ok()?.get(&name).cloned();
        }
        // Before the first certificate is issued there is nothing to serve: the handshake fails.
        self.current.load_full()
    }
}

impl Default for CertResolver {
    fn default() -> Self {
        Self {
            current: ArcSwapOption::empty(),
            installed: tokio::sync::watch::Sender::new(false),
            challenges: Mutex::default(),
        }
    }
}

impl CertResolver {
    /// New handshakes use `key` from now on; connections already established keep theirs.
    pub fn install(&self, key: Arc<CertifiedKey>) {
        self.current.store(Some(key));
        self.installed.send_replace(true);
    }

    /// Completes once a certificate is installed.
    pub async fn installed(&self) {
        let mut installed = self.installed.subscribe();
        let _ = installed.wait_for(|yes| *yes).await;
    }

    pub fn has_certificate(&self) -> bool {
        self.current.load().is_some()
    }

    /// Answers `tls-alpn-01` for `domain` until [`CertResolver::remove_challenge`].
    pub fn add_challenge(&self, domain: &str, key: Arc<CertifiedKey>) {
        if let Ok(mut map) = self.challenges.lock() {
            map.insert(domain.to_ascii_lowercase(), key);
        }
    }

    pub fn remove_challenge(&self, domain: &str) {
        if let Ok(mut map) = self.challenges.lock() {
            map.remove(&domain.to_ascii_lowercase());
        }
    }
}

/// The self-signed certificate RFC 8737 asks for: `domain` as its only SAN and the critical `acmeIdentifier`
/// extension holding the SHA-256 digest of the key authorization.
pub fn challenge_certificate(
    domain: &str,
    digest: &[u8],
) -> Result<Arc<CertifiedKey>, ChallengeCertError> {
    let mut params = rcgen::CertificateParams::new(vec![domain.to_owned()])?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    // Not `certified_key`: its consistency check parses the leaf with webpki, which (rightly) refuses the
    // critical acmeIdentifier extension. The key was generated for this certificate a line above.
    let signing_key = rustls::crypto::ring::default_provider()
        .key_provider
        .load_private_key(PrivateKeyDer::Pkcs8(key.serialize_der().into()))
        .map_err(ChallengeCertError::Rustls)?;
    Ok(Arc::new(CertifiedKey::new(
        vec![cert.der().clone()],
        signing_key,
    )))
}

/// A certified key from a chain and key, checking that they belong together.
pub fn certified_key(
    chain: &[CertificateDer<'static>],
    key: PrivateKeyDer<'static>,
) -> Result<Arc<CertifiedKey>, rustls::Error> {
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(chain.to_vec(), key, &provider).map(Arc::new)
}

/// The chain and key from PEM text holding both (the stored certificate file).
pub fn parse_pem_bundle(
    pem: &str,
) -> Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .ok()?;
    let key = PrivateKeyDer::from_pem_slice(pem.as_bytes()).ok()?;
    (!chain.is_empty()).then_some((chain, key))
}

#[derive(Debug, thiserror::Error)]
pub enum ChallengeCertError {
    #[error("cannot generate the tls-alpn-01 certificate")]
    Generate(#[from] rcgen::Error),
    #[error("the tls-alpn-01 certificate is not usable")]
    Rustls(#[source] rustls::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_bundle_round_trips_into_a_certified_key() {
        let generated = rcgen::generate_simple_self_signed(vec!["shop.example".into()]).unwrap();
        let pem = format!(
            "{}{}",
            generated.signing_key.serialize_pem(),
            generated.cert.pem()
        );
        let (chain, key) = parse_pem_bundle(&pem).unwrap();
        assert_eq!(chain.len(), 1);
        certified_key(&chain, key).unwrap();
        assert!(parse_pem_bundle(&generated.cert.pem()).is_none());
    }

    #[test]
    fn challenge_certificate_names_the_domain() {
        let key = challenge_certificate("shop.example", &[7u8; 32]).unwrap();
        assert_eq!(key.cert.len(), 1);
    }
}
