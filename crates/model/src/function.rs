//! A function's configuration as the platform keeps it (not the wire shape: that
//! lives in `api-types` and is converted at the edge).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::arn::{FunctionArn, Scope};
use crate::names::{FunctionName, Qualifier};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum PackageType {
    #[default]
    Zip,
    Image,
}

impl PackageType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Zip => "Zip",
            Self::Image => "Image",
        }
    }
}

/// A function's lifecycle state (`State` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum FunctionState {
    Pending,
    #[default]
    Active,
    Inactive,
    Failed,
}

impl FunctionState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Active => "Active",
            Self::Inactive => "Inactive",
            Self::Failed => "Failed",
        }
    }
}

/// The outcome of the last create or update (`LastUpdateStatus` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum UpdateStatus {
    #[default]
    Successful,
    Failed,
    InProgress,
}

impl UpdateStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Successful => "Successful",
            Self::Failed => "Failed",
            Self::InProgress => "InProgress",
        }
    }
}

/// A deployment package, stored once by content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeInfo {
    /// Base64 of the SHA-256 of the zip, as `CodeSha256` reports it.
    pub sha256_b64: String,
    /// Hex SHA-256: the key in the blob store.
    pub digest_hex: String,
    /// Size of the zip in bytes (`CodeSize`).
    pub size: u64,
    /// Size of the package once unzipped, counted against the 250 MB limit.
    pub unzipped_size: u64,
}

