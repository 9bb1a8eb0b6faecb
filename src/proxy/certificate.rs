//! What koogate reads from a certificate (validity, subject, version, public key) and why a chain and key that
//! rustls refuses do not fit together: a reversed chain, a v1 leaf, an encrypted key.

use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_cert::der::{Decode, Encode};
use x509_cert::ext::pkix::BasicConstraints;

/// The facts koogate shows or checks about one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFacts {
    /// `notBefore` as Unix seconds.
    pub not_before: i64,
    /// `notAfter` as Unix seconds.
    pub not_after: i64,
    /// The subject as an RFC 4514 string (`CN=shop.example,O=...`).
    pub subject: String,
    /// The X.509 version as written on the certificate: 1, 2 or 3.
    pub version: u8,
    /// Whether basicConstraints marks it as a CA.
    pub is_ca: bool,
    /// The DER of its SubjectPublicKeyInfo, to compare with a private key's public half.
    spki: Vec<u8>,
}

/// Reads `der` as an X.509 certificate (any version); `None` if it does not parse.
pub fn facts(der: &CertificateDer<'_>) -> Option<CertificateFacts> {
    let cert = x509_cert::Certificate::from_der(der.as_ref()).ok()?;
    let tbs = cert.tbs_certificate();
    let secs = |t: x509_cert::time::Time| i64::try_from(t.to_unix_duration().as_secs()).ok();
    let is_ca = matches!(
        tbs.get_extension::<BasicConstraints>(),
        Ok(Some((_, BasicConstraints { ca: true, .. })))
    );
    Some(CertificateFacts {
        not_before: secs(tbs.validity().not_before)?,
        not_after: secs(tbs.validity().not_after)?,
        subject: tbs.subject().to_string(),
        version: match tbs.version() {
            x509_cert::certificate::Version::V1 => 1,
            x509_cert::certificate::Version::V2 => 2,
            x509_cert::certificate::Version::V3 => 3,
        },
        is_ca,
        spki: tbs.subject_public_key_info().to_der().ok()?,
    })
}

/// How an unusable private key file is encrypted, if it is: rustls reads only unencrypted keys.
pub fn encrypted_key_format(pem: &[u8]) -> Option<&'static str> {
    let contains = |needle: &[u8]| pem.windows(needle.len()).any(|w| w == needle);
    if contains(b"-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        Some("PKCS#8 ENCRYPTED PRIVATE KEY")
    } else if contains(b"Proc-Type: 4,ENCRYPTED") {
        Some("PEM with Proc-Type: 4,ENCRYPTED")
    } else {
        None
    }
}

/// Why `chain` and `key` do not fit, read from the certificates themselves; `None` leaves rustls's own error.
pub fn misfit(chain: &[CertificateDer<'_>], key: &PrivateKeyDer<'_>) -> Option<Misfit> {
    let all: Vec<Option<CertificateFacts>> = chain.iter().map(facts).collect();
    let leaf = all.first()?.as_ref()?;
    if leaf.version < 3 {
        return Some(Misfit::OldVersion {
            version: leaf.version,
        });
    }
    let signing_key = rustls::crypto::ring::sign::any_supported_type(key).ok()?;
    let public = signing_key.public_key()?;
    if leaf.spki == public.as_ref() {
        return None;
    }
    let position = all
        .iter()
        .position(|c| c.as_ref().is_some_and(|c| c.spki == public.as_ref()))?;
    Some(Misfit::LeafNotFirst {
        position: position + 1,
        count: chain.len(),
        first_is_ca: leaf.is_ca,
    })
}

/// A reason a chain and key that rustls refuses cannot work, in the operator's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Misfit {
    /// The first certificate is X.509 v1 (or v2): webpki accepts only v3 end-entity certificates.
    OldVersion { version: u8 },
    /// The key belongs to a later certificate in the file (1-based `position`): the chain is out of order.
    LeafNotFirst {
        position: usize,
        count: usize,
        first_is_ca: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issued() -> (
        CertificateDer<'static>,
        CertificateDer<'static>,
        PrivateKeyDer<'static>,
    ) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "test CA");
        let ca_cert = ca.clone().self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["shop.example".into()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "shop.example");
        let leaf = params.signed_by(&key, &issuer).unwrap();
        let key = PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        (leaf.der().clone(), ca_cert.der().clone(), key)
    }

    #[test]
    fn facts_read_validity_subject_version_and_the_ca_flag() {
        let (leaf, ca, _) = issued();
        let leaf = facts(&leaf).unwrap();
        assert_eq!(leaf.subject, "CN=shop.example");
        assert_eq!(leaf.version, 3);
        assert!(!leaf.is_ca);
        // rcgen's defaults: 1975-01-01 to 4096-01-01.
        assert_eq!(leaf.not_before, 157_766_400);
        assert_eq!(leaf.not_after, 67_090_118_400);
        assert!(facts(&ca).unwrap().is_ca);
        assert_eq!(
            facts(&CertificateDer::from(vec![0x30, 0x03, 1, 2, 3])),
            None
        );
    }

    #[test]
    fn a_reversed_chain_is_named_with_the_leafs_position() {
        let (leaf, ca, key) = issued();
        assert_eq!(misfit(&[leaf.clone(), ca.clone()], &key), None);
        assert_eq!(
            misfit(&[ca.clone(), leaf], &key),
            Some(Misfit::LeafNotFirst {
                position: 2,
                count: 2,
                first_is_ca: true
            })
        );
        // A key of none of the certificates stays rustls's "does not match".
        let (_, _, other) = issued();
        assert_eq!(misfit(&[ca], &other), None);
    }

    #[test]
    fn encrypted_keys_are_recognised_in_both_pem_forms() {
        assert_eq!(
            encrypted_key_format(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIF\n"),
            Some("PKCS#8 ENCRYPTED PRIVATE KEY")
        );
        let traditional =
            b"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,00\n";
        assert_eq!(
            encrypted_key_format(traditional),
            Some("PEM with Proc-Type: 4,ENCRYPTED")
        );
        assert_eq!(
            encrypted_key_format(b"-----BEGIN PRIVATE KEY-----\nMIIE\n"),
            None
        );
    }
}
