//! Starting a process in new namespaces: `clone3` into the namespaces, run the
//! setup steps, then execute the environment's own small init (`init/main.rs`,
//! embedded, run from a sealed memory file), which starts the runtime. The
//! clone of the platform exists only during setup: what stays inside the
//! environment was freshly executed and holds nothing of the platform.
//!
//! Everything the child needs is prepared before `clone3` (C strings, pointer
//! arrays, file descriptors), because the child of a multi-threaded process may
//! only make raw system calls until it `exec`s: no allocation, no locks. A
//! failing step writes `(step index, errno)` to a close-on-exec pipe and exits;
//! the parent reads the pipe and turns it into [`SpawnError::Setup`].

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::plan::Step;

/// Why a process could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("{what} contains a NUL byte")]
    Nul { what: &'static str },
    #[error("clone3 failed: {0}")]
    Clone(std::io::Error),
    #[error("could not create a pipe: {0}")]
    Pipe(std::io::Error),
    #[error("sandbox setup failed to {step}: {error}")]
    Setup { step: String, error: std::io::Error },
    #[error("exec of {program} failed: {error}")]
    Exec {
        program: String,
        error: std::io::Error,
    },
}

/// Namespace flags for [`spawn`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Namespaces {
    pub mount: bool,
    pub pid: bool,
    pub ipc: bool,
    pub uts: bool,
    pub net: bool,
    /// A cgroup namespace rooted at the environment's own groups (entered
    /// after joining them), so `/proc/self/cgroup` shows `/`.
    pub cgroup: bool,
}

impl Namespaces {
    fn flags(self) -> u64 {
        let mut f = 0u64;
        if self.mount {
            f |= libc::CLONE_NEWNS as u64;
        }
        if self.pid {
            f |= libc::CLONE_NEWPID as u64;
        }
        if self.ipc {
            f |= libc::CLONE_NEWIPC as u64;
        }
        if self.uts {
            f |= libc::CLONE_NEWUTS as u64;
        }
        if self.net {
            f |= libc::CLONE_NEWNET as u64;
        }
        f
    }
}

/// Who the environment's processes run as, once set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
}

/// A process to start.
pub struct Command<'a> {
    pub program: &'a str,
    pub argv: &'a [String],
    pub env: &'a [(String, String)],
    pub steps: &'a [Step],
    pub namespaces: Namespaces,
    /// A network namespace (descriptor) the child enters first, instead of
    /// a new one.
    pub netns: Option<RawFd>,
    /// Becomes the child's stdout and stderr.
    pub output: RawFd,
    pub hostname: Option<&'a str>,
    /// Files (`tasks`) the child writes `0` into, before anything else, to
    /// join its cgroups (v1).
    pub cgroups: &'a [std::path::PathBuf],
    /// A cgroup (v2) directory to start the child in (`CLONE_INTO_CGROUP`).
    pub into_cgroup: Option<&'a std::path::Path>,
    /// Drop to this identity, with every capability gone and no_new_privs.
    pub identity: Option<Identity>,
    /// Seccomp filters installed last, just before the runtime starts.
    pub seccomp: &'a [seccompiler::BpfProgram],
    /// `(resource, limit)` applied as both soft and hard limits.
    pub rlimits: &'a [(u32, u64)],
}

/// Work the parent does after the environment exists and before its runtime
/// starts (the child waits): e.g. its Runtime API listener inside its network
/// namespace. Gets the environment's init pid and pidfd.
pub type BeforeStart<'a> = &'a mut dyn FnMut(libc::pid_t, &OwnedFd) -> Result<(), SpawnError>;

/// A started environment: the pid (in the parent's namespace) and pidfd of
/// its init, and the pipe on which init reports how the runtime ended.
pub struct Spawned {
    pub pid: libc::pid_t,
    pub pidfd: OwnedFd,
    /// Yields the runtime's raw wait status (4 bytes) when it ends.
    pub status: OwnedFd,
}

