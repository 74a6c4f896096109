//! `GetAccountSettings`.

use api_types as wire;
use model::{Scope, limits};

use crate::{Control, ControlError};

/// Total code storage an account may use (Lambda's default quota, 75 GB).
pub const TOTAL_CODE_SIZE_LIMIT: u64 = 80_530_636_800;

impl Control {
    pub async fn account_settings(
        &self,
        scope: &Scope,
    ) -> Result<wire::GetAccountSettingsResponse, ControlError> {
        let usage = self.store.usage(scope).await?;
        let concurrency = self.settings.account_concurrency;
        Ok(wire::GetAccountSettingsResponse {
            account_limit: wire::AccountLimit {
                total_code_size: TOTAL_CODE_SIZE_LIMIT,
                code_size_unzipped: limits::UNZIPPED_MAX_BYTES,
                code_size_zipped: limits::ZIP_MAX_BYTES,
                concurrent_executions: concurrency,
                unreserved_concurrent_executions: concurrency.saturating_sub(
                    (usage.reserved_concurrency + usage.provisioned_unreserved).min(u32::MAX as u64)
                        as u32,
                ),
            },
            account_usage: wire::AccountUsage {
                total_code_size: usage.total_code_size,
                function_count: usage.function_count,
            },
        })
    }
}
