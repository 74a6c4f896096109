//! Admission of new environments against what the host can hold.
//!
//! Every environment is promised its memory size, and may hold up to 1,024
//! processes. Before a cold start the pool checks the memory promised to
//! the platform's environments and to the account's (a ledger of
//! reservations), and the processes the platform's and the account's
//! environments hold now (read from their cgroups, which enforce the same
//! limits). When a budget would be exceeded it stops idle environments,
//! oldest first, that free enough; when none would, it refuses the start
//! with a [`CapacityError`] (a throttle for the caller).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Processes set aside for an environment that is starting (its init, the
/// runtime and the runtime's first threads) until it is running.
pub const START_PIDS: u64 = 32;

/// Memory the pool may promise to environments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    /// Every environment together, MiB.
    pub memory_mb: u64,
    /// One account's environments together, MiB.
    pub account_memory_mb: u64,
}

impl Capacity {
    /// No memory budget (tests and tools that do not care).
    pub const UNBOUNDED: Self = Self {
        memory_mb: u64::MAX,
        account_memory_mb: u64::MAX,
    };

    /// The budgets that match the sandbox's cgroup limits.
    pub fn from_limits(l: &sandbox::Limits) -> Self {
        Self {
            memory_mb: l.platform_memory_bytes >> 20,
            account_memory_mb: l.account_memory_bytes >> 20,
        }
    }
}

/// Why an environment could not be started now: every environment that
/// could make room is busy (or provisioned).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapacityError {
    #[error(
        "Rate Exceeded. No capacity for another execution environment: this account's environments hold {used_mb} of the {limit_mb} MB of memory it may use, and none is idle."
    )]
    AccountMemory { used_mb: u64, limit_mb: u64 },
    #[error(
        "Rate Exceeded. No capacity for another execution environment: the host's environments hold {used_mb} of the {limit_mb} MB of memory it offers, and none that would make room is idle."
    )]
    HostMemory { used_mb: u64, limit_mb: u64 },
    #[error(
        "Rate Exceeded. No capacity for another execution environment: this account's environments hold {used} of the {limit} processes it may run, and none that would make room is idle."
    )]
    AccountProcesses { used: u64, limit: u64 },
    #[error(
        "Rate Exceeded. No capacity for another execution environment: the host's environments hold {used} of the {limit} processes it offers, and none that would make room is idle."
    )]
    HostProcesses { used: u64, limit: u64 },
}

/// Process counts as the sandbox reports them.
pub type PidUsage = sandbox::PidUsage;

/// What must be freed before a start fits: memory (MiB) and processes, from
/// the account's environments or from anyone's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Shortfall {
    pub account_mb: u64,
    pub host_mb: u64,
    pub account_pids: u64,
    pub host_pids: u64,
    /// The refusal, if nothing can be freed.
    pub error: CapacityError,
}

/// An idle environment that could be stopped to make room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub account: String,
    pub memory_mb: u64,
    pub pids: u64,
}

impl Shortfall {
    /// The oldest-first candidates (by index) whose stopping covers the
    /// shortfall, or `None` when all of them together would not.
    pub fn victims(&self, account: &str, oldest_first: &[Candidate]) -> Option<Vec<usize>> {
        let (mut amb, mut hmb, mut apids, mut hpids) = (
            self.account_mb,
            self.host_mb,
            self.account_pids,
            self.host_pids,
        );
        let mut chosen = Vec::new();
        for (i, c) in oldest_first.iter().enumerate() {
            if amb == 0 && hmb == 0 && apids == 0 && hpids == 0 {
                break;
            }
            let own = c.account == account;
            let helps = hmb > 0
                || (hpids > 0 && c.pids > 0)
                || (own && (amb > 0 || (apids > 0 && c.pids > 0)));
            if !helps {
                continue;
            }
            chosen.push(i);
            hmb = hmb.saturating_sub(c.memory_mb);
            hpids = hpids.saturating_sub(c.pids);
            if own {
                amb = amb.saturating_sub(c.memory_mb);
                apids = apids.saturating_sub(c.pids);
            }
        }
        (amb == 0 && hmb == 0 && apids == 0 && hpids == 0).then_some(chosen)
    }
}

/// Memory promised to environments, and processes set aside for starts.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    memory_mb: u64,
    account_memory_mb: HashMap<String, u64>,
    starting_pids: u64,
    account_starting_pids: HashMap<String, u64>,
}

