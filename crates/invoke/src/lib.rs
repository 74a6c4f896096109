//! One invocation, end to end.
//!
//! Two operations: [`Invoker::resolve`] turns a reference (name, partial or
//! full ARN, qualifier, an alias's weighted pick) into a [`Resolved`] function
//! version, from a cache that control-plane changes invalidate; and
//! [`Invoker::execute`] runs a resolved version once: it admits the call
//! against the function's reserved concurrency or the account's unreserved
//! pool (or throttles), takes an execution environment from the [`pool`], and
//! shapes the result the way Lambda does (the handler's bytes, or an error
//! document with `Unhandled`). Asynchronous work is queued and retried above
//! this crate (`dispatch`), one resolution per attempt.
//!
//! Nothing here speaks HTTP: [`InvokeError`] names each refusal and
//! [`Invocation`] each way a call ends; the `api` crate writes them.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use model::{FunctionNotFound, FunctionRecord, RefError, Scope, limits};
use pool::Pool;
use runtimes::Catalog;
use store::Store;

mod admission;
mod provisioned;
mod resolve;
mod shape;
mod stream;

pub use admission::ThrottleReason;
/// What a streaming caller receives as the function writes its response.
pub use pool::Frame as StreamFrame;
pub use resolve::Resolved;
pub use stream::{StreamCompletion, StreamError, StreamingResponse};

/// How the caller wants the function run (`X-Amz-Invocation-Type`).
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

/// One call to run a function.
#[derive(Debug, Clone)]
pub struct InvokeRequest {
    /// The `{FunctionName}` parameter, as given.
    pub function: String,
    pub qualifier: Option<String>,
    pub payload: Bytes,
    /// `X-Amz-Log-Type: Tail`.
    pub tail: bool,
    /// `X-Amz-Client-Context` (base64 JSON), passed to the runtime.
    pub client_context: Option<String>,
    /// `X-Amzn-Trace-Id`, if the caller sent one.
    pub trace_header: Option<String>,
}

/// One run of a resolved function version.
#[derive(Debug, Clone)]
pub struct Call {
    pub request_id: String,
    pub payload: Bytes,
    pub client_context: Option<String>,
    pub trace_header: Option<String>,
    /// Return the last 4 KB of the log.
    pub tail: bool,
}

/// What a function answered (successfully or not).
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub request_id: String,
    /// The version that ran (`$LATEST`, `3`).
    pub executed_version: String,
    pub payload: Bytes,
    /// `Unhandled` when the function failed.
    pub function_error: Option<&'static str>,
    /// Base64 of the last 4 KB of the log, when asked for.
    pub log_result: Option<String>,
}

/// How an invocation request ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Invocation {
    /// The function ran (`RequestResponse`).
    Completed(Response),
    /// The event is queued durably (`Event`).
    Accepted { request_id: String },
    /// The caller may invoke the function (`DryRun`).
    DryRun { request_id: String },
}

