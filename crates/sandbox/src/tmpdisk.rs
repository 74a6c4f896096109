//! Each environment's `/tmp`: a disk of its own, as on Lambda.
//!
//! An ext4 filesystem of exactly `EphemeralStorage` usable megabytes on a
//! loop device, backed by a sparse file. Per size, one template is formatted
//! once (`mke2fs`, from e2fsprogs, which Debian ranks "required") and kept
//! under the state directory; an environment gets a sparse copy of it (only
//! the template's few hundred kilobytes of metadata are copied), attached to a
//! free loop device with auto-clear and direct I/O, after which the copy is
//! unlinked at once. The environment mounts the device inside its own mount
//! namespace only. So the kernel frees everything when the environment ends,
//! whatever happens to the platform: the last unmount (the namespace going
//! away) releases the device, auto-clear detaches it, and the unlinked file
//! goes with its last reference. A `kill -9` of the platform leaves at most a
//! copy being made, removed at the next start.
//!
//! Page cache for the disk is charged to the environment's memory cgroup but
//! is reclaimable (written back to the device under pressure), so a 128 MB
//! function can fill a 10 GB `/tmp`; direct I/O on the loop device keeps a
//! second copy out of the host's cache.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Filesystem block size of the disks.
const BLOCK: u64 = 4096;
/// Usable space beyond the configured size, so that a file of exactly the
/// configured size fits with its own metadata (extent blocks).
const SLACK_BLOCKS: u64 = 64;

/// Why a `/tmp` disk could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TmpDiskError {
    #[error("cannot format a /tmp template at {path}: {reason}")]
    Format { path: PathBuf, reason: String },
    #[error("cannot prepare a /tmp disk at {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot attach a loop device for /tmp: {0}")]
    Loop(std::io::Error),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TmpDiskError + '_ {
    move |source| TmpDiskError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Makes `/tmp` disks for environments.
pub struct TmpDisks {
    templates_dir: PathBuf,
    work_dir: PathBuf,
    templates: Mutex<HashMap<u32, Arc<File>>>,
}

/// One environment's `/tmp` device, attached and auto-clearing. Hold it until
/// the environment has mounted it (closing the last descriptor of an
/// unmounted auto-clear device detaches it).
pub struct TmpDisk {
    _device: File,
    /// `/dev/loopN`.
    pub path: PathBuf,
}

/// The ext4 superblock fields the sizing needs: (blocks, free blocks).
fn superblock_counts(image: &File) -> std::io::Result<(u64, u64)> {
    let mut sb = [0u8; 1024];
    image.read_exact_at(&mut sb, 1024)?;
    let u32_at = |o: usize| u64::from(u32::from_le_bytes([sb[o], sb[o + 1], sb[o + 2], sb[o + 3]]));
    if sb[0x38..0x3a] != [0x53, 0xef] {
        return Err(std::io::Error::other("not an ext4 superblock"));
    }
    // 64-bit counts when the feature is on (INCOMPAT_64BIT = 0x80).
    let wide = u32_at(0x60) & 0x80 != 0;
    let blocks = u32_at(0x4) | if wide { u32_at(0x150) << 32 } else { 0 };
    let free = u32_at(0xC) | if wide { u32_at(0x158) << 32 } else { 0 };
    Ok((blocks, free))
}

/// What an unprivileged writer can use: free blocks less the clusters ext4
/// keeps back for itself (2 %, at most 4,096; `ext4_calculate_resv_clusters`).
fn usable_blocks(blocks: u64, free: u64) -> u64 {
    free.saturating_sub((blocks / 50).min(4096))
}

