//! Config parsing and validation tests.

use super::*;

const EXAMPLE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/config/koogate.example.toml"
));

fn env_with_key(name: &str) -> Option<String> {
    match name {
        "KOOGATE_ACCESS_KEY" => Some("example-key".to_owned()),
        "KOOGATE_JOURNAL_KEY" => Some("11".repeat(32)),
        _ => None,
    }
}

#[test]
fn the_example_config_parses_with_the_documented_defaults() {
    let config = Config::from_toml(EXAMPLE, Path::new("/etc/koogate"), &env_with_key).unwrap();
    assert_eq!(config.server.listen, "0.0.0.0:8443".parse().unwrap());
    assert_eq!(
        config.server.certificates.files().map(|(cert, _)| cert),
        Some(Path::new("/etc/koogate/tls/fullchain.pem"))
    );
    assert_eq!(
        config.server.max_body_bytes,
        DEFAULT_MAX_BODY_BYTES as usize
    );
    assert_eq!(
        config.verify.timestamp_window,
        Duration::from_millis(DEFAULT_TIMESTAMP_WINDOW_MS)
    );
    assert_eq!(
        config.upstream.deadline,
        Duration::from_millis(DEFAULT_DEADLINE_MS)
    );
    assert_eq!(
        config.upstream.pool_idle_timeout,
        Duration::from_millis(DEFAULT_POOL_IDLE_TIMEOUT_MS)
    );
    assert_eq!(config.admin_listen, DEFAULT_ADMIN_LISTEN.parse().unwrap());
    assert!(config.plain_http.is_none());
    assert_eq!(config.keys.len(), 1);
    assert_eq!(config.upstream.route_for(Activity::OrderNotify).name, "app");
}

#[test]
fn the_example_documents_every_key_the_parser_knows() {
    // Every key of the raw structs appears in the example (commented out or not), so nothing is undocumented.
    let keys = [
        "listen",
        "cert_chain_file",
        "private_key_file",
        "http2",
        "handshake_timeout_ms",
        "allow_plain_http",
        "header_read_timeout_ms",
        "body_read_timeout_ms",
        "max_connections",
        "max_body_bytes",
        "shutdown_grace_ms",
        "[plain_http]",
        "[admin]",
        "timestamp_window_ms",
        "replay_cache_max_entries",
        "buyer_fields",
        "field_cipher",
        "encrypt_app_info",
        "unauthenticated_answer_key",
        "[verify.unauthenticated_answer_key_by_path]",
        "[[access_keys]]",
        "name",
        "env",
        "file",
        "deadline_ms",
        "default_route",
        "pool_idle_timeout_ms",
        "pool_max_idle_per_host",
        "connect_timeout_ms",
        "max_answer_bytes",
        "[upstream.routes.",
        "url",
        "timeout_ms",
        "activities",
        "ca_file",
        "signature_key_env",
        "signature_key_file",
        "client_cert_file",
        "client_key_file",
        "format",
        "level",
        "[acme]",
        "domains",
        "contact_email",
        "directory_url",
        "directory_ca_file",
        "challenges",
        "http01_listen",
        "state_dir",
        "retry_initial_ms",
        "retry_max_ms",
        "[koogallery_api]",
        "site",
        "base_url",
        "ak_env",
        "ak_file",
        "sk_env",
        "sk_file",
        "order_lookup_budget_ms",
        "enrich",
        "on_failure",
        "order_cache_max_entries",
        "order_cache_ttl_seconds",
    ];
    for key in keys {
        let documented = EXAMPLE.lines().any(|l| {
            let l = l.trim_start_matches(['#', ' ']);
            l.starts_with(&format!("{key} =")) || (key.starts_with('[') && l.starts_with(key))
        });
        assert!(
            documented,
            "`{key}` is not documented in config/koogate.example.toml"
        );
    }
}

