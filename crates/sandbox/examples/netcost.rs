//! What the network isolation adds to starting one environment, step by
//! step (root needed): `cargo run --release -p sandbox --example netcost`.
//!
//! - leasing a host-wide slot (open + flock) and releasing it;
//! - installing an environment's own firewall table in a fresh network
//!   namespace (one nf_tables batch);
//! - turning IPv6 off on an interface (a sysctl write; two per environment);
//! - opening the Runtime API's peer check and looking up one connection's
//!   owner (the per-connection cost on accept).

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

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), Error> {
    // Where real leases live (a tmpfs), in a directory of its own.
    let dir = std::path::Path::new("/run/lambent").join(format!("netcost-{}", std::process::id()));
    let slots = sandbox::slots::Slots::open(&dir, 1024)?;
    let mut held = Vec::new();
    let mut take = Vec::new();
    // With 100 environments alive, as a busy server has.
    for _ in 0..100 {
        held.push(slots.take(|_| true)?.ok_or("no free slot")?);
    }
    for _ in 0..1000 {
        let t = Instant::now();
        let lease = slots.take(|_| true)?.ok_or("no free slot")?;
        drop(lease);
        take.push(t.elapsed());
    }
    report("slot lease (take + release, 100 held)", take);
    drop(held);
    let _ = std::fs::remove_dir_all(&dir);

    let measured = std::thread::spawn(|| -> Result<_, Error> {
        let mut firewall = Vec::new();
        let mut ipv6 = Vec::new();
        for _ in 0..200 {
            // SAFETY: moves this measuring thread into a new, empty network
            // namespace; nothing else runs on it.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::last_os_error().into());
            }
            let table = sandbox::nft::environment_table(
                &[(std::net::Ipv4Addr::new(10, 1, 0, 0), 16)],
                &[std::net::Ipv4Addr::new(10, 255, 255, 53)],
            );
            let t = Instant::now();
            table.install(false)?;
            firewall.push(t.elapsed());
            let t = Instant::now();
            std::fs::write("/proc/sys/net/ipv6/conf/lo/disable_ipv6", "1")?;
            ipv6.push(t.elapsed());
        }
        Ok((firewall, ipv6))
    })
    .join();
    let (firewall, ipv6) = measured.map_err(|_| "the measuring thread panicked")??;
    report("environment firewall table (1 batch, 20 rules)", firewall);
    report("IPv6 off on one interface (sysctl write)", ipv6);

    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    let local = l.local_addr()?;
    let _c = std::net::TcpStream::connect(local)?;
    let (_s, peer) = l.accept()?;
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let mut open = Vec::new();
    let mut lookup = Vec::new();
    for _ in 0..1000 {
        let t = Instant::now();
        let check = sandbox::PeerCheck::open(uid)?;
        open.push(t.elapsed());
        let t = Instant::now();
        if !check.admits(local, peer) {
            return Err("the peer check refused its own connection".into());
        }
        lookup.push(t.elapsed());
    }
    report("peer check: open (once per environment)", open);
    report(
        "peer check: owner lookup (once per Runtime API connection)",
        lookup,
    );
    Ok(())
}
