//! Build script: records the git commit the binary is built from, for `koogate --version` and the build-info
//! metric. A build outside a git checkout (a source tarball, the container build) can set `KOOGATE_GIT_COMMIT`.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=KOOGATE_GIT_COMMIT");
    // A new commit or a branch switch changes HEAD or the ref it points to (in a worktree, HEAD lives in its own
    // git dir and the refs in the common one).
    for dir in ["--git-dir", "--git-common-dir"] {
        let Some(dir) = git(&["rev-parse", dir]) else {
            continue;
        };
        for file in ["HEAD", "refs/heads", "packed-refs"] {
            let path = std::path::Path::new(&dir).join(file);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
    let commit = std::env::var("KOOGATE_GIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=KOOGATE_GIT_COMMIT={commit}");
    println!(
        "cargo:rustc-env=KOOGATE_LONG_VERSION={} (commit {commit})",
        std::env::var("CARGO_PKG_VERSION").unwrap_or_default()
    );
}

/// The trimmed output of a successful `git` command.
fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?.trim().to_owned();
    (!text.is_empty()).then_some(text)
}
