//! `GetAccountSettings`.

use api_types as wire;
use model::{Scope, limits};

use crate::{Control, ControlError};

/// Total code storage an account may use (Lambda's default quota, 75 GB).
pub const TOTAL_CODE_SIZE_LIMIT: u64 = 80_530_636_800;

/// AWS's message when a package would take an account over its quota.
pub(crate) const CODE_STORAGE_EXCEEDED: &str = "Code storage limit exceeded.";

impl Control {
    /// Refuses a change that would store `adding` more bytes of packages
    /// (and release `releasing`) beyond the account's code storage quota.
    /// Callers hold the package lock.
    pub(crate) async fn check_code_storage(
        &self,
        scope: &Scope,
        adding: u64,
        releasing: u64,
    ) -> Result<(), ControlError> {
        if adding <= releasing {
            return Ok(());
        }
        let quota = self.settings.code_storage_bytes;
        let fits = |used: u64| used.saturating_sub(releasing).saturating_add(adding) <= quota;
        // An upper bound kept per account: every addition passes here, and
        // releases are not subtracted. Only near the quota is the account's
        // usage summed again (which reads every record of the account).
        let cached = self
            .code_usage
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&scope.account)
            .copied();
        let used = match cached {
            Some(bound) if fits(bound) => bound,
            _ => {
                let used = self.store.account_code_size(&scope.account).await?;
                if !fits(used) {
                    self.remember_code_usage(scope, used);
                    tracing::info!(account = %scope.account, used, adding, quota,
                        "code storage quota reached");
                    return Err(ControlError::CodeStorageExceeded(
                        CODE_STORAGE_EXCEEDED.into(),
                    ));
                }
                used
            }
        };
        self.remember_code_usage(scope, used.saturating_add(adding));
        Ok(())
    }

    fn remember_code_usage(&self, scope: &Scope, bound: u64) {
        self.code_usage
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(scope.account.clone(), bound);
    }

    pub async fn account_settings(
        &self,
        scope: &Scope,
    ) -> Result<wire::GetAccountSettingsResponse, ControlError> {
        let usage = self.store.usage(scope).await?;
        // The quota, and so its usage, covers every region of the account:
        // regions here share one disk.
        let code_size = self.store.account_code_size(&scope.account).await?;
        let concurrency = self.settings.account_concurrency;
        Ok(wire::GetAccountSettingsResponse {
            account_limit: wire::AccountLimit {
                total_code_size: self.settings.code_storage_bytes,
                code_size_unzipped: limits::UNZIPPED_MAX_BYTES,
                code_size_zipped: limits::ZIP_MAX_BYTES,
                concurrent_executions: concurrency,
                unreserved_concurrent_executions: concurrency.saturating_sub(
                    (usage.reserved_concurrency + usage.provisioned_unreserved).min(u32::MAX as u64)
                        as u32,
                ),
            },
            account_usage: wire::AccountUsage {
                total_code_size: code_size,
                function_count: usage.function_count,
            },
        })
    }
}
