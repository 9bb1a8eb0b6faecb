//! `koogate encrypt` / `koogate decrypt`: a sensitive field with a product's key and algorithm.

use super::key::KeyArgs;
use crate::protocol::fields::{FieldCipher, FieldError, FieldKey};
use anyhow::{bail, Context};
use std::io::{IsTerminal, Read};
use zeroize::Zeroizing;

#[derive(clap::Args)]
pub struct FieldArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// The product's sensitive-information algorithm: aes-256-cbc, aes-128-cbc or aes-256-gcm.
    #[arg(long, value_parser = cipher_by_name, default_value = "aes-256-cbc")]
    cipher: FieldCipher,
    /// KooGallery's `encryptType` instead of --cipher: 1 = aes-256-cbc, 2 = aes-128-cbc (3 = aes-256-gcm).
    #[arg(long, value_name = "1|2|3", value_parser = cipher_by_type, conflicts_with = "cipher")]
    encrypt_type: Option<FieldCipher>,
    /// The value. Default: standard input, without one trailing newline.
    #[arg(long)]
    value: Option<String>,
    /// encrypt, CBC only: this 16-character IV instead of a random one (for reproducible test vectors).
    #[arg(long, value_name = "16 CHARS")]
    iv: Option<String>,
}

impl FieldArgs {
    fn cipher(&self) -> FieldCipher {
        self.encrypt_type.unwrap_or(self.cipher)
    }
}

const CIPHERS: [FieldCipher; 3] = [
    FieldCipher::Aes256Cbc,
    FieldCipher::Aes128Cbc,
    FieldCipher::Aes256Gcm,
];

fn cipher_by_name(name: &str) -> Result<FieldCipher, String> {
    FieldCipher::from_name(name)
        .ok_or_else(|| format!("expected aes-256-cbc, aes-128-cbc or aes-256-gcm, seen `{name}`"))
}

fn cipher_by_type(value: &str) -> Result<FieldCipher, String> {
    CIPHERS
        .into_iter()
        .find(|c| c.encrypt_type() == value)
        .ok_or_else(|| {
            format!("expected 1 (aes-256-cbc), 2 (aes-128-cbc) or 3 (aes-256-gcm), seen `{value}`")
        })
}

/// Reads `--value` or standard input (one trailing newline removed: `echo` adds it, a field never ends with it).
fn read_value(value: Option<String>) -> anyhow::Result<Zeroizing<String>> {
    if let Some(value) = value {
        return Ok(Zeroizing::new(value));
    }
    if std::io::stdin().is_terminal() {
        eprintln!("reading the value from standard input until end of input (Ctrl-D)");
    }
    let mut text = Zeroizing::new(String::new());
    std::io::stdin()
        .read_to_string(&mut text)
        .context("cannot read the value from standard input (expected UTF-8 text)")?;
    let kept = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .map(str::len);
    if let Some(len) = kept {
        text.truncate(len);
    }
    Ok(text)
}

/// Encrypts a field as KooGallery does and prints it.
pub fn encrypt(args: FieldArgs) -> anyhow::Result<bool> {
    let key = args.key.read()?;
    let cipher = args.cipher();
    let value = read_value(args.value.clone())?;
    let field_key = FieldKey::derive(key.as_bytes(), cipher);
    let field = match &args.iv {
        None => field_key.encrypt(&value),
        Some(_) if cipher == FieldCipher::Aes256Gcm => {
            bail!("--iv is for aes-256-cbc and aes-128-cbc: aes-256-gcm uses a random 12-byte nonce per value")
        }
        Some(iv) if iv.len() != 16 || !iv.bytes().all(|b| b.is_ascii_alphanumeric()) => {
            bail!(
                "--iv: expected exactly 16 letters or digits (KooGallery's IV alphabet), seen {} characters{}",
                iv.chars().count(),
                if iv.is_ascii() { "" } else { " with non-ASCII ones" }
            )
        }
        Some(iv) => field_key
            .encrypt_cbc_with_iv(iv, &value)
            .map_err(|e| anyhow::anyhow!("--iv: {e}"))?,
    };
    println!("{field}");
    Ok(true)
}

/// Decrypts a field and prints the plain text; on failure prints the reason and what to try.
pub fn decrypt(args: FieldArgs) -> anyhow::Result<bool> {
    if args.iv.is_some() {
        bail!("--iv is only for `koogate encrypt`: an encrypted field carries its IV in its first 16 characters");
    }
    let key = args.key.read()?;
    let cipher = args.cipher();
    let field = read_value(args.value.clone())?;
    let field = field.trim();
    let error = match FieldKey::derive(key.as_bytes(), cipher).decrypt(field) {
        Ok(plain) => {
            println!("{}", plain.as_str());
            return Ok(true);
        }
        Err(error) => error,
    };
    eprintln!("cannot decrypt with {}: {error}", cipher.name());
    eprintln!("  expected: {}", layout(cipher));
    eprintln!("  seen:     {}", describe(field));
    let other = CIPHERS
        .into_iter()
        .filter(|c| *c != cipher)
        .find(|c| FieldKey::derive(key.as_bytes(), *c).decrypt(field).is_ok());
    let next = match (other, error) {
        (Some(other), _) => format!(
            "it decrypts with {0} (encryptType {1}): pass --cipher {0}, and set field_cipher = \"{0}\" for this \
             key in the configuration",
            other.name(),
            other.encrypt_type()
        ),
        (None, FieldError::NotBase64) if field.contains(' ') => {
            "the value contains a space: a `+` was probably decoded as a space on the way; put the `+` back".into()
        }
        (None, FieldError::ShortIv | FieldError::BadIv | FieldError::NotBase64 | FieldError::BadLength) => {
            "the value is damaged or truncated: copy the whole field as KooGallery sent it".into()
        }
        (None, FieldError::BadPadding | FieldError::AuthFailed | FieldError::NotUtf8) => {
            "wrong access key or algorithm: a field is encrypted with the key of the product that sent it and \
             the product's Sensitive Information Encryption Algorithm"
                .into()
        }
    };
    eprintln!("  next:     {next}");
    Ok(false)
}

fn layout(cipher: FieldCipher) -> &'static str {
    match cipher {
        FieldCipher::Aes256Cbc | FieldCipher::Aes128Cbc => {
            "a 16-character IV followed by standard base64 (with padding) of whole 16-byte AES blocks"
        }
        FieldCipher::Aes256Gcm => "standard base64 of a 12-byte nonce, the ciphertext and a 16-byte tag",
    }
}

/// The shape of a field, never its content.
fn describe(field: &str) -> String {
    let mut seen = format!("{} characters", field.chars().count());
    if let Some(position) = field.find(' ') {
        seen.push_str(&format!(", a space at offset {position}"));
    }
    seen
}
