//! Published versions (`/functions/{FunctionName}/versions`) and aliases
//! (`/functions/{FunctionName}/aliases`).

use std::collections::BTreeMap;

use api_types as wire;
use model::function::{FunctionState, UpdateStatus};
use model::names::ValidationErrors;
use model::{Alias, FunctionName, FunctionRecord, Qualifier, Scope, Weight};

use crate::page::{PageLimit, page};
use crate::view::{self, Context};
use crate::{Control, ControlError, function_not_found};

const ALIAS_PATTERN: &str = "(?!^[0-9]+$)([a-zA-Z0-9-_]+)";
const VERSION_PATTERN: &str = r"(\$LATEST|[0-9]+)";

fn new_revision() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn revision_mismatch() -> ControlError {
    ControlError::PreconditionFailed(
        "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id".into(),
    )
}

fn validation(field: &str, value: &str, constraint: String) -> ControlError {
    let mut v = ValidationErrors::new();
    v.push(field, value, constraint);
    ControlError::Validation(v.into_result().err().unwrap_or_default())
}

/// A double as Java prints it in AWS's messages (`2.0`, `-1.0`, `0.25`).
fn java_double(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.1}")
    } else {
        format!("{x}")
    }
}

/// Publishes `$LATEST` as the next version unless it has not changed since
/// the last publish; returns the version number either way.
pub(crate) fn publish(rec: &mut FunctionRecord, description: Option<&str>) -> u64 {
    if let Some((revision, n)) = &rec.last_published
        && *revision == rec.latest.revision_id
        && rec.versions.contains_key(n)
    {
        return *n;
    }
    let n = rec.last_version + 1;
    let mut v = rec.latest.clone();
    v.version = n.to_string();
    v.revision_id = new_revision();
    v.state = FunctionState::Active;
    v.last_update_status = UpdateStatus::Successful;
    if let Some(d) = description {
        v.description = d.to_owned();
    }
    rec.versions.insert(n, v);
    rec.last_version = n;
    rec.latest.revision_id = new_revision();
    rec.last_published = Some((rec.latest.revision_id.clone(), n));
    n
}

/// The aliases that send traffic to `version`.
fn aliases_using(rec: &FunctionRecord, version: &str) -> Vec<String> {
    rec.aliases
        .values()
        .filter(|a| {
            a.function_version == version || a.additional_version_weights.contains_key(version)
        })
        .map(|a| a.name.clone())
        .collect()
}

impl Control {
    fn alias_view(
        &self,
        scope: &Scope,
        name: &FunctionName,
        a: &Alias,
    ) -> wire::AliasConfiguration {
        let mut arn = scope.function_arn(name);
        arn.qualifier = Some(Qualifier::Alias(a.name.clone()));
        wire::AliasConfiguration {
            alias_arn: arn.to_string(),
            name: a.name.clone(),
            function_version: a.function_version.clone(),
            description: a.description.clone(),
            routing_config: (!a.additional_version_weights.is_empty()).then(|| {
                wire::AliasRoutingConfiguration {
                    additional_version_weights: Some(
                        a.additional_version_weights
                            .iter()
                            .map(|(k, w)| (k.clone(), w.0))
                            .collect(),
                    ),
                }
            }),
            revision_id: a.revision_id.clone(),
        }
    }

    /// `PublishVersion` (201).
    pub async fn publish_version(
        &self,
        scope: &Scope,
        raw: &str,
        req: wire::PublishVersionRequest,
    ) -> Result<wire::FunctionConfiguration, ControlError> {
        let t = self.unversioned(scope, raw)?;
        // A new version keeps $LATEST's package once more: it must fit the
        // account's code storage (under the package lock, as uploads check).
        let _guard = self.blob_lock.lock().await;
        let current = self.load(scope, &t.name, None).await?.value;
        let unchanged = current
            .last_published
            .as_ref()
            .is_some_and(|(revision, n)| {
                *revision == current.latest.revision_id && current.versions.contains_key(n)
            });
        if !unchanged {
            self.check_code_storage(scope, current.latest.code.size, 0)
                .await?;
        }
        let mut published = 0;
        let (_, after) = self
            .modify(scope, &t.name, None, |rec| {
                if let Some(r) = &req.revision_id
                    && *r != rec.latest.revision_id
                {
                    return Err(revision_mismatch());
                }
                if let Some(sha) = &req.code_sha256
                    && *sha != rec.latest.code.sha256_b64
                {
                    return Err(ControlError::InvalidParameter(format!(
                        "CodeSHA256 ({sha}) is different from current CodeSHA256 in $LATEST ({}). Please try again with the CodeSHA256 in $LATEST.",
                        rec.latest.code.sha256_b64
                    )));
                }
                published = publish(rec, req.description.as_deref());
                Ok(())
            })
            .await?;
        let v = after.versions.get(&published).ok_or_else(|| {
            function_not_found(scope, &t.name, Some(&Qualifier::Version(published)))
        })?;
        Ok(view::configuration(
            scope,
            v,
            &self.catalog,
            Context::Read,
            true,
        ))
    }

