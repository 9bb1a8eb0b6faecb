//! Reading the TOML text: every syntax, unknown-key and type error in one run, with path, line and suggestion.

use super::super::{Config, ConfigErrors};
use std::path::Path;
use std::time::Duration;

const EXAMPLE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/config/koogate.example.toml"
));

fn env(name: &str) -> Option<String> {
    match name {
        "KOOGATE_ACCESS_KEY" => Some("a-plausibly-long-example-access-key".to_owned()),
        "KOOGATE_JOURNAL_KEY" => Some("11".repeat(32)),
        _ => None,
    }
}

fn errors(text: &str) -> ConfigErrors {
    Config::from_toml(text, Path::new("."), &env).unwrap_err()
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn every_unknown_key_and_type_error_is_reported_in_one_run_with_its_line() {
    let text = EXAMPLE
        .replace("http2 = false", "http2 = \"yes\"\nlisten_adress = \"x\"")
        .replace("deadline_ms = 4500", "deadline_ms = \"4.5 seconds\"")
        .replace("default_route = \"app\"", "default_route = 7\nrouts = 1");
    let errors = errors(&text);
    let found: Vec<(&str, usize)> = errors
        .0
        .iter()
        .map(|i| (i.path.as_str(), i.location.as_ref().map_or(0, |l| l.line)))
        .collect();
    assert_eq!(
        found,
        [
            ("server.http2", line_of(&text, "http2 = \"yes\"")),
            ("server.listen_adress", line_of(&text, "listen_adress")),
            ("upstream.deadline_ms", line_of(&text, "4.5 seconds")),
            (
                "upstream.default_route",
                line_of(&text, "default_route = 7")
            ),
            ("upstream.routs", line_of(&text, "routs = 1")),
        ],
        "{errors}"
    );
    let shown = errors.to_string();
    assert!(shown.starts_with("5 configuration error(s):"), "{shown}");
    assert!(shown.contains("did you mean `listen`?"), "{shown}");
    assert!(shown.contains("did you mean `routes`?"), "{shown}");
    assert!(shown.contains("expected a boolean"), "{shown}");
    assert!(
        shown.contains("invalid duration \"4.5 seconds\""),
        "{shown}"
    );
    let http2 = &errors.0[0].location.as_ref().unwrap();
    assert_eq!(
        (http2.column, http2.snippet.as_str()),
        (9, "http2 = \"yes\"")
    );
}

#[test]
fn a_mistyped_required_key_is_not_also_reported_missing() {
    let text = EXAMPLE.replace("listen = \"0.0.0.0:8443\"", "listen = 8443");
    let errors = errors(&text);
    assert_eq!(errors.0.len(), 1, "{errors}");
    assert_eq!(errors.0[0].path, "server.listen");
    assert!(
        errors.0[0].message.contains("expected a string"),
        "{errors}"
    );
}

#[test]
fn a_missing_required_key_is_named_with_its_table() {
    let text = EXAMPLE.replace("default_route = \"app\"", "");
    let errors = errors(&text);
    assert_eq!(errors.0[0].path, "upstream.default_route", "{errors}");
    assert!(errors.0[0].message.contains("missing"), "{errors}");
}

#[test]
fn every_syntax_error_is_reported_with_line_and_key() {
    let text = EXAMPLE
        .replace("http2 = false", "http2 = fals")
        .replace("deadline_ms = 4500", "deadline_ms 4500");
    let errors = errors(&text);
    let found: Vec<(&str, usize)> = errors
        .0
        .iter()
        .map(|i| (i.path.as_str(), i.location.as_ref().map_or(0, |l| l.line)))
        .collect();
    assert_eq!(
        found,
        [
            ("server.http2", line_of(&text, "http2 = fals")),
            ("upstream", line_of(&text, "deadline_ms 4500")),
        ],
        "{errors}"
    );
    assert!(errors
        .0
        .iter()
        .all(|i| i.message.starts_with("TOML syntax")));
}

#[test]
fn an_unknown_table_is_reported_once_with_a_suggestion() {
    let text = format!("{EXAMPLE}\n[uspream]\nfoo = 1\nbar = 2\n");
    let errors = errors(&text);
    assert_eq!(errors.0.len(), 1, "{errors}");
    assert_eq!(errors.0[0].path, "uspream");
    assert!(
        errors.0[0].message.contains("did you mean `upstream`?"),
        "{errors}"
    );
}

#[test]
fn validation_errors_carry_the_line_of_their_key() {
    let text = EXAMPLE.replace("deadline_ms = 4500", "deadline_ms = 9000");
    let errors = errors(&text);
    let location = errors.0[0].location.as_ref().expect("located");
    assert_eq!(location.line, line_of(&text, "deadline_ms = 9000"));
}

#[test]
fn durations_with_units_are_accepted_wherever_milliseconds_are() {
    let text = EXAMPLE
        .replace("deadline_ms = 4500", "deadline_ms = \"4.5s\"")
        .replace(
            "handshake_timeout_ms = 2000",
            "handshake_timeout_ms = \"500ms\"",
        )
        .replace(
            "timestamp_window_ms = 60000",
            "timestamp_window_ms = \"2m\"",
        )
        .replace("timeout_ms = 4500", "timeout_ms = \"3s\"");
    let config = Config::from_toml(&text, Path::new("."), &env).unwrap();
    assert_eq!(config.upstream.deadline, Duration::from_millis(4_500));
    assert_eq!(config.server.handshake_timeout, Duration::from_millis(500));
    assert_eq!(config.verify.timestamp_window, Duration::from_secs(120));
    assert_eq!(config.upstream.routes[0].timeout, Duration::from_secs(3));
}
