//! Resource limits through cgroups, on cgroup v2 hosts and on hosts with the
//! v1 controllers (memory, cpu, pids, freezer) mounted separately.
//!
//! Every writer takes root paths, so the logic is tested on plain directories.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// CPU a function gets, as Lambda allots it: one vCPU per 1,769 MB.
pub const MB_PER_VCPU: u64 = 1769;
/// Processes and threads per environment.
pub const PIDS_MAX: u64 = 1024;
/// A short CFS period: a throttled environment bursts for at most its share of
/// 20 ms at a time.
const CPU_PERIOD_US: u64 = 20_000;
/// The period of an account's CPU quota (the kernel's default).
const ACCOUNT_CPU_PERIOD_US: u64 = 100_000;
/// CPUs an environment may use during its init (Lambda boosts init; the boost
/// is bounded, and an environment's own share applies when that is larger).
pub const INIT_VCPUS: u64 = 1;
/// The prefix of an account's group inside the platform's group.
const ACCOUNT_PREFIX: &str = "acct-";

/// What the platform's environments may use together, and what one
/// account's environments may use together. Enforced by the platform's and
/// each account's cgroups; the pool admits cold starts against the same
/// figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Processes and threads of every environment of this platform instance.
    pub platform_pids: u64,
    /// Memory of every environment of this platform instance, bytes.
    pub platform_memory_bytes: u64,
    /// Processes and threads of one account's environments.
    pub account_pids: u64,
    /// Memory of one account's environments, bytes.
    pub account_memory_bytes: u64,
    /// CPU one account's environments may use together, in thousandths of a CPU.
    pub account_millicpus: u64,
}

/// What the host (or the cgroup the platform runs in) offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostResources {
    pub memory_bytes: u64,
    /// Processes and threads the kernel allows (`pid_max`, `threads-max`).
    pub pids: u64,
    pub cpus: u64,
}

impl HostResources {
    /// Reads `/proc` (memory, `kernel.pid_max`, `kernel.threads-max`) and the
    /// CPU count, lowered to the limits of the cgroup this process runs in.
    pub fn detect() -> Self {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_bytes = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(u64::MAX, |kb| kb * 1024);
        let read_num =
            |p: &str| -> Option<u64> { std::fs::read_to_string(p).ok()?.trim().parse().ok() };
        let pids = read_num("/proc/sys/kernel/pid_max")
            .unwrap_or(32_768)
            .min(read_num("/proc/sys/kernel/threads-max").unwrap_or(u64::MAX));
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
        let host = Self {
            memory_bytes,
            pids,
            cpus,
        };
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        match Hierarchy::from_proc(&own, &mounts, "lambent") {
            Ok(h) => host.within(&h.inherited()),
            Err(_) => host,
        }
    }

    /// Lowered to the limits of an enclosing group.
    fn within(self, inherited: &Inherited) -> Self {
        Self {
            memory_bytes: inherited
                .memory_bytes
                .map_or(self.memory_bytes, |m| m.min(self.memory_bytes)),
            pids: inherited.pids.map_or(self.pids, |p| p.min(self.pids)),
            cpus: self.cpus,
        }
    }
}

impl Limits {
    /// The defaults for a host: environments together may use nine tenths of
    /// its memory and half of its process table; one account half of each of
    /// those, and every CPU but one (at least one): a CPU is always left for
    /// the platform and the other accounts.
    pub fn for_host(host: &HostResources) -> Self {
        let platform_memory_bytes = host.memory_bytes / 10 * 9;
        let platform_pids = (host.pids / 2).max(PIDS_MAX);
        Self {
            platform_pids,
            platform_memory_bytes,
            account_pids: (platform_pids / 2).max(PIDS_MAX),
            account_memory_bytes: platform_memory_bytes / 2,
            account_millicpus: (host.cpus.saturating_sub(1) * 1000).max(1000),
        }
    }

    /// Processes one environment may hold: 1,024, or less when its account may hold less.
    pub fn env_pids(&self) -> u64 {
        PIDS_MAX.min(self.account_pids).min(self.platform_pids)
    }
}

/// Limits of the group the platform itself runs in, where it has any.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Inherited {
    memory_bytes: Option<u64>,
    pids: Option<u64>,
}

/// How many processes the platform's and one account's environments hold,
/// and may hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PidUsage {
    pub platform_current: u64,
    pub platform_max: u64,
    pub account_current: u64,
    pub account_max: u64,
}

/// Reads a cgroup limit file: a number, or `max` (none).
fn read_limit(path: &Path) -> Option<u64> {
    let s = std::fs::read_to_string(path).ok()?;
    let s = s.trim();
    if s == "max" {
        return None;
    }
    let v: u64 = s.parse().ok()?;
    // v1 reports "no limit" as a huge page-aligned number.
    (v < (1 << 60)).then_some(v)
}

