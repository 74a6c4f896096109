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
                if !dir.is_dir() {
                    continue;
                }
                kill_group(&dir);
                if std::fs::remove_dir(&dir).is_ok() {
                    tracing::info!(group = %dir.display(), "removed a cgroup left by an earlier run");
                }
            }
        }
    }

    /// Creates one environment's group with its limits.
    pub fn create(&self, id: &str, memory_mb: u32) -> Result<EnvCgroup, CgroupError> {
        let bytes = u64::from(memory_mb) * 1024 * 1024;
        let quota = (CPU_PERIOD_US * u64::from(memory_mb) / MB_PER_VCPU).max(1000);
        // Weight in contention, also proportional to memory (1,769 MB = the default weight).
        let weight_v2 = (100 * u64::from(memory_mb) / MB_PER_VCPU).clamp(1, 10_000);
        let shares_v1 = (1024 * u64::from(memory_mb) / MB_PER_VCPU).clamp(2, 262_144);
        let cg = match self {
            Self::V2 { base, .. } => {
                let dir = base.join(id);
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
                write(&dir.join("pids.max"), &PIDS_MAX.to_string())?;
                let _ = write(&dir.join("cpu.weight"), &weight_v2.to_string());
                cg
            }
            Self::V1 {
                memory,
                cpu,
                pids,
                freezer,
            } => {
                let dirs = [
                    memory.join(id),
                    cpu.join(id),
                    pids.join(id),
                    freezer.join(id),
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
                write(&pids.join("pids.max"), &PIDS_MAX.to_string())?;
                write(&cpu.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
                write(&cpu.join("cpu.shares"), &shares_v1.to_string())?;
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

/// Thaws a group, lifts its CPU quota (dying processes need CPU to exit) and
/// kills every process in it, waiting briefly for them.
fn kill_group(dir: &Path) {
    let _ = write(&dir.join("cpu.cfs_quota_us"), "-1");
    let _ = write(&dir.join("cpu.max"), "max");
    let _ = write(&dir.join("freezer.state"), "THAWED");
    let _ = write(&dir.join("cgroup.freeze"), "0");
    let _ = write(&dir.join("cgroup.kill"), "1");
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

    #[test]
    fn v1_limits_are_written_where_the_kernel_reads_them() {
        let root = tempfile::tempdir().unwrap();
        let h = fake_v1(root.path());
        let cg = h.create("env1", 1769).unwrap();
        let read = |p: &str| std::fs::read_to_string(root.path().join(p)).unwrap();
        assert_eq!(
            read("memory/lambent/env1/memory.limit_in_bytes"),
            (1769u64 * 1024 * 1024).to_string()
        );
        assert_eq!(read("pids/lambent/env1/pids.max"), "1024");
        cg.limit_cpu().unwrap();
        assert_eq!(
            read("cpu/lambent/env1/cpu.cfs_quota_us"),
            "20000",
            "1,769 MB is one vCPU"
        );
        assert_eq!(read("cpu/lambent/env1/cpu.cfs_period_us"), "20000");
        assert_eq!(read("cpu/lambent/env1/cpu.shares"), "1024");
        let small = h.create("env2", 128).unwrap();
        small.limit_cpu().unwrap();
        assert_eq!(read("cpu/lambent/env2/cpu.cfs_quota_us"), "1447");
        assert_eq!(read("cpu/lambent/env2/cpu.shares"), "74");
        cg.unlimit_cpu();
        assert_eq!(read("cpu/lambent/env1/cpu.cfs_quota_us"), "-1");
        std::fs::write(
            root.path().join("memory/lambent/env1/memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        )
        .unwrap();
        assert_eq!(cg.oom_kills(), 2);
        std::fs::write(
            root.path()
                .join("memory/lambent/env1/memory.max_usage_in_bytes"),
            "4096\n",
        )
        .unwrap();
        assert_eq!(cg.memory_peak(), Some(4096));
        cg.set_frozen(true).unwrap();
        assert!(cg.is_frozen());
        assert_eq!(cg.join_files().len(), 4);
        assert!(cg.join_files().iter().all(|f| f.ends_with("tasks")));
        assert!(cg.v2_dir().is_none());
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
        let cg = h.create("e", 512).unwrap();
        let read =
            |p: &str| std::fs::read_to_string(root.path().join("lambent/e").join(p)).unwrap();
        assert_eq!(read("memory.max"), (512u64 << 20).to_string());
        assert_eq!(read("memory.oom.group"), "1");
        cg.limit_cpu().unwrap();
        assert_eq!(read("cpu.max"), "5788 20000");
        assert_eq!(read("cpu.weight"), "28");
        std::fs::write(
            root.path().join("lambent/e/memory.events"),
            "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
        )
        .unwrap();
        assert_eq!(cg.oom_kills(), 1);
        assert!(cg.join_files().is_empty());
        assert_eq!(cg.v2_dir(), Some(root.path().join("lambent/e").as_path()));
    }
}
