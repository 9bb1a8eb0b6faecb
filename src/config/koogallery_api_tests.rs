//! Tests of the `[koogallery_api]` table.

use super::*;

const EXAMPLE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/config/koogate.example.toml"
));

fn env(name: &str) -> Option<String> {
    match name {
        "KOOGATE_ACCESS_KEY" => Some("example-key".to_owned()),
        "KOOGATE_JOURNAL_KEY" => Some("11".repeat(32)),
        "KOOGATE_IAM_AK" => Some("AK-EXAMPLE".to_owned()),
        "KOOGATE_IAM_SK" => Some("SK-SECRET-EXAMPLE".to_owned()),
        _ => None,
    }
}

/// The example with its `[koogallery_api]` table and the given keys uncommented.
fn example_with(keys: &[&str]) -> String {
    let mut in_table = false;
    EXAMPLE
        .lines()
        .map(|line| {
            if line == "# [koogallery_api]" {
                in_table = true;
                return "[koogallery_api]".to_owned();
            }
            let key = line
                .trim_start_matches("# ")
                .split(" =")
                .next()
                .unwrap_or("");
            if in_table && line.starts_with("# ") && keys.contains(&key) {
                line.trim_start_matches("# ").to_owned()
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn api(text: &str) -> Result<KooGalleryApiConfig, ConfigErrors> {
    Config::from_toml(text, Path::new("/etc/koogate"), &env).map(|c| c.koogallery_api.unwrap())
}

#[test]
fn the_example_table_parses_with_the_documented_defaults() {
    let config = api(&example_with(&["site", "ak_env", "sk_env"])).unwrap();
    assert_eq!(config.site, Some(Site::Intl));
    assert_eq!(config.base_url, "https://mkt-intl.myhuaweicloud.com");
    assert_eq!(config.credentials.ak(), "AK-EXAMPLE");
    assert_eq!(config.credentials.expose_sk(), b"SK-SECRET-EXAMPLE");
    assert_eq!(
        config.enrich,
        [
            Activity::NewInstance,
            Activity::UpgradeInstance,
            Activity::RefreshInstance
        ]
    );
    assert!(!config.enriches(Activity::OrderNotify));
    assert_eq!(config.on_failure, OnFailure::Retry);
    assert_eq!(
        config.order_lookup_budget,
        Duration::from_millis(DEFAULT_ORDER_LOOKUP_BUDGET_MS)
    );
    assert_eq!(
        config.connect_timeout,
        Duration::from_millis(DEFAULT_API_CONNECT_TIMEOUT_MS)
    );
    assert_eq!(
        config.timeout,
        Duration::from_millis(DEFAULT_API_TIMEOUT_MS)
    );
    assert_eq!(
        config.order_cache_max_entries,
        DEFAULT_ORDER_CACHE_MAX_ENTRIES as usize
    );
    assert_eq!(
        config.order_cache_ttl,
        Duration::from_secs(DEFAULT_ORDER_CACHE_TTL_SECONDS)
    );
    assert!(config.ca_file.is_none());
}

#[test]
fn without_the_table_there_is_no_api_config() {
    let config = Config::from_toml(EXAMPLE, Path::new("/etc/koogate"), &env).unwrap();
    assert!(config.koogallery_api.is_none());
}

#[test]
fn every_site_maps_to_its_documented_host_and_base_url_overrides_it() {
    for (site, host) in [
        ("cn", "https://mkt.myhuaweicloud.com"),
        ("intl", "https://mkt-intl.myhuaweicloud.com"),
        ("eu", "https://mkt.myhuaweicloud.eu"),
    ] {
        let text = example_with(&["ak_env", "sk_env"]).replace(
            "[koogallery_api]",
            &format!("[koogallery_api]\nsite = \"{site}\""),
        );
        assert_eq!(api(&text).unwrap().base_url, host, "{site}");
    }
    let text = example_with(&["site", "base_url", "ak_env", "sk_env"]);
    assert_eq!(api(&text).unwrap().base_url, "https://127.0.0.1:9443");
}

#[test]
fn secrets_come_from_files_without_their_trailing_newline_and_never_print() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ak"), "AK-FROM-FILE\n").unwrap();
    std::fs::write(dir.path().join("sk"), "SK-FROM-FILE\r\n").unwrap();
    let text = example_with(&["site"]).replace(
        "[koogallery_api]",
        "[koogallery_api]\nak_file = \"ak\"\nsk_file = \"sk\"\nenrich = [\"orderNotify\", \"newInstance\"]\non_failure = \"forward\"",
    );
    let config = Config::from_toml(&text, dir.path(), &env).unwrap();
    let api = config.koogallery_api.as_ref().unwrap();
    assert_eq!(api.credentials.ak(), "AK-FROM-FILE");
    assert_eq!(api.credentials.expose_sk(), b"SK-FROM-FILE");
    assert_eq!(api.enrich, [Activity::NewInstance, Activity::OrderNotify]);
    assert_eq!(api.on_failure, OnFailure::Forward);
    assert!(config.reload.files.contains(&dir.path().join("sk")));
    let printed = format!("{config:?}");
    assert!(!printed.contains("SK-FROM-FILE") && !printed.contains("AK-FROM-FILE"));
}

#[test]
fn every_error_in_the_table_is_reported_with_its_key_path() {
    let text = example_with(&[]).replace(
        "[koogallery_api]",
        r#"[koogallery_api]
site = "mars"
base_url = "http://plain.example"
sk_env = "UNSET_VARIABLE"
order_lookup_budget_ms = 4500
enrich = ["queryInstance", "newInstance", "newInstance"]
on_failure = "ignore"
order_cache_max_entries = 0
order_cache_ttl_seconds = 99999999"#,
    );
    let errors = api(&text).unwrap_err();
    let paths: Vec<&str> = errors.0.iter().map(|i| i.path.as_str()).collect();
    for expected in [
        "koogallery_api.site",
        "koogallery_api.base_url",
        "koogallery_api.ak",
        "koogallery_api.sk_env",
        "koogallery_api.order_lookup_budget_ms",
        "koogallery_api.enrich[0]",
        "koogallery_api.enrich[2]",
        "koogallery_api.on_failure",
        "koogallery_api.order_cache_max_entries",
        "koogallery_api.order_cache_ttl_seconds",
    ] {
        assert!(
            paths.contains(&expected),
            "{expected} missing from {paths:?}"
        );
    }
}

#[test]
fn inline_secrets_are_refused() {
    let text = example_with(&["site", "ak_env", "sk_env"])
        .replace("[koogallery_api]", "[koogallery_api]\nsk = \"inline\"");
    assert!(api(&text).is_err());
}

#[test]
fn a_table_without_site_or_base_url_is_refused() {
    let errors = api(&example_with(&["ak_env", "sk_env"])).unwrap_err();
    assert_eq!(errors.0[0].path, "koogallery_api.site");
}
