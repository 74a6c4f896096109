//! Network namespaces: each environment gets its own, with loopback up and its
//! Runtime API listening on `127.0.0.1:9001` inside it, so that nothing outside
//! the environment can reach that Runtime API.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Where the Runtime API listens inside an environment's network namespace.
pub const RUNTIME_API_ADDR: &str = "127.0.0.1:9001";

/// How environments reach the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkMode {
    /// Own network namespace with loopback only: no way out.
    Isolated,
    /// Share the host's network (weaker isolation: the Runtime API is a host
    /// loopback port, and functions reach host services). For local development.
    Host,
}

/// The launcher thread's own network namespace, to return to.
pub struct Home {
    fd: OwnedFd,
}

impl Home {
    pub fn current() -> std::io::Result<Self> {
        let fd = std::fs::File::open("/proc/thread-self/ns/net")?;
        Ok(Self {
            fd: OwnedFd::from(fd),
        })
    }
}

fn cvt(r: libc::c_int) -> std::io::Result<()> {
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Brings up `lo` in the current thread's network namespace.
fn loopback_up() -> std::io::Result<()> {
    // SAFETY: a plain datagram socket, closed by OwnedFd.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `sock` is a new descriptor owned by nothing else.
    let sock = unsafe { OwnedFd::from_raw_fd(sock) };
    // SAFETY: a zeroed ifreq is valid; the name is copied in below.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write `ifr`, which we own.
    unsafe {
        cvt(libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr))?;
        ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        cvt(libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr))?;
    }
    Ok(())
}

/// Why the Runtime API could not be put inside an environment.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("cannot enter the environment's network namespace: {0}")]
    Enter(std::io::Error),
    #[error("cannot set up the environment's network: {0}")]
    Setup(std::io::Error),
    /// The launcher thread could not go back to its own namespace; it must
    /// not be used again.
    #[error("cannot return to the platform's network namespace: {0}")]
    Return(std::io::Error),
}

/// Enters the network namespace of the process behind `pidfd`, brings up its
/// loopback, opens the Runtime API listener there, and comes back.
pub fn runtime_api_inside(pidfd: &OwnedFd, home: &Home) -> Result<std::net::TcpListener, NetError> {
    // SAFETY: setns on a pidfd we own, for the network namespace only; this
    // thread returns to `home` below before doing anything else.
    cvt(unsafe { libc::setns(pidfd.as_raw_fd(), libc::CLONE_NEWNET) }).map_err(NetError::Enter)?;
    let inside = loopback_up().and_then(|()| {
        let l = std::net::TcpListener::bind(RUNTIME_API_ADDR)?;
        l.set_nonblocking(true)?;
        Ok(l)
    });
    // SAFETY: back to the namespace this thread started in.
    cvt(unsafe { libc::setns(home.fd.as_raw_fd(), libc::CLONE_NEWNET) })
        .map_err(NetError::Return)?;
    inside.map_err(NetError::Setup)
}
