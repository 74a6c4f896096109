//! Asynchronous invocation settings per qualifier
//! (`/2019-09-25/functions/{FunctionName}/event-invoke-config`), and the
//! destination checks they share with `DeadLetterConfig`.

use api_types as wire;
use model::names::ValidationErrors;
use model::{
    Destination, DestinationError, EventInvokeConfig, FunctionName, FunctionRecord, Qualifier,
    Scope,
};

use crate::page::{PageLimit, page};
use crate::{Control, ControlError};
use model::resolve_ref;

/// AWS's pattern for a destination ARN.
const DESTINATION_PATTERN: &str = r"$|kafka://([^.]([a-zA-Z0-9\-_.]{0,248}))|arn:(aws[a-zA-Z0-9-]*):([a-zA-Z0-9\-])+:((eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1})?:(\d{12})?:(.*)";
/// AWS's pattern for a dead-letter target ARN.
const DEAD_LETTER_PATTERN: &str = r"(arn:(aws[a-zA-Z-]*)?:[a-z0-9-.]+:.*)|()";
const DESTINATION_MAX_LEN: usize = 350;

fn function_does_not_exist() -> ControlError {
    ControlError::NotFound("The function doesn't exist.".into())
}

/// Which destination a message is about.
#[derive(Clone, Copy)]
enum Slot {
    OnSuccess,
    OnFailure,
}

impl Slot {
    fn field(self) -> &'static str {
        match self {
            Self::OnSuccess => "destinationConfig.onSuccess.destination",
            Self::OnFailure => "destinationConfig.onFailure.destination",
        }
    }
}

/// The qualifier key configurations are stored under.
fn key(q: Option<&Qualifier>) -> String {
    q.map(ToString::to_string)
        .unwrap_or_else(|| Qualifier::Latest.to_string())
}

/// Whether a qualifier names something that exists.
fn qualifier_exists(record: &FunctionRecord, q: Option<&Qualifier>) -> bool {
    record.has_qualifier(q)
}

impl Control {
    fn no_config(&self, scope: &Scope, name: &FunctionName, q: Option<&Qualifier>) -> ControlError {
        let mut arn = scope.function_arn(name);
        arn.qualifier = Some(q.cloned().unwrap_or(Qualifier::Latest));
        ControlError::NotFound(format!(
            "The function {arn} doesn't have an EventInvokeConfig"
        ))
    }

    fn config_view(
        &self,
        scope: &Scope,
        name: &FunctionName,
        key: &str,
        c: &EventInvokeConfig,
    ) -> wire::FunctionEventInvokeConfig {
        wire::FunctionEventInvokeConfig {
            last_modified: c.last_modified_ms as f64 / 1000.0,
            function_arn: format!("{}:{key}", scope.function_arn(name)),
            maximum_retry_attempts: c.maximum_retry_attempts,
            maximum_event_age_in_seconds: c.maximum_event_age_s,
            destination_config: wire::DestinationConfigResponse {
                on_success: wire::DestinationTarget {
                    destination: c.on_success.clone(),
                },
                on_failure: wire::DestinationTarget {
                    destination: c.on_failure.clone(),
                },
            },
        }
    }

