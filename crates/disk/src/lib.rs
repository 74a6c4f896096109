//! The filesystem that holds the data directory: how much is free, and the
//! reserve that new work must leave.
//!
//! A [`DiskGuard`] refuses new work (packages, asynchronous events, log
//! lines) once free space or free inodes fall below its reserve, so that the
//! platform's own bookkeeping (metadata changes, deletions that free space,
//! the queue's progress, a restart) still finds room. Work that writes
//! nothing goes on.

use std::io;
use std::path::{Path, PathBuf};

/// Free and total space of one filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    /// Bytes an unprivileged writer may still use.
    pub free_bytes: u64,
    pub total_bytes: u64,
    pub free_inodes: u64,
    pub total_inodes: u64,
}

/// What new work must leave free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reserve {
    pub bytes: u64,
    pub inodes: u64,
}

impl Reserve {
    /// The default for a filesystem: 2 % of its space, at most 1 GiB, and
    /// 2 % of its inodes, at most 10,000.
    pub fn for_space(s: &Space) -> Self {
        Self {
            bytes: (s.total_bytes / 50).min(1 << 30),
            inodes: (s.total_inodes / 50).min(10_000),
        }
    }
}

/// Why new work was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the platform's disk is full: {} MB and {} inodes free of {} MB, with {} MB and {} inodes kept in reserve",
    .space.free_bytes >> 20,
    .space.free_inodes,
    .space.total_bytes >> 20,
    .reserve.bytes >> 20,
    .reserve.inodes
)]
pub struct DiskFull {
    pub space: Space,
    pub reserve: Reserve,
}

/// Watches the free space of the filesystem holding one directory.
#[derive(Debug, Clone)]
pub struct DiskGuard {
    path: PathBuf,
    reserve: Reserve,
}

impl DiskGuard {
    /// A guard for the filesystem holding `path`, keeping `reserve` free
    /// (default: [`Reserve::for_space`]).
    pub fn new(path: &Path, reserve: Option<Reserve>) -> io::Result<Self> {
        let reserve = match reserve {
            Some(r) => r,
            None => Reserve::for_space(&space(path)?),
        };
        Ok(Self {
            path: path.to_owned(),
            reserve,
        })
    }

    /// A guard that keeps nothing in reserve (it still reports a disk with
    /// no space left at all).
    pub fn unreserved(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            reserve: Reserve {
                bytes: 0,
                inodes: 0,
            },
        }
    }

    pub fn reserve(&self) -> Reserve {
        self.reserve
    }

    /// Free space now.
    pub fn space(&self) -> io::Result<Space> {
        space(&self.path)
    }

    /// Whether `bytes` more (and a few inodes) can be written and still
    /// leave the reserve. A filesystem that cannot be asked is not refused.
    pub fn check(&self, bytes: u64) -> Result<(), DiskFull> {
        let Ok(space) = self.space() else {
            return Ok(());
        };
        let short_of_bytes = space.free_bytes < self.reserve.bytes.saturating_add(bytes).max(1);
        let short_of_inodes = space.total_inodes > 0 && space.free_inodes <= self.reserve.inodes;
        if short_of_bytes || short_of_inodes {
            Err(DiskFull {
                space,
                reserve: self.reserve,
            })
        } else {
            Ok(())
        }
    }

    /// The refusal for a write that failed for lack of space, if that is why
    /// it failed.
    pub fn full_error(&self, e: &io::Error) -> Option<DiskFull> {
        is_full(e).then(|| DiskFull {
            space: self.space().unwrap_or(Space {
                free_bytes: 0,
                total_bytes: 0,
                free_inodes: 0,
                total_inodes: 0,
            }),
            reserve: self.reserve,
        })
    }
}

/// Space set aside in a file of its own, given back when the disk fills up
/// (so that a restart, and the bookkeeping that frees space, still find
/// room even when something else took the rest) and taken again once there
/// is room for it beyond the reserve.
#[derive(Debug, Clone)]
pub struct Ballast {
    path: PathBuf,
    bytes: u64,
}

