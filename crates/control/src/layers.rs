//! Layers (`/2018-10-31/layers`): publishing, reading, listing and deleting
//! versions, their permissions, and resolving the layers a function names.

use api_types as wire;
use model::names::ValidationErrors;
use model::{LayerRecord, LayerVersion, Policy, Scope, limits};
use store::StoreError;

use crate::page::{PageLimit, page};
use crate::policy;
use crate::{Control, ControlError};

/// Runtimes the API lists for layers (AWS prints this list; deprecated
/// identifiers are accepted too).
const RUNTIME_ENUM: &str = "nodejs20.x, python3.14, provided.al2023, python3.12, python3.13, nodejs24.x, nodejs22.x, java25, python3.10, python3.11, java21, ruby3.3, ruby3.4, ruby3.2, python3.8, python3.9, java17, nodejs16.x, dotnet10, dotnet8, java11, dotnet6, nodejs18.x, provided.al2, java8.al2";
const DEPRECATED_RUNTIMES: &[&str] = &[
    "python3.7",
    "python3.6",
    "python2.7",
    "nodejs12.x",
    "nodejs14.x",
    "nodejs10.x",
    "java8",
    "dotnetcore3.1",
    "dotnetcore2.1",
    "go1.x",
    "ruby2.7",
    "ruby2.5",
    "provided",
];
const LAYER_VERSION_ARN_PATTERN: &str = r"(arn:(aws[a-zA-Z-]*)?:lambda:(eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:\d{12}:layer:[a-zA-Z0-9-_]+:[0-9]+)|(arn:[a-zA-Z0-9-]+:lambda:::awslayer:[a-zA-Z0-9-_]+)";
const LAYER_NAME_PATTERN: &str = r"(arn:(aws[a-zA-Z-]*)?:lambda:(eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:\d{12}:layer:[a-zA-Z0-9-_]+)|[a-zA-Z0-9-_]+";

fn does_not_exist() -> ControlError {
    ControlError::NotFound("The resource you requested does not exist.".into())
}

fn known_runtime(r: &str) -> bool {
    RUNTIME_ENUM.split(", ").any(|k| k == r) || DEPRECATED_RUNTIMES.contains(&r)
}

fn list(v: &[String]) -> String {
    format!("[{}]", v.join(", "))
}

/// A layer version ARN's parts: (scope, layer name, version).
pub(crate) fn parse_version_arn(arn: &str) -> Option<(Scope, String, u64)> {
    let p: Vec<&str> = arn.split(':').collect();
    let [
        "arn",
        partition,
        "lambda",
        region,
        account,
        "layer",
        name,
        version,
    ] = p.as_slice()
    else {
        return None;
    };
    if !partition.starts_with("aws") || !model::layer::valid_layer_name(name) {
        return None;
    }
    let version = version
        .parse::<u64>()
        .ok()
        .filter(|_| version.bytes().all(|b| b.is_ascii_digit()))?;
    let scope = Scope::new(
        model::AccountId::parse(account).ok()?,
        model::Region::parse(region).ok()?,
    );
    Some((scope, (*name).to_owned(), version))
}

/// Whether a layer version of another account is shared with `caller`
/// (AddLayerVersionPermission to `*` or to the caller's account).
fn shared_with(v: &LayerVersion, caller: &Scope) -> bool {
    let account_root = caller.account_root();
    v.policy.statements.iter().any(|s| {
        serde_json::from_str::<serde_json::Value>(&s.json).is_ok_and(|st| {
            let p = &st["Principal"];
            // A grant limited by a condition (an organisation) cannot be
            // evaluated here: it shares with nobody.
            st.get("Condition").is_none() && (p == "*" || p["AWS"] == account_root.as_str())
        })
    })
}

fn not_shared(caller: &Scope, arn: &str) -> ControlError {
    ControlError::AccessDenied(format!(
        "User: {} is not authorized to perform: lambda:GetLayerVersion on resource: {arn} because no resource-based policy allows the lambda:GetLayerVersion action",
        caller.account_root()
    ))
}

