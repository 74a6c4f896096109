//! One invocation, end to end.
//!
//! [`Invoker::invoke`] resolves the function and qualifier (from a cache that
//! control-plane changes invalidate), admits the call against the account's
//! concurrency or throttles it, runs it in an execution environment from the
//! [`pool`], and shapes the result the way Lambda does: the handler's bytes, or
//! an error document with `X-Amz-Function-Error: Unhandled`. It does not speak
//! HTTP; [`InvokeError`] names each refusal, and the `api` crate writes them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use control::{ControlError, FunctionHooks};
use model::{FunctionConfig, FunctionName, FunctionRecord, Qualifier, Scope, limits};
use pool::{Completed, FunctionSpec, Outcome, Pool};
use runtimes::Catalog;
use store::Store;

pub mod asynchronous;

/// How the caller wants the function run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvocationType {
    RequestResponse,
    Event,
    DryRun,
}

impl InvocationType {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "RequestResponse" => Some(Self::RequestResponse),
            "Event" => Some(Self::Event),
            "DryRun" => Some(Self::DryRun),
            _ => None,
        }
    }
}

/// One `Invoke` call.
#[derive(Debug, Clone)]
pub struct InvokeRequest {
    /// The `{FunctionName}` path parameter, as given.
    pub function: String,
    pub qualifier: Option<String>,
    pub payload: Bytes,
    pub invocation_type: InvocationType,
    /// `X-Amz-Log-Type: Tail`.
    pub tail: bool,
    /// `X-Amz-Client-Context` (base64 JSON), passed to the runtime.
    pub client_context: Option<String>,
    /// `X-Amzn-Trace-Id`, if the caller sent one.
    pub trace_header: Option<String>,
}

/// What the caller gets back.
#[derive(Debug, Clone, PartialEq)]
pub struct InvokeResult {
    pub request_id: String,
    pub executed_version: String,
    pub payload: Bytes,
    /// `Unhandled` when the function failed.
    pub function_error: Option<&'static str>,
    /// Base64 of the last 4 KB of the log, when asked for.
    pub log_result: Option<String>,
    /// 200, or 204 for DryRun.
    pub status: u16,
}

