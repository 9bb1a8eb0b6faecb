//! KooGallery access keys (one per product): what verifies a call's signature, signs its answer and derives its
//! field key. Held in types that never print and are wiped on drop.

use super::fields::{FieldCipher, FieldKey, InboundFields};
use super::mac::PreparedKey;
use std::fmt;
use zeroize::Zeroizing;

/// One KooGallery access key (one product). `Debug` shows only the configured name.
#[derive(Clone)]
pub struct AccessKey {
    name: String,
    secret: Zeroizing<Vec<u8>>,
    /// The secret's HMAC key schedule, computed once (V2 signatures and `Body-Sign` on every call).
    hmac: PreparedKey,
    /// The product's sensitive-information key, derived once.
    field_key: FieldKey,
    /// V2 only: encrypt `appInfo.userName`/`password` in answers (V1 always does).
    encrypt_app_info: bool,
}

impl AccessKey {
    /// `name` is an operator label (shown in logs and errors); `secret` is the key material. Sensitive fields
    /// use AES-256-CBC (KooGallery's default) until [`AccessKey::with_fields`] says otherwise.
    pub fn new(name: impl Into<String>, secret: impl Into<Vec<u8>>) -> Self {
        let secret = Zeroizing::new(secret.into());
        let field_key = FieldKey::derive(&secret, FieldCipher::Aes256Cbc);
        Self {
            name: name.into(),
            hmac: PreparedKey::new(&secret),
            secret,
            field_key,
            encrypt_app_info: false,
        }
    }

    /// Sets the product's sensitive-information algorithm and whether V2 answers encrypt `appInfo` credentials.
    pub fn with_fields(mut self, cipher: FieldCipher, encrypt_app_info: bool) -> Self {
        self.field_key = FieldKey::derive(&self.secret, cipher);
        self.encrypt_app_info = encrypt_app_info;
        self
    }

    /// Sets how the product's buyer fields arrive (after [`AccessKey::with_fields`], which resets it).
    pub fn with_buyer_fields(mut self, inbound: InboundFields) -> Self {
        self.field_key = self.field_key.with_inbound(inbound);
        self
    }

    pub fn field_key(&self) -> &FieldKey {
        &self.field_key
    }

    pub fn encrypt_app_info(&self) -> bool {
        self.encrypt_app_info
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The raw key bytes, for HMAC only.
    pub fn expose(&self) -> &[u8] {
        &self.secret
    }

    /// The key prepared for HMAC-SHA256 (what V2 signatures and `Body-Sign` are computed with).
    pub fn hmac(&self) -> &PreparedKey {
        &self.hmac
    }
}

impl fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessKey")
            .field("name", &self.name)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// The set of keys accepted at once (several during a rotation). Never empty.
#[derive(Debug, Clone)]
pub struct AccessKeys {
    keys: Vec<AccessKey>,
    /// Signs answers to calls no key verified (`verify.unauthenticated_answer_key`); the first key by default.
    unauthenticated: KeyIndex,
    /// Per request path (`verify.unauthenticated_answer_key_by_path`), exact match, before `unauthenticated`.
    unauthenticated_by_path: Vec<(String, KeyIndex)>,
}

/// Position of a key inside [`AccessKeys`]; the key that verified a request also signs its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyIndex(usize);

impl KeyIndex {
    /// The key's position in configuration order (what [`AccessKeys::iter`] counts).
    pub fn position(self) -> usize {
        self.0
    }
}

impl AccessKeys {
    /// `None` when `keys` is empty: a gateway without a key cannot verify anything.
    pub fn new(keys: Vec<AccessKey>) -> Option<Self> {
        (!keys.is_empty()).then_some(Self {
            keys,
            unauthenticated: KeyIndex(0),
            unauthenticated_by_path: Vec::new(),
        })
    }

    /// The key configured under `name`.
    pub fn find(&self, name: &str) -> Option<KeyIndex> {
        self.keys.iter().position(|k| k.name == name).map(KeyIndex)
    }

    /// Which keys sign answers to calls that no key verified: `default` for every path not in `by_path`.
    pub fn with_unauthenticated(
        mut self,
        default: KeyIndex,
        by_path: Vec<(String, KeyIndex)>,
    ) -> Self {
        self.unauthenticated = default;
        self.unauthenticated_by_path = by_path;
        self
    }

    /// The key that signs the answer to a call to `path` that no key verified (a forged or broken call, or one
    /// refused before authentication): KooGallery can only check such an answer if it is signed with the key of
    /// the product it called, so a multi-product deployment names it per path.
    pub fn for_unauthenticated(&self, path: &str) -> KeyIndex {
        self.unauthenticated_by_path
            .iter()
            .find(|(p, _)| p == path)
            .map_or(self.unauthenticated, |(_, k)| *k)
    }

    pub fn get(&self, index: KeyIndex) -> &AccessKey {
        // KeyIndex values are only made by this type, from positions inside `keys`.
        &self.keys[index.0.min(self.keys.len() - 1)]
    }

    pub fn iter(&self) -> impl Iterator<Item = (KeyIndex, &AccessKey)> {
        self.keys.iter().enumerate().map(|(i, k)| (KeyIndex(i), k))
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_contains_the_secret() {
        let key = AccessKey::new("primary", "s3cr3t-value-123");
        let keys = AccessKeys::new(vec![key.clone()]).unwrap();
        for printed in [format!("{key:?}"), format!("{keys:?}"), format!("{key:#?}")] {
            assert!(!printed.contains("s3cr3t"), "{printed}");
            assert!(printed.contains("primary"));
        }
    }

    #[test]
    fn unauthenticated_answers_use_the_configured_key_per_path() {
        let keys =
            AccessKeys::new(vec![AccessKey::new("a", "1"), AccessKey::new("b", "2")]).unwrap();
        assert_eq!(keys.get(keys.for_unauthenticated("/x")).name(), "a");
        let b = keys.find("b").unwrap();
        let a = keys.find("a").unwrap();
        let keys = keys.with_unauthenticated(b, vec![("/product-a".into(), a)]);
        assert_eq!(keys.get(keys.for_unauthenticated("/x")).name(), "b");
        assert_eq!(keys.get(keys.for_unauthenticated("/product-a")).name(), "a");
        assert!(keys.find("c").is_none());
    }

    #[test]
    fn an_empty_key_set_is_refused() {
        assert!(AccessKeys::new(Vec::new()).is_none());
    }
}
