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
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use model::{FunctionName, Scope};
use runtimes::RuntimeInfo;
use sandbox::Launcher;

mod env;
mod output;

pub use env::{Completed, EnvEvent, EnvState, Environment, Outcome, exit_reason};

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
}

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The runtime's program could not be executed (missing, not executable,
    /// wrong format): the function's fault, reported as `Runtime.InvalidEntrypoint`.
    #[error("fork/exec {program}: {reason}")]
    InvalidEntrypoint { program: String, reason: String },
    #[error("cannot start an execution environment: {0}")]
    Launch(#[from] sandbox::LaunchError),
    #[error("cannot set up an execution environment: {0}")]
    Setup(String),
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
}

/// (scope, function, qualifier) of a provisioned concurrency configuration.
type ProvisionKey = (Arc<Scope>, FunctionName, String);

/// Environments kept initialised for one provisioned concurrency
/// configuration.
struct Provision {
    spec: Arc<FunctionSpec>,
    target: u32,
    /// Initialised environments alive now.
    ready: u32,
    /// Environments being started for it.
    starting: u32,
    /// Consecutive failed initialisations.
    failures: u32,
    failure: Option<String>,
}

/// Failed initialisations after which a configuration is `FAILED`.
const PROVISION_ATTEMPTS: u32 = 3;

/// How a provisioned concurrency configuration is doing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProvisionStatus {
    pub allocated: u32,
    pub available: u32,
    pub failure: Option<String>,
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

impl Lease {
    pub fn env(&self) -> &Arc<Environment> {
        &self.env
    }

    /// Whether this lease started the environment.
    pub fn is_cold(&self) -> bool {
        self.cold
    }

    /// Runs one invocation in the leased environment.
    pub async fn invoke(&mut self, inv: runtime_api::Invocation, want_tail: bool) -> Completed {
        let done = self.env.run(inv, self.cold, want_tail).await;
        self.healthy = done.env_survives();
        if self.cold
            && let Some(init) = done.init_duration
        {
            let mut slots = self.inner.slots.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(slot) = slots.get_mut(&self.key) {
                slot.last_cold = Some(ColdStart {
                    sandbox_setup: self.env.setup,
                    runtime_init: init,
                    first_invoke: done.duration,
                });
            }
        }
        self.cold = false;
        done
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let inner = self.inner.clone();
        let env = self.env.clone();
        let mut slots = inner.slots.lock().unwrap_or_else(|p| p.into_inner());
        let slot = slots.entry(self.key.clone()).or_default();
        slot.busy = slot.busy.saturating_sub(1);
        let current = slot.revision == env.spec.revision;
        if let Some(q) = env.provisioned_for() {
            let provisions = inner.provisions.lock().unwrap_or_else(|p| p.into_inner());
            let still = provisions
                .get(&(env.spec.scope.clone(), env.spec.name.clone(), q))
                .is_some_and(|p| {
                    p.spec.version == env.spec.version && p.spec.revision == env.spec.revision
                });
            if !still {
                env.provisioned
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take();
            }
        }
        if self.healthy && current && env.transition(EnvEvent::Released) {
            if let Ok(mut t) = env.last_used.lock() {
                *t = Instant::now();
            }
            slot.idle.push(env);
            return;
        }
        drop(slots);
        spawn_stop(&inner, env);
    }
}

fn spawn_stop(inner: &Arc<Inner>, env: Arc<Environment>) {
    // A provisioned environment that goes is replaced.
    let mark = env
        .provisioned
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    if let Some(q) = mark {
        let mut provisions = inner.provisions.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = provisions.get_mut(&(env.spec.scope.clone(), env.spec.name.clone(), q))
            && p.spec.version == env.spec.version
        {
            p.ready = p.ready.saturating_sub(1);
        }
        drop(provisions);
        inner.provision_wake.notify_one();
    }
    let inner = inner.clone();
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        handle.spawn(async move {
            env.stop().await;
            release_code(&inner, &env.spec);
        });
    }
}

/// The packages an environment of `spec` uses: its code and its layers.
fn packages(spec: &FunctionSpec) -> impl Iterator<Item = &String> {
    std::iter::once(&spec.code_digest).chain(spec.layer_digests.iter())
}