/// Why an invocation was refused before it ran.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// Resolution failed (not found, malformed name, other account...).
    #[error(transparent)]
    Function(#[from] ControlError),
    /// The payload is not JSON (`InvalidRequestContentException`).
    #[error("{0}")]
    InvalidContent(String),
    /// The payload is too large (413 `RequestEntityTooLargeException`).
    #[error("{0}")]
    TooLarge(String),
    /// The concurrency limit is reached (429 `TooManyRequestsException`).
    #[error("Rate Exceeded.")]
    Throttled { reason: &'static str },
    /// Not available on this server yet.
    #[error("{0}")]
    Unsupported(String),
    /// The platform could not run the function (500 `ServiceException`).
    #[error("{0}")]
    Service(String),
}

/// A function and qualifier resolved for one invocation.
struct Target {
    scope: Arc<Scope>,
    name: FunctionName,
    qualifier: Option<Qualifier>,
    cached: Arc<Cached>,
    spec: Arc<FunctionSpec>,
    /// The version's dead-letter target (version-locked, as on Lambda).
    dead_letter: Option<String>,
}

/// Counters of asynchronous invocation, as Lambda's metrics name them.
#[derive(Debug, Default)]
pub struct AsyncMetrics {
    /// Events accepted (`AsyncEventsReceived`).
    pub events_received: AtomicU64,
    /// Events dropped without a destination to take them (`AsyncEventsDropped`).
    pub events_dropped: AtomicU64,
    /// Records a destination did not accept (`DestinationDeliveryFailures`).
    pub destination_delivery_failures: AtomicU64,
    /// Events the dead-letter target did not accept (`DeadLetterErrors`).
    pub dead_letter_errors: AtomicU64,
}

/// A function record with its resolved `$LATEST` spec, as cached.
struct Cached {
    record: FunctionRecord,
    /// Specs per version (`$LATEST`, `1`, ...), built on first use.
    specs: Mutex<HashMap<String, Arc<FunctionSpec>>>,
}

type CacheKey = (Arc<Scope>, FunctionName);

pub struct Invoker {
    store: Arc<dyn Store>,
    blobs: blobs::BlobStore,
    catalog: Arc<Catalog>,
    pool: Pool,
    cache: Mutex<HashMap<CacheKey, Arc<Cached>>>,
    scopes: Mutex<HashMap<Scope, Arc<Scope>>>,
    /// Concurrent executions per account and region.
    running: Mutex<HashMap<Arc<Scope>, Arc<AtomicU32>>>,
    /// Concurrent executions per function with reserved concurrency.
    fn_running: Mutex<HashMap<CacheKey, Arc<AtomicU32>>>,
    /// Sum of reservations per scope, cached until a function changes.
    reserved: Mutex<HashMap<Arc<Scope>, u32>>,
    /// Counts control-plane changes, so that a read that raced one is not
    /// cached.
    changes: AtomicU64,
    account_concurrency: u32,
    queue: Option<queue::Queue>,
    metrics: AsyncMetrics,
}

/// Releases a concurrency slot when dropped.
struct Admission(Arc<AtomicU32>);

impl Drop for Admission {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
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

/// A version-4 UUID from a fast per-thread generator: request and trace IDs
/// must be unique, not unpredictable, and the system's generator costs a
/// system call per ID on the invoke path.
fn random_uuid() -> uuid::Uuid {
    uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes()).into_uuid()
}

fn trace_id(given: Option<&str>) -> String {
    let id = random_uuid().simple().to_string();
    let root = given
        .and_then(|h| h.split(';').find_map(|p| p.trim().strip_prefix("Root=")))
        .map(str::to_owned)
        .unwrap_or_else(|| format!("1-{:08x}-{}", model::time_fmt::now_ms() / 1000, &id[..24]));
    format!("Root={root};Parent={};Sampled=0", &id[16..32])
}

fn error_doc(error_type: &str, message: &str) -> Bytes {
    let v = serde_json::json!({ "errorType": error_type, "errorMessage": message });
    Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
}

impl Invoker {
    pub fn new(
        store: Arc<dyn Store>,
        blobs: blobs::BlobStore,
        catalog: Arc<Catalog>,
        pool: Pool,
        account_concurrency: u32,
    ) -> Self {
        Self {
            store,
            blobs,
            catalog,
            pool,
            cache: Mutex::new(HashMap::new()),
            scopes: Mutex::new(HashMap::new()),
            running: Mutex::new(HashMap::new()),
            fn_running: Mutex::new(HashMap::new()),
            reserved: Mutex::new(HashMap::new()),
            changes: AtomicU64::new(0),
            account_concurrency,
            queue: None,
            metrics: AsyncMetrics::default(),
        }
    }

    /// Queues `Event` invocations durably in `queue` (see [`asynchronous`]).
    pub fn with_queue(mut self, queue: queue::Queue) -> Self {
        self.queue = Some(queue);
        self
    }

    pub fn queue(&self) -> Option<&queue::Queue> {
        self.queue.as_ref()
    }

    pub fn async_metrics(&self) -> &AsyncMetrics {
        &self.metrics
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// One shared `Arc<Scope>` per scope, so cache keys compare cheaply.
    fn intern(&self, scope: &Scope) -> Arc<Scope> {
        let mut s = self.scopes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(a) = s.get(scope) {
            return a.clone();
        }
        let a = Arc::new(scope.clone());
        s.insert(scope.clone(), a.clone());
        a
    }

    /// The spec of one version, from the cache or built (unpacking its code
    /// and merging its layers on first use).
    fn spec(
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
        let spec = self.spec_for(scope, cfg)?;
        cached
            .specs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(cfg.version.clone(), spec.clone());
        Ok(spec)
    }

    fn spec_for(
        &self,
        scope: &Arc<Scope>,
        cfg: &FunctionConfig,
    ) -> Result<Arc<FunctionSpec>, InvokeError> {
        let runtime_id = cfg.runtime.as_deref().unwrap_or_default();
        let runtime = self.catalog.get(runtime_id).cloned().ok_or_else(|| {
            InvokeError::Service(format!(
                "The runtime {runtime_id} of this function is not available on this host"
            ))
        })?;
        let code_dir = self
            .blobs
            .ensure_unpacked(&cfg.code.digest_hex)
            .map_err(|e| {
                InvokeError::Service(format!("cannot prepare the function's code: {e}"))
            })?;
        let layer_digests: Vec<String> = cfg
            .layers
            .iter()
            .map(|l| l.code.digest_hex.clone())
            .collect();
        let opt_dir = self.blobs.ensure_merged(&layer_digests).map_err(|e| {
            InvokeError::Service(format!("cannot prepare the function's layers: {e}"))
        })?;
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
        }))
    }

    /// The function's cached record and spec, loading them on a miss.
    async fn resolve(
        &self,
        scope: &Arc<Scope>,
        name: &FunctionName,
        qualifier: Option<&Qualifier>,
    ) -> Result<Arc<Cached>, InvokeError> {
        let key = (scope.clone(), name.clone());
        if let Some(c) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(c.clone());
        }
        let generation = self.changes.load(Ordering::Acquire);
        let record = self
            .store
            .get_function(scope, name)
            .await
            .map_err(|e| InvokeError::Service(e.to_string()))?
            .ok_or_else(|| {
                control::function_not_found(
                    scope,
                    name,
                    Some(qualifier.unwrap_or(&Qualifier::Latest)),
                )
            })?
            .value;
        let cached = Arc::new(Cached {
            record,
            specs: Mutex::new(HashMap::new()),
        });
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        // A change since the read would make this copy stale: use it for this
        // call only.
        if self.changes.load(Ordering::Acquire) == generation {
            cache.insert(key, cached.clone());
        }
        Ok(cached)
    }

    /// Concurrency the scope's reservations hold back from the shared pool.
    async fn reserved_total(&self, scope: &Arc<Scope>) -> Result<u32, InvokeError> {
        if let Some(n) = self
            .reserved
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(scope)
        {
            return Ok(*n);
        }
        let generation = self.changes.load(Ordering::Acquire);
        let usage = self
            .store
            .usage(scope)
            .await
            .map_err(|e| InvokeError::Service(e.to_string()))?;
        let n = usage.reserved_concurrency.min(u64::from(u32::MAX)) as u32;
        let mut reserved = self.reserved.lock().unwrap_or_else(|p| p.into_inner());
        if self.changes.load(Ordering::Acquire) == generation {
            reserved.insert(scope.clone(), n);
        }
        Ok(n)
    }

    /// Takes a concurrency slot: from the function's reservation if it has
    /// one, else from the account's unreserved pool; or throttles.
    async fn admit(&self, t: &Target) -> Result<Admission, InvokeError> {
        let (counter, limit, reason) = match t.cached.record.reserved_concurrency {
            Some(reserved) => {
                let mut r = self.fn_running.lock().unwrap_or_else(|p| p.into_inner());
                let c = r
                    .entry((t.scope.clone(), t.name.clone()))
                    .or_default()
                    .clone();
                (
                    c,
                    reserved,
                    "ReservedFunctionConcurrentInvocationLimitExceeded",
                )
            }
            None => {
                let reserved = self.reserved_total(&t.scope).await?;
                let mut r = self.running.lock().unwrap_or_else(|p| p.into_inner());
                let c = r.entry(t.scope.clone()).or_default().clone();
                (
                    c,
                    self.account_concurrency.saturating_sub(reserved),
                    "ConcurrentInvocationLimitExceeded",
                )
            }
        };
        let prev = counter.fetch_add(1, Ordering::AcqRel);
        if prev >= limit {
            counter.fetch_sub(1, Ordering::AcqRel);
            return Err(InvokeError::Throttled { reason });
        }
        Ok(Admission(counter))
    }

    /// Resolves a `{FunctionName}` parameter and an optional `Qualifier` to a
    /// function this server can run.
    async fn target(
        &self,
        scope: &Scope,
        function: &str,
        qualifier: Option<&str>,
    ) -> Result<Target, InvokeError> {
        let r = control::resolve_ref(scope, function).map_err(|e| match e {
            // Invoke reports unknown names with the `$LATEST` ARN, as AWS does.
            ControlError::NotFound(m)
                if m.starts_with("Function not found: ")
                    && !m.contains(":$LATEST")
                    && qualifier.is_none() =>
            {
                ControlError::NotFound(format!("{m}:$LATEST"))
            }
            e => e,
        })?;
        let qualifier = match (&r.qualifier, qualifier) {
            (Some(a), Some(b)) if a.to_string() != b => {
                return Err(ControlError::InvalidParameter(
                    "The derived qualifier from the function name does not match the specified qualifier.".into(),
                )
                .into());
            }
            (Some(a), _) => Some(a.clone()),
            (None, Some(b)) => Some(Qualifier::parse(b).map_err(|e| {
                let mut v = model::names::ValidationErrors::new();
                v.push("qualifier", b, e);
                ControlError::Validation(v.into_result().err().unwrap_or_default())
            })?),
            (None, None) => None,
        };
        let scope = self.intern(scope);
        let cached = self.resolve(&scope, &r.name, qualifier.as_ref()).await?;
        let not_found = || {
            InvokeError::from(control::function_not_found(
                &scope,
                &r.name,
                qualifier.as_ref(),
            ))
        };
        let cfg = match &qualifier {
            Some(Qualifier::Alias(a)) => {
                let alias = cached.record.aliases.get(a).ok_or_else(not_found)?;
                let version = route(alias);
                let q = Qualifier::parse(version).map_err(|_| not_found())?;
                cached.record.version(Some(&q)).ok_or_else(not_found)?
            }
            q => cached.record.version(q.as_ref()).ok_or_else(not_found)?,
        };
        let spec = self.spec(&scope, &cached, cfg)?;
        let dead_letter = cfg.dead_letter_target.clone();
        Ok(Target {
            scope,
            name: r.name,
            qualifier,
            cached,
            spec,
            dead_letter,
        })
    }

    /// Runs one invocation (or, for `Event`, queues it durably).
    pub async fn invoke(
        &self,
        scope: &Scope,
        req: InvokeRequest,
    ) -> Result<InvokeResult, InvokeError> {
        let limit = match req.invocation_type {
            InvocationType::Event => limits::ASYNC_REQUEST_MAX_BYTES,
            _ => limits::SYNC_REQUEST_MAX_BYTES,
        };
        let t = self
            .target(scope, &req.function, req.qualifier.as_deref())
            .await?;
        if req.payload.len() > limit {
            return Err(InvokeError::TooLarge(match req.invocation_type {
                InvocationType::Event => format!(
                    "{} byte payload is too large for the Event invocation type (limit {limit} bytes)",
                    req.payload.len()
                ),
                _ => format!(
                    "Request must be smaller than {limit} bytes for the InvokeFunction operation"
                ),
            }));
        }
        if !req.payload.is_empty() {
            serde_json::from_slice::<serde::de::IgnoredAny>(&req.payload).map_err(|e| {
                InvokeError::InvalidContent(format!(
                    "Could not parse request body into json: Could not parse payload into json: {e}"
                ))
            })?;
        }
        let executed_version = t.spec.version.clone();
        let request_id = random_uuid().to_string();
        match req.invocation_type {
            InvocationType::DryRun => Ok(InvokeResult {
                request_id,
                executed_version,
                payload: Bytes::new(),
                function_error: None,
                log_result: None,
                status: 204,
            }),
            InvocationType::Event => {
                let Some(queue) = &self.queue else {
                    return Err(InvokeError::Unsupported(
                        "asynchronous invocation is not configured on this server".into(),
                    ));
                };
                let now = model::time_fmt::now_ms();
                queue
                    .enqueue(vec![queue::NewWork {
                        request_id: request_id.clone(),
                        target: queue::Target::Function {
                            scope: (*t.scope).clone(),
                            name: t.name.to_string(),
                            qualifier: t.qualifier.as_ref().map(ToString::to_string),
                            // Lambda passes a client context to synchronous
                            // invocations only.
                            client_context: None,
                        },
                        payload: req.payload,
                        enqueued_ms: now,
                        due_ms: now,
                    }])
                    .await
                    .map_err(|e| InvokeError::Service(format!("could not queue the event: {e}")))?;
                self.metrics.events_received.fetch_add(1, Ordering::Relaxed);
                Ok(InvokeResult {
                    request_id,
                    executed_version,
                    payload: Bytes::new(),
                    function_error: None,
                    log_result: None,
                    status: 202,
                })
            }
            InvocationType::RequestResponse => {
                self.execute(
                    &t,
                    req.payload,
                    request_id,
                    req.client_context,
                    req.trace_header.as_deref(),
                    req.tail,
                )
                .await
            }
        }
    }

    /// Runs a resolved invocation in an execution environment.
    async fn execute(
        &self,
        t: &Target,
        payload: Bytes,
        request_id: String,
        client_context: Option<String>,
        trace_header: Option<&str>,
        tail: bool,
    ) -> Result<InvokeResult, InvokeError> {
        let executed_version = t.spec.version.clone();
        let _admission = self.admit(t).await?;
        let mut arn = t.scope.function_arn(&t.name);
        arn.qualifier = t.qualifier.clone();
        let inv = runtime_api::Invocation {
            request_id: request_id.clone(),
            payload: if payload.is_empty() {
                Bytes::from_static(b"{}")
            } else {
                payload
            },
            timeout: t.spec.timeout,
            invoked_arn: arn.to_string(),
            trace_id: trace_id(trace_header),
            client_context,
            cognito_identity: None,
        };
        let mut lease = match self.pool.acquire(&t.spec).await {
            Ok(l) => l,
            Err(e @ pool::PoolError::InvalidEntrypoint { .. }) => {
                return Ok(InvokeResult {
                    payload: error_doc(
                        "Runtime.InvalidEntrypoint",
                        &format!("RequestId: {request_id} Error: {e}"),
                    ),
                    request_id,
                    executed_version,
                    function_error: Some("Unhandled"),
                    log_result: None,
                    status: 200,
                });
            }
            Err(e) => return Err(InvokeError::Service(e.to_string())),
        };
        let done = lease.invoke(inv, tail).await;
        drop(lease);
        Ok(shape(request_id, executed_version, &t.spec, done))
    }
}

