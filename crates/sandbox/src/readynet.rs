//! Network namespaces made ready ahead of demand.
//!
//! Giving an environment its network (a new namespace, its link out with
//! addresses and a route, its firewall, the Runtime API listener and its peer
//! check) takes milliseconds, and much of it waits on a kernel lock (rtnl)
//! that the teardown of namespaces of environments that just ended holds too.
//! [`NetReserve`] keeps a few namespaces made that way, each with its own
//! identity lease (uid and link), and a thread of its own refills them; an
//! environment enters one (`setns`) instead of making its own. A namespace
//! is handed out once: taking it moves it, its lease and its listener out of
//! the reserve, and it ends with its environment. Ready namespaces go with
//! their descriptors when the reserve is dropped or the platform's process
//! ends (even by `kill -9`), and their leases with them.
//!
//! Only namespaces for functions without VPC subnets are made ahead (their
//! firewall opens no private network); the others are made at launch.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use crate::LaunchError;
use crate::net::{self, Egress, NetworkMode};
use crate::peer::PeerCheck;
use crate::slots::{Lease, Slots};

/// A network namespace ready for one environment.
pub struct ReadyNet {
    /// The namespace (`/proc/thread-self/ns/net` of its maker).
    pub netns: OwnedFd,
    /// The identity it was made for: its link's name and addresses, and the
    /// only uid its Runtime API serves.
    pub lease: Lease,
    /// The Runtime API listener inside, at [`net::RUNTIME_API_ADDR`].
    pub listener: std::net::TcpListener,
    pub peers: PeerCheck,
}

/// How network namespaces were handed out, since the start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NetCounts {
    /// Handed out ready-made.
    pub from_reserve: u64,
    /// Asked for when none was ready (the launch made its own).
    pub on_demand: u64,
    /// Ready now.
    pub ready: usize,
}

/// Keeps network namespaces ready (see the module docs).
pub struct NetReserve {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What every ready namespace is made with.
pub(crate) struct Recipe {
    pub slots: Arc<Slots>,
    pub network: NetworkMode,
    pub egress: Option<Arc<Egress>>,
}

struct Shared {
    recipe: Recipe,
    depth: usize,
    state: Mutex<State>,
    wake: Condvar,
    from_reserve: AtomicU64,
    on_demand: AtomicU64,
}

#[derive(Default)]
struct State {
    ready: Vec<ReadyNet>,
    stopping: bool,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl NetReserve {
    /// Keeps `depth` namespaces ready for environments of `recipe.network`
    /// (which must give environments a namespace of their own).
    pub(crate) fn start(recipe: Recipe, depth: usize) -> Result<Self, LaunchError> {
        let shared = Arc::new(Shared {
            recipe,
            depth,
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            from_reserve: AtomicU64::new(0),
            on_demand: AtomicU64::new(0),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("netns-refill".into())
            .spawn(move || refill(&s))
            .map_err(|e| LaunchError::Prepare {
                path: "netns-refill thread".into(),
                source: e,
            })?;
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    /// A ready namespace, if there is one (then a new one is made).
    pub fn take(&self) -> Option<ReadyNet> {
        let got = self.shared.lock().ready.pop();
        self.shared.wake.notify_all();
        let counter = if got.is_some() {
            &self.shared.from_reserve
        } else {
            &self.shared.on_demand
        };
        counter.fetch_add(1, Ordering::Relaxed);
        got
    }

    pub fn counts(&self) -> NetCounts {
        NetCounts {
            from_reserve: self.shared.from_reserve.load(Ordering::Relaxed),
            on_demand: self.shared.on_demand.load(Ordering::Relaxed),
            ready: self.shared.lock().ready.len(),
        }
    }
}

impl Drop for NetReserve {
    fn drop(&mut self) {
        let ready = {
            let mut s = self.shared.lock();
            s.stopping = true;
            std::mem::take(&mut s.ready)
        };
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        drop(ready);
    }
}

/// Leases a host-wide identity; in egress mode, one whose link name is free
/// (a link outlives its environment for a moment while the kernel tears the
/// namespace down).
pub(crate) fn lease(slots: &Slots, egress: bool) -> Result<Lease, LaunchError> {
    slots
        .take(|slot| {
            !egress || crate::netlink::index_of(&crate::slots::link_of(slot).name).is_err()
        })
        .map_err(LaunchError::Lease)?
        .ok_or(LaunchError::NoIdentity)
}

/// Makes one namespace ready, from the refill thread.
fn make(recipe: &Recipe, home: &net::Home) -> Result<ReadyNet, LaunchError> {
    let lease = lease(&recipe.slots, recipe.egress.is_some())?;
    let netns = net::new_namespace(home)?;
    let link = lease.link();
    let inside = net::Inside {
        egress: recipe.egress.as_deref(),
        link: &link,
        allowed: &[],
        uid: lease.uid(),
    };
    let (listener, peers) = net::runtime_api_inside(net::Namespace::Held(&netns), home, &inside)?;
    Ok(ReadyNet {
        netns,
        lease,
        listener,
        peers,
    })
}

/// The refill thread: keeps `depth` namespaces ready until told to stop,
/// pausing (growing to 30 s) after failures; launches then make their own,
/// which report the error themselves. It switches its own network
/// namespace while it works, so it serves nothing else.
fn refill(shared: &Shared) {
    let home = match net::Home::current() {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(error = %e, "cannot make network namespaces ahead of demand");
            return;
        }
    };
    debug_assert!(shared.recipe.network != NetworkMode::Host);
    let mut pause = std::time::Duration::ZERO;
    loop {
        {
            let mut s = shared.lock();
            if !pause.is_zero() && !s.stopping {
                s = shared
                    .wake
                    .wait_timeout(s, pause)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
            while !s.stopping && s.ready.len() >= shared.depth {
                s = shared.wake.wait(s).unwrap_or_else(|p| p.into_inner());
            }
            if s.stopping {
                return;
            }
        }
        let started = std::time::Instant::now();
        match make(&shared.recipe, &home) {
            Ok(ready) => {
                tracing::debug!(
                    took_us = started.elapsed().as_micros() as u64,
                    "a network namespace made ready"
                );
                pause = std::time::Duration::ZERO;
                let mut s = shared.lock();
                if s.stopping {
                    return;
                }
                s.ready.push(ready);
            }
            // This thread is in an unknown namespace: it must stop.
            Err(LaunchError::Net(e @ net::NetError::Return(_))) => {
                tracing::error!(error = %e, "network namespaces are no longer made ahead of demand");
                return;
            }
            Err(e) => {
                if pause.is_zero() {
                    tracing::warn!(error = %e, "cannot make a network namespace ahead of demand; retrying later");
                }
                pause = (pause * 2).clamp(
                    std::time::Duration::from_millis(250),
                    std::time::Duration::from_secs(30),
                );
            }
        }
    }
}