    /// Checks one destination: it must be a function that exists (not the
    /// function itself) or an `http://` URL.
    async fn check_destination(
        &self,
        own_scope: &Scope,
        own_name: &FunctionName,
        slot: Slot,
        dest: &str,
        req: &wire::PutFunctionEventInvokeConfigRequest,
    ) -> Result<(), ControlError> {
        let invalid =
            || ControlError::InvalidParameter(format!("The destination ARN {dest} is invalid."));
        if dest.len() > DESTINATION_MAX_LEN {
            let mut v = ValidationErrors::new();
            v.push(
                slot.field(),
                dest,
                format!("Member must have length less than or equal to {DESTINATION_MAX_LEN}"),
            );
            return Err(ControlError::Validation(
                v.into_result().err().unwrap_or_default(),
            ));
        }
        match Destination::parse(dest) {
            Ok(Destination::Function {
                scope,
                name,
                qualifier,
            }) => {
                if scope == *own_scope && name == *own_name {
                    return Err(ControlError::InvalidParameter(
                        "You can't specify the function as a destination for itself.".into(),
                    ));
                }
                // Invoking another account's function would need its grant,
                // which this server does not evaluate: same account only (and
                // nothing is revealed about the other account).
                if scope.account != own_scope.account {
                    return Err(invalid());
                }
                let Some(target) = self.store.get_function(&scope, &name).await? else {
                    return Err(invalid());
                };
                if !qualifier_exists(&target.value, qualifier.as_ref()) {
                    return Err(invalid());
                }
                Ok(())
            }
            Ok(Destination::Http(_)) => Ok(()),
            Err(DestinationError::UnsupportedService(service)) => {
                if matches!(service.as_str(), "sqs" | "sns" | "events" | "s3") {
                    Err(ControlError::InvalidParameter(format!(
                        "The destination ARN {dest} is invalid. This server delivers to Lambda functions and http:// endpoints, not to {service}."
                    )))
                } else {
                    Err(ControlError::InvalidParameter(format!(
                        "The provided destination config {} is invalid.",
                        describe(req)
                    )))
                }
            }
            Err(DestinationError::Malformed) => {
                let mut v = ValidationErrors::new();
                v.push(
                    slot.field(),
                    dest,
                    format!(
                        "Member must satisfy regular expression pattern: {DESTINATION_PATTERN}"
                    ),
                );
                Err(ControlError::Validation(
                    v.into_result().err().unwrap_or_default(),
                ))
            }
        }
    }

    /// Validates a Put/Update body: the model's ranges, then each destination
    /// it sets (an empty one clears it).
    async fn checked(
        &self,
        scope: &Scope,
        name: &FunctionName,
        req: &wire::PutFunctionEventInvokeConfigRequest,
    ) -> Result<(), ControlError> {
        let mut v = ValidationErrors::new();
        if let Some(n) = req.maximum_retry_attempts {
            if n < 0 {
                v.push(
                    "maximumRetryAttempts",
                    &n.to_string(),
                    "Member must have value greater than or equal to 0",
                );
            } else if n > 2 {
                v.push(
                    "maximumRetryAttempts",
                    &n.to_string(),
                    "Member must have value less than or equal to 2",
                );
            }
        }
        if let Some(n) = req.maximum_event_age_in_seconds {
            if n < 60 {
                v.push(
                    "maximumEventAgeInSeconds",
                    &n.to_string(),
                    "Member must have value greater than or equal to 60",
                );
            } else if n > 21_600 {
                v.push(
                    "maximumEventAgeInSeconds",
                    &n.to_string(),
                    "Member must have value less than or equal to 21600",
                );
            }
        }
        v.into_result().map_err(ControlError::Validation)?;
        if let Some(d) = &req.destination_config {
            for (slot, t) in [
                (Slot::OnSuccess, &d.on_success),
                (Slot::OnFailure, &d.on_failure),
            ] {
                if let Some(dest) = t.as_ref().and_then(|t| t.destination.as_deref())
                    && !dest.is_empty()
                {
                    self.check_destination(scope, name, slot, dest, req).await?;
                }
            }
        }
        Ok(())
    }

    /// Resolves `{FunctionName}` and `Qualifier`, and loads the function.
    async fn config_target(
        &self,
        scope: &Scope,
        raw: &str,
        qualifier: Option<&str>,
    ) -> Result<(FunctionName, Option<Qualifier>, Option<FunctionRecord>), ControlError> {
        let t = self.qualified(scope, raw, qualifier)?;
        let record = self
            .store
            .get_function(scope, &t.name)
            .await?
            .map(|s| s.value)
            .filter(|r| qualifier_exists(r, t.qualifier.as_ref()));
        Ok((t.name, t.qualifier, record))
    }

