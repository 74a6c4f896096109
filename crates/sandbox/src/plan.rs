//! The filesystem of an execution environment, as a list of steps.
//!
//! [`RootSpec`] says what the environment sees; [`plan`] turns it into the
//! [`Step`]s the child runs between `clone` and `exec`. Building the plan is
//! pure (and tested without privileges); running it is `spawn`'s job.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// One piece of the environment's filesystem, applied in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A host path made visible inside (read-only unless `writable`).
    /// `device` keeps device nodes usable (for `/dev/null` and friends).
    Bind {
        host: PathBuf,
        inside: PathBuf,
        writable: bool,
        device: bool,
    },
    /// A tmpfs with mount options such as `size=512m,mode=1777`.
    Tmpfs { inside: PathBuf, options: String },
    /// A symbolic link, e.g. `/bin -> usr/bin`.
    Symlink { target: PathBuf, inside: PathBuf },
    /// A read-only view of host directories (overlayfs of `layers`, the
    /// first on top), mounted so that the mount table names no host path.
    Overlay {
        layers: Vec<PathBuf>,
        inside: PathBuf,
    },
    /// A filesystem already mounted nowhere (the environment's own `/tmp`
    /// disk, a detached mount held by this descriptor), moved here.
    Disk {
        mount: std::os::fd::RawFd,
        inside: PathBuf,
    },
}

impl Entry {
    pub fn ro(host: impl Into<PathBuf>, inside: impl Into<PathBuf>) -> Self {
        Self::Bind {
            host: host.into(),
            inside: inside.into(),
            writable: false,
            device: false,
        }
    }
}

/// What an environment's root filesystem holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RootSpec {
    /// An empty host directory the new root is mounted on (private to the
    /// child's mount namespace; one directory serves every environment).
    pub mount_point: PathBuf,
    pub entries: Vec<Entry>,
}

/// One setup step, with every path already a C string (the child must not
/// allocate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Stop mount events propagating back to the host.
    MakeMountsPrivate,
    /// A small tmpfs as the new root.
    RootTmpfs {
        target: CString,
    },
    Mkdir {
        path: CString,
    },
    /// An empty file to bind a file onto.
    Touch {
        path: CString,
    },
    Symlink {
        target: CString,
        link: CString,
    },
    Bind {
        src: CString,
        dst: CString,
        writable: bool,
        device: bool,
    },
    Tmpfs {
        dst: CString,
        options: CString,
    },
    Proc {
        dst: CString,
    },
    /// A read-only overlayfs of host directories. `spawn` turns it into
    /// [`Step::OpenDir`]s and a [`Step::MountOverlay`] naming the layers by
    /// descriptor (`/proc/self/fd/N`), so the mount table shows no host path.
    Overlay {
        dst: CString,
        layers: Vec<CString>,
    },
    /// Open a directory (`O_PATH`) inside the new mount namespace, as
    /// descriptor `fd` (overlayfs takes layers from the caller's namespace only).
    OpenDir {
        path: CString,
        fd: std::os::fd::RawFd,
    },
    /// Mount a read-only overlayfs with these options (`lowerdir=...`).
    MountOverlay {
        dst: CString,
        options: CString,
    },
    /// Move the detached mount `mount` (a descriptor the child keeps) onto
    /// `dst`.
    Disk {
        mount: std::os::fd::RawFd,
        dst: CString,
    },
    /// Make the root tmpfs itself read-only.
    SealRoot {
        target: CString,
    },
    /// `pivot_root` into the new root and detach the old one.
    PivotRoot {
        new_root: CString,
    },
    Chdir {
        path: CString,
    },
}

impl Step {
    /// A short name for error messages.
    pub fn describe(&self) -> String {
        let s = |c: &CString| c.to_string_lossy().into_owned();
        match self {
            Step::MakeMountsPrivate => "make mounts private".into(),
            Step::RootTmpfs { target } => format!("mount the root tmpfs on {}", s(target)),
            Step::Mkdir { path } => format!("create directory {}", s(path)),
            Step::Touch { path } => format!("create mount point {}", s(path)),
            Step::Symlink { link, .. } => format!("create link {}", s(link)),
            Step::Bind { src, dst, .. } => format!("bind {} on {}", s(src), s(dst)),
            Step::Tmpfs { dst, .. } => format!("mount tmpfs on {}", s(dst)),
            Step::Proc { dst } => format!("mount proc on {}", s(dst)),
            Step::Overlay { dst, .. } | Step::MountOverlay { dst, .. } => {
                format!("mount a read-only overlay on {}", s(dst))
            }
            Step::OpenDir { path, .. } => format!("open {}", s(path)),
            Step::Disk { dst, .. } => format!("move the /tmp disk onto {}", s(dst)),
            Step::SealRoot { .. } => "make the root read-only".into(),
            Step::PivotRoot { new_root } => format!("pivot_root into {}", s(new_root)),
            Step::Chdir { path } => format!("change directory to {}", s(path)),
        }
    }
}