fn mke2fs() -> PathBuf {
    for p in ["/usr/sbin/mke2fs", "/sbin/mke2fs"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    PathBuf::from("mke2fs")
}

impl TmpDisks {
    /// Uses `dir` for templates and copies; removes copies an earlier run
    /// left (killed between copying and attaching). Fails when this host
    /// has no loop devices.
    pub fn new(dir: &Path) -> Result<Self, TmpDiskError> {
        let templates_dir = dir.join("templates");
        let work_dir = dir.join("work");
        for d in [&templates_dir, &work_dir] {
            std::fs::create_dir_all(d).map_err(io(d))?;
        }
        if let Ok(entries) = std::fs::read_dir(&work_dir) {
            for e in entries.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
        File::open("/dev/loop-control").map_err(TmpDiskError::Loop)?;
        Ok(Self {
            templates_dir,
            work_dir,
            templates: Mutex::new(HashMap::new()),
        })
    }

    /// The formatted template for `mb` usable megabytes (made once, kept).
    pub fn template(&self, mb: u32) -> Result<Arc<File>, TmpDiskError> {
        let mut cache = self.templates.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = cache.get(&mb) {
            return Ok(t.clone());
        }
        let path = self.templates_dir.join(format!("{mb}m.ext4"));
        let existing = File::open(&path)
            .ok()
            .filter(|f| superblock_counts(f).is_ok_and(|(b, f)| usable_blocks(b, f) >= want(mb)));
        let file = match existing {
            Some(f) => f,
            None => self.format(mb, &path)?,
        };
        let file = Arc::new(file);
        cache.insert(mb, file.clone());
        Ok(file)
    }

    /// Formats a template with at least `mb` MiB (plus a little slack) free
    /// to an unprivileged writer. The metadata's share depends on the size,
    /// so the size is grown by the shortfall until it fits (two or three
    /// rounds).
    fn format(&self, mb: u32, path: &Path) -> Result<File, TmpDiskError> {
        let tmp = self
            .templates_dir
            .join(format!(".{mb}m.{}.partial", std::process::id()));
        let target = want(mb);
        let mut blocks = target + target / 50 + 128;
        let mut fitting: Option<u64> = None;
        for round in 0..10 {
            let _ = std::fs::remove_file(&tmp);
            let out = std::process::Command::new(mke2fs())
                .args(["-q", "-F", "-t", "ext4", "-b", "4096", "-m", "0"])
                .args(["-O", "^has_journal,^resize_inode"])
                .args(["-E", "lazy_itable_init=1,nodiscard,root_owner=0:0"])
                .arg(&tmp)
                .arg(blocks.to_string())
                .stdin(std::process::Stdio::null())
                .output()
                .map_err(|e| TmpDiskError::Format {
                    path: path.to_owned(),
                    reason: format!("cannot run mke2fs (install e2fsprogs): {e}"),
                })?;
            if !out.status.success() {
                let _ = std::fs::remove_file(&tmp);
                return Err(TmpDiskError::Format {
                    path: path.to_owned(),
                    reason: format!("mke2fs: {}", String::from_utf8_lossy(&out.stderr).trim()),
                });
            }
            let f = File::open(&tmp).map_err(io(&tmp))?;
            let (total, free) = superblock_counts(&f).map_err(io(&tmp))?;
            let usable = usable_blocks(total, free);
            // Within 256 blocks (1 MiB) over, or the smallest size found to
            // fit once the rounds run out.
            let last = round == 9 || fitting == Some(blocks);
            if usable >= target && (usable - target < 256 || last) {
                std::fs::rename(&tmp, path).map_err(io(path))?;
                return Ok(f);
            }
            if usable >= target {
                fitting = Some(fitting.map_or(blocks, |b| b.min(blocks)));
                blocks -= (usable - target) / 2 + 1;
            } else {
                blocks += target - usable;
                if let Some(b) = fitting
                    && blocks >= b
                {
                    blocks = b;
                }
            }
        }
        let _ = std::fs::remove_file(&tmp);
        Err(TmpDiskError::Format {
            path: path.to_owned(),
            reason: "the size did not converge".into(),
        })
    }

    /// A fresh `/tmp` disk of `mb` usable MiB for the environment `id`.
    pub fn attach(&self, mb: u32, id: &str) -> Result<TmpDisk, TmpDiskError> {
        let template = self.template(mb)?;
        let copy = self.work_dir.join(format!("{id}.ext4"));
        let backing = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&copy)
            .map_err(io(&copy))?;
        let made = sparse_copy(&template, &backing)
            .and_then(|()| attach_loop(&backing).map_err(|e| std::io::Error::other(e.to_string())));
        // Whatever happened, the name goes: the loop device holds the file.
        let _ = std::fs::remove_file(&copy);
        made.map_err(|e| TmpDiskError::Loop(std::io::Error::other(e.to_string())))
    }
}

/// Usable blocks wanted for `mb` MiB.
fn want(mb: u32) -> u64 {
    u64::from(mb) * (1 << 20) / BLOCK + SLACK_BLOCKS
}

/// Copies the data of `from` into `to` (empty), leaving holes as holes.
fn sparse_copy(from: &File, to: &File) -> std::io::Result<()> {
    let len = from.metadata()?.len();
    to.set_len(len)?;
    let mut pos: i64 = 0;
    let fd = from.as_raw_fd();
    while (pos as u64) < len {
        // SAFETY: lseek on a descriptor we own.
        let data = unsafe { libc::lseek(fd, pos, libc::SEEK_DATA) };
        if data < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENXIO) {
                break;
            }
            return Err(e);
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
        if hole < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut off_in = data;
        let mut off_out = data;
        while off_in < hole {
            // SAFETY: copy_file_range between two descriptors we own, with
            // offsets we own.
            let n = unsafe {
                libc::copy_file_range(
                    fd,
                    &mut off_in,
                    to.as_raw_fd(),
                    &mut off_out,
                    (hole - off_in) as usize,
                    0,
                )
            };
            if n < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if n == 0 {
                break;
            }
        }
        pos = hole;
    }
    Ok(())
}

const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LO_FLAGS_AUTOCLEAR: u32 = 4;
const LO_FLAGS_DIRECT_IO: u32 = 16;

#[repr(C)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; 64],
    lo_crypt_name: [u8; 64],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// Binds `backing` to a free loop device (auto-clear, direct I/O, 4 KiB
