//! Network namespaces: each environment gets its own, with loopback up and its
//! Runtime API listening on `127.0.0.1:9001` inside it, so that nothing outside
//! the environment can reach that Runtime API.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Where the Runtime API listens inside an environment's network namespace.
pub const RUNTIME_API_ADDR: &str = "127.0.0.1:9001";

/// How environments reach the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkMode {
    /// Own network namespace with loopback and a veth link out through the
    /// host (NAT), as on Lambda: the public internet (IPv4) yes; the host's
    /// own services, other environments, private and link-local (metadata)
    /// addresses and IPv6 no, except the private networks of the function's
    /// VPC subnets.
    Egress,
    /// Own network namespace with loopback only: no way out.
    Isolated,
    /// Share the host's network (weaker isolation: functions reach host
    /// services and each other; the Runtime API is a host loopback port that
    /// serves only the environment's own uid). For local development.
    Host,
}

/// The private networks one environment may reach, beyond the public
/// internet: its VPC subnets' networks.
pub type Networks = Vec<(Ipv4Addr, u8)>;

/// Host-side state of egress networking: forwarding on, Lambent's nf_tables
/// table installed (once per start, atomically replacing an older one), and
/// the DNS resolvers environments may reach on port 53.
pub struct Egress {
    resolvers: Vec<Ipv4Addr>,
}

/// The IPv4 name servers of a `resolv.conf`.
pub fn resolvers(resolv_conf: &str) -> Vec<Ipv4Addr> {
    resolv_conf
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some("nameserver"))
                .then(|| words.next())
                .flatten()
                .and_then(|a| a.parse().ok())
        })
        .collect()
}

impl Egress {
    /// Enables IPv4 forwarding and installs the host's table (idempotent: the
    /// table is replaced in one transaction, so other instances' environments
    /// stay covered throughout). Environments reach DNS at `resolvers`.
    pub fn prepare(resolvers: Vec<Ipv4Addr>) -> Result<Self, NetError> {
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").map_err(NetError::Setup)?;
        crate::nft::host_table(crate::slots::SUBNET)
            .install(true)
            .map_err(NetError::Firewall)?;
        if crate::nft::allow_through_iptables_forward().map_err(NetError::Firewall)? {
            tracing::info!("environments' links accepted at the head of iptables' FORWARD chain");
        }
        Ok(Self { resolvers })
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
    #[error("cannot create a network namespace: {0}")]
    Create(std::io::Error),
    #[error("cannot set up the environment's network: {0}")]
    Setup(std::io::Error),
    #[error("cannot program the firewall: {0}")]
    Firewall(#[from] crate::nft::FirewallError),
    /// The launcher thread could not go back to its own namespace; it must
    /// not be used again.
    #[error("cannot return to the platform's network namespace: {0}")]
    Return(std::io::Error),
}

/// Gives the environment of `pid` its link out: a veth pair with the host end
/// (`link.name`) here and `eth0` inside, addressed as a /30, IPv6 off on both
/// ends (no link-local addresses: nothing to reach the host by).
fn link_out(link: &crate::slots::Link, ns: crate::netlink::PeerNamespace) -> std::io::Result<()> {
    let mut nl = crate::netlink::Netlink::open()?;
    nl.create_veth(&link.name, "eth0", ns)?;
    ipv6_off(&link.name)?;
    let index = crate::netlink::index_of(&link.name)?;
    nl.add_address(index, link.host.octets(), 30)?;
    nl.set_up(index)
}

/// Turns IPv6 off on an interface of the calling thread's network namespace.
fn ipv6_off(name: &str) -> std::io::Result<()> {
    std::fs::write(format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6"), "1").or_else(|e| {
        // A kernel without IPv6 has nothing to turn off.
        if e.kind() == std::io::ErrorKind::NotFound
            && !std::path::Path::new("/proc/sys/net/ipv6").exists()
        {
            Ok(())
        } else {
            Err(e)
        }
    })
}

/// Inside the environment: `eth0` addressed and up, default route via the
/// host, and the environment's own firewall (see `nft::environment_table`).
fn configure_inside(
    link: &crate::slots::Link,
    allowed: &[(Ipv4Addr, u8)],
    resolvers: &[Ipv4Addr],
) -> Result<(), NetError> {
    let setup = || -> std::io::Result<()> {
        ipv6_off("eth0")?;
        let mut nl = crate::netlink::Netlink::open()?;
        let index = crate::netlink::index_of("eth0")?;
        nl.add_address(index, link.inside.octets(), 30)?;
        nl.set_up(index)?;
        nl.add_default_route(link.host.octets(), index)
    };
    setup().map_err(NetError::Setup)?;
    crate::nft::environment_table(allowed, resolvers)
        .install(false)
        .map_err(NetError::Firewall)
}

/// What an environment's network namespace gets.
pub struct Inside<'a> {
    pub egress: Option<&'a Egress>,
    /// The slot's link, with `egress`.
    pub link: &'a crate::slots::Link,
    /// Private networks the environment may reach (its VPC subnets').
    pub allowed: &'a [(Ipv4Addr, u8)],
    /// The environment's uid: the only one its Runtime API serves.
    pub uid: u32,
}

