//! Functions: create, read, list, update code and configuration, delete.

use api_types as wire;
use base64::Engine as _;
use model::function::{
    CodeInfo, FileSystemSetting, FunctionState, LoggingSettings, UpdateStatus, VpcSettings,
};
use model::{FunctionConfig, FunctionName, FunctionRecord, PackageType, Qualifier, Scope, limits};
use store::StoreError;

use crate::page::PageLimit;
use crate::validate::{self, Checks};
use crate::view::{self, Context};
use crate::{Control, ControlError, function_not_found, name_error};
use model::resolve_ref;

/// How often a read-modify-write is retried when another writer got there first.
pub(crate) const CAS_ATTEMPTS: usize = 8;

fn new_revision() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn revision_mismatch() -> ControlError {
    ControlError::PreconditionFailed(
        "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id".into(),
    )
}

/// A function named by a path parameter plus an optional `Qualifier`, in scope.
pub(crate) struct QualifiedName {
    pub name: FunctionName,
    pub qualifier: Option<Qualifier>,
}

impl Control {
    /// Resolves `{FunctionName}` and `?Qualifier=`; the two must agree.
    pub(crate) fn qualified(
        &self,
        scope: &Scope,
        raw: &str,
        qualifier: Option<&str>,
    ) -> Result<QualifiedName, ControlError> {
        let r = resolve_ref(scope, raw)?;
        let qualifier = model::resolve::qualifier_of(&r, qualifier)?;
        Ok(QualifiedName {
            name: r.name,
            qualifier,
        })
    }

    /// Resolves `{FunctionName}` for operations on the function itself
    /// (`$LATEST`): a name or ARN with a qualifier is refused.
    pub(crate) fn unversioned(
        &self,
        scope: &Scope,
        raw: &str,
    ) -> Result<QualifiedName, ControlError> {
        let t = self.qualified(scope, raw, None)?;
        if t.qualifier.is_some() {
            return Err(name_error(
                "functionName",
                raw,
                model::NameError::Pattern {
                    pattern: model::FunctionRef::PATTERN,
                },
            ));
        }
        Ok(t)
    }

    /// Checks a `DeadLetterConfig`'s target when one is set (an empty
    /// `TargetArn` removes the target and needs no check).
    async fn check_dead_letter_config(
        &self,
        scope: &Scope,
        config: Option<&wire::DeadLetterConfig>,
    ) -> Result<(), ControlError> {
        match config
            .and_then(|d| d.target_arn.as_deref())
            .filter(|t| !t.is_empty())
        {
            Some(t) => self.check_dead_letter_target(scope, t).await,
            None => Ok(()),
        }
    }

    /// Loads a function's record, or `Function not found`.
    pub(crate) async fn load(
        &self,
        scope: &Scope,
        name: &FunctionName,
        qualifier: Option<&Qualifier>,
    ) -> Result<store::Stored<FunctionRecord>, ControlError> {
        self.store
            .get_function(scope, name)
            .await?
            .ok_or_else(|| function_not_found(scope, name, qualifier))
    }