/// Lambda's answer for each way an invocation can end.
fn shape(
    request_id: String,
    executed_version: String,
    spec: &FunctionSpec,
    done: Completed,
) -> InvokeResult {
    let log_result = done
        .log_tail
        .as_ref()
        .map(|t| base64::engine::general_purpose::STANDARD.encode(t.as_bytes()));
    let (payload, function_error) = match done.outcome {
        Outcome::Response(b) => (b, None),
        Outcome::FunctionError { error_type, body } | Outcome::InitError { error_type, body } => {
            let body = if body.is_empty() {
                let t = error_type.as_deref().unwrap_or("Runtime.Unknown");
                error_doc(
                    t,
                    &format!("RequestId: {request_id} Error: the runtime reported {t}"),
                )
            } else {
                body
            };
            (body, Some("Unhandled"))
        }
        Outcome::Timeout => (
            error_doc(
                "Sandbox.Timedout",
                &format!(
                    "RequestId: {request_id} Error: Task timed out after {:.2} seconds",
                    spec.timeout.as_secs_f64()
                ),
            ),
            Some("Unhandled"),
        ),
        Outcome::Exited(st) => (
            error_doc(
                "Runtime.ExitError",
                &format!("RequestId: {request_id} Error: {}", pool::exit_reason(st)),
            ),
            Some("Unhandled"),
        ),
        Outcome::OutOfMemory(st) => (
            error_doc(
                "Runtime.OutOfMemory",
                &format!("RequestId: {request_id} Error: {}", pool::exit_reason(st)),
            ),
            Some("Unhandled"),
        ),
        Outcome::ResponseTooLarge => (
            error_doc(
                "Function.ResponseSizeTooLarge",
                "Response payload size exceeded maximum allowed payload size (6291556 bytes).",
            ),
            Some("Unhandled"),
        ),
        Outcome::Abandoned => (
            error_doc(
                "Runtime.InvalidResponse",
                &format!(
                    "RequestId: {request_id} Error: the runtime asked for the next invocation without answering this one"
                ),
            ),
            Some("Unhandled"),
        ),
    };
    InvokeResult {
        request_id,
        executed_version,
        payload,
        function_error,
        log_result,
        status: 200,
    }
}