/// Why a plan could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("path {0:?} contains a NUL byte")]
    Nul(PathBuf),
    #[error("path {0:?} inside the environment must be absolute and plain")]
    NotAbsolute(PathBuf),
    #[error("cannot inspect {path:?} to bind it: {source}")]
    Inspect {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub(crate) fn cstr(p: &Path) -> Result<CString, PlanError> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| PlanError::Nul(p.to_owned()))
}

fn under(root: &Path, inside: &Path) -> Result<PathBuf, PlanError> {
    let rel = inside
        .strip_prefix("/")
        .map_err(|_| PlanError::NotAbsolute(inside.to_owned()))?;
    if rel
        .components()
        .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err(PlanError::NotAbsolute(inside.to_owned()));
    }
    Ok(root.join(rel))
}

/// Every directory from the root down to `dir` that the plan has not made yet.
fn mkdirs(
    root: &Path,
    dir: &Path,
    made: &mut Vec<PathBuf>,
    steps: &mut Vec<Step>,
) -> Result<(), PlanError> {
    let mut cur = root.to_path_buf();
    let rel = dir.strip_prefix(root).unwrap_or(dir);
    for comp in rel.components() {
        cur.push(comp);
        if !made.contains(&cur) {
            made.push(cur.clone());
            steps.push(Step::Mkdir { path: cstr(&cur)? });
        }
    }
    Ok(())
}

