//! Conversion from the stored configuration to `FunctionConfiguration`, in the
//! variants AWS answers with (creation, update, read, listing).

use api_types as wire;
use model::{FunctionConfig, Scope};
use runtimes::Catalog;

/// Which call the configuration answers; AWS varies the state fields by call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// CreateFunction: `State: Pending` with the "being created" reason.
    Created,
    /// UpdateFunctionCode / UpdateFunctionConfiguration: `LastUpdateStatus: InProgress`.
    Updated,
    /// GetFunction / GetFunctionConfiguration: `Active` and `Successful`.
    Read,
    /// ListFunctions / ListVersionsByFunction: no state fields at all.
    Listed,
}

const CREATING: &str = "The function is being created.";

pub fn configuration(
    scope: &Scope,
    cfg: &FunctionConfig,
    catalog: &Catalog,
    ctx: Context,
    qualified_arn: bool,
) -> wire::FunctionConfiguration {
    let arn = if qualified_arn {
        cfg.version_arn(scope)
    } else {
        cfg.arn(scope)
    };
    let mut out = wire::FunctionConfiguration {
        function_name: cfg.name.to_string(),
        function_arn: arn.to_string(),
        runtime: cfg.runtime.clone(),
        role: cfg.role.clone(),
        handler: cfg.handler.clone(),
        code_size: cfg.code.size,
        description: cfg.description.clone(),
        timeout: cfg.timeout_s,
        memory_size: cfg.memory_mb,
        last_modified: model::time_fmt::last_modified(cfg.last_modified_ms),
        code_sha256: cfg.code.sha256_b64.clone(),
        version: cfg.version.clone(),
        vpc_config: cfg.vpc.as_ref().map(|v| wire::VpcConfigResponse {
            subnet_ids: v.subnet_ids.clone(),
            security_group_ids: v.security_group_ids.clone(),
            vpc_id: v.vpc_id.clone(),
            ipv6_allowed_for_dual_stack: v.ipv6_allowed_for_dual_stack,
        }),
        dead_letter_config: cfg.dead_letter_target.as_ref().map(|t| {
            wire::DeadLetterConfigResponse {
                target_arn: t.clone(),
            }
        }),
        environment: cfg
            .environment
            .as_ref()
            .map(|vars| wire::EnvironmentResponse {
                variables: vars.clone(),
            }),
        kms_key_arn: cfg.kms_key_arn.clone(),
        tracing_config: wire::TracingConfigResponse {
            mode: cfg.tracing_mode.clone(),
        },
        revision_id: cfg.revision_id.clone(),
        layers: (!cfg.layers.is_empty()).then(|| {
            cfg.layers
                .iter()
                .map(|l| wire::LayerReference {
                    arn: l.arn.clone(),
                    code_size: l.code.size,
                })
                .collect()
        }),
        file_system_configs: (!cfg.file_systems.is_empty()).then(|| {
            cfg.file_systems
                .iter()
                .map(|f| wire::FileSystemConfigResponse {
                    arn: f.arn.clone(),
                    local_mount_path: f.local_mount_path.clone(),
                })
                .collect()
        }),
        package_type: cfg.package_type.as_str().to_owned(),
        architectures: cfg.architectures.clone(),
        ephemeral_storage: wire::EphemeralStorageResponse {
            size: cfg.ephemeral_mb,
        },
        snap_start: wire::SnapStartResponse {
            apply_on: "None".into(),
            optimization_status: "Off".into(),
        },
        runtime_version_config: None,
        logging_config: wire::LoggingConfig {
            log_format: Some(cfg.logging.log_format.clone()),
            application_log_level: cfg.logging.application_log_level.clone(),
            system_log_level: cfg.logging.system_log_level.clone(),
            log_group: Some(cfg.logging.log_group.clone()),
        },
        ..Default::default()
    };
    if ctx != Context::Listed {
        out.runtime_version_config = cfg
            .runtime
            .as_deref()
            .and_then(|r| catalog.get(r))
            .map(|r| wire::RuntimeVersionConfig {
                runtime_version_arn: format!(
                    "arn:{}:lambda:{}::runtime:{}",
                    scope.partition(),
                    scope.region,
                    r.version_hash
                ),
            });
    }
    match ctx {
        Context::Created => {
            out.state = Some("Pending".into());
            out.state_reason = Some(CREATING.into());
            out.state_reason_code = Some("Creating".into());
        }
        Context::Updated => {
            out.state = Some(cfg.state.as_str().into());
            out.last_update_status = Some("InProgress".into());
            out.last_update_status_reason = Some(CREATING.into());
            out.last_update_status_reason_code = Some("Creating".into());
        }
        Context::Read => {
            out.state = Some(cfg.state.as_str().into());
            out.last_update_status = Some(cfg.last_update_status.as_str().into());
        }
        Context::Listed => {}
    }
    out
}
