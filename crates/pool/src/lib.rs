//! Execution environments: which exist, which are free, which to start, stop
//! and reuse.
//!
//! An environment serves one function version (and one configuration
//! revision), one invocation at a time. [`Pool::acquire`] hands out a warm,
//! idle environment or starts a new one (a cold start); dropping the [`Lease`]
//! returns it to the idle list, unless it died or its function changed. Idle
//! environments are stopped after the keep-alive. The pool never reads the
//! store: callers give it a resolved [`FunctionSpec`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use model::{FunctionName, Scope};
use runtimes::RuntimeInfo;
use sandbox::Launcher;

mod capacity;
mod contract;
mod env;
mod lifecycle;
mod output;
mod provisioned;

pub use capacity::{Capacity, CapacityError};
pub use env::{
    Completed, EnvEvent, EnvState, Environment, Frame, Outcome, StreamSink, exit_reason,
};
pub use lifecycle::FREEZE_AFTER;
pub use provisioned::ProvisionStatus;
use provisioned::{Provision, ProvisionKey};

/// A function version, resolved and ready to run.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionSpec {
    pub scope: Arc<Scope>,
    pub name: FunctionName,
    /// `$LATEST` or a published version number.
    pub version: String,
    /// The configuration revision; environments are reused only within one.
    pub revision: String,
    pub runtime: RuntimeInfo,
    pub handler: String,
    pub memory_mb: u32,
    pub timeout: Duration,
    pub ephemeral_mb: u32,
    /// The function's own environment variables.
    pub variables: Vec<(String, String)>,
    /// Unpacked code (mounted at `/var/task`).
    pub code_dir: PathBuf,
    pub code_digest: String,
    /// The function's layers merged in order (mounted at `/opt`).
    pub opt_dir: Option<PathBuf>,
    /// Digests of the layer packages in `opt_dir`.
    pub layer_digests: Vec<String>,
    pub log_group: Arc<str>,
    /// VPC subnets (`VpcConfig.SubnetIds`): their private networks are reachable.
    pub vpc_subnets: Vec<String>,
}

/// Which environments are interchangeable.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    scope: Arc<Scope>,
    name: FunctionName,
    version: String,
}

#[derive(Default)]
struct Slot {
    revision: String,
    idle: Vec<Arc<Environment>>,
    busy: usize,
    /// The parts of the most recent cold start.
    last_cold: Option<ColdStart>,
}

/// Where a cold start's time went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColdStart {
    /// Creating the sandbox and starting the runtime process.
    pub sandbox_setup: Duration,
    /// From the process start to the runtime's first `/next` (Init Duration).
    pub runtime_init: Duration,
    /// The first invocation itself (Duration).
    pub first_invoke: Duration,
}

/// How many environments one function version has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionStats {
    pub name: String,
    pub version: String,
    pub idle: usize,
    pub busy: usize,
    pub last_cold_start: Option<ColdStart>,
}

#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// How long an idle environment stays warm.
    pub keep_alive: Duration,
    /// The memory environments may be promised (processes are counted by
    /// the launcher's cgroups).
    pub capacity: Capacity,
    /// Bytes of output one invocation may log; more is dropped, and a
    /// platform line says how much.
    pub invocation_log_bytes: u64,
}

/// Bytes of output one invocation may log unless told otherwise.
pub const DEFAULT_INVOCATION_LOG_BYTES: u64 = 4 << 20;