/// `clone3` flag: start the child in the cgroup given by `CloneArgs::cgroup`.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// The environment's init, built by `build.rs`.
static INIT_PROGRAM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/lambent-init"));

/// A read-only, sealed memory file holding the init program, made once.
/// Executable but not readable by others: an environment's uid may run it,
/// and exec then leaves the process undumpable.
fn init_program() -> Result<RawFd, SpawnError> {
    static FD: std::sync::OnceLock<Result<OwnedFd, String>> = std::sync::OnceLock::new();
    FD.get_or_init(|| make_init_program().map_err(|e| e.to_string()))
        .as_ref()
        .map(|fd| fd.as_raw_fd())
        .map_err(|e| SpawnError::Setup {
            step: "prepare the environment's init".into(),
            error: std::io::Error::other(e.clone()),
        })
}

fn make_init_program() -> std::io::Result<OwnedFd> {
    const MFD_EXEC: libc::c_uint = 0x10;
    let name = c"lambent-init";
    let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // SAFETY: memfd_create with a NUL-terminated name; MFD_EXEC is refused
    // (EINVAL) by kernels before 6.3, which are executable by default.
    let mut fd = unsafe { libc::memfd_create(name.as_ptr(), flags | MFD_EXEC) };
    if fd < 0 {
        // SAFETY: as above.
        fd = unsafe { libc::memfd_create(name.as_ptr(), flags) };
    }
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a new descriptor nothing else owns.
    let file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    std::io::Write::write_all(&mut &file, INIT_PROGRAM)?;
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: fchmod and fcntl on our own descriptor.
    unsafe {
        if libc::fchmod(file.as_raw_fd(), 0o111) != 0
            || libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, seals) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    // Executing a file open for writing fails (ETXTBSY): keep a read-only
    // descriptor only.
    let ro = std::fs::File::open(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
    Ok(OwnedFd::from(ro))
}

/// The launch spec init reads (see `init/main.rs`), in a memory file.
fn spec_file(
    program: &str,
    argv: &[String],
    env: &[(String, String)],
) -> Result<OwnedFd, SpawnError> {
    let mut spec = Vec::with_capacity(256);
    spec.extend_from_slice(&(argv.len() as u32).to_ne_bytes());
    spec.extend_from_slice(&(env.len() as u32).to_ne_bytes());
    let mut push = |s: &[u8], what: &'static str| {
        if s.contains(&0) {
            return Err(SpawnError::Nul { what });
        }
        spec.extend_from_slice(s);
        spec.push(0);
        Ok(())
    };
    push(program.as_bytes(), "the program path")?;
    for a in argv {
        push(a.as_bytes(), "an argument")?;
    }
    for (k, v) in env {
        push(format!("{k}={v}").as_bytes(), "an environment variable")?;
    }
    let spec_err = |e: std::io::Error| SpawnError::Setup {
        step: "write the launch spec".into(),
        error: e,
    };
    // SAFETY: memfd_create with a NUL-terminated name.
    let fd = unsafe { libc::memfd_create(c"lambent-spec".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(spec_err(std::io::Error::last_os_error()));
    }
    // SAFETY: a new descriptor nothing else owns.
    let file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    std::io::Write::write_all(&mut &file, &spec).map_err(spec_err)?;
    Ok(OwnedFd::from(file))
}

fn cstring(s: &str, what: &'static str) -> Result<CString, SpawnError> {
    CString::new(s).map_err(|_| SpawnError::Nul { what })
}

/// Starts `cmd`. Returns once the child has `exec`ed (or failed to).
pub fn spawn(cmd: &Command<'_>, before_start: BeforeStart<'_>) -> Result<Spawned, SpawnError> {
    let spec = spec_file(cmd.program, cmd.argv, cmd.env)?;
    let init = init_program()?;
    let init_argv: [*const libc::c_char; 2] = [c"/init".as_ptr(), std::ptr::null()];
    let init_envp: [*const libc::c_char; 1] = [std::ptr::null()];
    let hostname = cmd
        .hostname
        .map(|h| cstring(h, "the hostname"))
        .transpose()?;
    let devnull = c"/dev/null";
    let cgroups: Vec<CString> = cmd
        .cgroups
        .iter()
        .map(|p| {
            crate::plan::cstr(p).map_err(|_| SpawnError::Nul {
                what: "a cgroup path",
            })
        })
        .collect::<Result<_, _>>()?;
    let filters: Vec<libc::sock_fprog> = cmd
        .seccomp
        .iter()
        .map(|p| libc::sock_fprog {
            len: p.len() as libc::c_ushort,
            filter: p.as_ptr() as *mut libc::sock_filter,
        })
        .collect();

    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(SpawnError::Pipe(std::io::Error::last_os_error()));
    }
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by us alone.
    let (err_read, err_write) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: as above, for the status pipe.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(SpawnError::Pipe(std::io::Error::last_os_error()));
    }
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by us alone.
    let (status_read, status_write) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: as above, for the go pipe (the child waits on it before the runtime starts).
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(SpawnError::Pipe(std::io::Error::last_os_error()));
    }
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by us alone.
    let (go_read, go_write) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };

    let cgroup_dir = match cmd.into_cgroup {
        Some(dir) => Some(std::fs::File::open(dir).map_err(|e| SpawnError::Setup {
            step: format!("open cgroup {}", dir.display()),
            error: e,
        })?),
        None => None,
    };
    let mut pidfd: libc::c_int = -1;
    let mut flags = libc::CLONE_PIDFD as u64 | cmd.namespaces.flags();
    if cgroup_dir.is_some() {
        flags |= CLONE_INTO_CGROUP;
    }
    let args = CloneArgs {
        flags,
        pidfd: &mut pidfd as *mut libc::c_int as u64,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup_dir.as_ref().map_or(0, |f| f.as_raw_fd() as u64),
        ..Default::default()
    };
    let mut keep: Vec<RawFd> = vec![
        cmd.output,
        err_write.as_raw_fd(),
        status_write.as_raw_fd(),
        go_read.as_raw_fd(),
        spec.as_raw_fd(),
        init,
    ];
    keep.extend(cmd.netns);
    // Detached mounts the steps move into place.
    keep.extend(cmd.steps.iter().filter_map(|s| match s {
        Step::Disk { mount, .. } => Some(*mount),
        _ => None,
    }));
    keep.sort_unstable();
    keep.dedup();
    let steps = expand_overlays(cmd.steps, &keep)?;
    let child = ChildPlan {
        steps: &steps,
        init,
        init_argv: &init_argv,
        init_envp: &init_envp,
        spec: spec.as_raw_fd(),
        keep: &keep,
        netns: cmd.netns,
        new_cgroup_ns: cmd.namespaces.cgroup,
        output: cmd.output,
        err_fd: err_write.as_raw_fd(),
        status_fd: status_write.as_raw_fd(),
        go_fd: go_read.as_raw_fd(),
        hostname: hostname.as_ref(),
        devnull,
        cgroups: &cgroups,
        identity: cmd.identity,
        filters: &filters,
        rlimits: cmd.rlimits,
    };
    let clone_started = std::time::Instant::now();
    // SAFETY: clone3 with a zero stack behaves like fork: the child runs on a
    // copy of this stack. In the child we only call `child.run()`, which makes
    // raw system calls on data prepared above and never returns.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if ret < 0 {
        return Err(SpawnError::Clone(std::io::Error::last_os_error()));
    }
    if ret == 0 {
        // SAFETY: this is the child; `run` never returns.
        unsafe { child.run() }
    }
    let pid = ret as libc::pid_t;
    let cloned = std::time::Instant::now();
    // SAFETY: CLONE_PIDFD stored a new pidfd that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    drop(err_write);
    drop(status_write);
    drop(go_read);

    // The child sets itself up meanwhile; it waits for `go` before the runtime.
    let prepared = before_start(pid, &pidfd);
    if prepared.is_ok() {
        // SAFETY: one byte into our own pipe.
        unsafe { libc::write(go_write.as_raw_fd(), b"g".as_ptr().cast(), 1) };
    }
    drop(go_write);

    let went = std::time::Instant::now();
    let mut report = [0u8; 8];
    let n = read_full(err_read.as_raw_fd(), &mut report);
    tracing::debug!(
        clone3_us = (cloned - clone_started).as_micros() as u64,
        before_start_us = (went - cloned).as_micros() as u64,
        until_exec_us = went.elapsed().as_micros() as u64,
        "spawn phases"
    );
    if n != 8
        && let Err(e) = prepared
    {
        // SAFETY: signal and reap our own child.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                pidfd.as_raw_fd(),
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0u32,
            );
            let mut status = 0;
            libc::waitpid(pid, &mut status, 0);
        }
        return Err(e);
    }
    if n == 0 {
        return Ok(Spawned {
            pid,
            pidfd,
            status: status_read,
        });
    }
    // The child failed and exited; reap it.
    let mut status = 0;
    // SAFETY: `pid` is our child; waiting for it cannot affect other processes.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    let step = u32::from_ne_bytes([report[0], report[1], report[2], report[3]]);
    let errno = i32::from_ne_bytes([report[4], report[5], report[6], report[7]]);
    let error = std::io::Error::from_raw_os_error(errno);
    if step == PHASE_EXEC {
        return Err(SpawnError::Exec {
            program: cmd.program.to_owned(),
            error,
        });
    }
    if let Some(phase) = phase_name(step) {
        return Err(SpawnError::Setup {
            step: phase.to_owned(),
            error,
        });
    }
    if step as usize >= steps.len() {
        return Err(SpawnError::Exec {
            program: cmd.program.to_owned(),
            error,
        });
    }
    Err(SpawnError::Setup {
        step: steps[step as usize].describe(),
        error,
    })
}