/// A Runtime API listener at `addr` in the calling thread's network
/// namespace, and the check that admits only `uid`'s connections to it.
pub fn listen(
    addr: &str,
    uid: u32,
) -> std::io::Result<(std::net::TcpListener, crate::peer::PeerCheck)> {
    let l = std::net::TcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    Ok((l, crate::peer::PeerCheck::open(uid)?))
}

/// An environment's network namespace.
#[derive(Clone, Copy)]
pub enum Namespace<'a> {
    /// That of a process just cloned into a new one.
    Process {
        pid: libc::pid_t,
        pidfd: &'a OwnedFd,
    },
    /// One made ahead and held by this descriptor ([`new_namespace`]).
    Held(&'a OwnedFd),
}

/// A new, empty network namespace, held by the returned descriptor. The
/// calling thread goes into it for a moment and returns to `home`.
pub fn new_namespace(home: &Home) -> Result<OwnedFd, NetError> {
    // SAFETY: unshare of this thread's network namespace only; the thread
    // returns to `home` below before doing anything else.
    cvt(unsafe { libc::unshare(libc::CLONE_NEWNET) }).map_err(NetError::Create)?;
    let held = std::fs::File::open("/proc/thread-self/ns/net").map_err(NetError::Create);
    // SAFETY: back to the namespace this thread started in.
    cvt(unsafe { libc::setns(home.fd.as_raw_fd(), libc::CLONE_NEWNET) })
        .map_err(NetError::Return)?;
    Ok(OwnedFd::from(held?))
}

/// Enters the environment's network namespace `ns`, brings up its loopback
/// (and, with egress, its link out and firewall), opens the Runtime API
/// listener and its peer check there, and comes back.
pub fn runtime_api_inside(
    ns: Namespace<'_>,
    home: &Home,
    inside: &Inside<'_>,
) -> Result<(std::net::TcpListener, crate::peer::PeerCheck), NetError> {
    let (peer, fd) = match ns {
        Namespace::Process { pid, pidfd } => (crate::netlink::PeerNamespace::Process(pid), pidfd),
        Namespace::Held(fd) => (crate::netlink::PeerNamespace::Held(fd.as_raw_fd()), fd),
    };
    let t0 = std::time::Instant::now();
    if inside.egress.is_some() {
        link_out(inside.link, peer).map_err(NetError::Setup)?;
    }
    let t1 = std::time::Instant::now();
    // SAFETY: setns on a pidfd or namespace descriptor we own, for the
    // network namespace only; this thread returns to `home` below before
    // doing anything else.
    cvt(unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) }).map_err(NetError::Enter)?;
    let mut t2 = t1;
    let result = loopback_up()
        .map_err(NetError::Setup)
        .and_then(|()| match inside.egress {
            Some(e) => configure_inside(inside.link, inside.allowed, &e.resolvers),
            None => Ok(()),
        })
        .and_then(|()| {
            t2 = std::time::Instant::now();
            listen(RUNTIME_API_ADDR, inside.uid).map_err(NetError::Setup)
        });
    // SAFETY: back to the namespace this thread started in.
    cvt(unsafe { libc::setns(home.fd.as_raw_fd(), libc::CLONE_NEWNET) })
        .map_err(NetError::Return)?;
    tracing::debug!(
        link_out_us = (t1 - t0).as_micros() as u64,
        inside_us = (t2 - t1).as_micros() as u64,
        listen_us = t2.elapsed().as_micros() as u64,
        "network set up"
    );
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolvers_are_the_ipv4_name_servers() {
        let conf = "# generated\nsearch lan\nnameserver 10.255.255.53\nnameserver fd00::53\nnameserver 1.1.1.1\noptions ndots:1\n";
        assert_eq!(
            resolvers(conf),
            [Ipv4Addr::new(10, 255, 255, 53), Ipv4Addr::new(1, 1, 1, 1)]
        );
    }
}
