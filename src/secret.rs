//! Secrets that are not protocol keys (the seller's IAM credentials), held in types that never print and are
//! wiped on drop. KooGallery access keys live in [`crate::protocol::keys`].

use std::fmt;
use zeroize::Zeroizing;

/// The seller's Huawei Cloud IAM access key (AK) and secret key (SK), which sign KooGallery OpenAPI calls
/// (SDK-HMAC-SHA256). Not the KooGallery access key. `Debug` shows neither; both are wiped on drop.
#[derive(Clone)]
pub struct IamCredentials {
    ak: Zeroizing<String>,
    sk: Zeroizing<Vec<u8>>,
}

impl IamCredentials {
    pub fn new(ak: impl Into<String>, sk: impl Into<Vec<u8>>) -> Self {
        Self {
            ak: Zeroizing::new(ak.into()),
            sk: Zeroizing::new(sk.into()),
        }
    }

    /// The AK, sent in the clear in `Authorization: ... Access=<AK>`.
    pub fn ak(&self) -> &str {
        &self.ak
    }

    /// The SK bytes, for HMAC only.
    pub fn expose_sk(&self) -> &[u8] {
        &self.sk
    }
}

impl fmt::Debug for IamCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IamCredentials")
            .field("ak", &"<redacted>")
            .field("sk", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iam_credentials_never_print() {
        let creds = IamCredentials::new("AKVISIBLE123", "SKSECRET456");
        let printed = format!("{creds:?} {creds:#?}");
        assert!(
            !printed.contains("AKVISIBLE") && !printed.contains("SKSECRET"),
            "{printed}"
        );
        assert_eq!(creds.ak(), "AKVISIBLE123");
        assert_eq!(creds.expose_sk(), b"SKSECRET456");
    }
}