    /// `ListVersionsByFunction`: `$LATEST`, then versions in ascending order.
    pub async fn list_versions(
        &self,
        scope: &Scope,
        raw: &str,
        marker: Option<&str>,
        max_items: Option<&str>,
    ) -> Result<wire::ListVersionsByFunctionResponse, ControlError> {
        let name = self.qualified(scope, raw, None)?.name;
        let size = PageLimit::VERSIONS.size(max_items)?;
        let rec = self.load(scope, &name, None).await?.value;
        // Position in the sequence $LATEST (0), 1, 2, ...
        let start = match marker {
            None | Some("") => 0,
            // A marker this server did not issue lists nothing (rather than
            // starting over, which could loop a client).
            Some(m) => m.parse::<u64>().map(|n| n + 1).unwrap_or(u64::MAX),
        };
        let all =
            std::iter::once((0u64, &rec.latest)).chain(rec.versions.iter().map(|(n, c)| (*n, c)));
        let p = page(all.filter(|(pos, _)| *pos >= start), size, |(n, _)| {
            n.to_string()
        });
        Ok(wire::ListVersionsByFunctionResponse {
            next_marker: p.next,
            versions: p
                .items
                .into_iter()
                .map(|(_, c)| view::configuration(scope, c, &self.catalog, Context::Listed, true))
                .collect(),
        })
    }

    /// Checks an alias's versions and routing; returns the weights to store.
    fn check_routing(
        &self,
        scope: &Scope,
        rec: &FunctionRecord,
        version: &str,
        routing: Option<&wire::AliasRoutingConfiguration>,
    ) -> Result<BTreeMap<String, Weight>, ControlError> {
        let weights = routing
            .and_then(|r| r.additional_version_weights.clone())
            .unwrap_or_default();
        for (k, w) in &weights {
            if k.is_empty() || k.len() > 1024 || !k.bytes().all(|b| b.is_ascii_digit()) {
                return Err(validation(
                    "routingConfig.additionalVersionWeights",
                    &format!("{{{k}={}}}", java_double(*w)),
                    "Map keys must satisfy constraint: [Member must have length less than or equal to 1024, Member must have length greater than or equal to 1, Member must satisfy regular expression pattern: [0-9]+]".into(),
                ));
            }
            if !(0.0..=1.0).contains(w) {
                return Err(validation(
                    "routingConfig.additionalVersionWeights",
                    &format!("{{{k}={}}}", java_double(*w)),
                    "Map value must satisfy constraint: [Member must have value less than or equal to 1.0, Member must have value greater than or equal to 0.0, Member must not be null]".into(),
                ));
            }
        }
        if weights.len() > 1 {
            return Err(ControlError::InvalidParameter(
                "Number of items in AdditionalVersionWeights cannot be greater than 1".into(),
            ));
        }
        let exists = |v: &str| {
            Qualifier::parse(v)
                .ok()
                .filter(|q| !matches!(q, Qualifier::Alias(_)))
                .is_some_and(|q| rec.version(Some(&q)).is_some())
        };
        let not_found = |v: &str| {
            let mut arn = scope.function_arn(&rec.latest.name);
            arn.qualifier = Qualifier::parse(v).ok();
            ControlError::NotFound(format!("Function not found: {arn}"))
        };
        if !exists(version) {
            return Err(not_found(version));
        }
        if let Some(k) = weights.keys().next() {
            if k == version {
                return Err(ControlError::InvalidParameter(format!(
                    "Invalid function version {k}. Function version {k} is already included in routing configuration."
                )));
            }
            if version == Qualifier::LATEST {
                return Err(ControlError::InvalidParameter(
                    "$LATEST is not supported for an alias pointing to more than 1 version".into(),
                ));
            }
            if !exists(k) {
                return Err(not_found(k));
            }
        }
        Ok(weights.into_iter().map(|(k, w)| (k, Weight(w))).collect())
    }

