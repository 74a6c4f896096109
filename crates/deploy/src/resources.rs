//! The resources `lambent deploy` creates, read from a template's (evaluated)
//! properties into the Lambda API's request fields. What is not supported
//! is refused by name before anything changes ([`check`]).

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::template::{Resource, Template, TemplateError};

pub const SERVERLESS_FUNCTION: &str = "AWS::Serverless::Function";
pub const SERVERLESS_LAYER: &str = "AWS::Serverless::LayerVersion";
pub const LAMBDA_FUNCTION: &str = "AWS::Lambda::Function";
pub const LAMBDA_LAYER: &str = "AWS::Lambda::LayerVersion";

pub const IAM_ROLE: &str = "AWS::IAM::Role";
/// IAM resources: accepted without effect (Lambent has no IAM), so that
/// templates with their own roles deploy; a role answers `Ref` with its
/// name and `Fn::GetAtt Role.Arn` with its ARN.
pub const IAM_RESOURCES: &[&str] = &[IAM_ROLE, "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"];

const SUPPORTED: &[&str] = &[
    SERVERLESS_FUNCTION,
    SERVERLESS_LAYER,
    LAMBDA_FUNCTION,
    LAMBDA_LAYER,
    IAM_ROLE,
    "AWS::IAM::Policy",
    "AWS::IAM::ManagedPolicy",
];

/// Properties that configure IAM, which Lambent does not model: accepted
/// (a template is written for AWS too), with no effect.
pub const IAM_ONLY: &[&str] = &[
    "Policies",
    "PermissionsBoundary",
    "AssumeRolePolicyDocument",
    "RolePath",
    "PropagateTags",
];

const SERVERLESS_FUNCTION_PROPERTIES: &[&str] = &[
    "Handler",
    "Runtime",
    "CodeUri",
    "InlineCode",
    "MemorySize",
    "Timeout",
    "Environment",
    "Layers",
    "EphemeralStorage",
    "Architectures",
    "Description",
    "FunctionName",
    "Role",
    "Tracing",
    "VpcConfig",
    "KmsKeyArn",
    "LoggingConfig",
    "DeadLetterQueue",
    "Tags",
    "PackageType",
    "AutoPublishAlias",
    "AutoPublishCodeSha256",
    "VersionDescription",
    "ReservedConcurrentExecutions",
    "ProvisionedConcurrencyConfig",
    "EventInvokeConfig",
    "DeploymentPreference",
    "Events",
    "FunctionUrlConfig",
];

const LAMBDA_FUNCTION_PROPERTIES: &[&str] = &[
    "Code",
    "Handler",
    "Runtime",
    "Role",
    "MemorySize",
    "Timeout",
    "Environment",
    "Layers",
    "EphemeralStorage",
    "Description",
    "FunctionName",
    "Architectures",
    "DeadLetterConfig",
    "TracingConfig",
    "VpcConfig",
    "KmsKeyArn",
    "LoggingConfig",
    "PackageType",
    "ReservedConcurrentExecutions",
    "Tags",
];

const SERVERLESS_LAYER_PROPERTIES: &[&str] = &[
    "ContentUri",
    "LayerName",
    "Description",
    "CompatibleRuntimes",
    "CompatibleArchitectures",
    "LicenseInfo",
    "RetentionPolicy",
];

const LAMBDA_LAYER_PROPERTIES: &[&str] = &[
    "Content",
    "LayerName",
    "Description",
    "CompatibleRuntimes",
    "CompatibleArchitectures",
    "LicenseInfo",
];

fn unsupported(r: &str, property: &str, hint: &str) -> TemplateError {
    TemplateError::UnsupportedProperty {
        resource: r.to_owned(),
        property: property.to_owned(),
        hint: if hint.is_empty() {
            String::new()
        } else {
            format!(": {hint}")
        },
    }
}

