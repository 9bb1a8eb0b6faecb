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
    #[serde(default = "d_retry_initial")]
    pub retry_initial_ms: u64,
    #[serde(default = "d_retry_max")]
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
mod tests {
    use super::*;
    use crate::config::Config;

    const EXAMPLE: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/koogate.example.toml"
    ));

    fn env(name: &str) -> Option<String> {
        match name {
            "KOOGATE_ACCESS_KEY" => Some("example-key".to_owned()),
            "KOOGATE_JOURNAL_KEY" => Some("11".repeat(32)),
            _ => None,
        }
    }

    /// The example with its [acme] block uncommented (but `http01_listen`, which goes with `http-01` only) and the
    /// certificate files removed.
    fn example_with_acme() -> String {
        let mut in_acme = false;
        EXAMPLE
            .lines()
            .filter(|l| !l.starts_with("cert_chain_file") && !l.starts_with("private_key_file"))
            .map(|line| {
                if line == "# [acme]" {
                    in_acme = true;
                } else if line.starts_with('[') {
                    in_acme = false;
                }
                match line.strip_prefix("# ") {
                    Some(rest)
                        if in_acme
                            && !rest.starts_with("http01_listen")
                            && (rest.starts_with('[') || rest.contains(" = ")) =>
                    {
                        rest.to_owned()
                    }
                    _ => line.to_owned(),
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn errors(text: &str) -> Vec<String> {
        Config::from_toml(text, Path::new("/etc/koogate"), &env)
            .unwrap_err()
            .0
            .into_iter()
            .map(|i| format!("{}: {}", i.path, i.message))
            .collect()
    }

    #[test]
    fn the_example_acme_section_parses_with_the_documented_defaults() {
        let config =
            Config::from_toml(&example_with_acme(), Path::new("/etc/koogate"), &env).unwrap();
        let acme = config.server.certificates.acme().unwrap();
        assert_eq!(acme.domains, ["shop.example.com"]);
        assert_eq!(acme.contact.as_deref(), Some("mailto:ops@example.com"));
        assert_eq!(acme.directory_url, DEFAULT_ACME_DIRECTORY);
        assert!(acme.tls_alpn_01);
        assert_eq!(
            acme.retry_initial,
            Duration::from_millis(DEFAULT_ACME_RETRY_INITIAL_MS)
        );
        assert_eq!(
            acme.retry_max,
            Duration::from_millis(DEFAULT_ACME_RETRY_MAX_MS)
        );
        assert!(config.server.certificates.files().is_none());
        assert!(config
            .reload
            .files
            .iter()
            .all(|f| !f.ends_with("fullchain.pem")));
    }

    #[test]
    fn state_dir_defaults_below_the_data_dir() {
        let text = example_with_acme().replace("state_dir = \"/var/lib/koogate/acme\"", "");
        let config = Config::from_toml(&text, Path::new("/etc/koogate"), &env).unwrap();
        let acme = config.server.certificates.acme().unwrap();
        assert_eq!(acme.state_dir, Path::new("/var/lib/koogate/acme"));
        assert!(acme.http01_listen.is_none());
    }

    #[test]
    fn acme_and_certificate_files_are_exclusive() {
        let both = EXAMPLE.replace("# [acme]\n", "[acme]\n").replace(
            "# domains = [\"shop.example.com\"]",
            "domains = [\"shop.example.com\"]",
        );
        let found = errors(&both);
        assert!(
            found
                .iter()
                .any(|e| e.starts_with("server.cert_chain_file: remove it")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|e| e.starts_with("server.private_key_file: remove it")),
            "{found:?}"
        );
        let neither = EXAMPLE
            .lines()
            .filter(|l| !l.starts_with("cert_chain_file"))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(errors(&neither)
            .iter()
            .any(|e| e.starts_with("server.cert_chain_file: required unless an [acme]")));
    }

    #[test]
    fn every_acme_error_is_reported_with_its_key_path() {
        let text = example_with_acme()
            .replace(
                "domains = [\"shop.example.com\"]",
                "domains = [\"ok.example\", \"*.example\", \"ok.example\"]",
            )
            .replace(
                "challenges = [\"tls-alpn-01\"]",
                "challenges = [\"http-01\", \"dns-01\"]",
            )
            .replace(
                "contact_email = \"ops@example.com\"",
                "contact_email = \"ops\"",
            )
            .replace(
                "directory_url = \"https://acme-v02",
                "directory_url = \"http://acme-v02",
            )
            .replace("retry_max_ms = 3600000", "retry_max_ms = 1000");
        let found = errors(&text);
        for path in [
            "acme.domains[1]",
            "acme.domains[2]",
            "acme.challenges[1]",
            "acme.http01_listen",
            "acme.contact_email",
            "acme.directory_url",
            "acme.retry_max_ms",
        ] {
            assert!(
                found.iter().any(|e| e.starts_with(&format!("{path}: "))),
                "{path} missing in {found:?}"
            );
        }
    }

    #[test]
    fn domains_are_lower_cased_and_wildcards_refused() {
        assert_eq!(domain("Shop.Example.COM.").unwrap(), "shop.example.com");
        assert!(domain("*.example.com").unwrap_err().contains("dns-01"));
        assert!(domain("192.0.2.1").unwrap_err().contains("IP address"));
        assert!(domain("bad_name.example").is_err());
        assert!(domain("").is_err());
    }
}