/// Turns a root description into setup steps: the root tmpfs, then each entry
/// in order (with the directories and mount points it needs), proc, seal, pivot.
pub fn plan(spec: &RootSpec, cwd: &Path) -> Result<Vec<Step>, PlanError> {
    let root = &spec.mount_point;
    let mut steps = vec![
        Step::MakeMountsPrivate,
        Step::RootTmpfs {
            target: cstr(root)?,
        },
    ];
    let mut made: Vec<PathBuf> = Vec::new();
    for entry in &spec.entries {
        match entry {
            Entry::Symlink { target, inside } => {
                let link = under(root, inside)?;
                if let Some(parent) = link.parent() {
                    mkdirs(root, parent, &mut made, &mut steps)?;
                }
                steps.push(Step::Symlink {
                    target: cstr(target)?,
                    link: cstr(&link)?,
                });
            }
            Entry::Bind {
                host,
                inside,
                writable,
                device,
            } => {
                let dst = under(root, inside)?;
                let meta = std::fs::metadata(host).map_err(|source| PlanError::Inspect {
                    path: host.clone(),
                    source,
                })?;
                if meta.is_dir() {
                    mkdirs(root, &dst, &mut made, &mut steps)?;
                } else {
                    if let Some(parent) = dst.parent() {
                        mkdirs(root, parent, &mut made, &mut steps)?;
                    }
                    steps.push(Step::Touch { path: cstr(&dst)? });
                }
                steps.push(Step::Bind {
                    src: cstr(host)?,
                    dst: cstr(&dst)?,
                    writable: *writable,
                    device: *device,
                });
            }
            Entry::Overlay { layers, inside } => {
                let dst = under(root, inside)?;
                mkdirs(root, &dst, &mut made, &mut steps)?;
                made.retain(|m| !m.starts_with(&dst) || m == &dst);
                steps.push(Step::Overlay {
                    dst: cstr(&dst)?,
                    layers: layers.iter().map(|l| cstr(l)).collect::<Result<_, _>>()?,
                });
            }
            Entry::Disk { mount, inside } => {
                let dst = under(root, inside)?;
                mkdirs(root, &dst, &mut made, &mut steps)?;
                made.retain(|m| !m.starts_with(&dst) || m == &dst);
                steps.push(Step::Disk {
                    mount: *mount,
                    dst: cstr(&dst)?,
                });
            }
            Entry::Tmpfs { inside, options } => {
                let dst = under(root, inside)?;
                mkdirs(root, &dst, &mut made, &mut steps)?;
                // Directories below a tmpfs belong to it, not to the root.
                made.retain(|m| !m.starts_with(&dst) || m == &dst);
                steps.push(Step::Tmpfs {
                    dst: cstr(&dst)?,
                    options: CString::new(options.as_str())
                        .map_err(|_| PlanError::Nul(dst.clone()))?,
                });
            }
        }
    }
    let proc_dir = root.join("proc");
    mkdirs(root, &proc_dir, &mut made, &mut steps)?;
    steps.push(Step::Proc {
        dst: cstr(&proc_dir)?,
    });
    let cwd_inside = under(root, cwd)?;
    mkdirs(root, &cwd_inside, &mut made, &mut steps)?;
    steps.push(Step::SealRoot {
        target: cstr(root)?,
    });
    steps.push(Step::PivotRoot {
        new_root: cstr(root)?,
    });
    steps.push(Step::Chdir { path: cstr(cwd)? });
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> CString {
        CString::new(s).unwrap()
    }

    #[test]
    fn plans_dirs_before_mounts_and_pivots_last() {
        let host = tempfile::tempdir().unwrap();
        let code = host.path().join("code");
        std::fs::create_dir(&code).unwrap();
        let file = host.path().join("resolv.conf");
        std::fs::write(&file, "nameserver 1.1.1.1\n").unwrap();
        let spec = RootSpec {
            mount_point: PathBuf::from("/r"),
            entries: vec![
                Entry::Symlink {
                    target: "usr/bin".into(),
                    inside: "/bin".into(),
                },
                Entry::ro(&code, "/var/task"),
                Entry::ro(&file, "/etc/resolv.conf"),
                Entry::Tmpfs {
                    inside: "/tmp".into(),
                    options: "size=512m,mode=1777".into(),
                },
            ],
        };
        let steps = plan(&spec, Path::new("/var/task")).unwrap();
        let code_c = CString::new(code.as_os_str().as_bytes()).unwrap();
        let file_c = CString::new(file.as_os_str().as_bytes()).unwrap();
        assert_eq!(
            steps,
            vec![
                Step::MakeMountsPrivate,
                Step::RootTmpfs { target: c("/r") },
                Step::Symlink {
                    target: c("usr/bin"),
                    link: c("/r/bin")
                },
                Step::Mkdir { path: c("/r/var") },
                Step::Mkdir {
                    path: c("/r/var/task")
                },
                Step::Bind {
                    src: code_c,
                    dst: c("/r/var/task"),
                    writable: false,
                    device: false
                },
                Step::Mkdir { path: c("/r/etc") },
                Step::Touch {
                    path: c("/r/etc/resolv.conf")
                },
                Step::Bind {
                    src: file_c,
                    dst: c("/r/etc/resolv.conf"),
                    writable: false,
                    device: false
                },
                Step::Mkdir { path: c("/r/tmp") },
                Step::Tmpfs {
                    dst: c("/r/tmp"),
                    options: c("size=512m,mode=1777")
                },
                Step::Mkdir { path: c("/r/proc") },
                Step::Proc { dst: c("/r/proc") },
                Step::SealRoot { target: c("/r") },
                Step::PivotRoot { new_root: c("/r") },
                Step::Chdir {
                    path: c("/var/task")
                },
            ]
        );
    }

    #[test]
    fn refuses_relative_or_escaping_inside_paths() {
        for bad in ["relative", "/a/../b"] {
            let spec = RootSpec {
                mount_point: PathBuf::from("/r"),
                entries: vec![Entry::Tmpfs {
                    inside: PathBuf::from(bad),
                    options: "size=1m".into(),
                }],
            };
            assert!(
                matches!(plan(&spec, Path::new("/")), Err(PlanError::NotAbsolute(_))),
                "{bad}"
            );
        }
        let spec = RootSpec {
            mount_point: PathBuf::from("/r"),
            entries: vec![Entry::ro("/does/not/exist", "/x")],
        };
        assert!(matches!(
            plan(&spec, Path::new("/")),
            Err(PlanError::Inspect { .. })
        ));
    }
}