fn release_code(inner: &Inner, spec: &FunctionSpec) {
    let mut refs = inner.code_refs.lock().unwrap_or_else(|p| p.into_inner());
    for digest in packages(spec) {
        if let Some(n) = refs.get_mut(digest) {
            *n -= 1;
            if *n == 0 {
                refs.remove(digest);
            }
        }
    }
}

/// An errno as Go's `syscall.Errno` prints it (Lambda's messages use Go's).
fn go_errno_text(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(2) => "no such file or directory".into(),
        Some(13) => "permission denied".into(),
        Some(8) => "exec format error".into(),
        Some(20) => "not a directory".into(),
        _ => e.to_string().to_lowercase(),
    }
}

/// Lambda's `LD_LIBRARY_PATH`, without the directories this environment does
/// not have: the dynamic loader probes a dozen subdirectories of every entry
/// for every library, so absent entries cost a cold start time and nothing else.
fn library_path(spec: &FunctionSpec, lang_dir: Option<&std::path::Path>) -> String {
    let exists = |inside: &str| -> bool {
        match inside {
            "/var/lang/lib" => lang_dir.is_some_and(|d| d.join("lib").is_dir()),
            "/var/task" => true,
            "/var/task/lib" => spec.code_dir.join("lib").is_dir(),
            "/opt/lib" => spec
                .opt_dir
                .as_ref()
                .is_some_and(|d| d.join("lib").is_dir()),
            "/var/runtime" | "/var/runtime/lib" => false,
            host => std::path::Path::new(host).is_dir(),
        }
    };
    [
        "/var/lang/lib",
        "/lib64",
        "/usr/lib64",
        "/var/runtime",
        "/var/runtime/lib",
        "/var/task",
        "/var/task/lib",
        "/opt/lib",
    ]
    .into_iter()
    .filter(|d| exists(d))
    .collect::<Vec<_>>()
    .join(":")
}