fn read_count(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("no usable cgroup hierarchy: {0}")]
    Unavailable(String),
    #[error("cgroup file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CgroupError + '_ {
    move |source| CgroupError::Io {
        path: path.to_owned(),
        source,
    }
}

fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    std::fs::write(path, value).map_err(io(path))
}

/// Reads a one-number cgroup file through a handle kept open: a read at
/// offset 0 makes the kernel render it afresh, and costs one system call
/// instead of a path walk, open, stat, read and close per invocation.
fn read_u64_at(file: &File) -> Option<u64> {
    let mut buf = [0u8; 32];
    let n = file.read_at(&mut buf, 0).ok()?;
    std::str::from_utf8(buf.get(..n)?).ok()?.trim().parse().ok()
}

/// Where the platform's cgroups live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hierarchy {
    /// One unified tree; `own` is the group this process started in, `base`
    /// the platform's parent group below it.
    V2 { own: PathBuf, base: PathBuf },
    /// Separate v1 trees; each path is the platform's parent group in it.
    V1 {
        memory: PathBuf,
        cpu: PathBuf,
        pids: PathBuf,
        freezer: PathBuf,
    },
}

impl Hierarchy {
    /// Finds the hierarchy this process runs in, makes `<own group>/<name>`
    /// in each controller (the platform's parent group), and stops whatever
    /// an earlier run left in it. Only this instance's groups are touched:
    /// the caller must own `name` exclusively (the server holds its data
    /// directory's lock, and `name` is derived from that directory).
    pub fn detect(name: &str) -> Result<Self, CgroupError> {
        let own = std::fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| CgroupError::Unavailable(format!("/proc/self/cgroup: {e}")))?;
        let mounts = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| CgroupError::Unavailable(format!("/proc/self/mountinfo: {e}")))?;
        let h = Self::from_proc(&own, &mounts, name)?;
        h.prepare()?;
        h.sweep();
        Ok(h)
    }

    /// Works out the hierarchy from `/proc/self/cgroup` and `/proc/self/mountinfo`.
    pub fn from_proc(own: &str, mountinfo: &str, name: &str) -> Result<Self, CgroupError> {
        // (mount point, fs type, super options) of each cgroup mount.
        let mut v1 = Vec::new();
        let mut v2 = None;
        for line in mountinfo.lines() {
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let mount_point = left.split_whitespace().nth(4).unwrap_or("");
            let mut r = right.split_whitespace();
            let fstype = r.next().unwrap_or("");
            let opts = r.nth(1).unwrap_or("");
            match fstype {
                "cgroup2" => v2 = Some(PathBuf::from(mount_point)),
                "cgroup" => v1.push((PathBuf::from(mount_point), opts.to_owned())),
                _ => {}
            }
        }
        let path_of = |controller: &str| -> Option<String> {
            own.lines().find_map(|l| {
                let mut parts = l.splitn(3, ':');
                let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
                let hit = if controller.is_empty() {
                    ctrls.is_empty()
                } else {
                    ctrls.split(',').any(|c| c == controller)
                };
                hit.then(|| path.to_owned())
            })
        };
        let v1_dir = |controller: &str| -> Option<PathBuf> {
            let (mount, _) = v1
                .iter()
                .find(|(_, opts)| opts.split(',').any(|o| o == controller))?;
            let rel = path_of(controller)?;
            Some(mount.join(rel.trim_start_matches('/')).join(name))
        };
        if let (Some(memory), Some(cpu), Some(pids), Some(freezer)) = (
            v1_dir("memory"),
            v1_dir("cpu"),
            v1_dir("pids"),
            v1_dir("freezer"),
        ) {
            return Ok(Self::V1 {
                memory,
                cpu,
                pids,
                freezer,
            });
        }
        if let Some(mount) = v2 {
            let rel = path_of("").unwrap_or_default();
            let own_dir = mount.join(rel.trim_start_matches('/'));
            let controllers =
                std::fs::read_to_string(own_dir.join("cgroup.controllers")).unwrap_or_default();
            if ["memory", "pids", "cpu"]
                .iter()
                .all(|c| controllers.split_whitespace().any(|x| x == *c))
            {
                return Ok(Self::V2 {
                    base: own_dir.join(name),
                    own: own_dir,
                });
            }
            return Err(CgroupError::Unavailable(format!(
                "the cgroup v2 group {} does not offer the memory, cpu and pids controllers",
                own_dir.display()
            )));
        }
        Err(CgroupError::Unavailable(
            "neither the v1 memory/cpu/pids/freezer controllers nor cgroup v2 are mounted".into(),
        ))
    }

    /// Creates the parent groups (and, on v2, delegates the controllers).
    pub fn prepare(&self) -> Result<(), CgroupError> {
        match self {
            Self::V2 { own, base } => {
                std::fs::create_dir_all(base).map_err(io(base))?;
                // A group with processes cannot hand controllers to children
                // ("no internal processes"): move this process into a leaf
                // first, then delegate the controllers down to `base`.
                let enabled =
                    std::fs::read_to_string(own.join("cgroup.subtree_control")).unwrap_or_default();
                if !["memory", "pids", "cpu"]
                    .iter()
                    .all(|c| enabled.split_whitespace().any(|x| x == *c))
                {
                    let leaf = own.join("lambent-supervisor");
                    std::fs::create_dir_all(&leaf).map_err(io(&leaf))?;
                    write(&leaf.join("cgroup.procs"), &std::process::id().to_string())?;
                    write(&own.join("cgroup.subtree_control"), "+memory +pids +cpu")?;
                }
                write(&base.join("cgroup.subtree_control"), "+memory +pids +cpu")
            }
            Self::V1 {
                memory,
                cpu,
                pids,
                freezer,
            } => {
                for d in [memory, cpu, pids, freezer] {
                    std::fs::create_dir_all(d).map_err(io(d))?;
                }
                // Hierarchical accounting so limits hold for every process below.
                let _ = write(&memory.join("memory.use_hierarchy"), "1");
                Ok(())
            }
        }
    }

    /// Limits of the group this process runs in (the parent of the platform's).
    fn inherited(&self) -> Inherited {
        match self {
            Self::V2 { own, .. } => Inherited {
                memory_bytes: read_limit(&own.join("memory.max")),
                pids: read_limit(&own.join("pids.max")),
            },
            Self::V1 { memory, pids, .. } => Inherited {
                memory_bytes: memory
                    .parent()
                    .and_then(|p| read_limit(&p.join("memory.limit_in_bytes"))),
                pids: pids.parent().and_then(|p| read_limit(&p.join("pids.max"))),
            },
        }
    }

    /// Writes the platform-wide limits on the platform's groups.
    pub fn apply_platform_limits(&self, l: &Limits) -> Result<(), CgroupError> {
        match self {
            Self::V2 { base, .. } => {
                write(&base.join("pids.max"), &l.platform_pids.to_string())?;
                write(
                    &base.join("memory.max"),
                    &l.platform_memory_bytes.to_string(),
                )?;
                let _ = write(&base.join("memory.swap.max"), "0");
            }
            Self::V1 { memory, pids, .. } => {
                write(&pids.join("pids.max"), &l.platform_pids.to_string())?;
                write_v1_memory(memory, l.platform_memory_bytes)?;
            }
        }
        Ok(())
    }

    /// The directory name of an account's group.
    fn account_group(account: &str) -> String {
        format!("{ACCOUNT_PREFIX}{account}")
    }

    /// Creates an account's group (if it is not there) and writes its limits.
    pub fn prepare_account(&self, account: &str, l: &Limits) -> Result<(), CgroupError> {
        let name = Self::account_group(account);
        let mkdir = |d: &Path| match std::fs::create_dir(d) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(CgroupError::Io {
                path: d.to_owned(),
                source: e,
            }),
        };
        match self {
            Self::V2 { base, .. } => {
                let dir = base.join(&name);
                mkdir(&dir)?;
                write(&dir.join("cgroup.subtree_control"), "+memory +pids +cpu")?;
                write(&dir.join("pids.max"), &l.account_pids.to_string())?;
                write(&dir.join("memory.max"), &l.account_memory_bytes.to_string())?;
                let _ = write(&dir.join("memory.swap.max"), "0");
                let _ = write(&dir.join("cpu.weight"), "100");
                write(
                    &dir.join("cpu.max"),
                    &format!(
                        "{} {ACCOUNT_CPU_PERIOD_US}",
                        l.account_millicpus * ACCOUNT_CPU_PERIOD_US / 1000
                    ),
                )?;
            }
            Self::V1 {
                memory,
                cpu,
                pids,
                freezer,
            } => {
                for d in [memory, cpu, pids, freezer] {
                    mkdir(&d.join(&name))?;
                }
                write(
                    &pids.join(&name).join("pids.max"),
                    &l.account_pids.to_string(),
                )?;
                write_v1_memory(&memory.join(&name), l.account_memory_bytes)?;
                let cpu = cpu.join(&name);
                write(&cpu.join("cpu.shares"), "1024")?;
                write(
                    &cpu.join("cpu.cfs_period_us"),
                    &ACCOUNT_CPU_PERIOD_US.to_string(),
                )?;
                write(
                    &cpu.join("cpu.cfs_quota_us"),
                    &(l.account_millicpus * ACCOUNT_CPU_PERIOD_US / 1000).to_string(),
                )?;
            }
        }
        Ok(())
    }

    /// Processes held by the platform's and one account's environments.
    pub fn pids(&self, account: &str) -> PidUsage {
        let base = match self {
            Self::V2 { base, .. } => base,
            Self::V1 { pids, .. } => pids,
        };
        let acct = base.join(Self::account_group(account));
        PidUsage {
            platform_current: read_count(&base.join("pids.current")),
            platform_max: read_limit(&base.join("pids.max")).unwrap_or(u64::MAX),
            account_current: read_count(&acct.join("pids.current")),
            account_max: read_limit(&acct.join("pids.max")).unwrap_or(u64::MAX),
        }
    }

    /// Removes the platform's parent groups (they must be empty).
    pub fn remove_parents(&self) {
        let parents: Vec<&PathBuf> = match self {
            Self::V2 { base, .. } => vec![base],
            Self::V1 {
                memory,
                cpu,
                pids,
                freezer,
            } => vec![memory, cpu, pids, freezer],
        };
        for p in parents {
            let _ = std::fs::remove_dir(p);
        }
    }

    /// Kills whatever an earlier run of the platform left in its groups and
    /// removes those groups.
    pub fn sweep(&self) {
        let parents: Vec<&PathBuf> = match self {
            Self::V2 { base, .. } => vec![base],
            Self::V1 {
                memory,
                cpu,
                pids,
                freezer,
            } => vec![freezer, memory, cpu, pids],
        };
        for parent in parents {
            let Ok(entries) = std::fs::read_dir(parent) else {
                continue;
            };
            for e in entries.flatten() {
                let dir = e.path();
                if dir.is_dir() {
                    remove_tree(&dir);
                }
            }
        }
    }

    /// Creates one environment's group with its limits, inside its
    /// account's group (see [`Hierarchy::prepare_account`]). With
    /// `init_burst`, the environment may use up to [`INIT_VCPUS`] until
    /// [`EnvCgroup::limit_cpu`] applies its share; without, its share
    /// applies from the start.
    pub fn create(
        &self,
        account: &str,
        id: &str,
        memory_mb: u32,
        init_burst: bool,
        l: &Limits,
    ) -> Result<EnvCgroup, CgroupError> {
        let bytes = u64::from(memory_mb) * 1024 * 1024;
        // v1 refuses a child quota above its parent's (as a share of the
        // period): an environment never gets more than its account anyway.
        let account_cap = l.account_millicpus * CPU_PERIOD_US / 1000;
        let quota = (CPU_PERIOD_US * u64::from(memory_mb) / MB_PER_VCPU)
            .max(1000)
            .min(account_cap);
        let init_quota = if init_burst {
            quota.max(INIT_VCPUS * CPU_PERIOD_US).min(account_cap)
        } else {
            quota
        };
        let pids_max = l.env_pids().to_string();
        let group = Self::account_group(account);
        // Weight in contention, also proportional to memory (1,769 MB = the default weight).
        let weight_v2 = (100 * u64::from(memory_mb) / MB_PER_VCPU).clamp(1, 10_000);
        let shares_v1 = (1024 * u64::from(memory_mb) / MB_PER_VCPU).clamp(2, 262_144);
        let cg = match self {
            Self::V2 { base, .. } => {
                let dir = base.join(&group).join(id);
                std::fs::create_dir(&dir).map_err(io(&dir))?;
                let cg = EnvCgroup {
                    kind: Kind::V2 { dir: dir.clone() },
                    cpu_quota_us: quota,
                    peak: OnceLock::new(),
                    freezer_state: OnceLock::new(),
                };
                write(&dir.join("memory.max"), &bytes.to_string())?;
                let _ = write(&dir.join("memory.swap.max"), "0");
                let _ = write(&dir.join("memory.oom.group"), "1");
                write(&dir.join("pids.max"), &pids_max)?;
                let _ = write(&dir.join("cpu.weight"), &weight_v2.to_string());
                write(
                    &dir.join("cpu.max"),
                    &format!("{init_quota} {CPU_PERIOD_US}"),
                )?;
                cg
            }
            Self::V1 {
                memory,
                cpu,
                pids,
                freezer,
            } => {
                let dirs = [
                    memory.join(&group).join(id),
                    cpu.join(&group).join(id),
                    pids.join(&group).join(id),
                    freezer.join(&group).join(id),
                ];
                for d in &dirs {
                    std::fs::create_dir(d).map_err(io(d))?;
                }
                let [memory, cpu, pids, freezer] = dirs;
                write(&memory.join("memory.limit_in_bytes"), &bytes.to_string())?;
                // No swap: the limit covers memory plus swap where accounted.
                let _ = write(
                    &memory.join("memory.memsw.limit_in_bytes"),
                    &bytes.to_string(),
                );
                let _ = write(&memory.join("memory.swappiness"), "0");
                write(&pids.join("pids.max"), &pids_max)?;
                write(&cpu.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
                write(&cpu.join("cpu.shares"), &shares_v1.to_string())?;
                write(&cpu.join("cpu.cfs_quota_us"), &init_quota.to_string())?;
                EnvCgroup {
                    kind: Kind::V1 {
                        memory,
                        cpu,
                        pids,
                        freezer,
                    },
                    cpu_quota_us: quota,
                    peak: OnceLock::new(),
                    freezer_state: OnceLock::new(),
                }
            }
        };
        Ok(cg)
    }
}