    /// `CreateAlias` (201).
    pub async fn create_alias(
        &self,
        scope: &Scope,
        raw: &str,
        req: wire::CreateAliasRequest,
    ) -> Result<wire::AliasConfiguration, ControlError> {
        let name = self.qualified(scope, raw, None)?.name;
        let mut v = ValidationErrors::new();
        let alias = req.name.clone().unwrap_or_default();
        if req.name.is_none() {
            v.push_null("name", "Member must not be null");
        } else if !valid_alias(&alias) {
            v.push(
                "name",
                &alias,
                format!("Member must satisfy regular expression pattern: {ALIAS_PATTERN}"),
            );
        }
        let version = req.function_version.clone().unwrap_or_default();
        if req.function_version.is_none() {
            v.push_null("functionVersion", "Member must not be null");
        } else if !valid_version(&version) {
            v.push(
                "functionVersion",
                &version,
                format!("Member must satisfy regular expression pattern: {VERSION_PATTERN}"),
            );
        }
        if req
            .description
            .as_ref()
            .is_some_and(|d| d.chars().count() > 256)
        {
            v.push(
                "description",
                req.description.as_deref().unwrap_or_default(),
                "Member must have length less than or equal to 256",
            );
        }
        v.into_result().map_err(ControlError::Validation)?;
        let version_arn = || {
            let mut arn = scope.function_arn(&name);
            arn.qualifier = Qualifier::parse(&version).ok();
            ControlError::NotFound(format!("Function not found: {arn}"))
        };
        let rec = self
            .store
            .get_function(scope, &name)
            .await?
            .ok_or_else(version_arn)?
            .value;
        self.check_routing(scope, &rec, &version, req.routing_config.as_ref())?;
        let (_, after) = self
            .modify(scope, &name, None, |rec| {
                if rec.aliases.contains_key(&alias) {
                    let mut arn = scope.function_arn(&name);
                    arn.qualifier = Some(Qualifier::Alias(alias.clone()));
                    return Err(ControlError::Conflict(format!(
                        "Alias already exists: {arn}"
                    )));
                }
                let weights =
                    self.check_routing(scope, rec, &version, req.routing_config.as_ref())?;
                rec.aliases.insert(
                    alias.clone(),
                    Alias {
                        name: alias.clone(),
                        function_version: version.clone(),
                        description: req.description.clone().unwrap_or_default(),
                        additional_version_weights: weights,
                        revision_id: new_revision(),
                    },
                );
                Ok(())
            })
            .await?;
        let a = after
            .aliases
            .get(&alias)
            .ok_or_else(|| self.alias_missing(scope, &name, &alias, "Cannot find alias arn"))?;
        Ok(self.alias_view(scope, &name, a))
    }

    fn alias_missing(
        &self,
        scope: &Scope,
        name: &FunctionName,
        alias: &str,
        lead: &str,
    ) -> ControlError {
        let mut arn = scope.function_arn(name);
        arn.qualifier = Some(Qualifier::Alias(alias.to_owned()));
        ControlError::NotFound(format!("{lead}: {arn}"))
    }

    /// `GetAlias`.
    pub async fn get_alias(
        &self,
        scope: &Scope,
        raw: &str,
        alias: &str,
    ) -> Result<wire::AliasConfiguration, ControlError> {
        let name = self.qualified(scope, raw, None)?.name;
        let rec = self.load(scope, &name, None).await?.value;
        let a = rec
            .aliases
            .get(alias)
            .ok_or_else(|| self.alias_missing(scope, &name, alias, "Cannot find alias arn"))?;
        Ok(self.alias_view(scope, &name, a))
    }

    /// `UpdateAlias`: fields not sent stay; the alias gets a new revision.
    pub async fn update_alias(
        &self,
        scope: &Scope,
        raw: &str,
        alias: &str,
        req: wire::UpdateAliasRequest,
    ) -> Result<wire::AliasConfiguration, ControlError> {
        let name = self.qualified(scope, raw, None)?.name;
        if let Some(v) = &req.function_version
            && !valid_version(v)
        {
            return Err(validation(
                "functionVersion",
                v,
                format!("Member must satisfy regular expression pattern: {VERSION_PATTERN}"),
            ));
        }
        let (_, after) = self
            .modify(scope, &name, None, |rec| {
                let current =
                    rec.aliases.get(alias).cloned().ok_or_else(|| {
                        self.alias_missing(scope, &name, alias, "Alias not found")
                    })?;
                if let Some(r) = &req.revision_id
                    && *r != current.revision_id
                {
                    return Err(revision_mismatch());
                }
                let version = req
                    .function_version
                    .clone()
                    .unwrap_or_else(|| current.function_version.clone());
                let kept;
                let routing = match &req.routing_config {
                    Some(r) => Some(r),
                    None => {
                        kept = wire::AliasRoutingConfiguration {
                            additional_version_weights: Some(
                                current
                                    .additional_version_weights
                                    .iter()
                                    .map(|(k, w)| (k.clone(), w.0))
                                    .collect(),
                            ),
                        };
                        Some(&kept)
                    }
                };
                let weights = self.check_routing(scope, rec, &version, routing)?;
                rec.aliases.insert(
                    alias.to_owned(),
                    Alias {
                        name: alias.to_owned(),
                        function_version: version,
                        description: req.description.clone().unwrap_or(current.description),
                        additional_version_weights: weights,
                        revision_id: new_revision(),
                    },
                );
                Ok(())
            })
            .await?;
        let a = after
            .aliases
            .get(alias)
            .ok_or_else(|| self.alias_missing(scope, &name, alias, "Alias not found"))?;
        Ok(self.alias_view(scope, &name, a))
    }

