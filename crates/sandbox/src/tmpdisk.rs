//! Each environment's `/tmp`: a disk of its own, as on Lambda.
//!
//! An ext4 filesystem of exactly `EphemeralStorage` usable megabytes on a
//! loop device, backed by a sparse file. Per size, one template is formatted
//! once (`mke2fs`, from e2fsprogs, which Debian ranks "required") and kept
//! under the state directory; a disk is a sparse copy of it (only the
//! template's few hundred kilobytes of metadata are copied), attached to a
//! free loop device with auto-clear and direct I/O, after which the copy is
//! unlinked at once. The filesystem is then mounted nowhere (`fsmount`: a
//! detached mount, held by a descriptor), and the environment moves it onto
//! its `/tmp` inside its own mount namespace (`move_mount`). So the kernel
//! frees everything when the environment ends, whatever happens to the
//! platform: the last unmount (the namespace going away) releases the
//! device, auto-clear detaches it, and the unlinked file goes with its last
//! reference. A disk not yet handed out goes the same way when its
//! descriptor closes, at the latest when the platform's process ends (even
//! by `kill -9`). What can be left is a copy being made, removed at the
//! next start.
//!
//! Copying, attaching and mounting take milliseconds, so they are kept off
//! the cold path: [`TmpDisks`] keeps a few disks of each recently used size
//! ready ([`ReserveSize`]) and a thread of its own refills them. A disk is
//! handed out once: taking it moves it out of the reserve. When the reserve
//! of a size is empty (a burst of cold starts), disks are made on demand.
//!
//! Page cache for the disk is charged to the environment's memory cgroup but
//! is reclaimable (written back to the device under pressure), so a 128 MB
//! function can fill a 10 GB `/tmp`; direct I/O on the loop device keeps a
//! second copy out of the host's cache.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

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
    #[error("cannot mount the /tmp disk {device}: {source}")]
    Mount {
        device: PathBuf,
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TmpDiskError + '_ {
    move |source| TmpDiskError::Io {
        path: path.to_owned(),
        source,
    }
}

/// How many disks are kept ready ahead of demand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReserveSize {
    /// Disks kept ready per size.
    pub per_size: usize,
    /// Sizes kept ready at once: the most recently asked for. A size that
    /// falls out gives its disks back.
    pub sizes: usize,
}

impl ReserveSize {
    /// Four disks for each of the three sizes asked for last: at most
    /// twelve loop devices held ahead of demand.
    pub const DEFAULT: Self = Self {
        per_size: 4,
        sizes: 3,
    };
    /// Nothing ahead of demand: every disk is made when asked for.
    pub const NONE: Self = Self {
        per_size: 0,
        sizes: 0,
    };
}

/// How disks were handed out, since the start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReserveCounts {
    /// Handed out ready-made.
    pub from_reserve: u64,
    /// Made on demand (the reserve of that size was empty).
    pub on_demand: u64,
    /// Ready now, all sizes.
    pub ready: usize,
}

/// Makes `/tmp` disks for environments, keeping a few of each recently used
/// size ready (copied, attached and mounted nowhere yet) and refilling them
/// on a thread of its own.
pub struct TmpDisks {
    shared: Arc<Shared>,
    refill: Option<std::thread::JoinHandle<()>>,
}

struct Shared {
    maker: Maker,
    config: ReserveSize,
    reserve: Mutex<Reserve>,
    /// Wakes the refill thread: a disk was taken, a size was asked for, or
    /// the owner is going away.
    wake: Condvar,
    from_reserve: AtomicU64,
    on_demand: AtomicU64,
}

#[derive(Default)]
struct Reserve {
    /// Sizes kept ready, least recently asked for first.
    sizes: Vec<u32>,
    ready: HashMap<u32, Vec<TmpDisk>>,
    /// Disks of sizes no longer kept, for the refill thread to release
    /// (unmounting is not free; takers should not pay for it).
    discard: Vec<TmpDisk>,
    stopping: bool,
}

impl Reserve {
    /// Marks `mb` as most recently asked for; a size beyond the bound
    /// gives its disks back.
    fn asked(&mut self, mb: u32, bound: usize) {
        if bound == 0 {
            return;
        }
        self.sizes.retain(|s| *s != mb);
        self.sizes.push(mb);
        while self.sizes.len() > bound {
            let old = self.sizes.remove(0);
            if let Some(disks) = self.ready.remove(&old) {
                self.discard.extend(disks);
            }
        }
    }

