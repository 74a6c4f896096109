//! Execution environments' isolation.
//!
//! [`Launcher`] is the one seam through which every environment starts: it
//! takes a [`LaunchSpec`] (what to run, with which code, how much memory and
//! `/tmp`) and returns a running [`Process`]. [`NamespaceLauncher`] runs each
//! environment in its own mount, PID, IPC and UTS namespaces with a minimal
//! read-only root: the code at `/var/task`, layers at `/opt`, Lambent's runtime
//! clients at `/var/runtime`, a tmpfs `/tmp` of the configured size, its own
//! `/proc`, and only the usual device nodes.
//!
//! This is the only crate with `unsafe` (in `spawn` and `process`), each block
//! with a `// SAFETY:` comment.

use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub mod cgroup;
pub mod net;
pub mod netlink;
pub mod nft;
pub mod peer;
pub mod plan;
pub mod process;
pub mod readynet;
pub mod seccomp;
pub mod slots;
pub mod spawn;
pub mod tmpdisk;

pub use net::NetworkMode;
pub use peer::PeerCheck;
pub use slots::UID_BASE;

pub use cgroup::{HostResources, Limits, PidUsage};
pub use plan::{Entry, RootSpec};
pub use process::{ExitStatus, Process};

/// Everything needed to start one execution environment.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    /// Unique id of the environment (used in names, never in paths from users).
    pub env_id: String,
    /// The account the environment runs for (ASCII letters and digits): its
    /// environments share the account's cgroup and its limits.
    pub account: String,
    /// Whether the environment may use more CPU than its share during init
    /// (up to [`cgroup::INIT_VCPUS`]); without, its share applies from the start.
    pub init_cpu_burst: bool,
    /// Program to exec, as a path inside the environment.
    pub program: String,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Unpacked function code, mounted read-only at `/var/task`.
    pub code_dir: PathBuf,
    /// Merged layers, mounted read-only at `/opt`.
    pub opt_dir: Option<PathBuf>,
    /// Lambent's runtime clients, mounted read-only at `/var/runtime`.
    pub runtime_dir: Option<PathBuf>,
    /// A host interpreter installation, mounted read-only at `/var/lang`.
    pub lang_dir: Option<PathBuf>,
    /// Size of `/tmp`, MiB.
    pub tmp_mb: u32,
    /// Memory limit, MiB.
    pub memory_mb: u32,
    /// The function's VPC subnets: the private networks the operator mapped
    /// to them become reachable (egress mode).
    pub vpc_subnets: Vec<String>,
    /// Becomes the process's stdout and stderr.
    pub output: RawFd,
}

