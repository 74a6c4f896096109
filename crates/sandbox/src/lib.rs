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

pub mod plan;
pub mod process;
pub mod spawn;

pub use plan::{Entry, RootSpec};
pub use process::{ExitStatus, Process};

/// Everything needed to start one execution environment.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    /// Unique id of the environment (used in names, never in paths from users).
    pub env_id: String,
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
    /// Host directories the runtime needs (an interpreter's prefix), mounted
    /// read-only at the same path.
    pub host_paths: Vec<PathBuf>,
    /// Size of `/tmp`, MiB.
    pub tmp_mb: u32,
    /// Memory limit, MiB.
    pub memory_mb: u32,
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
}

/// Starts execution environments.
pub trait Launcher: Send + Sync + 'static {
    fn launch(&self, spec: &LaunchSpec) -> Result<Process, LaunchError>;
    /// What kind of isolation this launcher gives, for logs and docs.
    fn isolation(&self) -> &'static str;
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

/// Device nodes every environment gets.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// Namespaces plus a minimal read-only root (see the crate docs).
pub struct NamespaceLauncher {
    mount_point: PathBuf,
    etc_dir: PathBuf,
}

impl NamespaceLauncher {
    /// Prepares the launcher's host-side directories under `state_dir`: an
    /// empty mount point and the environment's `/etc`.
    pub fn new(state_dir: &Path) -> Result<Self, LaunchError> {
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
        let files: &[(&str, String)] = &[
            (
                "passwd",
                "root:x:0:0:root:/root:/sbin/nologin\nsbx_user1051:x:993:990::/home/sbx_user1051:/sbin/nologin\nnobody:x:65534:65534:nobody:/:/sbin/nologin\n".into(),
            ),
            ("group", "root:x:0:\nsbx_user1051:x:990:\nnobody:x:65534:\n".into()),
            ("hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n".into()),
            ("nsswitch.conf", "passwd: files\ngroup: files\nhosts: files dns\n".into()),
            (
                "resolv.conf",
                std::fs::read_to_string("/etc/resolv.conf").unwrap_or_else(|_| "nameserver 127.0.0.53\n".into()),
            ),
            ("hostname", "localhost\n".into()),
        ];
        for (name, content) in files {
            let p = etc_dir.join(name);
            prep(&p, std::fs::write(&p, content))?;
        }
        // Mount points for the host entries shared into /etc.
        for name in HOST_ETC {
            let host = Path::new("/etc").join(name);
            let Ok(meta) = std::fs::metadata(&host) else {
                continue;
            };
            let p = etc_dir.join(name);
            if meta.is_dir() {
                prep(&p, std::fs::create_dir_all(&p))?;
            } else if !p.exists() {
                prep(&p, std::fs::write(&p, b""))?;
            }
        }
        Ok(Self {
            mount_point,
            etc_dir,
        })
    }

    fn root_spec(&self, spec: &LaunchSpec) -> RootSpec {
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
        entries.push(Entry::ro(&self.etc_dir, "/etc"));
        for name in HOST_ETC {
            let host = Path::new("/etc").join(name);
            if host.exists() && self.etc_dir.join(name).exists() {
                entries.push(Entry::ro(&host, &host));
            }
        }
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
        for p in &spec.host_paths {
            if !p.starts_with("/usr") {
                entries.push(Entry::ro(p, p));
            }
        }
        entries.push(Entry::ro(&spec.code_dir, "/var/task"));
        if let Some(rt) = &spec.runtime_dir {
            entries.push(Entry::ro(rt, "/var/runtime"));
        }
        match &spec.opt_dir {
            Some(opt) => entries.push(Entry::ro(opt, "/opt")),
            None => entries.push(Entry::Tmpfs {
                inside: "/opt".into(),
                options: "size=4k,mode=755".into(),
            }),
        }
        entries.push(Entry::Tmpfs {
            inside: "/tmp".into(),
            options: format!("size={}m,mode=1777", spec.tmp_mb),
        });
        RootSpec {
            mount_point: self.mount_point.clone(),
            entries,
        }
    }
}

impl Launcher for NamespaceLauncher {
    fn launch(&self, spec: &LaunchSpec) -> Result<Process, LaunchError> {
        let steps = plan::plan(&self.root_spec(spec), Path::new("/var/task"))?;
        let spawned = spawn::spawn(&spawn::Command {
            program: &spec.program,
            argv: &spec.argv,
            env: &spec.env,
            steps: &steps,
            namespaces: spawn::Namespaces {
                mount: true,
                pid: true,
                ipc: true,
                uts: true,
                net: false,
            },
            output: spec.output,
            hostname: Some("localhost"),
        })?;
        Process::new(spawned.pid, spawned.pidfd, spawned.status).map_err(LaunchError::Watch)
    }

    fn isolation(&self) -> &'static str {
        "mount, pid, ipc and uts namespaces with a read-only minimal root"
    }
}

#[cfg(test)]
mod tests;
