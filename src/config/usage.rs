//! The `[usage]` table: the usage-records relay for pay-per-use products (raw form, defaults, validation).

use super::validate::{issue, Validator};
use super::*;
use crate::usage::auth::BearerToken;
use serde::Deserialize;

/// Next to the admin port (9901): loopback only by default, so no token is needed.
pub const DEFAULT_USAGE_LISTEN: &str = "127.0.0.1:9902";
/// 1000 records of ~300 bytes fit with room to spare.
pub const DEFAULT_USAGE_MAX_BODY_BYTES: u64 = 1024 * 1024;
/// KooGallery takes at most 1000 records per call; the app's requests are bounded the same way.
pub const DEFAULT_USAGE_MAX_RECORDS_PER_REQUEST: u64 = 1_000;
/// About 300 MB on disk; far beyond a day of hourly records for thousands of instances.
pub const DEFAULT_USAGE_MAX_QUEUED_RECORDS: u64 = 1_000_000;
/// KooGallery's own limit per call (`MKT.9003` above it).
pub const DEFAULT_USAGE_BATCH_MAX_RECORDS: u64 = 1_000;
/// Waiting a little after the first queued record lets a burst travel in one call.
pub const DEFAULT_USAGE_BATCH_LINGER_MS: u64 = 200;
pub const DEFAULT_USAGE_RETRY_INITIAL_MS: u64 = 1_000;
/// Five minutes: a KooGallery outage is retried a dozen times an hour, well inside the 21-day window.
pub const DEFAULT_USAGE_RETRY_MAX_MS: u64 = 300_000;
/// How long a sent or rejected `metering_sn` is remembered for deduplication; longer than the 21 days a record
/// can be late.
pub const DEFAULT_USAGE_RETENTION_DAYS: u64 = 30;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUsage {
    #[serde(default = "d_listen")]
    pub listen: String,
    pub token_env: Option<String>,
    pub token_file: Option<PathBuf>,
    /// The `[[access_keys]]` entry whose key signs the usage body; defaults to the first.
    pub access_key: Option<String>,
    /// Defaults to `store.data_dir`.
    pub data_dir: Option<PathBuf>,
    #[serde(default = "d_max_body")]
    pub max_body_bytes: u64,
    #[serde(default = "d_max_records")]
    pub max_records_per_request: u64,
    #[serde(default = "d_max_queued")]
    pub max_queued_records: u64,
    #[serde(default = "d_batch")]
    pub batch_max_records: u64,
    #[serde(default = "d_linger", deserialize_with = "crate::config::duration::ms")]
    pub batch_linger_ms: u64,
    #[serde(
        default = "d_retry_initial",
        deserialize_with = "crate::config::duration::ms"
    )]
    pub retry_initial_ms: u64,
    #[serde(
        default = "d_retry_max",
        deserialize_with = "crate::config::duration::ms"
    )]
    pub retry_max_ms: u64,
    #[serde(default = "d_retention")]
    pub retention_days: u64,
}

fn d_listen() -> String {
    DEFAULT_USAGE_LISTEN.to_owned()
}
fn d_max_body() -> u64 {
    DEFAULT_USAGE_MAX_BODY_BYTES
}
fn d_max_records() -> u64 {
    DEFAULT_USAGE_MAX_RECORDS_PER_REQUEST
}
fn d_max_queued() -> u64 {
    DEFAULT_USAGE_MAX_QUEUED_RECORDS
}
fn d_batch() -> u64 {
    DEFAULT_USAGE_BATCH_MAX_RECORDS
}
fn d_linger() -> u64 {
    DEFAULT_USAGE_BATCH_LINGER_MS
}
fn d_retry_initial() -> u64 {
    DEFAULT_USAGE_RETRY_INITIAL_MS
}
fn d_retry_max() -> u64 {
    DEFAULT_USAGE_RETRY_MAX_MS
}
fn d_retention() -> u64 {
    DEFAULT_USAGE_RETENTION_DAYS
}

/// The validated `[usage]` table.
#[derive(Debug, Clone)]
pub struct UsageConfig {
    pub listen: SocketAddr,
    /// Required when `listen` is not a loopback address; enforced whenever set.
    pub token: Option<BearerToken>,
    /// Name of the access key that signs the usage body; `None` = the primary (first) key.
    pub access_key: Option<String>,
    pub data_dir: PathBuf,
    pub max_body_bytes: usize,
    pub max_records_per_request: usize,
    pub max_queued_records: u64,
    pub batch_max_records: usize,
    pub batch_linger: Duration,
    pub retry_initial: Duration,
    pub retry_max: Duration,
    pub retention: Duration,
}

