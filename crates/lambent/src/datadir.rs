//! One server per data directory: `lambent serve` holds an exclusive lock on
//! `<data dir>/serve.lock` for its whole life, before it touches anything else
//! there (cgroups, the queue, the stores, the `endpoint` file). The lock is an
//! `flock` on an open file, so the kernel releases it when the process ends,
//! even after `kill -9`; the file's contents (the holder's pid) are only for
//! the message a second server prints.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The lock file's name inside the data directory.
pub const LOCK_FILE: &str = "serve.lock";
/// Where a running server writes its API address.
pub const ENDPOINT_FILE: &str = "endpoint";
/// Where a running server writes its metrics address (when it has a
/// listener of its own).
pub const METRICS_ENDPOINT_FILE: &str = "metrics-endpoint";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another `lambent serve` ({holder}) is using the data directory {dir}; stop it first, or pass another --data-dir"
    )]
    InUse { dir: PathBuf, holder: String },
    #[error("cannot lock the data directory ({path}): {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The data directory, held exclusively by this process until dropped.
/// Dropping it (on a clean shutdown) removes the address files that told
/// clients where this server listens.
#[derive(Debug)]
pub struct DataDirLock {
    dir: PathBuf,
    /// Kept open: the lock lives as long as this descriptor.
    _file: File,
}

impl DataDirLock {
    /// Takes the lock without waiting, and records this process's id in it.
    pub fn acquire(dir: &Path) -> Result<Self, LockError> {
        let path = dir.join(LOCK_FILE);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(LockError::InUse {
                    dir: dir.to_owned(),
                    holder: holder_of(&mut file),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        file.flush().map_err(io)?;
        // Addresses a crashed run left behind name nothing that answers.
        for name in [ENDPOINT_FILE, METRICS_ENDPOINT_FILE] {
            let _ = std::fs::remove_file(dir.join(name));
        }
        Ok(Self {
            dir: dir.to_owned(),
            _file: file,
        })
    }
}

impl Drop for DataDirLock {
    fn drop(&mut self) {
        for name in [ENDPOINT_FILE, METRICS_ENDPOINT_FILE] {
            let _ = std::fs::remove_file(self.dir.join(name));
        }
    }
}

/// "pid 1234" from the lock file of the server holding it. The holder writes
/// its pid right after locking, so a moment's wait covers a server that has
/// only just started.
fn holder_of(file: &mut File) -> String {
    for _ in 0..50 {
        let mut text = String::new();
        if file.seek(SeekFrom::Start(0)).is_ok()
            && file.read_to_string(&mut text).is_ok()
            && let Ok(pid) = text.trim().parse::<u32>()
        {
            return format!("pid {pid}");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    "pid unknown".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDirLock::acquire(dir.path()).unwrap();
        let text = std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
        assert_eq!(text.trim(), std::process::id().to_string());
        // flock locks belong to the open file: a second open, even in the
        // same process, conflicts as another process's would.
        let err = DataDirLock::acquire(dir.path()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        assert!(matches!(err, LockError::InUse { .. }));
        drop(first);
        DataDirLock::acquire(dir.path()).expect("free again once released");
    }

    #[test]
    fn release_removes_the_address_files() {
        let dir = tempfile::tempdir().unwrap();
        let lock = DataDirLock::acquire(dir.path()).unwrap();
        std::fs::write(dir.path().join(ENDPOINT_FILE), "http://127.0.0.1:1").unwrap();
        std::fs::write(dir.path().join(METRICS_ENDPOINT_FILE), "http://127.0.0.1:2").unwrap();
        drop(lock);
        assert!(!dir.path().join(ENDPOINT_FILE).exists());
        assert!(!dir.path().join(METRICS_ENDPOINT_FILE).exists());
        assert!(dir.path().join(LOCK_FILE).exists(), "the lock file stays");
    }
}