    /// The most recently asked size whose reserve is short.
    fn short(&self, per_size: usize) -> Option<u32> {
        self.sizes
            .iter()
            .rev()
            .find(|mb| self.ready.get(mb).map_or(0, Vec::len) < per_size)
            .copied()
    }
}

/// Templates and the making of one disk.
struct Maker {
    templates_dir: PathBuf,
    work_dir: PathBuf,
    templates: Mutex<HashMap<u32, Arc<File>>>,
}

/// One environment's `/tmp`: an ext4 filesystem on an attached,
/// auto-clearing loop device, mounted nowhere yet (a detached mount,
/// `fsmount`): the environment moves it onto its `/tmp`. Dropping it before
/// then releases the mount and the device.
pub struct TmpDisk {
    /// The detached mount. Once moved into an environment's mount
    /// namespace, closing it changes nothing.
    mount: OwnedFd,
    _device: File,
    /// `/dev/loopN`.
    pub path: PathBuf,
}

impl TmpDisk {
    /// The detached mount, for `move_mount` inside the environment.
    pub fn mount_fd(&self) -> RawFd {
        self.mount.as_raw_fd()
    }
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
    /// has no loop devices. Keeps nothing ready ahead of demand.
    pub fn new(dir: &Path) -> Result<Self, TmpDiskError> {
        Self::with_reserve(dir, ReserveSize::NONE)
    }

    /// Like [`TmpDisks::new`], keeping `reserve` disks ready and refilling
    /// them on a thread of its own (which stops, and gives every ready disk
    /// back, when this is dropped).
    pub fn with_reserve(dir: &Path, reserve: ReserveSize) -> Result<Self, TmpDiskError> {
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
        let shared = Arc::new(Shared {
            maker: Maker {
                templates_dir,
                work_dir,
                templates: Mutex::new(HashMap::new()),
            },
            config: reserve,
            reserve: Mutex::new(Reserve::default()),
            wake: Condvar::new(),
            from_reserve: AtomicU64::new(0),
            on_demand: AtomicU64::new(0),
        });
        let refill = if reserve.per_size > 0 && reserve.sizes > 0 {
            let s = shared.clone();
            Some(
                std::thread::Builder::new()
                    .name("tmp-disk-refill".into())
                    .spawn(move || refill(&s))
                    .map_err(|e| TmpDiskError::Io {
                        path: dir.to_owned(),
                        source: e,
                    })?,
            )
        } else {
            None
        };
        Ok(Self { shared, refill })
    }

    /// The formatted template for `mb` usable megabytes (made once, kept).
    pub fn template(&self, mb: u32) -> Result<Arc<File>, TmpDiskError> {
        self.shared.maker.template(mb)
    }

    /// Keeps disks of `mb` MiB ready from now on (as if one had been asked
    /// for), without taking one.
    pub fn keep_ready(&self, mb: u32) {
        self.shared.lock().asked(mb, self.shared.config.sizes);
        self.shared.wake.notify_all();
    }

    /// A fresh `/tmp` disk of `mb` usable MiB for the environment `id`: a
    /// ready one when there is one (never handed out twice: taking it
    /// removes it from the reserve), else one made now.
    pub fn take(&self, mb: u32, id: &str) -> Result<TmpDisk, TmpDiskError> {
        let ready = {
            let mut r = self.shared.lock();
            r.asked(mb, self.shared.config.sizes);
            r.ready.get_mut(&mb).and_then(Vec::pop)
        };
        self.shared.wake.notify_all();
        match ready {
            Some(disk) => {
                self.shared.from_reserve.fetch_add(1, Ordering::Relaxed);
                Ok(disk)
            }
            None => {
                self.shared.on_demand.fetch_add(1, Ordering::Relaxed);
                self.shared.maker.make(mb, id)
            }
        }
    }

    /// How disks were handed out so far, and how many are ready.
    pub fn counts(&self) -> ReserveCounts {
        let ready = self.shared.lock().ready.values().map(Vec::len).sum();
        ReserveCounts {
            from_reserve: self.shared.from_reserve.load(Ordering::Relaxed),
            on_demand: self.shared.on_demand.load(Ordering::Relaxed),
            ready,
        }
    }

    /// Disks of `mb` MiB ready now.
    pub fn ready(&self, mb: u32) -> usize {
        self.shared.lock().ready.get(&mb).map_or(0, Vec::len)
    }
}