impl Ledger {
    /// Whether a start of `memory_mb` for `account` fits now; `pids` is what
    /// the cgroups report (`None` where nothing counts processes).
    pub fn check(
        &self,
        cap: &Capacity,
        account: &str,
        memory_mb: u64,
        pids: Option<&PidUsage>,
    ) -> Result<(), Shortfall> {
        let acct_mb = self.account_memory_mb.get(account).copied().unwrap_or(0);
        let over = |used: u64, want: u64, limit: u64| (used + want).saturating_sub(limit);
        let mut s = Shortfall {
            account_mb: over(acct_mb, memory_mb, cap.account_memory_mb),
            host_mb: over(self.memory_mb, memory_mb, cap.memory_mb),
            account_pids: 0,
            host_pids: 0,
            error: CapacityError::AccountMemory {
                used_mb: acct_mb,
                limit_mb: cap.account_memory_mb,
            },
        };
        if let Some(p) = pids {
            let acct_starting = self
                .account_starting_pids
                .get(account)
                .copied()
                .unwrap_or(0);
            s.account_pids = over(p.account_current + acct_starting, START_PIDS, p.account_max);
            s.host_pids = over(
                p.platform_current + self.starting_pids,
                START_PIDS,
                p.platform_max,
            );
            if s.account_pids > 0 {
                s.error = CapacityError::AccountProcesses {
                    used: p.account_current,
                    limit: p.account_max,
                };
            }
            if s.host_pids > 0 {
                s.error = CapacityError::HostProcesses {
                    used: p.platform_current,
                    limit: p.platform_max,
                };
            }
        }
        if s.account_mb > 0 {
            s.error = CapacityError::AccountMemory {
                used_mb: acct_mb,
                limit_mb: cap.account_memory_mb,
            };
        } else if s.host_mb > 0 {
            s.error = CapacityError::HostMemory {
                used_mb: self.memory_mb,
                limit_mb: cap.memory_mb,
            };
        }
        if s.account_mb == 0 && s.host_mb == 0 && s.account_pids == 0 && s.host_pids == 0 {
            Ok(())
        } else {
            Err(s)
        }
    }

    fn add(&mut self, account: &str, memory_mb: u64, pids: u64) {
        self.memory_mb += memory_mb;
        *self
            .account_memory_mb
            .entry(account.to_owned())
            .or_default() += memory_mb;
        self.starting_pids += pids;
        *self
            .account_starting_pids
            .entry(account.to_owned())
            .or_default() += pids;
    }

    fn sub(&mut self, account: &str, memory_mb: u64, pids: u64) {
        self.memory_mb = self.memory_mb.saturating_sub(memory_mb);
        self.starting_pids = self.starting_pids.saturating_sub(pids);
        if let Some(m) = self.account_memory_mb.get_mut(account) {
            *m = m.saturating_sub(memory_mb);
            if *m == 0 {
                self.account_memory_mb.remove(account);
            }
        }
        if let Some(p) = self.account_starting_pids.get_mut(account) {
            *p = p.saturating_sub(pids);
            if *p == 0 {
                self.account_starting_pids.remove(account);
            }
        }
    }

    /// Memory promised to every environment, MiB.
    pub fn memory_mb(&self) -> u64 {
        self.memory_mb
    }
}

/// Memory promised to one environment (and, while it starts, processes set
/// aside for it); given back when dropped.
#[derive(Debug)]
pub(crate) struct Reservation {
    ledger: Arc<Mutex<Ledger>>,
    account: String,
    memory_mb: u64,
    starting_pids: u64,
}

impl Reservation {
    /// Takes a reservation in the ledger, without checking any budget.
    #[cfg(test)]
    fn take(ledger: &Arc<Mutex<Ledger>>, account: &str, memory_mb: u64) -> Self {
        ledger
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .add(account, memory_mb, START_PIDS);
        Self {
            ledger: ledger.clone(),
            account: account.to_owned(),
            memory_mb,
            starting_pids: START_PIDS,
        }
    }

    /// Takes a reservation if the start fits the budgets now; else says what
    /// must be freed first.
    pub fn try_take(
        ledger: &Arc<Mutex<Ledger>>,
        cap: &Capacity,
        account: &str,
        memory_mb: u64,
        pids: Option<&PidUsage>,
    ) -> Result<Self, Shortfall> {
        let mut l = ledger.lock().unwrap_or_else(|p| p.into_inner());
        l.check(cap, account, memory_mb, pids)?;
        l.add(account, memory_mb, START_PIDS);
        Ok(Self {
            ledger: ledger.clone(),
            account: account.to_owned(),
            memory_mb,
            starting_pids: START_PIDS,
        })
    }

