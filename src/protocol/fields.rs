//! Sensitive-field encryption (protocol section 5): the SHA1PRNG key derivation, AES-CBC fields with a text IV,
//! and the AES-256-GCM option.

use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use aes_gcm::aead::{Aead, KeyInit};
use base64::{engine::general_purpose::STANDARD, Engine};
use rand::Rng;
use sha1::{Digest, Sha1};
use zeroize::Zeroizing;

/// Length of the text IV that prefixes a CBC field.
const IV_LEN: usize = 16;
/// GCM field layout: `base64(nonce ‖ ciphertext ‖ tag)`. Kept here so it can be adjusted in one place once
/// confirmed against a live console.
const GCM_NONCE_LEN: usize = 12;
const GCM_TAG_LEN: usize = 16;
const IV_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// The product's "sensitive information encryption algorithm".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldCipher {
    /// `encryptType` 1: AES-256-CBC, PKCS#7, text IV prefix.
    Aes256Cbc,
    /// `encryptType` 2: AES-128-CBC, PKCS#7, text IV prefix.
    Aes128Cbc,
    /// AES-256-GCM, `base64(nonce ‖ ciphertext ‖ tag)`.
    Aes256Gcm,
}

/// How the product's buyer fields (`mobilePhone`, `email`) arrive: the per-key `buyer_fields` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InboundFields {
    /// Always encrypted (KooGallery's documented behaviour): a value that does not decrypt is refused.
    Encrypted,
    /// Always plain text (or masked, `138****1234`): passed through, never decrypted.
    Plain,
    /// A value that is well-formed ciphertext must decrypt; any other value passes as plain text.
    Auto,
}

impl InboundFields {
    /// The configuration name.
    pub const fn name(self) -> &'static str {
        match self {
            InboundFields::Encrypted => "encrypted",
            InboundFields::Plain => "plain",
            InboundFields::Auto => "auto",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Encrypted, Self::Plain, Self::Auto]
            .into_iter()
            .find(|m| m.name() == name)
    }
}

/// Why a field could not be decrypted. All map to `000002`; none carries the field's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("encrypted field is shorter than its IV")]
    ShortIv,
    #[error("encrypted field IV is not ASCII")]
    BadIv,
    #[error("encrypted field is not valid base64")]
    NotBase64,
    #[error("encrypted field length is not a whole number of AES blocks")]
    BadLength,
    #[error("encrypted field has invalid padding (wrong key or algorithm?)")]
    BadPadding,
    #[error("encrypted field failed GCM authentication (wrong key or algorithm?)")]
    AuthFailed,
    #[error("decrypted field is not UTF-8")]
    NotUtf8,
}

impl FieldCipher {
    /// The `encryptType` KooGallery uses for this cipher, where it has one.
    pub const fn encrypt_type(self) -> &'static str {
        match self {
            FieldCipher::Aes256Cbc => "1",
            FieldCipher::Aes128Cbc => "2",
            FieldCipher::Aes256Gcm => "3",
        }
    }

    /// The configuration name.
    pub const fn name(self) -> &'static str {
        match self {
            FieldCipher::Aes256Cbc => "aes-256-cbc",
            FieldCipher::Aes128Cbc => "aes-128-cbc",
            FieldCipher::Aes256Gcm => "aes-256-gcm",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [
            FieldCipher::Aes256Cbc,
            FieldCipher::Aes128Cbc,
            FieldCipher::Aes256Gcm,
        ]
        .into_iter()
        .find(|c| c.name() == name)
    }

    const fn key_len(self) -> usize {
        match self {
            FieldCipher::Aes128Cbc => 16,
            FieldCipher::Aes256Cbc | FieldCipher::Aes256Gcm => 32,
        }
    }
}