/// blocks). Another process may take the device between the look-up and the
/// bind; then the next free one is tried.
fn attach_loop(backing: &File) -> std::io::Result<TmpDisk> {
    // `LOOP_CTL_GET_FREE` hands every concurrent caller the same free
    // device and all but one lose it to EBUSY: take turns within this
    // process, and retry (with a growing pause) against other processes.
    static ATTACHING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ATTACHING.lock().unwrap_or_else(|p| p.into_inner());
    let control = File::open("/dev/loop-control")?;
    let mut last = None;
    for attempt in 0..64u64 {
        if attempt > 0 {
            std::thread::sleep(std::time::Duration::from_micros(100 * attempt.min(20)));
        }
        // SAFETY: an ioctl without arguments on the loop control device.
        let n = unsafe { libc::ioctl(control.as_raw_fd(), LOOP_CTL_GET_FREE) };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let path = PathBuf::from(format!("/dev/loop{n}"));
        let c = CString::new(path.as_os_str().as_encoded_bytes()).map_err(std::io::Error::other)?;
        // SAFETY: open(2) on a NUL-terminated path.
        let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        if fd < 0 {
            last = Some(std::io::Error::last_os_error());
            continue;
        }
        // SAFETY: a new descriptor nothing else owns.
        let device = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        // SAFETY: all-zero is a valid LoopConfig (plain integers and arrays).
        let mut config: LoopConfig = unsafe { std::mem::zeroed() };
        config.fd = backing.as_raw_fd() as u32;
        config.block_size = BLOCK as u32;
        config.info.lo_flags = LO_FLAGS_AUTOCLEAR | LO_FLAGS_DIRECT_IO;
        // SAFETY: LOOP_CONFIGURE reads the config we own.
        let r = unsafe { libc::ioctl(device.as_raw_fd(), LOOP_CONFIGURE, &config) };
        if r == 0 {
            return Ok(TmpDisk {
                _device: device,
                path,
            });
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EBUSY) {
            return Err(e);
        }
        last = Some(e);
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free loop device")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_have_the_asked_space_and_little_more() {
        let dir = tempfile::tempdir().unwrap();
        let disks = TmpDisks::new(dir.path()).unwrap();
        for mb in [16, 512] {
            let t = disks.template(mb).unwrap();
            let (blocks, free) = superblock_counts(&t).unwrap();
            let usable = usable_blocks(blocks, free);
            let asked = u64::from(mb) * 256;
            assert!(usable >= asked + SLACK_BLOCKS, "{mb} MiB: {usable} blocks");
            assert!(
                usable < asked + SLACK_BLOCKS + 256,
                "{mb} MiB: {usable} blocks usable is more than 1 MiB over"
            );
            // Sparse: only metadata is written.
            let on_disk = std::os::unix::fs::MetadataExt::blocks(&t.metadata().unwrap()) * 512;
            assert!(on_disk < 4 << 20, "{mb} MiB template uses {on_disk} bytes");
        }
        // Kept: a second instance reuses the file.
        let again = TmpDisks::new(dir.path()).unwrap();
        let before = std::fs::metadata(dir.path().join("templates/16m.ext4"))
            .unwrap()
            .modified()
            .unwrap();
        again.template(16).unwrap();
        let after = std::fs::metadata(dir.path().join("templates/16m.ext4"))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(before, after);
    }

    #[test]
    fn concurrent_attaches_all_get_a_device() {
        // A burst of cold starts attaches disks at once: each must get its
        // own device, none an EBUSY from losing the same free one.
        let dir = tempfile::tempdir().unwrap();
        let disks = std::sync::Arc::new(TmpDisks::new(dir.path()).unwrap());
        disks.template(16).unwrap();
        let threads: Vec<_> = (0..48)
            .map(|i| {
                let disks = disks.clone();
                std::thread::spawn(move || disks.attach(16, &format!("c{i}")))
            })
            .collect();
        let attached: Vec<TmpDisk> = threads
            .into_iter()
            .map(|t| t.join().unwrap().unwrap())
            .collect();
        let mut paths: Vec<_> = attached.iter().map(|d| d.path.clone()).collect();
        paths.sort();
        paths.dedup();
        assert_eq!(paths.len(), 48);
    }

    #[test]
    fn an_attached_disk_leaves_no_file_and_detaches_itself() {
        let dir = tempfile::tempdir().unwrap();
        let disks = TmpDisks::new(dir.path()).unwrap();
        let disk = disks.attach(16, "t1").unwrap();
        assert!(
            std::fs::read_dir(dir.path().join("work"))
                .unwrap()
                .next()
                .is_none()
        );
        let name = disk
            .path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let backing = format!("/sys/block/{name}/loop/backing_file");
        let shown = std::fs::read_to_string(&backing).unwrap();
        assert!(shown.contains("(deleted)"), "{shown}");
        assert_eq!(
            std::fs::read_to_string(format!("/sys/block/{name}/loop/autoclear"))
                .unwrap()
                .trim(),
            "1"
        );
        drop(disk);
        // Detached once the last descriptor closed (nothing mounted it).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let still = std::fs::read_to_string(&backing)
                .map(|s| s == shown)
                .unwrap_or(false);
            if !still {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{name} still bound");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}