/// Lambda's environment variables for one environment.
fn lambda_env(
    spec: &FunctionSpec,
    lang_dir: Option<&std::path::Path>,
    stream: &str,
    extra: &[(String, String)],
    provisioned: bool,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = spec.variables.clone();
    let mut set = |k: &str, v: String| env.push((k.to_owned(), v));
    set("_HANDLER", spec.handler.clone());
    set("LAMBDA_TASK_ROOT", "/var/task".into());
    set("LAMBDA_RUNTIME_DIR", "/var/runtime".into());
    set("AWS_LAMBDA_FUNCTION_NAME", spec.name.to_string());
    set("AWS_LAMBDA_FUNCTION_VERSION", spec.version.clone());
    set(
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        spec.memory_mb.to_string(),
    );
    set("AWS_LAMBDA_LOG_GROUP_NAME", spec.log_group.to_string());
    set("AWS_LAMBDA_LOG_STREAM_NAME", stream.to_owned());
    set(
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        if provisioned {
            "provisioned-concurrency"
        } else {
            "on-demand"
        }
        .into(),
    );
    set("AWS_REGION", spec.scope.region.to_string());
    set("AWS_DEFAULT_REGION", spec.scope.region.to_string());
    if let Some(e) = spec.runtime.execution_env() {
        set("AWS_EXECUTION_ENV", e);
    }
    set("TZ", ":UTC".into());
    set("LANG", "en_US.UTF-8".into());
    set(
        "PATH",
        "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin".into(),
    );
    set("LD_LIBRARY_PATH", library_path(spec, lang_dir));
    for (k, v) in extra {
        set(k, v.clone());
    }
    env
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
            }),
        };
        pool.spawn_reaper();
        pool.spawn_provisioner();
        pool
    }

    /// Keeps provisioned environments at their targets: starts and
    /// initialises missing ones, stops surplus ones.
    fn spawn_provisioner(&self) {
        let weak = Arc::downgrade(&self.inner);
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                loop {
                    let Some(inner) = weak.upgrade() else { return };
                    let wake = inner.provision_wake.clone();
                    Pool { inner }.provision_step();
                    // A wake-up sent meanwhile is kept as a permit.
                    tokio::select! {
                        _ = wake.notified() => {}
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            });
        }
    }

    fn provisions(&self) -> std::sync::MutexGuard<'_, HashMap<ProvisionKey, Provision>> {
        self.inner
            .provisions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn provision_step(&self) {
        let mut to_start = Vec::new();
        let mut surplus: Vec<(ProvisionKey, u32)> = Vec::new();
        {
            let mut provisions = self.provisions();
            for (key, p) in provisions.iter_mut() {
                if p.failure.is_some() {
                    continue;
                }
                let have = p.ready + p.starting;
                if have < p.target {
                    for _ in have..p.target {
                        p.starting += 1;
                        to_start.push((key.clone(), p.spec.clone()));
                    }
                } else if p.ready > p.target {
                    surplus.push((key.clone(), p.ready - p.target));
                }
            }
        }
        for (key, n) in surplus {
            self.stop_provisioned(&key, n as usize);
        }
        for (key, spec) in to_start {
            let pool = self.clone();
            tokio::spawn(async move { pool.provision_one(key, spec).await });
        }
    }

    /// Starts and initialises one environment for a configuration.
    async fn provision_one(&self, key: ProvisionKey, spec: Arc<FunctionSpec>) {
        let budget = Duration::from_secs(u64::from(model::limits::INIT_TIMEOUT_S));
        let result = match self.start(&spec, Some(&key.2)) {
            Ok(env) => match env.initialize(budget).await {
                Ok(()) => Ok(env),
                Err(why) => {
                    // Counted as starting, not ready: stop it unmarked.
                    env.provisioned
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .take();
                    spawn_stop(&self.inner, env);
                    Err(why)
                }
            },
            Err(e) => Err(e.to_string()),
        };
        let env = {
            let mut provisions = self.provisions();
            let current = provisions
                .get_mut(&key)
                .filter(|p| p.spec.version == spec.version && p.spec.revision == spec.revision);
            match (current, result) {
                (Some(p), Ok(env)) => {
                    p.starting = p.starting.saturating_sub(1);
                    p.ready += 1;
                    p.failures = 0;
                    Some(env)
                }
                (Some(p), Err(why)) => {
                    p.starting = p.starting.saturating_sub(1);
                    p.failures += 1;
                    tracing::warn!(function = %key.1, qualifier = %key.2, error = %why,
                        "provisioned environment failed to initialise");
                    if p.failures >= PROVISION_ATTEMPTS {
                        p.failure = Some("FUNCTION_ERROR_INIT_FAILURE".into());
                    }
                    None
                }
                // The configuration changed or went meanwhile: not needed.
                (None, Ok(env)) => {
                    env.provisioned
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .take();
                    spawn_stop(&self.inner, env);
                    None
                }
                (None, Err(_)) => None,
            }
        };
        if let Some(env) = env {
            let k = Key {
                scope: spec.scope.clone(),
                name: spec.name.clone(),
                version: spec.version.clone(),
            };
            let mut slots = self.inner.slots.lock().unwrap_or_else(|p| p.into_inner());
            let slot = slots.entry(k).or_default();
            if slot.revision.is_empty() {
                slot.revision = spec.revision.clone();
            }
            if slot.revision == spec.revision {
                if let Ok(mut t) = env.last_used.lock() {
                    *t = Instant::now();
                }
                slot.idle.push(env);
            } else {
                // The version was retired meanwhile.
                drop(slots);
                spawn_stop(&self.inner, env);
            }
        }
        self.inner.provision_wake.notify_one();
    }

    /// Stops up to `n` idle environments of a configuration.
    fn stop_provisioned(&self, key: &ProvisionKey, n: usize) {
        let mut stopping = Vec::new();
        {
            let mut slots = self.inner.slots.lock().unwrap_or_else(|p| p.into_inner());
            for (k, slot) in slots.iter_mut() {
                if k.scope != key.0 || k.name != key.1 {
                    continue;
                }
                while stopping.len() < n {
                    let Some(i) = slot
                        .idle
                        .iter()
                        .position(|e| e.provisioned_for().as_deref() == Some(key.2.as_str()))
                    else {
                        break;
                    };
                    stopping.push(slot.idle.remove(i));
                }
            }
        }
        for env in stopping {
            spawn_stop(&self.inner, env);
        }
    }

    /// Sets a provisioned concurrency configuration: keep `target`
    /// environments of `spec` initialised for `qualifier`.
    pub fn set_provisioned(
        &self,
        scope: &Arc<Scope>,
        name: &FunctionName,
        qualifier: &str,
        spec: Arc<FunctionSpec>,
        target: u32,
    ) {
        let key = (scope.clone(), name.clone(), qualifier.to_owned());
        let replaced = {
            let mut provisions = self.provisions();
            match provisions.get_mut(&key) {
                Some(p) if p.spec.version == spec.version && p.spec.revision == spec.revision => {
                    if p.target != target {
                        p.target = target;
                        p.failures = 0;
                        p.failure = None;
                    }
                    false
                }
                _ => {
                    let replaced = provisions.contains_key(&key);
                    provisions.insert(
                        key.clone(),
                        Provision {
                            spec,
                            target,
                            ready: 0,
                            starting: 0,
                            failures: 0,
                            failure: None,
                        },
                    );
                    replaced
                }
            }
        };
        if replaced {
            self.release_provisioned(&key);
        }
        self.inner.provision_wake.notify_one();
    }

    /// Drops the function's configurations other than `keep`; their
    /// environments become ordinary ones (reaped after the keep-alive).
    pub fn keep_provisioned(&self, scope: &Scope, name: &FunctionName, keep: &[String]) {
        let gone: Vec<ProvisionKey> = {
            let mut provisions = self.provisions();
            let gone: Vec<ProvisionKey> = provisions
                .keys()
                .filter(|(s, n, q)| &**s == scope && n == name && !keep.contains(q))
                .cloned()
                .collect();
            for k in &gone {
                provisions.remove(k);
            }
            gone
        };
        for k in gone {
            self.release_provisioned(&k);
        }
    }

    /// Clears the provisioned mark of a configuration's idle environments.
    fn release_provisioned(&self, key: &ProvisionKey) {
        let slots = self.inner.slots.lock().unwrap_or_else(|p| p.into_inner());
        for (k, slot) in slots.iter() {
            if k.scope != key.0 || k.name != key.1 {
                continue;
            }
            for env in &slot.idle {
                let mut mark = env.provisioned.lock().unwrap_or_else(|p| p.into_inner());
                if mark.as_deref() == Some(key.2.as_str()) {
                    *mark = None;
                    if let Ok(mut t) = env.last_used.lock() {
                        *t = Instant::now();
                    }
                }
            }
        }
    }

    /// How a provisioned concurrency configuration is doing.
    pub fn provisioned_status(
        &self,
        scope: &Scope,
        name: &FunctionName,
        qualifier: &str,
    ) -> ProvisionStatus {
        let (allocated, failure) = {
            let provisions = self.provisions();
            match provisions
                .iter()
                .find(|((s, n, q), _)| &**s == scope && n == name && q == qualifier)
            {
                Some((_, p)) => (p.ready.min(p.target), p.failure.clone()),
                None => return ProvisionStatus::default(),
            }
        };
        let slots = self.inner.slots.lock().unwrap_or_else(|p| p.into_inner());
        let available = slots
            .iter()
            .filter(|(k, _)| &*k.scope == scope && &k.name == name)
            .flat_map(|(_, s)| s.idle.iter())
            .filter(|e| e.provisioned_for().as_deref() == Some(qualifier))
            .count() as u32;
        ProvisionStatus {
            allocated,
            available: available.min(allocated),
            failure,
        }
    }

    fn spawn_reaper(&self) {
        let weak = Arc::downgrade(&self.inner);
        let period = (self.inner.settings.keep_alive / 4)
            .min(FREEZE_AFTER / 2)
            .max(Duration::from_millis(20));
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let mut tick = tokio::time::interval(period);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let Some(inner) = weak.upgrade() else { return };
                    reap(&inner);
                }
            });
        }
    }

    /// A warm environment for `spec`, or a new one (cold start).
    pub async fn acquire(&self, spec: &Arc<FunctionSpec>) -> Result<Lease, PoolError> {
        let key = Key {
            scope: spec.scope.clone(),
            name: spec.name.clone(),
            version: spec.version.clone(),
        };
        let mut retired = Vec::new();
        let found = {
            let mut slots = self.inner.slots.lock().unwrap_or_else(|p| p.into_inner());
            let slot = slots.entry(key.clone()).or_default();
            if slot.revision != spec.revision {
                slot.revision = spec.revision.clone();
                retired.append(&mut slot.idle);
            }
            let mut found = None;
            // Provisioned environments first (they are initialised and paid
            // for); then the most recently used: its caches are the warmest.
            while let Some(i) = slot
                .idle
                .iter()
                .rposition(|e| e.provisioned_for().is_some())
            {
                let env = slot.idle.remove(i);
                if env.process.is_alive() && env.transition(EnvEvent::Acquired) {
                    found = Some(env);
                    break;
                }
                retired.push(env);
            }
            while found.is_none()
                && let Some(env) = slot.idle.pop()
            {
                if env.process.is_alive() && env.transition(EnvEvent::Acquired) {
                    found = Some(env);
                    break;
                }
                retired.push(env);
            }
            slot.busy += 1;
            found
        };
        for env in retired {
            spawn_stop(&self.inner, env);
        }
        if let Some(env) = found {
            env.thaw();
            return Ok(Lease {
                env,
                inner: self.inner.clone(),
                key,
                cold: false,
                healthy: true,
            });
        }
        match self.start(spec, None) {
            Ok(env) => {
                env.transition(EnvEvent::Acquired);
                Ok(Lease {
                    env,
                    inner: self.inner.clone(),
                    key,
                    cold: true,
                    healthy: true,
                })
            }
            Err(e) => {
                let mut slots = self.inner.slots.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(slot) = slots.get_mut(&key) {
                    slot.busy = slot.busy.saturating_sub(1);
                }
                Err(e)
            }
        }
    }

    fn start(
        &self,
        spec: &Arc<FunctionSpec>,
        provisioned: Option<&str>,
    ) -> Result<Arc<Environment>, PoolError> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let stream: Arc<str> = format!(
            "{}/[{}]{}",
            model::time_fmt::log_stream_date(model::time_fmt::now_ms()),
            spec.version,
            id
        )
        .into();
        let (reader, writer) =
            std::io::pipe().map_err(|e| PoolError::Setup(format!("output pipe: {e}")))?;
        let reader =
            tokio::net::unix::pipe::Receiver::from_owned_fd(std::os::fd::OwnedFd::from(reader))
                .map_err(|e| PoolError::Setup(format!("output pipe: {e}")))?;
        let has_task_bootstrap = spec.code_dir.join("bootstrap").is_file();
        let launch = runtimes::launch_command(&spec.runtime, has_task_bootstrap);
        let writer_fd = std::os::fd::OwnedFd::from(writer);
        let launch_spec = sandbox::LaunchSpec {
            env_id: id.clone(),
            program: launch.program,
            argv: launch.argv,
            env: lambda_env(
                spec,
                launch.lang_dir.as_deref(),
                &stream,
                &launch.env,
                provisioned.is_some(),
            ),
            code_dir: spec.code_dir.clone(),
            opt_dir: spec.opt_dir.clone(),
            runtime_dir: Some(self.inner.runtime_dir.clone()),
            lang_dir: launch.lang_dir,
            tmp_mb: spec.ephemeral_mb,
            memory_mb: spec.memory_mb,
            output: std::os::fd::AsRawFd::as_raw_fd(&writer_fd),
        };
        let setup_started = Instant::now();
        let launched = self
            .inner
            .launcher
            .launch(&launch_spec)
            .map_err(|e| match e {
                sandbox::LaunchError::Spawn(sandbox::spawn::SpawnError::Exec {
                    program,
                    error,
                }) => PoolError::InvalidEntrypoint {
                    program,
                    reason: go_errno_text(&error),
                },
                e => PoolError::Launch(e),
            })?;
        drop(writer_fd);
        let process = launched.process;
        let launched_at = Instant::now();
        let setup = launched_at - setup_started;
        let listener = tokio::net::TcpListener::from_std(launched.runtime_api)
            .map_err(|e| PoolError::Setup(format!("runtime API listener: {e}")))?;
        let channel = Arc::new(runtime_api::Channel::new());
        let api_task = tokio::spawn(runtime_api::serve(listener, channel.clone())).abort_handle();
        {
            let mut refs = self
                .inner
                .code_refs
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            for digest in packages(spec) {
                *refs.entry(digest.clone()).or_default() += 1;
            }
        }
        tracing::debug!(function = %spec.name, env = %id, "started execution environment");
        Ok(Arc::new(Environment {
            id,
            spec: spec.clone(),
            channel,
            process,
            api_task,
            output: tokio::sync::Mutex::new(output::Output::new(reader)),
            log: output::LogTarget {
                sink: self.inner.sink.clone(),
                scope: spec.scope.clone(),
                group: spec.log_group.clone(),
                stream,
            },
            launched_at,
            setup,
            state: Mutex::new(EnvState::Starting),
            last_used: Mutex::new(Instant::now()),
            invocations: AtomicU64::new(0),
            frozen: std::sync::atomic::AtomicBool::new(false),
            provisioned: Mutex::new(provisioned.map(str::to_owned)),
        }))
    }

    /// Stops the idle environments of every version of a function; busy ones
    /// stop when their invocation ends (their revision no longer matches).
    pub fn retire(&self, scope: &Scope, name: &FunctionName) {
        let mut stopping = Vec::new();
        {
            let mut slots = self.inner.slots.lock().unwrap_or_else(|p| p.into_inner());
            for (key, slot) in slots.iter_mut() {
                if &*key.scope == scope && &key.name == name {
                    slot.revision = String::from("(retired)");
                    stopping.append(&mut slot.idle);
                }
            }
        }
        for env in stopping {
            spawn_stop(&self.inner, env);
        }
    }

    /// Keeps the environments of versions still at `live` revisions (version
    /// → revision) and stops the idle rest; busy ones stop when their
    /// invocation ends. An empty `live` retires every version.
    pub fn retain(&self, scope: &Scope, name: &FunctionName, live: &HashMap<String, String>) {
        let mut stopping = Vec::new();
        {
            let mut slots = self.inner.slots.lock().unwrap_or_else(|p| p.into_inner());
            for (key, slot) in slots.iter_mut() {
                if &*key.scope != scope || &key.name != name {
                    continue;
                }
                if live.get(&key.version) != Some(&slot.revision) {
                    slot.revision = String::from("(retired)");
                    stopping.append(&mut slot.idle);
                }
            }
        }
        for env in stopping {
            spawn_stop(&self.inner, env);
        }
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

/// How long an environment stays idle before it is frozen.
pub const FREEZE_AFTER: Duration = Duration::from_millis(250);

/// Stops environments idle for longer than the keep-alive, and freezes those
/// idle for a moment, so that an idle environment costs no CPU.
fn reap(inner: &Arc<Inner>) {
    let keep = inner.settings.keep_alive;
    let mut expired = Vec::new();
    {
        let mut slots = inner.slots.lock().unwrap_or_else(|p| p.into_inner());
        for slot in slots.values_mut() {
            slot.idle.retain(|env| {
                let idle_for = env
                    .last_used
                    .lock()
                    .map(|t| t.elapsed())
                    .unwrap_or_default();
                if idle_for >= keep && env.provisioned_for().is_none() {
                    expired.push(env.clone());
                    false
                } else {
                    // Under the slots lock, so no acquire can take it meanwhile.
                    if idle_for >= FREEZE_AFTER && !env.frozen() {
                        env.freeze();
                    }
                    true
                }
            });
        }
        slots.retain(|_, s| !s.idle.is_empty() || s.busy > 0);
    }
    for env in expired {
        tracing::debug!(env = %env.id, "keep-alive expired");
        spawn_stop(inner, env);
    }
}

#[cfg(test)]
mod tests;
