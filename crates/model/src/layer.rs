//! Layers: versioned archives unpacked into `/opt` of the functions that use them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::function::{CodeInfo, Policy};

/// A layer as the store keeps it: its versions, and the highest number ever
/// published (numbers are never reused).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    pub name: String,
    pub versions: BTreeMap<u64, LayerVersion>,
    pub last_version: u64,
}

/// One published, immutable layer version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerVersion {
    pub version: u64,
    pub description: String,
    /// `None` when not given (absent in responses), else as given.
    pub compatible_runtimes: Option<Vec<String>>,
    pub compatible_architectures: Option<Vec<String>>,
    pub license_info: Option<String>,
    pub code: CodeInfo,
    pub created_ms: i64,
    /// Who may use it (`AddLayerVersionPermission`).
    pub policy: Policy,
}

/// The pattern AWS gives for a layer name.
pub const LAYER_NAME_PATTERN: &str =
    r"(arn:[a-zA-Z0-9-]+:lambda:[a-zA-Z0-9-]+:\d{12}:layer:[a-zA-Z0-9-_]+)|[a-zA-Z0-9-_]+";

/// Whether `s` is a plain layer name (1-140 of `[a-zA-Z0-9-_]`).
pub fn valid_layer_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 140
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
