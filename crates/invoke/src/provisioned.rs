//! Provisioned concurrency: keeping the pool's initialised environments in
//! line with each function's configurations.
//!
//! Changes are applied by one task, in the order they happened, because
//! building a version's spec may unpack code (blocking file work that must
//! not run on a request's worker) and a later change must never be
//! overtaken by an earlier one.

use std::sync::Arc;

use model::{FunctionName, FunctionRecord, Scope};
use pool::Pool;
use tokio::sync::mpsc;

use crate::{InvokeError, Invoker};

/// One function's provisioned configurations to apply.
pub(crate) struct Change {
    scope: Arc<Scope>,
    name: FunctionName,
    record: FunctionRecord,
}

/// The sending end of the provisioning task's queue.
pub(crate) type Provisioner = mpsc::UnboundedSender<Change>;

/// Starts the task that applies provisioning changes in order; `None`
/// outside a runtime (nothing to provision then).
pub(crate) fn start(
    blobs: blobs::BlobStore,
    catalog: Arc<runtimes::Catalog>,
    pool: Pool,
) -> Option<Provisioner> {
    let handle = tokio::runtime::Handle::try_current().ok()?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Change>();
    handle.spawn(async move {
        while let Some(c) = rx.recv().await {
            apply(&blobs, &catalog, &pool, c).await;
        }
    });
    Some(tx)
}

async fn apply(blobs: &blobs::BlobStore, catalog: &runtimes::Catalog, pool: &Pool, c: Change) {
    let rec = &c.record;
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
        match crate::resolve::spec_for(blobs, catalog, &c.scope, cfg).await {
            Ok(spec) => {
                pool.set_provisioned(&c.scope, &c.name, key, spec, config.requested);
                keep.push(key.clone());
            }
            Err(e) => {
                tracing::warn!(function = %c.name, qualifier = %key, error = %e,
                    "cannot provision environments");
            }
        }
    }
    pool.keep_provisioned(&c.scope, &c.name, &keep);
}

impl Invoker {
    /// Brings the pool's provisioned environments in line with a function's
    /// provisioned concurrency configurations (applied in order, shortly).
    pub(crate) fn provision(&self, scope: &Arc<Scope>, name: &FunctionName, rec: &FunctionRecord) {
        let Some(tx) = &self.provisioner else {
            return;
        };
        let change = Change {
            scope: scope.clone(),
            name: name.clone(),
            record: rec.clone(),
        };
        if tx.send(change).is_err() {
            tracing::warn!(function = %name, "the provisioning task is gone");
        }
    }

    /// Re-creates provisioned environments after a restart.
    pub async fn restore_provisioned(&self) -> Result<(), InvokeError> {
        for scope in self.store.scopes().await? {
            let shared = self.cache.intern(&scope);
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

    /// How far a qualifier's provisioned environments got.
    pub fn provisioned_status(
        &self,
        scope: &Scope,
        name: &FunctionName,
        qualifier: &str,
    ) -> pool::ProvisionStatus {
        self.pool.provisioned_status(scope, name, qualifier)
    }

    /// Whether any environment still uses this unpacked code.
    pub fn code_in_use(&self, digest_hex: &str) -> bool {
        self.pool.code_in_use(digest_hex)
    }
}
