//! The metadata store: what functions exist, their configuration and settings.
//!
//! Backends (`store-sqlite`, later `store-postgres`) implement [`Store`] and run
//! the same [`conformance`] suite. The store knows nothing of AWS semantics such as
//! `RevisionId`: it offers optimistic concurrency through a per-record `etag`, and
//! the control plane builds Lambda's rules on top.

use async_trait::async_trait;
use model::{FunctionName, FunctionRecord, LayerRecord, Scope};

pub mod conformance;

/// What a store operation failed on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("{what} already exists")]
    AlreadyExists { what: String },
    #[error("{what} does not exist")]
    NotFound { what: String },
    /// The record changed since it was read (its etag moved on).
    #[error("{what} was changed concurrently")]
    Conflict { what: String },
    /// The backend itself failed (I/O, corruption, connection).
    #[error("store backend failed during {op}: {detail}")]
    Backend { op: &'static str, detail: String },
}

/// A function as stored, with the etag that guards concurrent updates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored<T> {
    pub value: T,
    /// Changes on every write; pass it back to `update_*` to detect lost updates.
    pub etag: u64,
}

/// One page of a listing, in name order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `after` to get the next page; `None` on the last page.
    pub next: Option<String>,
}

/// Totals over one scope.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub function_count: u64,
    /// Bytes of every stored deployment package of the scope's functions,
    /// their published versions and its layers.
    pub total_code_size: u64,
    /// Sum of the reserved concurrency of the scope's functions.
    pub reserved_concurrency: u64,
    /// Provisioned concurrency of functions without a reservation (it comes
    /// out of the unreserved pool).
    pub provisioned_unreserved: u64,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates a function; fails with `AlreadyExists` when the name is taken in
    /// this scope.
    async fn create_function(
        &self,
        scope: &Scope,
        record: &FunctionRecord,
    ) -> Result<u64, StoreError>;

    async fn get_function(
        &self,
        scope: &Scope,
        name: &FunctionName,
    ) -> Result<Option<Stored<FunctionRecord>>, StoreError>;

    /// Functions of one scope in name order, starting after `after`.
    async fn list_functions(
        &self,
        scope: &Scope,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<FunctionRecord>, StoreError>;

    /// Replaces a function's record if its etag is still `etag`; returns the new etag.
    async fn update_function(
        &self,
        scope: &Scope,
        record: &FunctionRecord,
        etag: u64,
    ) -> Result<u64, StoreError>;

    /// Deletes a function and everything stored under it; `NotFound` if absent.
    async fn delete_function(&self, scope: &Scope, name: &FunctionName) -> Result<(), StoreError>;

    /// What a scope uses (for `GetAccountSettings` and concurrency accounting).
    async fn usage(&self, scope: &Scope) -> Result<Usage, StoreError>;

    /// Bytes of every stored package of an account, in every region: its
    /// functions' `$LATEST`, their published versions and its layer
    /// versions (the code storage quota's measure).
    async fn account_code_size(&self, account: &model::AccountId) -> Result<u64, StoreError>;

    /// Whether any stored configuration still references the code blob `digest_hex`
    /// (so that blob garbage collection never removes live code).
    async fn blob_in_use(&self, digest_hex: &str) -> Result<bool, StoreError>;

    /// Every (account, region) that has functions.
    async fn scopes(&self) -> Result<Vec<Scope>, StoreError>;

    /// A layer and all its versions.
    async fn get_layer(
        &self,
        scope: &Scope,
        name: &str,
    ) -> Result<Option<Stored<LayerRecord>>, StoreError>;

    /// Creates a layer (`etag` `None`; `AlreadyExists` if it exists) or
    /// replaces it if its etag is still `etag`; returns the new etag.
    async fn put_layer(
        &self,
        scope: &Scope,
        record: &LayerRecord,
        etag: Option<u64>,
    ) -> Result<u64, StoreError>;

    /// Layers of one scope in name order, starting after `after`.
    async fn list_layers(
        &self,
        scope: &Scope,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<LayerRecord>, StoreError>;
}
