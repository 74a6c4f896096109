//! nf_tables over netlink: the firewall, programmed without any external
//! tool. A [`Table`] (chains of rules made of kernel expressions) is sent to
//! the kernel as one batch, which the kernel applies atomically or not at all.
//!
//! Two tables use it: the host's `inet lambent` (environments may not reach
//! the host, each other, link-local addresses or anything over IPv6; NAT out)
//! and each environment's own `inet lambent`, inside its network namespace,
//! which the function cannot change (no capabilities): its private-network
//! policy (see [`environment_table`]).

use std::net::Ipv4Addr;

use crate::netlink::{
    Msg, NLA_F_NESTED, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_REQUEST, Socket,
};

const NETLINK_NETFILTER: libc::c_int = 12;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;

const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_GETCHAIN: u16 = 4;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_GETRULE: u16 = 7;
const NFT_MSG_DELRULE: u16 = 8;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_DONE: u16 = 3;

const NFTA_TABLE_NAME: u16 = 1;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_HANDLE: u16 = 3;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_RULE_USERDATA: u16 = 7;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;

const NFT_REG_VERDICT: u32 = 0;
const NFT_REG_1: u32 = 1;

/// Address families of tables.
pub const NFPROTO_INET: u8 = 1;
pub const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;

/// Hooks.
pub const HOOK_INPUT: u32 = 1;
pub const HOOK_FORWARD: u32 = 2;
pub const HOOK_OUTPUT: u32 = 3;
pub const HOOK_POSTROUTING: u32 = 4;

pub const NF_DROP: u32 = 0;
pub const NF_ACCEPT: u32 = 1;

/// `meta` keys.
const META_IIFNAME: u32 = 6;
const META_OIFNAME: u32 = 7;
const META_NFPROTO: u32 = 15;
const META_L4PROTO: u32 = 16;
/// `ct` key: the connection's state bits.
const CT_STATE: u32 = 0;
const CT_ESTABLISHED_RELATED: u32 = 2 | 4;
/// `payload` bases.
const BASE_NETWORK: u32 = 1;
const BASE_TRANSPORT: u32 = 2;
/// `cmp` operators.
const CMP_EQ: u32 = 0;
const CMP_NEQ: u32 = 1;
/// `reject` with an ICMP(v6) "administratively prohibited": the sender's
/// connect fails at once (EHOSTUNREACH) instead of timing out.
const REJECT_ICMPX: u32 = 2;
const ICMPX_ADMIN_PROHIBITED: u8 = 3;

/// One kernel expression of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// Loads a `meta` key into register 1.
    Meta(u32),
    /// Loads `len` bytes at `offset` of a header into register 1.
    Payload {
        base: u32,
        offset: u32,
        len: u32,
    },
    /// Register 1 = (register 1 & mask) ^ 0.
    Mask(Vec<u8>),
    /// Compares register 1 with `data`; the rule stops here unless it holds.
    Cmp {
        op: u32,
        data: Vec<u8>,
    },
    /// Loads a conntrack key into register 1.
    Ct(u32),
    Accept,
    Drop,
    Reject,
    Masquerade,
}

/// A rule: expressions evaluated in order.
pub type Rule = Vec<Expr>;

/// A base chain: attached to a hook, with its rules.
#[derive(Debug, Clone)]
pub struct Chain {
    pub name: &'static str,
    /// `filter` or `nat`.
    pub kind: &'static str,
    pub hook: u32,
    pub priority: i32,
    /// What happens to packets no rule decides (`NF_ACCEPT` or `NF_DROP`).
    pub policy: u32,
    pub rules: Vec<Rule>,
}

/// A table of base chains.
#[derive(Debug, Clone)]
pub struct Table {
    pub family: u8,
    pub name: &'static str,
    pub chains: Vec<Chain>,
}

/// Rule building blocks.
pub mod when {
    use super::*;

    /// The input interface's name starts with `prefix`.
    pub fn iifname_starts(prefix: &str) -> Rule {
        vec![
            Expr::Meta(META_IIFNAME),
            Expr::Cmp {
                op: CMP_EQ,
                data: prefix.as_bytes().to_vec(),
            },
        ]
    }

