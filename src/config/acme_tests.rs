//! Tests of the `[acme]` section: the example's documented defaults, exclusivity with certificate files, and
//! every error with its key path.

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
    let config = Config::from_toml(&example_with_acme(), Path::new("/etc/koogate"), &env).unwrap();
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
