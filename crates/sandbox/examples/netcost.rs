//! What the network isolation adds to starting one environment, step by
//! step (root needed): `cargo run --release -p sandbox --example netcost`.
//!
//! - leasing a host-wide slot (open + flock) and releasing it;
//! - installing an environment's own firewall table in a fresh network
//!   namespace (one nf_tables batch);
//! - turning IPv6 off on an interface (a sysctl write; two per environment);
//! - opening the Runtime API's peer check and looking up one connection's
//!   owner (the per-connection cost on accept).

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn report(what: &str, v: Vec<Duration>) {
    let n = v.len();
    println!(
        "{what:<58} {:>8.1} us (median of {n})",
        median(v).as_secs_f64() * 1e6
    );
}

fn main() {
    // Where real leases live (a tmpfs), in a directory of its own.
    let dir = std::path::Path::new("/run/lambent").join(format!("netcost-{}", std::process::id()));
    let slots = sandbox::slots::Slots::open(&dir, 1024).expect("slot directory");
    let mut held = Vec::new();
    let mut take = Vec::new();
    // With 100 environments alive, as a busy server has.
    for _ in 0..100 {
        held.push(slots.take(|_| true).expect("lease").expect("a free slot"));
    }
    for _ in 0..1000 {
        let t = Instant::now();
        let lease = slots.take(|_| true).expect("lease").expect("a free slot");
        drop(lease);
        take.push(t.elapsed());
    }
    report("slot lease (take + release, 100 held)", take);
    drop(held);
    let _ = std::fs::remove_dir_all(&dir);

    let (firewall, ipv6) = std::thread::spawn(|| {
        let mut firewall = Vec::new();
        let mut ipv6 = Vec::new();
        for _ in 0..200 {
            // SAFETY: moves this measuring thread into a new, empty network
            // namespace; nothing else runs on it.
            assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0, "unshare");
            let table = sandbox::nft::environment_table(
                &[(std::net::Ipv4Addr::new(10, 1, 0, 0), 16)],
                &[std::net::Ipv4Addr::new(10, 255, 255, 53)],
            );
            let t = Instant::now();
            table.install(false).expect("install");
            firewall.push(t.elapsed());
            let t = Instant::now();
            std::fs::write("/proc/sys/net/ipv6/conf/lo/disable_ipv6", "1").expect("sysctl");
            ipv6.push(t.elapsed());
        }
        (firewall, ipv6)
    })
    .join()
    .expect("measuring thread");
    report("environment firewall table (1 batch, 20 rules)", firewall);
    report("IPv6 off on one interface (sysctl write)", ipv6);

    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let c = std::net::TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
    let (_s, peer) = l.accept().expect("accept");
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let mut open = Vec::new();
    let mut lookup = Vec::new();
    for _ in 0..1000 {
        let t = Instant::now();
        let check = sandbox::PeerCheck::open(uid).expect("sock_diag socket");
        open.push(t.elapsed());
        let t = Instant::now();
        assert!(check.admits(l.local_addr().expect("addr"), peer));
        lookup.push(t.elapsed());
    }
    let _ = c.as_raw_fd();
    report("peer check: open (once per environment)", open);
    report(
        "peer check: owner lookup (once per Runtime API connection)",
        lookup,
    );
}
