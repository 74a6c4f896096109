//! The Lambda control plane.
//!
//! [`Control`] takes parsed wire requests (`api-types`) from the HTTP layer,
//! validates them with AWS's rules and messages, keeps functions in the
//! [`store::Store`] and packages in the [`blobs::BlobStore`], and answers with wire
//! responses. It never speaks HTTP; its errors are [`ControlError`]s, which the
//! `api` crate maps to AWS error responses.

use std::sync::Arc;

use model::{
    FunctionName, FunctionNotFound, FunctionRecord, NameError, Qualifier, RefError, Scope,
};
use runtimes::Catalog;
use store::{Store, StoreError};

pub mod access;
mod account;
mod code_url;
mod concurrency;
mod event_config;
mod functions;
mod layers;
mod page;
mod policy;
mod tags;
mod urls;
mod validate;
mod versions;
mod view;

pub use account::TOTAL_CODE_SIZE_LIMIT;
pub use code_url::CodeUrlSigner;
pub use urls::url_id;

/// Why a control-plane call failed. Each variant is one AWS error code; the
/// string is AWS's message.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// `ValidationException` (400): a member broke a modeled constraint.
    #[error("{0}")]
    Validation(String),
    /// `InvalidParameterValueException` (400).
    #[error("{0}")]
    InvalidParameter(String),
    /// `ResourceNotFoundException` (404).
    #[error("{0}")]
    NotFound(String),
    /// `ResourceNotFoundException` (404) for a function, version or alias.
    #[error(transparent)]
    FunctionNotFound(#[from] FunctionNotFound),
    /// `ProvisionedConcurrencyConfigNotFoundException` (404).
    #[error("{0}")]
    ProvisionedConfigNotFound(String),
    /// `ResourceConflictException` (409).
    #[error("{0}")]
    Conflict(String),
    /// `PreconditionFailedException` (412).
    #[error("{0}")]
    PreconditionFailed(String),
    /// `RequestEntityTooLargeException` (413).
    #[error("{0}")]
    TooLarge(String),
    /// `AccessDeniedException` (403): the resource belongs to another account.
    #[error("{0}")]
    AccessDenied(String),
    /// `CodeStorageExceededException` (400): the account's code storage
    /// quota, or the platform's disk, has no room for the package.
    #[error("{0}")]
    CodeStorageExceeded(String),
    /// `ServiceException` (500): the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `ServiceException` (500): the package store failed.
    #[error("package store failed: {0}")]
    Blobs(String),
}

impl From<RefError> for ControlError {
    fn from(e: RefError) -> Self {
        match e {
            RefError::Invalid(m) => Self::Validation(m),
            RefError::NotFound(nf) => Self::FunctionNotFound(nf),
            RefError::OtherRegion { .. } => Self::NotFound(e.to_string()),
            RefError::OtherAccount { .. } => Self::AccessDenied(e.to_string()),
            RefError::QualifierMismatch => Self::InvalidParameter(e.to_string()),
        }
    }
}

impl From<blobs::PackageError> for ControlError {
    fn from(e: blobs::PackageError) -> Self {
        use blobs::PackageError as P;
        match e {
            P::NotAZip
            | P::UnsafeEntry { .. }
            | P::TooManyEntries { .. }
            | P::UnzippedTooLarge { .. } => Self::InvalidParameter(e.to_string()),
            P::ZippedTooLarge { .. } => Self::TooLarge(e.to_string()),
            P::DiskFull(full) => Self::CodeStorageExceeded(format!(
                "Code storage limit exceeded: {full}. Delete unused functions, versions or layers, or ask the operator to free space."
            )),
            P::Io { .. } => Self::Blobs(e.to_string()),
        }
    }
}

/// What the data plane must hear about control-plane changes.
pub trait FunctionHooks: Send + Sync + 'static {
    /// A function's record changed (`Some`: its new state) or it was deleted
    /// (`None`): cached configuration is stale, and environments of versions
    /// that changed or no longer exist must retire.
    fn function_changed(&self, scope: &Scope, name: &FunctionName, record: Option<&FunctionRecord>);
    /// Whether a running or idle environment still uses this unpacked code.
    fn code_in_use(&self, digest_hex: &str) -> bool;
    /// How far the data plane got with a qualifier's provisioned environments.
    fn provisioned_status(
        &self,
        _scope: &Scope,
        _name: &FunctionName,
        _qualifier: &str,
    ) -> ProvisionedStatus {
        ProvisionedStatus::default()
    }
}

/// Progress of a provisioned concurrency configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProvisionedStatus {
    /// Environments initialised and kept for it.
    pub allocated: u32,
    /// Of those, not busy right now.
    pub available: u32,
    /// Set when initialisation failed (`FUNCTION_ERROR_INIT_FAILURE`).
    pub failure: Option<String>,
}

/// Hooks for a control plane with no data plane attached (tests, tools).
pub struct NoHooks;

impl FunctionHooks for NoHooks {
    fn function_changed(&self, _: &Scope, _: &FunctionName, _: Option<&FunctionRecord>) {}
    fn code_in_use(&self, _: &str) -> bool {
        false
    }
}

/// Platform settings the control plane reports and enforces.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Concurrent executions an account may use (`AccountLimit.ConcurrentExecutions`).
    pub account_concurrency: u32,
    /// The VPC subnets the operator mapped to networks: subnet id -> VPC id
    /// (empty when not given). `VpcConfig` may name only these.
    pub vpc_subnets: std::collections::BTreeMap<String, String>,
    /// Bytes of packages an account may store, over all its regions
    /// (`AccountLimit.TotalCodeSize`; Lambda's default is 75 GB).
    pub code_storage_bytes: u64,
}

impl Settings {
    /// Concurrency that reservations must leave to functions without one:
    /// Lambda's 100 of its default 1,000, scaled to smaller limits.
    pub fn minimum_unreserved(&self) -> u32 {
        (self.account_concurrency / 10).min(100)
    }
}

pub struct Control {
    store: Arc<dyn Store>,
    blobs: blobs::BlobStore,
    catalog: Arc<Catalog>,
    settings: Settings,
    hooks: Arc<dyn FunctionHooks>,
    code_urls: CodeUrlSigner,
    /// Serialises "store a package and reference it" against "collect unused
    /// packages", so a collection never removes a package that is about to be used.
    blob_lock: tokio::sync::Mutex<()>,
    /// Per account, an upper bound of the bytes of packages it stores.
    code_usage: std::sync::Mutex<std::collections::HashMap<model::AccountId, u64>>,
}

impl Control {
    pub fn new(
        store: Arc<dyn Store>,
        blobs: blobs::BlobStore,
        catalog: Arc<Catalog>,
        settings: Settings,
        hooks: Arc<dyn FunctionHooks>,
        code_urls: CodeUrlSigner,
    ) -> Self {
        Self {
            store,
            blobs,
            catalog,
            settings,
            hooks,
            code_urls,
            blob_lock: tokio::sync::Mutex::new(()),
            code_usage: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn blobs(&self) -> &blobs::BlobStore {
        &self.blobs
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }
}

/// The validation message for one malformed member.
fn name_error(field: &str, value: &str, e: NameError) -> ControlError {
    ControlError::Validation(model::resolve::validation_message(field, value, e))
}

/// `Function not found: <arn>`.
pub(crate) fn function_not_found(
    scope: &Scope,
    name: &FunctionName,
    qualifier: Option<&Qualifier>,
) -> ControlError {
    ControlError::FunctionNotFound(FunctionNotFound::new(scope, name, qualifier))
}

#[cfg(test)]
mod tests;