impl Invoker {
    /// Brings the pool's provisioned environments in line with a function's
    /// provisioned concurrency configurations.
    fn provision(&self, scope: &Arc<Scope>, name: &FunctionName, rec: &FunctionRecord) {
        let mut keep = Vec::new();
        for (key, config) in &rec.provisioned {
            let version = match key.parse::<u64>() {
                Ok(n) => rec.versions.get(&n),
                Err(_) => rec
                    .aliases
                    .get(key)
                    .and_then(|a| a.function_version.parse::<u64>().ok())
                    .and_then(|n| rec.versions.get(&n)),
            };
            let Some(cfg) = version else { continue };
            match self.spec_for(scope, cfg) {
                Ok(spec) => {
                    self.pool
                        .set_provisioned(scope, name, key, spec, config.requested);
                    keep.push(key.clone());
                }
                Err(e) => {
                    tracing::warn!(function = %name, qualifier = %key, error = %e,
                        "cannot provision environments");
                }
            }
        }
        self.pool.keep_provisioned(scope, name, &keep);
    }

    /// Re-creates provisioned environments after a restart.
    pub async fn restore_provisioned(&self) -> Result<(), store::StoreError> {
        for scope in self.store.scopes().await? {
            let shared = self.intern(&scope);
            let mut after: Option<String> = None;
            loop {
                let page = self
                    .store
                    .list_functions(&scope, after.as_deref(), 100)
                    .await?;
                for rec in &page.items {
                    if !rec.provisioned.is_empty() {
                        self.provision(&shared, &rec.latest.name, rec);
                    }
                }
                match page.next {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
        }
        Ok(())
    }
}

impl FunctionHooks for Invoker {
    fn function_changed(
        &self,
        scope: &Scope,
        name: &FunctionName,
        record: Option<&FunctionRecord>,
    ) {
        let scope = self.intern(scope);
        {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            self.changes.fetch_add(1, Ordering::AcqRel);
            cache.remove(&(scope.clone(), name.clone()));
        }
        {
            let mut reserved = self.reserved.lock().unwrap_or_else(|p| p.into_inner());
            self.changes.fetch_add(1, Ordering::AcqRel);
            reserved.remove(&scope);
        }
        match record {
            Some(rec) => {
                let live: HashMap<String, String> = std::iter::once(&rec.latest)
                    .chain(rec.versions.values())
                    .map(|c| (c.version.clone(), c.revision_id.clone()))
                    .collect();
                self.pool.retain(&scope, name, &live);
                self.provision(&scope, name, rec);
            }
            None => {
                self.pool.keep_provisioned(&scope, name, &[]);
                self.pool.retire(&scope, name);
            }
        }
    }

    fn provisioned_status(
        &self,
        scope: &Scope,
        name: &FunctionName,
        qualifier: &str,
    ) -> control::ProvisionedStatus {
        let s = self.pool.provisioned_status(scope, name, qualifier);
        control::ProvisionedStatus {
            allocated: s.allocated,
            available: s.available,
            failure: s.failure,
        }
    }

    fn code_in_use(&self, digest_hex: &str) -> bool {
        self.pool.code_in_use(digest_hex)
    }
}
