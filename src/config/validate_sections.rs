//! Validation of the `[test_calls]` and `[store]` tables, and of the listeners against each other.

use super::validate::{issue, Validator};
use super::*;

/// Why `[test_calls] mode` has no default, and how to choose (README "Debugging calls" says the same).
const TEST_CALLS_ADVICE: &str = "must be set explicitly ([test_calls] mode = ...): KooGallery's console \
debugging calls and twice-daily lifecycle probes carry testFlag=1 and must never create real resources. Choose \
`sandbox` (with sandbox_route naming a staging copy of the app) while debugging for release; `forward` when the \
app honours testFlag itself; `builtin` only when it cannot (KooGallery's probes then pass even if the app is broken)";

impl Validator<'_> {
    /// Two listeners on one port (the same address, or either on 0.0.0.0/::) cannot both bind: `run` would fail
    /// with "address in use". Port 0 (any free port, tests) never collides.
    /// No two listeners on one port (`0` asks the OS for a free one): `run` would fail to bind the second.
    pub(super) fn listeners_apart(&mut self, listeners: &[(&str, std::net::SocketAddr)]) {
        let overlap = |a: std::net::SocketAddr, b: std::net::SocketAddr| {
            a.port() != 0
                && a.port() == b.port()
                && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
        };
        for (i, (name, addr)) in listeners.iter().enumerate() {
            if let Some((other, other_addr)) = listeners[..i]
                .iter()
                .find(|(_, earlier)| overlap(*addr, *earlier))
            {
                self.issues.push(issue(
                    *name,
                    format!(
                        "{addr} is the port of {other} ({other_addr}): give each listener its own port"
                    ),
                ));
            }
        }
    }

    pub(super) fn test_calls(
        &mut self,
        raw: Option<&RawTestCalls>,
        upstream: Option<&UpstreamConfig>,
    ) -> TestCalls {
        let Some((raw, mode)) = raw.and_then(|r| r.mode.as_deref().map(|m| (r, m))) else {
            self.issues
                .push(issue("test_calls.mode", TEST_CALLS_ADVICE));
            return TestCalls::Forward;
        };
        match (mode, &raw.sandbox_route) {
            ("forward", None) => TestCalls::Forward,
            ("builtin", None) => TestCalls::Builtin {
                front_end_url: raw.front_end_url.clone(),
            },
            ("sandbox", Some(name)) => {
                match upstream.map(|u| u.routes.iter().position(|r| &r.name == name)) {
                    Some(Some(index)) => TestCalls::Sandbox(index),
                    // The routes did not validate: their own errors are reported; this one cannot be judged.
                    None => TestCalls::Forward,
                    Some(None) => {
                        self.issues.push(issue(
                            "test_calls.sandbox_route",
                            format!("no route named `{name}`"),
                        ));
                        TestCalls::Forward
                    }
                }
            }
            ("sandbox", None) => {
                self.issues.push(issue(
                    "test_calls.sandbox_route",
                    "mode `sandbox` needs the name of a route",
                ));
                TestCalls::Forward
            }
            ("forward" | "builtin", Some(_)) => {
                self.issues.push(issue(
                    "test_calls.sandbox_route",
                    "only used with mode `sandbox`",
                ));
                TestCalls::Forward
            }
            (other, _) => {
                self.issues.push(issue(
                    "test_calls.mode",
                    format!("`{other}` is not `forward`, `sandbox` or `builtin`"),
                ));
                TestCalls::Forward
            }
        }
    }

    pub(super) fn store(&mut self, raw: &RawStore) -> StoreConfig {
        use crate::state::{seal::Sealer, StoreKind};
        if raw.retention_days == 0 || raw.retention_days > 3650 {
            self.issues.push(issue(
                "store.retention_days",
                format!("{} is outside 1..=3650 days", raw.retention_days),
            ));
        }
        let retention = Duration::from_secs(raw.retention_days.saturating_mul(86_400));
        let max_records = self.count("store.max_records", raw.max_records, 1, 100_000_000);
        let commit_timeout =
            self.duration("store.commit_timeout_ms", raw.commit_timeout_ms, 10, 4_000);
        let kind = match raw.backend.as_str() {
            "memory" => {
                return StoreConfig {
                    kind: StoreKind::Memory,
                    retention,
                    max_records,
                    commit_timeout,
                    sealer: None,
                }
            }
            "local" => StoreKind::Local {
                data_dir: self.base_dir.join(&raw.data_dir),
            },
            "redis" => {
                if cfg!(not(feature = "redis")) {
                    self.issues.push(issue(
                        "store.backend",
                        "this koogate was built without the `redis` feature: use `local` (one replica) or a \
                         build with `--features redis` (the default)",
                    ));
                }
                let url = match (&raw.redis_url, &raw.redis_url_env) {
                    (Some(url), None) => Some(url.clone()),
                    (None, Some(var)) => self.env.var(var).or_else(|| {
                        self.issues.push(issue(
                            "store.redis_url_env",
                            format!("environment variable `{var}` is not set"),
                        ));
                        None
                    }),
                    _ => {
                        self.issues.push(issue(
                            "store",
                            "backend `redis` needs exactly one of `redis_url` or `redis_url_env`",
                        ));
                        None
                    }
                };
                if url.as_deref().is_some_and(|u| !redis_url_parses(u)) {
                    self.issues
                        .push(issue("store.redis_url", "not a redis:// or rediss:// URL"));
                }
                let timeout =
                    self.duration("store.redis_timeout_ms", raw.redis_timeout_ms, 10, 4_000);
                StoreKind::Redis {
                    url: url.unwrap_or_default(),
                    prefix: raw.redis_key_prefix.clone(),
                    timeout,
                    data_dir: self.base_dir.join(&raw.data_dir),
                    ca_file: raw.redis_ca_file.as_ref().map(|f| self.base_dir.join(f)),
                }
            }
            other => {
                self.issues.push(issue(
                    "store.backend",
                    format!("`{other}` is not `local`, `redis` or `memory`"),
                ));
                return StoreConfig {
                    kind: StoreKind::Memory,
                    retention,
                    max_records,
                    commit_timeout,
                    sealer: None,
                };
            }
        };
        let (path, text) = match (&raw.journal_key_env, &raw.journal_key_file) {
            (Some(_), Some(_)) => {
                self.issues.push(issue(
                    "store",
                    "set at most one of `journal_key_env` or `journal_key_file`",
                ));
                return StoreConfig {
                    kind,
                    retention,
                    max_records,
                    commit_timeout,
                    sealer: None,
                };
            }
            (None, Some(file)) => {
                let file = self.base_dir.join(file);
                let text = std::fs::read_to_string(&file)
                    .map_err(|e| format!("cannot read {}: {e}", file.display()));
                ("store.journal_key_file", text)
            }
            (env, None) => {
                let name = env.as_deref().unwrap_or(DEFAULT_JOURNAL_KEY_ENV);
                let text = self.env.var(name).ok_or_else(|| {
                    format!("environment variable `{name}` is not set: the local store seals personal data with it (or set store.backend = \"memory\")")
                });
                ("store.journal_key_env", text)
            }
        };
        let sealer = match text.map(|t| Sealer::from_text(&t).map_err(|e| e.to_string())) {
            Ok(Ok(sealer)) => Some(sealer),
            Ok(Err(message)) | Err(message) => {
                self.issues.push(issue(path, message));
                None
            }
        };
        let sealer = sealer.map(|s| s.with_previous(self.previous_journal_keys(raw)));
        StoreConfig {
            kind,
            retention,
            max_records,
            commit_timeout,
            sealer,
        }
    }
}

