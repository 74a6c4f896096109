//! An environment's life in the pool: acquired warm or started cold, lent
//! to one invocation, returned, frozen when idle, reaped after the
//! keep-alive, retired when its version changes.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use model::{FunctionName, Scope};

use crate::capacity::{Candidate, Reservation, Shortfall};
use crate::contract::{go_errno_text, lambda_env};
use crate::{
    ColdStart, Completed, EnvEvent, EnvState, Environment, FunctionSpec, Inner, Key, Lease, Pool,
    PoolError, output,
};

/// How long a function version's environments init without the CPU burst
/// after one of them ended abnormally (crashed, timed out, ran out of
/// memory or failed its init): crashing cannot buy repeated bursts.
pub const NO_BURST_FOR: Duration = Duration::from_secs(600);

impl Lease {
    pub fn env(&self) -> &Arc<Environment> {
        &self.env
    }

    /// Whether this lease started the environment.
    pub fn is_cold(&self) -> bool {
        self.cold
    }

    /// Runs one invocation in the leased environment; a streamed answer is
    /// collected into a whole response.
    pub async fn invoke(&mut self, inv: runtime_api::Invocation, want_tail: bool) -> Completed {
        self.invoke_with(inv, want_tail, None).await
    }

    /// Runs one invocation whose answer, if the runtime streams it, goes to
    /// `sink` as it is written.
    pub async fn invoke_streaming(
        &mut self,
        inv: runtime_api::Invocation,
        want_tail: bool,
        sink: &crate::StreamSink,
    ) -> Completed {
        self.invoke_with(inv, want_tail, Some(sink)).await
    }