impl Control {
    /// A `{LayerName}` (a name or a layer ARN) as a name in a scope.
    fn layer_name(&self, scope: &Scope, raw: &str) -> Result<(Scope, String), ControlError> {
        if model::layer::valid_layer_name(raw) {
            return Ok((scope.clone(), raw.to_owned()));
        }
        let p: Vec<&str> = raw.split(':').collect();
        if let ["arn", _, "lambda", region, account, "layer", name] = p.as_slice()
            && model::layer::valid_layer_name(name)
            && let (Ok(a), Ok(r)) = (
                model::AccountId::parse(account),
                model::Region::parse(region),
            )
        {
            return Ok((Scope::new(a, r), (*name).to_owned()));
        }
        let mut v = ValidationErrors::new();
        v.push(
            "layerName",
            raw,
            format!("Member must satisfy regular expression pattern: {LAYER_NAME_PATTERN}"),
        );
        Err(ControlError::Validation(
            v.into_result().err().unwrap_or_default(),
        ))
    }

    fn layer_arn(scope: &Scope, name: &str) -> String {
        format!(
            "arn:{}:lambda:{}:{}:layer:{name}",
            scope.partition(),
            scope.region,
            scope.account
        )
    }

    fn version_item(scope: &Scope, name: &str, v: &LayerVersion) -> wire::LayerVersionsListItem {
        wire::LayerVersionsListItem {
            layer_version_arn: format!("{}:{}", Self::layer_arn(scope, name), v.version),
            version: v.version,
            description: v.description.clone(),
            created_date: model::time_fmt::last_modified(v.created_ms),
            compatible_runtimes: v.compatible_runtimes.clone(),
            compatible_architectures: v.compatible_architectures.clone(),
            license_info: v.license_info.clone(),
        }
    }

    fn version_view(
        &self,
        scope: &Scope,
        name: &str,
        v: &LayerVersion,
        now_s: i64,
    ) -> wire::LayerVersionResponse {
        wire::LayerVersionResponse {
            content: wire::LayerVersionContentOutput {
                location: self.code_urls.link(&v.code.digest_hex, now_s),
                code_sha256: v.code.sha256_b64.clone(),
                code_size: v.code.size,
            },
            layer_arn: Self::layer_arn(scope, name),
            layer_version_arn: format!("{}:{}", Self::layer_arn(scope, name), v.version),
            description: v.description.clone(),
            created_date: model::time_fmt::last_modified(v.created_ms),
            version: v.version,
            compatible_runtimes: v.compatible_runtimes.clone(),
            compatible_architectures: v.compatible_architectures.clone(),
            license_info: v.license_info.clone(),
        }
    }