    /// `PutFunctionEventInvokeConfig`: replaces the qualifier's settings.
    pub async fn put_event_invoke_config(
        &self,
        scope: &Scope,
        raw: &str,
        qualifier: Option<&str>,
        req: wire::PutFunctionEventInvokeConfigRequest,
    ) -> Result<wire::FunctionEventInvokeConfig, ControlError> {
        self.write_event_invoke_config(scope, raw, qualifier, req, false)
            .await
    }

    /// `UpdateFunctionEventInvokeConfig`: merges into existing settings.
    pub async fn update_event_invoke_config(
        &self,
        scope: &Scope,
        raw: &str,
        qualifier: Option<&str>,
        req: wire::PutFunctionEventInvokeConfigRequest,
    ) -> Result<wire::FunctionEventInvokeConfig, ControlError> {
        self.write_event_invoke_config(scope, raw, qualifier, req, true)
            .await
    }

    async fn write_event_invoke_config(
        &self,
        scope: &Scope,
        raw: &str,
        qualifier: Option<&str>,
        req: wire::PutFunctionEventInvokeConfigRequest,
        merge: bool,
    ) -> Result<wire::FunctionEventInvokeConfig, ControlError> {
        if req.maximum_retry_attempts.is_none()
            && req.maximum_event_age_in_seconds.is_none()
            && req.destination_config.is_none()
        {
            return Err(ControlError::InvalidParameter(
                "You must specify at least one of error handling or destination setting.".into(),
            ));
        }
        let (name, q, record) = self.config_target(scope, raw, qualifier).await?;
        if record.is_none() {
            return Err(function_does_not_exist());
        }
        self.checked(scope, &name, &req).await?;
        let k = key(q.as_ref());
        let now = model::time_fmt::now_ms();
        let (_, after) = self
            .modify(scope, &name, q.as_ref(), |rec| {
                if !qualifier_exists(rec, q.as_ref()) {
                    return Err(function_does_not_exist());
                }
                let mut c = if merge {
                    rec.event_invoke_configs
                        .get(&k)
                        .cloned()
                        .ok_or_else(|| self.no_config(scope, &name, q.as_ref()))?
                } else {
                    EventInvokeConfig::default()
                };
                if let Some(n) = req.maximum_retry_attempts {
                    c.maximum_retry_attempts = u32::try_from(n).ok();
                }
                if let Some(n) = req.maximum_event_age_in_seconds {
                    c.maximum_event_age_s = u32::try_from(n).ok();
                }
                if let Some(d) = &req.destination_config {
                    let pick = |t: &Option<wire::DestinationTarget>, old: &Option<String>| match t {
                        Some(t) => t.destination.clone().filter(|d| !d.is_empty()),
                        None if merge => old.clone(),
                        None => None,
                    };
                    c.on_success = pick(&d.on_success, &c.on_success);
                    c.on_failure = pick(&d.on_failure, &c.on_failure);
                }
                c.last_modified_ms = now;
                rec.event_invoke_configs.insert(k.clone(), c);
                Ok(())
            })
            .await?;
        let c = after
            .event_invoke_configs
            .get(&k)
            .cloned()
            .unwrap_or_default();
        Ok(self.config_view(scope, &name, &k, &c))
    }

    /// `GetFunctionEventInvokeConfig`.
    pub async fn get_event_invoke_config(
        &self,
        scope: &Scope,
        raw: &str,
        qualifier: Option<&str>,
    ) -> Result<wire::FunctionEventInvokeConfig, ControlError> {
        let (name, q, record) = self.config_target(scope, raw, qualifier).await?;
        let k = key(q.as_ref());
        let c = record
            .and_then(|r| r.event_invoke_configs.get(&k).cloned())
            .ok_or_else(|| self.no_config(scope, &name, q.as_ref()))?;
        Ok(self.config_view(scope, &name, &k, &c))
    }