/// Refuses, before any change, what this deployer does not support.
pub fn check(t: &Template) -> Result<(), TemplateError> {
    for r in &t.resources {
        let id = r.logical_id.as_str();
        let allowed = match r.kind.as_str() {
            SERVERLESS_FUNCTION => SERVERLESS_FUNCTION_PROPERTIES,
            LAMBDA_FUNCTION => LAMBDA_FUNCTION_PROPERTIES,
            SERVERLESS_LAYER => SERVERLESS_LAYER_PROPERTIES,
            LAMBDA_LAYER => LAMBDA_LAYER_PROPERTIES,
            k if IAM_RESOURCES.contains(&k) => continue,
            other => {
                return Err(TemplateError::UnsupportedResource {
                    resource: id.to_owned(),
                    kind: other.to_owned(),
                    supported: SUPPORTED.join(", "),
                });
            }
        };
        for k in r.properties.keys() {
            if allowed.contains(&k.as_str()) || IAM_ONLY.contains(&k.as_str()) {
                continue;
            }
            let hint = match k.as_str() {
                "ImageUri" | "ImageConfig" => {
                    "container image functions are not supported (PackageType Zip only)"
                }
                "SnapStart" => "SnapStart applies to Java on AWS and has no meaning here",
                _ => "",
            };
            return Err(unsupported(id, k, hint));
        }
        if let Some(Value::String(p)) = r.properties.get("PackageType")
            && p != "Zip"
        {
            return Err(unsupported(
                id,
                "PackageType",
                "container image functions are not supported (PackageType Zip only)",
            ));
        }
        if let Some(dp) = r.properties.get("DeploymentPreference") {
            if let Value::Object(m) = dp {
                for k in m.keys() {
                    let hint = match k.as_str() {
                        "Type" | "Enabled" | "Role" | "PassthroughCondition" => continue,
                        "Hooks" => {
                            "CodeDeploy hook functions are not run; test the new version before deploying"
                        }
                        "Alarms" | "TriggerConfigurations" => {
                            "there are no CloudWatch alarms or CodeDeploy triggers here"
                        }
                        _ => "",
                    };
                    return Err(unsupported(id, &format!("DeploymentPreference.{k}"), hint));
                }
            }
            if let Some(Value::String(kind)) = dp.get("Type")
                && Shift::parse(kind).is_none()
            {
                return Err(unsupported(
                    id,
                    &format!("DeploymentPreference.Type ({kind})"),
                    "the types are AllAtOnce, CanaryXPercentYMinutes and LinearXPercentEveryYMinute(s)",
                ));
            }
            if !r.properties.contains_key("AutoPublishAlias") {
                return Err(TemplateError::Invalid(format!(
                    "resource {id}: DeploymentPreference needs AutoPublishAlias (traffic shifts between the alias's versions)"
                )));
            }
        }
        if let Some(events) = r.properties.get("Events") {
            let Value::Object(events) = events else {
                return Err(TemplateError::Invalid(format!(
                    "resource {id}: Events must be a mapping"
                )));
            };
            for (name, e) in events {
                crate::triggers::check_event(id, name, e)?;
            }
        }
        if let Some(Value::Object(u)) = r.properties.get("FunctionUrlConfig") {
            for k in u.keys() {
                if !crate::triggers::URL_PROPERTIES.contains(&k.as_str()) {
                    return Err(unsupported(
                        id,
                        &format!("FunctionUrlConfig.{k}"),
                        "FunctionUrlConfig takes AuthType, Cors, InvokeMode",
                    ));
                }
            }
        }
        if r.kind == SERVERLESS_FUNCTION
            && r.properties.contains_key("ProvisionedConcurrencyConfig")
            && !r.properties.contains_key("AutoPublishAlias")
        {
            return Err(TemplateError::Invalid(format!(
                "resource {id}: ProvisionedConcurrencyConfig needs AutoPublishAlias (SAM sets it on the alias)"
            )));
        }
    }
    Ok(())
}

/// How an alias moves to a new version (SAM's DeploymentPreference).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shift {
    /// Canary: one step of `percent`, then all. Linear: steps of `percent`.
    pub linear: bool,
    pub percent: u32,
    pub minutes: u32,
}