/// Why an invocation was refused or could not run.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// The reference is malformed or names another account or region.
    #[error(transparent)]
    Reference(#[from] RefError),
    /// No such function, version or alias.
    #[error(transparent)]
    NotFound(#[from] FunctionNotFound),
    /// The payload is not JSON (`InvalidRequestContentException`).
    #[error("{0}")]
    InvalidContent(String),
    /// The payload is too large (413 `RequestEntityTooLargeException`).
    #[error("{0}")]
    TooLarge(String),
    /// A concurrency limit is reached (429 `TooManyRequestsException`).
    #[error("Rate Exceeded.")]
    Throttled { reason: ThrottleReason },
    /// The metadata store failed.
    #[error("the function store failed: {0}")]
    Store(#[from] store::StoreError),
    /// The function's runtime is not available on this host any more.
    #[error("the runtime {runtime} of this function is not available on this host")]
    RuntimeUnavailable { runtime: String },
    /// The function's code or layers could not be prepared.
    #[error("cannot prepare the function's {what}: {detail}")]
    Package { what: &'static str, detail: String },
    /// The function's VPC subnet is not mapped on this server (any more):
    /// 502 `InvalidSubnetIDException`.
    #[error(
        "The subnet ID '{0}' in the function's VPC configuration is not mapped to any network on this server."
    )]
    InvalidSubnet(String),
    /// No execution environment could be started.
    #[error(transparent)]
    Environment(#[from] pool::PoolError),
    /// The host's or the account's memory or process budget is held by busy
    /// environments (429 `TooManyRequestsException`).
    #[error(transparent)]
    NoCapacity(pool::CapacityError),
    /// The asynchronous queue refused the event.
    #[error("could not queue the event: {0}")]
    Queue(String),
    /// The data directory's disk is full: the work needs room it does not
    /// have (429 `TooManyRequestsException`, retry later).
    #[error("The platform's disk is full, so this request cannot be taken now ({0}). Retry later.")]
    DiskFull(String),
}

/// Checks a payload the way Lambda does for an invocation type: its size,
/// and that it is JSON (UTF-8 throughout, strings included).
pub fn check_payload(kind: InvocationType, payload: &[u8]) -> Result<(), InvokeError> {
    let limit = match kind {
        InvocationType::Event => limits::ASYNC_REQUEST_MAX_BYTES,
        _ => limits::SYNC_REQUEST_MAX_BYTES,
    };
    if payload.len() > limit {
        return Err(InvokeError::TooLarge(match kind {
            InvocationType::Event => format!(
                "{} byte payload is too large for the Event invocation type (limit {limit} bytes)",
                payload.len()
            ),
            _ => format!(
                "Request must be smaller than {limit} bytes for the InvokeFunction operation"
            ),
        }));
    }
    if payload.is_empty() {
        return Ok(());
    }
    let invalid = |detail: String| {
        InvokeError::InvalidContent(format!(
            "Could not parse request body into json: Could not parse payload into json: {detail}"
        ))
    };
    // The JSON parser skips string contents it does not keep without
    // checking them, so check the encoding first (the messages are Lambda's).
    if let Err(e) = std::str::from_utf8(payload) {
        let at = e.valid_up_to();
        let start = payload.get(at).copied().unwrap_or_default();
        let next = payload.get(at + 1).copied();
        return Err(invalid(match next {
            // A valid start byte whose sequence goes wrong.
            Some(middle) if (0xc2..=0xf4).contains(&start) => {
                format!("Invalid UTF-8 middle byte 0x{middle:02x}")
            }
            _ => format!("Invalid UTF-8 start byte 0x{start:02x}"),
        }));
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(payload).map_err(|e| invalid(e.to_string()))?;
    Ok(())
}

/// A version-4 UUID from a fast per-thread generator: request and trace IDs
/// must be unique, not unpredictable, and the system's generator costs a
/// system call per ID on the invoke path.
pub fn random_uuid() -> uuid::Uuid {
    uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes()).into_uuid()
}

/// Runs functions.
pub struct Invoker {
    store: Arc<dyn Store>,
    blobs: blobs::BlobStore,
    catalog: Arc<Catalog>,
    pool: Pool,
    cache: resolve::Cache,
    admission: admission::Admission,
    provisioner: Option<provisioned::Provisioner>,
    /// Counts control-plane changes, so that a read that raced one is not
    /// cached.
    changes: AtomicU64,
}

impl Invoker {
    pub fn new(
        store: Arc<dyn Store>,
        blobs: blobs::BlobStore,
        catalog: Arc<Catalog>,
        pool: Pool,
        account_concurrency: u32,
    ) -> Self {
        let provisioner = provisioned::start(blobs.clone(), catalog.clone(), pool.clone());
        Self {
            store,
            blobs,
            catalog,
            pool,
            provisioner,
            cache: resolve::Cache::default(),
            admission: admission::Admission::new(account_concurrency),
            changes: AtomicU64::new(0),
        }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Runs a function once and waits for its answer (`RequestResponse`).
    pub async fn invoke(&self, scope: &Scope, req: InvokeRequest) -> Result<Response, InvokeError> {
        let target = self
            .resolve(scope, &req.function, req.qualifier.as_deref())
            .await?;
        check_payload(InvocationType::RequestResponse, &req.payload)?;
        self.execute(
            &target,
            Call {
                request_id: random_uuid().to_string(),
                payload: req.payload,
                client_context: req.client_context,
                trace_header: req.trace_header,
                tail: req.tail,
            },
        )
        .await
    }

    /// Checks that a call would be accepted, without running it (`DryRun`).
    pub async fn dry_run(
        &self,
        scope: &Scope,
        req: &InvokeRequest,
    ) -> Result<Invocation, InvokeError> {
        self.resolve(scope, &req.function, req.qualifier.as_deref())
            .await?;
        check_payload(InvocationType::DryRun, &req.payload)?;
        Ok(Invocation::DryRun {
            request_id: random_uuid().to_string(),
        })
    }

    /// Runs a resolved function version once in an execution environment.
    pub async fn execute(&self, target: &Resolved, call: Call) -> Result<Response, InvokeError> {
        let _slot = self.admission.admit(self, target).await?;
        let inv = runtime_invocation(target, &call);
        let mut lease = match self.pool.acquire(&target.spec).await {
            Ok(l) => l,
            Err(e @ pool::PoolError::InvalidEntrypoint { .. }) => {
                return Ok(shape::invalid_entrypoint(call.request_id, &target.spec, &e));
            }
            Err(pool::PoolError::UnknownSubnet(id)) => return Err(InvokeError::InvalidSubnet(id)),
            Err(pool::PoolError::Capacity(c)) => return Err(InvokeError::NoCapacity(c)),
            Err(e) => return Err(e.into()),
        };
        let done = lease.invoke(inv, call.tail).await;
        drop(lease);
        Ok(shape::response(call.request_id, &target.spec, done))
    }

    /// Runs a resolved function version once and streams its answer
    /// (`InvokeWithResponseStream`): refusals (throttles, capacity) come
    /// back as errors before anything runs; then the frames arrive as the
    /// function writes them and the completion says how it ended. The
    /// invocation runs to its end even if the caller stops listening.
    pub async fn execute_stream(
        &self,
        target: &Resolved,
        call: Call,
    ) -> Result<StreamingResponse, InvokeError> {
        let slot = self.admission.admit(self, target).await?;
        let inv = runtime_invocation(target, &call);
        let (frames_tx, frames) = tokio::sync::mpsc::channel(stream::FRAMES_IN_FLIGHT);
        let (done_tx, completion) = tokio::sync::oneshot::channel();
        let executed_version = target.spec.version.clone();
        let request_id = call.request_id.clone();
        let mut lease = match self.pool.acquire(&target.spec).await {
            Ok(l) => l,
            Err(e @ pool::PoolError::InvalidEntrypoint { .. }) => {
                let r = shape::invalid_entrypoint(call.request_id, &target.spec, &e);
                let _ = done_tx.send(stream::completion(&r));
                return Ok(StreamingResponse {
                    request_id,
                    executed_version,
                    frames,
                    completion,
                });
            }
            Err(pool::PoolError::UnknownSubnet(id)) => return Err(InvokeError::InvalidSubnet(id)),
            Err(pool::PoolError::Capacity(c)) => return Err(InvokeError::NoCapacity(c)),
            Err(e) => return Err(e.into()),
        };
        let spec = target.spec.clone();
        let run = async move {
            let _slot = slot;
            let done = lease.invoke_streaming(inv, call.tail, &frames_tx).await;
            drop(lease);
            let r = shape::response(call.request_id, &spec, done);
            stream::finish(r, frames_tx, done_tx).await;
        };
        tokio::spawn(tracing::Instrument::in_current_span(run));
        Ok(StreamingResponse {
            request_id,
            executed_version,
            frames,
            completion,
        })
    }
}

/// The invocation the runtime receives for `call`.
fn runtime_invocation(target: &Resolved, call: &Call) -> runtime_api::Invocation {
    runtime_api::Invocation {
        request_id: call.request_id.clone(),
        payload: if call.payload.is_empty() {
            Bytes::from_static(b"{}")
        } else {
            call.payload.clone()
        },
        timeout: target.spec.timeout,
        invoked_arn: target.invoked_arn().to_string(),
        trace_id: shape::trace_id(call.trace_header.as_deref()),
        client_context: call.client_context.clone(),
        cognito_identity: None,
    }
}

impl Invoker {
    /// A function's record changed (`Some`) or it was deleted (`None`):
    /// forget cached configuration, retire environments of versions that
    /// changed or went, and bring provisioned environments in line.
    pub fn function_changed(
        &self,
        scope: &Scope,
        name: &model::FunctionName,
        record: Option<&FunctionRecord>,
    ) {
        self.changes.fetch_add(1, Ordering::AcqRel);
        let scope = self.cache.forget(scope, name);
        self.admission.forget_reservations(&scope);
        self.changes.fetch_add(1, Ordering::AcqRel);
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

    fn generation(&self) -> u64 {
        self.changes.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests;