    /// The configuration a qualifier selects: `$LATEST`, a published version,
    /// or the version an alias points to.
    fn select<'r>(
        &self,
        scope: &Scope,
        record: &'r FunctionRecord,
        qualifier: Option<&Qualifier>,
    ) -> Result<&'r FunctionConfig, ControlError> {
        let not_found = || function_not_found(scope, &record.latest.name, qualifier);
        match qualifier {
            Some(Qualifier::Alias(a)) => {
                let alias = record.aliases.get(a).ok_or_else(not_found)?;
                let q = Qualifier::parse(&alias.function_version).map_err(|_| not_found())?;
                record.version(Some(&q)).ok_or_else(not_found)
            }
            q => record.version(q).ok_or_else(not_found),
        }
    }

    /// A configuration as read through `qualifier`: an alias shows its own ARN.
    fn read_view(
        &self,
        scope: &Scope,
        cfg: &FunctionConfig,
        qualifier: Option<&Qualifier>,
    ) -> wire::FunctionConfiguration {
        let mut out = view::configuration(
            scope,
            cfg,
            &self.catalog,
            Context::Read,
            qualifier.is_some(),
        );
        if let Some(q @ Qualifier::Alias(_)) = qualifier {
            let mut arn = scope.function_arn(&cfg.name);
            arn.qualifier = Some(q.clone());
            out.function_arn = arn.to_string();
        }
        out
    }

    /// Decodes, validates, unpacks and stores a zip; returns its identity.
    /// The account's code storage must have room for `copies` of it after
    /// `releasing` bytes go (callers hold the package lock, so that two
    /// uploads cannot both take the last room).
    pub(crate) async fn store_package(
        &self,
        scope: &Scope,
        zip_b64: &str,
        copies: u64,
        releasing: u64,
    ) -> Result<CodeInfo, ControlError> {
        let zip = base64::engine::general_purpose::STANDARD
            .decode(zip_b64.as_bytes())
            .map_err(|_| ControlError::from(blobs::PackageError::NotAZip))?;
        self.check_code_storage(scope, zip.len() as u64 * copies, releasing)
            .await?;
        let blobs = self.blobs.clone();
        let info = tokio::task::spawn_blocking(move || {
            blobs.put_package(&zip, limits::UNZIPPED_MAX_BYTES)
        })
        .await
        .map_err(|e| ControlError::Blobs(e.to_string()))??;
        Ok(CodeInfo {
            sha256_b64: info.digest.base64,
            digest_hex: info.digest.hex,
            size: info.zipped_size,
            unzipped_size: info.unzipped_size,
        })
    }

    /// Removes packages nothing references any more (no stored configuration and
    /// no execution environment).
    pub async fn collect_package(&self, digest_hex: &str) {
        let _guard = self.blob_lock.lock().await;
        match self.store.blob_in_use(digest_hex).await {
            Ok(false) if !self.hooks.code_in_use(digest_hex) => {
                let blobs = self.blobs.clone();
                let digest = digest_hex.to_owned();
                match tokio::task::spawn_blocking(move || blobs.delete(&digest)).await {
                    Ok(Ok(())) => tracing::debug!(digest = digest_hex, "removed unused package"),
                    Ok(Err(e)) => {
                        tracing::warn!(digest = digest_hex, error = %e, "could not remove unused package")
                    }
                    Err(e) => {
                        tracing::warn!(digest = digest_hex, error = %e, "package removal task failed")
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(digest = digest_hex, error = %e, "could not check package use")
            }
        }
    }

    pub async fn create_function(
        &self,
        scope: &Scope,
        req: wire::CreateFunctionRequest,
    ) -> Result<wire::FunctionConfiguration, ControlError> {
        let raw_name = req.function_name.as_deref();
        let mut c = Checks::default();
        c.required("functionName", raw_name);
        c.required("role", req.role.as_ref());
        c.required("code", req.code.as_ref());
        c.one_of(
            "packageType",
            req.package_type.as_deref(),
            &["Zip", "Image"],
        );
        c.architectures(req.architectures.as_ref());
        check_settings(&mut c, settings_of!(req));
        c.finish()?;
        let raw_name = raw_name.unwrap_or_default();
        if let Err(model::NameError::TooLong { max }) = model::FunctionRef::parse(raw_name)
            && max == FunctionName::MAX_LEN
        {
            return Err(ControlError::InvalidParameter(format!(
                "1 validation error detected: Value '{raw_name}' at 'functionName' failed to satisfy constraint: Member must have length less than or equal to {max}"
            )));
        }
        let name = self.unversioned(scope, raw_name)?.name;
        let package_type = match req.package_type.as_deref() {
            Some("Image") => {
                return Err(ControlError::InvalidParameter(
                    "PackageType Image is not supported by this Lambent server yet; deploy a .zip file archive.".into(),
                ));
            }
            _ => PackageType::Zip,
        };
        let (Some(runtime), Some(handler)) = (req.runtime.clone(), req.handler.clone()) else {
            return Err(ControlError::InvalidParameter(
                "Runtime and Handler are mandatory parameters for functions created with deployment packages.".into(),
            ));
        };
        validate::runtime(&self.catalog, &runtime)?;
        let vpc = req
            .vpc_config
            .clone()
            .map(|v| self.vpc_settings(v))
            .transpose()?;
        let environment = req.environment.and_then(|e| e.variables);
        if let Some(vars) = &environment {
            validate::environment(vars)?;
        }
        let tags = req.tags.unwrap_or_default();
        validate::tags(&tags)?;
        // Checked before the package is stored (and again under the lock).
        self.resolve_layers(scope, req.layers.as_deref().unwrap_or_default())
            .await?;
        let code = req.code.unwrap_or_default();
        let zip_b64 = code_source(
            code.zip_file.as_deref(),
            code.s3_bucket.as_deref(),
            code.image_uri.as_deref(),
        )?;

        self.check_dead_letter_config(scope, req.dead_letter_config.as_ref())
            .await?;

        let now = model::time_fmt::now_ms();
        let guard = self.blob_lock.lock().await;
        // Again under the package lock: a layer version deleted meanwhile
        // may have had its package collected.
        let layers = self
            .resolve_layers(scope, req.layers.as_deref().unwrap_or_default())
            .await?;
        // With `Publish`, version 1 keeps the package too.
        let copies = if req.publish == Some(true) { 2 } else { 1 };
        let code = self.store_package(scope, zip_b64, copies, 0).await?;
        let total = code.unzipped_size + layers.iter().map(|l| l.code.unzipped_size).sum::<u64>();
        if total > limits::UNZIPPED_MAX_BYTES {
            drop(guard);
            self.collect_package(&code.digest_hex).await;
            return Err(ControlError::InvalidParameter(format!(
                "Function code combined with layers exceeds the maximum allowed size of {} bytes. The actual size is {total} bytes.",
                limits::UNZIPPED_MAX_BYTES
            )));
        }
        let config = FunctionConfig {
            logging: logging_settings(&name, req.logging_config.as_ref(), None),
            name: name.clone(),
            version: Qualifier::LATEST.into(),
            package_type,
            runtime: Some(runtime),
            handler: Some(handler),
            role: req.role.unwrap_or_default(),
            description: req.description.unwrap_or_default(),
            timeout_s: req.timeout.map_or(limits::TIMEOUT_DEFAULT_S, |t| t as u32),
            memory_mb: req
                .memory_size
                .map_or(limits::MEMORY_DEFAULT_MB, |m| m as u32),
            ephemeral_mb: req
                .ephemeral_storage
                .and_then(|e| e.size)
                .map_or(limits::EPHEMERAL_DEFAULT_MB, |s| s as u32),
            environment,
            architectures: req.architectures.unwrap_or_else(|| vec!["x86_64".into()]),
            code,
            layers,
            tracing_mode: req
                .tracing_config
                .and_then(|t| t.mode)
                .unwrap_or_else(|| "PassThrough".into()),
            dead_letter_target: req
                .dead_letter_config
                .and_then(|d| d.target_arn)
                .filter(|t| !t.is_empty()),
            kms_key_arn: req.kms_key_arn.filter(|k| !k.is_empty()),
            vpc,
            file_systems: file_systems(req.file_system_configs),
            last_modified_ms: now,
            revision_id: new_revision(),
            state: FunctionState::Active,
            last_update_status: UpdateStatus::Successful,
        };
        let mut record = FunctionRecord {
            latest: config,
            tags,
            reserved_concurrency: None,
            created_ms: now,
            event_invoke_configs: Default::default(),
            versions: Default::default(),
            last_version: 0,
            last_published: None,
            aliases: Default::default(),
            policies: Default::default(),
            provisioned: Default::default(),
            urls: Default::default(),
        };
        let published =
            (req.publish == Some(true)).then(|| crate::versions::publish(&mut record, None));
        let created = self.store.create_function(scope, &record).await;
        drop(guard);
        if let Err(e) = created {
            self.collect_package(&record.latest.code.digest_hex).await;
            return Err(match e {
                StoreError::AlreadyExists { .. } => {
                    ControlError::Conflict(format!("Function already exist: {name}"))
                }
                e => e.into(),
            });
        }
        tracing::info!(account = %scope.account, region = %scope.region, function = %name, "function created");
        // With `Publish`, AWS describes version 1 under the unqualified ARN.
        let shown = published
            .and_then(|n| record.versions.get(&n))
            .unwrap_or(&record.latest);
        Ok(view::configuration(
            scope,
            shown,
            &self.catalog,
            Context::Created,
            false,
        ))
    }

    pub async fn get_function(
        &self,
        scope: &Scope,
        raw: &str,
        qualifier: Option<&str>,
        now_s: i64,
    ) -> Result<wire::GetFunctionResponse, ControlError> {
        let t = self.qualified(scope, raw, qualifier)?;
        let rec = self.load(scope, &t.name, t.qualifier.as_ref()).await?.value;
        let cfg = self.select(scope, &rec, t.qualifier.as_ref())?;
        Ok(wire::GetFunctionResponse {
            configuration: self.read_view(scope, cfg, t.qualifier.as_ref()),
            code: wire::FunctionCodeLocation {
                repository_type: "S3".into(),
                location: self.code_urls.link(&cfg.code.digest_hex, now_s),
            },
            tags: (!rec.tags.is_empty()).then(|| rec.tags.clone()),
            concurrency: rec.reserved_concurrency.map(|n| wire::Concurrency {
                reserved_concurrent_executions: n,
            }),
        })
    }

    pub async fn get_function_configuration(
        &self,
        scope: &Scope,
        raw: &str,
        qualifier: Option<&str>,
    ) -> Result<wire::FunctionConfiguration, ControlError> {
        let t = self.qualified(scope, raw, qualifier)?;
        let rec = self.load(scope, &t.name, t.qualifier.as_ref()).await?.value;
        let cfg = self.select(scope, &rec, t.qualifier.as_ref())?;
        Ok(self.read_view(scope, cfg, t.qualifier.as_ref()))
    }

    pub async fn list_functions(
        &self,
        scope: &Scope,
        marker: Option<&str>,
        max_items: Option<&str>,
        function_version: Option<&str>,
    ) -> Result<wire::ListFunctionsResponse, ControlError> {
        let max = PageLimit::FUNCTIONS.size(max_items)?;
        let mut c = Checks::default();
        c.one_of("functionVersion", function_version, &["ALL"]);
        c.finish()?;
        let all = function_version == Some("ALL");
        let page = self
            .store
            .list_functions(scope, marker.filter(|m| !m.is_empty()), max)
            .await?;
        Ok(wire::ListFunctionsResponse {
            functions: page
                .items
                .iter()
                .map(|r| view::configuration(scope, &r.latest, &self.catalog, Context::Listed, all))
                .collect(),
            next_marker: page.next,
        })
    }

    /// Read-modify-write of a function record with optimistic retries. `change`
    /// sees the current record and edits it, or refuses with an error.
    pub(crate) async fn modify(
        &self,
        scope: &Scope,
        name: &FunctionName,
        not_found_qualifier: Option<&Qualifier>,
        mut change: impl FnMut(&mut FunctionRecord) -> Result<(), ControlError>,
    ) -> Result<(FunctionRecord, FunctionRecord), ControlError> {
        for _ in 0..CAS_ATTEMPTS {
            let stored = self.load(scope, name, not_found_qualifier).await?;
            let before = stored.value.clone();
            let mut after = stored.value;
            change(&mut after)?;
            match self.store.update_function(scope, &after, stored.etag).await {
                Ok(_) => {
                    self.hooks.function_changed(scope, name, Some(&after));
                    return Ok((before, after));
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(StoreError::NotFound { .. }) => {
                    return Err(function_not_found(scope, name, not_found_qualifier));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(ControlError::Conflict(format!(
            "The operation cannot be performed at this time. An update is in progress for resource: {}",
            scope.function_arn(name)
        )))
    }

    pub async fn update_function_code(
        &self,
        scope: &Scope,
        raw: &str,
        req: wire::UpdateFunctionCodeRequest,
    ) -> Result<wire::FunctionConfiguration, ControlError> {
        let t = self.unversioned(scope, raw)?;
        let mut c = Checks::default();
        c.architectures(req.architectures.as_ref());
        c.finish()?;
        let zip_b64 = code_source(
            req.zip_file.as_deref(),
            req.s3_bucket.as_deref(),
            req.image_uri.as_deref(),
        )?;
        // Fail fast on a missing function before storing anything.
        self.load(scope, &t.name, None).await?;
        let guard = self.blob_lock.lock().await;
        // The package replaces $LATEST's in the account's code storage;
        // with `Publish`, a new version counts it once more.
        let releasing = self
            .load(scope, &t.name, None)
            .await?
            .value
            .latest
            .code
            .size;
        let copies = if req.publish == Some(true) { 2 } else { 1 };
        let code = self
            .store_package(scope, zip_b64, copies, releasing)
            .await?;
        if req.dry_run == Some(true) {
            drop(guard);
            let mut rec = self.load(scope, &t.name, None).await?.value;
            check_revision(req.revision_id.as_deref(), &rec.latest.revision_id)?;
            let digest = code.digest_hex.clone();
            rec.latest.code = code;
            self.collect_package(&digest).await;
            return Ok(view::configuration(
                scope,
                &rec.latest,
                &self.catalog,
                Context::Updated,
                false,
            ));
        }
        let now = model::time_fmt::now_ms();
        let result = self
            .modify(scope, &t.name, None, |rec| {
                check_revision(req.revision_id.as_deref(), &rec.latest.revision_id)?;
                if code.unzipped_size + rec.latest.layers.iter().map(|l| l.code.unzipped_size).sum::<u64>()
                    > limits::UNZIPPED_MAX_BYTES
                {
                    return Err(ControlError::InvalidParameter(format!(
                        "Function code combined with layers exceeds the maximum allowed size of {} bytes. The actual size is {} bytes.",
                        limits::UNZIPPED_MAX_BYTES,
                        code.unzipped_size + rec.latest.layers.iter().map(|l| l.code.unzipped_size).sum::<u64>()
                    )));
                }
                rec.latest.code = code.clone();
                if let Some(a) = &req.architectures {
                    rec.latest.architectures = a.clone();
                }
                rec.latest.last_modified_ms = now;
                rec.latest.revision_id = new_revision();
                if req.publish == Some(true) {
                    crate::versions::publish(rec, None);
                }
                Ok(())
            })
            .await;
        drop(guard);
        let (before, after) = match result {
            Ok(pair) => pair,
            Err(e) => {
                self.collect_package(&code.digest_hex).await;
                return Err(e);
            }
        };
        if before.latest.code.digest_hex != after.latest.code.digest_hex {
            self.collect_package(&before.latest.code.digest_hex).await;
        }
        // With `Publish`, the answer describes the new version, still pending.
        if req.publish == Some(true)
            && let Some(v) = after.versions.get(&after.last_version)
        {
            return Ok(view::configuration(
                scope,
                v,
                &self.catalog,
                Context::Created,
                true,
            ));
        }
        Ok(view::configuration(
            scope,
            &after.latest,
            &self.catalog,
            Context::Updated,
            false,
        ))
    }

    pub async fn update_function_configuration(
        &self,
        scope: &Scope,
        raw: &str,
        req: wire::UpdateFunctionConfigurationRequest,
    ) -> Result<wire::FunctionConfiguration, ControlError> {
        let t = self.unversioned(scope, raw)?;
        let mut c = Checks::default();
        check_settings(&mut c, settings_of!(req));
        c.finish()?;
        if let Some(r) = &req.runtime {
            validate::runtime(&self.catalog, r)?;
        }
        if let Some(vars) = req.environment.as_ref().and_then(|e| e.variables.as_ref()) {
            validate::environment(vars)?;
        }
        let vpc = req
            .vpc_config
            .clone()
            .map(|v| self.vpc_settings(v))
            .transpose()?;
        // Layers are resolved under the package lock, so that a package is
        // never collected between being found and being referenced.
        let layers_guard = match &req.layers {
            Some(_) => Some(self.blob_lock.lock().await),
            None => None,
        };
        let layers = match &req.layers {
            Some(arns) => Some(self.resolve_layers(scope, arns).await?),
            None => None,
        };
        self.check_dead_letter_config(scope, req.dead_letter_config.as_ref())
            .await?;
        let now = model::time_fmt::now_ms();
        let (before, after) = self
            .modify(scope, &t.name, None, |rec| {
                check_revision(req.revision_id.as_deref(), &rec.latest.revision_id)?;
                let cfg = &mut rec.latest;
                if let Some(v) = &req.role {
                    cfg.role = v.clone();
                }
                if let Some(v) = &req.handler {
                    cfg.handler = Some(v.clone());
                }
                if let Some(v) = &req.description {
                    cfg.description = v.clone();
                }
                if let Some(v) = req.timeout {
                    cfg.timeout_s = v as u32;
                }
                if let Some(v) = req.memory_size {
                    cfg.memory_mb = v as u32;
                }
                if let Some(v) = req.ephemeral_storage.as_ref().and_then(|e| e.size) {
                    cfg.ephemeral_mb = v as u32;
                }
                if let Some(env) = &req.environment {
                    cfg.environment = Some(env.variables.clone().unwrap_or_default());
                }
                if let Some(l) = &layers {
                    let total = cfg.code.unzipped_size + l.iter().map(|l| l.code.unzipped_size).sum::<u64>();
                    if total > limits::UNZIPPED_MAX_BYTES {
                        return Err(ControlError::InvalidParameter(format!(
                            "Function code combined with layers exceeds the maximum allowed size of {} bytes. The actual size is {total} bytes.",
                            limits::UNZIPPED_MAX_BYTES
                        )));
                    }
                    cfg.layers = l.clone();
                }
                if let Some(v) = &req.runtime {
                    cfg.runtime = Some(v.clone());
                }
                // `{}` changes nothing; an empty TargetArn removes the target.
                if let Some(t) = req
                    .dead_letter_config
                    .as_ref()
                    .and_then(|d| d.target_arn.as_ref())
                {
                    cfg.dead_letter_target = Some(t.clone()).filter(|t| !t.is_empty());
                }
                if let Some(k) = &req.kms_key_arn {
                    cfg.kms_key_arn = Some(k.clone()).filter(|k| !k.is_empty());
                }
                if let Some(t) = req.tracing_config.as_ref().and_then(|t| t.mode.clone()) {
                    cfg.tracing_mode = t;
                }
                if let Some(v) = &vpc {
                    cfg.vpc = Some(v.clone());
                }
                if let Some(f) = &req.file_system_configs {
                    cfg.file_systems = file_systems(Some(f.clone()));
                }
                if let Some(l) = &req.logging_config {
                    cfg.logging = logging_settings(&cfg.name, Some(l), Some(&cfg.logging));
                }
                cfg.last_modified_ms = now;
                cfg.revision_id = new_revision();
                Ok(())
            })
            .await?;
        drop(layers_guard);
        // Layer packages no longer referenced (their versions deleted) go.
        for old in &before.latest.layers {
            if !after
                .latest
                .layers
                .iter()
                .any(|l| l.code.digest_hex == old.code.digest_hex)
            {
                self.collect_package(&old.code.digest_hex).await;
            }
        }
        Ok(view::configuration(
            scope,
            &after.latest,
            &self.catalog,
            Context::Updated,
            false,
        ))
    }

    pub async fn delete_function(
        &self,
        scope: &Scope,
        raw: &str,
        qualifier: Option<&str>,
    ) -> Result<(), ControlError> {
        let t = self.qualified(scope, raw, qualifier)?;
        match &t.qualifier {
            None => {}
            Some(Qualifier::Latest) => {
                return Err(ControlError::InvalidParameter(
                    "$LATEST version cannot be deleted without deleting the function.".into(),
                ));
            }
            Some(Qualifier::Alias(_)) => {
                return Err(ControlError::InvalidParameter(
                    "Deletion of aliases is not currently supported.".into(),
                ));
            }
            // Deleting a version that does not exist succeeds, as on AWS.
            Some(Qualifier::Version(n)) => return self.delete_version(scope, &t.name, *n).await,
        }
        let rec = self.load(scope, &t.name, None).await?.value;
        match self.store.delete_function(scope, &t.name).await {
            Ok(()) => {}
            Err(StoreError::NotFound { .. }) => {
                return Err(function_not_found(scope, &t.name, None));
            }
            Err(e) => return Err(e.into()),
        }
        self.hooks.function_changed(scope, &t.name, None);
        // Every package its versions used, code and layers, unless in use elsewhere.
        let mut digests: Vec<&str> = std::iter::once(&rec.latest)
            .chain(rec.versions.values())
            .flat_map(|c| {
                std::iter::once(c.code.digest_hex.as_str())
                    .chain(c.layers.iter().map(|l| l.code.digest_hex.as_str()))
            })
            .collect();
        digests.sort_unstable();
        digests.dedup();
        for d in digests {
            self.collect_package(d).await;
        }
        tracing::info!(account = %scope.account, region = %scope.region, function = %t.name, "function deleted");
        Ok(())
    }

    /// Serves a `Code.Location` download if the link is genuine and current.
    pub async fn download_code(
        &self,
        digest_hex: &str,
        expires: i64,
        signature: &str,
        now_s: i64,
    ) -> Result<Vec<u8>, ControlError> {
        if !self.code_urls.check(digest_hex, expires, signature, now_s)
            || !digest_hex.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(ControlError::AccessDenied(
                "Request has expired or its signature is invalid".into(),
            ));
        }
        let blobs = self.blobs.clone();
        let digest = digest_hex.to_owned();
        tokio::task::spawn_blocking(move || blobs.read(&digest))
            .await
            .map_err(|e| ControlError::Blobs(e.to_string()))?
            .map_err(|_| {
                ControlError::NotFound("The resource you requested does not exist.".into())
            })
    }

    /// The current record of a function (for the data plane).
    pub async fn function(
        &self,
        scope: &Scope,
        name: &FunctionName,
    ) -> Result<Option<FunctionRecord>, ControlError> {
        Ok(self.store.get_function(scope, name).await?.map(|s| s.value))
    }
}

fn check_revision(given: Option<&str>, current: &str) -> Result<(), ControlError> {
    match given {
        Some(r) if r != current => Err(revision_mismatch()),
        _ => Ok(()),
    }
}

/// Exactly one code source; only `ZipFile` is available on this server.
pub(crate) fn code_source<'a>(
    zip: Option<&'a str>,
    s3_bucket: Option<&str>,
    image: Option<&str>,
) -> Result<&'a str, ControlError> {
    match (zip, s3_bucket, image) {
        (Some(z), None, None) => Ok(z),
        (None, Some(_), None) => Err(ControlError::InvalidParameter(
            "Error occurred while GetObject. S3 Error Code: NoSuchBucket. S3 Error Message: The specified bucket does not exist".into(),
        )),
        (None, None, Some(_)) => Err(ControlError::InvalidParameter(
            "Please don't provide ImageUri when updating a function with packageType Zip.".into(),
        )),
        (None, None, None) => Err(ControlError::InvalidParameter(
            "Please provide a source for function code.".into(),
        )),
        _ => Err(ControlError::InvalidParameter(
            "Please do not provide more than one source for function code.".into(),
        )),
    }
}

/// The settings `CreateFunction` and `UpdateFunctionConfiguration` share.
struct Settings<'a> {
    role: Option<&'a str>,
    handler: Option<&'a str>,
    description: Option<&'a str>,
    timeout: Option<i64>,
    memory_size: Option<i64>,
    ephemeral_storage: Option<&'a wire::EphemeralStorage>,
    tracing_config: Option<&'a wire::TracingConfig>,
    environment: Option<&'a wire::Environment>,
    logging_config: Option<&'a wire::LoggingConfig>,
}

/// The [`Settings`] of either request (the members have the same names).
macro_rules! settings_of {
    ($req:expr) => {
        Settings {
            role: $req.role.as_deref(),
            handler: $req.handler.as_deref(),
            description: $req.description.as_deref(),
            timeout: $req.timeout,
            memory_size: $req.memory_size,
            ephemeral_storage: $req.ephemeral_storage.as_ref(),
            tracing_config: $req.tracing_config.as_ref(),
            environment: $req.environment.as_ref(),
            logging_config: $req.logging_config.as_ref(),
        }
    };
}
use settings_of;

/// The modeled constraints on [`Settings`].
fn check_settings(c: &mut Checks, s: Settings<'_>) {
    c.role(s.role);
    c.handler(s.handler);
    c.max_len("description", s.description, limits::DESCRIPTION_MAX_CHARS);
    c.range(
        "timeout",
        s.timeout,
        limits::TIMEOUT_MIN_S.into(),
        limits::TIMEOUT_MAX_S.into(),
    );
    c.range(
        "memorySize",
        s.memory_size,
        limits::MEMORY_MIN_MB.into(),
        limits::MEMORY_MAX_MB.into(),
    );
    c.range(
        "ephemeralStorage.size",
        s.ephemeral_storage.and_then(|e| e.size),
        limits::EPHEMERAL_MIN_MB.into(),
        limits::EPHEMERAL_MAX_MB.into(),
    );
    c.one_of(
        "tracingConfig.mode",
        s.tracing_config.and_then(|t| t.mode.as_deref()),
        &["Active", "PassThrough"],
    );
    c.env_keys(s.environment.and_then(|e| e.variables.as_ref()));
    check_logging(c, s.logging_config);
}

fn check_logging(c: &mut Checks, l: Option<&wire::LoggingConfig>) {
    let Some(l) = l else { return };
    c.one_of(
        "loggingConfig.logFormat",
        l.log_format.as_deref(),
        &["JSON", "Text"],
    );
    const LEVELS: &[&str] = &["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];
    c.one_of(
        "loggingConfig.applicationLogLevel",
        l.application_log_level.as_deref(),
        LEVELS,
    );
    c.one_of(
        "loggingConfig.systemLogLevel",
        l.system_log_level.as_deref(),
        &["DEBUG", "INFO", "WARN"],
    );
    c.max_len("loggingConfig.logGroup", l.log_group.as_deref(), 512);
}

fn logging_settings(
    name: &FunctionName,
    req: Option<&wire::LoggingConfig>,
    current: Option<&LoggingSettings>,
) -> LoggingSettings {
    let mut s = current
        .cloned()
        .unwrap_or_else(|| LoggingSettings::default_for(name));
    if let Some(l) = req {
        if let Some(f) = &l.log_format {
            s.log_format = f.clone();
        }
        if l.application_log_level.is_some() {
            s.application_log_level = l.application_log_level.clone();
        }
        if l.system_log_level.is_some() {
            s.system_log_level = l.system_log_level.clone();
        }
        if let Some(g) = &l.log_group {
            s.log_group = g.clone();
        }
    }
    // Log levels only apply to JSON logs (as on Lambda, where Text ignores them).
    if s.log_format == "JSON" {
        s.application_log_level.get_or_insert_with(|| "INFO".into());
        s.system_log_level.get_or_insert_with(|| "INFO".into());
    }
    s
}

impl Control {
    /// A function's VPC settings: every subnet must be one the operator
    /// mapped (as on AWS, where an unknown subnet fails EC2's lookup).
    fn vpc_settings(&self, v: wire::VpcConfig) -> Result<VpcSettings, ControlError> {
        let subnet_ids = v.subnet_ids.unwrap_or_default();
        let mut vpc_id = String::new();
        for id in &subnet_ids {
            match self.settings.vpc_subnets.get(id) {
                Some(vpc) => {
                    if vpc_id.is_empty() {
                        vpc_id = vpc.clone();
                    }
                }
                None => {
                    return Err(ControlError::InvalidParameter(format!(
                        "Error occurred while DescribeSubnets. EC2 Error Code: InvalidSubnetID.NotFound. \
                         EC2 Error Message: The subnet ID '{id}' does not exist"
                    )));
                }
            }
        }
        Ok(VpcSettings {
            subnet_ids,
            security_group_ids: v.security_group_ids.unwrap_or_default(),
            ipv6_allowed_for_dual_stack: v.ipv6_allowed_for_dual_stack.unwrap_or(false),
            vpc_id,
        })
    }
}

fn file_systems(f: Option<Vec<wire::FileSystemConfig>>) -> Vec<FileSystemSetting> {
    f.unwrap_or_default()
        .into_iter()
        .map(|f| FileSystemSetting {
            arn: f.arn.unwrap_or_default(),
            local_mount_path: f.local_mount_path.unwrap_or_default(),
        })
        .collect()
}
