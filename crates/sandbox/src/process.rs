//! A running sandboxed process, watched through its pidfd.

use std::fmt;
use std::os::fd::{AsRawFd, OwnedFd};

use tokio::io::unix::AsyncFd;

/// How a process ended, printed as Lambda prints it (`exit status 1`,
/// `signal: killed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Exited(i32),
    Signaled(i32),
}

impl ExitStatus {
    pub fn success(self) -> bool {
        self == Self::Exited(0)
    }
}

/// The name Go's `os.ProcessState` gives a signal (Lambda's messages use it).
pub fn signal_name(sig: i32) -> String {
    let name = match sig {
        libc::SIGHUP => "hangup",
        libc::SIGINT => "interrupt",
        libc::SIGQUIT => "quit",
        libc::SIGILL => "illegal instruction",
        libc::SIGTRAP => "trace/breakpoint trap",
        libc::SIGABRT => "aborted",
        libc::SIGBUS => "bus error",
        libc::SIGFPE => "floating point exception",
        libc::SIGKILL => "killed",
        libc::SIGUSR1 => "user defined signal 1",
        libc::SIGSEGV => "segmentation fault",
        libc::SIGUSR2 => "user defined signal 2",
        libc::SIGPIPE => "broken pipe",
        libc::SIGALRM => "alarm clock",
        libc::SIGTERM => "terminated",
        libc::SIGXCPU => "CPU time limit exceeded",
        libc::SIGXFSZ => "file size limit exceeded",
        libc::SIGSYS => "bad system call",
        other => return format!("signal {other}"),
    };
    name.to_owned()
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exited(code) => write!(f, "exit status {code}"),
            Self::Signaled(sig) => write!(f, "signal: {}", signal_name(*sig)),
        }
    }
}

/// An environment started by this crate: its init process (pid 1 of the
/// environment's pid namespace) and the runtime init watches.
pub struct Process {
    pid: libc::pid_t,
    pidfd: AsyncFd<OwnedFd>,
    status: OwnedFd,
    // Dropped after the process is reaped (declaration order): the cgroup is
    // removed and the uid freed only once nothing runs in them.
    cgroup: Option<crate::cgroup::EnvCgroup>,
    _uid: Option<crate::UidLease>,
}