    async fn invoke_with(
        &mut self,
        inv: runtime_api::Invocation,
        want_tail: bool,
        sink: Option<&crate::StreamSink>,
    ) -> Completed {
        let done = self.env.run(inv, self.cold, want_tail, sink).await;
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
        if !self.healthy {
            inner
                .no_burst
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(self.key.clone(), Instant::now());
        }
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

pub(crate) fn spawn_stop(inner: &Arc<Inner>, env: Arc<Environment>) {
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

impl Pool {
    pub(crate) fn spawn_reaper(&self) {
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
        match self.start(spec, None).await {
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

    /// Starts an environment. Building a sandbox is system-call work of
    /// several milliseconds (more on a busy host): it runs on a blocking
    /// thread, so that a burst of cold starts never stalls the workers that
    /// serve warm invocations.
    pub(crate) async fn start(
        &self,
        spec: &Arc<FunctionSpec>,
        provisioned: Option<&str>,
    ) -> Result<Arc<Environment>, PoolError> {
        let mut reservation = self.admit(spec).await?;
        let key = Key {
            scope: spec.scope.clone(),
            name: spec.name.clone(),
            version: spec.version.clone(),
        };
        let init_cpu_burst = self
            .inner
            .no_burst
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .is_none_or(|t| t.elapsed() >= NO_BURST_FOR);
        let id = uuid::Uuid::new_v4().simple().to_string();
        let stream: Arc<str> = format!(
            "{}/[{}]{}",
            model::time_fmt::log_stream_date(model::time_fmt::now_ms()),
            spec.version,
            id
        )
        .into();
        let launcher = self.inner.launcher.clone();
        let runtime_dir = self.inner.runtime_dir.clone();
        let (blocking_spec, blocking_id, blocking_stream) =
            (spec.clone(), id.clone(), stream.clone());
        let provisioned_for = provisioned.is_some();
        let (launched, reader, setup, launched_at) = tokio::task::spawn_blocking(move || {
            launch(
                &*launcher,
                runtime_dir,
                &blocking_spec,
                blocking_id,
                &blocking_stream,
                provisioned_for,
                init_cpu_burst,
            )
        })
        .await
        .map_err(|e| PoolError::Setup(format!("launch task: {e}")))??;
        reservation.started();
        let process = launched.process;
        let reader = tokio::net::unix::pipe::Receiver::from_owned_fd(reader)
            .map_err(|e| PoolError::Setup(format!("output pipe: {e}")))?;
        let listener = tokio::net::TcpListener::from_std(launched.runtime_api)
            .map_err(|e| PoolError::Setup(format!("runtime API listener: {e}")))?;
        let channel = Arc::new(runtime_api::Channel::new());
        let peers = launched.peers;
        let api_task = tokio::spawn(runtime_api::serve(
            listener,
            channel.clone(),
            move |local, peer| peers.as_ref().is_none_or(|p| p.admits(local, peer)),
        ))
        .abort_handle();
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
            output: tokio::sync::Mutex::new(output::Output::new(
                reader,
                self.inner.settings.invocation_log_bytes,
            )),
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
            reservation: Mutex::new(Some(reservation)),
        }))
    }

    /// Reserves room for a new environment of `spec`: within the memory
    /// and process budgets, after stopping idle environments (oldest
    /// first) if that makes room; else a [`crate::CapacityError`].
    async fn admit(&self, spec: &FunctionSpec) -> Result<Reservation, PoolError> {
        let account = spec.scope.account.as_str();
        let memory_mb = u64::from(spec.memory_mb);
        let cap = self.inner.settings.capacity;
        let mut refusal = None;
        // Another start may take what an eviction freed: a few rounds.
        for _ in 0..4 {
            let pids = self.inner.launcher.pids(account);
            let short = match Reservation::try_take(
                &self.inner.ledger,
                &cap,
                account,
                memory_mb,
                pids.as_ref(),
            ) {
                Ok(r) => return Ok(r),
                Err(s) => s,
            };
            let Some(victims) = self.take_victims(account, &short) else {
                refusal = Some(short.error);
                break;
            };
            tracing::info!(
                function = %spec.name,
                account,
                stopping = victims.len(),
                reason = %short.error,
                "stopping idle environments to make room"
            );
            let stops: Vec<_> = victims
                .into_iter()
                .map(|env| {
                    let inner = self.inner.clone();
                    tokio::spawn(async move {
                        env.stop().await;
                        release_code(&inner, &env.spec);
                    })
                })
                .collect();
            for s in stops {
                let _ = s.await;
            }
            refusal = Some(short.error);
        }
        let error = refusal.unwrap_or(crate::CapacityError::HostMemory {
            used_mb: 0,
            limit_mb: cap.memory_mb,
        });
        tracing::warn!(function = %spec.name, account, reason = %error, "execution environment refused");
        Err(PoolError::Capacity(error))
    }

    /// Takes out of the idle lists the oldest idle environments (not
    /// provisioned ones) whose stopping covers `short`, or none if they
    /// cannot.
    fn take_victims(&self, account: &str, short: &Shortfall) -> Option<Vec<Arc<Environment>>> {
        let counts_pids = short.host_pids > 0 || short.account_pids > 0;
        let mut slots = self.inner.slots.lock().unwrap_or_else(|p| p.into_inner());
        let mut idle: Vec<(Instant, Arc<Environment>)> = slots
            .values()
            .flat_map(|s| s.idle.iter())
            .filter(|e| e.provisioned_for().is_none())
            .map(|e| {
                let t = e
                    .last_used
                    .lock()
                    .map(|t| *t)
                    .unwrap_or_else(|_| Instant::now());
                (t, e.clone())
            })
            .collect();
        idle.sort_by_key(|(t, _)| *t);
        let candidates: Vec<Candidate> = idle
            .iter()
            .map(|(_, e)| Candidate {
                account: e.spec.scope.account.as_str().to_owned(),
                memory_mb: u64::from(e.spec.memory_mb),
                pids: if counts_pids {
                    e.process.pids_current()
                } else {
                    0
                },
            })
            .collect();
        let chosen = short.victims(account, &candidates)?;
        let victims: Vec<Arc<Environment>> =
            chosen.into_iter().map(|i| idle[i].1.clone()).collect();
        for slot in slots.values_mut() {
            slot.idle
                .retain(|e| !victims.iter().any(|v| Arc::ptr_eq(v, e)));
        }
        Some(victims)
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
}

/// How long an environment stays idle before it is frozen.
pub const FREEZE_AFTER: Duration = Duration::from_millis(250);

/// Stops environments idle for longer than the keep-alive (provisioned ones
/// excepted) and idle ones that died, and freezes those idle for a moment,
/// so that an idle environment costs no CPU.
pub(crate) fn reap(inner: &Arc<Inner>) {
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
                // An environment that died while idle (killed from outside)
                // goes now, so that a provisioned one is replaced at once.
                if !env.process.is_alive() || (idle_for >= keep && env.provisioned_for().is_none())
                {
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
    inner
        .no_burst
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .retain(|_, t| t.elapsed() < NO_BURST_FOR);
    for env in expired {
        tracing::debug!(env = %env.id, "keep-alive expired");
        spawn_stop(inner, env);
    }
}

/// Creates the environment's sandbox and starts its runtime (blocking): the
/// launched process, the read end of its output, how long setup took and
/// when the runtime started.
fn launch(
    launcher: &dyn sandbox::Launcher,
    runtime_dir: std::path::PathBuf,
    spec: &FunctionSpec,
    id: String,
    stream: &str,
    provisioned: bool,
    init_cpu_burst: bool,
) -> Result<(sandbox::Launched, std::os::fd::OwnedFd, Duration, Instant), PoolError> {
    let (reader, writer) =
        std::io::pipe().map_err(|e| PoolError::Setup(format!("output pipe: {e}")))?;
    let has_task_bootstrap = spec.code_dir.join("bootstrap").is_file();
    let command = runtimes::launch_command(&spec.runtime, has_task_bootstrap);
    let writer_fd = std::os::fd::OwnedFd::from(writer);
    let launch_spec = sandbox::LaunchSpec {
        env_id: id,
        account: spec.scope.account.as_str().to_owned(),
        init_cpu_burst,
        program: command.program,
        argv: command.argv,
        env: lambda_env(
            spec,
            command.lang_dir.as_deref(),
            stream,
            &command.env,
            provisioned,
        ),
        code_dir: spec.code_dir.clone(),
        opt_dir: spec.opt_dir.clone(),
        runtime_dir: Some(runtime_dir),
        lang_dir: command.lang_dir,
        tmp_mb: spec.ephemeral_mb,
        memory_mb: spec.memory_mb,
        vpc_subnets: spec.vpc_subnets.clone(),
        output: std::os::fd::AsRawFd::as_raw_fd(&writer_fd),
    };
    let setup_started = Instant::now();
    let launched = launcher.launch(&launch_spec).map_err(|e| match e {
        sandbox::LaunchError::Spawn(sandbox::spawn::SpawnError::Exec { program, error }) => {
            PoolError::InvalidEntrypoint {
                program,
                reason: go_errno_text(&error),
            }
        }
        sandbox::LaunchError::UnknownSubnet(id) => PoolError::UnknownSubnet(id),
        e => PoolError::Launch(e),
    })?;
    let launched_at = Instant::now();
    // The environment holds its own copy; ours would keep the pipe open.
    drop(writer_fd);
    Ok((
        launched,
        std::os::fd::OwnedFd::from(reader),
        launched_at - setup_started,
        launched_at,
    ))
}
