//! From a reference to the function version that will run.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use model::{
    EventInvokeConfig, FunctionArn, FunctionConfig, FunctionName, FunctionNotFound, FunctionRecord,
    Qualifier, Scope,
};
use pool::FunctionSpec;

use crate::{InvokeError, Invoker};

/// A function version resolved for one invocation or one asynchronous
/// attempt: everything that decides how it runs and what happens after.
#[derive(Clone)]
pub struct Resolved {
    pub scope: Arc<Scope>,
    pub name: FunctionName,
    /// The qualifier as invoked (`None`, a version or an alias).
    pub qualifier: Option<Qualifier>,
    /// The version that runs (an alias's weighted pick).
    pub spec: Arc<FunctionSpec>,
    record: Arc<Cached>,
    /// The version's dead-letter target (version-locked, as on Lambda).
    dead_letter: Option<String>,
}

impl Resolved {
    /// The version that runs (`$LATEST`, `3`).
    pub fn executed_version(&self) -> &str {
        &self.spec.version
    }

    /// The ARN the function was invoked by (qualified as invoked).
    pub fn invoked_arn(&self) -> FunctionArn {
        let mut arn = self.scope.function_arn(&self.name);
        arn.qualifier = self.qualifier.clone();
        arn
    }

    /// The ARN asynchronous records name: always qualified
    /// (`...:function:f:$LATEST` for an unqualified call).
    pub fn record_arn(&self) -> FunctionArn {
        let mut arn = self.scope.function_arn(&self.name);
        arn.qualifier = Some(self.qualifier.clone().unwrap_or(Qualifier::Latest));
        arn
    }

    /// Asynchronous settings for the qualifier as invoked (retries, event
    /// age, destinations).
    pub fn event_invoke_config(&self) -> EventInvokeConfig {
        let key = self
            .qualifier
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_else(|| Qualifier::LATEST.to_owned());
        self.record
            .record
            .event_invoke_configs
            .get(&key)
            .cloned()
            .unwrap_or_default()
    }

    /// The dead-letter target of the version that runs.
    pub fn dead_letter_target(&self) -> Option<&str> {
        self.dead_letter.as_deref()
    }

    /// The function's record as the invocation resolved it (its policies,
    /// URLs and settings).
    pub fn record(&self) -> &model::FunctionRecord {
        &self.record.record
    }

    /// The function's reserved concurrency, if it has one.
    pub fn reserved_concurrency(&self) -> Option<u32> {
        self.record.record.reserved_concurrency
    }
}

/// A function record with the specs of its versions, as cached.
pub(crate) struct Cached {
    pub(crate) record: FunctionRecord,
    /// Specs per version (`$LATEST`, `1`, ...), built on first use.
    specs: Mutex<HashMap<String, Arc<FunctionSpec>>>,
}

type CacheKey = (Arc<Scope>, FunctionName);

/// Function records by scope and name, and one shared `Arc<Scope>` per scope
/// so that keys compare cheaply.
#[derive(Default)]
pub(crate) struct Cache {
    records: Mutex<HashMap<CacheKey, Arc<Cached>>>,
    scopes: Mutex<HashMap<Scope, Arc<Scope>>>,
}

impl Cache {
    pub(crate) fn intern(&self, scope: &Scope) -> Arc<Scope> {
        let mut s = self.scopes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(a) = s.get(scope) {
            return a.clone();
        }
        let a = Arc::new(scope.clone());
        s.insert(scope.clone(), a.clone());
        a
    }

    fn get(&self, key: &CacheKey) -> Option<Arc<Cached>> {
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    /// Drops a function's record; returns the interned scope.
    pub(crate) fn forget(&self, scope: &Scope, name: &FunctionName) -> Arc<Scope> {
        let scope = self.intern(scope);
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(scope.clone(), name.clone()));
        scope
    }
}

/// The version an alias sends one invocation to: an additional version with
/// its weight's probability, else the alias's own version.
fn route(alias: &model::Alias) -> &str {
    let mut pick = fastrand::f64();
    for (version, w) in &alias.additional_version_weights {
        if pick < w.0 {
            return version;
        }
        pick -= w.0;
    }
    &alias.function_version
}

impl Invoker {
    /// Resolves a `{FunctionName}` parameter and an optional `Qualifier` to
    /// the function version that will run (an alias picks one by weight).
    pub async fn resolve(
        &self,
        scope: &Scope,
        function: &str,
        qualifier: Option<&str>,
    ) -> Result<Resolved, InvokeError> {
        let r = model::resolve_ref(scope, function).map_err(|e| match e {
            // Invoke reports unknown unqualified names with `$LATEST`, as AWS does.
            model::RefError::NotFound(nf) if qualifier.is_none() => {
                InvokeError::NotFound(nf.or_qualifier(Qualifier::LATEST))
            }
            e => e.into(),
        })?;
        let qualifier = model::resolve::qualifier_of(&r, qualifier)?;
        let scope = self.cache.intern(scope);
        let cached = self.cached(&scope, &r.name, qualifier.as_ref()).await?;
        let not_found = || FunctionNotFound::new(&scope, &r.name, qualifier.as_ref());
        let cfg = match &qualifier {
            Some(Qualifier::Alias(a)) => {
                let alias = cached.record.aliases.get(a).ok_or_else(not_found)?;
                let q = Qualifier::parse(route(alias)).map_err(|_| not_found())?;
                cached.record.version(Some(&q)).ok_or_else(not_found)?
            }
            q => cached.record.version(q.as_ref()).ok_or_else(not_found)?,
        };
        let spec = self.spec(&scope, &cached, cfg).await?;
        let dead_letter = cfg.dead_letter_target.clone();
        Ok(Resolved {
            scope,
            name: r.name,
            qualifier,
            spec,
            record: cached,
            dead_letter,
        })
    }

