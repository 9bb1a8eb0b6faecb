//! The one HMAC-SHA256 helper every signature in the protocol is built from, and its prepared form for keys used on
//! every call.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;

/// HMAC-SHA256 of the concatenation of `parts` under `key`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    PreparedKey::new(key).mac(parts)
}

/// An HMAC-SHA256 key whose key schedule (the inner and outer padded blocks) is computed once: a MAC clones the
/// prepared state instead of hashing the key again. `Debug` never shows it.
#[derive(Clone)]
pub struct PreparedKey(Hmac<Sha256>);

impl PreparedKey {
    pub fn new(key: &[u8]) -> Self {
        // HMAC accepts keys of any length (long keys are hashed), so this constructor cannot fail.
        Self(<Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length"))
    }

    /// HMAC-SHA256 of the concatenation of `parts`.
    pub fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = self.0.clone();
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for PreparedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PreparedKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prepared_key_gives_the_same_mac_every_time_as_the_plain_key() {
        for key in [&b""[..], b"k", &[7u8; 64], &[9u8; 200]] {
            let prepared = PreparedKey::new(key);
            let parts: [&[u8]; 2] = [b"nonce", b"body"];
            let plain = <Hmac<Sha256> as Mac>::new_from_slice(key)
                .unwrap()
                .chain_update(b"noncebody")
                .finalize()
                .into_bytes();
            assert_eq!(prepared.mac(&parts), plain[..]);
            assert_eq!(
                prepared.mac(&parts),
                prepared.mac(&parts),
                "the state is not consumed"
            );
        }
    }
}
