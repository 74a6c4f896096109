//! Reserved concurrency (`/2017-10-31/functions/{FunctionName}/concurrency`)
//! and provisioned concurrency (`/2019-09-30/.../provisioned-concurrency`).

use api_types as wire;
use model::names::ValidationErrors;
use model::{FunctionName, FunctionRecord, ProvisionedConfig, Qualifier, Scope};

use crate::page::{PageLimit, page};
use crate::{Control, ControlError, ProvisionedStatus, function_not_found};

const QUALIFIED_NOT_PERMITTED: &str = "This operation is permitted on Lambda functions only. Aliases and versions do not support this operation. Please specify either a function name or an unqualified function ARN.";

fn range_error(field: &str, value: i64, min: i64) -> ControlError {
    let mut v = ValidationErrors::new();
    v.push(
        field,
        &value.to_string(),
        format!("Member must have value greater than or equal to {min}"),
    );
    ControlError::Validation(v.into_result().err().unwrap_or_default())
}

/// Provisioned concurrency a function holds across its qualifiers, leaving
/// out `except`.
fn provisioned_total(record: &FunctionRecord, except: Option<&str>) -> u64 {
    record
        .provisioned
        .iter()
        .filter(|(k, _)| Some(k.as_str()) != except)
        .map(|(_, c)| u64::from(c.requested))
        .sum()
}

impl Control {
    /// Resolves `{FunctionName}` that must not carry a qualifier.
    fn unqualified(&self, scope: &Scope, raw: &str) -> Result<FunctionName, ControlError> {
        let t = self.qualified(scope, raw, None)?;
        if t.qualifier.is_some() {
            return Err(ControlError::InvalidParameter(
                QUALIFIED_NOT_PERMITTED.into(),
            ));
        }
        Ok(t.name)
    }

    /// `PutFunctionConcurrency`.
    pub async fn put_function_concurrency(
        &self,
        scope: &Scope,
        raw: &str,
        req: wire::PutFunctionConcurrencyRequest,
    ) -> Result<wire::Concurrency, ControlError> {
        let name = self.unqualified(scope, raw)?;
        let Some(n) = req.reserved_concurrent_executions else {
            let mut v = ValidationErrors::new();
            v.push_null("reservedConcurrentExecutions", "Member must not be null");
            return Err(ControlError::Validation(
                v.into_result().err().unwrap_or_default(),
            ));
        };
        if n < 0 {
            return Err(range_error("reservedConcurrentExecutions", n, 0));
        }
        let limit = self.settings.account_concurrency;
        let minimum = self.settings.minimum_unreserved();
        let below_minimum = || {
            ControlError::InvalidParameter(format!(
                "Specified ReservedConcurrentExecutions for function decreases account's UnreservedConcurrentExecution below its minimum value of [{minimum}]."
            ))
        };
        let n = u32::try_from(n).map_err(|_| below_minimum())?;
        let rec = self
            .load(scope, &name, Some(&Qualifier::Latest))
            .await?
            .value;
        if n > 0 {
            let usage = self.store.usage(scope).await?;
            let own = u64::from(rec.reserved_concurrency.unwrap_or(0));
            // Without a reservation, the function's provisioned concurrency
            // was taken from the unreserved pool; with one it moves inside.
            let own_provisioned = if rec.reserved_concurrency.is_none() {
                provisioned_total(&rec, None)
            } else {
                0
            };
            // (Saturating: a concurrent change may have moved the sums.)
            let taken = (usage.reserved_concurrency + usage.provisioned_unreserved)
                .saturating_sub(own + own_provisioned)
                + u64::from(n);
            if n > limit || u64::from(limit).saturating_sub(taken) < u64::from(minimum) {
                return Err(below_minimum());
            }
        }
        let total = provisioned_total(&rec, None);
        if u64::from(n) < total {
            return Err(ControlError::InvalidParameter(format!(
                " ReservedConcurrentExecutions  {n} should not be lower than function's total provisioned concurrency [{total}]."
            )));
        }
        self.modify(scope, &name, Some(&Qualifier::Latest), |r| {
            r.reserved_concurrency = Some(n);
            Ok(())
        })
        .await?;
        Ok(wire::Concurrency {
            reserved_concurrent_executions: n,
        })
    }

    /// `GetFunctionConcurrency`: `{}` when the function has no reservation.
    pub async fn get_function_concurrency(
        &self,
        scope: &Scope,
        raw: &str,
    ) -> Result<wire::GetFunctionConcurrencyResponse, ControlError> {
        let name = self.unqualified(scope, raw)?;
        let rec = self.load(scope, &name, None).await?.value;
        Ok(wire::GetFunctionConcurrencyResponse {
            reserved_concurrent_executions: rec.reserved_concurrency,
        })
    }

