//! Host-wide identities for environments. A slot is one unprivileged uid and
//! one network link (name and addresses); every live environment on the host
//! holds its own, whichever platform instance started it.
//!
//! A slot is leased by holding an exclusive `flock` on its file under
//! [`DEFAULT_DIR`]. The kernel drops the lock when the descriptor closes: when
//! the environment ends, or when its platform process ends in any way
//! (`kill -9` included, and its environments die with it). Nothing has to be
//! cleaned up, and a lease can never outlive its holder.

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// Where leases live (a tmpfs on any modern Linux: they last one boot).
pub const DEFAULT_DIR: &str = "/run/lambent/slots";
/// First uid (and gid) of environments: slot `n` runs as `UID_BASE + n`.
pub const UID_BASE: u32 = 2_000_000;
/// How many slots there are: one /30 of [`SUBNET`] each.
pub const COUNT: u32 = 1 << 14;
/// The subnet environments' links are carved from.
pub const SUBNET: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 213, 0, 0), 16);

/// The leases of this host.
#[derive(Debug)]
pub struct Slots {
    dir: PathBuf,
    count: u32,
    /// Where the next search starts: instances start at random places, so
    /// that they rarely probe each other's slots.
    next: AtomicU32,
}

/// One leased slot; the lease ends when this is dropped.
#[derive(Debug)]
pub struct Lease {
    _file: std::fs::File,
    pub slot: u32,
}

/// The host side of an environment's link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub name: String,
    pub host: Ipv4Addr,
    pub inside: Ipv4Addr,
}

impl Lease {
    pub fn uid(&self) -> u32 {
        UID_BASE + self.slot
    }

    pub fn link(&self) -> Link {
        link_of(self.slot)
    }
}

/// Slot `n`'s link: `lmb<n in hex>`, the `n`th /30 of [`SUBNET`].
pub fn link_of(slot: u32) -> Link {
    let base = u32::from(SUBNET.0) + (slot % COUNT) * 4;
    Link {
        name: format!("{}{:x}", crate::nft::LINK_PREFIX, slot),
        host: Ipv4Addr::from(base + 1),
        inside: Ipv4Addr::from(base + 2),
    }
}

fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    // SAFETY: getrandom writes at most `b.len()` bytes into `b`.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), libc::GRND_NONBLOCK) };
    if n == 4 {
        u32::from_ne_bytes(b)
    } else {
        std::process::id().wrapping_mul(0x9e37_79b9)
    }
}

impl Slots {
    /// Leases under `dir` (created, private to root), `count` slots.
    pub fn open(dir: &Path, count: u32) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        Ok(Self {
            dir: dir.to_owned(),
            count: count.clamp(1, COUNT),
            next: AtomicU32::new(random_u32()),
        })
    }

    /// Leases a free slot that `usable` accepts, or `None` when every slot
    /// is held (or refused).
    pub fn take(&self, usable: impl Fn(u32) -> bool) -> std::io::Result<Option<Lease>> {
        for _ in 0..self.count {
            let slot = self.next.fetch_add(1, Ordering::Relaxed) % self.count;
            if let Some(lease) = self.try_take(slot)?
                && usable(slot)
            {
                return Ok(Some(lease));
            }
        }
        Ok(None)
    }

    /// Leases `slot` if nobody holds it.
    pub fn try_take(&self, slot: u32) -> std::io::Result<Option<Lease>> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(self.dir.join(slot.to_string()))?;
        // SAFETY: flock on a descriptor we own.
        let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if r == 0 {
            return Ok(Some(Lease { _file: file, slot }));
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            Ok(None)
        } else {
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_distinct_slash_30s_of_the_subnet() {
        let a = link_of(0);
        assert_eq!(a.name, "lmb0");
        assert_eq!(a.host, Ipv4Addr::new(10, 213, 0, 1));
        assert_eq!(a.inside, Ipv4Addr::new(10, 213, 0, 2));
        let b = link_of(COUNT - 1);
        assert_eq!(b.name, "lmb3fff");
        assert_eq!(b.host, Ipv4Addr::new(10, 213, 255, 253));
        assert_eq!(b.inside, Ipv4Addr::new(10, 213, 255, 254));
        assert_eq!(link_of(0x41).host, Ipv4Addr::new(10, 213, 1, 5));
    }

    #[test]
    fn a_held_slot_is_not_handed_out_again_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let slots = Slots::open(dir.path(), 4).unwrap();
        let held: Vec<Lease> = (0..4)
            .map(|_| slots.take(|_| true).unwrap().unwrap())
            .collect();
        let mut seen: Vec<u32> = held.iter().map(|l| l.slot).collect();
        seen.sort();
        assert_eq!(seen, [0, 1, 2, 3]);
        assert!(slots.take(|_| true).unwrap().is_none(), "all four are held");
        // Another instance (its own open file descriptions) sees them held too.
        let other = Slots::open(dir.path(), 4).unwrap();
        assert!(other.take(|_| true).unwrap().is_none());
        drop(held);
        assert!(other.take(|_| true).unwrap().is_some());
    }

    #[test]
    fn refused_slots_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let slots = Slots::open(dir.path(), 8).unwrap();
        let l = slots.take(|s| s == 5).unwrap().unwrap();
        assert_eq!(l.slot, 5);
        assert!(slots.take(|s| s == 5).unwrap().is_none());
    }

    #[test]
    fn a_killed_holder_releases_its_lease() {
        use std::io::BufRead;
        let dir = tempfile::tempdir().unwrap();
        let slots = Slots::open(dir.path(), 1).unwrap();
        // Another process holds slot 0, as a server would.
        let mut holder = std::process::Command::new("python3")
            .arg("-c")
            .arg(
                "import fcntl, sys, time\n\
                 f = open(sys.argv[1], 'w')\n\
                 fcntl.flock(f, fcntl.LOCK_EX)\n\
                 print('locked', flush=True)\n\
                 time.sleep(60)\n",
            )
            .arg(dir.path().join("0"))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(holder.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "locked");
        assert!(
            slots.take(|_| true).unwrap().is_none(),
            "held by the other process"
        );
        holder.kill().unwrap(); // SIGKILL
        holder.wait().unwrap();
        assert!(
            slots.take(|_| true).unwrap().is_some(),
            "the lease ends with its holder"
        );
    }
}
