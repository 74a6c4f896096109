//! Network namespaces: each environment gets its own, with loopback up and its
//! Runtime API listening on `127.0.0.1:9001` inside it, so that nothing outside
//! the environment can reach that Runtime API.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Where the Runtime API listens inside an environment's network namespace.
pub const RUNTIME_API_ADDR: &str = "127.0.0.1:9001";

/// How environments reach the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkMode {
    /// Own network namespace with loopback and a veth link out through the
    /// host (NAT), as on Lambda: the internet yes, the host's own services,
    /// other environments and link-local metadata addresses no.
    Egress,
    /// Own network namespace with loopback only: no way out.
    Isolated,
    /// Share the host's network (weaker isolation: the Runtime API is a host
    /// loopback port, and functions reach host services). For local development.
    Host,
}

/// The subnet environments' links are carved from (one /30 each).
pub const EGRESS_SUBNET: [u8; 2] = [10, 213];
const LINKS: u32 = 1 << 14;

/// Host-side state of egress networking: forwarding, NAT and filter rules
/// (installed once), and the allocation of per-environment links.
pub struct Egress {
    next: std::sync::atomic::AtomicU32,
}

fn iptables(args: &[&str]) -> std::io::Result<bool> {
    let status = std::process::Command::new("iptables")
        .arg("-w")
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()?;
    Ok(status.success())
}

impl Egress {
    /// Enables forwarding and installs Lambent's chains (idempotent).
    pub fn prepare() -> Result<Self, NetError> {
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").map_err(NetError::Setup)?;
        let subnet = format!("{}.{}.0.0/16", EGRESS_SUBNET[0], EGRESS_SUBNET[1]);
        let rules: &[(&str, &str, &[&[&str]])] = &[
            (
                "filter",
                "FORWARD",
                &[
                    &["-i", "lmb+", "-o", "lmb+", "-j", "DROP"],
                    &["-i", "lmb+", "-d", "169.254.0.0/16", "-j", "DROP"],
                    &["-i", "lmb+", "-j", "ACCEPT"],
                    &[
                        "-o",
                        "lmb+",
                        "-m",
                        "conntrack",
                        "--ctstate",
                        "ESTABLISHED,RELATED",
                        "-j",
                        "ACCEPT",
                    ],
                ],
            ),
            ("filter", "INPUT", &[&["-i", "lmb+", "-j", "DROP"]]),
            (
                "nat",
                "POSTROUTING",
                &[&["-s", &subnet, "!", "-o", "lmb+", "-j", "MASQUERADE"]],
            ),
        ];
        for (table, hook, chain_rules) in rules {
            let chain = format!("LAMBENT-{hook}");
            let run = |a: &[&str]| -> Result<bool, NetError> {
                let mut args = vec!["-t", table];
                args.extend_from_slice(a);
                iptables(&args).map_err(|e| {
                    NetError::Setup(std::io::Error::other(format!(
                        "cannot run iptables ({e}); install it, or run with --network isolated or host"
                    )))
                })
            };
            run(&["-N", &chain])?;
            if !run(&["-F", &chain])? {
                return Err(NetError::Setup(std::io::Error::other(format!(
                    "iptables could not prepare chain {chain}"
                ))));
            }
            if !run(&["-C", hook, "-j", &chain])? && !run(&["-I", hook, "-j", &chain])? {
                return Err(NetError::Setup(std::io::Error::other(format!(
                    "iptables could not hook {chain} into {hook}"
                ))));
            }
            for r in *chain_rules {
                let mut a = vec!["-A", chain.as_str()];
                a.extend_from_slice(r);
                if !run(&a)? {
                    return Err(NetError::Setup(std::io::Error::other(format!(
                        "iptables refused a rule of {chain}"
                    ))));
                }
            }
        }
        Ok(Self {
            next: std::sync::atomic::AtomicU32::new(0),
        })
    }

    /// The next link: (host interface name, host address, environment address).
    fn allocate(&self) -> (String, [u8; 4], [u8; 4]) {
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % LINKS;
        let base = i * 4;
        let [a, b] = EGRESS_SUBNET;
        let (c, d) = ((base >> 8) as u8, (base & 0xff) as u8);
        (format!("lmb{i:x}"), [a, b, c, d + 1], [a, b, c, d + 2])
    }
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

/// Gives the environment of `pid` its link out: a veth pair with the host end
/// here and `eth0` inside, addressed as a /30. Returns the inside settings
/// (address, gateway) to apply from within.
fn link_out(egress: &Egress, pid: libc::pid_t) -> std::io::Result<([u8; 4], [u8; 4])> {
    let mut nl = crate::netlink::Netlink::open()?;
    let mut last = None;
    // A name still held by a just-removed environment: take the next.
    for _ in 0..8 {
        let (name, host, inside) = egress.allocate();
        match nl.create_veth(&name, "eth0", pid) {
            Ok(()) => {
                let index = crate::netlink::index_of(&name)?;
                nl.add_address(index, host, 30)?;
                nl.set_up(index)?;
                return Ok((inside, host));
            }
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free link")))
}

/// Inside the environment: `eth0` addressed and up, default route via the host.
fn configure_inside(inside: [u8; 4], gateway: [u8; 4]) -> std::io::Result<()> {
    let mut nl = crate::netlink::Netlink::open()?;
    let index = crate::netlink::index_of("eth0")?;
    nl.add_address(index, inside, 30)?;
    nl.set_up(index)?;
    nl.add_default_route(gateway, index)
}

/// Enters the network namespace of the process behind `pidfd`, brings up its
/// loopback (and, with `egress`, its link out), opens the Runtime API listener
/// there, and comes back.
pub fn runtime_api_inside(
    pid: libc::pid_t,
    pidfd: &OwnedFd,
    home: &Home,
    egress: Option<&Egress>,
) -> Result<std::net::TcpListener, NetError> {
    let link = match egress {
        Some(e) => Some(link_out(e, pid).map_err(NetError::Setup)?),
        None => None,
    };
    // SAFETY: setns on a pidfd we own, for the network namespace only; this
    // thread returns to `home` below before doing anything else.
    cvt(unsafe { libc::setns(pidfd.as_raw_fd(), libc::CLONE_NEWNET) }).map_err(NetError::Enter)?;
    let inside = loopback_up()
        .and_then(|()| match link {
            Some((addr, gw)) => configure_inside(addr, gw),
            None => Ok(()),
        })
        .and_then(|()| {
            let l = std::net::TcpListener::bind(RUNTIME_API_ADDR)?;
            l.set_nonblocking(true)?;
            Ok(l)
        });
    // SAFETY: back to the namespace this thread started in.
    cvt(unsafe { libc::setns(home.fd.as_raw_fd(), libc::CLONE_NEWNET) })
        .map_err(NetError::Return)?;
    inside.map_err(NetError::Setup)
}