impl Validator<'_> {
    /// The keys of `store.previous_journal_key_envs` and `store.previous_journal_key_files`.
    fn previous_journal_keys(&mut self, raw: &RawStore) -> Vec<crate::state::seal::Sealer> {
        use crate::state::seal::Sealer;
        let mut keys = Vec::new();
        for (i, name) in raw.previous_journal_key_envs.iter().enumerate() {
            let path = format!("store.previous_journal_key_envs[{i}]");
            match self.env.var(name).map(|t| Sealer::from_text(&t)) {
                Some(Ok(key)) => keys.push(key),
                Some(Err(e)) => self.issues.push(issue(&path, e.to_string())),
                None => self.issues.push(issue(
                    &path,
                    format!("environment variable `{name}` is not set"),
                )),
            }
        }
        for (i, file) in raw.previous_journal_key_files.iter().enumerate() {
            let path = format!("store.previous_journal_key_files[{i}]");
            let file = self.base_dir.join(file);
            match std::fs::read_to_string(&file).map(|t| Sealer::from_text(&t)) {
                Ok(Ok(key)) => keys.push(key),
                Ok(Err(e)) => self.issues.push(issue(&path, e.to_string())),
                Err(e) => self
                    .issues
                    .push(issue(&path, format!("cannot read {}: {e}", file.display()))),
            }
        }
        keys
    }
}

/// Whether `url` is a `redis://` or `rediss://` URL the Redis client accepts.
#[cfg(feature = "redis")]
fn redis_url_parses(url: &str) -> bool {
    redis::Client::open(url).is_ok()
}

/// Without the `redis` feature the backend itself is refused; the URL is not looked at.
#[cfg(not(feature = "redis"))]
fn redis_url_parses(_: &str) -> bool {
    true
}