    /// The environment runs: its processes are counted by its cgroup now.
    pub fn started(&mut self) {
        let pids = std::mem::take(&mut self.starting_pids);
        self.ledger
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .sub(&self.account, 0, pids);
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.ledger.lock().unwrap_or_else(|p| p.into_inner()).sub(
            &self.account,
            self.memory_mb,
            self.starting_pids,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAP: Capacity = Capacity {
        memory_mb: 1000,
        account_memory_mb: 600,
    };

    fn cand(account: &str, memory_mb: u64, pids: u64) -> Candidate {
        Candidate {
            account: account.into(),
            memory_mb,
            pids,
        }
    }

    #[test]
    fn reservations_count_until_dropped() {
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let a = Reservation::take(&ledger, "a", 512);
        assert!(ledger.lock().unwrap().check(&CAP, "a", 128, None).is_err());
        assert!(ledger.lock().unwrap().check(&CAP, "b", 128, None).is_ok());
        let b = Reservation::take(&ledger, "b", 400);
        let s = ledger
            .lock()
            .unwrap()
            .check(&CAP, "c", 128, None)
            .unwrap_err();
        assert_eq!(s.host_mb, 40);
        assert_eq!(s.account_mb, 0);
        assert_eq!(
            s.error,
            CapacityError::HostMemory {
                used_mb: 912,
                limit_mb: 1000
            }
        );
        drop(a);
        assert!(ledger.lock().unwrap().check(&CAP, "a", 512, None).is_ok());
        drop(b);
        assert_eq!(ledger.lock().unwrap().memory_mb(), 0);
        let r = Reservation::try_take(&ledger, &CAP, "a", 600, None).unwrap();
        let s = Reservation::try_take(&ledger, &CAP, "a", 1, None).unwrap_err();
        assert_eq!(s.account_mb, 1);
        drop(r);
        assert!(Reservation::try_take(&ledger, &CAP, "a", 601, None).is_err());
    }

    #[test]
    fn starting_environments_hold_processes_until_they_run() {
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let usage = PidUsage {
            platform_current: 0,
            platform_max: 100,
            account_current: 0,
            account_max: 70,
        };
        let mut r = Reservation::take(&ledger, "a", 1);
        let s = ledger
            .lock()
            .unwrap()
            .check(
                &CAP,
                "a",
                1,
                Some(&PidUsage {
                    account_current: 10,
                    ..usage
                }),
            )
            .unwrap_err();
        assert_eq!(s.account_pids, 32 + 10 + 32 - 70);
        assert!(matches!(
            s.error,
            CapacityError::AccountProcesses {
                used: 10,
                limit: 70
            }
        ));
        r.started();
        assert!(
            ledger
                .lock()
                .unwrap()
                .check(&CAP, "a", 1, Some(&usage))
                .is_ok()
        );
        let s = ledger
            .lock()
            .unwrap()
            .check(
                &CAP,
                "b",
                1,
                Some(&PidUsage {
                    platform_current: 90,
                    ..usage
                }),
            )
            .unwrap_err();
        assert_eq!(s.host_pids, 22);
        assert_eq!(s.account_pids, 0);
    }

    #[test]
    fn victims_are_the_oldest_that_cover_the_shortfall() {
        let s = Shortfall {
            account_mb: 200,
            host_mb: 0,
            account_pids: 0,
            host_pids: 0,
            error: CapacityError::AccountMemory {
                used_mb: 0,
                limit_mb: 0,
            },
        };
        let oldest_first = [
            cand("b", 1000, 5),
            cand("a", 128, 5),
            cand("a", 128, 5),
            cand("a", 128, 5),
        ];
        assert_eq!(
            s.victims("a", &oldest_first),
            Some(vec![1, 2]),
            "another account's environment does not make room in this account"
        );
        assert_eq!(
            s.victims("a", &oldest_first[..2]),
            None,
            "not enough: stop none"
        );
        let host = Shortfall {
            account_mb: 0,
            host_mb: 100,
            ..s.clone()
        };
        assert_eq!(host.victims("a", &oldest_first), Some(vec![0]));
        let pids = Shortfall {
            account_mb: 0,
            host_mb: 0,
            account_pids: 0,
            host_pids: 900,
            ..s
        };
        let forks = [cand("a", 128, 1), cand("b", 128, 1000), cand("a", 128, 3)];
        assert_eq!(
            pids.victims("a", &forks),
            Some(vec![0, 1]),
            "oldest first, whatever the account"
        );
    }
}
