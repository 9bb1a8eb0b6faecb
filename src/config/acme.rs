//! The optional `[acme]` section: certificates issued and renewed automatically by an ACME CA (RFC 8555).

use super::validate::{issue, Validator};
use super::ConfigIssue;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Let's Encrypt's production directory; its staging directory is [`LETS_ENCRYPT_STAGING`].
pub const DEFAULT_ACME_DIRECTORY: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// For trying a setup without touching production rate limits (its certificates are not publicly trusted).
pub const LETS_ENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";
/// Answered on the HTTPS listener itself: nothing else has to be reachable.
pub const DEFAULT_ACME_CHALLENGES: &[&str] = &["tls-alpn-01"];
/// A failed attempt is retried after a minute, then twice as long each time...
pub const DEFAULT_ACME_RETRY_INITIAL_MS: u64 = 60_000;
/// ...up to an hour: Let's Encrypt allows 5 failed validations per hour and name, so this never hits that limit
/// for long, and a 90-day certificate renewed at day 60 leaves 30 days of hourly retries.
pub const DEFAULT_ACME_RETRY_MAX_MS: u64 = 3_600_000;
/// Below the state directory, under `store.data_dir`.
pub const DEFAULT_ACME_SUBDIR: &str = "acme";
/// Let's Encrypt allows 100 names per certificate.
const MAX_DOMAINS: usize = 100;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAcme {
    #[serde(default)]
    pub domains: Vec<String>,
    pub contact_email: Option<String>,
    #[serde(default = "d_directory")]
    pub directory_url: String,
    /// PEM bundle trusted (instead of the public roots) for the directory's HTTPS, e.g. a test CA.
    pub directory_ca_file: Option<PathBuf>,
    #[serde(default = "d_challenges")]
    pub challenges: Vec<String>,
    pub http01_listen: Option<String>,
    pub state_dir: Option<PathBuf>,
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
}

fn d_directory() -> String {
    DEFAULT_ACME_DIRECTORY.to_owned()
}
fn d_challenges() -> Vec<String> {
    DEFAULT_ACME_CHALLENGES
        .iter()
        .map(|c| (*c).to_owned())
        .collect()
}
fn d_retry_initial() -> u64 {
    DEFAULT_ACME_RETRY_INITIAL_MS
}
fn d_retry_max() -> u64 {
    DEFAULT_ACME_RETRY_MAX_MS
}

/// Validated `[acme]` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeConfig {
    /// Lower-case DNS names, the first is the certificate's primary name.
    pub domains: Vec<String>,
    /// `mailto:` contact for the account, if configured.
    pub contact: Option<String>,
    pub directory_url: String,
    pub directory_ca_file: Option<PathBuf>,
    /// Answer `tls-alpn-01` on the HTTPS listener.
    pub tls_alpn_01: bool,
    /// Answer `http-01` on this plain-HTTP listener (port 80 in production).
    pub http01_listen: Option<SocketAddr>,
    /// Account key and certificate (0700 directory, 0600 files).
    pub state_dir: PathBuf,
    pub retry_initial: Duration,
    pub retry_max: Duration,
}