impl Process {
    pub(crate) fn new(
        pid: libc::pid_t,
        pidfd: OwnedFd,
        status: OwnedFd,
        cgroup: Option<crate::cgroup::EnvCgroup>,
        uid: Option<crate::UidLease>,
    ) -> std::io::Result<Self> {
        // SAFETY: `OwnedFd` keeps the pidfd open and unchanged for as long as
        // the `AsyncFd` owns it.
        let pidfd =
            unsafe { AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE) }
                .map_err(|e| e.into_parts().1)?;
        Ok(Self {
            pid,
            pidfd,
            status,
            cgroup,
            _uid: uid,
        })
    }

    /// The pid of the environment's init in the platform's pid namespace.
    pub fn pid(&self) -> libc::pid_t {
        self.pid
    }

    /// Sends SIGKILL (to the whole environment when the process is the init of
    /// its own pid namespace). Safe to call after the process ended.
    pub fn kill(&self) {
        if let Some(cg) = &self.cgroup {
            // A frozen or throttled environment cannot die promptly.
            cg.unlimit_cpu();
            let _ = cg.set_frozen(false);
        }
        // SAFETY: pidfd_send_signal on a pidfd we own; it cannot reach another
        // process even if the pid was reused.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.get_ref().as_raw_fd(),
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0u32,
            );
        }
    }

    /// Whether the environment's init is still running (never blocks, never reaps).
    pub fn is_alive(&self) -> bool {
        // SAFETY: a zeroed siginfo_t is a valid out-parameter for waitid.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid(P_PIDFD) with WNOWAIT only inspects our own child.
        let r = unsafe {
            libc::waitid(
                libc::P_PIDFD,
                self.pidfd.get_ref().as_raw_fd() as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        // SAFETY: waitid filled `info` (si_pid stays 0 while the child runs).
        r == 0 && unsafe { info.si_pid() } == 0
    }

    /// Waits for the environment to end and reaps it; returns how the
    /// runtime ended (`signal: killed` when the environment was killed).
    pub async fn wait(&self) -> std::io::Result<ExitStatus> {
        loop {
            let mut guard = self.pidfd.readable().await?;
            if self.try_reap()?.is_some() {
                return Ok(self.runtime_status());
            }
            guard.clear_ready();
        }
    }

    /// The runtime's status as init reported it; init exits right after.
    fn runtime_status(&self) -> ExitStatus {
        let mut buf = [0u8; 4];
        // SAFETY: non-blocking-in-practice read of our own pipe: init has exited,
        // so the write end is closed and read returns at once.
        let n = unsafe { libc::read(self.status.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n != 4 {
            return ExitStatus::Signaled(libc::SIGKILL);
        }
        let raw = i32::from_ne_bytes(buf);
        if libc::WIFEXITED(raw) {
            ExitStatus::Exited(libc::WEXITSTATUS(raw))
        } else if libc::WIFSIGNALED(raw) {
            ExitStatus::Signaled(libc::WTERMSIG(raw))
        } else {
            ExitStatus::Signaled(libc::SIGKILL)
        }
    }

    fn try_reap(&self) -> std::io::Result<Option<ExitStatus>> {
        // SAFETY: a zeroed siginfo_t is a valid out-parameter for waitid.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid(P_PIDFD) on our own pidfd, writing into `info`.
        let r = unsafe {
            libc::waitid(
                libc::P_PIDFD,
                self.pidfd.get_ref().as_raw_fd() as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG,
            )
        };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: waitid filled `info`; si_pid is 0 when the child is still running.
        let (pid, code, status) = unsafe { (info.si_pid(), info.si_code, info.si_status()) };
        if pid == 0 {
            return Ok(None);
        }
        Ok(Some(match code {
            libc::CLD_EXITED => ExitStatus::Exited(status),
            _ => ExitStatus::Signaled(status),
        }))
    }

    /// The uid the environment's processes run as.
    pub fn uid(&self) -> Option<u32> {
        self._uid.as_ref().map(|l| l.uid())
    }

    /// Peak memory of the whole environment: from its cgroup, else the
    /// runtime process's peak resident set.
    pub fn memory_peak_bytes(&self) -> Option<u64> {
        match &self.cgroup {
            Some(cg) => cg.memory_peak(),
            None => self.peak_rss_bytes(),
        }
    }

    /// Processes and threads in the environment now (0 without a cgroup).
    pub fn pids_current(&self) -> u64 {
        self.cgroup.as_ref().map_or(0, |c| c.pids_current())
    }

    /// How many processes the kernel killed for exceeding the memory limit.
    pub fn oom_kills(&self) -> u64 {
        self.cgroup.as_ref().map(|c| c.oom_kills()).unwrap_or(0)
    }

    /// Applies the steady-state CPU share once init is over (init may burst
    /// up to [`crate::cgroup::INIT_VCPUS`]).
    pub fn limit_cpu(&self) {
        if let Some(cg) = &self.cgroup
            && let Err(e) = cg.limit_cpu()
        {
            tracing::warn!(error = %e, "could not apply the CPU limit");
        }
    }

    /// Freezes (or thaws) every process of the environment; `false` when the
    /// environment has no freezer.
    pub fn set_frozen(&self, frozen: bool) -> bool {
        match &self.cgroup {
            Some(cg) => match cg.set_frozen(frozen) {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(error = %e, frozen, "could not change the freezer state");
                    false
                }
            },
            None => false,
        }
    }

    pub fn is_frozen(&self) -> bool {
        self.cgroup.as_ref().is_some_and(|c| c.is_frozen())
    }

    /// Peak resident memory of the runtime process (`VmHWM`), in bytes.
    pub fn peak_rss_bytes(&self) -> Option<u64> {
        let children =
            std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", self.pid)).ok()?;
        let runtime = children.split_whitespace().next()?;
        let status = std::fs::read_to_string(format!("/proc/{runtime}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // A frozen environment cannot die; thaw it so the kill lands.
        if self.is_frozen() {
            self.set_frozen(false);
        }
        self.kill();
        // Reap so no zombie is left; the process was just killed.
        // SAFETY: a zeroed siginfo_t is a valid out-parameter for waitid.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: blocking waitid on our own, just-killed child returns promptly.
        unsafe {
            libc::waitid(
                libc::P_PIDFD,
                self.pidfd.get_ref().as_raw_fd() as libc::id_t,
                &mut info,
                libc::WEXITED,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_status_texts_match_lambda() {
        assert_eq!(ExitStatus::Exited(127).to_string(), "exit status 127");
        assert_eq!(
            ExitStatus::Signaled(libc::SIGKILL).to_string(),
            "signal: killed"
        );
        assert_eq!(
            ExitStatus::Signaled(libc::SIGSEGV).to_string(),
            "signal: segmentation fault"
        );
        assert_eq!(ExitStatus::Signaled(64).to_string(), "signal: signal 64");
    }
}