    /// The output interface's name starts (or does not start) with `prefix`.
    pub fn oifname_starts(prefix: &str, yes: bool) -> Rule {
        vec![
            Expr::Meta(META_OIFNAME),
            Expr::Cmp {
                op: if yes { CMP_EQ } else { CMP_NEQ },
                data: prefix.as_bytes().to_vec(),
            },
        ]
    }

    /// The output interface is exactly `name`.
    pub fn oifname_is(name: &str) -> Rule {
        let mut data = name.as_bytes().to_vec();
        data.push(0);
        vec![Expr::Meta(META_OIFNAME), Expr::Cmp { op: CMP_EQ, data }]
    }

    pub fn ipv6() -> Rule {
        vec![
            Expr::Meta(META_NFPROTO),
            Expr::Cmp {
                op: CMP_EQ,
                data: vec![NFPROTO_IPV6],
            },
        ]
    }

    fn ip_field_in(offset: u32, net: Ipv4Addr, prefix: u8) -> Rule {
        let mut r = vec![
            Expr::Meta(META_NFPROTO),
            Expr::Cmp {
                op: CMP_EQ,
                data: vec![NFPROTO_IPV4],
            },
            Expr::Payload {
                base: BASE_NETWORK,
                offset,
                len: 4,
            },
        ];
        let mask = prefix_mask(prefix);
        if prefix < 32 {
            r.push(Expr::Mask(mask.to_be_bytes().to_vec()));
        }
        r.push(Expr::Cmp {
            op: CMP_EQ,
            data: (u32::from(net) & mask).to_be_bytes().to_vec(),
        });
        r
    }

    /// The IPv4 destination lies in `net/prefix`.
    pub fn ip_daddr_in(net: Ipv4Addr, prefix: u8) -> Rule {
        ip_field_in(16, net, prefix)
    }

    /// The IPv4 source lies in `net/prefix`.
    pub fn ip_saddr_in(net: Ipv4Addr, prefix: u8) -> Rule {
        ip_field_in(12, net, prefix)
    }

    /// The transport protocol is `proto` and the destination port `port`.
    pub fn dport(proto: u8, port: u16) -> Rule {
        vec![
            Expr::Meta(META_L4PROTO),
            Expr::Cmp {
                op: CMP_EQ,
                data: vec![proto],
            },
            Expr::Payload {
                base: BASE_TRANSPORT,
                offset: 2,
                len: 2,
            },
            Expr::Cmp {
                op: CMP_EQ,
                data: port.to_be_bytes().to_vec(),
            },
        ]
    }

    /// The packet belongs to (or is related to) a known connection.
    pub fn established_or_related() -> Rule {
        vec![
            Expr::Ct(CT_STATE),
            Expr::Mask(CT_ESTABLISHED_RELATED.to_ne_bytes().to_vec()),
            Expr::Cmp {
                op: CMP_NEQ,
                data: 0u32.to_ne_bytes().to_vec(),
            },
        ]
    }
}

/// The mask of an IPv4 prefix length, host order.
pub fn prefix_mask(prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p if p >= 32 => u32::MAX,
        p => u32::MAX << (32 - u32::from(p)),
    }
}

/// Joins conditions and a verdict into one rule.
pub fn rule(parts: &[Rule], verdict: Expr) -> Rule {
    let mut r: Rule = parts.iter().flatten().cloned().collect();
    r.push(verdict);
    r
}

fn be32(v: u32) -> [u8; 4] {
    v.to_be_bytes()
}

fn cstr(s: &str) -> Vec<u8> {
    let mut b = s.as_bytes().to_vec();
    b.push(0);
    b
}

fn nest(m: &mut Msg, ty: u16, f: impl FnOnce(&mut Msg)) {
    m.nest(ty | NLA_F_NESTED, f);
}

fn data_value(m: &mut Msg, ty: u16, bytes: &[u8]) {
    nest(m, ty, |m| {
        m.attr(NFTA_DATA_VALUE, bytes);
    });
}

fn verdict(m: &mut Msg, code: u32) {
    nest(m, 2 /* NFTA_IMMEDIATE_DATA */, |m| {
        nest(m, NFTA_DATA_VERDICT, |m| {
            m.attr(NFTA_VERDICT_CODE, &be32(code));
        });
    });
}