    /// `DeleteFunctionConcurrency`.
    pub async fn delete_function_concurrency(
        &self,
        scope: &Scope,
        raw: &str,
    ) -> Result<(), ControlError> {
        let name = self.unqualified(scope, raw)?;
        self.modify(scope, &name, None, |r| {
            r.reserved_concurrency = None;
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// Resolves the qualifier of a provisioned concurrency call: a published
    /// version or an alias that exists.
    async fn provisioned_target(
        &self,
        scope: &Scope,
        raw: &str,
        qualifier: Option<&str>,
        latest_message: &str,
    ) -> Result<(FunctionName, Qualifier, Option<FunctionRecord>), ControlError> {
        let t = self.qualified(scope, raw, qualifier)?;
        let Some(q) = t.qualifier else {
            let mut v = ValidationErrors::new();
            v.push_null("qualifier", "Member must not be null");
            return Err(ControlError::Validation(
                v.into_result().err().unwrap_or_default(),
            ));
        };
        if q == Qualifier::Latest {
            return Err(ControlError::InvalidParameter(latest_message.into()));
        }
        let rec = self
            .store
            .get_function(scope, &t.name)
            .await?
            .map(|s| s.value);
        let exists = rec.as_ref().is_some_and(|r| r.has_qualifier(Some(&q)));
        if !exists {
            let mut arn = scope.function_arn(&t.name);
            arn.qualifier = Some(q.clone());
            return Err(match q {
                Qualifier::Alias(_) => {
                    ControlError::NotFound(format!("Cannot find alias arn: {arn}"))
                }
                _ => function_not_found(scope, &t.name, Some(&q)),
            });
        }
        Ok((t.name, q, rec))
    }

    fn provisioned_view(
        &self,
        scope: &Scope,
        name: &FunctionName,
        key: &str,
        c: &ProvisionedConfig,
        with_arn: bool,
    ) -> wire::ProvisionedConcurrencyConfig {
        let ProvisionedStatus {
            allocated,
            available,
            failure,
        } = self.hooks.provisioned_status(scope, name, key);
        let status = if failure.is_some() {
            "FAILED"
        } else if allocated >= c.requested {
            "READY"
        } else {
            "IN_PROGRESS"
        };
        wire::ProvisionedConcurrencyConfig {
            function_arn: with_arn.then(|| format!("{}:{key}", scope.function_arn(name))),
            requested_provisioned_concurrent_executions: c.requested,
            available_provisioned_concurrent_executions: available.min(c.requested),
            allocated_provisioned_concurrent_executions: allocated.min(c.requested),
            status: status.into(),
            status_reason: failure,
            last_modified: model::time_fmt::seconds_plus0000(c.last_modified_ms),
        }
    }

    /// `PutProvisionedConcurrencyConfig` (202): the data plane starts the
    /// environments in the background.
    pub async fn put_provisioned_concurrency(
        &self,
        scope: &Scope,
        raw: &str,
        qualifier: Option<&str>,
        req: wire::PutProvisionedConcurrencyConfigRequest,
    ) -> Result<wire::ProvisionedConcurrencyConfig, ControlError> {
        let n = req.provisioned_concurrent_executions;
        match n {
            None => {
                let mut v = ValidationErrors::new();
                v.push_null("provisionedConcurrentExecutions", "Member must not be null");
                return Err(ControlError::Validation(
                    v.into_result().err().unwrap_or_default(),
                ));
            }
            Some(n) if n < 1 => return Err(range_error("provisionedConcurrentExecutions", n, 1)),
            _ => {}
        }
        let (name, q, rec) = self
            .provisioned_target(
                scope,
                raw,
                qualifier,
                "Provisioned Concurrency Configs cannot be applied to unpublished function versions.",
            )
            .await?;
        let rec = rec.ok_or_else(|| function_not_found(scope, &name, Some(&q)))?;
        let key = q.to_string();
        let limit = self.settings.account_concurrency;
        let n = u32::try_from(n.unwrap_or(1)).unwrap_or(u32::MAX);
        if let Qualifier::Alias(a) = &q
            && rec
                .aliases
                .get(a)
                .is_some_and(|alias| alias.function_version == Qualifier::LATEST)
        {
            return Err(ControlError::InvalidParameter(
                "Provisioned Concurrency Configs cannot be applied to unpublished function versions."
                    .into(),
            ));
        }
        // An alias and the version it points to cannot both hold a config.
        match &q {
            Qualifier::Alias(a) => {
                if let Some(alias) = rec.aliases.get(a)
                    && rec.provisioned.contains_key(&alias.function_version)
                {
                    return Err(ControlError::Conflict(
                        "Alias can't be used for Provisioned Concurrency configuration on an already Provisioned version".into(),
                    ));
                }
            }
            _ => {
                if rec.aliases.values().any(|alias| {
                    alias.function_version == key && rec.provisioned.contains_key(&alias.name)
                }) {
                    return Err(ControlError::Conflict(
                        "Version is pointed by a Provisioned Concurrency alias".into(),
                    ));
                }
            }
        }
        let others = provisioned_total(&rec, Some(&key));
        match rec.reserved_concurrency {
            Some(reserved) => {
                if others + u64::from(n) > u64::from(reserved) {
                    return Err(ControlError::InvalidParameter(
                        "Requested Provisioned Concurrency should not be greater than the reservedConcurrentExecution for function".into(),
                    ));
                }
            }
            None => {
                if n > limit {
                    return Err(ControlError::InvalidParameter(format!(
                        "Specified ConcurrentExecutions for function is greater than account's unreserved concurrency [{limit}]."
                    )));
                }
                let usage = self.store.usage(scope).await?;
                let own_old = rec
                    .provisioned
                    .get(&key)
                    .map_or(0, |c| u64::from(c.requested));
                let taken = (usage.reserved_concurrency + usage.provisioned_unreserved)
                    .saturating_sub(own_old)
                    + u64::from(n);
                let minimum = self.settings.minimum_unreserved();
                if u64::from(limit).saturating_sub(taken) < u64::from(minimum) {
                    return Err(ControlError::InvalidParameter(format!(
                        "Specified ConcurrentExecutions for function decreases account's UnreservedConcurrentExecution below its minimum value of [{minimum}]."
                    )));
                }
            }
        }
        let config = ProvisionedConfig {
            requested: n,
            last_modified_ms: model::time_fmt::now_ms(),
        };
        let stored = config.clone();
        self.modify(scope, &name, Some(&q), |r| {
            if !r.has_qualifier(Some(&q)) {
                return Err(function_not_found(scope, &name, Some(&q)));
            }
            r.provisioned.insert(key.clone(), stored.clone());
            Ok(())
        })
        .await?;
        Ok(wire::ProvisionedConcurrencyConfig {
            function_arn: None,
            requested_provisioned_concurrent_executions: n,
            available_provisioned_concurrent_executions: 0,
            allocated_provisioned_concurrent_executions: 0,
            status: "IN_PROGRESS".into(),
            status_reason: None,
            last_modified: model::time_fmt::seconds_plus0000(config.last_modified_ms),
        })
    }

    /// `GetProvisionedConcurrencyConfig`.
    pub async fn get_provisioned_concurrency(
        &self,
        scope: &Scope,
        raw: &str,
        qualifier: Option<&str>,
    ) -> Result<wire::ProvisionedConcurrencyConfig, ControlError> {
        let (name, q, rec) = self
            .provisioned_target(
                scope,
                raw,
                qualifier,
                "The function resource provided must be an alias or a published version.",
            )
            .await?;
        let key = q.to_string();
        let c = rec
            .and_then(|r| r.provisioned.get(&key).cloned())
            .ok_or_else(|| {
                ControlError::ProvisionedConfigNotFound(
                    "No Provisioned Concurrency Config found for this function".into(),
                )
            })?;
        Ok(self.provisioned_view(scope, &name, &key, &c, false))
    }

    /// `DeleteProvisionedConcurrencyConfig` (idempotent).
    pub async fn delete_provisioned_concurrency(
        &self,
        scope: &Scope,
        raw: &str,
        qualifier: Option<&str>,
    ) -> Result<(), ControlError> {
        let (name, q, rec) = self
            .provisioned_target(
                scope,
                raw,
                qualifier,
                "The function resource provided must be an alias or a published version.",
            )
            .await?;
        let key = q.to_string();
        if rec.is_some_and(|r| r.provisioned.contains_key(&key)) {
            self.modify(scope, &name, Some(&q), |r| {
                r.provisioned.remove(&key);
                Ok(())
            })
            .await?;
        }
        Ok(())
    }

    /// `ListProvisionedConcurrencyConfigs`.
    pub async fn list_provisioned_concurrency(
        &self,
        scope: &Scope,
        raw: &str,
        marker: Option<&str>,
        max_items: Option<&str>,
    ) -> Result<wire::ListProvisionedConcurrencyConfigsResponse, ControlError> {
        let name = self.qualified(scope, raw, None)?.name;
        let size = PageLimit::FIFTY.size(max_items)?;
        let rec = self.load(scope, &name, None).await?.value;
        let after_marker = rec
            .provisioned
            .iter()
            .filter(|(k, _)| marker.is_none_or(|m| k.as_str() > m));
        let p = page(after_marker, size, |(k, _)| (*k).clone());
        Ok(wire::ListProvisionedConcurrencyConfigsResponse {
            provisioned_concurrency_configs: p
                .items
                .into_iter()
                .map(|(k, c)| self.provisioned_view(scope, &name, k, c, true))
                .collect(),
            next_marker: p.next,
        })
    }
}
