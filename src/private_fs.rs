//! Creating files and directories readable by koogate's user only (0600 files, 0700 directories), whatever the
//! umask: data dirs, journals, state and the demo's keys hold secrets or sealed personal data.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Write;
use std::path::Path;

/// Mode of the directories koogate creates.
pub const DIR_MODE: u32 = 0o700;
/// Mode of the files koogate creates.
pub const FILE_MODE: u32 = 0o600;

/// `create_dir_all`, each created directory 0700 (existing ones are left as they are).
pub fn create_dir_all(path: &Path) -> std::io::Result<()> {
    let mut builder = DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, DIR_MODE);
    builder.create(path)
}

/// Open options that create a missing file as 0600.
pub fn open_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, FILE_MODE);
    options
}

/// `fs::write`: a new file is created 0600; an existing one keeps its mode.
pub fn write(path: &Path, contents: impl AsRef<[u8]>) -> std::io::Result<()> {
    let mut file: File = open_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    file.write_all(contents.as_ref())
}

/// Creates `path` empty as 0600 if it does not exist, so a library that creates it later (redb) finds it private.
pub fn create_if_missing(path: &Path) -> std::io::Result<()> {
    open_options()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map(drop)
}
