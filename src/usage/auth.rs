//! The usage listener's bearer token: held without printing, zeroised on drop, compared in constant time.

use std::fmt;
use std::sync::Arc;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// A shared secret the app sends as `Authorization: Bearer <token>`.
#[derive(Clone)]
pub struct BearerToken(Arc<Zeroizing<String>>);

impl BearerToken {
    /// 16 to 256 printable ASCII characters (fits a header; long enough not to be guessed).
    pub fn new(text: String) -> Option<Self> {
        let text = Zeroizing::new(text);
        let ok = (16..=256).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_graphic());
        ok.then(|| Self(Arc::new(text)))
    }

    /// Whether an `Authorization` header value carries this token.
    pub fn admits(&self, header: Option<&[u8]>) -> bool {
        let Some(presented) = header.and_then(|h| h.strip_prefix(b"Bearer ")) else {
            return false;
        };
        bool::from(presented.ct_eq(self.0.as_bytes()))
    }

    /// The token itself, for the `koogate usage status` client.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_token_is_admitted() {
        let token = BearerToken::new("0123456789abcdef-token".into()).unwrap();
        assert!(token.admits(Some(b"Bearer 0123456789abcdef-token")));
        for bad in [
            &b"Bearer 0123456789abcdef-toke"[..],
            b"Bearer 0123456789abcdef-token2",
            b"bearer 0123456789abcdef-token",
            b"0123456789abcdef-token",
            b"",
        ] {
            assert!(!token.admits(Some(bad)));
        }
        assert!(!token.admits(None));
    }

    #[test]
    fn debug_never_prints_the_token_and_short_tokens_are_refused() {
        let token = BearerToken::new("0123456789abcdef-token".into()).unwrap();
        assert!(!format!("{token:?}").contains("0123"));
        assert!(BearerToken::new("short".into()).is_none());
        assert!(BearerToken::new("has a space in it, long".into()).is_none());
    }
}
