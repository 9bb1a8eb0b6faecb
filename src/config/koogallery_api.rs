//! The optional `[koogallery_api]` table: KooGallery's seller-side OpenAPI (order lookup, usage push) and its
//! validation into [`KooGalleryApiConfig`].

use super::validate::{issue, Validator};
use super::*;
use crate::secret::IamCredentials;
use serde::Deserialize;

/// Under half of KooGallery's 5 s budget: the app still has time to provision after the lookup.
pub const DEFAULT_ORDER_LOOKUP_BUDGET_MS: u64 = 2_000;
/// One OpenAPI call outside a KooGallery request (usage push, probe, `koogate order`).
pub const DEFAULT_API_TIMEOUT_MS: u64 = 10_000;
pub const DEFAULT_API_CONNECT_TIMEOUT_MS: u64 = 1_000;
/// Orders in flight at once are few; 10,000 covers every retry of a busy day.
pub const DEFAULT_ORDER_CACHE_MAX_ENTRIES: u64 = 10_000;
/// KooGallery retries a call every ~3 minutes for 3 hours; four hours covers the whole retry window.
pub const DEFAULT_ORDER_CACHE_TTL_SECONDS: u64 = 4 * 3600;
/// The activities that carry only `orderId`/`orderLineId` in V2 and so need the lookup to provision.
pub const DEFAULT_ENRICH: [&str; 3] = ["newInstance", "upgradeInstance", "refreshInstance"];
/// The activities whose V2 calls carry an order to look up.
pub const ENRICHABLE: [Activity; 4] = [
    Activity::NewInstance,
    Activity::UpgradeInstance,
    Activity::RefreshInstance,
    Activity::OrderNotify,
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKooGalleryApi {
    pub site: Option<String>,
    pub base_url: Option<String>,
    pub ak_env: Option<String>,
    pub ak_file: Option<PathBuf>,
    pub sk_env: Option<String>,
    pub sk_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    #[serde(
        default = "d_connect",
        deserialize_with = "crate::config::duration::ms"
    )]
    pub connect_timeout_ms: u64,
    #[serde(
        default = "d_timeout",
        deserialize_with = "crate::config::duration::ms"
    )]
    pub timeout_ms: u64,
    #[serde(default = "d_budget", deserialize_with = "crate::config::duration::ms")]
    pub order_lookup_budget_ms: u64,
    #[serde(default = "d_enrich")]
    pub enrich: Vec<String>,
    #[serde(default = "d_on_failure")]
    pub on_failure: String,
    #[serde(default = "d_cache_entries")]
    pub order_cache_max_entries: u64,
    #[serde(
        default = "d_cache_ttl",
        deserialize_with = "crate::config::duration::seconds"
    )]
    pub order_cache_ttl_seconds: u64,
}

/// Which KooGallery site the seller's products are on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Site {
    Cn,
    Intl,
    Eu,
}

impl Site {
    /// The documented OpenAPI host (`koogallery-openapi.md` section 1).
    pub const fn base_url(self) -> &'static str {
        match self {
            Site::Cn => "https://mkt.myhuaweicloud.com",
            Site::Intl => "https://mkt-intl.myhuaweicloud.com",
            Site::Eu => "https://mkt.myhuaweicloud.eu",
        }
    }
}

/// What a failed order lookup does to the KooGallery call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// Answer a signed `000005` so KooGallery retries later; nothing is forwarded.
    Retry,
    /// Forward without `order`, with `orderLookup: {"status":"failed","reason":…}`.
    Forward,
}