    /// `DeleteFunctionEventInvokeConfig`.
    pub async fn delete_event_invoke_config(
        &self,
        scope: &Scope,
        raw: &str,
        qualifier: Option<&str>,
    ) -> Result<(), ControlError> {
        let (name, q, record) = self.config_target(scope, raw, qualifier).await?;
        let k = key(q.as_ref());
        if !record.is_some_and(|r| r.event_invoke_configs.contains_key(&k)) {
            return Err(self.no_config(scope, &name, q.as_ref()));
        }
        self.modify(scope, &name, q.as_ref(), |rec| {
            rec.event_invoke_configs
                .remove(&k)
                .map(drop)
                .ok_or_else(|| self.no_config(scope, &name, q.as_ref()))
        })
        .await?;
        Ok(())
    }

    /// `ListFunctionEventInvokeConfigs`: every qualifier's settings, paged.
    pub async fn list_event_invoke_configs(
        &self,
        scope: &Scope,
        raw: &str,
        marker: Option<&str>,
        max_items: Option<&str>,
    ) -> Result<wire::ListFunctionEventInvokeConfigsResponse, ControlError> {
        let r = resolve_ref(scope, raw)?;
        let size = PageLimit::FIFTY.size(max_items)?;
        let record = self
            .store
            .get_function(scope, &r.name)
            .await?
            .ok_or_else(function_does_not_exist)?
            .value;
        let after_marker = record
            .event_invoke_configs
            .iter()
            .filter(|(k, _)| marker.is_none_or(|m| k.as_str() > m));
        let p = page(after_marker, size, |(k, _)| (*k).clone());
        Ok(wire::ListFunctionEventInvokeConfigsResponse {
            function_event_invoke_configs: p
                .items
                .into_iter()
                .map(|(k, c)| self.config_view(scope, &r.name, k, c))
                .collect(),
            next_marker: p.next,
        })
    }

    /// Checks a `DeadLetterConfig.TargetArn`: a function that exists, or an
    /// `http://` URL. (AWS takes SQS queues and SNS topics, which this server
    /// does not run.)
    pub(crate) async fn check_dead_letter_target(
        &self,
        own_scope: &Scope,
        target: &str,
    ) -> Result<(), ControlError> {
        let invalid = |why: &str| {
            ControlError::InvalidParameter(format!(
                "The provided dead letter target {target} is invalid: {why}"
            ))
        };
        match Destination::parse(target) {
            Ok(Destination::Http(_)) => Ok(()),
            Ok(Destination::Function {
                scope,
                name,
                qualifier,
            }) => {
                if scope.account != own_scope.account {
                    return Err(invalid(
                        "functions of other accounts cannot be dead-letter targets",
                    ));
                }
                let exists = self
                    .store
                    .get_function(&scope, &name)
                    .await?
                    .is_some_and(|r| qualifier_exists(&r.value, qualifier.as_ref()));
                if exists {
                    Ok(())
                } else {
                    Err(invalid("the function does not exist"))
                }
            }
            Err(DestinationError::UnsupportedService(s)) => Err(invalid(&format!(
                "this server delivers dead letters to Lambda functions and http:// endpoints, not to {s}"
            ))),
            Err(DestinationError::Malformed) => {
                let mut v = ValidationErrors::new();
                v.push(
                    "deadLetterConfig.targetArn",
                    target,
                    format!(
                        "Member must satisfy regular expression pattern: {DEAD_LETTER_PATTERN}"
                    ),
                );
                Err(ControlError::Validation(
                    v.into_result().err().unwrap_or_default(),
                ))
            }
        }
    }
}

/// The request as AWS's message about an unusable destination shows it.
fn describe(req: &wire::PutFunctionEventInvokeConfigRequest) -> String {
    let d = req.destination_config.clone().unwrap_or_default();
    let one = |kind: &str, t: &Option<wire::DestinationTarget>| match t {
        Some(t) => format!(
            "{kind}(destination={})",
            t.destination.as_deref().unwrap_or("null")
        ),
        None => "null".into(),
    };
    format!(
        "DestinationConfig(onSuccess={}, onFailure={})",
        one("OnSuccess", &d.on_success),
        one("OnFailure", &d.on_failure)
    )
}