impl Expr {
    fn name(&self) -> &'static str {
        match self {
            Expr::Meta(_) => "meta",
            Expr::Payload { .. } => "payload",
            Expr::Mask(_) => "bitwise",
            Expr::Cmp { .. } => "cmp",
            Expr::Ct(_) => "ct",
            Expr::Accept | Expr::Drop => "immediate",
            Expr::Reject => "reject",
            Expr::Masquerade => "masq",
        }
    }

    /// The expression's attributes (`NFTA_EXPR_DATA`).
    fn data(&self, m: &mut Msg) {
        match self {
            Expr::Meta(key) | Expr::Ct(key) => {
                m.attr(1 /* DREG */, &be32(NFT_REG_1));
                m.attr(2 /* KEY */, &be32(*key));
            }
            Expr::Payload { base, offset, len } => {
                m.attr(1 /* DREG */, &be32(NFT_REG_1));
                m.attr(2 /* BASE */, &be32(*base));
                m.attr(3 /* OFFSET */, &be32(*offset));
                m.attr(4 /* LEN */, &be32(*len));
            }
            Expr::Mask(mask) => {
                m.attr(1 /* SREG */, &be32(NFT_REG_1));
                m.attr(2 /* DREG */, &be32(NFT_REG_1));
                m.attr(3 /* LEN */, &be32(mask.len() as u32));
                data_value(m, 4 /* MASK */, mask);
                data_value(m, 5 /* XOR */, &vec![0u8; mask.len()]);
            }
            Expr::Cmp { op, data } => {
                m.attr(1 /* SREG */, &be32(NFT_REG_1));
                m.attr(2 /* OP */, &be32(*op));
                data_value(m, 3 /* DATA */, data);
            }
            Expr::Accept | Expr::Drop => {
                m.attr(1 /* DREG */, &be32(NFT_REG_VERDICT));
                verdict(
                    m,
                    if *self == Expr::Accept {
                        NF_ACCEPT
                    } else {
                        NF_DROP
                    },
                );
            }
            Expr::Reject => {
                m.attr(1 /* TYPE */, &be32(REJECT_ICMPX));
                m.attr(2 /* ICMP_CODE */, &[ICMPX_ADMIN_PROHIBITED]);
            }
            Expr::Masquerade => {}
        }
    }

    fn emit(&self, m: &mut Msg) {
        nest(m, NFTA_LIST_ELEM, |m| {
            m.attr(NFTA_EXPR_NAME, &cstr(self.name()));
            if *self != Expr::Masquerade {
                nest(m, NFTA_EXPR_DATA, |m| self.data(m));
            }
        });
    }
}

/// Why a table could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    #[error("cannot open a netfilter socket: {0}")]
    Socket(std::io::Error),
    #[error("the kernel refused table {table}: {error} (is nf_tables available?)")]
    Refused {
        table: &'static str,
        error: std::io::Error,
    },
}

/// A batch of nf_tables messages.
struct Batch {
    buf: Vec<u8>,
    seq: u32,
    first: u32,
}

impl Batch {
    fn new() -> Self {
        let mut b = Self {
            buf: Vec::new(),
            seq: 1,
            first: 2,
        };
        b.control(NFNL_MSG_BATCH_BEGIN);
        b
    }

    fn control(&mut self, ty: u16) {
        let mut m = Msg::with_flags(ty, NLM_F_REQUEST);
        // struct nfgenmsg: family, version, resource id (the subsystem).
        let [hi, lo] = NFNL_SUBSYS_NFTABLES.to_be_bytes();
        m.bytes(&[0, 0, hi, lo]);
        self.buf.extend_from_slice(m.finish(self.seq));
        self.seq += 1;
    }

    fn push(&mut self, ty: u16, flags: u16, family: u8, f: impl FnOnce(&mut Msg)) {
        let mut m = Msg::with_flags(
            (NFNL_SUBSYS_NFTABLES << 8) | ty,
            NLM_F_REQUEST | NLM_F_ACK | flags,
        );
        m.bytes(&[family, 0, 0, 0]);
        f(&mut m);
        self.buf.extend_from_slice(m.finish(self.seq));
        self.seq += 1;
    }