impl Shift {
    /// `Canary10Percent5Minutes`, `Linear10PercentEvery1Minute`, ...;
    /// `AllAtOnce` is `Some(None)`.
    pub fn parse(kind: &str) -> Option<Option<Shift>> {
        if kind == "AllAtOnce" {
            return Some(None);
        }
        let (linear, rest) = match (kind.strip_prefix("Canary"), kind.strip_prefix("Linear")) {
            (Some(r), _) => (false, r),
            (_, Some(r)) => (true, r),
            _ => return None,
        };
        let (percent, rest) = rest.split_once("Percent")?;
        let rest = if linear {
            rest.strip_prefix("Every")?
        } else {
            rest
        };
        let minutes = rest
            .strip_suffix("Minutes")
            .or_else(|| rest.strip_suffix("Minute"))?;
        let (percent, minutes) = (percent.parse().ok()?, minutes.parse().ok()?);
        (1..100).contains(&percent).then_some(Some(Shift {
            linear,
            percent,
            minutes,
        }))
    }

    /// The weights the new version gets, each held for `minutes`.
    pub fn steps(&self) -> Vec<u32> {
        if !self.linear {
            return vec![self.percent];
        }
        (1..)
            .map(|k| k * self.percent)
            .take_while(|w| *w < 100)
            .collect()
    }
}

/// Where a function's or layer's code comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Code {
    /// A folder or a `.zip` file.
    Path(PathBuf),
    /// One file written from the template.
    Inline { file: String, text: String },
}

/// A function as the Lambda API will hold it.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionSpec {
    pub logical_id: String,
    pub name: String,
    pub code: Code,
    /// Create/UpdateFunctionConfiguration fields (without FunctionName,
    /// Code, Tags, Publish).
    pub config: Map<String, Value>,
    pub tags: Map<String, Value>,
    pub alias: Option<String>,
    pub version_description: Option<String>,
    pub reserved: Option<i64>,
    pub provisioned: Option<i64>,
    /// PutFunctionEventInvokeConfig's body.
    pub event_invoke: Option<Value>,
    /// The template gave no Role (SAM would create one).
    pub implicit_role: bool,
    pub metadata: Map<String, Value>,
    /// SAM's Events (evaluated), by name.
    pub events: Map<String, Value>,
    pub url: Option<Value>,
    /// DeploymentPreference, when enabled and gradual.
    pub shift: Option<Shift>,
}

fn int(id: &str, k: &str, v: &Value) -> Result<i64, TemplateError> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .ok_or_else(|| {
        TemplateError::Invalid(format!("resource {id}: {k} must be an integer, not {v}"))
    })
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn code_path(id: &str, k: &str, v: &Value, base: &Path) -> Result<Code, TemplateError> {
    match v {
        Value::String(s) if s.starts_with("s3://") => Err(unsupported(
            id,
            k,
            "code in S3 is not supported; give a local folder or .zip file",
        )),
        Value::String(s) => Ok(Code::Path(base.join(s))),
        _ => Err(unsupported(
            id,
            k,
            "code in S3 is not supported; give a local folder or .zip file",
        )),
    }
}

fn inline_file(runtime: Option<&str>) -> &'static str {
    match runtime {
        Some(r) if r.starts_with("nodejs") => "index.js",
        _ => "index.py",
    }
}

/// The function name a template's resource gets: its FunctionName, else
/// `<stack>-<LogicalId>` (64 characters at most), the same every deploy.
pub fn function_name(stack: &str, id: &str, props: &Map<String, Value>) -> String {
    if let Some(Value::String(n)) = props.get("FunctionName") {
        return n.clone();
    }
    let mut n = format!("{stack}-{id}");
    n.truncate(64);
    n
}