/// Java's `SecureRandom.getInstance("SHA1PRNG")` seeded with `seed`: the first `n` output bytes.
///
/// The state update adds the output block to the state byte by byte with Java's signed-byte arithmetic and an
/// arithmetic-shift carry; an unsigned big-integer add gives a different 256-bit key.
pub fn sha1prng(seed: &[u8], n: usize) -> Zeroizing<Vec<u8>> {
    let mut state: [u8; 20] = Sha1::digest(seed).into();
    let mut out = Zeroizing::new(Vec::with_capacity(n + 20));
    while out.len() < n {
        let block: [u8; 20] = Sha1::digest(state).into();
        let mut carry: i32 = 1;
        let mut changed = false;
        for (s, b) in state.iter_mut().zip(block.iter()) {
            let v = i32::from(*s as i8) + i32::from(*b as i8) + carry;
            let t = v as u8;
            changed |= *s != t;
            *s = t;
            carry = v >> 8;
        }
        if !changed {
            state[0] = state[0].wrapping_add(1);
        }
        out.extend_from_slice(&block);
    }
    out.truncate(n);
    out
}

/// An AES key derived from an access key for one cipher; the pairing makes a key-size mismatch impossible.
#[derive(Clone)]
pub struct FieldKey {
    cipher: FieldCipher,
    key: Zeroizing<Vec<u8>>,
    /// How buyer fields arrive in calls for this product.
    inbound: InboundFields,
}