    /// The batch's bytes and the sequence numbers of its first and last
    /// acknowledged messages.
    fn finish(mut self) -> (Vec<u8>, u32, u32) {
        let last = self.seq - 1;
        self.control(NFNL_MSG_BATCH_END);
        (self.buf, self.first, last)
    }
}

impl Table {
    /// The batch that creates this table; with `replace`, whatever table of
    /// that name exists is swapped for it in the same transaction.
    fn batch(&self, replace: bool) -> (Vec<u8>, u32, u32) {
        let mut b = Batch::new();
        let name = cstr(self.name);
        if replace {
            // Create it if missing, so that deleting it cannot fail.
            b.push(NFT_MSG_NEWTABLE, NLM_F_CREATE, self.family, |m| {
                m.attr(NFTA_TABLE_NAME, &name);
            });
            b.push(NFT_MSG_DELTABLE, 0, self.family, |m| {
                m.attr(NFTA_TABLE_NAME, &name);
            });
        }
        b.push(NFT_MSG_NEWTABLE, NLM_F_CREATE, self.family, |m| {
            m.attr(NFTA_TABLE_NAME, &name);
        });
        for chain in &self.chains {
            b.push(NFT_MSG_NEWCHAIN, NLM_F_CREATE, self.family, |m| {
                m.attr(NFTA_CHAIN_TABLE, &name);
                m.attr(NFTA_CHAIN_NAME, &cstr(chain.name));
                nest(m, NFTA_CHAIN_HOOK, |m| {
                    m.attr(NFTA_HOOK_HOOKNUM, &be32(chain.hook));
                    m.attr(NFTA_HOOK_PRIORITY, &chain.priority.to_be_bytes());
                });
                m.attr(NFTA_CHAIN_POLICY, &be32(chain.policy));
                m.attr(NFTA_CHAIN_TYPE, &cstr(chain.kind));
            });
            for r in &chain.rules {
                b.push(
                    NFT_MSG_NEWRULE,
                    NLM_F_CREATE | NLM_F_APPEND,
                    self.family,
                    |m| {
                        m.attr(NFTA_RULE_TABLE, &name);
                        m.attr(NFTA_RULE_CHAIN, &cstr(chain.name));
                        nest(m, NFTA_RULE_EXPRESSIONS, |m| {
                            for e in r {
                                e.emit(m);
                            }
                        });
                    },
                );
            }
        }
        b.finish()
    }

    /// Installs the table in the calling thread's network namespace, in one
    /// atomic transaction (see [`Table::batch`] for `replace`).
    pub fn install(&self, replace: bool) -> Result<(), FirewallError> {
        let sock = Socket::open(NETLINK_NETFILTER).map_err(FirewallError::Socket)?;
        let (bytes, first, last) = self.batch(replace);
        sock.send(&bytes)
            .and_then(|()| sock.acks(first, last))
            .map_err(|error| FirewallError::Refused {
                table: self.name,
                error,
            })
    }
}

/// Interface names of environments' host-side links.
pub const LINK_PREFIX: &str = "lmb";

/// IPv4 ranges that are not the public internet (IANA's special-purpose
/// registry, not globally reachable): environments without VPC settings are
/// refused all of them.
pub const NON_PUBLIC_V4: &[([u8; 4], u8)] = &[
    ([0, 0, 0, 0], 8),
    ([10, 0, 0, 0], 8),
    ([100, 64, 0, 0], 10),
    ([127, 0, 0, 0], 8),
    ([169, 254, 0, 0], 16),
    ([172, 16, 0, 0], 12),
    ([192, 0, 0, 0], 24),
    ([192, 0, 2, 0], 24),
    ([192, 88, 99, 0], 24),
    ([192, 168, 0, 0], 16),
    ([198, 18, 0, 0], 15),
    ([198, 51, 100, 0], 24),
    ([203, 0, 113, 0], 24),
    ([224, 0, 0, 0], 4),
    ([240, 0, 0, 0], 4),
];