/// Replaces each [`Step::Overlay`] by steps that open its layers as
/// descriptors the child does not otherwise use (not in `keep`, which is
/// sorted) and mount the overlay through `/proc/self/fd/N`.
fn expand_overlays(steps: &[Step], keep: &[RawFd]) -> Result<Vec<Step>, SpawnError> {
    let mut out = Vec::with_capacity(steps.len() + 8);
    let mut next: RawFd = 3;
    for step in steps {
        let Step::Overlay { dst, layers } = step else {
            out.push(step.clone());
            continue;
        };
        let mut options = b"lowerdir=".to_vec();
        for (i, path) in layers.iter().enumerate() {
            while keep.binary_search(&next).is_ok() {
                next += 1;
            }
            out.push(Step::OpenDir {
                path: path.clone(),
                fd: next,
            });
            if i > 0 {
                options.push(b':');
            }
            options.extend_from_slice(format!("/proc/self/fd/{next}").as_bytes());
            next += 1;
        }
        out.push(Step::MountOverlay {
            dst: dst.clone(),
            options: CString::new(options).map_err(|_| SpawnError::Nul {
                what: "overlay options",
            })?,
        });
    }
    Ok(out)
}

/// Failure codes for the phases around the setup steps.
const PHASE_CGROUP: u32 = u32::MAX - 1;
const PHASE_RLIMIT: u32 = u32::MAX - 2;
const PHASE_IDENTITY: u32 = u32::MAX - 3;
const PHASE_SECCOMP: u32 = u32::MAX - 4;
/// Reported by init (`init/main.rs`): the runtime's exec failed.
const PHASE_EXEC: u32 = u32::MAX - 5;
/// Reported by init: it could not read its spec or start the runtime.
const PHASE_INIT: u32 = u32::MAX - 6;
const PHASE_INIT_EXEC: u32 = u32::MAX - 7;
const PHASE_NETNS: u32 = u32::MAX - 8;

