//! The ACME state directory: the account (key and URL) and the current certificate with its key, each one file
//! written atomically (temporary file, fsync, rename) with mode 0600 in a 0700 directory.

use std::io::Write;
use std::path::{Path, PathBuf};

pub(super) const ACCOUNT_FILE: &str = "account.json";
/// Private key and full chain in one PEM file, so a crash never leaves a key that does not match its chain.
pub(super) const CERTIFICATE_FILE: &str = "certificate.pem";

#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}")]
pub struct StoreError {
    path: String,
    #[source]
    source: std::io::Error,
}

/// The directory named by `acme.state_dir`.
#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    /// Creates the directory (0700) if needed and tightens its mode if it exists.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let failed = |source| StoreError {
            path: dir.display().to_string(),
            source,
        };
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).map_err(failed)?;
        set_mode(dir, 0o700).map_err(failed)?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn certificate_path(&self) -> PathBuf {
        self.dir.join(CERTIFICATE_FILE)
    }

    pub fn account_path(&self) -> PathBuf {
        self.dir.join(ACCOUNT_FILE)
    }

    /// The stored account JSON, if any.
    pub fn account(&self) -> Option<String> {
        std::fs::read_to_string(self.account_path()).ok()
    }

    pub fn save_account(&self, json: &str) -> Result<(), StoreError> {
        write_private(&self.account_path(), json.as_bytes())
    }

    /// The stored certificate bundle (key and chain, PEM), if any.
    pub fn certificate(&self) -> Option<String> {
        std::fs::read_to_string(self.certificate_path()).ok()
    }

    pub fn save_certificate(&self, key_pem: &str, chain_pem: &str) -> Result<(), StoreError> {
        let bundle = format!("{}\n{}", key_pem.trim_end(), chain_pem);
        write_private(&self.certificate_path(), bundle.as_bytes())
    }
}

/// Writes `bytes` to `path` through a 0600 temporary file in the same directory, then renames it into place.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let failed = |source| StoreError {
        path: path.display().to_string(),
        source,
    };
    let temporary = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&temporary).map_err(failed)?;
    set_mode(&temporary, 0o600).map_err(failed)?;
    file.write_all(bytes).map_err(failed)?;
    file.sync_all().map_err(failed)?;
    drop(file);
    std::fs::rename(&temporary, path).map_err(failed)?;
    if let Some(parent) = path.parent() {
        // Makes the rename durable; a directory that cannot be opened for fsync is not worth failing over.
        if let Ok(dir) = std::fs::File::open(parent) {
            let _ = dir.sync_all();
        }
    }
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(())
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn files_are_private_to_the_owner() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("acme");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let state = StateDir::open(&dir).unwrap();
        state.save_account("{}").unwrap();
        state.save_certificate("KEY\n", "CHAIN\n").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&state.account_path()), 0o600);
        assert_eq!(mode(&state.certificate_path()), 0o600);
        assert_eq!(state.certificate().unwrap(), "KEY\nCHAIN\n");
    }
}