/// A function from its evaluated properties.
pub fn function(
    r: &Resource,
    props: &Map<String, Value>,
    stack: &str,
    base: &Path,
    default_role: &str,
) -> Result<FunctionSpec, TemplateError> {
    let id = r.logical_id.as_str();
    let sam = r.kind == SERVERLESS_FUNCTION;
    let runtime = props.get("Runtime").and_then(Value::as_str);
    let mut config = Map::new();
    let mut spec = FunctionSpec {
        logical_id: id.to_owned(),
        name: function_name(stack, id, props),
        code: Code::Inline {
            file: String::new(),
            text: String::new(),
        },
        config: Map::new(),
        tags: Map::new(),
        alias: None,
        version_description: None,
        reserved: None,
        provisioned: None,
        event_invoke: None,
        implicit_role: false,
        metadata: r.metadata.clone(),
        events: Map::new(),
        url: None,
        shift: None,
    };
    let mut code = None;
    for (k, v) in props {
        match k.as_str() {
            "Handler" | "Runtime" | "Description" | "KmsKeyArn" | "Role" => {
                config.insert(k.clone(), Value::String(text(v)));
            }
            "MemorySize" | "Timeout" => {
                config.insert(k.clone(), json!(int(id, k, v)?));
            }
            "Environment" => {
                let vars = v.get("Variables").cloned().unwrap_or(json!({}));
                let Value::Object(vars) = vars else {
                    return Err(TemplateError::Invalid(format!(
                        "resource {id}: Environment.Variables must be a mapping"
                    )));
                };
                let vars: Map<String, Value> = vars
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(text(v))))
                    .collect();
                config.insert("Environment".into(), json!({"Variables": vars}));
            }
            "Layers" | "Architectures" => {
                let items = v.as_array().cloned().unwrap_or_default();
                config.insert(
                    k.clone(),
                    Value::Array(items.iter().map(|v| Value::String(text(v))).collect()),
                );
            }
            "EphemeralStorage" => {
                let size = v.get("Size").ok_or_else(|| {
                    TemplateError::Invalid(format!("resource {id}: EphemeralStorage needs Size"))
                })?;
                config.insert(
                    k.clone(),
                    json!({"Size": int(id, "EphemeralStorage.Size", size)?}),
                );
            }
            "Tracing" => {
                config.insert("TracingConfig".into(), json!({"Mode": text(v)}));
            }
            "TracingConfig" | "VpcConfig" | "LoggingConfig" | "DeadLetterConfig" => {
                config.insert(k.clone(), v.clone());
            }
            "DeadLetterQueue" => {
                let arn = v.get("TargetArn").ok_or_else(|| {
                    TemplateError::Invalid(format!(
                        "resource {id}: DeadLetterQueue needs TargetArn"
                    ))
                })?;
                config.insert("DeadLetterConfig".into(), json!({"TargetArn": text(arn)}));
            }
            "CodeUri" => code = Some(code_path(id, k, v, base)?),
            "InlineCode" => {
                code = Some(Code::Inline {
                    file: inline_file(runtime).into(),
                    text: text(v),
                })
            }
            "Code" => {
                code = Some(match v {
                    Value::Object(m) if m.contains_key("ZipFile") => Code::Inline {
                        file: inline_file(runtime).into(),
                        text: text(&m["ZipFile"]),
                    },
                    other => code_path(id, k, other, base)?,
                })
            }
            "Tags" => match v {
                Value::Object(m) => {
                    for (tk, tv) in m {
                        spec.tags.insert(tk.clone(), Value::String(text(tv)));
                    }
                }
                Value::Array(list) => {
                    for t in list {
                        if let (Some(tk), Some(tv)) = (t.get("Key"), t.get("Value")) {
                            spec.tags.insert(text(tk), Value::String(text(tv)));
                        }
                    }
                }
                _ => {}
            },
            "AutoPublishAlias" => spec.alias = Some(text(v)),
            "Events" => spec.events = v.as_object().cloned().unwrap_or_default(),
            "FunctionUrlConfig" => spec.url = Some(v.clone()),
            "DeploymentPreference" => {
                let enabled = !matches!(v.get("Enabled"), Some(Value::Bool(false)))
                    && v.get("Enabled").and_then(Value::as_str) != Some("false");
                spec.shift = v
                    .get("Type")
                    .and_then(Value::as_str)
                    .and_then(Shift::parse)
                    .flatten()
                    .filter(|_| enabled);
            }
            "VersionDescription" => spec.version_description = Some(text(v)),
            "ReservedConcurrentExecutions" => spec.reserved = Some(int(id, k, v)?),
            "ProvisionedConcurrencyConfig" => {
                let n = v.get("ProvisionedConcurrentExecutions").ok_or_else(|| {
                    TemplateError::Invalid(format!(
                        "resource {id}: ProvisionedConcurrencyConfig needs ProvisionedConcurrentExecutions"
                    ))
                })?;
                spec.provisioned = Some(int(id, "ProvisionedConcurrentExecutions", n)?);
            }
            "EventInvokeConfig" => {
                let mut body = Map::new();
                for f in ["MaximumEventAgeInSeconds", "MaximumRetryAttempts"] {
                    if let Some(n) = v.get(f) {
                        body.insert(f.into(), json!(int(id, f, n)?));
                    }
                }
                if let Some(Value::Object(d)) = v.get("DestinationConfig") {
                    let mut dest = Map::new();
                    for (when, target) in d {
                        let arn = target.get("Destination").ok_or_else(|| {
                            unsupported(
                                id,
                                &format!("EventInvokeConfig.DestinationConfig.{when}"),
                                "give the Destination ARN (SAM would create a queue or topic; lambent does not)",
                            )
                        })?;
                        dest.insert(when.clone(), json!({"Destination": text(arn)}));
                    }
                    body.insert("DestinationConfig".into(), Value::Object(dest));
                }
                spec.event_invoke = Some(Value::Object(body));
            }
            // Checked by `check`; what is left has no Lambda field.
            _ => {}
        }
    }
    if !config.contains_key("Role") {
        config.insert("Role".into(), Value::String(default_role.to_owned()));
        spec.implicit_role = sam;
    }
    spec.code = code.ok_or_else(|| {
        TemplateError::Invalid(format!(
            "resource {id}: no code: give {}",
            if sam { "CodeUri or InlineCode" } else { "Code" }
        ))
    })?;
    spec.config = config;
    Ok(spec)
}