fn phase_name(code: u32) -> Option<&'static str> {
    match code {
        PHASE_CGROUP => Some("join the environment's cgroups"),
        PHASE_RLIMIT => Some("set resource limits"),
        PHASE_IDENTITY => Some("drop privileges"),
        PHASE_SECCOMP => Some("install the seccomp filter"),
        PHASE_INIT => Some("start the runtime from the environment's init"),
        PHASE_INIT_EXEC => Some("execute the environment's init"),
        PHASE_NETNS => Some("enter the environment's network namespace"),
        _ => None,
    }
}

fn read_full(fd: RawFd, buf: &mut [u8]) -> usize {
    let mut got = 0;
    while got < buf.len() {
        // SAFETY: reading into the unfilled tail of a buffer we own.
        let n = unsafe { libc::read(fd, buf[got..].as_mut_ptr().cast(), buf.len() - got) };
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        if n <= 0 {
            break;
        }
        got += n as usize;
    }
    got
}

/// What the child runs; holds only borrowed, pre-built data.
struct ChildPlan<'a> {
    steps: &'a [Step],
    init: RawFd,
    init_argv: &'a [*const libc::c_char],
    init_envp: &'a [*const libc::c_char],
    spec: RawFd,
    keep: &'a [RawFd],
    netns: Option<RawFd>,
    new_cgroup_ns: bool,
    output: RawFd,
    err_fd: RawFd,
    status_fd: RawFd,
    go_fd: RawFd,
    hostname: Option<&'a CString>,
    devnull: &'a std::ffi::CStr,
    cgroups: &'a [CString],
    identity: Option<Identity>,
    filters: &'a [libc::sock_fprog],
    rlimits: &'a [(u32, u64)],
}

