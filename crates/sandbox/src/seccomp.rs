//! The seccomp filters every environment runs under: a deny list of what a
//! function never needs (mounting, tracing, kernel modules and keyrings, BPF,
//! perf, io_uring, new namespaces, handle-based opens, clock and host changes), in the
//! spirit of Docker's default profile. Built once, in the parent, with
//! `seccompiler`; installed by the child just before `exec`.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};

#[derive(Debug, thiserror::Error)]
#[error("cannot build the seccomp filter: {0}")]
pub struct FilterError(String);

/// System calls refused with `EPERM`, whatever their arguments.
pub const DENIED: &[(&str, libc::c_long)] = &[
    ("mount", libc::SYS_mount),
    ("umount2", libc::SYS_umount2),
    ("pivot_root", libc::SYS_pivot_root),
    ("chroot", libc::SYS_chroot),
    ("ptrace", libc::SYS_ptrace),
    ("process_vm_readv", libc::SYS_process_vm_readv),
    ("process_vm_writev", libc::SYS_process_vm_writev),
    ("pidfd_getfd", libc::SYS_pidfd_getfd),
    ("kexec_load", libc::SYS_kexec_load),
    ("kexec_file_load", libc::SYS_kexec_file_load),
    ("bpf", libc::SYS_bpf),
    ("keyctl", libc::SYS_keyctl),
    ("add_key", libc::SYS_add_key),
    ("request_key", libc::SYS_request_key),
    ("perf_event_open", libc::SYS_perf_event_open),
    ("init_module", libc::SYS_init_module),
    ("finit_module", libc::SYS_finit_module),
    ("delete_module", libc::SYS_delete_module),
    ("unshare", libc::SYS_unshare),
    ("setns", libc::SYS_setns),
    ("open_by_handle_at", libc::SYS_open_by_handle_at),
    ("name_to_handle_at", libc::SYS_name_to_handle_at),
    ("userfaultfd", libc::SYS_userfaultfd),
    ("swapon", libc::SYS_swapon),
    ("swapoff", libc::SYS_swapoff),
    ("reboot", libc::SYS_reboot),
    ("sethostname", libc::SYS_sethostname),
    ("setdomainname", libc::SYS_setdomainname),
    ("acct", libc::SYS_acct),
    ("quotactl", libc::SYS_quotactl),
    ("syslog", libc::SYS_syslog),
    ("vhangup", libc::SYS_vhangup),
    ("clock_settime", libc::SYS_clock_settime),
    ("clock_adjtime", libc::SYS_clock_adjtime),
    ("settimeofday", libc::SYS_settimeofday),
    ("adjtimex", libc::SYS_adjtimex),
    ("fanotify_init", libc::SYS_fanotify_init),
    ("fsopen", libc::SYS_fsopen),
    ("fsconfig", libc::SYS_fsconfig),
    ("fsmount", libc::SYS_fsmount),
    ("fspick", libc::SYS_fspick),
    ("move_mount", libc::SYS_move_mount),
    ("open_tree", libc::SYS_open_tree),
    ("mount_setattr", libc::SYS_mount_setattr),
    // io_uring runs operations from kernel workers, out of seccomp's sight,
    // and has been a steady source of kernel bugs (Docker refuses it too).
    ("io_uring_setup", libc::SYS_io_uring_setup),
    ("io_uring_enter", libc::SYS_io_uring_enter),
    ("io_uring_register", libc::SYS_io_uring_register),
    #[cfg(target_arch = "x86_64")]
    ("iopl", libc::SYS_iopl),
    #[cfg(target_arch = "x86_64")]
    ("ioperm", libc::SYS_ioperm),
    #[cfg(target_arch = "x86_64")]
    ("lookup_dcookie", libc::SYS_lookup_dcookie),
];

/// `clone` flags that would create namespaces.
const NAMESPACE_FLAGS: &[u64] = &[
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWCGROUP as u64,
];

fn arch() -> Result<seccompiler::TargetArch, FilterError> {
    std::env::consts::ARCH
        .try_into()
        .map_err(|e: seccompiler::BackendError| FilterError(e.to_string()))
}