#[test]
fn every_error_is_reported_with_its_key_path() {
    let text = r#"
        [server]
        listen = "not-an-address"
        cert_chain_file = "c.pem"
        private_key_file = "k.pem"
        max_body_bytes = 1
        [[access_keys]]
        name = "a"
        env = "UNSET_VARIABLE"
        [upstream]
        deadline_ms = 9000
        default_route = "missing"
        [upstream.routes.app]
        url = "ftp://x"
        activities = ["mineBitcoin"]
        [log]
        format = "xml"
    "#;
    let errors = Config::from_toml(text, Path::new("."), &|_: &str| None).unwrap_err();
    let paths: Vec<&str> = errors.0.iter().map(|i| i.path.as_str()).collect();
    for expected in [
        "server.listen",
        "server.max_body_bytes",
        "access_keys[0].env",
        "upstream.deadline_ms",
        "upstream.routes.app.url",
        "upstream.routes.app.activities[0]",
        "log.format",
    ] {
        assert!(
            paths.contains(&expected),
            "{expected} missing from {paths:?}"
        );
    }
    let shown = errors.to_string();
    assert!(
        shown.starts_with(&format!("{} configuration error(s):", errors.0.len())),
        "{shown}"
    );
}

#[test]
fn unknown_keys_are_refused() {
    let text = EXAMPLE.replace("http2 = false", "http2 = false\nhttp3 = true");
    let errors = Config::from_toml(&text, Path::new("."), &env_with_key).unwrap_err();
    assert!(errors.to_string().contains("http3"), "{errors}");
}

#[test]
fn keys_come_from_files_without_their_trailing_newline() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key"), "from-file\n").unwrap();
    let text = EXAMPLE.replace("env = \"KOOGATE_ACCESS_KEY\"", "file = \"key\"");
    let journal_key_only = |name: &str| (name == "KOOGATE_JOURNAL_KEY").then(|| "22".repeat(32));
    let config = Config::from_toml(&text, dir.path(), &journal_key_only).unwrap();
    let (_, key) = config.keys.iter().next().unwrap();
    assert_eq!(key.expose(), b"from-file");
}

#[test]
fn an_activity_can_be_routed_to_its_own_upstream() {
    let text = format!("{EXAMPLE}\n[upstream.routes.provisioning]\nurl = \"https://p.example:9443/new\"\nactivities = [\"newInstance\"]\n");
    let config = Config::from_toml(&text, Path::new("."), &env_with_key).unwrap();
    assert_eq!(
        config.upstream.route_for(Activity::NewInstance).name,
        "provisioning"
    );
    assert_eq!(
        config.upstream.route_for(Activity::QueryInstance).name,
        "app"
    );
}

#[test]
fn v1_and_field_settings_have_documented_defaults_and_are_checked() {
    let config = Config::from_toml(EXAMPLE, Path::new("."), &env_with_key).unwrap();
    assert!(!config.verify.v1_enabled && !config.verify.v1_post);
    assert_eq!(
        config.verify.v1_timestamp_window,
        Duration::from_millis(DEFAULT_V1_TIMESTAMP_WINDOW_MS)
    );
    let (_, key) = config.keys.iter().next().unwrap();
    assert_eq!(
        key.field_key().cipher(),
        crate::protocol::fields::FieldCipher::Aes256Cbc
    );
    assert!(!key.encrypt_app_info());

    let text = EXAMPLE.replace("field_cipher = \"aes-256-cbc\"", "field_cipher = \"des\"");
    let errors = Config::from_toml(&text, Path::new("."), &env_with_key).unwrap_err();
    assert_eq!(errors.0[0].path, "access_keys[0].field_cipher");
}