impl Ballast {
    /// Ballast for a guard: half its reserve, at most 64 MiB.
    pub fn for_guard(path: &Path, guard: &DiskGuard) -> Self {
        Self {
            path: path.to_owned(),
            bytes: (guard.reserve().bytes / 2).min(64 << 20),
        }
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Whether the ballast is in place (at its full size).
    pub fn is_held(&self) -> bool {
        std::fs::metadata(&self.path).is_ok_and(|m| m.len() >= self.bytes)
    }

    /// Gives the space back; `true` if there was any to give.
    pub fn release(&self) -> bool {
        std::fs::remove_file(&self.path).is_ok()
    }

    /// Takes the space, if the disk has room for it beyond `guard`'s reserve.
    /// `Ok(true)` when the ballast is in place afterwards.
    pub fn take(&self, guard: &DiskGuard) -> io::Result<bool> {
        if self.bytes == 0 || self.is_held() {
            return Ok(true);
        }
        if guard.check(self.bytes).is_err() {
            return Ok(false);
        }
        let tmp = self.path.with_extension("partial");
        let result = (|| {
            use std::io::Write as _;
            let mut f = std::fs::File::create(&tmp)?;
            // Written, not sparse: the blocks must really be held.
            let chunk = vec![0u8; 1 << 20];
            let mut left = self.bytes;
            while left > 0 {
                let n = left.min(chunk.len() as u64) as usize;
                f.write_all(&chunk[..n])?;
                left -= n as u64;
            }
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            return if is_full(&e) { Ok(false) } else { Err(e) };
        }
        Ok(true)
    }
}

/// Whether an I/O error means the filesystem (or a quota) is full.
pub fn is_full(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(code) if code == rustix::io::Errno::NOSPC.raw_os_error()
            || code == rustix::io::Errno::DQUOT.raw_os_error()
    )
}

fn space(path: &Path) -> io::Result<Space> {
    let s = rustix::fs::statvfs(path)?;
    Ok(Space {
        free_bytes: s.f_bavail.saturating_mul(s.f_frsize),
        total_bytes: s.f_blocks.saturating_mul(s.f_frsize),
        free_inodes: s.f_favail,
        total_inodes: s.f_files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_follows_the_filesystem() {
        let r = Reserve::for_space(&Space {
            free_bytes: 0,
            total_bytes: 100 << 20,
            free_inodes: 0,
            total_inodes: 1000,
        });
        assert_eq!(r.bytes, 2 << 20);
        assert_eq!(r.inodes, 20);
        let big = Reserve::for_space(&Space {
            free_bytes: 0,
            total_bytes: 1 << 40,
            free_inodes: 0,
            total_inodes: 1 << 30,
        });
        assert_eq!(big.bytes, 1 << 30);
        assert_eq!(big.inodes, 10_000);
    }

    #[test]
    fn refuses_what_would_eat_into_the_reserve() {
        let dir = tempfile::tempdir().unwrap();
        let space = space(dir.path()).unwrap();
        assert!(space.total_bytes > 0 && space.free_bytes <= space.total_bytes);
        let guard = DiskGuard::new(
            dir.path(),
            Some(Reserve {
                bytes: space.free_bytes / 2,
                inodes: 0,
            }),
        )
        .unwrap();
        assert!(guard.check(0).is_ok());
        let full = guard.check(space.free_bytes).unwrap_err();
        assert_eq!(full.reserve.bytes, space.free_bytes / 2);
        assert!(
            full.to_string()
                .starts_with("the platform's disk is full: "),
            "{full}"
        );
        let all = DiskGuard::new(
            dir.path(),
            Some(Reserve {
                bytes: u64::MAX / 2,
                inodes: 0,
            }),
        )
        .unwrap();
        assert!(all.check(0).is_err());
        assert!(DiskGuard::unreserved(dir.path()).check(0).is_ok());
    }

    #[test]
    fn ballast_is_taken_only_with_room_beyond_the_reserve_and_given_back() {
        let dir = tempfile::tempdir().unwrap();
        let roomy = DiskGuard::new(
            dir.path(),
            Some(Reserve {
                bytes: 2 << 20,
                inodes: 0,
            }),
        )
        .unwrap();
        let ballast = Ballast::for_guard(&dir.path().join("ballast"), &roomy);
        assert_eq!(ballast.bytes(), 1 << 20);
        assert!(!ballast.is_held());
        assert!(ballast.take(&roomy).unwrap());
        assert!(ballast.is_held());
        assert_eq!(
            std::fs::metadata(dir.path().join("ballast")).unwrap().len(),
            1 << 20
        );
        assert!(ballast.release());
        assert!(!ballast.is_held());
        assert!(!ballast.release(), "nothing left to give");
        let full = DiskGuard::new(
            dir.path(),
            Some(Reserve {
                bytes: u64::MAX / 4,
                inodes: 0,
            }),
        )
        .unwrap();
        assert!(!ballast.take(&full).unwrap(), "no room beyond the reserve");
        assert!(!dir.path().join("ballast").exists());
    }

    #[test]
    fn knows_a_full_disk_when_it_sees_one() {
        let guard = DiskGuard::unreserved(Path::new("/"));
        assert!(is_full(&io::Error::from_raw_os_error(28)), "ENOSPC");
        assert!(is_full(&io::Error::from_raw_os_error(122)), "EDQUOT");
        assert!(!is_full(&io::Error::from_raw_os_error(13)));
        assert!(guard.full_error(&io::Error::other("x")).is_none());
        assert!(
            guard
                .full_error(&io::Error::from_raw_os_error(28))
                .is_some()
        );
    }
}