impl UsageConfig {
    /// Whether two (optional) tables configure the same relay, the token included.
    pub fn same(a: Option<&UsageConfig>, b: Option<&UsageConfig>) -> bool {
        match (a, b) {
            (None, None) => true,
            (Some(a), Some(b)) => {
                format!("{a:?}") == format!("{b:?}")
                    && a.token.as_ref().map(BearerToken::expose)
                        == b.token.as_ref().map(BearerToken::expose)
            }
            _ => false,
        }
    }
}

impl Validator<'_> {
    pub(super) fn usage(&mut self, raw: &RawConfig, usage: &RawUsage) -> UsageConfig {
        if raw.koogallery_api.is_none() {
            self.issues.push(issue(
                "usage",
                "the usage relay pushes through KooGallery's OpenAPI: [koogallery_api] is required",
            ));
        }
        if let Some(name) = &usage.access_key {
            if !raw.access_keys.iter().any(|k| &k.name == name) {
                self.issues.push(issue(
                    "usage.access_key",
                    format!("no [[access_keys]] entry is named `{name}`"),
                ));
            }
        }
        let store_data_dir = raw.store.data_dir.as_path();
        let raw = usage;
        let listen = self.addr("usage.listen", &raw.listen);
        let token = self.bearer_token("usage", raw.token_env.as_ref(), raw.token_file.as_ref());
        if token.is_none() && !listen.ip().is_loopback() {
            self.issues.push(issue(
                "usage.token_env",
                "a listener that is not on loopback needs a bearer token (token_env or token_file)",
            ));
        }
        let retry_initial =
            self.duration("usage.retry_initial_ms", raw.retry_initial_ms, 10, 600_000);
        let retry_max = self.duration("usage.retry_max_ms", raw.retry_max_ms, 10, 3_600_000);
        if retry_max < retry_initial {
            self.issues.push(issue(
                "usage.retry_max_ms",
                "must not be below usage.retry_initial_ms",
            ));
        }
        UsageConfig {
            listen,
            token,
            access_key: raw.access_key.clone(),
            data_dir: self
                .base_dir
                .join(raw.data_dir.as_deref().unwrap_or(store_data_dir)),
            max_body_bytes: self.count(
                "usage.max_body_bytes",
                raw.max_body_bytes,
                1_024,
                16 * 1024 * 1024,
            ),
            max_records_per_request: self.count(
                "usage.max_records_per_request",
                raw.max_records_per_request,
                1,
                100_000,
            ),
            max_queued_records: self.count(
                "usage.max_queued_records",
                raw.max_queued_records,
                1,
                100_000_000,
            ) as u64,
            batch_max_records: self.count(
                "usage.batch_max_records",
                raw.batch_max_records,
                1,
                1_000,
            ),
            batch_linger: self.duration("usage.batch_linger_ms", raw.batch_linger_ms, 0, 60_000),
            retry_initial,
            retry_max,
            retention: Duration::from_secs(
                self.count("usage.retention_days", raw.retention_days, 22, 3_650) as u64 * 86_400,
            ),
        }
    }

    /// The bearer token of table `section` (`usage`, `admin`), from `token_env` or `token_file`.
    pub(super) fn bearer_token(
        &mut self,
        section: &str,
        token_env: Option<&String>,
        token_file: Option<&PathBuf>,
    ) -> Option<BearerToken> {
        let (path, text) = match (token_env, token_file) {
            (None, None) => return None,
            (Some(_), Some(_)) => {
                self.issues.push(issue(
                    format!("{section}.token_env"),
                    "set at most one of `token_env` or `token_file`",
                ));
                return None;
            }
            (Some(var), None) => match self.env.var(var) {
                Some(text) => (format!("{section}.token_env"), text),
                None => {
                    self.issues.push(issue(
                        format!("{section}.token_env"),
                        format!("environment variable `{var}` is not set"),
                    ));
                    return None;
                }
            },
            (None, Some(file)) => {
                let file = self.base_dir.join(file);
                match std::fs::read_to_string(&file) {
                    Ok(text) => (
                        format!("{section}.token_file"),
                        text.trim_end_matches(['\r', '\n']).to_owned(),
                    ),
                    Err(e) => {
                        self.issues.push(issue(
                            format!("{section}.token_file"),
                            format!("cannot read {}: {e}", file.display()),
                        ));
                        return None;
                    }
                }
            }
        };
        match BearerToken::new(text) {
            Some(token) => Some(token),
            None => {
                self.issues.push(issue(
                    path,
                    "the token must be 16 to 256 printable ASCII characters",
                ));
                None
            }
        }
    }
}

#[cfg(test)]
#[path = "usage_tests.rs"]
mod tests;