#[test]
fn the_store_is_durable_by_default_and_needs_a_journal_key() {
    let config = Config::from_toml(EXAMPLE, Path::new("/etc/koogate"), &env_with_key).unwrap();
    assert!(
        matches!(&config.store.kind, crate::state::StoreKind::Local { data_dir } if data_dir == Path::new("/var/lib/koogate"))
    );
    assert_eq!(
        config.store.retention,
        Duration::from_secs(DEFAULT_RETENTION_DAYS * 86_400)
    );
    assert!(config.store.sealer.is_some());

    let no_journal_key = |name: &str| (name == "KOOGATE_ACCESS_KEY").then(|| "k".to_owned());
    let errors = Config::from_toml(EXAMPLE, Path::new("."), &no_journal_key).unwrap_err();
    assert_eq!(errors.0[0].path, "store.journal_key_env");
    let memory = EXAMPLE.replace("backend = \"local\"", "backend = \"memory\"");
    assert!(Config::from_toml(&memory, Path::new("."), &no_journal_key).is_ok());
    let short = |name: &str| {
        Some(if name == "KOOGATE_JOURNAL_KEY" {
            "abcd".to_owned()
        } else {
            "k".to_owned()
        })
    };
    assert_eq!(
        Config::from_toml(EXAMPLE, Path::new("."), &short)
            .unwrap_err()
            .0[0]
            .path,
        "store.journal_key_env"
    );
}

#[test]
fn test_call_errors_are_reported_even_when_the_routes_fail() {
    let text = EXAMPLE
        .replace("default_route = \"app\"", "default_route = \"missing\"")
        .replace("mode = \"forward\"", "mode = \"staging\"");
    let errors = Config::from_toml(&text, Path::new("."), &env_with_key).unwrap_err();
    let paths: Vec<&str> = errors.0.iter().map(|i| i.path.as_str()).collect();
    assert!(
        paths.contains(&"upstream.default_route") && paths.contains(&"test_calls.mode"),
        "{paths:?}"
    );
}

#[test]
fn a_config_without_an_explicit_test_calls_mode_is_refused_with_advice() {
    let start = EXAMPLE.find("[test_calls]").unwrap();
    let end = EXAMPLE[start..].find("\n[store]").unwrap() + start;
    for text in [
        format!("{}{}", &EXAMPLE[..start], &EXAMPLE[end..]),
        EXAMPLE.replace("mode = \"forward\"", "# no mode"),
    ] {
        let errors = Config::from_toml(&text, Path::new("."), &env_with_key).unwrap_err();
        let issue = errors
            .0
            .iter()
            .find(|i| i.path == "test_calls.mode")
            .unwrap_or_else(|| panic!("{errors}"));
        for advice in ["sandbox", "forward", "builtin", "testFlag"] {
            assert!(issue.message.contains(advice), "{}", issue.message);
        }
    }
}

#[test]
fn v1_is_off_by_default_and_its_post_variant_needs_it() {
    let text = EXAMPLE.replace("enabled = false", "");
    let config = Config::from_toml(&text, Path::new("."), &env_with_key).unwrap();
    assert!(!config.verify.v1_enabled);
    let text = EXAMPLE.replace("post = false", "post = true");
    let errors = Config::from_toml(&text, Path::new("."), &env_with_key).unwrap_err();
    assert_eq!(errors.0[0].path, "v1.post");
    let text = text.replace("enabled = false", "enabled = true");
    assert!(Config::from_toml(&text, Path::new("."), &env_with_key).is_ok());
}

#[test]
fn the_same_access_key_listed_twice_is_refused_with_advice() {
    let twice = EXAMPLE.replace(
        "[v1]\n",
        "[[access_keys]]\nname = \"gcm\"\nenv = \"SAME_KEY\"\nfield_cipher = \"aes-256-gcm\"\n\n[v1]\n",
    );
    let env = |name: &str| match name {
        "SAME_KEY" => Some("example-key".to_owned()),
        other => env_with_key(other),
    };
    let errors = Config::from_toml(&twice, Path::new("."), &env).unwrap_err();
    assert_eq!(errors.0.len(), 1, "{errors}");
    assert_eq!(errors.0[0].path, "access_keys[1]");
    assert!(errors.0[0].message.contains("`primary`"), "{errors}");
    let other = |name: &str| match name {
        "SAME_KEY" => Some("another-key".to_owned()),
        other => env_with_key(other),
    };
    assert_eq!(
        Config::from_toml(&twice, Path::new("."), &other)
            .unwrap()
            .keys
            .len(),
        2
    );
}

