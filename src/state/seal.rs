//! Encryption at rest for personal data in the store and the journal: AES-256-GCM under the journal key.

use aes_gcm::aead::{Aead, KeyInit};
use base64::{engine::general_purpose::STANDARD, Engine};
use std::fmt;
use zeroize::Zeroizing;

const NONCE_LEN: usize = 12;

/// The journal key. `Debug` never shows it.
#[derive(Clone)]
pub struct Sealer {
    key: Zeroizing<[u8; 32]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("journal key must be 32 bytes given as 64 hex characters or base64")]
    BadKey,
    #[error("sealed data is corrupt or was sealed under another key")]
    Open,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sealer(<redacted>)")
    }
}

/// Whether two keys are the same (a reload compares them); constant time.
impl PartialEq for Sealer {
    fn eq(&self, other: &Self) -> bool {
        subtle::ConstantTimeEq::ct_eq(self.key.as_slice(), other.key.as_slice()).into()
    }
}

impl Sealer {
    /// Parses a key given as 64 hex characters or as base64 of 32 bytes (surrounding whitespace ignored).
    pub fn from_text(text: &str) -> Result<Self, SealError> {
        let text = text.trim();
        let mut key = Zeroizing::new([0u8; 32]);
        if hex::decode_to_slice(text, key.as_mut_slice()).is_ok() {
            return Ok(Self { key });
        }
        let decoded = Zeroizing::new(STANDARD.decode(text).map_err(|_| SealError::BadKey)?);
        if decoded.len() != 32 {
            return Err(SealError::BadKey);
        }
        key.copy_from_slice(&decoded);
        Ok(Self { key })
    }

    /// A random key, for stores that never persist anything.
    pub fn random() -> Self {
        Self {
            key: Zeroizing::new(rand::random()),
        }
    }

    /// `base64(nonce ‖ ciphertext ‖ tag)` with a fresh random nonce.
    pub fn seal(&self, plain: &[u8]) -> String {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let sealed = aes_gcm::Aes256Gcm::new_from_slice(self.key.as_slice())
            .ok()
            .and_then(|aead| aead.encrypt(aes_gcm::Nonce::from_slice(&nonce), plain).ok())
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        STANDARD.encode(out)
    }

    pub fn open(&self, sealed: &str) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let data = STANDARD.decode(sealed).map_err(|_| SealError::Open)?;
        if data.len() < NONCE_LEN + 16 {
            return Err(SealError::Open);
        }
        let (nonce, body) = data.split_at(NONCE_LEN);
        let aead =
            aes_gcm::Aes256Gcm::new_from_slice(self.key.as_slice()).map_err(|_| SealError::Open)?;
        aead.decrypt(aes_gcm::Nonce::from_slice(nonce), body)
            .map(Zeroizing::new)
            .map_err(|_| SealError::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trips_and_refuses_another_key() {
        let a = Sealer::from_text(&"11".repeat(32)).unwrap();
        let b = Sealer::from_text(&STANDARD.encode([2u8; 32])).unwrap();
        let sealed = a.seal(b"+8613800138000");
        assert!(!sealed.contains("13800138000"));
        assert_eq!(a.open(&sealed).unwrap().as_slice(), b"+8613800138000");
        assert_eq!(b.open(&sealed), Err(SealError::Open));
        assert_ne!(a.seal(b"x"), a.seal(b"x"), "fresh nonce each time");
    }

    #[test]
    fn short_or_malformed_keys_are_refused() {
        for text in ["", "abcd", &"1".repeat(63), &STANDARD.encode([0u8; 16])] {
            assert!(Sealer::from_text(text).is_err(), "{text}");
        }
    }
}