impl ChildPlan<'_> {
    /// Runs in the child after clone3, as init (pid 1) of the new pid
    /// namespace: setup steps, then start the runtime as pid 2, reap
    /// everything, and report the runtime's end. Never returns.
    ///
    /// The runtime is not pid 1 because the kernel drops signals that pid 1
    /// sends itself without a handler (`kill -SEGV $$`, `abort()`), and
    /// orphans would never be reaped.
    ///
    /// # Safety
    /// Must only be called in a freshly cloned child; it makes raw system calls
    /// and exits the process.
    unsafe fn run(&self) -> ! {
        // SAFETY (whole function): only async-signal-safe calls and raw system
        // calls on pointers into data the child has a private copy of. New
        // processes are made with the raw clone system call, not glibc's fork,
        // which would take allocator locks another thread of the parent may
        // have held at clone time.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            // Rust ignores SIGPIPE; runtimes expect the default.
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            // The environment dies with the launcher thread that made it, so
            // nothing outlives the platform (even after kill -9).
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            // Drop the copy of the platform's descriptor table (sockets of
            // other environments, client connections) first: it is none of
            // the function's business, and with thousands of them the lowest
            // free descriptor would lie above the function's limit of 1,024.
            close_all_but(self.keep);
            if let Some(fd) = self.netns
                && libc::setns(fd, libc::CLONE_NEWNET) != 0
            {
                self.fail(PHASE_NETNS);
            }

            for path in self.cgroups {
                let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 || libc::write(fd, c"0".as_ptr().cast(), 1) != 1 {
                    self.fail(PHASE_CGROUP);
                }
                libc::close(fd);
            }
            // Rooted at the groups just joined: the environment sees `/`,
            // nothing of the host's hierarchy.
            if self.new_cgroup_ns && libc::unshare(libc::CLONE_NEWCGROUP) != 0 {
                self.fail(PHASE_CGROUP);
            }
            for (i, step) in self.steps.iter().enumerate() {
                if run_step(step) != 0 {
                    self.fail(i as u32);
                }
            }
            let done = self.steps.len() as u32;
            if let Some(h) = self.hostname
                && libc::sethostname(h.as_ptr(), h.as_bytes().len()) != 0
            {
                self.fail(done);
            }
            for (resource, limit) in self.rlimits {
                let rl = libc::rlimit {
                    rlim_cur: *limit,
                    rlim_max: *limit,
                };
                if libc::setrlimit(*resource as _, &rl) != 0 {
                    self.fail(PHASE_RLIMIT);
                }
            }
            if let Some(id) = self.identity {
                // Empty the bounding set while still privileged, then change
                // identity: a non-root uid loses every remaining capability.
                for cap in 0..64 {
                    if libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) != 0
                        && *libc::__errno_location() != libc::EINVAL
                    {
                        self.fail(PHASE_IDENTITY);
                    }
                }
                // Raw system calls, not libc's wrappers: glibc's setgroups
                // and setres[ug]id signal every thread it believes the
                // process has (the parent's, copied by clone3) and wait for
                // them forever.
                if libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()) != 0
                    || libc::syscall(libc::SYS_setresgid, id.gid, id.gid, id.gid) != 0
                    || libc::syscall(libc::SYS_setresuid, id.uid, id.uid, id.uid) != 0
                {
                    self.fail(PHASE_IDENTITY);
                }
            }
            // Changing identity cleared the parent-death signal.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                self.fail(PHASE_IDENTITY);
            }
            for prog in self.filters {
                if libc::syscall(
                    libc::SYS_seccomp,
                    libc::SECCOMP_SET_MODE_FILTER,
                    0,
                    prog as *const libc::sock_fprog,
                ) != 0
                {
                    self.fail(PHASE_SECCOMP);
                }
            }
            let null = libc::open(self.devnull.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
            if null < 0 {
                self.fail(done);
            }
            // Wait until the platform has finished its side (the Runtime API).
            let mut go = [0u8; 1];
            loop {
                let n = libc::read(self.go_fd, go.as_mut_ptr().cast(), 1);
                if n == 1 {
                    break;
                }
                if n < 0 && *libc::__errno_location() == libc::EINTR {
                    continue;
                }
                libc::_exit(126);
            }
            // Init's descriptors: 0-2 /dev/null, 3 the spec, 4 the
            // runtime's output, 5 the error pipe, 6 the status pipe; the
            // init program at 7 until exec. Copies above everything first,
            // so that no source is overwritten before it is moved.
            let sources = [
                self.spec,
                self.output,
                self.err_fd,
                self.status_fd,
                self.init,
            ];
            let mut high = [0 as libc::c_int; 5];
            for (h, fd) in high.iter_mut().zip(sources) {
                *h = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 16);
                if *h < 0 {
                    self.fail(PHASE_INIT_EXEC);
                }
            }
            for target in 0..3 {
                if libc::dup2(null, target) < 0 {
                    self.fail(PHASE_INIT_EXEC);
                }
            }
            for (i, h) in high[..4].iter().enumerate() {
                if libc::dup2(*h, 3 + i as libc::c_int) < 0 {
                    self.fail(PHASE_INIT_EXEC);
                }
            }
            if libc::dup3(high[4], 7, libc::O_CLOEXEC) < 0 {
                self.fail(PHASE_INIT_EXEC);
            }
            libc::syscall(libc::SYS_close_range, 8u32, libc::c_uint::MAX, 0u32);
            libc::syscall(
                libc::SYS_execveat,
                7,
                c"".as_ptr(),
                self.init_argv.as_ptr(),
                self.init_envp.as_ptr(),
                libc::AT_EMPTY_PATH,
            );
            fail_to(5, PHASE_INIT_EXEC)
        }
    }

    /// Reports the failing step and errno, then exits.
    unsafe fn fail(&self, step: u32) -> ! {
        fail_to(self.err_fd, step)
    }
}

