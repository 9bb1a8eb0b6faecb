//! Validation of the secrets: `[[access_keys]]`, which key signs unauthenticated answers, the upstream secret.

use super::validate::{issue, Validator};
use super::*;
use crate::protocol::fields::{FieldCipher, InboundFields};
use crate::protocol::keys::AccessKey;

/// KooGallery's access keys are UUID-like (about 36 characters); a much shorter one is likely cut off when copied.
const MIN_PLAUSIBLE_KEY_CHARS: usize = 16;

impl Validator<'_> {
    pub(super) fn keys(&mut self, raw: &[RawAccessKey]) -> Option<AccessKeys> {
        if raw.is_empty() {
            self.issues.push(issue(
                "access_keys",
                "at least one access key is required ([[access_keys]] with env or file)",
            ));
        }
        let mut keys = Vec::new();
        for (i, k) in raw.iter().enumerate() {
            let path = format!("access_keys[{i}]");
            if k.name.trim().is_empty() {
                self.issues
                    .push(issue(format!("{path}.name"), "must not be empty"));
            }
            if raw[..i].iter().any(|other| other.name == k.name) {
                self.issues.push(issue(
                    format!("{path}.name"),
                    format!("duplicate key name `{}`", k.name),
                ));
            }
            let secret = match (&k.env, &k.file) {
                (Some(var), None) => self.env.var(var).or_else(|| {
                    self.issues.push(issue(
                        format!("{path}.env"),
                        format!("environment variable `{var}` is not set"),
                    ));
                    None
                }),
                (None, Some(file)) => {
                    let file = self.base_dir.join(file);
                    std::fs::read_to_string(&file)
                        .map_err(|e| {
                            self.issues.push(issue(
                                format!("{path}.file"),
                                format!("cannot read {}: {e}", file.display()),
                            ));
                        })
                        .ok()
                        // Secret files usually end with a newline that is not part of the key.
                        .map(|s| s.trim_end_matches(['\r', '\n']).to_owned())
                }
                _ => {
                    self.issues
                        .push(issue(path.clone(), "set exactly one of `env` or `file`"));
                    None
                }
            };
            // Only the first entry holding a secret ever verifies a call: a second one's cipher and settings would
            // be silently ignored, so the same product (key) listed twice is refused.
            let first = secret.as_deref().and_then(|s| {
                keys.iter().find(|k: &&AccessKey| {
                    bool::from(subtle::ConstantTimeEq::ct_eq(k.expose(), s.as_bytes()))
                })
            });
            match (secret, first) {
                (Some(_), Some(first)) => self.issues.push(issue(
                    path,
                    format!(
                        "holds the same access key as `{}`: only the first entry would ever verify a call, so \
                         this entry's field_cipher and encrypt_app_info would never be used; list each key once \
                         (one koogate instance per product when products share a key)",
                        first.name()
                    ),
                )),
                (Some(s), None) if s.is_empty() => {
                    self.issues.push(issue(path, "the access key is empty"))
                }
                (Some(s), None) if s.trim() != s => self.issues.push(issue(
                    path,
                    "the access key starts or ends with whitespace (a space or tab copied with it?): KooGallery's \
                     keys never do; set it again without the surrounding whitespace",
                )),
                (Some(s), None) => {
                    let length = s.chars().count();
                    if length < MIN_PLAUSIBLE_KEY_CHARS {
                        self.warnings.push(issue(
                            path.clone(),
                            format!(
                                "the access key is only {length} characters; KooGallery's are about 36 (a UUID): \
                                 check that the whole key was copied"
                            ),
                        ));
                    }
                    let cipher = FieldCipher::from_name(&k.field_cipher).unwrap_or_else(|| {
                        self.issues.push(issue(
                            format!("{path}.field_cipher"),
                            format!(
                                "`{}` is not aes-256-cbc, aes-128-cbc or aes-256-gcm",
                                k.field_cipher
                            ),
                        ));
                        FieldCipher::Aes256Cbc
                    });
                    let inbound = InboundFields::from_name(&k.buyer_fields).unwrap_or_else(|| {
                        self.issues.push(issue(
                            format!("{path}.buyer_fields"),
                            format!(
                                "`{}` is not encrypted, plain or auto",
                                k.buyer_fields
                            ),
                        ));
                        InboundFields::Encrypted
                    });
                    keys.push(
                        AccessKey::new(k.name.clone(), s)
                            .with_fields(cipher, k.encrypt_app_info)
                            .with_buyer_fields(inbound),
                    );
                }
                (None, _) => {}
            }
        }
        AccessKeys::new(keys)
    }

    /// `verify.unauthenticated_answer_key[_by_path]`: names of configured keys.
    pub(super) fn unauthenticated_keys(&mut self, raw: &RawVerify, keys: AccessKeys) -> AccessKeys {
        let mut find = |path: String, name: &str| {
            keys.find(name).or_else(|| {
                self.issues
                    .push(issue(path, format!("no access key named `{name}`")));
                None
            })
        };
        let default = raw
            .unauthenticated_answer_key
            .as_deref()
            .and_then(|name| find("verify.unauthenticated_answer_key".into(), name));
        let by_path = raw
            .unauthenticated_answer_key_by_path
            .iter()
            .filter_map(|(path, name)| {
                let key_path = format!("verify.unauthenticated_answer_key_by_path.\"{path}\"");
                find(key_path, name).map(|k| (path.clone(), k))
            })
            .collect();
        let default = default.unwrap_or_else(|| keys.for_unauthenticated(""));
        keys.with_unauthenticated(default, by_path)
    }

    /// `upstream.signature_key_env` / `signature_key_file`: the secret that signs upstream requests.
    pub(super) fn upstream_signature_key(
        &mut self,
        raw: &RawUpstream,
    ) -> Option<crate::upstream::auth::UpstreamSigningKey> {
        use crate::upstream::auth::{UpstreamSigningKey, MIN_SECRET_BYTES};
        let (path, secret) = match (&raw.signature_key_env, &raw.signature_key_file) {
            (None, None) => return None,
            (Some(var), None) => (
                "upstream.signature_key_env",
                self.env
                    .var(var)
                    .ok_or_else(|| format!("environment variable `{var}` is not set")),
            ),
            (None, Some(file)) => {
                let file = self.base_dir.join(file);
                let text = std::fs::read_to_string(&file)
                    .map(|s| s.trim_end_matches(['\r', '\n']).to_owned())
                    .map_err(|e| format!("cannot read {}: {e}", file.display()));
                ("upstream.signature_key_file", text)
            }
            (Some(_), Some(_)) => (
                "upstream",
                Err("set at most one of `signature_key_env` or `signature_key_file`".to_owned()),
            ),
        };
        match secret {
            Ok(s) if s.len() >= MIN_SECRET_BYTES => Some(UpstreamSigningKey::new(s)),
            Ok(_) => {
                self.issues.push(issue(
                    path,
                    format!("the secret is shorter than {MIN_SECRET_BYTES} bytes (e.g. `openssl rand -hex 32`)"),
                ));
                None
            }
            Err(message) => {
                self.issues.push(issue(path, message));
                None
            }
        }
    }
}