/// Kills everything in a group and the groups below it, and removes them.
fn remove_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let sub = e.path();
            if sub.is_dir() {
                remove_tree(&sub);
            }
        }
    }
    kill_group(dir);
    if std::fs::remove_dir(dir).is_ok() {
        tracing::debug!(group = %dir.display(), "removed a cgroup");
    }
}

/// Writes a v1 memory limit (and the same limit on memory plus swap, where
/// swap is accounted, so that nothing is swapped).
fn write_v1_memory(dir: &Path, bytes: u64) -> Result<(), CgroupError> {
    // memsw must stay at or above the plain limit: raise it first when
    // growing, lower it after when shrinking.
    let memsw = dir.join("memory.memsw.limit_in_bytes");
    let _ = write(&memsw, &bytes.to_string());
    write(&dir.join("memory.limit_in_bytes"), &bytes.to_string())?;
    let _ = write(&memsw, &bytes.to_string());
    Ok(())
}

/// Thaws a group, lifts its CPU quota (dying processes need CPU to exit) and
/// kills every process in it, waiting briefly for them.
fn kill_group(dir: &Path) {
    // Only the files this hierarchy has: never create one.
    let set = |name: &str, value: &str| {
        if let Ok(f) = std::fs::OpenOptions::new().write(true).open(dir.join(name)) {
            let _ = f.write_at(value.as_bytes(), 0);
        }
    };
    set("cpu.cfs_quota_us", "-1");
    set("cpu.max", "max");
    set("freezer.state", "THAWED");
    set("cgroup.freeze", "0");
    set("cgroup.kill", "1");
    for _ in 0..100 {
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        if procs.trim().is_empty() {
            break;
        }
        for pid in procs
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            // SAFETY: kill(2) on a pid read from a Lambent cgroup.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[derive(Debug)]
enum Kind {
    V2 {
        dir: PathBuf,
    },
    V1 {
        memory: PathBuf,
        cpu: PathBuf,
        pids: PathBuf,
        freezer: PathBuf,
    },
}

/// One environment's cgroup(s).
#[derive(Debug)]
pub struct EnvCgroup {
    kind: Kind,
    cpu_quota_us: u64,
    /// The peak-memory file, opened at first use and kept open.
    peak: OnceLock<Option<File>>,
    /// The freeze control file, opened at first use and kept open.
    freezer_state: OnceLock<Option<File>>,
}

impl EnvCgroup {
    /// The files a single-threaded process writes `0` into to join. On v1
    /// these are the `tasks` files: moving one thread skips the thread-group
    /// lock whose RCU synchronisation makes `cgroup.procs` writes take ~10 ms.
    /// On v2 the child is born in its group instead ([`EnvCgroup::v2_dir`]).
    pub fn join_files(&self) -> Vec<PathBuf> {
        match &self.kind {
            Kind::V2 { .. } => Vec::new(),
            Kind::V1 {
                memory,
                cpu,
                pids,
                freezer,
            } => [memory, cpu, pids, freezer]
                .iter()
                .map(|d| d.join("tasks"))
                .collect(),
        }
    }

    /// On v2, the group's directory: `clone3(CLONE_INTO_CGROUP)` starts the
    /// environment inside it, with no migration at all.
    pub fn v2_dir(&self) -> Option<&Path> {
        match &self.kind {
            Kind::V2 { dir } => Some(dir),
            Kind::V1 { .. } => None,
        }
    }

    /// Applies the CPU share for the memory size (Lambda boosts init, so the
    /// platform applies this once init is over).
    pub fn limit_cpu(&self) -> Result<(), CgroupError> {
        match &self.kind {
            Kind::V2 { dir } => write(
                &dir.join("cpu.max"),
                &format!("{} {CPU_PERIOD_US}", self.cpu_quota_us),
            ),
            Kind::V1 { cpu, .. } => write(
                &cpu.join("cpu.cfs_quota_us"),
                &self.cpu_quota_us.to_string(),
            ),
        }
    }

    /// Lifts the CPU quota, so that a throttled environment being killed can
    /// exit at once (a thousand throttled processes otherwise take minutes).
    pub fn unlimit_cpu(&self) {
        let _ = match &self.kind {
            Kind::V2 { dir } => write(&dir.join("cpu.max"), "max"),
            Kind::V1 { cpu, .. } => write(&cpu.join("cpu.cfs_quota_us"), "-1"),
        };
    }

    /// Highest memory use so far, in bytes.
    pub fn memory_peak(&self) -> Option<u64> {
        let file = self.peak.get_or_init(|| {
            let path = match &self.kind {
                Kind::V2 { dir } => dir.join("memory.peak"),
                Kind::V1 { memory, .. } => memory.join("memory.max_usage_in_bytes"),
            };
            File::open(path).ok()
        });
        read_u64_at(file.as_ref()?)
    }

    /// Processes and threads in the environment now.
    pub fn pids_current(&self) -> u64 {
        match &self.kind {
            Kind::V2 { dir } => read_count(&dir.join("pids.current")),
            Kind::V1 { pids, .. } => read_count(&pids.join("pids.current")),
        }
    }

    /// How many processes the kernel killed for exceeding the memory limit.
    pub fn oom_kills(&self) -> u64 {
        let (file, key) = match &self.kind {
            Kind::V2 { dir } => (dir.join("memory.events"), "oom_kill"),
            Kind::V1 { memory, .. } => (memory.join("memory.oom_control"), "oom_kill"),
        };
        std::fs::read_to_string(file)
            .ok()
            .and_then(|s| {
                s.lines().find_map(|l| {
                    let (k, v) = l.split_once(' ')?;
                    (k == key).then(|| v.trim().parse().ok())?
                })
            })
            .unwrap_or(0)
    }

    /// Stops (or resumes) every process of the environment.
    pub fn set_frozen(&self, frozen: bool) -> Result<(), CgroupError> {
        let (path, value) = match &self.kind {
            Kind::V2 { dir } => (dir.join("cgroup.freeze"), if frozen { "1" } else { "0" }),
            Kind::V1 { freezer, .. } => (
                freezer.join("freezer.state"),
                if frozen { "FROZEN" } else { "THAWED" },
            ),
        };
        let file = self
            .freezer_state
            .get_or_init(|| std::fs::OpenOptions::new().write(true).open(&path).ok());
        match file {
            Some(f) => f.write_at(value.as_bytes(), 0).map(drop).map_err(io(&path)),
            None => write(&path, value),
        }
    }

    /// Whether the environment is frozen now.
    pub fn is_frozen(&self) -> bool {
        match &self.kind {
            Kind::V2 { dir } => std::fs::read_to_string(dir.join("cgroup.events"))
                .map(|s| s.lines().any(|l| l.trim() == "frozen 1"))
                .unwrap_or(false),
            Kind::V1 { freezer, .. } => std::fs::read_to_string(freezer.join("freezer.state"))
                .map(|s| s.trim() == "FROZEN")
                .unwrap_or(false),
        }
    }

    /// Removes the group(s); the processes must be gone.
    pub fn remove(&self) {
        let dirs: Vec<&PathBuf> = match &self.kind {
            Kind::V2 { dir } => vec![dir],
            Kind::V1 {
                memory,
                cpu,
                pids,
                freezer,
            } => vec![memory, cpu, pids, freezer],
        };
        for d in dirs {
            // A frozen group cannot be emptied; make sure it is thawed.
            if let Err(e) = std::fs::remove_dir(d) {
                tracing::debug!(dir = %d.display(), error = %e, "cgroup not removed yet");
            }
        }
    }
}

impl Drop for EnvCgroup {
    fn drop(&mut self) {
        self.remove();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_MOUNTS: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const HYBRID_OWN: &str = "8:pids:/\n6:freezer:/\n4:memory:/process_api/abc\n1:cpu:/\n0::/\n";

    #[test]
    fn detects_v1_controllers_beside_an_empty_v2_tree() {
        let h = Hierarchy::from_proc(HYBRID_OWN, HYBRID_MOUNTS, "lambent").unwrap();
        assert_eq!(
            h,
            Hierarchy::V1 {
                memory: "/sys/fs/cgroup/memory/process_api/abc/lambent".into(),
                cpu: "/sys/fs/cgroup/cpu/lambent".into(),
                pids: "/sys/fs/cgroup/pids/lambent".into(),
                freezer: "/sys/fs/cgroup/freezer/lambent".into(),
            }
        );
    }

    #[test]
    fn detects_pure_v2() {
        let dir = tempfile::tempdir().unwrap();
        let own = dir.path().join("system.slice/x.service");
        std::fs::create_dir_all(&own).unwrap();
        std::fs::write(
            own.join("cgroup.controllers"),
            "cpuset cpu io memory hugetlb pids rdma\n",
        )
        .unwrap();
        let mounts = format!(
            "29 23 0:26 / {} rw - cgroup2 cgroup2 rw\n",
            dir.path().display()
        );
        let h = Hierarchy::from_proc("0::/system.slice/x.service\n", &mounts, "lambent").unwrap();
        assert_eq!(
            h,
            Hierarchy::V2 {
                base: own.join("lambent"),
                own: own.clone()
            }
        );
        std::fs::write(own.join("cgroup.controllers"), "cpu io\n").unwrap();
        assert!(Hierarchy::from_proc("0::/system.slice/x.service\n", &mounts, "lambent").is_err());
    }

    fn fake_v1(root: &Path) -> Hierarchy {
        let h = Hierarchy::V1 {
            memory: root.join("memory/lambent"),
            cpu: root.join("cpu/lambent"),
            pids: root.join("pids/lambent"),
            freezer: root.join("freezer/lambent"),
        };
        h.prepare().unwrap();
        h
    }

    /// Roomy limits: one account may use 4 CPUs.
    const LIMITS: Limits = Limits {
        platform_pids: 16_384,
        platform_memory_bytes: 32 << 30,
        account_pids: 8_192,
        account_memory_bytes: 16 << 30,
        account_millicpus: 4_000,
    };

    #[test]
    fn v1_limits_are_written_where_the_kernel_reads_them() {
        let root = tempfile::tempdir().unwrap();
        let h = fake_v1(root.path());
        h.apply_platform_limits(&LIMITS).unwrap();
        h.prepare_account("111", &LIMITS).unwrap();
        let cg = h.create("111", "env1", 1769, true, &LIMITS).unwrap();
        let read = |p: &str| std::fs::read_to_string(root.path().join(p)).unwrap();
        assert_eq!(read("pids/lambent/pids.max"), "16384");
        assert_eq!(
            read("memory/lambent/memory.limit_in_bytes"),
            (32u64 << 30).to_string()
        );
        assert_eq!(read("pids/lambent/acct-111/pids.max"), "8192");
        assert_eq!(
            read("memory/lambent/acct-111/memory.limit_in_bytes"),
            (16u64 << 30).to_string()
        );
        assert_eq!(read("cpu/lambent/acct-111/cpu.cfs_quota_us"), "400000");
        assert_eq!(read("cpu/lambent/acct-111/cpu.cfs_period_us"), "100000");
        assert_eq!(read("cpu/lambent/acct-111/cpu.shares"), "1024");
        assert_eq!(
            read("memory/lambent/acct-111/env1/memory.limit_in_bytes"),
            (1769u64 * 1024 * 1024).to_string()
        );
        assert_eq!(read("pids/lambent/acct-111/env1/pids.max"), "1024");
        assert_eq!(
            read("cpu/lambent/acct-111/env1/cpu.cfs_quota_us"),
            "20000",
            "init is bounded at one vCPU from the start"
        );
        cg.limit_cpu().unwrap();
        assert_eq!(
            read("cpu/lambent/acct-111/env1/cpu.cfs_quota_us"),
            "20000",
            "1,769 MB is one vCPU"
        );
        assert_eq!(read("cpu/lambent/acct-111/env1/cpu.cfs_period_us"), "20000");
        assert_eq!(read("cpu/lambent/acct-111/env1/cpu.shares"), "1024");
        let small = h.create("111", "env2", 128, true, &LIMITS).unwrap();
        assert_eq!(
            read("cpu/lambent/acct-111/env2/cpu.cfs_quota_us"),
            "20000",
            "a small function's init may burst to one vCPU"
        );
        small.limit_cpu().unwrap();
        assert_eq!(read("cpu/lambent/acct-111/env2/cpu.cfs_quota_us"), "1447");
        assert_eq!(read("cpu/lambent/acct-111/env2/cpu.shares"), "74");
        let _no_burst = h.create("111", "env3", 128, false, &LIMITS).unwrap();
        assert_eq!(
            read("cpu/lambent/acct-111/env3/cpu.cfs_quota_us"),
            "1447",
            "without a burst the share applies from the start"
        );
        cg.unlimit_cpu();
        assert_eq!(read("cpu/lambent/acct-111/env1/cpu.cfs_quota_us"), "-1");
        std::fs::write(
            root.path()
                .join("memory/lambent/acct-111/env1/memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        )
        .unwrap();
        assert_eq!(cg.oom_kills(), 2);
        std::fs::write(
            root.path()
                .join("memory/lambent/acct-111/env1/memory.max_usage_in_bytes"),
            "4096\n",
        )
        .unwrap();
        assert_eq!(cg.memory_peak(), Some(4096));
        std::fs::write(
            root.path().join("pids/lambent/acct-111/env1/pids.current"),
            "7\n",
        )
        .unwrap();
        assert_eq!(cg.pids_current(), 7);
        std::fs::write(root.path().join("pids/lambent/pids.current"), "30\n").unwrap();
        std::fs::write(
            root.path().join("pids/lambent/acct-111/pids.current"),
            "20\n",
        )
        .unwrap();
        assert_eq!(
            h.pids("111"),
            PidUsage {
                platform_current: 30,
                platform_max: 16_384,
                account_current: 20,
                account_max: 8_192
            }
        );
        cg.set_frozen(true).unwrap();
        assert!(cg.is_frozen());
        assert_eq!(cg.join_files().len(), 4);
        assert!(cg.join_files().iter().all(|f| f.ends_with("tasks")));
        assert!(cg.v2_dir().is_none());
    }

    #[test]
    fn an_environment_never_gets_more_cpu_than_its_account() {
        let root = tempfile::tempdir().unwrap();
        let h = fake_v1(root.path());
        let tight = Limits {
            account_millicpus: 1_500,
            ..LIMITS
        };
        h.prepare_account("222", &tight).unwrap();
        let cg = h.create("222", "big", 3008, true, &tight).unwrap();
        let read = |p: &str| std::fs::read_to_string(root.path().join(p)).unwrap();
        assert_eq!(read("cpu/lambent/acct-222/cpu.cfs_quota_us"), "150000");
        cg.limit_cpu().unwrap();
        // 3,008 MB would be 1.7 vCPUs; the account allows 1.5.
        assert_eq!(read("cpu/lambent/acct-222/big/cpu.cfs_quota_us"), "30000");
    }

    #[test]
    fn defaults_follow_the_host() {
        let l = Limits::for_host(&HostResources {
            memory_bytes: 24 << 30,
            pids: 32_768,
            cpus: 2,
        });
        assert_eq!(l.platform_pids, 16_384);
        assert_eq!(l.account_pids, 8_192);
        assert_eq!(l.platform_memory_bytes, (24u64 << 30) / 10 * 9);
        assert_eq!(l.account_memory_bytes, l.platform_memory_bytes / 2);
        assert_eq!(l.account_millicpus, 1_000, "all CPUs but one");
        assert_eq!(l.env_pids(), 1024);
        let eight = Limits::for_host(&HostResources {
            memory_bytes: 24 << 30,
            pids: 32_768,
            cpus: 8,
        });
        assert_eq!(eight.account_millicpus, 7_000);
        let tiny = Limits::for_host(&HostResources {
            memory_bytes: 1 << 30,
            pids: 1_000,
            cpus: 1,
        });
        assert_eq!(tiny.account_millicpus, 1_000, "at least one CPU");
        assert_eq!(tiny.env_pids(), 1024);
        let low = Limits {
            account_pids: 300,
            ..tiny
        };
        assert_eq!(low.env_pids(), 300);
        let within = HostResources {
            memory_bytes: 24 << 30,
            pids: 32_768,
            cpus: 2,
        }
        .within(&Inherited {
            memory_bytes: Some(4 << 30),
            pids: None,
        });
        assert_eq!(within.memory_bytes, 4 << 30, "a container's limit counts");
        assert_eq!(within.pids, 32_768);
    }

    #[test]
    fn sweeping_removes_account_groups_and_their_environments() {
        let root = tempfile::tempdir().unwrap();
        let h = fake_v1(root.path());
        h.prepare_account("333", &LIMITS).unwrap();
        let cg = h.create("333", "e", 128, true, &LIMITS).unwrap();
        std::mem::forget(cg);
        // Plain directories stand in for cgroups here: empty the files the
        // kernel would provide so that rmdir can work on them.
        for ctl in ["memory", "cpu", "pids", "freezer"] {
            for d in [
                format!("{ctl}/lambent/acct-333/e"),
                format!("{ctl}/lambent/acct-333"),
            ] {
                for f in std::fs::read_dir(root.path().join(&d)).unwrap().flatten() {
                    if f.path().is_file() {
                        std::fs::remove_file(f.path()).unwrap();
                    }
                }
            }
        }
        h.sweep();
        assert!(!root.path().join("pids/lambent/acct-333").exists());
        assert!(!root.path().join("memory/lambent/acct-333").exists());
    }

    #[test]
    fn v2_limits() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(
            root.path().join("cgroup.subtree_control"),
            "memory pids cpu",
        )
        .unwrap();
        let h = Hierarchy::V2 {
            base: root.path().join("lambent"),
            own: root.path().to_owned(),
        };
        h.prepare().unwrap();
        h.apply_platform_limits(&LIMITS).unwrap();
        h.prepare_account("444", &LIMITS).unwrap();
        let acct = |p: &str| {
            std::fs::read_to_string(root.path().join("lambent/acct-444").join(p)).unwrap()
        };
        assert_eq!(acct("pids.max"), "8192");
        assert_eq!(acct("memory.max"), (16u64 << 30).to_string());
        assert_eq!(acct("cpu.max"), "400000 100000");
        assert_eq!(acct("cgroup.subtree_control"), "+memory +pids +cpu");
        assert_eq!(
            std::fs::read_to_string(root.path().join("lambent/pids.max")).unwrap(),
            "16384"
        );
        let cg = h.create("444", "e", 512, true, &LIMITS).unwrap();
        let read = |p: &str| {
            std::fs::read_to_string(root.path().join("lambent/acct-444/e").join(p)).unwrap()
        };
        assert_eq!(read("memory.max"), (512u64 << 20).to_string());
        assert_eq!(read("memory.oom.group"), "1");
        assert_eq!(read("cpu.max"), "20000 20000", "init bounded at one vCPU");
        cg.limit_cpu().unwrap();
        assert_eq!(read("cpu.max"), "5788 20000");
        assert_eq!(read("cpu.weight"), "28");
        std::fs::write(
            root.path().join("lambent/acct-444/e/memory.events"),
            "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
        )
        .unwrap();
        assert_eq!(cg.oom_kills(), 1);
        assert!(cg.join_files().is_empty());
        assert_eq!(
            cg.v2_dir(),
            Some(root.path().join("lambent/acct-444/e").as_path())
        );
    }
}
