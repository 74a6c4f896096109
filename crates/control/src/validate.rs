//! Request validation with AWS's error codes and messages.
//!
//! Modeled constraints (lengths, ranges, patterns, enums) collect into one
//! `ValidationException` message, as AWS reports them; semantic rules (runtime
//! availability, reserved environment keys, sizes) fail with
//! `InvalidParameterValueException`.

use std::collections::BTreeMap;

use model::limits;
use model::names::ValidationErrors;
use runtimes::Catalog;

use crate::ControlError;

pub const ROLE_PATTERN: &str = "arn:(aws[a-zA-Z-]*)?:iam::\\d{12}:role/?[a-zA-Z_0-9+=,.@\\-_/]+";
pub const HANDLER_PATTERN: &str = "[^\\s]+";
pub const ENV_KEY_PATTERN: &str = "[a-zA-Z]([a-zA-Z0-9_])+";

/// Collects modeled-constraint failures; `finish` turns them into one error.
#[derive(Default)]
pub struct Checks(ValidationErrors);

impl Checks {
    pub fn range(&mut self, field: &str, value: Option<i64>, min: i64, max: i64) {
        if let Some(v) = value {
            if v < min {
                self.0.push(
                    field,
                    &v.to_string(),
                    format!("Member must have value greater than or equal to {min}"),
                );
            } else if v > max {
                self.0.push(
                    field,
                    &v.to_string(),
                    format!("Member must have value less than or equal to {max}"),
                );
            }
        }
    }

    pub fn max_len(&mut self, field: &str, value: Option<&str>, max: usize) {
        if let Some(v) = value
            && v.chars().count() > max
        {
            self.0.push(
                field,
                v,
                format!("Member must have length less than or equal to {max}"),
            );
        }
    }

    pub fn required<T: ?Sized>(&mut self, field: &str, value: Option<&T>) {
        if value.is_none() {
            self.0.push_null(field, "Member must not be null");
        }
    }

    pub fn role(&mut self, role: Option<&str>) {
        if let Some(r) = role
            && !is_role_arn(r)
        {
            self.0.push(
                "role",
                r,
                format!("Member must satisfy regular expression pattern: {ROLE_PATTERN}"),
            );
        }
    }

    pub fn handler(&mut self, handler: Option<&str>) {
        if let Some(h) = handler {
            if h.chars().count() > limits::HANDLER_MAX_LEN {
                self.0.push(
                    "handler",
                    h,
                    format!(
                        "Member must have length less than or equal to {}",
                        limits::HANDLER_MAX_LEN
                    ),
                );
            } else if h.is_empty() || h.chars().any(char::is_whitespace) {
                self.0.push(
                    "handler",
                    h,
                    format!("Member must satisfy regular expression pattern: {HANDLER_PATTERN}"),
                );
            }
        }
    }

    pub fn one_of(&mut self, field: &str, value: Option<&str>, allowed: &[&str]) {
        if let Some(v) = value
            && !allowed.contains(&v)
        {
            self.0.push(
                field,
                v,
                format!(
                    "Member must satisfy enum value set: [{}]",
                    allowed.join(", ")
                ),
            );
        }
    }

    pub fn architectures(&mut self, archs: Option<&Vec<String>>) {
        let Some(archs) = archs else { return };
        let shown = format!("[{}]", archs.join(", "));
        if archs.len() > 1 {
            self.0.push(
                "architectures",
                &shown,
                "Member must have length less than or equal to 1",
            );
        } else if archs.is_empty() {
            self.0.push(
                "architectures",
                &shown,
                "Member must have length greater than or equal to 1",
            );
        } else if archs.iter().any(|a| a != "x86_64" && a != "arm64") {
            self.0.push(
                "architectures",
                &shown,
                "Member must satisfy constraint: [Member must satisfy enum value set: [x86_64, arm64], Member must not be null]",
            );
        }
    }

    pub fn env_keys(&mut self, vars: Option<&BTreeMap<String, String>>) {
        let Some(vars) = vars else { return };
        if vars.keys().any(|k| !is_env_key(k)) {
            self.0.push(
                "environment.variables",
                "***",
                format!("Map keys must satisfy constraint: [Member must satisfy regular expression pattern: {ENV_KEY_PATTERN}]"),
            );
        }
    }

    pub fn finish(self) -> Result<(), ControlError> {
        self.0.into_result().map_err(ControlError::Validation)
    }
}

fn is_role_arn(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("arn:") else {
        return false;
    };
    let Some((partition, rest)) = rest.split_once(':') else {
        return false;
    };
    if !(partition.is_empty() || partition.starts_with("aws"))
        || !partition
            .bytes()
            .all(|b| b.is_ascii_alphabetic() || b == b'-')
    {
        return false;
    }
    let Some(rest) = rest.strip_prefix("iam::") else {
        return false;
    };
    if rest.len() < 12 || !rest.as_bytes()[..12].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let Some(rest) = rest[12..].strip_prefix(":role") else {
        return false;
    };
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@-_/".contains(&b))
}

