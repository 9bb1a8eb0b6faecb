//! The READMEs and docs as a new user reads them: every repository path they mention exists, and the offline
//! commands they show run as written.

use crate::python_app::PythonApp;
use std::path::Path;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// Where the documents that name repository paths (relative to the root) are.
const DOCUMENTS: &[&str] = &[
    "README.md",
    "examples/python-upstream/README.md",
    "docs/operations.md",
    "docs/upstream-contract.md",
    "docs/koogallery-protocol.md",
    "docs/upgrading.md",
    "bench/README.md",
];
const TOP_LEVEL: &[&str] = &[
    "docs/",
    "config/",
    "deploy/",
    "examples/",
    "bench/",
    "tests/",
    "src/",
];

/// Repository paths named in `text`: a top-level folder name at a word start, up to the first character that
/// cannot be part of a path. Placeholders (`…`, `*`, `<…>`, `NEW`) are skipped.
fn paths_in(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (at, _) in text.char_indices() {
        let rest = &text[at..];
        let starts_word = text[..at]
            .chars()
            .next_back()
            .is_none_or(|c| matches!(c, ' ' | '`' | '(' | '@' | '[' | '\n' | '"' | '\''));
        if !starts_word || !TOP_LEVEL.iter().any(|p| rest.starts_with(p)) {
            continue;
        }
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/')))
            .unwrap_or(rest.len());
        let path = rest[..end].trim_end_matches(['.', ',']);
        let placeholder = rest[end..].starts_with(['…', '*', '<', '{']) || path.contains("NEW");
        if !placeholder {
            found.push(path.to_owned());
        }
    }
    found
}

#[test]
fn every_path_the_docs_mention_exists() {
    let mut missing = Vec::new();
    for document in DOCUMENTS {
        let text = std::fs::read_to_string(Path::new(ROOT).join(document)).unwrap();
        // Relative to the repository, or (links inside docs/) to the document's folder.
        let folder = Path::new(ROOT).join(document);
        let folder = folder.parent().unwrap();
        for path in paths_in(&text) {
            if !Path::new(ROOT).join(&path).exists() && !folder.join(&path).exists() {
                missing.push(format!("{document}: {path}"));
            }
        }
    }
    assert!(missing.is_empty(), "paths that do not exist: {missing:#?}");
}

#[test]
fn the_path_scanner_finds_a_missing_path() {
    let found =
        paths_in("curl --data @docs/examples/request/newInstance.json, see `config/x.toml`.");
    assert_eq!(
        found,
        ["docs/examples/request/newInstance.json", "config/x.toml"]
    );
}

/// The first fenced `sh` block of `document` that contains `needle`.
fn shell_block(document: &str, needle: &str) -> String {
    let text = std::fs::read_to_string(Path::new(ROOT).join(document)).unwrap();
    text.split("```sh\n")
        .skip(1)
        .filter_map(|block| block.split("```").next())
        .find(|block| block.contains(needle))
        .unwrap_or_else(|| panic!("{document} has no sh block with {needle:?}"))
        .to_owned()
}

#[test]
fn the_python_examples_try_it_without_koogate_command_runs_as_written() {
    let app = PythonApp::start();
    let port = app
        .url()
        .trim_start_matches("http://127.0.0.1:")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let block = shell_block("examples/python-upstream/README.md", "curl -s -X POST");
    // The README's command, with the app's real port for the documented 3000.
    let script = block.replace("127.0.0.1:3000", &format!("127.0.0.1:{port}"));
    let output = Command::new("sh")
        .args(["-ec", &script])
        .current_dir(ROOT)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{script}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("\"instanceId\":\"py-"),
        "{script}\n{stdout}"
    );
}
