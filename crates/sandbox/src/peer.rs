//! Who is on the other end of a Runtime API connection. Each environment runs
//! under its own uid, so its Runtime API serves only sockets that uid owns:
//! on accept, the connecting socket is looked up by its address and port
//! through `sock_diag` (inet_diag) in the network namespace the listener
//! lives in, and its owner compared. This holds in every network mode, and is
//! what keeps one environment off another's Runtime API in host mode, where
//! they all share the host's loopback.

use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::netlink::{Msg, NLMSG_ERROR, Socket};

const NETLINK_SOCK_DIAG: libc::c_int = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// Offset of `idiag_uid` in `struct inet_diag_msg`.
const UID_OFFSET: usize = 4 + 48 + 12;
const TCP_LISTEN: u8 = 10;

/// Looks up socket owners in the network namespace it was opened in, and
/// admits the sockets of one uid.
pub struct PeerCheck {
    /// The socket and the last request's sequence number.
    sock: Mutex<(Socket, u32)>,
    uid: u32,
    /// A refusal is logged once per environment at warning level (a function
    /// knocking in a loop must not flood the platform's log).
    warned: AtomicBool,
}

impl std::fmt::Debug for PeerCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerCheck").field("uid", &self.uid).finish()
    }
}

/// `struct inet_diag_req_v2` for the TCP socket at `src` connected to `dst`.
fn request(src: SocketAddr, dst: SocketAddr) -> Option<Vec<u8>> {
    let family = match (src.ip(), dst.ip()) {
        (IpAddr::V4(_), IpAddr::V4(_)) => libc::AF_INET,
        (IpAddr::V6(_), IpAddr::V6(_)) => libc::AF_INET6,
        _ => return None,
    };
    let addr = |ip: IpAddr| -> [u8; 16] {
        match ip {
            IpAddr::V4(v4) => {
                let mut b = [0u8; 16];
                b[..4].copy_from_slice(&v4.octets());
                b
            }
            IpAddr::V6(v6) => v6.octets(),
        }
    };
    let mut r = Vec::with_capacity(56);
    r.extend_from_slice(&[family as u8, libc::IPPROTO_TCP as u8, 0, 0]);
    r.extend_from_slice(&u32::MAX.to_ne_bytes()); // every state
    r.extend_from_slice(&src.port().to_be_bytes());
    r.extend_from_slice(&dst.port().to_be_bytes());
    r.extend_from_slice(&addr(src.ip()));
    r.extend_from_slice(&addr(dst.ip()));
    r.extend_from_slice(&0u32.to_ne_bytes()); // any interface
    r.extend_from_slice(&[0xff; 8]); // INET_DIAG_NOCOOKIE
    Some(r)
}

impl PeerCheck {
    /// A check for `uid`'s sockets, in the calling thread's network namespace.
    pub fn open(uid: u32) -> std::io::Result<Self> {
        Ok(Self {
            sock: Mutex::new((Socket::open(NETLINK_SOCK_DIAG)?, 0)),
            uid,
            warned: AtomicBool::new(false),
        })
    }

    /// The uid owning the TCP socket at `peer` connected to `local`: a
    /// connected socket with exactly those ports (the kernel's lookup falls
    /// back to a listener, which is never an answer here).
    pub fn owner(&self, local: SocketAddr, peer: SocketAddr) -> std::io::Result<u32> {
        let req =
            request(peer, local).ok_or_else(|| std::io::Error::other("mixed address families"))?;
        let mut guard = self.sock.lock().unwrap_or_else(|p| p.into_inner());
        guard.1 = guard.1.wrapping_add(1);
        let seq = guard.1;
        let sock = &guard.0;
        let mut m = Msg::with_flags(SOCK_DIAG_BY_FAMILY, crate::netlink::NLM_F_REQUEST);
        m.bytes(&req);
        sock.send(m.finish(seq))?;
        let mut buf = [0u8; 1024];
        loop {
            let found = sock.receive(&mut buf, |reply| {
                if reply.seq != seq {
                    return None;
                }
                let p = reply.payload;
                if reply.ty == NLMSG_ERROR && p.len() >= 4 {
                    let code = i32::from_ne_bytes([p[0], p[1], p[2], p[3]]);
                    return Some(Err(std::io::Error::from_raw_os_error((-code).max(1))));
                }
                if reply.ty != SOCK_DIAG_BY_FAMILY || p.len() < UID_OFFSET + 4 {
                    return None;
                }
                let sport = u16::from_be_bytes([p[4], p[5]]);
                let dport = u16::from_be_bytes([p[6], p[7]]);
                if p[1] == TCP_LISTEN || sport != peer.port() || dport != local.port() {
                    return Some(Err(std::io::Error::other("no such connection")));
                }
                let u = &p[UID_OFFSET..UID_OFFSET + 4];
                Some(Ok(u32::from_ne_bytes([u[0], u[1], u[2], u[3]])))
            })?;
            if let Some(r) = found {
                return r;
            }
        }
    }