fn is_env_key(k: &str) -> bool {
    let b = k.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphabetic()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// Runtime must be one this host can run.
pub fn runtime(catalog: &Catalog, runtime: &str) -> Result<(), ControlError> {
    if catalog.get(runtime).is_some() {
        return Ok(());
    }
    if Catalog::is_deprecated(runtime) {
        return Err(ControlError::InvalidParameter(format!(
            "The runtime parameter of {runtime} is no longer supported for creating or updating AWS Lambda functions. We recommend you use a supported runtime while creating or updating functions."
        )));
    }
    let ids: Vec<&str> = catalog.ids().collect();
    let mut message = format!(
        "Value {runtime} at 'runtime' failed to satisfy constraint: Member must satisfy enum value set: [{}] or be a valid ARN",
        ids.join(", ")
    );
    // AWS's message, and then what this host lacks to run that runtime.
    if let Some(hint) = catalog.missing_hint(runtime) {
        message.push_str(". ");
        message.push_str(&hint);
    }
    Err(ControlError::InvalidParameter(message))
}

/// Reserved keys and the 4 KB aggregate limit, measured as Lambda measures it:
/// the compact JSON of the variables.
pub fn environment(vars: &BTreeMap<String, String>) -> Result<(), ControlError> {
    let reserved: Vec<&str> = vars
        .keys()
        .map(String::as_str)
        .filter(|k| limits::RESERVED_ENV_KEYS.contains(k))
        .collect();
    if !reserved.is_empty() {
        return Err(ControlError::InvalidParameter(format!(
            "Lambda was unable to configure your environment variables because the environment variables you have provided contains reserved keys that are currently not supported for modification. Reserved keys used in this request: {}",
            reserved.join(", ")
        )));
    }
    let measured = serde_json::to_string(vars).unwrap_or_default();
    if measured.len() > limits::ENV_VARS_MAX_BYTES {
        return Err(ControlError::InvalidParameter(format!(
            "Lambda was unable to configure your environment variables because the environment variables you have provided exceeded the 4KB limit. String measured: {measured}"
        )));
    }
    Ok(())
}

/// Tag count and key/value lengths.
pub fn tags(tags: &BTreeMap<String, String>) -> Result<(), ControlError> {
    if tags.len() > limits::TAGS_MAX {
        return Err(ControlError::InvalidParameter(
            "Number of tags exceeds resource tag limit.".into(),
        ));
    }
    let mut c = Checks::default();
    for (k, v) in tags {
        if k.is_empty() {
            c.0.push("tags", k, "Map keys must satisfy constraint: [Member must have length greater than or equal to 1]");
        }
        c.max_len("tags", Some(k), 128);
        c.max_len("tags", Some(v), 256);
    }
    c.finish()?;
    if let Some(k) = tags
        .keys()
        .find(|k| k.to_ascii_lowercase().starts_with("aws:"))
    {
        return Err(ControlError::InvalidParameter(format!(
            "Tag keys starting with 'aws:' are reserved for internal use: {k}"
        )));
    }
    Ok(())
}

/// Layers arrive with the layers feature; until a layer exists, every
/// reference names a layer version that does not exist.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_arns() {
        for ok in [
            "arn:aws:iam::123456789012:role/lambda-role",
            "arn:aws:iam::123456789012:role/service-role/x+y=z,a.b@c-d_e",
            "arn:aws-cn:iam::123456789012:role/r",
            "arn::iam::123456789012:role/r",
        ] {
            assert!(is_role_arn(ok), "{ok}");
        }
        for bad in [
            "r1",
            "arn:aws:iam::12345678901:role/r",
            "arn:aws:iam::123456789012:user/r",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:sts::123456789012:role/r",
            "arn:aws:iam::123456789012:role/a b",
        ] {
            assert!(!is_role_arn(bad), "{bad}");
        }
    }

    #[test]
    fn environment_limit_is_compact_json_bytes() {
        // {"LARGE_VAR":"xxx..."} is 16 bytes of framing around the value.
        let fits = BTreeMap::from([("LARGE_VAR".to_string(), "x".repeat(4096 - 16))]);
        assert_eq!(serde_json::to_string(&fits).unwrap().len(), 4096);
        environment(&fits).unwrap();
        let over = BTreeMap::from([("LARGE_VAR".to_string(), "x".repeat(4097 - 16))]);
        let msg = environment(&over).unwrap_err().to_string();
        assert!(msg.starts_with("Lambda was unable to configure your environment variables because the environment variables you have provided exceeded the 4KB limit. String measured: {\"LARGE_VAR\":\"xxx"));
        let reserved = BTreeMap::from([("AWS_REGION".to_string(), "x".to_string())]);
        assert!(
            environment(&reserved)
                .unwrap_err()
                .to_string()
                .ends_with("Reserved keys used in this request: AWS_REGION")
        );
    }

    #[test]
    fn checks_messages() {
        let mut c = Checks::default();
        c.range("memorySize", Some(64), 128, 10240);
        c.range("timeout", Some(901), 1, 900);
        c.range("timeout", None, 1, 900);
        assert_eq!(
            c.finish().unwrap_err().to_string(),
            "2 validation errors detected: Value '64' at 'memorySize' failed to satisfy constraint: Member must have value greater than or equal to 128; Value '901' at 'timeout' failed to satisfy constraint: Member must have value less than or equal to 900"
        );
        let mut c = Checks::default();
        c.architectures(Some(&vec!["x86_64".into(), "arm64".into()]));
        assert_eq!(
            c.finish().unwrap_err().to_string(),
            "1 validation error detected: Value '[x86_64, arm64]' at 'architectures' failed to satisfy constraint: Member must have length less than or equal to 1"
        );
        let mut c = Checks::default();
        c.env_keys(Some(&BTreeMap::from([("A".to_string(), String::new())])));
        assert!(c.finish().is_err(), "single-letter keys break the pattern");
    }

    #[test]
    fn runtime_messages() {
        let catalog = Catalog::with(vec![]);
        let e = runtime(&catalog, "python2.7").unwrap_err().to_string();
        assert!(e.starts_with("The runtime parameter of python2.7 is no longer supported"));
        let e = runtime(&Catalog::detect(), "cobol1.0")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("Value cobol1.0 at 'runtime' failed to satisfy constraint: Member must satisfy enum value set: ["));
        assert!(e.contains("provided.al2023"));
    }
}
