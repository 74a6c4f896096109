//! Just enough netlink: rtnetlink to give an environment a way out (a veth
//! pair with one end inside the environment's network namespace, addresses on
//! both ends, links up, a default route), and the message builder and socket
//! that `nft` (nf_tables) and `peer` (sock_diag) use too.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

pub(crate) const NLMSG_HDRLEN: usize = 16;
pub(crate) const NLMSG_ERROR: u16 = 2;
pub(crate) const NLM_F_REQUEST: u16 = 1;
pub(crate) const NLM_F_ACK: u16 = 4;
pub(crate) const NLM_F_APPEND: u16 = 0x800;
pub(crate) const NLM_F_EXCL: u16 = 0x200;
pub(crate) const NLM_F_CREATE: u16 = 0x400;
/// Set on attributes that hold attributes.
pub(crate) const NLA_F_NESTED: u16 = 0x8000;
const RTM_NEWLINK: u16 = 16;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;
const IFLA_IFNAME: u16 = 3;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_PID: u16 = 19;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_ADDRESS: u16 = 1;
const RTA_GATEWAY: u16 = 5;
const RTA_OIF: u16 = 4;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_BOOT: u8 = 3;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RTN_UNICAST: u8 = 1;

/// The network namespace the far end of a veth pair goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerNamespace {
    /// The namespace of this process.
    Process(libc::pid_t),
    /// The namespace this descriptor holds (`/proc/.../ns/net`).
    Held(std::os::fd::RawFd),
}

/// A netlink route socket in the network namespace of the calling thread.
pub struct Netlink {
    sock: Socket,
    seq: u32,
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Builds one netlink message.
pub(crate) struct Msg {
    buf: Vec<u8>,
}

impl Msg {
    /// A request that asks for an acknowledgement.
    pub(crate) fn new(ty: u16, flags: u16) -> Self {
        Self::with_flags(ty, flags | NLM_F_REQUEST | NLM_F_ACK)
    }

    /// A message with exactly these header flags.
    pub(crate) fn with_flags(ty: u16, flags: u16) -> Self {
        let mut buf = vec![0u8; NLMSG_HDRLEN];
        buf[4..6].copy_from_slice(&ty.to_ne_bytes());
        buf[6..8].copy_from_slice(&flags.to_ne_bytes());
        Self { buf }
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        let pad = align4(self.buf.len()) - self.buf.len();
        self.buf.extend(std::iter::repeat_n(0, pad));
        self
    }

    /// `struct ifinfomsg` (family, type, index, flags, change).
    fn ifinfo(&mut self, index: i32, flags: u32, change: u32) -> &mut Self {
        let mut m = [0u8; 16];
        m[4..8].copy_from_slice(&index.to_ne_bytes());
        m[8..12].copy_from_slice(&flags.to_ne_bytes());
        m[12..16].copy_from_slice(&change.to_ne_bytes());
        self.bytes(&m)
    }

    pub(crate) fn attr(&mut self, ty: u16, payload: &[u8]) -> &mut Self {
        let len = (4 + payload.len()) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.bytes(payload)
    }

    pub(crate) fn nest(&mut self, ty: u16, f: impl FnOnce(&mut Self)) -> &mut Self {
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0, 0]);
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        f(self);
        let len = (self.buf.len() - start) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        self
    }

    pub(crate) fn finish(&mut self, seq: u32) -> &[u8] {
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        &self.buf
    }
}

fn name_bytes(name: &str) -> Vec<u8> {
    let mut b = name.as_bytes().to_vec();
    b.push(0);
    b
}

/// A netlink socket of one protocol, in the network namespace of the thread
/// that opened it (it stays there).
pub(crate) struct Socket {
    fd: OwnedFd,
}

/// One message of a reply: its type, sequence number and payload.
pub(crate) struct Reply<'a> {
    pub ty: u16,
    pub seq: u32,
    pub payload: &'a [u8],
}