#[test]
fn unauthenticated_answers_are_signed_with_the_named_key() {
    let text = EXAMPLE
        .replace(
            "[v1]\n",
            "[[access_keys]]\nname = \"b\"\nenv = \"B_KEY\"\n\n[v1]\n",
        )
        .replace(
            "# unauthenticated_answer_key = \"primary\"",
            "unauthenticated_answer_key = \"b\"",
        )
        .replace(
            "# [verify.unauthenticated_answer_key_by_path]\n# \"/product-b/koogallery\" = \"product-b\"",
            "[verify.unauthenticated_answer_key_by_path]\n\"/a\" = \"primary\"",
        );
    let env = |name: &str| match name {
        "B_KEY" => Some("b-key".to_owned()),
        other => env_with_key(other),
    };
    let config = Config::from_toml(&text, Path::new("."), &env).unwrap();
    let keys = &config.keys;
    assert_eq!(
        keys.get(keys.for_unauthenticated("/koogallery")).name(),
        "b"
    );
    assert_eq!(keys.get(keys.for_unauthenticated("/a")).name(), "primary");

    let wrong = text
        .replace("answer_key = \"b\"", "answer_key = \"nobody\"")
        .replace("\"/a\" = \"primary\"", "\"/a\" = \"c\"");
    let errors = Config::from_toml(&wrong, Path::new("."), &env).unwrap_err();
    let paths: Vec<&str> = errors.0.iter().map(|i| i.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "verify.unauthenticated_answer_key",
            "verify.unauthenticated_answer_key_by_path.\"/a\""
        ]
    );
}

#[test]
fn upstream_signing_and_client_certificates_are_checked() {
    let text = EXAMPLE.replace(
        "# signature_key_env = \"KOOGATE_UPSTREAM_SECRET\"",
        "signature_key_env = \"UPSTREAM_SECRET\"",
    );
    let env = |secret: &'static str| {
        move |name: &str| match name {
            "UPSTREAM_SECRET" => Some(secret.to_owned()),
            other => env_with_key(other),
        }
    };
    let config = Config::from_toml(&text, Path::new("."), &env("0123456789abcdef0123")).unwrap();
    assert!(config.upstream.signature_key.is_some());
    let errors = Config::from_toml(&text, Path::new("."), &env("short")).unwrap_err();
    assert_eq!(errors.0[0].path, "upstream.signature_key_env");
    assert!(Config::from_toml(EXAMPLE, Path::new("."), &env_with_key)
        .unwrap()
        .upstream
        .signature_key
        .is_none());

    // The example's route is http://: a client certificate there is a mistake; half a pair too.
    let mtls = EXAMPLE
        .replace("# client_cert_file = ", "client_cert_file = ")
        .replace("# client_key_file = ", "client_key_file = ");
    let errors = Config::from_toml(&mtls, Path::new("."), &env_with_key).unwrap_err();
    assert_eq!(errors.0[0].path, "upstream.routes.app.client_cert_file");
    let half = EXAMPLE
        .replace(
            "url = \"http://127.0.0.1:3000/koogallery\"",
            "url = \"https://app.internal:3443/k\"",
        )
        .replace("# client_cert_file = ", "client_cert_file = ");
    let errors = Config::from_toml(&half, Path::new("."), &env_with_key).unwrap_err();
    assert_eq!(errors.0[0].path, "upstream.routes.app");
}

#[test]
fn admin_and_server_on_the_same_port_are_refused() {
    let same = EXAMPLE.replace("listen = \"127.0.0.1:9901\"", "listen = \"127.0.0.1:8443\"");
    let errors = Config::from_toml(&same, Path::new("."), &env_with_key).unwrap_err();
    assert_eq!(errors.0.len(), 1, "{errors}");
    assert_eq!(errors.0[0].path, "admin.listen");
    assert!(errors.0[0].message.contains("server.listen"), "{errors}");
    let apart = EXAMPLE.replace("listen = \"127.0.0.1:9901\"", "listen = \"127.0.0.1:9902\"");
    assert!(Config::from_toml(&apart, Path::new("."), &env_with_key).is_ok());
}