/// The validated `[koogallery_api]` table.
#[derive(Debug, Clone)]
pub struct KooGalleryApiConfig {
    pub site: Option<Site>,
    /// `https://host[:port][/prefix]`, from `base_url` or the site.
    pub base_url: http::Uri,
    pub credentials: IamCredentials,
    /// Extra trusted CA certificates (a private mock or egress proxy); the web PKI roots are always trusted.
    pub ca_file: Option<PathBuf>,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    /// The whole order lookup inside a KooGallery call, below `upstream.deadline_ms`.
    pub order_lookup_budget: Duration,
    /// V2 activities enriched with the order, in [`ENRICHABLE`] order.
    pub enrich: Vec<Activity>,
    pub on_failure: OnFailure,
    pub order_cache_max_entries: usize,
    pub order_cache_ttl: Duration,
}

impl KooGalleryApiConfig {
    /// Whether V2 calls of `activity` get the order.
    pub fn enriches(&self, activity: Activity) -> bool {
        self.enrich.contains(&activity)
    }
}

impl Validator<'_> {
    pub(super) fn koogallery_api(
        &mut self,
        raw: &RawKooGalleryApi,
        upstream_deadline: Duration,
    ) -> Option<KooGalleryApiConfig> {
        const P: &str = "koogallery_api";
        let site = match raw.site.as_deref() {
            None => None,
            Some("cn") => Some(Site::Cn),
            Some("intl") => Some(Site::Intl),
            Some("eu") => Some(Site::Eu),
            Some(other) => {
                self.issues.push(issue(
                    format!("{P}.site"),
                    format!("`{other}` is not `cn`, `intl` or `eu`"),
                ));
                None
            }
        };
        let base_url = match (&raw.base_url, site, &raw.site) {
            (Some(url), _, _) => self.https_url(&format!("{P}.base_url"), url),
            (None, Some(site), _) => site.base_url().parse().ok(),
            (None, None, None) => {
                self.issues.push(issue(
                    format!("{P}.site"),
                    "set `site` (cn, intl, eu) or `base_url`",
                ));
                None
            }
            (None, None, Some(_)) => None,
        };
        let ak = self.secret(&format!("{P}.ak"), &raw.ak_env, &raw.ak_file);
        let sk = self.secret(&format!("{P}.sk"), &raw.sk_env, &raw.sk_file);
        let connect_timeout = self.duration(
            &format!("{P}.connect_timeout_ms"),
            raw.connect_timeout_ms,
            10,
            60_000,
        );
        let timeout = self.duration(&format!("{P}.timeout_ms"), raw.timeout_ms, 100, 600_000);
        let budget_max = (upstream_deadline.as_millis() as u64).saturating_sub(100);
        let order_lookup_budget = Duration::from_millis(raw.order_lookup_budget_ms);
        if raw.order_lookup_budget_ms < 100 || raw.order_lookup_budget_ms > budget_max {
            self.issues.push(issue(
                format!("{P}.order_lookup_budget_ms"),
                format!(
                    "{} ms is outside 100..={budget_max} ms (it must leave at least 100 ms of upstream.deadline_ms to the app)",
                    raw.order_lookup_budget_ms
                ),
            ));
        }
        let mut enrich = Vec::new();
        for (i, name) in raw.enrich.iter().enumerate() {
            match Activity::from_name(name).filter(|a| ENRICHABLE.contains(a)) {
                Some(a) if !enrich.contains(&a) => enrich.push(a),
                Some(_) => self.issues.push(issue(
                    format!("{P}.enrich[{i}]"),
                    format!("`{name}` is listed twice"),
                )),
                None => self.issues.push(issue(
                    format!("{P}.enrich[{i}]"),
                    format!(
                        "`{name}` is not one of newInstance, upgradeInstance, refreshInstance, orderNotify"
                    ),
                )),
            }
        }
        enrich.sort_by_key(|a| ENRICHABLE.iter().position(|e| e == a));
        let on_failure = match raw.on_failure.as_str() {
            "retry" => OnFailure::Retry,
            "forward" => OnFailure::Forward,
            other => {
                self.issues.push(issue(
                    format!("{P}.on_failure"),
                    format!("`{other}` is not `retry` or `forward`"),
                ));
                OnFailure::Retry
            }
        };
        let order_cache_max_entries = self.bounded(
            &format!("{P}.order_cache_max_entries"),
            raw.order_cache_max_entries,
            1,
            10_000_000,
        );
        let ttl = raw.order_cache_ttl_seconds;
        if ttl > 30 * 86_400 {
            self.issues.push(issue(
                format!("{P}.order_cache_ttl_seconds"),
                format!("{ttl} s is outside 0..=2592000 s"),
            ));
        }
        Some(KooGalleryApiConfig {
            site,
            base_url: base_url?,
            credentials: IamCredentials::new(ak?, sk?),
            ca_file: raw.ca_file.as_ref().map(|f| self.base_dir.join(f)),
            connect_timeout,
            timeout,
            order_lookup_budget,
            enrich,
            on_failure,
            order_cache_max_entries,
            order_cache_ttl: Duration::from_secs(ttl),
        })
    }

    fn bounded(&mut self, path: &str, value: u64, min: u64, max: u64) -> usize {
        if value < min || value > max {
            self.issues
                .push(issue(path, format!("{value} is outside {min}..={max}")));
        }
        usize::try_from(value).unwrap_or(usize::MAX)
    }

    fn https_url(&mut self, path: &str, value: &str) -> Option<http::Uri> {
        match value.trim_end_matches('/').parse::<http::Uri>() {
            Ok(u)
                if u.scheme_str() == Some("https") && u.host().is_some() && u.query().is_none() =>
            {
                Some(u)
            }
            _ => {
                self.issues.push(issue(
                    path,
                    format!("`{value}` is not an absolute https:// URL without a query (the API requires TLS)"),
                ));
                None
            }
        }
    }

    /// Exactly one of `<path>_env` or `<path>_file`; a trailing newline in the file is dropped.
    fn secret(
        &mut self,
        path: &str,
        env: &Option<String>,
        file: &Option<PathBuf>,
    ) -> Option<String> {
        let value = match (env, file) {
            (Some(var), None) => self.env.var(var).or_else(|| {
                self.issues.push(issue(
                    format!("{path}_env"),
                    format!("environment variable `{var}` is not set"),
                ));
                None
            }),
            (None, Some(file)) => {
                let file = self.base_dir.join(file);
                match std::fs::read_to_string(&file) {
                    Ok(text) => Some(text.trim_end_matches(['\r', '\n']).to_owned()),
                    Err(e) => {
                        self.issues.push(issue(
                            format!("{path}_file"),
                            format!("cannot read {}: {e}", file.display()),
                        ));
                        None
                    }
                }
            }
            _ => {
                self.issues.push(issue(
                    path,
                    format!(
                        "set exactly one of `{0}_env` or `{0}_file` (never inline)",
                        path.rsplit('.').next().unwrap_or(path)
                    ),
                ));
                None
            }
        };
        match value {
            Some(v) if v.is_empty() => {
                self.issues.push(issue(path, "is empty"));
                None
            }
            other => other,
        }
    }
}

fn d_connect() -> u64 {
    DEFAULT_API_CONNECT_TIMEOUT_MS
}
fn d_timeout() -> u64 {
    DEFAULT_API_TIMEOUT_MS
}
fn d_budget() -> u64 {
    DEFAULT_ORDER_LOOKUP_BUDGET_MS
}
fn d_enrich() -> Vec<String> {
    DEFAULT_ENRICH.iter().map(|s| s.to_string()).collect()
}
fn d_on_failure() -> String {
    "retry".to_owned()
}
fn d_cache_entries() -> u64 {
    DEFAULT_ORDER_CACHE_MAX_ENTRIES
}
fn d_cache_ttl() -> u64 {
    DEFAULT_ORDER_CACHE_TTL_SECONDS
}

#[cfg(test)]
#[path = "koogallery_api_tests.rs"]
mod tests;
