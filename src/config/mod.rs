//! Configuration: the TOML file is read into raw structs, then validated into a [`Config`] of parsed values.
//!
//! Validation reports every problem at once, each with its key path (`upstream.routes.app.url: …`).

mod acme;
mod admin;
pub mod duration;
mod koogallery_api;
mod parse;
mod raw;
mod startup;
mod usage;
mod validate;
mod validate_keys;
mod validate_sections;

pub use acme::{AcmeConfig, RawAcme, DEFAULT_ACME_DIRECTORY, LETS_ENCRYPT_STAGING};
pub use admin::{ConsoleAccess, RawAdmin};
pub use koogallery_api::{KooGalleryApiConfig, OnFailure, RawKooGalleryApi, Site};
pub use raw::*;
pub use startup::data_dir_problem;
pub use usage::UsageConfig;
/// The `[usage]` defaults, for the command line.
pub mod usage_defaults {
    pub use super::usage::DEFAULT_USAGE_LISTEN;
}

/// The `[koogallery_api]` cache defaults as values, for a gateway started without the section.
pub mod koogallery_api_defaults {
    use std::time::Duration;
    pub const ORDER_CACHE_MAX_ENTRIES: usize =
        super::koogallery_api::DEFAULT_ORDER_CACHE_MAX_ENTRIES as usize;
    pub const ORDER_CACHE_TTL: Duration =
        Duration::from_secs(super::koogallery_api::DEFAULT_ORDER_CACHE_TTL_SECONDS);
}

use crate::protocol::keys::AccessKeys;
use crate::protocol::Activity;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use validate::issue;

/// A validated configuration. Only [`Config::load`] and [`Config::from_toml`] make one.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    /// Plain-HTTP listener, only for a load balancer that terminates TLS itself.
    pub plain_http: Option<SocketAddr>,
    pub admin_listen: SocketAddr,
    /// Who may open the console page on the admin listener.
    pub console: ConsoleAccess,
    pub verify: VerifyConfig,
    pub keys: AccessKeys,
    pub upstream: UpstreamConfig,
    pub log: LogConfig,
    pub store: StoreConfig,
    pub reload: ReloadConfig,
    /// KooGallery's seller-side OpenAPI (order lookup, usage push); `None` when `[koogallery_api]` is absent.
    pub koogallery_api: Option<KooGalleryApiConfig>,
    /// The usage-records relay, when `[usage]` is present.
    pub usage: Option<UsageConfig>,
    /// What is allowed but risky (an allowed plain-HTTP upstream, a short access key): `check` prints these and
    /// `run` logs them.
    pub warnings: Vec<ConfigIssue>,
}

/// How `koogate run` notices changes besides SIGHUP.
#[derive(Debug, Clone)]
pub struct ReloadConfig {
    /// Watch the directories of the config, certificate and key files and reload on changes.
    pub watch_files: bool,
    pub debounce: Duration,
    /// Every file the configuration reads (config file added by the caller): what the watcher watches.
    pub files: Vec<PathBuf>,
}

/// Where state lives; see [`crate::state`].
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub kind: crate::state::StoreKind,
    pub retention: Duration,
    pub max_records: usize,
    pub commit_timeout: Duration,
    /// Required for the durable backend (the current journal key plus previous ones).
    pub sealer: Option<crate::state::seal::Sealer>,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Where the listener's certificate comes from.
    pub certificates: Certificates,
    pub http2: bool,
    pub handshake_timeout: Duration,
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub max_connections: usize,
    pub max_body_bytes: usize,
    pub shutdown_grace: Duration,
    /// After SIGTERM: not ready, but still serving, for this long.
    pub drain_delay: Duration,
}

/// The HTTPS listener's certificate: PEM files (reloadable), or issued and renewed through `[acme]`.
#[derive(Debug, Clone)]
pub enum Certificates {
    Files {
        cert_chain_file: PathBuf,
        private_key_file: PathBuf,
    },
    Acme(AcmeConfig),
}

impl Certificates {
    /// The certificate and key files, when the certificate comes from files.
    pub fn files(&self) -> Option<(&Path, &Path)> {
        match self {
            Self::Files {
                cert_chain_file,
                private_key_file,
            } => Some((cert_chain_file, private_key_file)),
            Self::Acme(_) => None,
        }
    }

    pub fn acme(&self) -> Option<&AcmeConfig> {
        match self {
            Self::Files { .. } => None,
            Self::Acme(acme) => Some(acme),
        }
    }
}