impl PoolSettings {
    /// No memory budget, the default log limit.
    pub fn with_keep_alive(keep_alive: Duration) -> Self {
        Self {
            keep_alive,
            capacity: Capacity::UNBOUNDED,
            invocation_log_bytes: DEFAULT_INVOCATION_LOG_BYTES,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The runtime's program could not be executed (missing, not executable,
    /// wrong format): the function's fault, reported as `Runtime.InvalidEntrypoint`.
    #[error("fork/exec {program}: {reason}")]
    InvalidEntrypoint { program: String, reason: String },
    /// The function's VPC subnet is not mapped on this server.
    #[error("subnet {0} is not mapped to any network on this server")]
    UnknownSubnet(String),
    #[error("cannot start an execution environment: {0}")]
    Launch(#[from] sandbox::LaunchError),
    #[error("cannot set up an execution environment: {0}")]
    Setup(String),
    /// The host's or the account's budget is in use by busy environments.
    #[error(transparent)]
    Capacity(#[from] CapacityError),
}

struct Inner {
    launcher: Arc<dyn Launcher>,
    runtime_dir: PathBuf,
    sink: logs::LogSink,
    settings: PoolSettings,
    slots: Mutex<HashMap<Key, Slot>>,
    /// Code digests in use by any environment (for package collection).
    code_refs: Mutex<HashMap<String, usize>>,
    /// Provisioned concurrency: environments kept initialised per
    /// (function, qualifier).
    provisions: Mutex<HashMap<ProvisionKey, Provision>>,
    provision_wake: Arc<tokio::sync::Notify>,
    /// Memory promised to environments, and processes set aside for starts.
    ledger: Arc<Mutex<capacity::Ledger>>,
    /// Function versions whose last environment ended abnormally (crashed,
    /// timed out, ran out of memory, failed its init), and when: their next
    /// environments init at their CPU share, without the init burst.
    no_burst: Mutex<HashMap<Key, std::time::Instant>>,
}

/// The environments of every function.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

/// An environment lent to one invocation. Dropping it returns the environment.
pub struct Lease {
    env: Arc<Environment>,
    inner: Arc<Inner>,
    key: Key,
    cold: bool,
    healthy: bool,
}

impl Pool {
    pub fn new(
        launcher: Arc<dyn Launcher>,
        runtime_dir: PathBuf,
        sink: logs::LogSink,
        settings: PoolSettings,
    ) -> Self {
        let pool = Self {
            inner: Arc::new(Inner {
                launcher,
                runtime_dir,
                sink,
                settings,
                slots: Mutex::new(HashMap::new()),
                code_refs: Mutex::new(HashMap::new()),
                provisions: Mutex::new(HashMap::new()),
                provision_wake: Arc::new(tokio::sync::Notify::new()),
                ledger: Arc::default(),
                no_burst: Mutex::new(HashMap::new()),
            }),
        };
        pool.spawn_reaper();
        pool.spawn_provisioner();
        pool
    }

    /// Whether any environment still uses the code with this digest.
    pub fn code_in_use(&self, digest: &str) -> bool {
        self.inner
            .code_refs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(digest)
    }

    /// (idle, busy) environments of one function version.
    pub fn counts(&self, scope: &Scope, name: &FunctionName, version: &str) -> (usize, usize) {
        let slots = self.inner.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots
            .iter()
            .find(|(k, _)| &*k.scope == scope && &k.name == name && k.version == version)
            .map(|(_, s)| (s.idle.len(), s.busy))
            .unwrap_or((0, 0))
    }

    /// Environment counts of every function version in a scope.
    pub fn stats(&self, scope: &Scope) -> Vec<VersionStats> {
        let slots = self.inner.slots.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<VersionStats> = slots
            .iter()
            .filter(|(k, _)| &*k.scope == scope)
            .map(|(k, s)| VersionStats {
                name: k.name.to_string(),
                version: k.version.clone(),
                idle: s.idle.len(),
                busy: s.busy,
                last_cold_start: s.last_cold,
            })
            .collect();
        out.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
        out
    }

    /// Memory promised to environments now, MiB.
    pub fn memory_promised_mb(&self) -> u64 {
        self.inner
            .ledger
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .memory_mb()
    }

    /// Stops every environment (shutdown).
    pub async fn shutdown(&self) {
        let all: Vec<Arc<Environment>> = {
            let mut slots = self.inner.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.values_mut().flat_map(|s| s.idle.drain(..)).collect()
        };
        for env in all {
            env.stop().await;
        }
    }
}

#[cfg(test)]
mod tests;