    /// `PublishLayerVersion` (201).
    pub async fn publish_layer_version(
        &self,
        scope: &Scope,
        raw: &str,
        req: wire::PublishLayerVersionRequest,
        now_s: i64,
    ) -> Result<wire::LayerVersionResponse, ControlError> {
        let (lscope, name) = self.layer_name(scope, raw)?;
        if lscope != *scope {
            return Err(not_shared(scope, &Self::layer_arn(&lscope, &name)));
        }
        let mut v = ValidationErrors::new();
        if let Some(rs) = &req.compatible_runtimes {
            if rs.len() > 15 {
                v.push(
                    "compatibleRuntimes",
                    &list(rs),
                    "Member must have length less than or equal to 15",
                );
            } else if !rs.iter().all(|r| known_runtime(r)) {
                v.push(
                    "compatibleRuntimes",
                    &list(rs),
                    format!("Member must satisfy enum value set: [{RUNTIME_ENUM}]"),
                );
            }
        }
        if let Some(a) = &req.compatible_architectures {
            if a.len() > 2 {
                v.push(
                    "compatibleArchitectures",
                    &list(a),
                    "Member must have length less than or equal to 2",
                );
            } else if !a.iter().all(|x| x == "x86_64" || x == "arm64") {
                v.push(
                    "compatibleArchitectures",
                    &list(a),
                    "Member must satisfy constraint: [Member must satisfy enum value set: [x86_64, arm64], Member must not be null]",
                );
            }
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
        if req
            .license_info
            .as_ref()
            .is_some_and(|d| d.chars().count() > 512)
        {
            v.push(
                "licenseInfo",
                req.license_info.as_deref().unwrap_or_default(),
                "Member must have length less than or equal to 512",
            );
        }
        let Some(content) = &req.content else {
            v.push_null("content", "Member must not be null");
            return Err(ControlError::Validation(
                v.into_result().err().unwrap_or_default(),
            ));
        };
        v.into_result().map_err(ControlError::Validation)?;
        let zip_b64 = crate::functions::code_source(
            content.zip_file.as_deref(),
            content.s3_bucket.as_deref(),
            None,
        )?;
        let guard = self.blob_lock.lock().await;
        let code = self.store_package(scope, zip_b64, 1, 0).await?;
        let now = model::time_fmt::now_ms();
        let mut published = None;
        for _ in 0..crate::functions::CAS_ATTEMPTS {
            let stored = self.store.get_layer(scope, &name).await?;
            let (mut rec, etag) = match stored {
                Some(s) => (s.value, Some(s.etag)),
                None => (
                    LayerRecord {
                        name: name.clone(),
                        versions: Default::default(),
                        last_version: 0,
                    },
                    None,
                ),
            };
            let n = rec.last_version + 1;
            let version = LayerVersion {
                version: n,
                description: req.description.clone().unwrap_or_default(),
                compatible_runtimes: req.compatible_runtimes.clone(),
                compatible_architectures: req.compatible_architectures.clone(),
                license_info: req.license_info.clone(),
                code: code.clone(),
                created_ms: now,
                policy: Policy::default(),
            };
            rec.versions.insert(n, version.clone());
            rec.last_version = n;
            match self.store.put_layer(scope, &rec, etag).await {
                Ok(_) => {
                    published = Some(version);
                    break;
                }
                Err(StoreError::Conflict { .. } | StoreError::AlreadyExists { .. }) => continue,
                Err(e) => {
                    drop(guard);
                    self.collect_package(&code.digest_hex).await;
                    return Err(e.into());
                }
            }
        }
        drop(guard);
        let Some(version) = published else {
            self.collect_package(&code.digest_hex).await;
            return Err(ControlError::Conflict(format!(
                "The operation cannot be performed at this time. An update is in progress for resource: {}",
                Self::layer_arn(scope, &name)
            )));
        };
        Ok(self.version_view(scope, &name, &version, now_s))
    }

    fn version_number(raw: &str) -> Result<u64, ControlError> {
        match raw.parse::<i64>() {
            Ok(n) if n >= 1 => Ok(n as u64),
            _ => Err(ControlError::InvalidParameter(
                "Layer Version Cannot be less than 1".into(),
            )),
        }
    }

    /// `GetLayerVersion`.
    pub async fn get_layer_version(
        &self,
        scope: &Scope,
        raw: &str,
        version: &str,
        now_s: i64,
    ) -> Result<wire::LayerVersionResponse, ControlError> {
        let (lscope, name) = self.layer_name(scope, raw)?;
        let n = Self::version_number(version)?;
        let rec = self
            .store
            .get_layer(&lscope, &name)
            .await?
            .ok_or_else(does_not_exist)?
            .value;
        let v = rec.versions.get(&n).ok_or_else(does_not_exist)?;
        if lscope.account != scope.account && !shared_with(v, scope) {
            return Err(not_shared(
                scope,
                &format!("{}:{n}", Self::layer_arn(&lscope, &name)),
            ));
        }
        Ok(self.version_view(&lscope, &name, v, now_s))
    }

    /// `GetLayerVersionByArn`.
    pub async fn get_layer_version_by_arn(
        &self,
        scope: &Scope,
        arn: &str,
        now_s: i64,
    ) -> Result<wire::LayerVersionResponse, ControlError> {
        let Some((lscope, name, n)) = parse_version_arn(arn) else {
            let mut v = ValidationErrors::new();
            v.push(
                "arn",
                arn,
                format!(
                    "Member must satisfy regular expression pattern: {LAYER_VERSION_ARN_PATTERN}"
                ),
            );
            return Err(ControlError::Validation(
                v.into_result().err().unwrap_or_default(),
            ));
        };
        let rec = self
            .store
            .get_layer(&lscope, &name)
            .await?
            .ok_or_else(does_not_exist)?
            .value;
        let v = rec.versions.get(&n).ok_or_else(does_not_exist)?;
        if lscope.account != scope.account && !shared_with(v, scope) {
            return Err(not_shared(
                scope,
                &format!("{}:{n}", Self::layer_arn(&lscope, &name)),
            ));
        }
        Ok(self.version_view(&lscope, &name, v, now_s))
    }

    fn check_filters(runtime: Option<&str>, arch: Option<&str>) -> Result<(), ControlError> {
        if let Some(r) = runtime
            && !known_runtime(r)
        {
            let mut v = ValidationErrors::new();
            v.push(
                "compatibleRuntime",
                r,
                format!("Member must satisfy enum value set: [{RUNTIME_ENUM}]"),
            );
            return Err(ControlError::Validation(
                v.into_result().err().unwrap_or_default(),
            ));
        }
        if let Some(a) = arch
            && a != "x86_64"
            && a != "arm64"
        {
            let mut v = ValidationErrors::new();
            v.push(
                "compatibleArchitecture",
                a,
                "Member must satisfy enum value set: [x86_64, arm64]",
            );
            return Err(ControlError::Validation(
                v.into_result().err().unwrap_or_default(),
            ));
        }
        Ok(())
    }

    fn matches(v: &LayerVersion, runtime: Option<&str>, arch: Option<&str>) -> bool {
        let has = |list: &Option<Vec<String>>, x: &str| {
            list.as_ref().is_some_and(|l| l.iter().any(|y| y == x))
        };
        runtime.is_none_or(|r| has(&v.compatible_runtimes, r))
            && arch.is_none_or(|a| has(&v.compatible_architectures, a))
    }

    /// `ListLayerVersions`: newest first; an unknown layer lists nothing.
    pub async fn list_layer_versions(
        &self,
        scope: &Scope,
        raw: &str,
        runtime: Option<&str>,
        arch: Option<&str>,
        marker: Option<&str>,
        max_items: Option<&str>,
    ) -> Result<wire::ListLayerVersionsResponse, ControlError> {
        let (lscope, name) = self.layer_name(scope, raw)?;
        Self::check_filters(runtime, arch)?;
        if lscope.account != scope.account {
            return Err(not_shared(scope, &Self::layer_arn(&lscope, &name)));
        }
        let size = PageLimit::FIFTY.size(max_items)?;
        let below = marker
            .and_then(|m| m.parse::<u64>().ok())
            .unwrap_or(u64::MAX);
        let rec = self.store.get_layer(&lscope, &name).await?.map(|s| s.value);
        let matching = rec.iter().flat_map(|r| {
            r.versions
                .values()
                .rev()
                .filter(|v| v.version < below && Self::matches(v, runtime, arch))
        });
        let p = page(matching, size, |v: &&LayerVersion| v.version.to_string());
        Ok(wire::ListLayerVersionsResponse {
            next_marker: p.next,
            layer_versions: p
                .items
                .into_iter()
                .map(|v| Self::version_item(&lscope, &name, v))
                .collect(),
        })
    }

    /// `ListLayers`: each layer with its newest matching version, by name.
    pub async fn list_layers(
        &self,
        scope: &Scope,
        runtime: Option<&str>,
        arch: Option<&str>,
        marker: Option<&str>,
        max_items: Option<&str>,
    ) -> Result<wire::ListLayersResponse, ControlError> {
        Self::check_filters(runtime, arch)?;
        let size = PageLimit::FIFTY.size(max_items)?;
        let mut found = Vec::new();
        let mut after = marker.map(str::to_owned);
        // One more than a page tells whether another follows.
        while found.len() <= size {
            let batch = self.store.list_layers(scope, after.as_deref(), 100).await?;
            found.extend(batch.items.iter().filter_map(|rec| {
                let latest = rec
                    .versions
                    .values()
                    .rev()
                    .find(|v| Self::matches(v, runtime, arch))?;
                Some(wire::LayersListItem {
                    layer_name: rec.name.clone(),
                    layer_arn: Self::layer_arn(scope, &rec.name),
                    latest_matching_version: Self::version_item(scope, &rec.name, latest),
                })
            }));
            match batch.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        let p = page(found, size, |l| l.layer_name.clone());
        Ok(wire::ListLayersResponse {
            next_marker: p.next,
            layers: p.items,
        })
    }

    /// `DeleteLayerVersion` (204, also for what does not exist). Functions
    /// that use the version keep it.
    pub async fn delete_layer_version(
        &self,
        scope: &Scope,
        raw: &str,
        version: &str,
    ) -> Result<(), ControlError> {
        let (lscope, name) = self.layer_name(scope, raw)?;
        if lscope.account != scope.account {
            return Err(not_shared(scope, &Self::layer_arn(&lscope, &name)));
        }
        let n = Self::version_number(version)?;
        for _ in 0..crate::functions::CAS_ATTEMPTS {
            let Some(stored) = self.store.get_layer(&lscope, &name).await? else {
                return Ok(());
            };
            let mut rec = stored.value;
            let Some(removed) = rec.versions.remove(&n) else {
                return Ok(());
            };
            match self.store.put_layer(&lscope, &rec, Some(stored.etag)).await {
                Ok(_) => {
                    self.collect_package(&removed.code.digest_hex).await;
                    return Ok(());
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ControlError::Conflict(
            "The layer is being changed concurrently; try again.".into(),
        ))
    }

    /// Runs `change` on one layer version's policy with optimistic retries.
    async fn modify_layer_policy<T>(
        &self,
        scope: &Scope,
        raw: &str,
        version: &str,
        mut change: impl FnMut(&mut Policy, &str) -> Result<T, ControlError>,
    ) -> Result<T, ControlError> {
        let (lscope, name) = self.layer_name(scope, raw)?;
        if lscope.account != scope.account {
            return Err(not_shared(scope, &Self::layer_arn(&lscope, &name)));
        }
        let n = Self::version_number(version)?;
        let version_arn = format!("{}:{n}", Self::layer_arn(&lscope, &name));
        let missing =
            || ControlError::NotFound(format!("Layer version {version_arn} does not exist."));
        for _ in 0..crate::functions::CAS_ATTEMPTS {
            let stored = self
                .store
                .get_layer(&lscope, &name)
                .await?
                .ok_or_else(missing)?;
            let mut rec = stored.value;
            let v = rec.versions.get_mut(&n).ok_or_else(missing)?;
            let out = change(&mut v.policy, &version_arn)?;
            match self.store.put_layer(&lscope, &rec, Some(stored.etag)).await {
                Ok(_) => return Ok(out),
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ControlError::Conflict(
            "The layer is being changed concurrently; try again.".into(),
        ))
    }

    /// `AddLayerVersionPermission` (201).
    pub async fn add_layer_version_permission(
        &self,
        scope: &Scope,
        raw: &str,
        version: &str,
        revision_id: Option<&str>,
        req: wire::AddPermissionRequest,
    ) -> Result<wire::AddPermissionResponse, ControlError> {
        let input = policy::layer_statement_input(&req, scope.partition())?;
        self.modify_layer_policy(scope, raw, version, |p, arn| {
            let statement = policy::add(p, &input, arn, revision_id, "GetLayerPolicy", None)?;
            Ok(wire::AddPermissionResponse {
                statement,
                revision_id: Some(p.revision_id.clone()),
            })
        })
        .await
    }

    /// `GetLayerVersionPolicy`.
    pub async fn get_layer_version_policy(
        &self,
        scope: &Scope,
        raw: &str,
        version: &str,
    ) -> Result<wire::GetPolicyResponse, ControlError> {
        let (lscope, name) = self.layer_name(scope, raw)?;
        if lscope.account != scope.account {
            return Err(not_shared(scope, &Self::layer_arn(&lscope, &name)));
        }
        let n = Self::version_number(version)?;
        let version_arn = format!("{}:{n}", Self::layer_arn(&lscope, &name));
        let rec = self
            .store
            .get_layer(&lscope, &name)
            .await?
            .ok_or_else(|| {
                ControlError::NotFound(format!("Layer version {version_arn} does not exist."))
            })?
            .value;
        let v = rec.versions.get(&n).ok_or_else(|| {
            ControlError::NotFound(format!("Layer version {version_arn} does not exist."))
        })?;
        if v.policy.statements.is_empty() {
            return Err(ControlError::NotFound(
                "No policy is associated with the given resource.".into(),
            ));
        }
        Ok(wire::GetPolicyResponse {
            policy: policy::document(&v.policy),
            revision_id: v.policy.revision_id.clone(),
        })
    }

    /// `RemoveLayerVersionPermission` (204).
    pub async fn remove_layer_version_permission(
        &self,
        scope: &Scope,
        raw: &str,
        version: &str,
        sid: &str,
        revision_id: Option<&str>,
    ) -> Result<(), ControlError> {
        self.modify_layer_policy(scope, raw, version, |p, _| {
            policy::remove(p, sid, revision_id, "GetLayerPolicy")
        })
        .await
    }

    /// Resolves the `Layers` of a function configuration, in order, with
    /// AWS's checks; `own` is the function's scope.
    pub(crate) async fn resolve_layers(
        &self,
        own: &Scope,
        arns: &[String],
    ) -> Result<Vec<model::function::LayerRef>, ControlError> {
        if arns.len() > limits::LAYERS_MAX {
            return Err(ControlError::InvalidParameter(format!(
                "Cannot reference more than {} layers.",
                limits::LAYERS_MAX
            )));
        }
        let mut out: Vec<(String, model::function::LayerRef)> = Vec::new();
        for arn in arns {
            let Some((lscope, name, n)) = parse_version_arn(arn) else {
                let mut v = ValidationErrors::new();
                v.push(
                    "layers",
                    &list(arns),
                    format!("Member must satisfy constraint: [Member must have length less than or equal to 2048, Member must have length greater than or equal to 1, Member must satisfy regular expression pattern: {LAYER_VERSION_ARN_PATTERN}, Member must not be null]"),
                );
                return Err(ControlError::Validation(
                    v.into_result().err().unwrap_or_default(),
                ));
            };
            if lscope.region != own.region {
                return Err(ControlError::InvalidParameter(format!(
                    "Layers are not in the same region as the function. Layers are expected to be in region {}.",
                    own.region
                )));
            }
            let layer_key = format!("{}:{}:{name}", lscope.account, lscope.region);
            if let Some((_, first)) = out.iter().find(|(k, _)| *k == layer_key) {
                return Err(ControlError::InvalidParameter(format!(
                    "Two different versions of the same layer are not allowed to be referenced in the same function. {} and {arn} are versions of the same layer.",
                    first.arn
                )));
            }
            let missing =
                || ControlError::InvalidParameter(format!("Layer version {arn} does not exist."));
            let rec = self
                .store
                .get_layer(&lscope, &name)
                .await?
                .ok_or_else(missing)?
                .value;
            let v = rec.versions.get(&n).ok_or_else(missing)?;
            if lscope.account != own.account && !shared_with(v, own) {
                return Err(not_shared(own, arn));
            }
            out.push((
                layer_key,
                model::function::LayerRef {
                    arn: arn.clone(),
                    code: v.code.clone(),
                },
            ));
        }
        Ok(out.into_iter().map(|(_, r)| r).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_version_arns() {
        let (s, name, n) =
            parse_version_arn("arn:aws:lambda:us-east-1:123456789012:layer:my-lib:3").unwrap();
        assert_eq!(
            (s.account.as_str(), name.as_str(), n),
            ("123456789012", "my-lib", 3)
        );
        for bad in [
            "arn:aws:lambda:us-east-1:123456789012:layer:my-lib",
            "arn:aws:lambda:us-east-1:123456789012:layer:my-lib:x",
            "arn:aws:lambda:us-east-1:123456789012:layer:my lib:1",
            "arn:aws:s3:us-east-1:123456789012:layer:my-lib:1",
        ] {
            assert!(parse_version_arn(bad).is_none(), "{bad}");
        }
    }
}
