//! Starting a process in new namespaces: `clone3` into the namespaces, run the
//! setup steps, `execve` the runtime.
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

fn cstring(s: &str, what: &'static str) -> Result<CString, SpawnError> {
    CString::new(s).map_err(|_| SpawnError::Nul { what })
}

/// Starts `cmd`. Returns once the child has `exec`ed (or failed to).
pub fn spawn(cmd: &Command<'_>, before_start: BeforeStart<'_>) -> Result<Spawned, SpawnError> {
    let program = cstring(cmd.program, "the program path")?;
    let argv: Vec<CString> = cmd
        .argv
        .iter()
        .map(|a| cstring(a, "an argument"))
        .collect::<Result<_, _>>()?;
    let envp: Vec<CString> = cmd
        .env
        .iter()
        .map(|(k, v)| cstring(&format!("{k}={v}"), "an environment variable"))
        .collect::<Result<_, _>>()?;
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp_ptrs: Vec<*const libc::c_char> = envp.iter().map(|e| e.as_ptr()).collect();
    envp_ptrs.push(std::ptr::null());
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
    let child = ChildPlan {
        steps: cmd.steps,
        program: &program,
        argv: &argv_ptrs,
        envp: &envp_ptrs,
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
    if let Some(phase) = phase_name(step) {
        return Err(SpawnError::Setup {
            step: phase.to_owned(),
            error,
        });
    }
    if step as usize >= cmd.steps.len() {
        return Err(SpawnError::Exec {
            program: cmd.program.to_owned(),
            error,
        });
    }
    Err(SpawnError::Setup {
        step: cmd.steps[step as usize].describe(),
        error,
    })
}

/// Failure codes for the phases around the setup steps.
const PHASE_CGROUP: u32 = u32::MAX - 1;
const PHASE_RLIMIT: u32 = u32::MAX - 2;
const PHASE_IDENTITY: u32 = u32::MAX - 3;
const PHASE_SECCOMP: u32 = u32::MAX - 4;

fn phase_name(code: u32) -> Option<&'static str> {
    match code {
        PHASE_CGROUP => Some("join the environment's cgroups"),
        PHASE_RLIMIT => Some("set resource limits"),
        PHASE_IDENTITY => Some("drop privileges"),
        PHASE_SECCOMP => Some("install the seccomp filter"),
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
    program: &'a CString,
    argv: &'a [*const libc::c_char],
    envp: &'a [*const libc::c_char],
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
            close_all_but(&[self.output, self.err_fd, self.status_fd, self.go_fd]);

            for path in self.cgroups {
                let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 || libc::write(fd, c"0".as_ptr().cast(), 1) != 1 {
                    self.fail(PHASE_CGROUP);
                }
                libc::close(fd);
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
            // The runtime is started vfork-style: it shares this process's
            // memory (no copy of the platform's page tables, which this
            // process inherited) on a stack of its own, and this process
            // waits until it has exec'd. Before exec it only wires its
            // descriptors.
            const STACK: usize = 64 * 1024;
            let stack = libc::mmap(
                std::ptr::null_mut(),
                STACK,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            );
            if stack == libc::MAP_FAILED {
                self.fail(done);
            }
            let job = RuntimeExec {
                plan: self,
                null,
                step: done,
            };
            let runtime = libc::clone(
                runtime_main,
                stack.cast::<u8>().add(STACK).cast(),
                libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                (&job as *const RuntimeExec<'_>).cast_mut().cast(),
            );
            if runtime < 0 {
                self.fail(done);
            }
            libc::munmap(stack, STACK);
            // Init: hold nothing but the status pipe, so the runtime's output
            // and the parent's error pipe close when the runtime's side does.
            libc::dup2(null, 0);
            libc::dup2(null, 1);
            libc::dup2(null, 2);
            let s = self.status_fd as libc::c_uint;
            if s > 3 {
                libc::syscall(libc::SYS_close_range, 3u32, s - 1, 0u32);
            }
            libc::syscall(libc::SYS_close_range, s + 1, u32::MAX, 0u32);
            loop {
                let mut status: libc::c_int = 0;
                let pid = libc::waitpid(-1, &mut status, 0);
                if pid == runtime as libc::pid_t {
                    let bytes = status.to_ne_bytes();
                    libc::write(self.status_fd, bytes.as_ptr().cast(), bytes.len());
                    libc::_exit(0);
                }
                if pid < 0 && *libc::__errno_location() != libc::EINTR {
                    libc::_exit(0);
                }
            }
        }
    }

    /// In the runtime's process: wire stdio, close the rest, exec.
    /// It runs on a stack of its own in memory shared with init (vfork-style):
    /// it only makes system calls on data init prepared.
    unsafe fn exec_runtime(&self, null: libc::c_int, step: u32) -> ! {
        // SAFETY: raw system calls on descriptors and strings prepared earlier.
        unsafe {
            if libc::dup2(null, 0) < 0
                || libc::dup2(self.output, 1) < 0
                || libc::dup2(self.output, 2) < 0
            {
                self.fail(step);
            }
            // Close everything else but the error pipe (close-on-exec).
            let e = self.err_fd as libc::c_uint;
            if e > 3 {
                libc::syscall(libc::SYS_close_range, 3u32, e - 1, 0u32);
            }
            libc::syscall(libc::SYS_close_range, e + 1, u32::MAX, 0u32);
            libc::execve(
                self.program.as_ptr(),
                self.argv.as_ptr(),
                self.envp.as_ptr(),
            );
            self.fail(step)
        }
    }

    /// Reports the failing step and errno, then exits.
    unsafe fn fail(&self, step: u32) -> ! {
        // SAFETY: errno read and a write to our own pipe, then _exit.
        unsafe {
            let errno = *libc::__errno_location();
            let mut buf = [0u8; 8];
            buf[..4].copy_from_slice(&step.to_ne_bytes());
            buf[4..].copy_from_slice(&errno.to_ne_bytes());
            libc::write(self.err_fd, buf.as_ptr().cast(), buf.len());
            libc::_exit(127)
        }
    }
}

/// What the runtime's vfork-style child needs.
struct RuntimeExec<'a> {
    plan: &'a ChildPlan<'a>,
    null: libc::c_int,
    step: u32,
}

/// Entry of the runtime's process (see `ChildPlan::run`).
extern "C" fn runtime_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` points at a `RuntimeExec` on init's stack, which stays
    // valid: init is suspended (CLONE_VFORK) until this process execs or exits,
    // and `exec_runtime` never returns.
    unsafe {
        let job = &*(arg as *const RuntimeExec<'_>);
        job.plan.exec_runtime(job.null, job.step)
    }
}

/// Closes every descriptor from 3 up except those in `keep`.
///
/// # Safety
/// Only for a freshly cloned child: it closes descriptors other threads of
/// the parent may use (the child has its own copy of the table).
unsafe fn close_all_but(keep: &[RawFd; 4]) {
    let mut k = *keep;
    k.sort_unstable();
    let mut from: libc::c_uint = 3;
    for fd in k {
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
            Step::Disk {
                source,
                dst,
                lost_found,
            } => {
                // noinit_itable: the template's inode tables are holes that
                // read as zeros; zeroing them again would only cost writes.
                if libc::mount(
                    source.as_ptr(),
                    dst.as_ptr(),
                    c"ext4".as_ptr(),
                    libc::MS_NOSUID | libc::MS_NODEV,
                    c"noinit_itable".as_ptr().cast(),
                ) != 0
                    || libc::chmod(dst.as_ptr(), 0o1777) != 0
                {
                    return -1;
                }
                libc::rmdir(lost_found.as_ptr());
                0
            }
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