/// A layer version as PublishLayerVersion takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerSpec {
    pub logical_id: String,
    pub name: String,
    pub code: Code,
    /// Description, CompatibleRuntimes, CompatibleArchitectures, LicenseInfo.
    pub fields: Map<String, Value>,
    pub metadata: Map<String, Value>,
}

pub fn layer(
    r: &Resource,
    props: &Map<String, Value>,
    base: &Path,
) -> Result<LayerSpec, TemplateError> {
    let id = r.logical_id.as_str();
    let mut fields = Map::new();
    let mut code = None;
    for (k, v) in props {
        match k.as_str() {
            "ContentUri" | "Content" => code = Some(code_path(id, k, v, base)?),
            "Description" | "LicenseInfo" => {
                fields.insert(k.clone(), Value::String(text(v)));
            }
            "CompatibleRuntimes" | "CompatibleArchitectures" => {
                fields.insert(k.clone(), v.clone());
            }
            _ => {}
        }
    }
    Ok(LayerSpec {
        logical_id: id.to_owned(),
        name: props
            .get("LayerName")
            .map(text)
            .unwrap_or_else(|| id.to_owned()),
        code: code.ok_or_else(|| {
            TemplateError::Invalid(format!("resource {id}: no code: give ContentUri"))
        })?,
        fields,
        metadata: r.metadata.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::Pseudo;
    use std::collections::BTreeMap;

    fn load(text: &str) -> Template {
        let p = Pseudo {
            stack_name: "s".into(),
            region: "us-east-1".into(),
            account: "123456789012".into(),
        };
        Template::load(text, &BTreeMap::new(), &p, "/app".into()).unwrap()
    }

    const HEAD: &str = "Transform: AWS::Serverless-2016-10-31\nResources:\n";

    #[test]
    fn unsupported_things_are_named() {
        let cases: &[(&str, &str)] = &[
            (
                "  T:\n    Type: AWS::DynamoDB::Table\n",
                "resource T: type AWS::DynamoDB::Table is not supported by lambent deploy (supported: AWS::Serverless::Function, AWS::Serverless::LayerVersion, AWS::Lambda::Function, AWS::Lambda::LayerVersion, AWS::IAM::Role, AWS::IAM::Policy, AWS::IAM::ManagedPolicy)",
            ),
            (
                "  F:\n    Type: AWS::Serverless::Function\n    Properties: {CodeUri: x, Handler: a.b, Runtime: python3.12, SnapStart: {ApplyOn: None}}\n",
                "resource F: property SnapStart is not supported by lambent deploy: SnapStart applies to Java on AWS and has no meaning here",
            ),
            (
                "  F:\n    Type: AWS::Serverless::Function\n    Properties: {CodeUri: x, Frobnicate: 1}\n",
                "resource F: property Frobnicate is not supported by lambent deploy",
            ),
            (
                "  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: x\n      Events:\n        Api:\n          Type: Api\n          Properties: {Path: /, Method: get}\n",
                "resource F: property Events.Api (Type Api) is not supported by lambent deploy: the local API Gateway is not available yet; use FunctionUrlConfig for HTTP",
            ),
            (
                "  F:\n    Type: AWS::Serverless::Function\n    Properties: {CodeUri: x, FunctionUrlConfig: {AuthType: NONE, Qualifier: x}}\n",
                "resource F: property FunctionUrlConfig.Qualifier is not supported by lambent deploy: FunctionUrlConfig takes AuthType, Cors, InvokeMode",
            ),
            (
                "  F:\n    Type: AWS::Serverless::Function\n    Properties: {CodeUri: x, AutoPublishAlias: live, DeploymentPreference: {Type: Canary10Percent5Minutes, Hooks: {PreTraffic: !Ref H}}}\n",
                "resource F: property DeploymentPreference.Hooks is not supported by lambent deploy: CodeDeploy hook functions are not run; test the new version before deploying",
            ),
            (
                "  F:\n    Type: AWS::Serverless::Function\n    Properties: {CodeUri: x, AutoPublishAlias: live, DeploymentPreference: {Type: Sometimes}}\n",
                "resource F: property DeploymentPreference.Type (Sometimes) is not supported by lambent deploy: the types are AllAtOnce, CanaryXPercentYMinutes and LinearXPercentEveryYMinute(s)",
            ),
            (
                "  F:\n    Type: AWS::Serverless::Function\n    Properties: {CodeUri: x, DeploymentPreference: {Type: AllAtOnce}}\n",
                "resource F: DeploymentPreference needs AutoPublishAlias (traffic shifts between the alias's versions)",
            ),
            (
                "  F:\n    Type: AWS::Serverless::Function\n    Properties: {CodeUri: x, PackageType: Image}\n",
                "resource F: property PackageType is not supported by lambent deploy: container image functions are not supported (PackageType Zip only)",
            ),
            (
                "  F:\n    Type: AWS::Serverless::Function\n    Properties: {CodeUri: x, ProvisionedConcurrencyConfig: {ProvisionedConcurrentExecutions: 1}}\n",
                "resource F: ProvisionedConcurrencyConfig needs AutoPublishAlias (SAM sets it on the alias)",
            ),
        ];
        for (resources, want) in cases {
            let t = load(&format!("{HEAD}{resources}"));
            assert_eq!(check(&t).unwrap_err().to_string(), *want, "{resources}");
        }
    }

    #[test]
    fn a_sam_function_becomes_lambda_fields() {
        let t = load(&format!(
            "{HEAD}  Hello:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: hello/\n      Handler: app.handler\n      Runtime: python3.12\n      MemorySize: '256'\n      Timeout: 9\n      Environment: {{Variables: {{N: 1, S: x}}}}\n      EphemeralStorage: {{Size: 1024}}\n      Tracing: Active\n      Policies: [AWSLambdaBasicExecutionRole]\n      DeadLetterQueue: {{Type: SQS, TargetArn: arn:aws:sqs:us-east-1:123456789012:dlq}}\n      AutoPublishAlias: live\n      ReservedConcurrentExecutions: 5\n      ProvisionedConcurrencyConfig: {{ProvisionedConcurrentExecutions: 1}}\n      EventInvokeConfig:\n        MaximumRetryAttempts: 1\n        DestinationConfig: {{OnFailure: {{Type: SQS, Destination: arn:aws:sqs:us-east-1:123456789012:f}}}}\n      Tags: {{team: a}}\n"
        ));
        check(&t).unwrap();
        let r = &t.resources[0];
        let f = function(
            r,
            &r.properties,
            "s",
            Path::new("/app"),
            "arn:aws:iam::123456789012:role/s-HelloRole",
        )
        .unwrap();
        assert_eq!(f.name, "s-Hello");
        assert_eq!(f.code, Code::Path("/app/hello/".into()));
        assert_eq!(
            Value::Object(f.config),
            json!({
                "Handler": "app.handler", "Runtime": "python3.12", "MemorySize": 256, "Timeout": 9,
                "Environment": {"Variables": {"N": "1", "S": "x"}},
                "EphemeralStorage": {"Size": 1024},
                "TracingConfig": {"Mode": "Active"},
                "DeadLetterConfig": {"TargetArn": "arn:aws:sqs:us-east-1:123456789012:dlq"},
                "Role": "arn:aws:iam::123456789012:role/s-HelloRole",
            })
        );
        assert!(f.implicit_role);
        assert_eq!(f.alias.as_deref(), Some("live"));
        assert_eq!((f.reserved, f.provisioned), (Some(5), Some(1)));
        assert_eq!(
            f.event_invoke,
            Some(json!({"MaximumRetryAttempts": 1,
                        "DestinationConfig": {"OnFailure": {"Destination": "arn:aws:sqs:us-east-1:123456789012:f"}}}))
        );
        assert_eq!(Value::Object(f.tags), json!({"team": "a"}));
    }

    #[test]
    fn deployment_preferences_become_weight_steps() {
        let cases: &[(&str, Option<Option<Vec<u32>>>)] = &[
            ("AllAtOnce", Some(None)),
            ("Canary10Percent5Minutes", Some(Some(vec![10]))),
            ("Canary10Percent30Minutes", Some(Some(vec![10]))),
            (
                "Linear10PercentEvery1Minute",
                Some(Some((1..10).map(|k| k * 10).collect())),
            ),
            (
                "Linear25PercentEvery10Minutes",
                Some(Some(vec![25, 50, 75])),
            ),
            ("Linear10Percent1Minute", None),
            ("Canary100Percent5Minutes", None),
            ("Sometimes", None),
        ];
        for (kind, want) in cases {
            let got = Shift::parse(kind).map(|s| s.map(|s| s.steps()));
            assert_eq!(&got, want, "{kind}");
        }
        assert_eq!(
            Shift::parse("Canary10Percent15Minutes"),
            Some(Some(Shift {
                linear: false,
                percent: 10,
                minutes: 15
            }))
        );
    }

    #[test]
    fn inline_code_and_plain_lambda_resources() {
        let t = load(
            "Resources:\n  F:\n    Type: AWS::Lambda::Function\n    Properties:\n      Runtime: nodejs22.x\n      Handler: index.handler\n      Role: arn:aws:iam::123456789012:role/r\n      Code: {ZipFile: 'exports.handler = async () => 1'}\n      Tags: [{Key: k, Value: v}]\n  L:\n    Type: AWS::Lambda::LayerVersion\n    Properties: {Content: layer/, LayerName: deps, CompatibleRuntimes: [nodejs22.x]}\n",
        );
        check(&t).unwrap();
        let f = function(
            &t.resources[0],
            &t.resources[0].properties,
            "s",
            Path::new("/app"),
            "unused",
        )
        .unwrap();
        assert_eq!(
            f.code,
            Code::Inline {
                file: "index.js".into(),
                text: "exports.handler = async () => 1".into()
            }
        );
        assert!(!f.implicit_role);
        assert_eq!(Value::Object(f.tags), json!({"k": "v"}));
        let l = layer(
            &t.resources[1],
            &t.resources[1].properties,
            Path::new("/app"),
        )
        .unwrap();
        assert_eq!(
            (l.name.as_str(), &l.code),
            ("deps", &Code::Path("/app/layer/".into()))
        );
        let e = function(
            &t.resources[0],
            &Map::from_iter([("CodeUri".to_string(), json!("s3://b/k.zip"))]),
            "s",
            Path::new("/app"),
            "r",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "resource F: property CodeUri is not supported by lambent deploy: code in S3 is not supported; give a local folder or .zip file"
        );
    }
}