/// The host's table: whatever comes in from an environment's link is dropped
/// if it is for the host itself, another environment, a link-local
/// (metadata) address, or IPv6; nothing from outside opens a connection to
/// an environment; environments' addresses are masqueraded on the way out.
pub fn host_table(subnet: (Ipv4Addr, u8)) -> Table {
    use when::*;
    let from_env = iifname_starts(LINK_PREFIX);
    Table {
        family: NFPROTO_INET,
        name: "lambent",
        chains: vec![
            Chain {
                name: "input",
                kind: "filter",
                hook: HOOK_INPUT,
                priority: 0,
                policy: NF_ACCEPT,
                rules: vec![rule(std::slice::from_ref(&from_env), Expr::Drop)],
            },
            Chain {
                name: "forward",
                kind: "filter",
                hook: HOOK_FORWARD,
                priority: 0,
                policy: NF_ACCEPT,
                rules: vec![
                    rule(
                        &[from_env.clone(), oifname_starts(LINK_PREFIX, true)],
                        Expr::Drop,
                    ),
                    rule(&[from_env.clone(), ipv6()], Expr::Drop),
                    rule(
                        &[from_env, ip_daddr_in(Ipv4Addr::new(169, 254, 0, 0), 16)],
                        Expr::Drop,
                    ),
                    rule(
                        &[oifname_starts(LINK_PREFIX, true), established_or_related()],
                        Expr::Accept,
                    ),
                    rule(&[oifname_starts(LINK_PREFIX, true)], Expr::Drop),
                ],
            },
            Chain {
                name: "postrouting",
                kind: "nat",
                hook: HOOK_POSTROUTING,
                priority: 100,
                policy: NF_ACCEPT,
                rules: vec![rule(
                    &[
                        ip_saddr_in(subnet.0, subnet.1),
                        oifname_starts(LINK_PREFIX, false),
                    ],
                    Expr::Masquerade,
                )],
            },
        ],
    }
}

/// An environment's own table, inside its network namespace: its loopback
/// is its own; no IPv6; the `allowed` private networks (its VPC subnets')
/// and the host's DNS resolvers (port 53) are reachable; every other
/// non-public IPv4 address is refused at once.
pub fn environment_table(allowed: &[(Ipv4Addr, u8)], resolvers: &[Ipv4Addr]) -> Table {
    use when::*;
    let mut rules = vec![
        rule(&[oifname_is("lo")], Expr::Accept),
        rule(&[ipv6()], Expr::Reject),
    ];
    for (net, prefix) in allowed {
        rules.push(rule(&[ip_daddr_in(*net, *prefix)], Expr::Accept));
    }
    for r in resolvers {
        for proto in [libc::IPPROTO_UDP as u8, libc::IPPROTO_TCP as u8] {
            rules.push(rule(&[ip_daddr_in(*r, 32), dport(proto, 53)], Expr::Accept));
        }
    }
    for (net, prefix) in NON_PUBLIC_V4 {
        rules.push(rule(
            &[ip_daddr_in(Ipv4Addr::from(*net), *prefix)],
            Expr::Reject,
        ));
    }
    Table {
        family: NFPROTO_INET,
        name: "lambent",
        chains: vec![Chain {
            name: "output",
            kind: "filter",
            hook: HOOK_OUTPUT,
            priority: 0,
            policy: NF_ACCEPT,
            rules,
        }],
    }
}

/// Marks the rules Lambent puts into another program's chain (shown by
/// `nft list` as `comment "lambent"`): a user-data comment TLV.
const OWN_RULE: &[u8] = b"\x00\x08lambent\x00";

/// Reads a dump's messages until `NLMSG_DONE`, handing each payload (after
/// `struct nfgenmsg`) to `each`.
fn dump(sock: &Socket, mut each: impl FnMut(&[u8])) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let done = sock.receive(&mut buf, |m| match m.ty {
            NLMSG_DONE => Some(Ok(())),
            crate::netlink::NLMSG_ERROR if m.payload.len() >= 4 => {
                let code =
                    i32::from_ne_bytes([m.payload[0], m.payload[1], m.payload[2], m.payload[3]]);
                Some(if code == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::from_raw_os_error(-code))
                })
            }
            _ => {
                if m.payload.len() > 4 {
                    each(&m.payload[4..]);
                }
                None
            }
        })?;
        if let Some(r) = done {
            return r;
        }
    }
}

/// Walks netlink attributes: (type without flags, payload).
fn attributes(mut b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        if len < 4 || len > b.len() {
            break;
        }
        let ty = u16::from_ne_bytes([b[2], b[3]]) & !NLA_F_NESTED;
        out.push((ty, &b[4..len]));
        b = &b[((len + 3) & !3).min(b.len())..];
    }
    out
}

