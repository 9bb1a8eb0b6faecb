//! A file-system double for durability tests: it counts syncs, can hold a sync until released (a stalled disk) or
//! fail it, and [`LossyFs::power_cut`] forgets every byte not synced and every file whose directory was not synced.

use super::{AppendFile, Fs};
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

#[derive(Default)]
struct State {
    /// Contents and how much of them is synced.
    files: BTreeMap<PathBuf, (Vec<u8>, usize)>,
    /// Files whose directory entry is durable.
    linked: BTreeSet<PathBuf>,
    syncs: usize,
    dir_syncs: usize,
    /// Bytes appended, and bytes written whole (snapshots).
    appended: usize,
    written: usize,
    /// While true, file syncs wait.
    held: bool,
    /// While true, file syncs fail.
    failing: bool,
    /// While true, every write fails as on a full disk (syncs of what is already written still succeed).
    full: bool,
    /// Every `read_at`: which file, on which thread.
    reads: Vec<(PathBuf, std::thread::ThreadId)>,
}

/// See the module documentation. Cloning shares the same "disk".
#[derive(Clone, Default)]
pub struct LossyFs {
    state: Arc<(Mutex<State>, Condvar)>,
}

impl LossyFs {
    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut state = self.state.0.lock().unwrap_or_else(|p| p.into_inner());
        let out = f(&mut state);
        self.state.1.notify_all();
        out
    }

    /// File syncs so far.
    pub fn syncs(&self) -> usize {
        self.with(|s| s.syncs)
    }

    /// Bytes appended to files, and bytes written with `write_atomic`, so far.
    pub fn bytes_written(&self) -> (usize, usize) {
        self.with(|s| (s.appended, s.written))
    }

    /// Directory syncs so far.
    pub fn dir_syncs(&self) -> usize {
        self.with(|s| s.dir_syncs)
    }

    /// Makes file syncs wait (`true`) or lets them go (`false`).
    pub fn hold_syncs(&self, held: bool) {
        self.with(|s| s.held = held);
    }

    /// Makes file syncs fail (`true`) or succeed again (`false`).
    pub fn fail_syncs(&self, failing: bool) {
        self.with(|s| s.failing = failing);
    }

    /// Makes every append and file write fail with "no space left" (`true`), or take bytes again (`false`).
    pub fn fill_disk(&self, full: bool) {
        self.with(|s| s.full = full);
    }

    /// The files read so far and the threads that read them (then forgets them).
    pub fn take_reads(&self) -> Vec<(PathBuf, std::thread::ThreadId)> {
        self.with(|s| std::mem::take(&mut s.reads))
    }

    /// What a power cut leaves: unsynced bytes and unlinked files are gone.
    pub fn power_cut(&self) {
        self.with(|s| {
            let linked = s.linked.clone();
            s.files.retain(|path, _| linked.contains(path));
            for (data, synced) in s.files.values_mut() {
                data.truncate(*synced);
            }
        });
    }
}

struct LossyFile {
    fs: LossyFs,
    path: PathBuf,
}

impl AppendFile for LossyFile {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.fs.with(|s| match s.files.get_mut(&self.path) {
            _ if s.full => Err(no_space()),
            Some((data, _)) => {
                data.extend_from_slice(bytes);
                s.appended += bytes.len();
                Ok(())
            }
            None => Err(io::Error::from(io::ErrorKind::NotFound)),
        })
    }

    fn sync(&mut self) -> io::Result<()> {
        let (lock, wake) = &*self.fs.state;
        let mut state = lock.lock().unwrap_or_else(|p| p.into_inner());
        while state.held {
            state = wake.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        if state.failing {
            return Err(io::Error::other("injected sync failure"));
        }
        state.syncs += 1;
        if let Some((data, synced)) = state.files.get_mut(&self.path) {
            *synced = data.len();
        }
        Ok(())
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.fs.with(|s| {
            if let Some((data, synced)) = s.files.get_mut(&self.path) {
                data.truncate(len as usize);
                *synced = (*synced).min(data.len());
            }
        });
        self.sync()
    }
}

impl Fs for LossyFs {
    fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        Ok(self.with(|s| {
            s.files
                .keys()
                .filter(|p| p.parent() == Some(dir))
                .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect()
        }))
    }

    fn open_append(&self, path: &Path) -> io::Result<(Box<dyn AppendFile>, u64)> {
        let len = self.with(|s| s.files.entry(path.to_owned()).or_default().0.len());
        let file = LossyFile {
            fs: self.clone(),
            path: path.to_owned(),
        };
        Ok((Box::new(file), len as u64))
    }

    fn read_at(&self, path: &Path, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        self.with(|s| {
            s.reads.push((path.to_owned(), std::thread::current().id()));
            let (data, _) = s
                .files
                .get(path)
                .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
            let start = (offset as usize).min(data.len());
            let end = start.saturating_add(len).min(data.len());
            Ok(data[start..end].to_vec())
        })
    }

    fn read_all(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.read_at(path, 0, usize::MAX)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        self.with(|s| {
            s.files.remove(path);
            s.linked.remove(path);
        });
        Ok(())
    }

    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        self.with(|s| {
            if s.full {
                return Err(no_space());
            }
            s.written += bytes.len();
            s.files
                .insert(path.to_owned(), (bytes.to_vec(), bytes.len()));
            s.linked.insert(path.to_owned());
            Ok(())
        })
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.with(|s| {
            s.dir_syncs += 1;
            let in_dir: Vec<PathBuf> = s
                .files
                .keys()
                .filter(|p| p.parent() == Some(dir))
                .cloned()
                .collect();
            s.linked.extend(in_dir);
        });
        Ok(())
    }
}

fn no_space() -> io::Error {
    io::Error::new(
        io::ErrorKind::StorageFull,
        "injected: no space left on device",
    )
}
