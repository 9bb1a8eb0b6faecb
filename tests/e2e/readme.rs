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

/// The minimal app of docs/upstream-contract.md section 7, as printed, on a free port instead of 3000.
struct MinimalApp {
    child: std::process::Child,
    port: u16,
}

impl MinimalApp {
    fn start() -> Self {
        let contract =
            std::fs::read_to_string(Path::new(ROOT).join("docs/upstream-contract.md")).unwrap();
        let section = contract.split("## 7. A minimal app").nth(1).unwrap();
        let code = section
            .split("```python\n")
            .nth(1)
            .and_then(|c| c.split("```").next())
            .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        assert!(code.contains("(\"127.0.0.1\", 3000)"), "{code}");
        let code = code.replace("(\"127.0.0.1\", 3000)", &format!("(\"127.0.0.1\", {port})"));
        // Reaped in `Drop`, also when it never starts listening.
        #[allow(clippy::zombie_processes)]
        let child = Command::new("python3")
            .args(["-c", &code])
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 is installed");
        // Owned by the guard from here, so the child is killed and waited for on every path.
        let app = Self { child, port };
        for _ in 0..250 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return app;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("the minimal app did not start");
    }
}

impl Drop for MinimalApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Median time of `calls` POSTs of `body` on one keep-alive connection (as koogate's pooled client sends them).
fn keep_alive_median_ms(port: u16, body: &str, calls: usize) -> f64 {
    use std::io::{BufRead, BufReader, Read, Write};
    let stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_nodelay(true).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let mut times = Vec::new();
    for _ in 0..calls {
        let started = std::time::Instant::now();
        write!(
            writer,
            "POST /koogallery HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = value.trim().parse().unwrap();
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut answer = vec![0; length];
        reader.read_exact(&mut answer).unwrap();
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Both example apps answer a keep-alive call without the ~40 ms Nagle/delayed-ACK stall they used to have (two
/// unbuffered writes per answer); the per-call latency is printed for the record.
#[test]
fn the_example_apps_answer_keep_alive_calls_without_a_nagle_stall() {
    let body =
        std::fs::read_to_string(Path::new(ROOT).join("docs/examples/request/v2/newInstance.json"))
            .unwrap();
    let python = PythonApp::start();
    let port: u16 = python
        .url()
        .trim_start_matches("http://127.0.0.1:")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let minimal = MinimalApp::start();
    for (name, port) in [
        ("examples/python-upstream", port),
        ("contract section 7", minimal.port),
    ] {
        let median = keep_alive_median_ms(port, &body, 21);
        eprintln!("{name}: median {median:.2} ms per keep-alive call");
        // The stall is a fixed ~40 ms per call; an answer from these apps takes well under a millisecond.
        assert!(median < 25.0, "{name}: median {median:.2} ms per call");
    }
}