    /// `DeleteAlias` (204, also when the alias does not exist). Its event
    /// invoke config, provisioned concurrency and policy go with it.
    pub async fn delete_alias(
        &self,
        scope: &Scope,
        raw: &str,
        alias: &str,
    ) -> Result<(), ControlError> {
        let name = self.qualified(scope, raw, None)?.name;
        let rec = self.load(scope, &name, None).await?.value;
        if !rec.aliases.contains_key(alias) {
            return Ok(());
        }
        self.modify(scope, &name, None, |rec| {
            rec.aliases.remove(alias);
            rec.event_invoke_configs.remove(alias);
            rec.provisioned.remove(alias);
            rec.policies.remove(alias);
            rec.urls.remove(alias);
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// `ListAliases`, by name, optionally only those routing to a version.
    pub async fn list_aliases(
        &self,
        scope: &Scope,
        raw: &str,
        function_version: Option<&str>,
        marker: Option<&str>,
        max_items: Option<&str>,
    ) -> Result<wire::ListAliasesResponse, ControlError> {
        let name = self.qualified(scope, raw, None)?.name;
        let size = PageLimit::VERSIONS.size(max_items)?;
        let rec = self.load(scope, &name, None).await?.value;
        let matching = rec
            .aliases
            .values()
            .filter(|a| marker.is_none_or(|m| a.name.as_str() > m))
            .filter(|a| {
                function_version.is_none_or(|v| {
                    a.function_version == v || a.additional_version_weights.contains_key(v)
                })
            });
        let p = page(matching, size, |a: &&Alias| a.name.clone());
        Ok(wire::ListAliasesResponse {
            next_marker: p.next,
            aliases: p
                .items
                .into_iter()
                .map(|a| self.alias_view(scope, &name, a))
                .collect(),
        })
    }

    /// `DeleteFunction` with a version qualifier: removes that version (and
    /// what belongs to it) unless an alias routes to it.
    pub(crate) async fn delete_version(
        &self,
        scope: &Scope,
        name: &FunctionName,
        n: u64,
    ) -> Result<(), ControlError> {
        let rec = self.load(scope, name, None).await?.value;
        if !rec.versions.contains_key(&n) {
            return Ok(());
        }
        let key = n.to_string();
        let (before, _) = self
            .modify(scope, name, None, |rec| {
                let users = aliases_using(rec, &key);
                if !users.is_empty() {
                    return Err(ControlError::Conflict(format!(
                        "Unable to delete version because the following aliases reference it: [{}]",
                        users.join(", ")
                    )));
                }
                rec.versions.remove(&n);
                rec.event_invoke_configs.remove(&key);
                rec.provisioned.remove(&key);
                rec.policies.remove(&key);
                Ok(())
            })
            .await?;
        if let Some(v) = before.versions.get(&n) {
            self.collect_package(&v.code.digest_hex).await;
            for l in &v.layers {
                self.collect_package(&l.code.digest_hex).await;
            }
        }
        Ok(())
    }
}

fn valid_alias(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !s.bytes().all(|b| b.is_ascii_digit())
}

fn valid_version(s: &str) -> bool {
    s == Qualifier::LATEST
        || (!s.is_empty() && s.len() <= 1024 && s.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_print_as_java_does() {
        assert_eq!(java_double(2.0), "2.0");
        assert_eq!(java_double(-1.0), "-1.0");
        assert_eq!(java_double(0.25), "0.25");
    }

    #[test]
    fn alias_and_version_patterns() {
        assert!(valid_alias("live") && valid_alias("2024-01-02") && !valid_alias("2024"));
        assert!(!valid_alias("a:b") && !valid_alias(""));
        assert!(valid_version("$LATEST") && valid_version("12") && !valid_version("v1"));
    }
}
