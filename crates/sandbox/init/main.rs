//! The environment's init (pid 1 of its pid namespace), executed fresh by the
//! sandbox once the environment is set up, so that no copy of the platform's
//! memory is left inside. It starts the runtime, reaps every process of the
//! environment, and reports how the runtime ended.
//!
//! Built by the sandbox crate's build script as a small static program and
//! embedded in the platform (executed from a sealed memory file). It gets
//! nothing on its command line or in its environment; its descriptors are:
//!
//! * 0, 1, 2: `/dev/null`
//! * 3: the launch spec: `[u32 argc][u32 envc]` (native endian), then the
//!   program, `argc` arguments and `envc` environment entries, each ending in NUL
//! * 4: the runtime's stdout and stderr
//! * 5: the error pipe: `(u32 phase, i32 errno)` when the runtime cannot start;
//!   it closes (by close-on-exec) once the runtime is running
//! * 6: the status pipe: the runtime's wait status (4 bytes) when it ends
#![no_std]
#![no_main]

use core::ffi::{c_char, c_int, c_long, c_void};

const SPEC: c_int = 3;
const OUTPUT: c_int = 4;
const ERRORS: c_int = 5;
const STATUS: c_int = 6;

/// Failure codes shared with `spawn.rs`.
const PHASE_EXEC: u32 = u32::MAX - 5;
const PHASE_INIT: u32 = u32::MAX - 6;

#[link(name = "c")]
unsafe extern "C" {
    fn write(fd: c_int, buf: *const c_void, n: usize) -> isize;
    fn fork() -> c_int;
    fn execve(path: *const c_char, argv: *const *const c_char, envp: *const *const c_char) -> c_int;
    fn dup2(from: c_int, to: c_int) -> c_int;
    fn close(fd: c_int) -> c_int;
    fn fcntl(fd: c_int, cmd: c_int, arg: c_int) -> c_int;
    fn waitpid(pid: c_int, status: *mut c_int, options: c_int) -> c_int;
    fn prctl(option: c_int, arg2: c_long, arg3: c_long, arg4: c_long, arg5: c_long) -> c_int;
    fn lseek(fd: c_int, offset: i64, whence: c_int) -> i64;
    fn mmap(addr: *mut c_void, len: usize, prot: c_int, flags: c_int, fd: c_int, off: i64) -> *mut c_void;
    fn _exit(code: c_int) -> !;
    fn __errno_location() -> *mut c_int;
}

const PR_SET_DUMPABLE: c_int = 4;
const PR_SET_NAME: c_int = 15;
const F_SETFD: c_int = 2;
const FD_CLOEXEC: c_int = 1;
const SEEK_END: c_int = 2;
const PROT_READ: c_int = 1;
const PROT_WRITE: c_int = 2;
const MAP_PRIVATE: c_int = 2;
const MAP_ANONYMOUS: c_int = 0x20;
const EINTR: c_int = 4;

// Static glibc's stdio refers to the unwinder.
#[link(name = "gcc_eh")]
#[link(name = "gcc")]
unsafe extern "C" {}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    // SAFETY: _exit has no preconditions.
    unsafe { _exit(125) }
}

fn errno() -> c_int {
    // SAFETY: glibc's errno location is always valid for this thread.
    unsafe { *__errno_location() }
}

fn fail(phase: u32) -> ! {
    let e = errno();
    let mut buf = [0u8; 8];
    let p = phase.to_ne_bytes();
    let n = e.to_ne_bytes();
    let mut i = 0;
    while i < 4 {
        buf[i] = p[i];
        buf[4 + i] = n[i];
        i += 1;
    }
    // SAFETY: a write of our own buffer to our error pipe, then _exit.
    unsafe {
        write(ERRORS, buf.as_ptr().cast(), buf.len());
        _exit(127)
    }
}

/// The launch spec, mapped: pointers to each string, NULL-terminated lists.
struct Spec {
    program: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
}

fn read_spec() -> Option<Spec> {
    // SAFETY: plain system calls on our own descriptor and fresh mappings;
    // every access below stays within the mapped length.
    unsafe {
        let len = lseek(SPEC, 0, SEEK_END);
        if len < 8 {
            return None;
        }
        let len = len as usize;
        let base = mmap(core::ptr::null_mut(), len, PROT_READ, MAP_PRIVATE, SPEC, 0);
        if base as isize == -1 {
            return None;
        }
        let bytes = core::slice::from_raw_parts(base as *const u8, len);
        let argc = u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        let envc = u32::from_ne_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
        let count = 1 + argc + envc;
        // argv (argc + NULL) then envp (envc + NULL).
        let ptrs_len = (argc + 1 + envc + 1) * core::mem::size_of::<*const c_char>();
        let ptrs = mmap(
            core::ptr::null_mut(),
            ptrs_len,
            PROT_READ | PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS,
            -1,
            0,
        );
        if ptrs as isize == -1 {
            return None;
        }
        let ptrs = ptrs as *mut *const c_char;
        let mut program: *const c_char = core::ptr::null();
        let mut at = 8;
        let mut i = 0;
        while i < count {
            if at >= len {
                return None;
            }
            let s = bytes.as_ptr().add(at) as *const c_char;
            while at < len && bytes[at] != 0 {
                at += 1;
            }
            if at >= len {
                return None;
            }
            at += 1;
            if i == 0 {
                program = s;
            } else if i <= argc {
                *ptrs.add(i - 1) = s;
            } else {
                *ptrs.add(argc + 1 + (i - 1 - argc)) = s;
            }
            i += 1;
        }
        *ptrs.add(argc) = core::ptr::null();
        *ptrs.add(argc + 1 + envc) = core::ptr::null();
        Some(Spec {
            program,
            argv: ptrs,
            envp: ptrs.add(argc + 1),
        })
    }
}

#[unsafe(no_mangle)]
extern "C" fn main(_argc: c_int, _argv: *const *const c_char) -> c_int {
    // SAFETY: prctl and descriptor calls on our own process; the runtime's
    // process only rewires descriptors and execs.
    unsafe {
        // Nobody of the function's uid may read or trace this process (its
        // file is not readable by them either, which makes exec do the same).
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
        // Executed through a descriptor, the kernel named it after the fd.
        prctl(PR_SET_NAME, c"init".as_ptr() as c_long, 0, 0, 0);
        let Some(spec) = read_spec() else {
            fail(PHASE_INIT)
        };
        let runtime = fork();
        if runtime < 0 {
            fail(PHASE_INIT);
        }
        if runtime == 0 {
            if dup2(OUTPUT, 1) < 0 || dup2(OUTPUT, 2) < 0 {
                fail(PHASE_EXEC);
            }
            close(SPEC);
            close(OUTPUT);
            close(STATUS);
            // Closes when the runtime is running; carries the errno if not.
            fcntl(ERRORS, F_SETFD, FD_CLOEXEC);
            execve(spec.program, spec.argv, spec.envp);
            fail(PHASE_EXEC);
        }
        close(SPEC);
        close(OUTPUT);
        close(ERRORS);
        loop {
            let mut status: c_int = 0;
            let pid = waitpid(-1, &mut status, 0);
            if pid == runtime {
                let bytes = status.to_ne_bytes();
                write(STATUS, bytes.as_ptr().cast(), bytes.len());
                _exit(0);
            }
            if pid < 0 && errno() != EINTR {
                _exit(0);
            }
        }
    }
}
