//! What the file system and the clock must allow before `run` starts: writable data directories and a certificate
//! that is valid now. `check` reports the same problems, so it catches what would stop `run`.

use super::{Certificates, Config};
use crate::state::StoreKind;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

impl Config {
    /// The directories koogate writes to, each with the key that sets it.
    pub fn data_dirs(&self) -> Vec<(&'static str, &Path)> {
        let mut dirs: Vec<(&'static str, &Path)> = Vec::new();
        match &self.store.kind {
            StoreKind::Memory => {}
            StoreKind::Local { data_dir } | StoreKind::Redis { data_dir, .. } => {
                dirs.push(("store.data_dir", data_dir))
            }
        }
        if let Some(usage) = &self.usage {
            dirs.push(("usage.data_dir", &usage.data_dir));
        }
        if let Some(acme) = self.server.certificates.acme() {
            dirs.push(("acme.state_dir", &acme.state_dir));
        }
        dirs.dedup_by(|a, b| a.1 == b.1);
        dirs
    }

    /// Every problem that would stop `run` (or make it serve nothing KooGallery accepts), as `(key, message)`.
    pub fn startup_problems(&self, now_unix: i64) -> Vec<(&'static str, String)> {
        let mut problems: Vec<(&'static str, String)> = self
            .data_dirs()
            .into_iter()
            .filter_map(|(key, dir)| data_dir_problem(dir).map(|p| (key, p)))
            .collect();
        problems.extend(
            self.certificate_problem(now_unix)
                .map(|p| ("server.cert_chain_file", p)),
        );
        problems
    }

    /// An expired (or not yet valid) certificate file: `run` and a reload refuse it, as `check` does. Under
    /// `[acme]` the ACME task renews what it finds expired, so there is nothing to refuse.
    pub fn certificate_problem(&self, now_unix: i64) -> Option<String> {
        let Certificates::Files {
            cert_chain_file, ..
        } = &self.server.certificates
        else {
            return None;
        };
        let (not_before, not_after) = crate::proxy::tls::certificate_validity(cert_chain_file)?;
        let shown = cert_chain_file.display();
        if not_after < now_unix {
            Some(format!(
                "the certificate in {shown} expired {}: KooGallery refuses the handshake; renew it and install the \
                 new chain and key (`koogate check` explains)",
                when(not_after)
            ))
        } else if not_before > now_unix {
            Some(format!(
                "the certificate in {shown} is not valid before {}: check this host's clock",
                when(not_before)
            ))
        } else {
            None
        }
    }
}

/// Why koogate could not use `dir` as a data directory, naming the path: not a directory, not writable by the
/// running user, or missing with a parent it cannot create it in. A missing directory is fine otherwise (`run`
/// creates it, 0700).
pub fn data_dir_problem(dir: &Path) -> Option<String> {
    let shown = dir.display();
    match std::fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => Some(format!(
            "{shown} exists but is not a directory: point the key at a directory, or remove the file"
        )),
        Ok(_) => writable(dir).err().map(|e| {
            format!(
                "{shown} is not writable by this user ({e}): give the user koogate runs as write access (the \
                 packages use koogate:koogate, mode 0700)"
            )
        }),
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
            let parent = nearest_existing(dir)?;
            let parent_shown = parent.display();
            if !parent.is_dir() {
                return Some(format!(
                    "{shown} cannot be created: {parent_shown} is not a directory"
                ));
            }
            writable(&parent).err().map(|e| {
                format!(
                    "{shown} does not exist and cannot be created: {parent_shown} is not writable by this user ({e}); \
                     create it and give the user koogate runs as write access"
                )
            })
        }
        Err(e) => Some(format!("cannot read {shown}: {e}")),
    }
}

fn nearest_existing(dir: &Path) -> Option<PathBuf> {
    let mut at = dir.to_path_buf();
    loop {
        if !at.pop() {
            return Some(PathBuf::from("."));
        }
        if at.as_os_str().is_empty() {
            return Some(PathBuf::from("."));
        }
        if std::fs::symlink_metadata(&at).is_ok() {
            return Some(at);
        }
    }
}

/// Writability as the running user, tested by creating (and removing) a file: permission bits alone miss ACLs,
/// read-only mounts and root squash.
fn writable(dir: &Path) -> std::io::Result<()> {
    let probe = dir.join(format!(
        ".koogate-write-check-{}",
        hex::encode(rand::random::<[u8; 8]>())
    ));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)?;
    std::fs::remove_file(&probe)
}

fn when(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(crate::protocol::timefmt::rfc3339)
        .unwrap_or_else(|| format!("at Unix time {secs}"))
}

#[cfg(test)]
mod tests {
    use super::data_dir_problem;

    #[test]
    fn a_data_dir_that_is_a_file_is_named_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("data");
        std::fs::write(&file, "").unwrap();
        let problem = data_dir_problem(&file).unwrap();
        assert!(problem.contains(&file.display().to_string()), "{problem}");
        assert!(problem.contains("not a directory"), "{problem}");
        let below = data_dir_problem(&file.join("sub")).unwrap();
        assert!(below.contains("not a directory"), "{below}");
    }

    #[test]
    fn a_missing_data_dir_under_a_writable_parent_is_fine_and_an_existing_one_too() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(data_dir_problem(&dir.path().join("a/b")), None);
        assert_eq!(data_dir_problem(dir.path()), None);
        // The write check leaves nothing behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
