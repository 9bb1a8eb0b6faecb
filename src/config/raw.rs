//! The TOML file as written: serde structs with `deny_unknown_fields` and every default named here.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// KooGallery gives up after 5 s; answering by 4.5 s leaves room for the network and TLS.
pub const DEFAULT_DEADLINE_MS: u64 = 4_500;
/// Protocol section 2: `|now − timestamp| > 60 s` is refused.
pub const DEFAULT_TIMESTAMP_WINDOW_MS: u64 = 60_000;
/// KooGallery bodies are a few hundred bytes; 64 KiB leaves room for EU orders with many products.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 64 * 1024;
/// A full 60 s V2 window of nonces at 1,600 calls/s; KooGallery sends a handful per minute. About 25 MB when full.
pub const DEFAULT_REPLAY_CACHE_MAX_ENTRIES: u64 = 100_000;
/// A full 24 h V1 window at about 3 calls/s sustained (V1 keys live 1,440 times longer than V2's). About 60 MB when
/// full (~250 bytes per key).
pub const DEFAULT_V1_REPLAY_CACHE_MAX_ENTRIES: u64 = 250_000;
/// Below Node's 5 s `keepAliveTimeout`, so koogate never reuses a socket the app is about to close.
pub const DEFAULT_POOL_IDLE_TIMEOUT_MS: u64 = 4_000;
pub const DEFAULT_POOL_MAX_IDLE_PER_HOST: u64 = 32;
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 1_000;
/// A `queryInstance` answer for 100 instances fits easily.
pub const DEFAULT_MAX_ANSWER_BYTES: u64 = 1024 * 1024;
/// KooGallery's handshake takes well under 100 ms (a few round trips even from another continent); a short limit
/// frees the slots of connections that never start one.
pub const DEFAULT_HANDSHAKE_TIMEOUT_MS: u64 = 2_000;
pub const DEFAULT_HEADER_READ_TIMEOUT_MS: u64 = 5_000;
/// A body that has not arrived within KooGallery's own deadline never will in time.
pub const DEFAULT_BODY_READ_TIMEOUT_MS: u64 = 5_000;
/// An idle TLS connection costs about 32 KB (rustls buffers, hyper's read buffer), so 4,096 is about 128 MB at
/// worst. At the limit the oldest connection that has not sent a request is evicted, so idle ones cannot lock
/// KooGallery out.
pub const DEFAULT_MAX_CONNECTIONS: u64 = 4_096;
pub const DEFAULT_SHUTDOWN_GRACE_MS: u64 = 10_000;
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9901";
/// Durable by default: an acknowledged answer must survive a restart.
pub const DEFAULT_STORE_BACKEND: &str = "local";
pub const DEFAULT_DATA_DIR: &str = "koogate-data";
/// Secret and certificate updates (a Kubernetes symlink swap) arrive as bursts of file events.
pub const DEFAULT_RELOAD_DEBOUNCE_MS: u64 = 500;
/// What the built-in test responder answers as the instance's front-end URL.
pub const DEFAULT_TEST_FRONT_END_URL: &str = "https://example.com/koogallery-test";
pub const DEFAULT_REDIS_KEY_PREFIX: &str = "koogate:";
/// Redis on the same network answers in well under a millisecond; half a second bounds a stuck connection
/// while leaving the 4.5 s deadline to the upstream.
pub const DEFAULT_REDIS_TIMEOUT_MS: u64 = 500;
/// About 80 MB of index at most (80 bytes per record): a month of a busy seller's operations, well inside the
/// 256 MiB the Kubernetes manifests allow.
pub const DEFAULT_MAX_RECORDS: u64 = 1_000_000;
/// A healthy disk syncs in milliseconds; half a second flags a stalled one while the answer still reaches
/// KooGallery (upstream deadline 4.5 s + 0.5 s = its 5 s), and stays below the Redis claim's 5 s allowance.
pub const DEFAULT_COMMIT_TIMEOUT_MS: u64 = 500;
/// KooGallery retries for 3 hours and replays saved debugging cases twice a day; a month covers audits too.
pub const DEFAULT_RETENTION_DAYS: u64 = 30;
/// Where the journal key is read from when neither `journal_key_env` nor `journal_key_file` is set.
pub const DEFAULT_JOURNAL_KEY_ENV: &str = "KOOGATE_JOURNAL_KEY";
/// No clock-skew rule is documented for V1; a day is generous and still bounds the replay cache.
pub const DEFAULT_V1_TIMESTAMP_WINDOW_MS: u64 = 24 * 3600 * 1000;
/// KooGallery's default "sensitive information encryption algorithm" (encryptType 1).
pub const DEFAULT_FIELD_CIPHER: &str = "aes-256-cbc";
/// KooGallery documents the buyer's phone and email as always encrypted; anything else is a product's choice.
pub const DEFAULT_BUYER_FIELDS: &str = "encrypted";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub server: RawServer,
    pub plain_http: Option<RawPlainHttp>,
    #[serde(default)]
    pub admin: super::admin::RawAdmin,
    #[serde(default)]
    pub verify: RawVerify,
    #[serde(default)]
    pub access_keys: Vec<RawAccessKey>,
    #[serde(default)]
    pub v1: RawV1,
    #[serde(default)]
    pub store: RawStore,
    /// Required: where KooGallery's debugging calls and probes go is a choice every deployment makes.
    pub test_calls: Option<RawTestCalls>,
    #[serde(default)]
    pub reload: RawReload,
    pub upstream: RawUpstream,
    #[serde(default)]
    pub log: RawLog,
    pub acme: Option<super::RawAcme>,
    pub koogallery_api: Option<super::koogallery_api::RawKooGalleryApi>,
    pub usage: Option<super::usage::RawUsage>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: String,
    /// Required unless `[acme]` is configured (the two are exclusive).
    pub cert_chain_file: Option<PathBuf>,
    pub private_key_file: Option<PathBuf>,
    #[serde(default)]
    pub http2: bool,
    #[serde(
        default = "d_handshake",
        deserialize_with = "crate::config::duration::ms"
    )]
    pub handshake_timeout_ms: u64,
    #[serde(
        default = "d_header_read",
        deserialize_with = "crate::config::duration::ms"
    )]
    pub header_read_timeout_ms: u64,
    #[serde(
        default = "d_body_read",
        deserialize_with = "crate::config::duration::ms"
    )]
    pub body_read_timeout_ms: u64,
    #[serde(default = "d_max_connections")]
    pub max_connections: u64,
    #[serde(default = "d_max_body")]
    pub max_body_bytes: u64,
    #[serde(default = "d_grace", deserialize_with = "crate::config::duration::ms")]
    pub shutdown_grace_ms: u64,
    #[serde(default, deserialize_with = "crate::config::duration::ms")]
    pub drain_delay_ms: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPlainHttp {
    pub listen: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVerify {
    #[serde(default = "d_window", deserialize_with = "crate::config::duration::ms")]
    pub timestamp_window_ms: u64,
    #[serde(default = "d_replay_entries")]
    pub replay_cache_max_entries: u64,
    /// Name of the access key that signs answers to unauthenticated calls; default: the first key.
    pub unauthenticated_answer_key: Option<String>,
    /// The same per request path (exact match), for several products behind one listener.
    #[serde(default)]
    pub unauthenticated_answer_key_by_path: BTreeMap<String, String>,
}

impl Default for RawVerify {
    fn default() -> Self {
        Self {
            timestamp_window_ms: d_window(),
            replay_cache_max_entries: d_replay_entries(),
            unauthenticated_answer_key: None,
            unauthenticated_answer_key_by_path: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccessKey {
    pub name: String,
    pub env: Option<String>,
    pub file: Option<PathBuf>,
    #[serde(default = "d_field_cipher")]
    pub field_cipher: String,
    #[serde(default)]
    pub encrypt_app_info: bool,
    /// `encrypted`, `plain` or `auto`: how the buyer's mobilePhone/email arrive.
    #[serde(default = "d_buyer_fields")]
    pub buyer_fields: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReload {
    #[serde(default)]
    pub watch_files: bool,
    #[serde(
        default = "d_debounce",
        deserialize_with = "crate::config::duration::ms"
    )]
    pub debounce_ms: u64,
}

impl Default for RawReload {
    fn default() -> Self {
        Self {
            watch_files: false,
            debounce_ms: d_debounce(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTestCalls {
    /// No default: `check` and `run` refuse a config without it.
    pub mode: Option<String>,
    pub sandbox_route: Option<String>,
    #[serde(default = "d_test_front_end_url")]
    pub front_end_url: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    #[serde(default = "d_store_backend")]
    pub backend: String,
    #[serde(default = "d_data_dir")]
    pub data_dir: PathBuf,
    #[serde(default = "d_retention_days")]
    pub retention_days: u64,
    pub journal_key_env: Option<String>,
    pub journal_key_file: Option<PathBuf>,
    /// Earlier journal keys, for opening only (after a rotation).
    #[serde(default)]
    pub previous_journal_key_envs: Vec<String>,
    #[serde(default)]
    pub previous_journal_key_files: Vec<PathBuf>,
    #[serde(default = "d_max_records")]
    pub max_records: u64,
    #[serde(
        default = "d_commit_timeout",
        deserialize_with = "crate::config::duration::ms"
    )]
    pub commit_timeout_ms: u64,
    pub redis_url: Option<String>,
    pub redis_url_env: Option<String>,
    pub redis_ca_file: Option<PathBuf>,
    #[serde(default = "d_redis_prefix")]
    pub redis_key_prefix: String,
    #[serde(
        default = "d_redis_timeout",
        deserialize_with = "crate::config::duration::ms"
    )]
    pub redis_timeout_ms: u64,
}

impl Default for RawStore {
    fn default() -> Self {
        Self {
            backend: d_store_backend(),
            data_dir: d_data_dir(),
            retention_days: d_retention_days(),
            journal_key_env: None,
            journal_key_file: None,
            previous_journal_key_envs: Vec::new(),
            previous_journal_key_files: Vec::new(),
            max_records: d_max_records(),
            commit_timeout_ms: d_commit_timeout(),
            redis_url: None,
            redis_url_env: None,
            redis_ca_file: None,
            redis_key_prefix: d_redis_prefix(),
            redis_timeout_ms: d_redis_timeout(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawV1 {
    /// Off unless configured: a V2-only product should not accept GET calls with a 24 h window.
    #[serde(default)]
    pub enabled: bool,
    #[serde(
        default = "d_v1_window",
        deserialize_with = "crate::config::duration::ms"
    )]
    pub timestamp_window_ms: u64,
    #[serde(default)]
    pub post: bool,
    #[serde(default = "d_v1_replay_entries")]
    pub replay_cache_max_entries: u64,
}

impl Default for RawV1 {
    fn default() -> Self {
        Self {
            enabled: false,
            timestamp_window_ms: d_v1_window(),
            post: false,
            replay_cache_max_entries: d_v1_replay_entries(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    #[serde(
        default = "d_deadline",
        deserialize_with = "crate::config::duration::ms"
    )]
    pub deadline_ms: u64,
    pub default_route: String,
    #[serde(
        default = "d_pool_idle",
        deserialize_with = "crate::config::duration::ms"
    )]
    pub pool_idle_timeout_ms: u64,
    #[serde(default = "d_pool_max_idle")]
    pub pool_max_idle_per_host: u64,
    #[serde(
        default = "d_connect",
        deserialize_with = "crate::config::duration::ms"
    )]
    pub connect_timeout_ms: u64,
    #[serde(default = "d_max_answer")]
    pub max_answer_bytes: u64,
    /// The secret koogate signs every upstream request with (at most one of the two); default: unsigned.
    pub signature_key_env: Option<String>,
    pub signature_key_file: Option<PathBuf>,
    #[serde(default)]
    pub routes: BTreeMap<String, RawRoute>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub url: String,
    #[serde(default, deserialize_with = "crate::config::duration::opt_ms")]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub activities: Vec<String>,
    pub ca_file: Option<PathBuf>,
    /// https:// only: a client certificate chain and key (PEM) presented to the upstream (mTLS).
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
    /// Allows an `http://` URL to a host other than this one (decrypted buyer data in clear text); warned.
    #[serde(default)]
    pub allow_plain_http: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub format: Option<String>,
    pub level: Option<String>,
}

fn d_debounce() -> u64 {
    DEFAULT_RELOAD_DEBOUNCE_MS
}
fn d_test_front_end_url() -> String {
    DEFAULT_TEST_FRONT_END_URL.to_owned()
}
fn d_redis_prefix() -> String {
    DEFAULT_REDIS_KEY_PREFIX.to_owned()
}
fn d_max_records() -> u64 {
    DEFAULT_MAX_RECORDS
}
fn d_commit_timeout() -> u64 {
    DEFAULT_COMMIT_TIMEOUT_MS
}
fn d_redis_timeout() -> u64 {
    DEFAULT_REDIS_TIMEOUT_MS
}
fn d_store_backend() -> String {
    DEFAULT_STORE_BACKEND.to_owned()
}
fn d_data_dir() -> PathBuf {
    PathBuf::from(DEFAULT_DATA_DIR)
}
fn d_retention_days() -> u64 {
    DEFAULT_RETENTION_DAYS
}
fn d_v1_window() -> u64 {
    DEFAULT_V1_TIMESTAMP_WINDOW_MS
}
fn d_buyer_fields() -> String {
    DEFAULT_BUYER_FIELDS.to_owned()
}
fn d_field_cipher() -> String {
    DEFAULT_FIELD_CIPHER.to_owned()
}
fn d_handshake() -> u64 {
    DEFAULT_HANDSHAKE_TIMEOUT_MS
}
fn d_header_read() -> u64 {
    DEFAULT_HEADER_READ_TIMEOUT_MS
}
fn d_body_read() -> u64 {
    DEFAULT_BODY_READ_TIMEOUT_MS
}
fn d_max_connections() -> u64 {
    DEFAULT_MAX_CONNECTIONS
}
fn d_max_body() -> u64 {
    DEFAULT_MAX_BODY_BYTES
}
fn d_grace() -> u64 {
    DEFAULT_SHUTDOWN_GRACE_MS
}
fn d_window() -> u64 {
    DEFAULT_TIMESTAMP_WINDOW_MS
}
fn d_v1_replay_entries() -> u64 {
    DEFAULT_V1_REPLAY_CACHE_MAX_ENTRIES
}
fn d_replay_entries() -> u64 {
    DEFAULT_REPLAY_CACHE_MAX_ENTRIES
}
fn d_deadline() -> u64 {
    DEFAULT_DEADLINE_MS
}
fn d_pool_idle() -> u64 {
    DEFAULT_POOL_IDLE_TIMEOUT_MS
}
fn d_pool_max_idle() -> u64 {
    DEFAULT_POOL_MAX_IDLE_PER_HOST
}
fn d_connect() -> u64 {
    DEFAULT_CONNECT_TIMEOUT_MS
}
fn d_max_answer() -> u64 {
    DEFAULT_MAX_ANSWER_BYTES
}