impl Validator<'_> {
    /// `data_dir` is `store.data_dir` (the default parent of `acme.state_dir`).
    pub(super) fn acme(&mut self, raw: &RawAcme, data_dir: &Path) -> AcmeConfig {
        let mut domains = Vec::new();
        if raw.domains.is_empty() {
            self.issues
                .push(issue("acme.domains", "name at least one domain"));
        }
        if raw.domains.len() > MAX_DOMAINS {
            self.issues.push(issue(
                "acme.domains",
                format!("{} names; at most {MAX_DOMAINS}", raw.domains.len()),
            ));
        }
        for (i, name) in raw.domains.iter().enumerate() {
            match domain(name) {
                Ok(name) if domains.contains(&name) => self.issues.push(issue(
                    format!("acme.domains[{i}]"),
                    format!("`{name}` is listed twice"),
                )),
                Ok(name) => domains.push(name),
                Err(problem) => self
                    .issues
                    .push(issue(format!("acme.domains[{i}]"), problem)),
            }
        }
        let contact = raw.contact_email.as_ref().and_then(|email| {
            let plausible = email.split_once('@').is_some_and(|(user, host)| {
                !user.is_empty() && host.contains('.') && !email.contains([' ', ',', ':'])
            });
            if !plausible {
                self.issues.push(issue(
                    "acme.contact_email",
                    format!("`{email}` is not an e-mail address"),
                ));
            }
            plausible.then(|| format!("mailto:{email}"))
        });
        if !raw.directory_url.starts_with("https://")
            || raw.directory_url.parse::<http::Uri>().is_err()
        {
            self.issues.push(issue(
                "acme.directory_url",
                format!("`{}` is not an https:// URL", raw.directory_url),
            ));
        }
        let (mut tls_alpn_01, mut http_01) = (false, false);
        if raw.challenges.is_empty() {
            self.issues.push(issue(
                "acme.challenges",
                "name `tls-alpn-01`, `http-01` or both",
            ));
        }
        for (i, challenge) in raw.challenges.iter().enumerate() {
            match challenge.as_str() {
                "tls-alpn-01" => tls_alpn_01 = true,
                "http-01" => http_01 = true,
                other => self.issues.push(issue(
                    format!("acme.challenges[{i}]"),
                    format!(
                        "`{other}` is not `tls-alpn-01` or `http-01` (dns-01 is not supported)"
                    ),
                )),
            }
        }
        let http01_listen = match (&raw.http01_listen, http_01) {
            (Some(listen), _) => {
                let addr = self.socket_addr("acme.http01_listen", listen);
                if !http_01 {
                    self.issues.push(issue(
                        "acme.http01_listen",
                        "set only when acme.challenges includes `http-01`",
                    ));
                }
                Some(addr)
            }
            (None, true) => {
                self.issues.push(issue(
                    "acme.http01_listen",
                    "required for the `http-01` challenge (the CA connects to port 80, e.g. \"0.0.0.0:80\")",
                ));
                None
            }
            (None, false) => None,
        };
        let retry_initial = self.duration(
            "acme.retry_initial_ms",
            raw.retry_initial_ms,
            100,
            86_400_000,
        );
        let retry_max = self.duration("acme.retry_max_ms", raw.retry_max_ms, 100, 86_400_000);
        if raw.retry_max_ms < raw.retry_initial_ms {
            self.issues.push(issue(
                "acme.retry_max_ms",
                "must not be below acme.retry_initial_ms",
            ));
        }
        let state_dir = match &raw.state_dir {
            Some(dir) => self.base_dir.join(dir),
            None => self.base_dir.join(data_dir).join(DEFAULT_ACME_SUBDIR),
        };
        AcmeConfig {
            domains,
            contact,
            directory_url: raw.directory_url.clone(),
            directory_ca_file: raw
                .directory_ca_file
                .as_ref()
                .map(|f| self.base_dir.join(f)),
            tls_alpn_01,
            http01_listen,
            state_dir,
            retry_initial,
            retry_max,
        }
    }

    fn socket_addr(&mut self, path: &str, value: &str) -> SocketAddr {
        value.parse().unwrap_or_else(|_| {
            self.issues.push(issue(
                path,
                format!("`{value}` is not an IP address and port such as 0.0.0.0:80"),
            ));
            SocketAddr::from(([0, 0, 0, 0], 0))
        })
    }
}

/// A DNS name a CA can validate with `tls-alpn-01` or `http-01`: no wildcard (that needs dns-01), no IP address.
fn domain(name: &str) -> Result<String, String> {
    let lower = name.trim_end_matches('.').to_ascii_lowercase();
    if lower.starts_with("*.") {
        return Err(format!(
            "`{name}`: wildcard names need the dns-01 challenge, which koogate does not answer"
        ));
    }
    if lower.parse::<std::net::IpAddr>().is_ok() {
        return Err(format!("`{name}` is an IP address; name a DNS name"));
    }
    let valid = !lower.is_empty()
        && lower.len() <= 253
        && lower.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if valid {
        Ok(lower)
    } else {
        Err(format!(
            "`{name}` is not a DNS name (use the xn-- form for IDNs)"
        ))
    }
}

/// `[acme]` and `server.cert_chain_file`/`server.private_key_file` are exclusive; exactly one must be set.
pub(super) fn certificate_source_issues(
    files: (bool, bool),
    acme: bool,
) -> impl Iterator<Item = ConfigIssue> {
    let (cert, key) = files;
    let mut issues = Vec::new();
    if acme {
        if cert {
            issues.push(issue(
                "server.cert_chain_file",
                "remove it: [acme] provides the certificate (the two are exclusive)",
            ));
        }
        if key {
            issues.push(issue(
                "server.private_key_file",
                "remove it: [acme] provides the key (the two are exclusive)",
            ));
        }
    } else {
        if !cert {
            issues.push(issue(
                "server.cert_chain_file",
                "required unless an [acme] section issues the certificate",
            ));
        }
        if !key {
            issues.push(issue(
                "server.private_key_file",
                "required unless an [acme] section issues the certificate",
            ));
        }
    }
    issues.into_iter()
}

#[cfg(test)]
#[path = "acme_tests.rs"]
mod tests;