/// Why an environment could not be started.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error(transparent)]
    Plan(#[from] plan::PlanError),
    #[error(transparent)]
    Spawn(#[from] spawn::SpawnError),
    #[error("cannot prepare {path}: {source}")]
    Prepare {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot watch the new process: {0}")]
    Watch(std::io::Error),
    #[error(transparent)]
    Cgroup(#[from] cgroup::CgroupError),
    #[error(transparent)]
    Seccomp(#[from] seccomp::FilterError),
    #[error("every sandbox identity on this host is in use")]
    NoIdentity,
    #[error("cannot lease a sandbox identity: {0}")]
    Lease(std::io::Error),
    #[error("subnet {0} is not mapped to any network on this server")]
    UnknownSubnet(String),
    #[error(transparent)]
    Net(#[from] net::NetError),
    #[error("cannot open the Runtime API listener: {0}")]
    Listener(std::io::Error),
    #[error("the launcher thread is gone")]
    LauncherGone,
    #[error(transparent)]
    TmpDisk(#[from] tmpdisk::TmpDiskError),
    #[error("not a usable account name for a cgroup: {0:?}")]
    InvalidAccount(String),
}

/// A started environment and its Runtime API listener, which only the
/// environment can reach.
pub struct Launched {
    pub process: Process,
    pub runtime_api: std::net::TcpListener,
    /// Admits only the environment's own connections to `runtime_api`
    /// (none without a sandbox).
    pub peers: Option<PeerCheck>,
}

/// Starts execution environments.
pub trait Launcher: Send + Sync + 'static {
    /// Starts one; `spec.env` gets `AWS_LAMBDA_RUNTIME_API` added.
    fn launch(&self, spec: &LaunchSpec) -> Result<Launched, LaunchError>;
    /// What kind of isolation this launcher gives, for logs and docs.
    fn isolation(&self) -> &'static str;
    /// How many processes the platform's and an account's environments hold
    /// and may hold; `None` where the launcher does not count them.
    fn pids(&self, _account: &str) -> Option<PidUsage> {
        None
    }
}

/// Host files every environment sees under `/etc` (read-only), when present.
const HOST_ETC: &[&str] = &[
    "ssl",
    "ca-certificates",
    "ca-certificates.conf",
    "pki",
    "alternatives",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "mime.types",
];

/// Copies a file, symlink or directory tree (symlinks stay symlinks),
/// replacing what is there.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(from)?;
    if meta.file_type().is_symlink() {
        let _ = std::fs::remove_file(to);
        return std::os::unix::fs::symlink(std::fs::read_link(from)?, to);
    }
    if meta.is_dir() {
        std::fs::create_dir_all(to)?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        return Ok(());
    }
    // Unreadable files (private keys) are not needed inside.
    match std::fs::copy(from, to) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Ok(()),
        Err(e) => Err(e),
    }
}

/// Device nodes every environment gets.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// Namespaces plus a minimal read-only root (see the crate docs).
pub struct NamespaceLauncher {
    mount_point: PathBuf,
    etc_dir: PathBuf,
    /// An empty directory: the second layer of each read-only overlay
    /// (overlayfs without an upper layer needs two).
    empty: PathBuf,
    cgroups: cgroup::Hierarchy,
    limits: Limits,
    /// Accounts whose groups exist with their limits.
    accounts: Mutex<std::collections::HashSet<String>>,
    seccomp: Arc<Vec<seccompiler::BpfProgram>>,
    slots: Arc<slots::Slots>,
    network: NetworkMode,
    egress: Option<Arc<net::Egress>>,
    /// `None` on hosts without loop devices: `/tmp` is then a tmpfs.
    tmp_disks: Option<tmpdisk::TmpDisks>,
    /// Subnet id -> the private networks it opens.
    subnets: std::collections::HashMap<String, net::Networks>,
    /// Network namespaces made ahead of demand (not with `Host`).
    net_reserve: Option<readynet::NetReserve>,
    thread: LauncherThread,
}

/// Network namespaces a launcher keeps ready by default.
pub const READY_NETWORKS: usize = 4;

type Job = Box<dyn FnOnce(&net::Home) + Send>;

/// The one long-lived thread that creates environments. Environments die with
/// the thread that created them (`PR_SET_PDEATHSIG`), and setting up a network
/// namespace switches the creating thread's namespace for a moment, so that
/// thread must be dedicated and never end before the platform does.
struct LauncherThread {
    tx: Mutex<std::sync::mpsc::Sender<Job>>,
}

impl LauncherThread {
    fn start() -> Result<Self, LaunchError> {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("env-launcher".into())
            .spawn(move || {
                let home = match net::Home::current() {
                    Ok(h) => {
                        let _ = ready_tx.send(Ok(()));
                        h
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                while let Ok(job) = rx.recv() {
                    job(&home);
                }
            })
            .map_err(|e| LaunchError::Prepare {
                path: "env-launcher thread".into(),
                source: e,
            })?;
        ready_rx
            .recv()
            .map_err(|_| LaunchError::LauncherGone)?
            .map_err(|e| LaunchError::Prepare {
                path: "/proc/thread-self/ns/net".into(),
                source: e,
            })?;
        Ok(Self { tx: Mutex::new(tx) })
    }

    fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&net::Home) -> T + Send + 'static,
    ) -> Result<T, LaunchError> {
        let (reply_tx, reply_rx) = std::sync::mpsc::sync_channel(1);
        let job: Job = Box::new(move |home| {
            let _ = reply_tx.send(f(home));
        });
        self.tx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(job)
            .map_err(|_| LaunchError::LauncherGone)?;
        reply_rx.recv().map_err(|_| LaunchError::LauncherGone)
    }
}

/// The cgroup name of one platform instance: `lambent-` and a hash of its state
/// directory, so that two servers on one host never touch each other's groups.
fn instance_name(state_dir: &Path) -> String {
    let path = std::fs::canonicalize(state_dir).unwrap_or_else(|_| state_dir.to_owned());
    // FNV-1a: stable across runs and builds.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in path.as_os_str().as_encoded_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("lambent-{h:016x}")
}

impl Drop for NamespaceLauncher {
    fn drop(&mut self) {
        self.cgroups.sweep();
        self.cgroups.remove_parents();
    }
}

/// An identity (uid and network link) lent to one environment; the lease
/// ends when it is dropped.
pub type UidLease = slots::Lease;

impl NamespaceLauncher {
    /// Prepares the launcher's host-side directories under `state_dir` (an
    /// empty mount point and the environment's `/etc`), its cgroups, seccomp
    /// filters and launcher thread, with the default limits for this host.
    /// The cgroups are named after `state_dir`, and environments an earlier
    /// run left there are stopped: the caller must own `state_dir`
    /// exclusively (`lambent serve` holds its data directory's lock before it
    /// gets here). Nothing of other instances is touched.
    pub fn new(state_dir: &Path, network: NetworkMode) -> Result<Self, LaunchError> {
        Self::configured(
            state_dir,
            network,
            Limits::for_host(&HostResources::detect()),
            Path::new(slots::DEFAULT_DIR),
        )
    }

    /// Like [`NamespaceLauncher::new`], with the given platform and account limits.
    pub fn with_limits(
        state_dir: &Path,
        network: NetworkMode,
        limits: Limits,
    ) -> Result<Self, LaunchError> {
        Self::configured(state_dir, network, limits, Path::new(slots::DEFAULT_DIR))
    }

    /// [`NamespaceLauncher::new`] with host-wide leases under `slot_dir`
    /// (every instance on a host must use the same one).
    pub fn with_slots(
        state_dir: &Path,
        network: NetworkMode,
        slot_dir: &Path,
    ) -> Result<Self, LaunchError> {
        Self::configured(
            state_dir,
            network,
            Limits::for_host(&HostResources::detect()),
            slot_dir,
        )
    }

    fn configured(
        state_dir: &Path,
        network: NetworkMode,
        limits: Limits,
        slot_dir: &Path,
    ) -> Result<Self, LaunchError> {
        let prep = |path: &Path, r: std::io::Result<()>| {
            r.map_err(|source| LaunchError::Prepare {
                path: path.to_owned(),
                source,
            })
        };
        let mount_point = state_dir.join("root");
        prep(&mount_point, std::fs::create_dir_all(&mount_point))?;
        let etc_dir = state_dir.join("etc");
        prep(&etc_dir, std::fs::create_dir_all(&etc_dir))?;
        let empty_dir = state_dir.join("empty");
        prep(&empty_dir, std::fs::create_dir_all(&empty_dir))?;
        let empty = empty_dir;
        let resolv_conf = std::fs::read_to_string("/etc/resolv.conf")
            .unwrap_or_else(|_| "nameserver 127.0.0.53\n".into());
        let files: &[(&str, String)] = &[
            (
                "passwd",
                "root:x:0:0:root:/root:/sbin/nologin\nsbx_user1051:x:993:990::/home/sbx_user1051:/sbin/nologin\nnobody:x:65534:65534:nobody:/:/sbin/nologin\n".into(),
            ),
            ("group", "root:x:0:\nsbx_user1051:x:990:\nnobody:x:65534:\n".into()),
            ("hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n".into()),
            ("nsswitch.conf", "passwd: files\ngroup: files\nhosts: files dns\n".into()),
            ("resolv.conf", resolv_conf.clone()),
            ("hostname", "localhost\n".into()),
        ];
        for (name, content) in files {
            let p = etc_dir.join(name);
            prep(&p, std::fs::write(&p, content))?;
        }
        // Copies of the host entries environments need (certificates, the
        // dynamic loader's cache, time zones...), so /etc is one bind mount.
        for name in HOST_ETC {
            let host = Path::new("/etc").join(name);
            if std::fs::symlink_metadata(&host).is_err() {
                continue;
            }
            let p = etc_dir.join(name);
            prep(&p, copy_tree(&host, &p))?;
        }
        // The default size's template is made now, before the first launch,
        // and disks of that size are made ready.
        let tmp_disks = match tmpdisk::TmpDisks::with_reserve(
            &state_dir.join("tmp-disks"),
            tmpdisk::ReserveSize::DEFAULT,
        )
        .and_then(|d| d.template(512).map(|_| d))
        {
            Ok(d) => {
                d.keep_ready(512);
                Some(d)
            }
            Err(e) => {
                tracing::warn!(error = %e, "/tmp cannot be a disk here: it is a tmpfs, counted in the function's memory");
                None
            }
        };
        let cgroups = cgroup::Hierarchy::detect(&instance_name(state_dir))?;
        cgroups.apply_platform_limits(&limits)?;
        let slots = Arc::new(
            slots::Slots::open(slot_dir, slots::COUNT).map_err(|source| LaunchError::Prepare {
                path: slot_dir.to_owned(),
                source,
            })?,
        );
        let egress = match network {
            NetworkMode::Egress => Some(Arc::new(net::Egress::prepare(net::resolvers(
                &resolv_conf,
            ))?)),
            _ => None,
        };
        let mut launcher = Self {
            mount_point,
            etc_dir,
            empty,
            tmp_disks,
            cgroups,
            limits,
            accounts: Mutex::new(std::collections::HashSet::new()),
            seccomp: Arc::new(seccomp::filters()?),
            slots,
            network,
            egress,
            subnets: Default::default(),
            net_reserve: None,
            thread: LauncherThread::start()?,
        };
        launcher.keep_networks_ready(READY_NETWORKS)?;
        Ok(launcher)
    }

    /// Keeps `depth` network namespaces ready ahead of demand from now on
    /// (none: each launch makes its own). Nothing to do with `Host`.
    pub fn keep_networks_ready(&mut self, depth: usize) -> Result<(), LaunchError> {
        self.net_reserve = None;
        if depth > 0 && self.network != NetworkMode::Host {
            self.net_reserve = Some(readynet::NetReserve::start(
                readynet::Recipe {
                    slots: self.slots.clone(),
                    network: self.network,
                    egress: self.egress.clone(),
                },
                depth,
            )?);
        }
        Ok(())
    }

    /// How network namespaces were handed out (`None` when none are made
    /// ahead).
    pub fn network_counts(&self) -> Option<readynet::NetCounts> {
        self.net_reserve.as_ref().map(readynet::NetReserve::counts)
    }

    /// How `/tmp` disks were handed out (`None` without disks).
    pub fn tmp_disk_counts(&self) -> Option<tmpdisk::ReserveCounts> {
        self.tmp_disks.as_ref().map(tmpdisk::TmpDisks::counts)
    }

    /// Maps VPC subnet ids to the private networks environments of functions
    /// in them may reach (egress mode).
    pub fn with_subnets(
        mut self,
        subnets: impl IntoIterator<Item = (String, net::Networks)>,
    ) -> Self {
        self.subnets = subnets.into_iter().collect();
        self
    }

    /// The private networks `spec`'s VPC subnets open.
    fn allowed_networks(&self, spec: &LaunchSpec) -> Result<net::Networks, LaunchError> {
        let mut all = Vec::new();
        for id in &spec.vpc_subnets {
            let nets = self
                .subnets
                .get(id)
                .ok_or_else(|| LaunchError::UnknownSubnet(id.clone()))?;
            all.extend_from_slice(nets);
        }
        Ok(all)
    }

    /// Leases a host-wide identity; in egress mode, one whose link name is
    /// free.
    fn lease(&self) -> Result<UidLease, LaunchError> {
        readynet::lease(&self.slots, self.egress.is_some())
    }

    /// The limits this launcher enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Makes the account's group with its limits, once per account.
    fn prepare_account(&self, account: &str) -> Result<(), LaunchError> {
        if account.is_empty() || !account.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(LaunchError::InvalidAccount(account.to_owned()));
        }
        let mut ready = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        if !ready.contains(account) {
            self.cgroups.prepare_account(account, &self.limits)?;
            ready.insert(account.to_owned());
        }
        Ok(())
    }

    /// The environment's root. Directories that live under the platform's
    /// data directory (the code, layers, runtime clients, `/etc`) and a host
    /// interpreter are read-only overlays, so that the environment's mount
    /// table names no host path.
    fn root_spec(
        &self,
        spec: &LaunchSpec,
        tmp_disk: Option<RawFd>,
    ) -> Result<RootSpec, LaunchError> {
        let empty = self.empty.clone();
        let hidden = |host: &Path, inside: &str| -> Result<Entry, LaunchError> {
            Ok(Entry::Overlay {
                layers: vec![host.to_owned(), empty.clone()],
                inside: inside.into(),
            })
        };
        let mut entries = Vec::new();
        entries.push(Entry::ro("/usr", "/usr"));
        for top in ["bin", "sbin", "lib", "lib32", "lib64", "libx32"] {
            let host = Path::new("/").join(top);
            match std::fs::read_link(&host) {
                Ok(target) => entries.push(Entry::Symlink {
                    target,
                    inside: host,
                }),
                Err(_) if host.is_dir() => entries.push(Entry::ro(&host, &host)),
                Err(_) => {}
            }
        }
        entries.push(hidden(&self.etc_dir, "/etc")?);
        entries.push(Entry::Tmpfs {
            inside: "/dev".into(),
            options: "size=64k,mode=755".into(),
        });
        for dev in DEVICES {
            let host = Path::new("/dev").join(dev);
            if host.exists() {
                entries.push(Entry::Bind {
                    host: host.clone(),
                    inside: host,
                    writable: true,
                    device: true,
                });
            }
        }
        for (target, link) in [
            ("/proc/self/fd", "/dev/fd"),
            ("/proc/self/fd/0", "/dev/stdin"),
            ("/proc/self/fd/1", "/dev/stdout"),
            ("/proc/self/fd/2", "/dev/stderr"),
        ] {
            entries.push(Entry::Symlink {
                target: target.into(),
                inside: link.into(),
            });
        }
        if let Some(lang) = &spec.lang_dir {
            entries.push(hidden(lang, "/var/lang")?);
        }
        entries.push(hidden(&spec.code_dir, "/var/task")?);
        if let Some(rt) = &spec.runtime_dir {
            entries.push(hidden(rt, "/var/runtime")?);
        }
        match &spec.opt_dir {
            Some(opt) => entries.push(hidden(opt, "/opt")?),
            None => entries.push(Entry::Tmpfs {
                inside: "/opt".into(),
                options: "size=4k,mode=755".into(),
            }),
        }
        match tmp_disk {
            Some(mount) => entries.push(Entry::Disk {
                mount,
                inside: "/tmp".into(),
            }),
            None => entries.push(Entry::Tmpfs {
                inside: "/tmp".into(),
                options: format!("size={}m,mode=1777", spec.tmp_mb),
            }),
        }
        Ok(RootSpec {
            mount_point: self.mount_point.clone(),
            entries,
        })
    }
}

impl Launcher for NamespaceLauncher {
    fn launch(&self, spec: &LaunchSpec) -> Result<Launched, LaunchError> {
        let t0 = std::time::Instant::now();
        let tmp_disk = match &self.tmp_disks {
            Some(d) => Some(d.take(spec.tmp_mb, &spec.env_id)?),
            None => None,
        };
        let t_disk = std::time::Instant::now();
        let root = self.root_spec(spec, tmp_disk.as_ref().map(tmpdisk::TmpDisk::mount_fd))?;
        let steps = plan::plan(&root, Path::new("/var/task"))?;
        let allowed = self.allowed_networks(spec)?;
        // A namespace made ahead has no private network open: only for
        // functions without VPC subnets.
        let ready_net = match &self.net_reserve {
            Some(r) if allowed.is_empty() => r.take(),
            _ => None,
        };
        let (lease, ready_net) = match ready_net {
            Some(r) => (r.lease, Some((r.netns, (r.listener, r.peers)))),
            None => (self.lease()?, None),
        };
        let (netns, ready_listener) = ready_net.unzip();
        let uid = lease.uid();
        let t1 = std::time::Instant::now();
        self.prepare_account(&spec.account)?;
        let cgroup = self.cgroups.create(
            &spec.account,
            &spec.env_id,
            spec.memory_mb,
            spec.init_cpu_burst,
            &self.limits,
        )?;
        let t2 = std::time::Instant::now();
        let mut env = spec.env.clone();
        let host_listener = match self.network {
            NetworkMode::Isolated | NetworkMode::Egress => {
                env.push((
                    "AWS_LAMBDA_RUNTIME_API".into(),
                    net::RUNTIME_API_ADDR.into(),
                ));
                None
            }
            NetworkMode::Host => {
                let (l, peers) = net::listen("127.0.0.1:0", uid).map_err(LaunchError::Listener)?;
                let addr = l.local_addr().map_err(LaunchError::Listener)?;
                env.push(("AWS_LAMBDA_RUNTIME_API".into(), addr.to_string()));
                Some((l, peers))
            }
        };
        let job = SpawnJob {
            program: spec.program.clone(),
            argv: spec.argv.clone(),
            env,
            steps,
            network: self.network,
            egress: self.egress.clone(),
            link: lease.link(),
            allowed,
            output: spec.output,
            cgroups: cgroup.join_files(),
            into_cgroup: cgroup.v2_dir().map(Path::to_path_buf),
            identity: spawn::Identity { uid, gid: uid },
            seccomp: self.seccomp.clone(),
            tmp_disk,
            netns,
        };
        let (spawned, inside) = self.thread.run(move |home| job.run(home))??;
        let t3 = std::time::Instant::now();
        tracing::debug!(
            tmp_disk_us = (t_disk - t0).as_micros() as u64,
            plan_us = (t1 - t_disk).as_micros() as u64,
            cgroup_us = (t2 - t1).as_micros() as u64,
            spawn_us = (t3 - t2).as_micros() as u64,
            "sandbox set up"
        );
        let (runtime_api, peers) = match (inside.or(ready_listener), host_listener) {
            (Some(l), _) | (None, Some(l)) => l,
            (None, None) => {
                return Err(LaunchError::Listener(std::io::Error::other(
                    "no Runtime API listener",
                )));
            }
        };
        let process = Process::new(
            spawned.pid,
            spawned.pidfd,
            spawned.status,
            Some(cgroup),
            Some(lease),
        )
        .map_err(LaunchError::Watch)?;
        Ok(Launched {
            process,
            runtime_api,
            peers: Some(peers),
        })
    }

    fn pids(&self, account: &str) -> Option<PidUsage> {
        Some(self.cgroups.pids(account))
    }

    fn isolation(&self) -> &'static str {
        match self.network {
            NetworkMode::Egress => {
                "mount, pid, ipc, uts and network namespaces (outbound through NAT), a read-only minimal root, \
                 cgroup limits, a distinct unprivileged uid, no capabilities, no_new_privs and a seccomp filter"
            }
            NetworkMode::Isolated => {
                "mount, pid, ipc, uts and network namespaces, a read-only minimal root, cgroup limits, \
                 a distinct unprivileged uid, no capabilities, no_new_privs and a seccomp filter"
            }
            NetworkMode::Host => {
                "mount, pid, ipc and uts namespaces (host network), a read-only minimal root, cgroup limits, \
                 a distinct unprivileged uid, no capabilities, no_new_privs and a seccomp filter"
            }
        }
    }
}

/// Runs runtimes as plain processes on the host, without any isolation:
/// `--insecure-no-sandbox`, for hosts where the platform cannot isolate. The
/// code runs from its host directory (`LAMBDA_TASK_ROOT` points there), `/tmp`
/// is the host's, and the Runtime API is a host loopback port.
pub struct DirectLauncher {
    thread: LauncherThread,
}

impl DirectLauncher {
    pub fn new() -> Result<Self, LaunchError> {
        Ok(Self {
            thread: LauncherThread::start()?,
        })
    }
}

/// Rewrites a path inside an environment to where it lives on the host.
fn host_path(p: &str, spec: &LaunchSpec) -> String {
    let map = |prefix: &str, host: Option<&Path>| -> Option<String> {
        let rest = p.strip_prefix(prefix)?;
        let host = host?;
        (rest.is_empty() || rest.starts_with('/')).then(|| format!("{}{rest}", host.display()))
    };
    map("/var/task", Some(&spec.code_dir))
        .or_else(|| map("/var/runtime", spec.runtime_dir.as_deref()))
        .or_else(|| map("/var/lang", spec.lang_dir.as_deref()))
        .or_else(|| map("/opt", spec.opt_dir.as_deref()))
        .unwrap_or_else(|| p.to_owned())
}

impl Launcher for DirectLauncher {
    fn launch(&self, spec: &LaunchSpec) -> Result<Launched, LaunchError> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(LaunchError::Listener)?;
        listener
            .set_nonblocking(true)
            .map_err(LaunchError::Listener)?;
        let addr = listener.local_addr().map_err(LaunchError::Listener)?;
        let mut env: Vec<(String, String)> = spec
            .env
            .iter()
            .map(|(k, v)| match k.as_str() {
                "LAMBDA_TASK_ROOT" | "LAMBDA_RUNTIME_DIR" | "_LAMBENT_PYTHON_SITE" => {
                    (k.clone(), host_path(v, spec))
                }
                _ => (k.clone(), v.clone()),
            })
            .collect();
        env.push(("AWS_LAMBDA_RUNTIME_API".into(), addr.to_string()));
        let program = host_path(&spec.program, spec);
        let argv: Vec<String> = spec.argv.iter().map(|a| host_path(a, spec)).collect();
        let cwd = plan::cstr(&spec.code_dir)?;
        let output = spec.output;
        let spawned = self.thread.run(move |_home| {
            spawn::spawn(
                &spawn::Command {
                    program: &program,
                    argv: &argv,
                    env: &env,
                    steps: &[plan::Step::Chdir { path: cwd }],
                    namespaces: spawn::Namespaces {
                        mount: false,
                        pid: false,
                        ipc: false,
                        uts: false,
                        net: false,
                        cgroup: false,
                    },
                    netns: None,
                    output,
                    hostname: None,
                    cgroups: &[],
                    into_cgroup: None,
                    identity: None,
                    seccomp: &[],
                    rlimits: &[(libc::RLIMIT_NOFILE, 1024), (libc::RLIMIT_CORE, 0)],
                },
                &mut |_, _| Ok(()),
            )
        })??;
        let process = Process::new(spawned.pid, spawned.pidfd, spawned.status, None, None)
            .map_err(LaunchError::Watch)?;
        Ok(Launched {
            process,
            runtime_api: listener,
            peers: None,
        })
    }

    fn isolation(&self) -> &'static str {
        "none (--insecure-no-sandbox): functions run as plain host processes"
    }
}