impl std::fmt::Debug for FieldKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FieldKey")
            .field("cipher", &self.cipher)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl FieldKey {
    /// Derives the key for `cipher` from the access key with [`sha1prng`].
    pub fn derive(access_key: &[u8], cipher: FieldCipher) -> Self {
        Self {
            cipher,
            key: sha1prng(access_key, cipher.key_len()),
            inbound: InboundFields::Encrypted,
        }
    }

    /// Sets how buyer fields arrive (default [`InboundFields::Encrypted`]).
    pub fn with_inbound(mut self, inbound: InboundFields) -> Self {
        self.inbound = inbound;
        self
    }

    pub fn inbound(&self) -> InboundFields {
        self.inbound
    }

    pub fn cipher(&self) -> FieldCipher {
        self.cipher
    }

    /// Whether `field` has the shape of this cipher's ciphertext (CBC: a 16-character letters-and-digits IV and
    /// base64 of whole AES blocks; GCM: base64 of at least nonce and tag), without decrypting it. Masked or plain
    /// values (`138****1234`, `a@example.com`) never do.
    pub fn is_well_formed(&self, field: &str) -> bool {
        let decoded_len = |text: &str| STANDARD.decode(text).ok().map(|d| d.len());
        match self.cipher {
            FieldCipher::Aes256Cbc | FieldCipher::Aes128Cbc => {
                split_iv(field).is_ok_and(|(iv, body)| {
                    iv.iter().all(u8::is_ascii_alphanumeric)
                        && decoded_len(body).is_some_and(|n| n > 0 && n % 16 == 0)
                })
            }
            FieldCipher::Aes256Gcm => {
                decoded_len(field).is_some_and(|n| n >= GCM_NONCE_LEN + GCM_TAG_LEN)
            }
        }
    }

    /// The raw key bytes (for the test vectors).
    pub fn bytes(&self) -> &[u8] {
        &self.key
    }

    /// Decrypts a field.
    pub fn decrypt(&self, field: &str) -> Result<Zeroizing<String>, FieldError> {
        let plain = match self.cipher {
            FieldCipher::Aes256Cbc | FieldCipher::Aes128Cbc => {
                let (iv, body) = split_iv(field)?;
                let mut data =
                    Zeroizing::new(STANDARD.decode(body).map_err(|_| FieldError::NotBase64)?);
                if data.is_empty() || data.len() % 16 != 0 {
                    return Err(FieldError::BadLength);
                }
                let len = self.cbc_decrypt(iv, &mut data)?;
                data[..len].to_vec()
            }
            FieldCipher::Aes256Gcm => {
                let data =
                    Zeroizing::new(STANDARD.decode(field).map_err(|_| FieldError::NotBase64)?);
                if data.len() < GCM_NONCE_LEN + GCM_TAG_LEN {
                    return Err(FieldError::BadLength);
                }
                let (nonce, sealed) = data.split_at(GCM_NONCE_LEN);
                let aead = aes_gcm::Aes256Gcm::new_from_slice(&self.key)
                    .map_err(|_| FieldError::AuthFailed)?;
                aead.decrypt(aes_gcm::Nonce::from_slice(nonce), sealed)
                    .map_err(|_| FieldError::AuthFailed)?
            }
        };
        String::from_utf8(plain).map(Zeroizing::new).map_err(|e| {
            drop(Zeroizing::new(e.into_bytes()));
            FieldError::NotUtf8
        })
    }

    /// Encrypts a field with a fresh random IV (or nonce) from the thread-local CSPRNG.
    pub fn encrypt(&self, plaintext: &str) -> String {
        match self.cipher {
            FieldCipher::Aes256Cbc | FieldCipher::Aes128Cbc => {
                let mut rng = rand::thread_rng();
                let iv: [u8; IV_LEN] =
                    std::array::from_fn(|_| IV_ALPHABET[rng.gen_range(0..IV_ALPHABET.len())]);
                self.cbc_encrypt(&iv, plaintext)
            }
            FieldCipher::Aes256Gcm => self.encrypt_gcm_with_nonce(&rand::random(), plaintext),
        }
    }

    /// CBC encryption with a given text IV, for the protocol's fixed-IV vectors and `koogate encrypt --iv`.
    /// Refuses an IV that is not 16 ASCII letters or digits, and a key derived for GCM.
    pub fn encrypt_cbc_with_iv(&self, iv: &str, plaintext: &str) -> Result<String, FieldError> {
        let iv: &[u8; IV_LEN] = iv.as_bytes().try_into().map_err(|_| FieldError::ShortIv)?;
        if !iv.iter().all(u8::is_ascii_alphanumeric) {
            return Err(FieldError::BadIv);
        }
        if self.cipher == FieldCipher::Aes256Gcm {
            return Err(FieldError::BadIv);
        }
        Ok(self.cbc_encrypt(iv, plaintext))
    }

    /// CBC with the key's size; the IV is the text IV's ASCII bytes and prefixes the base64 ciphertext.
    fn cbc_encrypt(&self, iv: &[u8; IV_LEN], plaintext: &str) -> String {
        let data = plaintext.as_bytes();
        // The key was derived for this cipher, so its length always fits.
        let sealed = match self.cipher {
            FieldCipher::Aes128Cbc => cbc::Encryptor::<aes::Aes128>::new_from_slices(&self.key, iv)
                .map(|c| c.encrypt_padded_vec_mut::<Pkcs7>(data)),
            FieldCipher::Aes256Cbc | FieldCipher::Aes256Gcm => {
                cbc::Encryptor::<aes::Aes256>::new_from_slices(&self.key, iv)
                    .map(|c| c.encrypt_padded_vec_mut::<Pkcs7>(data))
            }
        };
        format!(
            "{}{}",
            String::from_utf8_lossy(iv),
            STANDARD.encode(sealed.unwrap_or_default())
        )
    }

    /// GCM encryption with a given nonce.
    pub fn encrypt_gcm_with_nonce(&self, nonce: &[u8; GCM_NONCE_LEN], plaintext: &str) -> String {
        let sealed = aes_gcm::Aes256Gcm::new_from_slice(&self.key)
            .ok()
            .and_then(|aead| {
                aead.encrypt(aes_gcm::Nonce::from_slice(nonce), plaintext.as_bytes())
                    .ok()
            })
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        STANDARD.encode(out)
    }

    fn cbc_decrypt(&self, iv: &[u8], data: &mut [u8]) -> Result<usize, FieldError> {
        let plain = match self.cipher {
            FieldCipher::Aes128Cbc => cbc::Decryptor::<aes::Aes128>::new_from_slices(&self.key, iv)
                .map_err(|_| FieldError::ShortIv)?
                .decrypt_padded_mut::<Pkcs7>(data),
            FieldCipher::Aes256Cbc | FieldCipher::Aes256Gcm => {
                cbc::Decryptor::<aes::Aes256>::new_from_slices(&self.key, iv)
                    .map_err(|_| FieldError::ShortIv)?
                    .decrypt_padded_mut::<Pkcs7>(data)
            }
        };
        plain.map(|p| p.len()).map_err(|_| FieldError::BadPadding)
    }
}

fn split_iv(field: &str) -> Result<(&[u8], &str), FieldError> {
    if field.len() < IV_LEN {
        return Err(FieldError::ShortIv);
    }
    if !field.is_char_boundary(IV_LEN) || !field.as_bytes()[..IV_LEN].is_ascii() {
        return Err(FieldError::BadIv);
    }
    let (iv, body) = field.split_at(IV_LEN);
    Ok((iv.as_bytes(), body))
}

#[cfg(test)]
mod tests;
