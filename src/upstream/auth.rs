//! koogate's signature on every upstream request (optional): HMAC-SHA256 over a timestamp and the exact body.
//!
//! ```text
//! X-Koogate-Timestamp: <Unix milliseconds>
//! X-Koogate-Signature: lowercase_hex(HMAC-SHA256(secret, timestamp + "." + body))
//! ```
//!
//! The app recomputes it over the bytes it read (docs/upstream-contract.md section 2 has the recipe), so a process
//! that reaches the app's port without the secret cannot impersonate koogate.

use crate::protocol::mac::hmac_sha256;
use std::fmt;
use zeroize::Zeroizing;

pub const TIMESTAMP_HEADER: &str = "x-koogate-timestamp";
pub const SIGNATURE_HEADER: &str = "x-koogate-signature";
/// Shortest secret accepted: 128 bits as text.
pub const MIN_SECRET_BYTES: usize = 16;

/// The shared secret between koogate and the app. `Debug` never shows it; wiped on drop.
#[derive(Clone)]
pub struct UpstreamSigningKey(Zeroizing<Vec<u8>>);

impl fmt::Debug for UpstreamSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UpstreamSigningKey(<redacted>)")
    }
}

impl UpstreamSigningKey {
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        Self(Zeroizing::new(secret.into()))
    }

    /// The two header values for a request with `body` sent at `timestamp_ms`.
    pub fn headers(&self, timestamp_ms: u64, body: &[u8]) -> (String, String) {
        let timestamp = timestamp_ms.to_string();
        let mac = hmac_sha256(&self.0, &[timestamp.as_bytes(), b".", body]);
        (timestamp, hex::encode(mac))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_vector_and_redaction() {
        let key = UpstreamSigningKey::new("upstream-secret-0001");
        let (ts, sig) = key.headers(1_700_000_000_000, br#"{"activity":"newInstance"}"#);
        assert_eq!(ts, "1700000000000");
        // python3 -c 'import hmac,hashlib;print(hmac.new(b"upstream-secret-0001",
        //   b"1700000000000."+b"{\"activity\":\"newInstance\"}",hashlib.sha256).hexdigest())'
        assert_eq!(sig, EXPECTED);
        assert!(!format!("{key:?}").contains("secret-0001"));
        assert_ne!(key.headers(1_700_000_000_000, b"{}").1, sig);
    }

    const EXPECTED: &str = "55f5bebe7d4c7798ad20e005070d6c470f852e2e7a126475971b703533b89455";
}