/// A layer version a function uses, resolved when the function is configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRef {
    pub arn: String,
    pub code: CodeInfo,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct VpcSettings {
    pub subnet_ids: Vec<String>,
    pub security_group_ids: Vec<String>,
    pub ipv6_allowed_for_dual_stack: bool,
    /// The VPC of the subnets, as the operator mapped them (empty without).
    #[serde(default)]
    pub vpc_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggingSettings {
    /// `Text` or `JSON`.
    pub log_format: String,
    pub application_log_level: Option<String>,
    pub system_log_level: Option<String>,
    pub log_group: String,
}

impl LoggingSettings {
    pub fn default_for(name: &FunctionName) -> Self {
        Self {
            log_format: "Text".into(),
            application_log_level: None,
            system_log_level: None,
            log_group: format!("/aws/lambda/{name}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSystemSetting {
    pub arn: String,
    pub local_mount_path: String,
}

/// One version of a function (`$LATEST` or a published number): everything an
/// execution environment is built from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionConfig {
    pub name: FunctionName,
    /// `$LATEST` or a published version number.
    pub version: String,
    pub package_type: PackageType,
    pub runtime: Option<String>,
    pub handler: Option<String>,
    pub role: String,
    pub description: String,
    pub timeout_s: u32,
    pub memory_mb: u32,
    pub ephemeral_mb: u32,
    /// `None` when the function never had an `Environment`.
    pub environment: Option<BTreeMap<String, String>>,
    pub architectures: Vec<String>,
    pub code: CodeInfo,
    pub layers: Vec<LayerRef>,
    pub tracing_mode: String,
    pub dead_letter_target: Option<String>,
    pub kms_key_arn: Option<String>,
    pub vpc: Option<VpcSettings>,
    pub logging: LoggingSettings,
    pub file_systems: Vec<FileSystemSetting>,
    pub last_modified_ms: i64,
    pub revision_id: String,
    pub state: FunctionState,
    pub last_update_status: UpdateStatus,
}

impl FunctionConfig {
    pub fn qualifier(&self) -> Qualifier {
        match self.version.parse::<u64>() {
            Ok(n) => Qualifier::Version(n),
            Err(_) => Qualifier::Latest,
        }
    }

    /// The unqualified function ARN.
    pub fn arn(&self, scope: &Scope) -> FunctionArn {
        scope.function_arn(&self.name)
    }

    /// The ARN of this version (`...:function:name:$LATEST` or `...:name:3`).
    pub fn version_arn(&self, scope: &Scope) -> FunctionArn {
        self.arn(scope).qualified(self.qualifier())
    }

    /// Total size of the code and every layer once unpacked.
    pub fn unzipped_size(&self) -> u64 {
        self.code.unzipped_size
            + self
                .layers
                .iter()
                .map(|l| l.code.unzipped_size)
                .sum::<u64>()
    }
}

/// A function as the store keeps it: its `$LATEST` configuration plus the
/// function-level settings that are not versioned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionRecord {
    pub latest: FunctionConfig,
    pub tags: BTreeMap<String, String>,
    /// Reserved concurrency; `None` when the function uses the unreserved pool.
    pub reserved_concurrency: Option<u32>,
    pub created_ms: i64,
    /// Asynchronous invocation settings per qualifier (`$LATEST`, a version
    /// number or an alias name).
    #[serde(default)]
    pub event_invoke_configs: BTreeMap<String, EventInvokeConfig>,
    /// Published versions, immutable once published.
    #[serde(default)]
    pub versions: BTreeMap<u64, FunctionConfig>,
    /// The highest version number ever published: numbers are never reused.
    #[serde(default)]
    pub last_version: u64,
    /// `$LATEST`'s revision right after the last publish, and the version it
    /// produced: publishing again without a change returns that version.
    #[serde(default)]
    pub last_published: Option<(String, u64)>,
    #[serde(default)]
    pub aliases: BTreeMap<String, Alias>,
    /// Resource-based policy statements per qualifier key (`""` for the
    /// unqualified function).
    #[serde(default)]
    pub policies: BTreeMap<String, Policy>,
    /// Provisioned concurrency per qualifier (a version number or an alias).
    #[serde(default)]
    pub provisioned: BTreeMap<String, ProvisionedConfig>,
    /// Function URLs per qualifier key (`""` for the unqualified function,
    /// else an alias name).
    #[serde(default)]
    pub urls: BTreeMap<String, crate::url::FunctionUrlConfig>,
}

impl FunctionRecord {
    /// The configuration of `$LATEST` or a published version; `None` for an
    /// alias or a version that does not exist.
    pub fn version(&self, q: Option<&Qualifier>) -> Option<&FunctionConfig> {
        match q {
            None | Some(Qualifier::Latest) => Some(&self.latest),
            Some(Qualifier::Version(n)) => self.versions.get(n),
            Some(Qualifier::Alias(_)) => None,
        }
    }

    /// Whether a qualifier names something that exists.
    pub fn has_qualifier(&self, q: Option<&Qualifier>) -> bool {
        match q {
            Some(Qualifier::Alias(a)) => self.aliases.contains_key(a),
            q => self.version(q).is_some(),
        }
    }
}

/// An alias weight (0.0-1.0), compared bit for bit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Weight(pub f64);

impl Eq for Weight {}

/// A named pointer to a version, optionally splitting traffic with a second.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alias {
    pub name: String,
    /// A version number or `$LATEST`.
    pub function_version: String,
    pub description: String,
    /// `RoutingConfig.AdditionalVersionWeights`: version → share of traffic.
    pub additional_version_weights: BTreeMap<String, Weight>,
    pub revision_id: String,
}

/// A resource-based policy: statements as AWS stores them (JSON text), in
/// the order they were added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Policy {
    pub statements: Vec<PolicyStatement>,
    pub revision_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyStatement {
    pub sid: String,
    /// The statement as a JSON object.
    pub json: String,
}

/// Environments kept initialised ahead of demand for a version or alias.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisionedConfig {
    pub requested: u32,
    pub last_modified_ms: i64,
}

/// How asynchronous invocations of one qualifier are retried and where their
/// outcomes go (`PutFunctionEventInvokeConfig`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct EventInvokeConfig {
    /// 0-2; `None` means Lambda's default of 2.
    pub maximum_retry_attempts: Option<u32>,
    /// 60-21,600 s; `None` means Lambda's default of 6 hours.
    pub maximum_event_age_s: Option<u32>,
    /// Where a success record goes: a function ARN or an http:// URL.
    pub on_success: Option<String>,
    /// Where a failure record goes.
    pub on_failure: Option<String>,
    pub last_modified_ms: i64,
}

impl EventInvokeConfig {
    pub const DEFAULT_RETRY_ATTEMPTS: u32 = 2;
    pub const DEFAULT_EVENT_AGE_S: u32 = 21_600;

    pub fn retry_attempts(&self) -> u32 {
        self.maximum_retry_attempts
            .unwrap_or(Self::DEFAULT_RETRY_ATTEMPTS)
    }

    pub fn event_age_s(&self) -> u32 {
        self.maximum_event_age_s
            .unwrap_or(Self::DEFAULT_EVENT_AGE_S)
    }
}