impl Drop for TmpDisks {
    fn drop(&mut self) {
        let ready: Vec<TmpDisk> = {
            let mut r = self.shared.lock();
            r.stopping = true;
            let mut all: Vec<TmpDisk> = r.ready.drain().flat_map(|(_, d)| d).collect();
            all.append(&mut r.discard);
            all
        };
        self.shared.wake.notify_all();
        if let Some(t) = self.refill.take() {
            let _ = t.join();
        }
        drop(ready);
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Reserve> {
        self.reserve.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The refill thread: makes disks for the most recently asked size that is
/// short, one at a time, until told to stop. After a failure (no loop
/// device free, disk full) it waits a growing pause before trying again;
/// takers then get disks made on demand, which report the error themselves.
fn refill(shared: &Shared) {
    let mut made: u64 = 0;
    let mut pause = std::time::Duration::ZERO;
    loop {
        let mb = {
            let mut r = shared.lock();
            if !pause.is_zero() && !r.stopping {
                r = shared
                    .wake
                    .wait_timeout(r, pause)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
            loop {
                if r.stopping {
                    return;
                }
                if !r.discard.is_empty() {
                    let old = std::mem::take(&mut r.discard);
                    drop(r);
                    drop(old);
                    r = shared.lock();
                    continue;
                }
                if let Some(mb) = r.short(shared.config.per_size) {
                    break mb;
                }
                r = shared.wake.wait(r).unwrap_or_else(|p| p.into_inner());
            }
        };
        made += 1;
        let started = std::time::Instant::now();
        let cpu_before = thread_cpu();
        match shared
            .maker
            .make(mb, &format!("ready-{}-{made}", std::process::id()))
        {
            Ok(disk) => {
                tracing::debug!(
                    size_mb = mb,
                    took_us = started.elapsed().as_micros() as u64,
                    cpu_us = thread_cpu().saturating_sub(cpu_before).as_micros() as u64,
                    "a /tmp disk made ready"
                );
                pause = std::time::Duration::ZERO;
                let mut r = shared.lock();
                if r.stopping {
                    drop(r);
                    drop(disk);
                    return;
                }
                if r.sizes.contains(&mb) {
                    r.ready.entry(mb).or_default().push(disk);
                } else {
                    r.discard.push(disk);
                }
            }
            Err(e) => {
                if pause.is_zero() {
                    tracing::warn!(error = %e, size_mb = mb, "cannot make a /tmp disk ahead of demand; retrying later");
                }
                pause = (pause * 2).clamp(
                    std::time::Duration::from_millis(250),
                    std::time::Duration::from_secs(30),
                );
            }
        }
    }
}

/// CPU time the calling thread has used.
fn thread_cpu() -> std::time::Duration {
    // SAFETY: clock_gettime writes the timespec we own.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return std::time::Duration::ZERO;
    }
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

impl Maker {
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

    /// A fresh `/tmp` disk of `mb` usable MiB, named `id` while it is
    /// being copied: a sparse copy of the template, attached to a loop
    /// device and mounted nowhere.
    fn make(&self, mb: u32, id: &str) -> Result<TmpDisk, TmpDiskError> {
        let template = self.template(mb)?;
        let copy = self.work_dir.join(format!("{id}.ext4"));
        let backing = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&copy)
            .map_err(io(&copy))?;
        let attached = sparse_copy(&template, &backing).and_then(|()| attach_loop(&backing));
        // Whatever happened, the name goes: the loop device holds the file.
        let _ = std::fs::remove_file(&copy);
        let (device, path) = attached.map_err(TmpDiskError::Loop)?;
        let mount = mount_detached(&path).map_err(|e| TmpDiskError::Mount {
            device: path.clone(),
            source: e,
        })?;
        Ok(TmpDisk {
            mount,
            _device: device,
            path,
        })
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
fn attach_loop(backing: &File) -> std::io::Result<(File, PathBuf)> {
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
            return Ok((device, path));
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EBUSY) {
            return Err(e);
        }
        last = Some(e);
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free loop device")))
}

/// Mounts the ext4 filesystem on `device` without attaching it anywhere
/// (`fsopen`/`fsmount`), with the options an environment's `/tmp` has, and
/// makes it ready for use: its root world-writable with the sticky bit,
/// without `lost+found`. The mount lives as long as the returned descriptor
/// unless it is moved into a mount namespace first.
fn mount_detached(device: &Path) -> std::io::Result<OwnedFd> {
    let source =
        CString::new(device.as_os_str().as_encoded_bytes()).map_err(std::io::Error::other)?;
    let check = |r: libc::c_long| -> std::io::Result<libc::c_long> {
        if r < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(r)
        }
    };
    // SAFETY: fsopen with a NUL-terminated filesystem name; the result is
    // a new descriptor nothing else owns.
    let context = unsafe {
        OwnedFd::from_raw_fd(check(libc::syscall(
            libc::SYS_fsopen,
            c"ext4".as_ptr(),
            libc::FSOPEN_CLOEXEC,
        ))? as RawFd)
    };
    // SAFETY: fsconfig on our context with NUL-terminated keys and values.
    // noinit_itable: the template's inode tables are holes that read as
    // zeros; zeroing them again would only cost writes.
    unsafe {
        check(libc::syscall(
            libc::SYS_fsconfig,
            context.as_raw_fd(),
            libc::FSCONFIG_SET_STRING,
            c"source".as_ptr(),
            source.as_ptr(),
            0,
        ))?;
        check(libc::syscall(
            libc::SYS_fsconfig,
            context.as_raw_fd(),
            libc::FSCONFIG_SET_FLAG,
            c"noinit_itable".as_ptr(),
            std::ptr::null::<libc::c_char>(),
            0,
        ))?;
        check(libc::syscall(
            libc::SYS_fsconfig,
            context.as_raw_fd(),
            libc::FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_char>(),
            0,
        ))?;
    }
    // SAFETY: fsmount of our configured context; the result is a new
    // descriptor nothing else owns.
    let mount = unsafe {
        OwnedFd::from_raw_fd(check(libc::syscall(
            libc::SYS_fsmount,
            context.as_raw_fd(),
            libc::FSMOUNT_CLOEXEC,
            libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV,
        ))? as RawFd)
    };
    // SAFETY: openat relative to the mount's root with a NUL-terminated
    // path; the result is a new descriptor nothing else owns.
    let root = unsafe {
        let fd = libc::openat(
            mount.as_raw_fd(),
            c".".as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        );
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        OwnedFd::from_raw_fd(fd)
    };
    // SAFETY: fchmod and unlinkat on the descriptor just opened.
    unsafe {
        if libc::fchmod(root.as_raw_fd(), 0o1777) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::unlinkat(root.as_raw_fd(), c"lost+found".as_ptr(), libc::AT_REMOVEDIR) != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ENOENT) {
                return Err(e);
            }
        }
    }
    Ok(mount)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Waits for `f` to hold, up to `secs` seconds scaled by
    /// `LAMBENT_TEST_TIMEOUT_SCALE`.
    fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
        let scale = std::env::var("LAMBENT_TEST_TIMEOUT_SCALE")
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0)
            .unwrap_or(1.0);
        let deadline =
            std::time::Instant::now() + std::time::Duration::from_secs(secs).mul_f64(scale);
        while !f() {
            assert!(std::time::Instant::now() < deadline, "timed out: {what}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// The names in the disk's root, and its root's mode.
    fn contents(disk: &TmpDisk) -> (Vec<String>, u32) {
        // SAFETY: openat/fstat on the disk's mount descriptor; the new
        // descriptor is owned by the File.
        let dir = unsafe {
            let fd = libc::openat(
                disk.mount_fd(),
                c".".as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            );
            assert!(fd >= 0, "{}", std::io::Error::last_os_error());
            File::from(OwnedFd::from_raw_fd(fd))
        };
        let mode = std::os::unix::fs::PermissionsExt::mode(&dir.metadata().unwrap().permissions());
        let names = std::fs::read_dir(format!("/proc/self/fd/{}", dir.as_raw_fd()))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        (names, mode & 0o7777)
    }

    /// Leaves a file on the disk, as an environment would.
    fn scribble(disk: &TmpDisk, name: &str) {
        let c = CString::new(name).unwrap();
        // SAFETY: openat relative to the disk's mount with a NUL-terminated
        // name; the descriptor is closed by the File.
        let f = unsafe {
            let fd = libc::openat(
                disk.mount_fd(),
                c.as_ptr(),
                libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                0o600,
            );
            assert!(fd >= 0, "{}", std::io::Error::last_os_error());
            File::from(OwnedFd::from_raw_fd(fd))
        };
        f.write_all_at(b"used", 0).unwrap();
    }

    /// Loop devices whose backing file lives under `dir`.
    fn devices_under(dir: &Path) -> Vec<String> {
        let mut found = Vec::new();
        for d in std::fs::read_dir("/sys/block").unwrap().flatten() {
            let Ok(backing) = std::fs::read_to_string(d.path().join("loop/backing_file")) else {
                continue;
            };
            if backing.starts_with(&*dir.to_string_lossy()) {
                found.push(format!(
                    "{}: {}",
                    d.file_name().to_string_lossy(),
                    backing.trim()
                ));
            }
        }
        found
    }

    #[test]
    fn the_reserve_hands_out_ready_disks_once_and_refills() {
        let dir = tempfile::tempdir().unwrap();
        let disks = TmpDisks::with_reserve(
            dir.path(),
            ReserveSize {
                per_size: 3,
                sizes: 2,
            },
        )
        .unwrap();
        disks.keep_ready(16);
        wait_until("three disks ready", 60, || disks.ready(16) == 3);
        // Each ready disk is a fresh filesystem: empty, sticky and
        // world-writable, on a device of its own.
        let mut held: Vec<TmpDisk> = (0..3)
            .map(|i| disks.take(16, &format!("a{i}")).unwrap())
            .collect();
        assert_eq!(
            disks.counts().from_reserve,
            3,
            "the ready disks were used: {:?}",
            disks.counts()
        );
        assert_eq!(disks.counts().on_demand, 0);
        for d in &held {
            assert_eq!(contents(d), (vec![], 0o1777), "{}", d.path.display());
            scribble(d, "used");
        }
        let mut paths: Vec<_> = held.iter().map(|d| d.path.clone()).collect();
        paths.sort();
        paths.dedup();
        assert_eq!(paths.len(), 3);
        // Refilled in the background.
        wait_until("the reserve refilled", 60, || disks.ready(16) == 3);
        // A reserve emptied faster than it refills makes disks on demand.
        let more: Vec<TmpDisk> = (0..5)
            .map(|i| disks.take(16, &format!("b{i}")).unwrap())
            .collect();
        let counts = disks.counts();
        assert_eq!(counts.from_reserve + counts.on_demand, 8, "{counts:?}");
        assert!(counts.from_reserve >= 6, "{counts:?}");
        for d in &more {
            assert_eq!(contents(d), (vec![], 0o1777), "{}", d.path.display());
        }
        held.extend(more);
        let mut paths: Vec<_> = held.iter().map(|d| d.path.clone()).collect();
        paths.sort();
        paths.dedup();
        assert_eq!(paths.len(), 8, "every disk held has a device of its own");
    }

    #[test]
    fn concurrent_takers_never_share_a_disk() {
        // Many cold starts at once take from the same reserve while it
        // refills: each must get a fresh disk nobody else holds. A disk
        // handed out twice would show the first taker's file.
        let dir = tempfile::tempdir().unwrap();
        let disks = std::sync::Arc::new(
            TmpDisks::with_reserve(
                dir.path(),
                ReserveSize {
                    per_size: 4,
                    sizes: 1,
                },
            )
            .unwrap(),
        );
        disks.keep_ready(16);
        wait_until("four disks ready", 60, || disks.ready(16) == 4);
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let disks = disks.clone();
                std::thread::spawn(move || {
                    (0..4)
                        .map(|i| {
                            let d = disks.take(16, &format!("t{t}-{i}")).unwrap();
                            let seen = contents(&d);
                            scribble(&d, &format!("t{t}-{i}"));
                            (d, seen)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in threads {
            all.extend(t.join().unwrap());
        }
        for (d, seen) in &all {
            assert_eq!(
                seen,
                &(vec![], 0o1777),
                "{} was not fresh",
                d.path.display()
            );
        }
        let mut paths: Vec<_> = all.iter().map(|(d, _)| d.path.clone()).collect();
        paths.sort();
        paths.dedup();
        assert_eq!(paths.len(), 32);
        assert!(disks.counts().from_reserve >= 4, "{:?}", disks.counts());
    }

    #[test]
    fn a_size_no_longer_asked_for_and_the_owner_going_give_disks_back() {
        let dir = tempfile::tempdir().unwrap();
        let disks = TmpDisks::with_reserve(
            dir.path(),
            ReserveSize {
                per_size: 2,
                sizes: 1,
            },
        )
        .unwrap();
        disks.keep_ready(16);
        wait_until("two 16 MiB disks ready", 60, || disks.ready(16) == 2);
        let held = disks.take(24, "other").unwrap();
        assert_eq!(disks.ready(16), 0, "only the last size asked for is kept");
        wait_until("two 24 MiB disks ready", 60, || disks.ready(24) == 2);
        // The 16 MiB disks were released: three devices remain (the one
        // held, two ready).
        wait_until("the 16 MiB disks released", 30, || {
            devices_under(dir.path()).len() == 3
        });
        drop(held);
        drop(disks);
        // Shutting down leaves no device behind.
        wait_until("every device released", 30, || {
            devices_under(dir.path()).is_empty()
        });
    }

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
                std::thread::spawn(move || disks.take(16, &format!("c{i}")))
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
        let disk = disks.take(16, "t1").unwrap();
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