/// Hosts whose iptables `FORWARD` chain drops by default (docker sets that
/// policy) would drop environments' traffic whatever Lambent's own table
/// says, since a packet must pass every base chain on its hook. When the
/// `ip filter` table has a `FORWARD` chain, Lambent keeps two rules at its
/// head, in the form `iptables -I FORWARD -i lmb+ -j ACCEPT` (and `-o lmb+`)
/// takes, so iptables still reads the chain; its own table keeps deciding
/// what environments may do. Earlier copies of these rules (marked) are
/// replaced in the same transaction.
pub fn allow_through_iptables_forward() -> Result<bool, FirewallError> {
    const TABLE: &str = "filter";
    const CHAIN: &str = "FORWARD";
    let refused = |error| FirewallError::Refused {
        table: "ip filter (FORWARD)",
        error,
    };
    let sock = Socket::open(NETLINK_NETFILTER).map_err(FirewallError::Socket)?;
    // Is there such a chain?
    let mut get = Msg::with_flags(
        (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETCHAIN,
        NLM_F_REQUEST | NLM_F_ACK,
    );
    get.bytes(&[NFPROTO_IPV4, 0, 0, 0]);
    get.attr(NFTA_CHAIN_TABLE, &cstr(TABLE));
    get.attr(NFTA_CHAIN_NAME, &cstr(CHAIN));
    sock.send(get.finish(1)).map_err(refused)?;
    match sock.acks(1, 1) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(false),
        Err(e) => return Err(refused(e)),
    }
    // Earlier copies of our rules.
    let mut list = Msg::with_flags(
        (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETRULE,
        NLM_F_REQUEST | NLM_F_DUMP,
    );
    list.bytes(&[NFPROTO_IPV4, 0, 0, 0]);
    list.attr(NFTA_RULE_TABLE, &cstr(TABLE));
    list.attr(NFTA_RULE_CHAIN, &cstr(CHAIN));
    sock.send(list.finish(2)).map_err(refused)?;
    let mut ours = Vec::new();
    dump(&sock, |rule| {
        let attrs = attributes(rule);
        let mine = attrs
            .iter()
            .any(|(t, v)| *t == NFTA_RULE_USERDATA && *v == OWN_RULE);
        let handle = attrs.iter().find(|(t, _)| *t == NFTA_RULE_HANDLE);
        if let (true, Some((_, h))) = (mine, handle) {
            ours.push(h.to_vec());
        }
    })
    .map_err(refused)?;
    let mut b = Batch::new();
    for handle in &ours {
        b.push(NFT_MSG_DELRULE, 0, NFPROTO_IPV4, |m| {
            m.attr(NFTA_RULE_TABLE, &cstr(TABLE));
            m.attr(NFTA_RULE_CHAIN, &cstr(CHAIN));
            m.attr(NFTA_RULE_HANDLE, handle);
        });
    }
    let rules = [
        rule(&[when::iifname_starts(LINK_PREFIX)], Expr::Accept),
        rule(&[when::oifname_starts(LINK_PREFIX, true)], Expr::Accept),
    ];
    for r in &rules {
        // Without NLM_F_APPEND: at the head of the chain.
        b.push(NFT_MSG_NEWRULE, NLM_F_CREATE, NFPROTO_IPV4, |m| {
            m.attr(NFTA_RULE_TABLE, &cstr(TABLE));
            m.attr(NFTA_RULE_CHAIN, &cstr(CHAIN));
            nest(m, NFTA_RULE_EXPRESSIONS, |m| {
                for e in r {
                    e.emit(m);
                }
            });
            m.attr(NFTA_RULE_USERDATA, OWN_RULE);
        });
    }
    let (bytes, first, last) = b.finish();
    sock.send(&bytes)
        .and_then(|()| sock.acks(first, last))
        .map_err(refused)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walks netlink attributes: (type without flags, payload).
    fn attrs(mut b: &[u8]) -> Vec<(u16, &[u8])> {
        let mut out = Vec::new();
        while b.len() >= 4 {
            let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
            let ty = u16::from_ne_bytes([b[2], b[3]]) & !NLA_F_NESTED;
            out.push((ty, &b[4..len]));
            b = &b[((len + 3) & !3).min(b.len())..];
        }
        out
    }

    /// Splits a batch into (type, flags, payload after nfgenmsg).
    fn messages(mut b: &[u8]) -> Vec<(u16, u16, Vec<u8>)> {
        let mut out = Vec::new();
        while b.len() >= 16 {
            let len = u32::from_ne_bytes(b[0..4].try_into().unwrap()) as usize;
            let ty = u16::from_ne_bytes([b[4], b[5]]);
            let flags = u16::from_ne_bytes([b[6], b[7]]);
            out.push((ty, flags, b[20..len].to_vec()));
            b = &b[len..];
        }
        out
    }

    #[test]
    fn masks_of_prefixes() {
        assert_eq!(prefix_mask(0), 0);
        assert_eq!(prefix_mask(8), 0xff00_0000);
        assert_eq!(prefix_mask(10), 0xffc0_0000);
        assert_eq!(prefix_mask(32), u32::MAX);
    }

    #[test]
    fn a_replacing_batch_creates_deletes_and_recreates_in_one_transaction() {
        let t = host_table((Ipv4Addr::new(10, 213, 0, 0), 16));
        let (bytes, first, last) = t.batch(true);
        let msgs = messages(&bytes);
        let types: Vec<u16> = msgs.iter().map(|m| m.0).collect();
        let nft = |t: u16| (NFNL_SUBSYS_NFTABLES << 8) | t;
        assert_eq!(types[0], NFNL_MSG_BATCH_BEGIN);
        assert_eq!(
            &types[1..4],
            &[
                nft(NFT_MSG_NEWTABLE),
                nft(NFT_MSG_DELTABLE),
                nft(NFT_MSG_NEWTABLE)
            ]
        );
        assert_eq!(*types.last().unwrap(), NFNL_MSG_BATCH_END);
        let rules = types.iter().filter(|t| **t == nft(NFT_MSG_NEWRULE)).count();
        assert_eq!(rules, 7, "1 input + 5 forward + 1 nat");
        // Every message between BEGIN and END asks for an acknowledgement,
        // numbered first..=last.
        assert_eq!(last - first + 1, msgs.len() as u32 - 2);
        for (_, flags, _) in &msgs[1..msgs.len() - 1] {
            assert_ne!(flags & NLM_F_ACK, 0);
        }
    }

    #[test]
    fn a_prefix_rule_masks_then_compares_the_destination() {
        let t = environment_table(&[(Ipv4Addr::new(10, 1, 2, 3), 16)], &[]);
        let (bytes, _, _) = t.batch(false);
        let msgs = messages(&bytes);
        let nft_rule = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE;
        let rules: Vec<&Vec<u8>> = msgs
            .iter()
            .filter(|m| m.0 == nft_rule)
            .map(|m| &m.2)
            .collect();
        // lo accept, ipv6 reject, the allowed network, then the refused ranges.
        assert_eq!(rules.len(), 3 + NON_PUBLIC_V4.len());
        let exprs = attrs(rules[2])
            .into_iter()
            .find(|(t, _)| *t == NFTA_RULE_EXPRESSIONS)
            .unwrap()
            .1;
        let names: Vec<String> = attrs(exprs)
            .into_iter()
            .map(|(_, e)| {
                let name = attrs(e)[0].1;
                String::from_utf8(name[..name.len() - 1].to_vec()).unwrap()
            })
            .collect();
        assert_eq!(
            names,
            ["meta", "cmp", "payload", "bitwise", "cmp", "immediate"]
        );
        // The compared network is 10.1.0.0 (host bits cleared).
        let cmp = attrs(exprs)[4].1;
        let data = attrs(cmp)[1].1;
        let value = attrs(attrs(data)[2].1)[0].1;
        assert_eq!(value, [10, 1, 0, 0]);
    }

    #[test]
    fn batch_control_messages_name_the_subsystem() {
        let (bytes, _, _) = environment_table(&[], &[]).batch(false);
        let msgs = messages(&bytes);
        let begin = &bytes[16..20];
        assert_eq!(msgs[0].0, NFNL_MSG_BATCH_BEGIN);
        assert_eq!(&begin[2..4], &NFNL_SUBSYS_NFTABLES.to_be_bytes());
    }
}