#[test]
fn an_access_key_with_surrounding_whitespace_is_refused() {
    for key in [" example-key", "example-key\t", "example-key "] {
        let env = move |name: &str| match name {
            "KOOGATE_ACCESS_KEY" => Some(key.to_owned()),
            other => env_with_key(other),
        };
        let errors = Config::from_toml(EXAMPLE, Path::new("."), &env).unwrap_err();
        assert_eq!(errors.0.len(), 1, "{errors}");
        assert_eq!(errors.0[0].path, "access_keys[0]");
        assert!(errors.0[0].message.contains("whitespace"), "{errors}");
    }
}

#[test]
fn a_plain_http_upstream_on_another_host_is_refused_unless_allowed_and_then_warned() {
    let remote = EXAMPLE.replace(
        "url = \"http://127.0.0.1:3000/koogallery\"",
        "url = \"http://app.internal:3000/koogallery\"",
    );
    let errors = Config::from_toml(&remote, Path::new("."), &env_with_key).unwrap_err();
    assert_eq!(errors.0.len(), 1, "{errors}");
    assert_eq!(errors.0[0].path, "upstream.routes.app.url");
    assert!(errors.0[0].message.contains("allow_plain_http"), "{errors}");
    let allowed = remote.replace(
        "url = \"http://app.internal:3000/koogallery\"",
        "url = \"http://app.internal:3000/koogallery\"\nallow_plain_http = true",
    );
    let config = Config::from_toml(&allowed, Path::new("."), &env_with_key).unwrap();
    assert!(
        config
            .warnings
            .iter()
            .any(|w| w.path == "upstream.routes.app.url" && w.message.contains("clear text")),
        "{:?}",
        config.warnings
    );
    for local in [
        "http://localhost:3000/",
        "http://[::1]:3000/",
        "http://127.0.0.2/",
    ] {
        let text = EXAMPLE.replace("http://127.0.0.1:3000/koogallery", local);
        let config = Config::from_toml(&text, Path::new("."), &env_with_key).unwrap();
        assert!(config.warnings.iter().all(|w| !w.path.contains("routes")));
    }
}

#[test]
fn a_short_access_key_is_warned_about_without_showing_it() {
    let config = Config::from_toml(EXAMPLE, Path::new("."), &env_with_key).unwrap();
    let warning = config
        .warnings
        .iter()
        .find(|w| w.path == "access_keys[0]")
        .expect("a warning for the 11-character key");
    assert!(warning.message.contains("11 characters"), "{warning:?}");
    assert!(!warning.message.contains("example-key"), "{warning:?}");
    let long = |name: &str| match name {
        "KOOGATE_ACCESS_KEY" => Some("0f8e4c2a-5b6d-4e7f-8a9b-1c2d3e4f5a6b".to_owned()),
        other => env_with_key(other),
    };
    let config = Config::from_toml(EXAMPLE, Path::new("."), &long).unwrap();
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}

#[test]
fn every_listener_needs_its_own_port() {
    let text = format!("{EXAMPLE}\n[plain_http]\nlisten = \"0.0.0.0:9901\"\n");
    let errors = Config::from_toml(&text, Path::new("."), &env_with_key).unwrap_err();
    assert_eq!(errors.0.len(), 1, "{errors}");
    assert_eq!(errors.0[0].path, "admin.listen");
    assert!(
        errors.0[0].message.contains("plain_http.listen"),
        "{errors}"
    );
}

#[test]
fn a_redis_store_is_refused_by_name_in_a_build_without_the_redis_feature() {
    let text = EXAMPLE.replace(
        "backend = \"local\"",
        "backend = \"redis\"\nredis_url = \"redis://127.0.0.1:6379/0\"",
    );
    let result = Config::from_toml(&text, Path::new("."), &env_with_key);
    if cfg!(feature = "redis") {
        assert!(result.is_ok(), "{:?}", result.err());
    } else {
        let errors = result.unwrap_err();
        let issue = errors
            .0
            .iter()
            .find(|issue| issue.path == "store.backend")
            .expect("store.backend is reported");
        assert!(
            issue.message.contains("built without the `redis` feature"),
            "{}",
            issue.message
        );
    }
}
