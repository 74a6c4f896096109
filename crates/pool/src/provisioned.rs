//! Provisioned concurrency: environments initialised ahead of demand for a
//! (function, qualifier), kept, preferred, and replaced when lost.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use model::{FunctionName, Scope};

use crate::lifecycle::spawn_stop;
use crate::{FunctionSpec, Key, Pool};

/// (scope, function, qualifier) of a provisioned concurrency configuration.
pub(crate) type ProvisionKey = (Arc<Scope>, FunctionName, String);

/// Environments kept initialised for one provisioned concurrency
/// configuration.
pub(crate) struct Provision {
    pub(crate) spec: Arc<FunctionSpec>,
    pub(crate) target: u32,
    /// Initialised environments alive now.
    pub(crate) ready: u32,
    /// Environments being started for it.
    pub(crate) starting: u32,
    /// Consecutive failed initialisations.
    pub(crate) failures: u32,
    pub(crate) failure: Option<String>,
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

impl Pool {
    /// Keeps provisioned environments at their targets: starts and
    /// initialises missing ones, stops surplus ones.
    pub(crate) fn spawn_provisioner(&self) {
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
        let result = match self.start(&spec, Some(&key.2)).await {
            Ok(env) => match env.initialize(budget).await {
                Ok(()) => Ok(env),
                Err(why) => {
                    self.inner
                        .no_burst
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(
                            Key {
                                scope: spec.scope.clone(),
                                name: spec.name.clone(),
                                version: spec.version.clone(),
                            },
                            Instant::now(),
                        );
                    // Counted as starting, not ready: stop it unmarked.
                    env.provisioned
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .take();
                    spawn_stop(&self.inner, env);
                    Err(why)
                }
            },
            Err(crate::PoolError::Capacity(e)) => {
                // Not the function's fault: try again on the next round
                // (once a second), without counting a failure.
                let mut provisions = self.provisions();
                if let Some(p) = provisions.get_mut(&key) {
                    p.starting = p.starting.saturating_sub(1);
                }
                tracing::debug!(function = %key.1, qualifier = %key.2, reason = %e,
                    "provisioned environment waits for capacity");
                return;
            }
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
}