    /// The function's cached record, loading it on a miss.
    async fn cached(
        &self,
        scope: &Arc<Scope>,
        name: &FunctionName,
        qualifier: Option<&Qualifier>,
    ) -> Result<Arc<Cached>, InvokeError> {
        let key = (scope.clone(), name.clone());
        if let Some(c) = self.cache.get(&key) {
            return Ok(c);
        }
        let generation = self.generation();
        let record = self
            .store
            .get_function(scope, name)
            .await?
            .ok_or_else(|| {
                FunctionNotFound::new(scope, name, Some(qualifier.unwrap_or(&Qualifier::Latest)))
            })?
            .value;
        let cached = Arc::new(Cached {
            record,
            specs: Mutex::new(HashMap::new()),
        });
        let mut records = self.cache.records.lock().unwrap_or_else(|p| p.into_inner());
        // A change since the read would make this copy stale: use it for this
        // call only.
        if self.generation() == generation {
            records.insert(key, cached.clone());
        }
        Ok(cached)
    }

    /// The spec of one version, from the cache or built (unpacking its code
    /// and merging its layers on first use).
    async fn spec(
        &self,
        scope: &Arc<Scope>,
        cached: &Cached,
        cfg: &FunctionConfig,
    ) -> Result<Arc<FunctionSpec>, InvokeError> {
        if let Some(s) = cached
            .specs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&cfg.version)
        {
            return Ok(s.clone());
        }
        let spec = spec_for(&self.blobs, &self.catalog, scope, cfg).await?;
        cached
            .specs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(cfg.version.clone(), spec.clone());
        Ok(spec)
    }
}

/// Builds a version's spec. Unpacking code and merging layers is file work
/// of unbounded length: it runs on a blocking thread, never on the workers
/// that serve requests.
pub(crate) async fn spec_for(
    blobs: &blobs::BlobStore,
    catalog: &runtimes::Catalog,
    scope: &Arc<Scope>,
    cfg: &FunctionConfig,
) -> Result<Arc<FunctionSpec>, InvokeError> {
    let runtime_id = cfg.runtime.as_deref().unwrap_or_default();
    let runtime =
        catalog
            .get(runtime_id)
            .cloned()
            .ok_or_else(|| InvokeError::RuntimeUnavailable {
                runtime: runtime_id.to_owned(),
            })?;
    let layer_digests: Vec<String> = cfg
        .layers
        .iter()
        .map(|l| l.code.digest_hex.clone())
        .collect();
    let blobs = blobs.clone();
    let (code_digest, layers) = (cfg.code.digest_hex.clone(), layer_digests.clone());
    let (code_dir, opt_dir) = tokio::task::spawn_blocking(move || {
        let package = |what: &'static str| {
            move |e: blobs::PackageError| match e {
                blobs::PackageError::DiskFull(full) => InvokeError::DiskFull(full.to_string()),
                e => InvokeError::Package {
                    what,
                    detail: e.to_string(),
                },
            }
        };
        let code = blobs
            .ensure_unpacked(&code_digest)
            .map_err(package("code"))?;
        let opt = blobs.ensure_merged(&layers).map_err(package("layers"))?;
        Ok::<_, InvokeError>((code, opt))
    })
    .await
    .map_err(|e| InvokeError::Package {
        what: "code",
        detail: e.to_string(),
    })??;
    Ok(Arc::new(FunctionSpec {
        scope: scope.clone(),
        name: cfg.name.clone(),
        version: cfg.version.clone(),
        revision: cfg.revision_id.clone(),
        runtime,
        handler: cfg.handler.clone().unwrap_or_default(),
        memory_mb: cfg.memory_mb,
        timeout: Duration::from_secs(u64::from(cfg.timeout_s)),
        ephemeral_mb: cfg.ephemeral_mb,
        variables: cfg
            .environment
            .as_ref()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default(),
        code_dir,
        code_digest: cfg.code.digest_hex.clone(),
        opt_dir,
        layer_digests,
        log_group: cfg.logging.log_group.as_str().into(),
        vpc_subnets: cfg
            .vpc
            .as_ref()
            .map(|v| v.subnet_ids.clone())
            .unwrap_or_default(),
    }))
}