impl Socket {
    pub(crate) fn open(protocol: libc::c_int) -> std::io::Result<Self> {
        // SAFETY: a new netlink socket, owned below.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                protocol,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor nothing else owns.
        Ok(Self {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Sends `data` (one message or a batch) to the kernel.
    pub(crate) fn send(&self, data: &[u8]) -> std::io::Result<()> {
        // SAFETY: `sockaddr_nl` zeroed is the kernel as destination.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        loop {
            // SAFETY: sending our buffer to the kernel.
            let n = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    data.as_ptr().cast(),
                    data.len(),
                    0,
                    (&addr as *const libc::sockaddr_nl).cast(),
                    std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
                )
            };
            if n >= 0 {
                return Ok(());
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Receives one datagram and hands each message in it to `each` until it
    /// returns `Some`.
    pub(crate) fn receive<T>(
        &self,
        buf: &mut [u8],
        mut each: impl FnMut(Reply<'_>) -> Option<T>,
    ) -> std::io::Result<Option<T>> {
        let n = loop {
            // SAFETY: receiving into our own buffer.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n >= 0 {
                break n as usize;
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        };
        let mut off = 0;
        while off + NLMSG_HDRLEN <= n {
            let word =
                |at: usize| u32::from_ne_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
            let len = word(off) as usize;
            let ty = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
            let seq = word(off + 8);
            if len < NLMSG_HDRLEN || off + len > n {
                return Err(std::io::Error::other("malformed netlink reply"));
            }
            if let Some(v) = each(Reply {
                ty,
                seq,
                payload: &buf[off + NLMSG_HDRLEN..off + len],
            }) {
                return Ok(Some(v));
            }
            off += align4(len);
        }
        Ok(None)
    }

    /// Waits for the acknowledgements of messages `first..=last`: `Ok` once
    /// `last` is acknowledged, the first error otherwise.
    pub(crate) fn acks(&self, first: u32, last: u32) -> std::io::Result<()> {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let outcome = self.receive(&mut buf, |m| {
                if m.ty != NLMSG_ERROR || m.seq < first || m.seq > last || m.payload.len() < 4 {
                    return None;
                }
                let code =
                    i32::from_ne_bytes([m.payload[0], m.payload[1], m.payload[2], m.payload[3]]);
                if code != 0 {
                    Some(Err(std::io::Error::from_raw_os_error(-code)))
                } else if m.seq == last {
                    Some(Ok(()))
                } else {
                    None
                }
            })?;
            if let Some(r) = outcome {
                return r;
            }
        }
    }
}

impl Netlink {
    pub fn open() -> std::io::Result<Self> {
        Ok(Self {
            sock: Socket::open(libc::NETLINK_ROUTE)?,
            seq: 0,
        })
    }

    /// Sends one request and waits for its acknowledgement.
    fn request(&mut self, msg: &mut Msg) -> std::io::Result<()> {
        self.seq += 1;
        let seq = self.seq;
        self.sock.send(msg.finish(seq))?;
        self.sock.acks(seq, seq)
    }

    /// Creates a veth pair: `host` here, `peer` inside the network namespace
    /// `ns`.
    pub fn create_veth(
        &mut self,
        host: &str,
        peer: &str,
        ns: PeerNamespace,
    ) -> std::io::Result<()> {
        let mut m = Msg::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
        m.ifinfo(0, 0, 0);
        m.attr(IFLA_IFNAME, &name_bytes(host));
        m.nest(IFLA_LINKINFO, |m| {
            m.attr(IFLA_INFO_KIND, b"veth");
            m.nest(IFLA_INFO_DATA, |m| {
                m.nest(VETH_INFO_PEER, |m| {
                    m.ifinfo(0, 0, 0);
                    m.attr(IFLA_IFNAME, &name_bytes(peer));
                    match ns {
                        PeerNamespace::Process(pid) => {
                            m.attr(IFLA_NET_NS_PID, &(pid as u32).to_ne_bytes());
                        }
                        PeerNamespace::Held(fd) => {
                            m.attr(IFLA_NET_NS_FD, &(fd as u32).to_ne_bytes());
                        }
                    }
                });
            });
        });
        self.request(&mut m)
    }

    pub fn set_up(&mut self, index: u32) -> std::io::Result<()> {
        let mut m = Msg::new(RTM_NEWLINK, 0);
        m.ifinfo(index as i32, libc::IFF_UP as u32, libc::IFF_UP as u32);
        self.request(&mut m)
    }

    pub fn add_address(&mut self, index: u32, addr: [u8; 4], prefix: u8) -> std::io::Result<()> {
        let mut m = Msg::new(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
        // struct ifaddrmsg: family, prefixlen, flags, scope, index.
        let mut ifa = [0u8; 8];
        ifa[0] = libc::AF_INET as u8;
        ifa[1] = prefix;
        ifa[4..8].copy_from_slice(&index.to_ne_bytes());
        m.bytes(&ifa);
        m.attr(IFA_LOCAL, &addr);
        m.attr(IFA_ADDRESS, &addr);
        self.request(&mut m)
    }

    pub fn add_default_route(&mut self, gateway: [u8; 4], index: u32) -> std::io::Result<()> {
        let mut m = Msg::new(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL);
        // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags.
        let mut rt = [0u8; 12];
        rt[0] = libc::AF_INET as u8;
        rt[4] = RT_TABLE_MAIN;
        rt[5] = RTPROT_BOOT;
        rt[6] = RT_SCOPE_UNIVERSE;
        rt[7] = RTN_UNICAST;
        m.bytes(&rt);
        m.attr(RTA_GATEWAY, &gateway);
        m.attr(RTA_OIF, &index.to_ne_bytes());
        self.request(&mut m)
    }
}

/// The index of an interface in the calling thread's network namespace.
pub fn index_of(name: &str) -> std::io::Result<u32> {
    let c = std::ffi::CString::new(name)
        .map_err(|_| std::io::Error::other("interface name has a NUL"))?;
    // SAFETY: a valid C string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_aligned_and_nested() {
        let mut m = Msg::new(RTM_NEWLINK, NLM_F_CREATE);
        m.ifinfo(0, 0, 0);
        m.attr(IFLA_IFNAME, &name_bytes("lmb1"));
        m.nest(IFLA_LINKINFO, |m| {
            m.attr(IFLA_INFO_KIND, b"veth");
        });
        let bytes = m.finish(7).to_vec();
        assert_eq!(bytes.len() % 4, 0);
        assert_eq!(
            u32::from_ne_bytes(bytes[0..4].try_into().unwrap()) as usize,
            bytes.len()
        );
        assert_eq!(u32::from_ne_bytes(bytes[8..12].try_into().unwrap()), 7);
        // ifname attr: len 4 + 5 ("lmb1\0") = 9, padded to 12.
        assert_eq!(u16::from_ne_bytes(bytes[32..34].try_into().unwrap()), 9);
        // the nest header follows at 32 + 12 = 44: len = 4 + (4 + 4) = 12.
        assert_eq!(u16::from_ne_bytes(bytes[44..46].try_into().unwrap()), 12);
        assert_eq!(
            u16::from_ne_bytes(bytes[46..48].try_into().unwrap()),
            IFLA_LINKINFO
        );
    }
}