/// Why the platform cannot isolate environments on this host, if it cannot.
pub fn cannot_isolate() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some(
            "isolating execution environments needs root (mount, pid and network namespaces, cgroups, \
             per-environment uids); this process is not root"
                .into(),
        );
    }
    if !Path::new("/proc/self/ns/pid").exists() {
        return Some("this kernel has no namespaces".into());
    }
    None
}

/// Everything the launcher thread needs for one spawn, owned.
struct SpawnJob {
    program: String,
    argv: Vec<String>,
    env: Vec<(String, String)>,
    steps: Vec<plan::Step>,
    network: NetworkMode,
    egress: Option<Arc<net::Egress>>,
    link: slots::Link,
    allowed: net::Networks,
    output: RawFd,
    cgroups: Vec<PathBuf>,
    into_cgroup: Option<PathBuf>,
    identity: spawn::Identity,
    seccomp: Arc<Vec<seccompiler::BpfProgram>>,
    /// Held until the environment has mounted it.
    tmp_disk: Option<tmpdisk::TmpDisk>,
    /// A network namespace made ahead for this environment, which enters it
    /// (else, when isolated, it gets a new one, set up from here).
    netns: Option<std::os::fd::OwnedFd>,
}

impl SpawnJob {
    fn run(
        self,
        home: &net::Home,
    ) -> Result<(spawn::Spawned, Option<(std::net::TcpListener, PeerCheck)>), LaunchError> {
        let started = std::time::Instant::now();
        let mut listener = None;
        let mut net_error = None;
        let isolated = self.network != NetworkMode::Host;
        // A new namespace to set up from here (none made ahead).
        let new_net = isolated && self.netns.is_none();
        let inside = net::Inside {
            egress: self.egress.as_deref(),
            link: &self.link,
            allowed: &self.allowed,
            uid: self.identity.uid,
        };
        let mut before = |pid: libc::pid_t, pidfd: &std::os::fd::OwnedFd| {
            tracing::debug!(
                clone_us = started.elapsed().as_micros() as u64,
                "environment cloned"
            );
            if new_net {
                match net::runtime_api_inside(net::Namespace::Process { pid, pidfd }, home, &inside)
                {
                    Ok(l) => listener = Some(l),
                    Err(e) => {
                        let msg = e.to_string();
                        net_error = Some(e);
                        return Err(spawn::SpawnError::Setup {
                            step: "open the Runtime API inside the environment".into(),
                            error: std::io::Error::other(msg),
                        });
                    }
                }
            }
            Ok(())
        };
        let spawned = spawn::spawn(
            &spawn::Command {
                program: &self.program,
                argv: &self.argv,
                env: &self.env,
                steps: &self.steps,
                namespaces: spawn::Namespaces {
                    mount: true,
                    pid: true,
                    ipc: true,
                    uts: true,
                    net: new_net,
                    cgroup: true,
                },
                netns: self.netns.as_ref().map(std::os::fd::AsRawFd::as_raw_fd),
                output: self.output,
                hostname: Some("localhost"),
                cgroups: &self.cgroups,
                into_cgroup: self.into_cgroup.as_deref(),
                identity: Some(self.identity),
                seccomp: &self.seccomp,
                rlimits: &[(libc::RLIMIT_NOFILE, 1024), (libc::RLIMIT_CORE, 0)],
            },
            &mut before,
        );
        drop(self.tmp_disk);
        drop(self.netns);
        if let Some(e @ net::NetError::Return(_)) = net_error {
            return Err(e.into());
        }
        Ok((spawned?, listener))
    }
}

#[cfg(test)]
mod tests;