#[derive(Debug, Clone)]
pub struct VerifyConfig {
    pub timestamp_window: Duration,
    /// V2 replay keys remembered at most (each for `timestamp_window`).
    pub replay_cache_max_entries: usize,
    /// V1 replay keys remembered at most (each for `v1_timestamp_window`).
    pub v1_replay_cache_max_entries: usize,
    /// Legacy V1 calls (`GET` with `authToken`).
    pub v1_enabled: bool,
    pub v1_timestamp_window: Duration,
    /// The "V1 POST" variant: V1 fields in a JSON body, `authToken` in a header.
    pub v1_post: bool,
}

#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub deadline: Duration,
    pub pool_idle_timeout: Duration,
    pub pool_max_idle_per_host: usize,
    pub connect_timeout: Duration,
    pub max_answer_bytes: usize,
    /// Routes in name order; `routes[default_route]` serves every activity not assigned elsewhere.
    pub routes: Vec<RouteConfig>,
    /// For each activity (in [`Activity::ALL`] order) the index of its route.
    pub route_of: [usize; Activity::ALL.len()],
    /// Where debugging calls (`testFlag=1`) go.
    pub test_calls: TestCalls,
    /// Signs every upstream request when set.
    pub signature_key: Option<crate::upstream::auth::UpstreamSigningKey>,
}

/// What KooGallery's debugging calls and lifecycle probes (`testFlag=1`) reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestCalls {
    /// The same routes as real calls.
    Forward,
    /// One route (index into `routes`), for example a staging copy of the app.
    Sandbox(usize),
    /// koogate's built-in deterministic responder; nothing is forwarded.
    Builtin { front_end_url: String },
}

impl UpstreamConfig {
    /// Index into `routes` of the route serving `activity`.
    pub fn route_index(&self, activity: Activity) -> usize {
        let slot = Activity::ALL
            .iter()
            .position(|a| *a == activity)
            .unwrap_or(0);
        self.route_of[slot]
    }

    pub fn route_for(&self, activity: Activity) -> &RouteConfig {
        &self.routes[self.route_index(activity)]
    }

    /// Index into `routes` of the route a call goes to: the sandbox route for a debugging call (`testFlag=1`) when
    /// `test_calls` is `sandbox`, else its activity's route.
    pub fn call_route(&self, activity: Activity, test_flag: bool) -> usize {
        match self.test_calls {
            TestCalls::Sandbox(sandbox) if test_flag => sandbox,
            _ => self.route_index(activity),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// The configured name; also the `route` metric label.
    pub name: String,
    pub url: http::Uri,
    pub timeout: Duration,
    pub ca_file: Option<PathBuf>,
    /// Client certificate chain and key (PEM) for mTLS to an https:// upstream.
    pub client_identity: Option<(PathBuf, PathBuf)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter directive such as `info` or `koogate=debug`.
    pub level: String,
}

/// One problem found in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    pub path: String,
    pub message: String,
    /// Where in the file, when the key is written there (a missing key or an unreadable file has no place).
    pub location: Option<Location>,
}

/// A place in the configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// 1-based.
    pub line: usize,
    /// 1-based, in bytes.
    pub column: usize,
    /// That line of the file, as written.
    pub snippet: String,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line,
            self.column,
            self.snippet.trim()
        )
    }
}

/// Every problem found in the configuration, reported together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigIssue>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} configuration error(s):", self.0.len())?;
        for issue in &self.0 {
            write!(f, "\n  {}: {}", issue.path, issue.message)?;
            if let Some(at) = &issue.location {
                write!(f, "\n    at {at}")?;
            }
        }
        Ok(())
    }
}

/// Where secrets come from; production uses the process environment, tests inject a map.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The real process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl<F: Fn(&str) -> Option<String>> Env for F {
    fn var(&self, name: &str) -> Option<String> {
        self(name)
    }
}

impl Config {
    /// Reads and validates a config file; relative paths inside it are relative to the file's directory.
    pub fn load(path: &Path, env: &dyn Env) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![issue(
                path.display().to_string(),
                format!("cannot read: {e}"),
            )])
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_toml(&text, base, env)
    }

    /// Parses and validates TOML text; every error carries its key path and, where the key is written, its line.
    pub fn from_toml(text: &str, base_dir: &Path, env: &dyn Env) -> Result<Config, ConfigErrors> {
        let raw = parse::raw_config(text).map_err(ConfigErrors)?;
        let validated = validate::Validator {
            issues: Vec::new(),
            warnings: Vec::new(),
            base_dir,
            env,
        }
        .validate(raw);
        match validated {
            Ok(mut config) => {
                parse::locate(text, &mut config.warnings);
                Ok(config)
            }
            Err(ConfigErrors(mut issues)) => {
                parse::locate(text, &mut issues);
                Err(ConfigErrors(issues))
            }
        }
    }
}

#[cfg(test)]
mod tests;
