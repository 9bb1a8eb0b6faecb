//! Validation of the raw TOML structs into a [`Config`], collecting every problem with its key path.

use super::*;

pub(super) fn issue(path: impl Into<String>, message: impl Into<String>) -> ConfigIssue {
    ConfigIssue {
        path: path.into(),
        message: message.into(),
        location: None,
    }
}

pub(super) struct Validator<'a> {
    pub(super) issues: Vec<ConfigIssue>,
    pub(super) warnings: Vec<ConfigIssue>,
    pub(super) base_dir: &'a Path,
    pub(super) env: &'a dyn Env,
}

impl Validator<'_> {
    pub(super) fn validate(mut self, raw: RawConfig) -> Result<Config, ConfigErrors> {
        let s = &raw.server;
        let server = ServerConfig {
            listen: self.addr("server.listen", &s.listen),
            certificates: self.certificates(&raw),
            http2: s.http2,
            handshake_timeout: self.duration(
                "server.handshake_timeout_ms",
                s.handshake_timeout_ms,
                100,
                60_000,
            ),
            header_read_timeout: self.duration(
                "server.header_read_timeout_ms",
                s.header_read_timeout_ms,
                100,
                60_000,
            ),
            body_read_timeout: self.duration(
                "server.body_read_timeout_ms",
                s.body_read_timeout_ms,
                100,
                60_000,
            ),
            max_connections: self.count("server.max_connections", s.max_connections, 1, 1_000_000),
            max_body_bytes: self.count(
                "server.max_body_bytes",
                s.max_body_bytes,
                1_024,
                16 * 1024 * 1024,
            ),
            shutdown_grace: self.duration(
                "server.shutdown_grace_ms",
                s.shutdown_grace_ms,
                0,
                600_000,
            ),
            drain_delay: self.duration("server.drain_delay_ms", s.drain_delay_ms, 0, 600_000),
        };
        let plain_http = raw
            .plain_http
            .as_ref()
            .map(|p| self.addr("plain_http.listen", &p.listen));
        let admin_listen = self.addr("admin.listen", &raw.admin.listen);
        let console = self.console_access(&raw.admin, admin_listen);
        let verify = VerifyConfig {
            timestamp_window: self.duration(
                "verify.timestamp_window_ms",
                raw.verify.timestamp_window_ms,
                1_000,
                3_600_000,
            ),
            v1_enabled: raw.v1.enabled,
            v1_timestamp_window: self.duration(
                "v1.timestamp_window_ms",
                raw.v1.timestamp_window_ms,
                1_000,
                7 * 86_400_000,
            ),
            v1_post: raw.v1.post,
            replay_cache_max_entries: self.count(
                "verify.replay_cache_max_entries",
                raw.verify.replay_cache_max_entries,
                1,
                100_000_000,
            ),
            v1_replay_cache_max_entries: self.count(
                "v1.replay_cache_max_entries",
                raw.v1.replay_cache_max_entries,
                1,
                100_000_000,
            ),
        };
        if raw.v1.post && !raw.v1.enabled {
            self.issues.push(issue(
                "v1.post",
                "the V1 POST variant needs V1: set [v1] enabled = true as well",
            ));
        }
        let keys = self
            .keys(&raw.access_keys)
            .map(|keys| self.unauthenticated_keys(&raw.verify, keys));
        let mut upstream = self.upstream(&raw.upstream);
        // Checked even when [upstream] has errors, so every problem is reported in one run.
        let test_calls = self.test_calls(raw.test_calls.as_ref(), upstream.as_ref());
        if let Some(upstream) = upstream.as_mut() {
            upstream.test_calls = test_calls;
        }
        let koogallery_api = raw.koogallery_api.as_ref().and_then(|api| {
            let deadline = upstream
                .as_ref()
                .map_or(Duration::from_millis(DEFAULT_DEADLINE_MS), |u| u.deadline);
            self.koogallery_api(api, deadline)
        });
        let log = self.log(&raw.log);
        let store = self.store(&raw.store);
        let usage = raw.usage.as_ref().map(|u| self.usage(&raw, u));
        let listeners: Vec<(&str, SocketAddr)> = [
            Some(("server.listen", server.listen)),
            plain_http.map(|a| ("plain_http.listen", a)),
            Some(("admin.listen", admin_listen)),
            usage.as_ref().map(|u| ("usage.listen", u.listen)),
            server
                .certificates
                .acme()
                .and_then(|a| a.http01_listen)
                .map(|a| ("acme.http01_listen", a)),
        ]
        .into_iter()
        .flatten()
        .collect();
        self.listeners_apart(&listeners);
        let reload = ReloadConfig {
            watch_files: raw.reload.watch_files,
            debounce: self.duration("reload.debounce_ms", raw.reload.debounce_ms, 10, 60_000),
            files: server
                .certificates
                .files()
                .into_iter()
                .flat_map(|(cert, key)| [cert.to_path_buf(), key.to_path_buf()])
                .chain(
                    raw.access_keys
                        .iter()
                        .filter_map(|k| k.file.as_ref().map(|f| self.base_dir.join(f))),
                )
                .chain(
                    raw.store
                        .journal_key_file
                        .as_ref()
                        .map(|f| self.base_dir.join(f)),
                )
                .chain(
                    raw.upstream
                        .signature_key_file
                        .iter()
                        .chain(raw.upstream.routes.values().flat_map(|r| {
                            r.client_cert_file.iter().chain(r.client_key_file.iter())
                        }))
                        .map(|f| self.base_dir.join(f)),
                )
                .chain(raw.koogallery_api.iter().flat_map(|api| {
                    [&api.ak_file, &api.sk_file, &api.ca_file]
                        .into_iter()
                        .flatten()
                        .map(|f| self.base_dir.join(f))
                        .collect::<Vec<_>>()
                }))
                .collect(),
        };

        match (self.issues.is_empty(), keys, upstream) {
            (true, Some(keys), Some(upstream)) => Ok(Config {
                server,
                plain_http,
                admin_listen,
                console,
                verify,
                keys,
                upstream,
                log,
                store,
                reload,
                koogallery_api,
                usage,
                warnings: self.warnings,
            }),
            _ => Err(ConfigErrors(self.issues)),
        }
    }

    pub(super) fn addr(&mut self, path: &str, value: &str) -> SocketAddr {
        value.parse().unwrap_or_else(|_| {
            self.issues.push(issue(
                path,
                format!("`{value}` is not an IP address and port such as 0.0.0.0:8443"),
            ));
            SocketAddr::from(([0, 0, 0, 0], 0))
        })
    }

    /// Certificate files or `[acme]`: exactly one of them.
    fn certificates(&mut self, raw: &RawConfig) -> Certificates {
        let s = &raw.server;
        let (cert, key) = (s.cert_chain_file.as_ref(), s.private_key_file.as_ref());
        self.issues.extend(super::acme::certificate_source_issues(
            (cert.is_some(), key.is_some()),
            raw.acme.is_some(),
        ));
        match &raw.acme {
            Some(acme) => Certificates::Acme(self.acme(acme, &raw.store.data_dir)),
            None => Certificates::Files {
                cert_chain_file: self
                    .path("server.cert_chain_file", cert.map_or(Path::new("-"), |p| p)),
                private_key_file: self
                    .path("server.private_key_file", key.map_or(Path::new("-"), |p| p)),
            },
        }
    }

    fn path(&mut self, key: &str, value: &Path) -> PathBuf {
        if value.as_os_str().is_empty() {
            self.issues.push(issue(key, "must name a file"));
        }
        self.base_dir.join(value)
    }

    pub(super) fn duration(&mut self, path: &str, ms: u64, min: u64, max: u64) -> Duration {
        if ms < min || ms > max {
            self.issues
                .push(issue(path, format!("{ms} ms is outside {min}..={max} ms")));
        }
        Duration::from_millis(ms)
    }

    pub(super) fn count(&mut self, path: &str, value: u64, min: u64, max: u64) -> usize {
        if value < min || value > max {
            self.issues
                .push(issue(path, format!("{value} is outside {min}..={max}")));
        }
        usize::try_from(value).unwrap_or(usize::MAX)
    }

    fn upstream(&mut self, raw: &RawUpstream) -> Option<UpstreamConfig> {
        let deadline = self.duration("upstream.deadline_ms", raw.deadline_ms, 100, 4_900);
        let pool_idle_timeout = self.duration(
            "upstream.pool_idle_timeout_ms",
            raw.pool_idle_timeout_ms,
            100,
            600_000,
        );
        let pool_max_idle_per_host = self.count(
            "upstream.pool_max_idle_per_host",
            raw.pool_max_idle_per_host,
            0,
            10_000,
        );
        let connect_timeout = self.duration(
            "upstream.connect_timeout_ms",
            raw.connect_timeout_ms,
            10,
            4_900,
        );
        let max_answer_bytes = self.count(
            "upstream.max_answer_bytes",
            raw.max_answer_bytes,
            1_024,
            64 * 1024 * 1024,
        );

        let mut routes = Vec::new();
        let mut assigned: [Option<usize>; Activity::ALL.len()] = [None; Activity::ALL.len()];
        for (name, route) in &raw.routes {
            let path = format!("upstream.routes.{name}");
            let valid_name = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !valid_name {
                self.issues.push(issue(
                    path.clone(),
                    "route names use only letters, digits, `_` and `-`",
                ));
            }
            let url = self.route_url(&format!("{path}.url"), &route.url);
            if let Some(url) = url.as_ref().filter(|u| u.scheme_str() == Some("http")) {
                self.plain_http_upstream(&path, url, route.allow_plain_http);
            }
            let timeout = match route.timeout_ms {
                Some(ms) => self.duration(&format!("{path}.timeout_ms"), ms, 10, 4_900),
                None => deadline,
            };
            for (i, activity) in route.activities.iter().enumerate() {
                let key = format!("{path}.activities[{i}]");
                match Activity::from_name(activity) {
                    None => self.issues.push(issue(
                        key,
                        format!(
                            "unknown activity `{activity}`; expected one of {}",
                            activity_names()
                        ),
                    )),
                    Some(a) => {
                        let slot = Activity::ALL.iter().position(|x| *x == a).unwrap_or(0);
                        if assigned[slot].is_some() {
                            self.issues.push(issue(
                                key,
                                format!("activity `{activity}` is already routed elsewhere"),
                            ));
                        }
                        assigned[slot] = Some(routes.len());
                    }
                }
            }
            let ca_file = route.ca_file.as_ref().map(|f| self.base_dir.join(f));
            let client_identity = match (&route.client_cert_file, &route.client_key_file) {
                (None, None) => None,
                (Some(cert), Some(key)) => {
                    Some((self.base_dir.join(cert), self.base_dir.join(key)))
                }
                _ => {
                    self.issues.push(issue(
                        path.clone(),
                        "set both `client_cert_file` and `client_key_file`, or neither",
                    ));
                    None
                }
            };
            if let Some(url) = url {
                if client_identity.is_some() && url.scheme_str() != Some("https") {
                    self.issues.push(issue(
                        format!("{path}.client_cert_file"),
                        "a client certificate is only presented to an https:// upstream",
                    ));
                }
                routes.push(RouteConfig {
                    name: name.clone(),
                    url,
                    timeout,
                    ca_file,
                    client_identity,
                });
            }
        }
        if raw.routes.is_empty() {
            self.issues
                .push(issue("upstream.routes", "at least one route is required"));
        }
        let default = routes.iter().position(|r| r.name == raw.default_route);
        if default.is_none() && !raw.routes.is_empty() {
            self.issues.push(issue(
                "upstream.default_route",
                format!("no route named `{}`", raw.default_route),
            ));
        }
        let signature_key = self.upstream_signature_key(raw);
        let default = default?;
        let route_of = assigned.map(|slot| slot.unwrap_or(default));
        Some(UpstreamConfig {
            deadline,
            pool_idle_timeout,
            pool_max_idle_per_host,
            connect_timeout,
            max_answer_bytes,
            routes,
            route_of,
            test_calls: TestCalls::Forward,
            signature_key,
        })
    }

    fn route_url(&mut self, path: &str, value: &str) -> Option<http::Uri> {
        let uri: Option<http::Uri> = value.parse().ok();
        match uri {
            Some(u) if matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some() => {
                Some(u)
            }
            _ => {
                self.issues.push(issue(
                    path,
                    format!("`{value}` is not an absolute http:// or https:// URL"),
                ));
                None
            }
        }
    }

    /// Decrypted buyer data (phone, email) must not cross a network in clear text: `http://` only to this host,
    /// unless the route opts in (a private network path, a TLS-terminating mesh), and then with a warning.
    fn plain_http_upstream(&mut self, path: &str, url: &http::Uri, allowed: bool) {
        let host = url.host().unwrap_or_default();
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let loopback = bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
            || bare.eq_ignore_ascii_case("localhost")
            || bare.to_ascii_lowercase().ends_with(".localhost");
        if loopback {
            return;
        }
        let clear = format!(
            "`{url}` is plain HTTP to another host: the decrypted buyer data (phone, email) would cross the \
             network in clear text"
        );
        if allowed {
            self.warnings.push(issue(
                format!("{path}.url"),
                format!("{clear} (allowed by {path}.allow_plain_http)"),
            ));
        } else {
            self.issues.push(issue(
                format!("{path}.url"),
                format!(
                    "{clear}; use https:// (with ca_file for a private CA), or set \
                     {path}.allow_plain_http = true if the path to that host is private"
                ),
            ));
        }
    }

    fn log(&mut self, raw: &RawLog) -> LogConfig {
        let format = match raw.format.as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                self.issues.push(issue(
                    "log.format",
                    format!("`{other}` is not `text` or `json`"),
                ));
                LogFormat::Text
            }
        };
        LogConfig {
            format,
            level: raw.level.clone().unwrap_or_else(|| "info".to_owned()),
        }
    }
}

fn activity_names() -> String {
    Activity::ALL
        .iter()
        .map(|a| a.name())
        .collect::<Vec<_>>()
        .join(", ")
}