fn cond(arg: u8, op: SeccompCmpOp, value: u64) -> Result<SeccompCondition, FilterError> {
    SeccompCondition::new(arg, SeccompCmpArgLen::Qword, op, value)
        .map_err(|e| FilterError(e.to_string()))
}

fn rule(conds: Vec<SeccompCondition>) -> Result<SeccompRule, FilterError> {
    SeccompRule::new(conds).map_err(|e| FilterError(e.to_string()))
}

/// The filters, in the order the child installs them.
pub fn filters() -> Result<Vec<BpfProgram>, FilterError> {
    let mut deny: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for (_, nr) in DENIED {
        deny.insert(*nr, vec![]);
    }
    // clone() that asks for a new namespace.
    let clone_rules = NAMESPACE_FLAGS
        .iter()
        .map(|f| rule(vec![cond(0, SeccompCmpOp::MaskedEq(*f), *f)?]))
        .collect::<Result<Vec<_>, _>>()?;
    deny.insert(libc::SYS_clone, clone_rules);
    // Terminal injection (CVE-2017-5226) and console control.
    deny.insert(
        libc::SYS_ioctl,
        vec![
            rule(vec![cond(1, SeccompCmpOp::Eq, libc::TIOCSTI)?])?,
            rule(vec![cond(1, SeccompCmpOp::Eq, libc::TIOCLINUX)?])?,
        ],
    );
    let deny = SeccompFilter::new(
        deny,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch()?,
    )
    .map_err(|e| FilterError(e.to_string()))?;
    // clone3 takes its flags in memory seccomp cannot read: report it missing,
    // so libc falls back to clone(), whose flags the filter above checks.
    let mut nosys: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    nosys.insert(libc::SYS_clone3, vec![]);
    let nosys = SeccompFilter::new(
        nosys,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch()?,
    )
    .map_err(|e| FilterError(e.to_string()))?;
    Ok(vec![
        deny.try_into()
            .map_err(|e: seccompiler::BackendError| FilterError(e.to_string()))?,
        nosys
            .try_into()
            .map_err(|e: seccompiler::BackendError| FilterError(e.to_string()))?,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_build() {
        let f = filters().unwrap();
        assert_eq!(f.len(), 2);
        assert!(
            f.iter().all(|p| !p.is_empty() && p.len() < 4096),
            "BPF programs are limited to 4096 instructions"
        );
    }

    /// One attempt: a system call with arguments that do no harm to the host
    /// when they are allowed (an invalid argument, a missing path, a change
    /// confined to the probe's own namespaces).
    struct Probe {
        name: &'static str,
        call: fn() -> libc::c_long,
    }

    fn raw(nr: libc::c_long, a: [libc::c_long; 5]) -> libc::c_long {
        // SAFETY: test helper; each probe passes arguments that the kernel
        // rejects or that only touch the probe process's own namespaces.
        unsafe { libc::syscall(nr, a[0], a[1], a[2], a[3], a[4]) }
    }

    fn s(c: &'static std::ffi::CStr) -> libc::c_long {
        c.as_ptr() as libc::c_long
    }

    /// A child (fork-like clone) that exits at once; returns what clone returned.
    fn clone_child(nr: libc::c_long, flags: libc::c_long) -> libc::c_long {
        let r = if nr == libc::SYS_clone3 {
            let args: [u64; 11] = [0, 0, 0, 0, libc::SIGCHLD as u64, 0, 0, 0, 0, 0, 0];
            // SAFETY: clone3 without a stack is fork-like; the child exits at once.
            unsafe { libc::syscall(nr, args.as_ptr(), std::mem::size_of_val(&args)) }
        } else {
            // SAFETY: as above, for clone.
            unsafe { libc::syscall(nr, flags | libc::SIGCHLD as libc::c_long, 0, 0, 0, 0) }
        };
        if r == 0 {
            // SAFETY: in the new child: leave at once.
            unsafe { libc::_exit(0) }
        }
        if r > 0 {
            // SAFETY: reap our own child.
            unsafe { libc::waitpid(r as libc::pid_t, std::ptr::null_mut(), 0) };
        }
        r
    }

    fn probes() -> Vec<Probe> {
        macro_rules! p {
            ($name:literal, $body:expr) => {
                Probe {
                    name: $name,
                    call: || $body,
                }
            };
        }
        vec![
            p!(
                "mount",
                raw(
                    libc::SYS_mount,
                    [
                        0,
                        s(c"/nonexistent-lambent-probe"),
                        0,
                        libc::MS_BIND as _,
                        0
                    ]
                )
            ),
            p!(
                "umount2",
                raw(
                    libc::SYS_umount2,
                    [s(c"/nonexistent-lambent-probe"), 0, 0, 0, 0]
                )
            ),
            p!(
                "pivot_root",
                raw(
                    libc::SYS_pivot_root,
                    [
                        s(c"/nonexistent-lambent-probe"),
                        s(c"/nonexistent-lambent-probe"),
                        0,
                        0,
                        0
                    ]
                )
            ),
            p!(
                "chroot",
                raw(
                    libc::SYS_chroot,
                    [s(c"/nonexistent-lambent-probe"), 0, 0, 0, 0]
                )
            ),
            p!(
                "ptrace",
                raw(
                    libc::SYS_ptrace,
                    [libc::PTRACE_ATTACH as _, 0x3fff_fff0, 0, 0, 0]
                )
            ),
            p!(
                "process_vm_readv",
                raw(libc::SYS_process_vm_readv, [0x3fff_fff0, 0, 0, 0, 0])
            ),
            p!(
                "process_vm_writev",
                raw(libc::SYS_process_vm_writev, [0x3fff_fff0, 0, 0, 0, 0])
            ),
            p!("pidfd_getfd", raw(libc::SYS_pidfd_getfd, [-1, 0, 0, 0, 0])),
            p!(
                "kexec_load",
                raw(libc::SYS_kexec_load, [0, 0, 0, 0xdead_0000, 0])
            ),
            p!(
                "kexec_file_load",
                raw(libc::SYS_kexec_file_load, [-1, -1, 0, 0, 0xdead_0000])
            ),
            p!("bpf", raw(libc::SYS_bpf, [9999, 0, 0, 0, 0])),
            p!("keyctl", raw(libc::SYS_keyctl, [9999, 0, 0, 0, 0])),
            p!("add_key", raw(libc::SYS_add_key, [0, 0, 0, 0, 0])),
            p!("request_key", raw(libc::SYS_request_key, [0, 0, 0, 0, 0])),
            p!(
                "perf_event_open",
                raw(libc::SYS_perf_event_open, [0, 0, -1, -1, 0])
            ),
            p!("init_module", raw(libc::SYS_init_module, [0, 0, 0, 0, 0])),
            p!(
                "finit_module",
                raw(libc::SYS_finit_module, [-1, s(c""), 0, 0, 0])
            ),
            p!(
                "delete_module",
                raw(libc::SYS_delete_module, [0, 0, 0, 0, 0])
            ),
            // Succeeds unfiltered: the probe is in its own UTS namespace already.
            p!(
                "unshare",
                raw(libc::SYS_unshare, [libc::CLONE_NEWUTS as _, 0, 0, 0, 0])
            ),
            p!("setns", raw(libc::SYS_setns, [-1, 0, 0, 0, 0])),
            p!(
                "open_by_handle_at",
                raw(libc::SYS_open_by_handle_at, [-1, 0, 0, 0, 0])
            ),
            p!(
                "name_to_handle_at",
                raw(libc::SYS_name_to_handle_at, [-1, 0, 0, 0, 0])
            ),
            p!(
                "userfaultfd",
                raw(libc::SYS_userfaultfd, [0x7fff_0000, 0, 0, 0, 0])
            ),
            p!("swapon", raw(libc::SYS_swapon, [0, 0, 0, 0, 0])),
            p!("swapoff", raw(libc::SYS_swapoff, [0, 0, 0, 0, 0])),
            // Wrong magic numbers: refused before anything happens.
            p!("reboot", raw(libc::SYS_reboot, [0, 0, 0, 0, 0])),
            p!(
                "sethostname",
                raw(libc::SYS_sethostname, [s(c"probe"), 5, 0, 0, 0])
            ),
            p!(
                "setdomainname",
                raw(libc::SYS_setdomainname, [s(c"probe"), 5, 0, 0, 0])
            ),
            p!(
                "acct",
                raw(
                    libc::SYS_acct,
                    [s(c"/nonexistent-lambent-probe"), 0, 0, 0, 0]
                )
            ),
            p!("quotactl", raw(libc::SYS_quotactl, [0, 0, 0, 0, 0])),
            // SYSLOG_ACTION_SIZE_BUFFER: reads the buffer's size.
            p!("syslog", raw(libc::SYS_syslog, [10, 0, 0, 0, 0])),
            // The probe has no controlling terminal (setsid).
            p!("vhangup", raw(libc::SYS_vhangup, [0, 0, 0, 0, 0])),
            p!(
                "clock_settime",
                raw(libc::SYS_clock_settime, [9999, 0, 0, 0, 0])
            ),
            p!(
                "clock_adjtime",
                raw(libc::SYS_clock_adjtime, [9999, 0, 0, 0, 0])
            ),
            // Neither a time nor a zone: changes nothing.
            p!("settimeofday", raw(libc::SYS_settimeofday, [0, 0, 0, 0, 0])),
            p!("adjtimex", raw(libc::SYS_adjtimex, [0, 0, 0, 0, 0])),
            p!(
                "fanotify_init",
                raw(libc::SYS_fanotify_init, [0x7fff_ffff, 0, 0, 0, 0])
            ),
            p!("fsopen", raw(libc::SYS_fsopen, [0, 0, 0, 0, 0])),
            p!("fsconfig", raw(libc::SYS_fsconfig, [-1, 0, 0, 0, 0])),
            p!("fsmount", raw(libc::SYS_fsmount, [-1, 0, 0, 0, 0])),
            p!("fspick", raw(libc::SYS_fspick, [-1, 0, 0, 0, 0])),
            p!("move_mount", raw(libc::SYS_move_mount, [-1, 0, -1, 0, 0])),
            p!("open_tree", raw(libc::SYS_open_tree, [-1, 0, 0, 0, 0])),
            p!(
                "mount_setattr",
                raw(libc::SYS_mount_setattr, [-1, 0, 0, 0, 0])
            ),
            p!(
                "io_uring_setup",
                raw(libc::SYS_io_uring_setup, [0, 0, 0, 0, 0])
            ),
            p!(
                "io_uring_enter",
                raw(libc::SYS_io_uring_enter, [-1, 0, 0, 0, 0])
            ),
            p!(
                "io_uring_register",
                raw(libc::SYS_io_uring_register, [-1, 0, 0, 0, 0])
            ),
            #[cfg(target_arch = "x86_64")]
            p!("iopl", raw(libc::SYS_iopl, [4, 0, 0, 0, 0])),
            // Turning nothing off.
            #[cfg(target_arch = "x86_64")]
            p!("ioperm", raw(libc::SYS_ioperm, [0, 0, 0, 0, 0])),
            #[cfg(target_arch = "x86_64")]
            p!(
                "lookup_dcookie",
                raw(libc::SYS_lookup_dcookie, [0, 0, 0, 0, 0])
            ),
            // Not in the deny list: refused by argument.
            p!(
                "clone(CLONE_NEWUSER)",
                clone_child(libc::SYS_clone, libc::CLONE_NEWUSER as _)
            ),
            p!(
                "clone(CLONE_NEWNET)",
                clone_child(libc::SYS_clone, libc::CLONE_NEWNET as _)
            ),
            p!("clone3", clone_child(libc::SYS_clone3, 0)),
            p!(
                "ioctl(TIOCSTI)",
                raw(libc::SYS_ioctl, [-1, libc::TIOCSTI as _, 0, 0, 0])
            ),
            p!(
                "ioctl(TIOCLINUX)",
                raw(libc::SYS_ioctl, [-1, libc::TIOCLINUX as _, 0, 0, 0])
            ),
        ]
    }

    /// Runs every probe in a forked child that is root with every capability,
    /// in its own mount, UTS and IPC namespaces and session, with or without
    /// the filters; returns each probe's errno (0 when it succeeded).
    fn run_probes(filtered: bool) -> Vec<i32> {
        let n = probes().len();
        let filters = filters().unwrap();
        let progs: Vec<libc::sock_fprog> = filters
            .iter()
            .map(|p| libc::sock_fprog {
                len: p.len() as libc::c_ushort,
                filter: p.as_ptr() as *mut libc::sock_filter,
            })
            .collect();
        let probes = probes();
        let bytes = n * std::mem::size_of::<i32>();
        // SAFETY: a fresh shared anonymous mapping the child writes results into.
        let shared = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(shared, libc::MAP_FAILED);
        let results = shared.cast::<i32>();
        // SAFETY: fork-like clone; the child makes only raw system calls on
        // data prepared above and leaves with _exit.
        let pid =
            unsafe { libc::syscall(libc::SYS_clone, libc::SIGCHLD as libc::c_long, 0, 0, 0, 0) };
        assert!(pid >= 0, "clone: {}", std::io::Error::last_os_error());
        if pid == 0 {
            // SAFETY: the child; see above.
            unsafe {
                libc::setsid();
                if libc::unshare(libc::CLONE_NEWNS | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC) != 0 {
                    libc::_exit(2);
                }
                libc::mount(
                    std::ptr::null(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                );
                if filtered {
                    for prog in &progs {
                        if libc::syscall(
                            libc::SYS_seccomp,
                            libc::SECCOMP_SET_MODE_FILTER,
                            0,
                            prog as *const libc::sock_fprog,
                        ) != 0
                        {
                            libc::_exit(3);
                        }
                    }
                }
                for (i, probe) in probes.iter().enumerate() {
                    *libc::__errno_location() = 0;
                    let r = (probe.call)();
                    let e = if r < 0 { *libc::__errno_location() } else { 0 };
                    if r >= 0 && probe.name.starts_with("io_uring_setup") {
                        libc::close(r as libc::c_int);
                    }
                    *results.add(i) = e;
                }
                libc::_exit(0);
            }
        }
        let mut status = 0;
        // SAFETY: reaping our own child.
        unsafe { libc::waitpid(pid as libc::pid_t, &mut status, 0) };
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "probe child ended with {status:#x}"
        );
        // SAFETY: the child has exited; the mapping holds `n` results.
        let out = unsafe { std::slice::from_raw_parts(results, n) }.to_vec();
        // SAFETY: unmapping our own mapping.
        unsafe { libc::munmap(shared, bytes) };
        out
    }

    /// The hostile-function suite only sees EPERM, which missing capabilities
    /// also give. Here the caller is root with every capability: without the
    /// filter no probe gets EPERM (most succeed or fail on their arguments);
    /// with it, every one is refused by the filter itself.
    #[test]
    fn the_filter_itself_refuses_every_denied_call() {
        let names: Vec<&str> = probes().iter().map(|p| p.name).collect();
        for (name, _) in DENIED {
            assert!(names.contains(name), "no probe for the denied call {name}");
        }
        let open = run_probes(false);
        let shut = run_probes(true);
        let mut wrong = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let expected = if *name == "clone3" {
                libc::ENOSYS
            } else {
                libc::EPERM
            };
            if open[i] == expected {
                wrong.push(format!(
                    "{name}: refused with errno {} even without the filter",
                    open[i]
                ));
            }
            if shut[i] != expected {
                wrong.push(format!(
                    "{name}: errno {} under the filter, expected {expected}",
                    shut[i]
                ));
            }
        }
        for name in [
            "unshare",
            "clone(CLONE_NEWUSER)",
            "clone3",
            "sethostname",
            "syslog",
        ] {
            let i = names.iter().position(|n| *n == name).unwrap();
            if open[i] != 0 {
                wrong.push(format!(
                    "{name}: the control call failed with errno {}",
                    open[i]
                ));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }
}