/// Writes the failing step and errno to the error pipe `fd`, then exits.
fn fail_to(fd: RawFd, step: u32) -> ! {
    // SAFETY: errno read and a write to our own pipe, then _exit.
    unsafe {
        let errno = *libc::__errno_location();
        let mut buf = [0u8; 8];
        buf[..4].copy_from_slice(&step.to_ne_bytes());
        buf[4..].copy_from_slice(&errno.to_ne_bytes());
        libc::write(fd, buf.as_ptr().cast(), buf.len());
        libc::_exit(127)
    }
}

/// Closes every descriptor from 3 up except those in `keep`.
///
/// # Safety
/// Only for a freshly cloned child: it closes descriptors other threads of
/// the parent may use (the child has its own copy of the table).
/// `keep` is sorted.
unsafe fn close_all_but(keep: &[RawFd]) {
    let mut from: libc::c_uint = 3;
    for &fd in keep {
        let Ok(fd) = libc::c_uint::try_from(fd) else {
            continue;
        };
        if fd >= from {
            if fd > from {
                // SAFETY: closes a range of this process's descriptors.
                unsafe { libc::syscall(libc::SYS_close_range, from, fd - 1, 0u32) };
            }
            from = fd + 1;
        }
    }
    // SAFETY: as above.
    unsafe { libc::syscall(libc::SYS_close_range, from, libc::c_uint::MAX, 0u32) };
}

