//! Tests of the `[usage]` table.

use super::*;

const EXAMPLE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/config/koogate.example.toml"
));

const USAGE_KEYS: &[&str] = &[
    "listen",
    "token_env",
    "token_file",
    "access_key",
    "data_dir",
    "max_body_bytes",
    "max_records_per_request",
    "max_queued_records",
    "batch_max_records",
    "batch_linger_ms",
    "retry_initial_ms",
    "retry_max_ms",
    "retention_days",
];

fn env(name: &str) -> Option<String> {
    match name {
        "KOOGATE_ACCESS_KEY" => Some("example-key".to_owned()),
        "KOOGATE_JOURNAL_KEY" => Some("11".repeat(32)),
        "KOOGATE_IAM_AK" => Some("AK-EXAMPLE".to_owned()),
        "KOOGATE_IAM_SK" => Some("SK-SECRET-EXAMPLE".to_owned()),
        "KOOGATE_USAGE_TOKEN" => Some("usage-token-0123456789".to_owned()),
        _ => None,
    }
}

/// The example with `[koogallery_api]` (site and credentials) and `[usage]` with the given keys uncommented.
fn example_with(usage_keys: &[&str]) -> String {
    let mut table = "";
    let api_keys = ["site", "ak_env", "sk_env"];
    EXAMPLE
        .lines()
        .map(|line| {
            if let Some(header) = line.strip_prefix("# [") {
                table = if header.starts_with("koogallery_api]") {
                    "api"
                } else if header.starts_with("usage]") {
                    "usage"
                } else {
                    ""
                };
                if !table.is_empty() {
                    return line.trim_start_matches("# ").to_owned();
                }
            }
            let key = line
                .trim_start_matches("# ")
                .split(" =")
                .next()
                .unwrap_or("");
            let wanted = match table {
                "api" => api_keys.contains(&key),
                "usage" => usage_keys.contains(&key),
                _ => false,
            };
            if wanted && line.starts_with("# ") {
                line.trim_start_matches("# ").to_owned()
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn usage(text: &str) -> Result<UsageConfig, ConfigErrors> {
    Config::from_toml(text, Path::new("/etc/koogate"), &env).map(|c| c.usage.unwrap())
}

fn paths(text: &str) -> Vec<String> {
    Config::from_toml(text, Path::new("/etc/koogate"), &env)
        .unwrap_err()
        .0
        .into_iter()
        .map(|i| i.path)
        .collect()
}

#[test]
fn the_example_documents_every_usage_key() {
    let in_table = EXAMPLE
        .split("# [usage]")
        .nth(1)
        .expect("[usage] is documented");
    for key in USAGE_KEYS {
        assert!(
            in_table
                .lines()
                .any(|l| l.starts_with(&format!("# {key} ="))),
            "usage.{key} is not documented in config/koogate.example.toml"
        );
    }
}

#[test]
fn the_example_table_parses_with_the_documented_defaults() {
    let config = usage(&example_with(&[])).unwrap();
    assert_eq!(config.listen, "127.0.0.1:9902".parse().unwrap());
    assert!(config.token.is_none() && config.access_key.is_none());
    // The example's store.data_dir.
    assert_eq!(config.data_dir, Path::new("/var/lib/koogate"));
    assert_eq!(config.max_body_bytes, 1024 * 1024);
    assert_eq!(config.max_records_per_request, 1000);
    assert_eq!(config.max_queued_records, 1_000_000);
    assert_eq!(config.batch_max_records, 1000);
    assert_eq!(config.batch_linger, Duration::from_millis(200));
    assert_eq!(config.retry_initial, Duration::from_secs(1));
    assert_eq!(config.retry_max, Duration::from_secs(300));
    assert_eq!(config.retention, Duration::from_secs(30 * 86_400));
}

#[test]
fn the_example_values_parse() {
    let keys: Vec<&str> = USAGE_KEYS
        .iter()
        .copied()
        .filter(|k| *k != "token_file")
        .collect();
    let config = usage(&example_with(&keys)).unwrap();
    assert_eq!(config.token.unwrap().expose(), "usage-token-0123456789");
    assert_eq!(config.access_key.as_deref(), Some("primary"));
    assert_eq!(config.data_dir, Path::new("/var/lib/koogate/usage"));
}

#[test]
fn a_listener_off_loopback_needs_a_token() {
    let text = example_with(&[]).replace("[usage]", "[usage]\nlisten = \"0.0.0.0:9902\"");
    assert_eq!(paths(&text), ["usage.token_env"]);
    let text = text.replace("[usage]", "[usage]\ntoken_env = \"KOOGATE_USAGE_TOKEN\"");
    assert!(usage(&text).unwrap().token.is_some());
}

#[test]
fn every_usage_error_is_reported_with_its_key_path() {
    let text = example_with(&[]).replace(
        "[usage]",
        "[usage]\nlisten = \"nowhere\"\ntoken_env = \"UNSET\"\naccess_key = \"nope\"\nbatch_max_records = 1001\n\
         retry_initial_ms = 5000\nretry_max_ms = 1000\nretention_days = 21",
    );
    let found = paths(&text);
    for path in [
        "usage.listen",
        "usage.token_env",
        "usage.access_key",
        "usage.batch_max_records",
        "usage.retry_max_ms",
        "usage.retention_days",
    ] {
        assert!(
            found.iter().any(|p| p == path),
            "{path} missing from {found:?}"
        );
    }
}

#[test]
fn usage_without_the_openapi_section_is_refused() {
    let text = example_with(&[]).replace("\n[koogallery_api]", "\n# [koogallery_api]");
    let text = text
        .replace("\nsite = ", "\n# site = ")
        .replace("\nak_env", "\n# ak_env")
        .replace("\nsk_env", "\n# sk_env");
    assert_eq!(paths(&text), ["usage"]);
}

#[test]
fn the_usage_listener_may_not_share_a_port_with_another_listener() {
    let text = example_with(&["listen", "token_env"])
        .replace("listen = \"127.0.0.1:9902\"", "listen = \"127.0.0.1:9901\"");
    let errors = usage(&text).unwrap_err();
    assert_eq!(errors.0.len(), 1, "{errors}");
    assert_eq!(errors.0[0].path, "usage.listen");
    assert!(errors.0[0].message.contains("admin.listen"), "{errors}");
}
