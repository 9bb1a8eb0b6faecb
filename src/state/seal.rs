//! Encryption at rest for personal data in the store and the journal: AES-256-GCM under a keyring of journal keys.
//!
//! The current key seals; it and any previous keys open. A sealed blob names its key (`k<key id>.<base64>`), so a
//! key rotation leaves old records and journal lines readable while the previous key stays configured. Blobs from
//! before key ids existed (plain base64) are opened by trying every key.

use aes_gcm::aead::{Aead, KeyInit};
use base64::{engine::general_purpose::STANDARD, Engine};
use sha2::Digest;
use std::fmt;
use zeroize::Zeroizing;

const NONCE_LEN: usize = 12;
/// Length of a key id in bytes (8 hex characters in a sealed blob).
const KEY_ID_LEN: usize = 4;

/// One journal key and its public id.
#[derive(Clone)]
struct Key {
    id: [u8; KEY_ID_LEN],
    key: Zeroizing<[u8; 32]>,
}

/// The journal keyring: the current key and the previous ones. `Debug` never shows them.
#[derive(Clone)]
pub struct Sealer {
    current: Key,
    previous: Vec<Key>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("journal key must be 32 bytes given as 64 hex characters or base64")]
    BadKey,
    #[error("sealed data is corrupt or was sealed under a key that is not configured")]
    Open,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealer(<redacted>, {} previous)", self.previous.len())
    }
}

/// Whether two keyrings hold the same keys (a reload compares them); constant time per key.
impl PartialEq for Sealer {
    fn eq(&self, other: &Self) -> bool {
        let same = |a: &Key, b: &Key| -> bool {
            subtle::ConstantTimeEq::ct_eq(a.key.as_slice(), b.key.as_slice()).into()
        };
        same(&self.current, &other.current)
            && self.previous.len() == other.previous.len()
            && self
                .previous
                .iter()
                .zip(&other.previous)
                .all(|(a, b)| same(a, b))
    }
}

impl Key {
    fn new(key: Zeroizing<[u8; 32]>) -> Self {
        let mut hasher = sha2::Sha256::new();
        hasher.update(b"koogate journal key id\0");
        hasher.update(key.as_slice());
        let digest = hasher.finalize();
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        Self { id, key }
    }

    fn aead(&self) -> Result<aes_gcm::Aes256Gcm, SealError> {
        aes_gcm::Aes256Gcm::new_from_slice(self.key.as_slice()).map_err(|_| SealError::Open)
    }

    fn open(&self, data: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        if data.len() < NONCE_LEN + 16 {
            return Err(SealError::Open);
        }
        let (nonce, body) = data.split_at(NONCE_LEN);
        self.aead()?
            .decrypt(aes_gcm::Nonce::from_slice(nonce), body)
            .map(Zeroizing::new)
            .map_err(|_| SealError::Open)
    }
}

impl Sealer {
    /// Parses a key given as 64 hex characters or as base64 of 32 bytes (surrounding whitespace ignored).
    pub fn from_text(text: &str) -> Result<Self, SealError> {
        let text = text.trim();
        let mut key = Zeroizing::new([0u8; 32]);
        if hex::decode_to_slice(text, key.as_mut_slice()).is_err() {
            let decoded = Zeroizing::new(STANDARD.decode(text).map_err(|_| SealError::BadKey)?);
            if decoded.len() != 32 {
                return Err(SealError::BadKey);
            }
            key.copy_from_slice(&decoded);
        }
        Ok(Self {
            current: Key::new(key),
            previous: Vec::new(),
        })
    }

    /// A random key, for stores that never persist anything.
    pub fn random() -> Self {
        Self {
            current: Key::new(Zeroizing::new(rand::random())),
            previous: Vec::new(),
        }
    }

    /// This keyring with `previous` keys added for opening only (after a rotation).
    pub fn with_previous(mut self, previous: impl IntoIterator<Item = Sealer>) -> Self {
        for sealer in previous {
            self.previous.push(sealer.current);
        }
        self
    }

    /// `k<key id>.base64(nonce ‖ ciphertext ‖ tag)` under the current key, with a fresh random nonce.
    pub fn seal(&self, plain: &[u8]) -> String {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let sealed = self
            .current
            .aead()
            .ok()
            .and_then(|aead| aead.encrypt(aes_gcm::Nonce::from_slice(&nonce), plain).ok())
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!("k{}.{}", hex::encode(self.current.id), STANDARD.encode(out))
    }

    /// Opens a blob sealed under any key of the ring.
    pub fn open(&self, sealed: &str) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let keys = std::iter::once(&self.current).chain(&self.previous);
        match sealed.strip_prefix('k').and_then(|s| s.split_once('.')) {
            Some((id, body)) => {
                let data = STANDARD.decode(body).map_err(|_| SealError::Open)?;
                let mut wanted = [0u8; KEY_ID_LEN];
                hex::decode_to_slice(id, &mut wanted).map_err(|_| SealError::Open)?;
                keys.filter(|k| k.id == wanted)
                    .find_map(|k| k.open(&data).ok())
                    .ok_or(SealError::Open)
            }
            // Sealed before key ids existed: whichever key opens it.
            None => {
                let data = STANDARD.decode(sealed).map_err(|_| SealError::Open)?;
                keys.into_iter()
                    .find_map(|k| k.open(&data).ok())
                    .ok_or(SealError::Open)
            }
        }
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
    fn after_a_rotation_the_previous_key_still_opens_old_blobs() {
        let old = Sealer::from_text(&"11".repeat(32)).unwrap();
        let sealed_before = old.seal(b"before");
        let ring = Sealer::from_text(&"22".repeat(32))
            .unwrap()
            .with_previous([old.clone()]);
        assert_eq!(ring.open(&sealed_before).unwrap().as_slice(), b"before");
        let sealed_after = ring.seal(b"after");
        assert_eq!(
            old.open(&sealed_after),
            Err(SealError::Open),
            "the new key seals"
        );
        assert_eq!(ring.open(&sealed_after).unwrap().as_slice(), b"after");
    }

    #[test]
    fn blobs_without_a_key_id_are_opened_by_any_key_of_the_ring() {
        let old = Sealer::from_text(&"11".repeat(32)).unwrap();
        let sealed = old.seal(b"legacy");
        let legacy = sealed.split_once('.').unwrap().1.to_owned();
        let ring = Sealer::from_text(&"22".repeat(32))
            .unwrap()
            .with_previous([old]);
        assert_eq!(ring.open(&legacy).unwrap().as_slice(), b"legacy");
    }

    #[test]
    fn short_or_malformed_keys_are_refused() {
        for text in ["", "abcd", &"1".repeat(63), &STANDARD.encode([0u8; 16])] {
            assert!(Sealer::from_text(text).is_err(), "{text}");
        }
    }
}