    /// Whether the connection from `peer` to `local` comes from this
    /// environment (a socket its uid owns). Anything unknown is refused.
    pub fn admits(&self, local: SocketAddr, peer: SocketAddr) -> bool {
        match self.owner(local, peer) {
            Ok(uid) if uid == self.uid => true,
            Ok(uid) => {
                if self.warned.swap(true, Ordering::Relaxed) {
                    tracing::debug!(%peer, uid, expected = self.uid, "refused a Runtime API connection from another identity");
                } else {
                    tracing::warn!(%peer, uid, expected = self.uid, "refused a Runtime API connection from another identity");
                }
                false
            }
            Err(e) => {
                tracing::debug!(%peer, error = %e, "refused a Runtime API connection whose owner is unknown");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_names_the_connecting_socket() {
        let src: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let dst: SocketAddr = "127.0.0.1:9001".parse().unwrap();
        let r = request(src, dst).unwrap();
        assert_eq!(r.len(), 56);
        assert_eq!(r[0], libc::AF_INET as u8);
        assert_eq!(&r[8..10], &40000u16.to_be_bytes());
        assert_eq!(&r[10..12], &9001u16.to_be_bytes());
        assert_eq!(&r[12..16], &[127, 0, 0, 1]);
        assert_eq!(&r[28..32], &[127, 0, 0, 1]);
        assert!(request(src, "[::1]:1".parse().unwrap()).is_none());
    }

    /// Needs no namespace: the test's own connection on the host's loopback
    /// belongs to the test's uid, and a socket made by another uid does not.
    #[test]
    fn finds_the_owner_of_a_loopback_connection() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (_s, peer) = l.accept().unwrap();
        assert_eq!(peer, c.local_addr().unwrap());
        // SAFETY: getuid has no preconditions.
        let me = unsafe { libc::getuid() };
        let check = PeerCheck::open(me).unwrap();
        assert_eq!(check.owner(l.local_addr().unwrap(), peer).unwrap(), me);
        assert!(check.admits(l.local_addr().unwrap(), peer));
        let other = PeerCheck::open(me + 1).unwrap();
        assert!(!other.admits(l.local_addr().unwrap(), peer));
        // A listener on the peer's address and port is not a connection
        // (the kernel's lookup would fall back to it).
        let l2 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert!(
            check
                .owner(l.local_addr().unwrap(), l2.local_addr().unwrap())
                .is_err()
        );
        // A socket that does not exist has no owner.
        drop(c);
        let gone: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert!(check.owner(l.local_addr().unwrap(), gone).is_err());
    }

    /// A connection made by a process of another uid is refused.
    #[test]
    fn refuses_a_connection_from_another_uid() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return; // changing uid needs root
        }
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let mut child = std::process::Command::new("setpriv")
            .args([
                "--reuid=2999999",
                "--regid=2999999",
                "--clear-groups",
                "/usr/bin/python3",
                "-c",
            ])
            .arg(format!(
                "import socket, time; s = socket.create_connection(('127.0.0.1', {port})); time.sleep(30)"
            ))
            .spawn()
            .unwrap();
        l.set_nonblocking(true).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let (_s, peer) = loop {
            match l.accept() {
                Ok(a) => break a,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(
                        child.try_wait().unwrap().is_none(),
                        "the other uid's client ended before connecting"
                    );
                    assert!(std::time::Instant::now() < deadline, "no connection");
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => panic!("{e}"),
            }
        };
        let check = PeerCheck::open(0).unwrap();
        assert_eq!(
            check.owner(l.local_addr().unwrap(), peer).unwrap(),
            2_999_999
        );
        assert!(!check.admits(l.local_addr().unwrap(), peer));
        assert!(
            PeerCheck::open(2_999_999)
                .unwrap()
                .admits(l.local_addr().unwrap(), peer)
        );
        let _ = child.kill();
        let _ = child.wait();
    }
}