/// Runs one step; returns 0 or -1 (errno set).
///
/// # Safety
/// Raw system calls on valid C strings.
unsafe fn run_step(step: &Step) -> libc::c_int {
    let null: *const libc::c_char = std::ptr::null();
    // SAFETY: each call passes pointers to NUL-terminated strings the plan owns.
    unsafe {
        match step {
            Step::MakeMountsPrivate => libc::mount(
                null,
                c"/".as_ptr(),
                null,
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ),
            Step::RootTmpfs { target } => libc::mount(
                c"tmpfs".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                c"size=1m,mode=755".as_ptr().cast(),
            ),
            Step::Mkdir { path } => {
                let mut st: libc::stat = std::mem::zeroed();
                if libc::stat(path.as_ptr(), &mut st) == 0 {
                    return 0;
                }
                libc::mkdir(path.as_ptr(), 0o755)
            }
            Step::Touch { path } => {
                let mut st: libc::stat = std::mem::zeroed();
                if libc::stat(path.as_ptr(), &mut st) == 0 {
                    return 0;
                }
                let fd = libc::open(
                    path.as_ptr(),
                    libc::O_CREAT | libc::O_RDONLY | libc::O_CLOEXEC,
                    0o644,
                );
                if fd < 0 {
                    -1
                } else {
                    libc::close(fd);
                    0
                }
            }
            Step::Symlink { target, link } => libc::symlink(target.as_ptr(), link.as_ptr()),
            Step::Bind {
                src,
                dst,
                writable,
                device,
            } => {
                if libc::mount(
                    src.as_ptr(),
                    dst.as_ptr(),
                    null,
                    libc::MS_BIND | libc::MS_REC,
                    std::ptr::null(),
                ) != 0
                {
                    return -1;
                }
                let mut flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_NOSUID;
                if !*device {
                    flags |= libc::MS_NODEV;
                }
                if !*writable {
                    flags |= libc::MS_RDONLY;
                }
                libc::mount(null, dst.as_ptr(), null, flags, std::ptr::null())
            }
            Step::Tmpfs { dst, options } => libc::mount(
                c"tmpfs".as_ptr(),
                dst.as_ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                options.as_ptr().cast(),
            ),
            // Expanded by `spawn` before the child runs.
            Step::Overlay { .. } => {
                *libc::__errno_location() = libc::EINVAL;
                -1
            }
            Step::OpenDir { path, fd } => {
                let got = libc::open(
                    path.as_ptr(),
                    libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
                );
                if got < 0 {
                    return -1;
                }
                if got != *fd {
                    if libc::dup3(got, *fd, libc::O_CLOEXEC) < 0 {
                        return -1;
                    }
                    libc::close(got);
                }
                0
            }
            Step::MountOverlay { dst, options } => libc::mount(
                c"overlay".as_ptr(),
                dst.as_ptr(),
                c"overlay".as_ptr(),
                libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
                options.as_ptr().cast(),
            ),
            Step::Disk { mount, dst } => libc::syscall(
                libc::SYS_move_mount,
                *mount,
                c"".as_ptr(),
                libc::AT_FDCWD,
                dst.as_ptr(),
                libc::MOVE_MOUNT_F_EMPTY_PATH,
            ) as libc::c_int,
            Step::Proc { dst } => libc::mount(
                c"proc".as_ptr(),
                dst.as_ptr(),
                c"proc".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                std::ptr::null(),
            ),
            Step::SealRoot { target } => libc::mount(
                null,
                target.as_ptr(),
                null,
                libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
                std::ptr::null(),
            ),
            Step::PivotRoot { new_root } => {
                if libc::chdir(new_root.as_ptr()) != 0 {
                    return -1;
                }
                if libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) != 0 {
                    return -1;
                }
                if libc::umount2(c".".as_ptr(), libc::MNT_DETACH) != 0 {
                    return -1;
                }
                libc::chdir(c"/".as_ptr())
            }
            Step::Chdir { path } => libc::chdir(path.as_ptr()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlays_name_their_layers_by_free_descriptors() {
        let c = |s: &str| CString::new(s).unwrap();
        let steps = vec![
            Step::Mkdir { path: c("/r/etc") },
            Step::Overlay {
                dst: c("/r/etc"),
                layers: vec![c("/data/etc"), c("/data/empty")],
            },
            Step::Overlay {
                dst: c("/r/var/task"),
                layers: vec![c("/data/code/abc"), c("/data/empty")],
            },
        ];
        let out = expand_overlays(&steps, &[4, 5, 7]).unwrap();
        assert_eq!(
            out,
            vec![
                Step::Mkdir { path: c("/r/etc") },
                Step::OpenDir {
                    path: c("/data/etc"),
                    fd: 3
                },
                Step::OpenDir {
                    path: c("/data/empty"),
                    fd: 6
                },
                Step::MountOverlay {
                    dst: c("/r/etc"),
                    options: c("lowerdir=/proc/self/fd/3:/proc/self/fd/6"),
                },
                Step::OpenDir {
                    path: c("/data/code/abc"),
                    fd: 8
                },
                Step::OpenDir {
                    path: c("/data/empty"),
                    fd: 9
                },
                Step::MountOverlay {
                    dst: c("/r/var/task"),
                    options: c("lowerdir=/proc/self/fd/8:/proc/self/fd/9"),
                },
            ]
        );
    }

    #[test]
    fn the_launch_spec_is_what_init_parses() {
        let fd = spec_file(
            "/var/runtime/bootstrap",
            &["bootstrap".into(), "x".into()],
            &[("A".into(), "1".into())],
        )
        .unwrap();
        let mut bytes = Vec::new();
        let mut f = std::fs::File::from(fd);
        std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(0)).unwrap();
        std::io::Read::read_to_end(&mut f, &mut bytes).unwrap();
        let mut want = 2u32.to_ne_bytes().to_vec();
        want.extend_from_slice(&1u32.to_ne_bytes());
        want.extend_from_slice(b"/var/runtime/bootstrap\0bootstrap\0x\0A=1\0");
        assert_eq!(bytes, want);
        assert!(matches!(
            spec_file("/x", &["a\0b".into()], &[]),
            Err(SpawnError::Nul { .. })
        ));
    }
}
