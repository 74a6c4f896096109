//! A SAM template read into its parts: Parameters (with overrides),
//! Mappings, Conditions (evaluated), Globals (merged into each function),
//! Resources and Outputs; and the intrinsic functions, evaluated against the
//! parameters and what is deployed so far.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Map, Value};

use crate::yaml;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TemplateError {
    #[error(transparent)]
    Parse(#[from] yaml::ParseError),
    #[error("{0}")]
    Invalid(String),
    #[error("parameter {name}: {reason}")]
    Parameter { name: String, reason: String },
    #[error("{at}: {function}: {reason}")]
    Intrinsic {
        at: String,
        function: String,
        reason: String,
    },
    #[error("{at}: {target} is not deployed yet")]
    Pending { at: String, target: String },
    #[error(
        "resource {resource}: type {kind} is not supported by lambent deploy (supported: {supported})"
    )]
    UnsupportedResource {
        resource: String,
        kind: String,
        supported: String,
    },
    #[error("resource {resource}: property {property} is not supported by lambent deploy{hint}")]
    UnsupportedProperty {
        resource: String,
        property: String,
        hint: String,
    },
}

fn invalid(s: impl Into<String>) -> TemplateError {
    TemplateError::Invalid(s.into())
}

/// A template's parts, conditions and Globals already applied.
#[derive(Debug, Clone)]
pub struct Template {
    /// Parameter values after overrides and defaults.
    pub parameters: BTreeMap<String, Value>,
    pub mappings: Map<String, Value>,
    pub conditions: BTreeMap<String, bool>,
    /// Resources whose condition holds, Globals merged, in template order.
    pub resources: Vec<Resource>,
    /// Outputs whose condition holds: name and (unevaluated) value.
    pub outputs: Vec<(String, Value)>,
    /// The directory relative paths (CodeUri, ContentUri) start from.
    pub base_dir: std::path::PathBuf,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub logical_id: String,
    pub kind: String,
    pub properties: Map<String, Value>,
    pub metadata: Map<String, Value>,
    pub depends_on: Vec<String>,
}

/// The Globals sections and properties SAM defines for functions.
const GLOBAL_FUNCTION_PROPERTIES: &[&str] = &[
    "Handler",
    "Runtime",
    "CodeUri",
    "DeadLetterQueue",
    "Description",
    "MemorySize",
    "Timeout",
    "VpcConfig",
    "Environment",
    "Tags",
    "Tracing",
    "KmsKeyArn",
    "Layers",
    "AutoPublishAlias",
    "DeploymentPreference",
    "PermissionsBoundary",
    "ReservedConcurrentExecutions",
    "ProvisionedConcurrencyConfig",
    "AssumeRolePolicyDocument",
    "EventInvokeConfig",
    "Architectures",
    "EphemeralStorage",
    "FunctionUrlConfig",
    "RuntimeManagementConfig",
    "SnapStart",
    "LoggingConfig",
    "RecursiveLoop",
    "PropagateTags",
    "Policies",
    "Role",
];

impl Template {
    /// Reads `text`; `overrides` are `--parameter-overrides` (name -> value).
    pub fn load(
        text: &str,
        overrides: &BTreeMap<String, String>,
        ctx: &Pseudo,
        base_dir: std::path::PathBuf,
    ) -> Result<Self, TemplateError> {
        let root = yaml::parse(text)?;
        let Value::Object(root) = root else {
            return Err(invalid("the template is not a mapping of sections"));
        };
        let transform = root.get("Transform");
        let is_sam = match transform {
            Some(Value::String(s)) => s.starts_with("AWS::Serverless"),
            Some(Value::Array(a)) => a
                .iter()
                .any(|t| t.as_str().is_some_and(|s| s.starts_with("AWS::Serverless"))),
            _ => false,
        };
        for key in root.keys() {
            if !matches!(
                key.as_str(),
                "AWSTemplateFormatVersion"
                    | "Transform"
                    | "Description"
                    | "Metadata"
                    | "Parameters"
                    | "Mappings"
                    | "Conditions"
                    | "Globals"
                    | "Resources"
                    | "Outputs"
                    | "Rules"
            ) {
                return Err(invalid(format!(
                    "unknown template section {key} (sections: AWSTemplateFormatVersion, Transform, Description, Metadata, Parameters, Mappings, Conditions, Globals, Resources, Outputs)"
                )));
            }
        }
        let parameters = parameters(root.get("Parameters"), overrides)?;
        let mappings = match root.get("Mappings") {
            None => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(_) => return Err(invalid("Mappings must be a mapping")),
        };
        let mut t = Template {
            parameters,
            mappings,
            conditions: BTreeMap::new(),
            resources: Vec::new(),
            outputs: Vec::new(),
            base_dir,
        };
        // Conditions may refer to one another: evaluate on demand.
        let raw_conditions = match root.get("Conditions") {
            None => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(_) => return Err(invalid("Conditions must be a mapping")),
        };
        for name in raw_conditions.keys() {
            let mut visiting = BTreeSet::new();
            let v = t.condition(name, &raw_conditions, &mut visiting, ctx)?;
            t.conditions.insert(name.clone(), v);
        }
        let globals = match root.get("Globals") {
            None => Map::new(),
            Some(Value::Object(g)) if is_sam => g.clone(),
            Some(Value::Object(_)) => {
                return Err(invalid(
                    "Globals needs Transform: AWS::Serverless-2016-10-31",
                ));
            }
            Some(_) => return Err(invalid("Globals must be a mapping")),
        };
        for (section, props) in &globals {
            match section.as_str() {
                "Function" => {
                    let Value::Object(props) = props else {
                        return Err(invalid("Globals.Function must be a mapping"));
                    };
                    for k in props.keys() {
                        if !GLOBAL_FUNCTION_PROPERTIES.contains(&k.as_str()) {
                            return Err(invalid(format!(
                                "Globals.Function.{k} is not a property SAM allows in Globals"
                            )));
                        }
                    }
                }
                "Api" | "HttpApi" | "SimpleTable" | "LayerVersion" | "StateMachine" => {}
                other => {
                    return Err(invalid(format!(
                        "Globals.{other} is not a Globals section (Function, Api, HttpApi, SimpleTable, LayerVersion, StateMachine)"
                    )));
                }
            }
        }
        let Some(Value::Object(resources)) = root.get("Resources") else {
            return Err(invalid("the template has no Resources mapping"));
        };
        for (id, r) in resources {
            let Value::Object(r) = r else {
                return Err(invalid(format!("resource {id} is not a mapping")));
            };
            if !t.holds(r.get("Condition"), id)? {
                continue;
            }
            let kind = r
                .get("Type")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid(format!("resource {id} has no Type")))?
                .to_owned();
            if kind.starts_with("AWS::Serverless::") && !is_sam {
                return Err(invalid(format!(
                    "resource {id} is {kind}: the template needs Transform: AWS::Serverless-2016-10-31"
                )));
            }
            let mut properties = match r.get("Properties") {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(p)) => p.clone(),
                Some(_) => {
                    return Err(invalid(format!(
                        "resource {id}: Properties is not a mapping"
                    )));
                }
            };
            let global_section = match kind.as_str() {
                "AWS::Serverless::Function" => Some("Function"),
                "AWS::Serverless::LayerVersion" => Some("LayerVersion"),
                "AWS::Serverless::Api" => Some("Api"),
                "AWS::Serverless::HttpApi" => Some("HttpApi"),
                _ => None,
            };
            if let Some(Value::Object(g)) = global_section.and_then(|s| globals.get(s)) {
                properties = merge_globals(g, properties);
            }
            let metadata = match r.get("Metadata") {
                Some(Value::Object(m)) => m.clone(),
                _ => Map::new(),
            };
            let depends_on = match r.get("DependsOn") {
                Some(Value::String(s)) => vec![s.clone()],
                Some(Value::Array(a)) => a
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
                _ => Vec::new(),
            };
            t.resources.push(Resource {
                logical_id: id.clone(),
                kind,
                properties,
                metadata,
                depends_on,
            });
        }
        if let Some(Value::Object(outputs)) = root.get("Outputs") {
            for (name, o) in outputs {
                let Value::Object(o) = o else {
                    return Err(invalid(format!("output {name} is not a mapping")));
                };
                if !t.holds(o.get("Condition"), name)? {
                    continue;
                }
                let v = o
                    .get("Value")
                    .cloned()
                    .ok_or_else(|| invalid(format!("output {name} has no Value")))?;
                t.outputs.push((name.clone(), v));
            }
        }
        Ok(t)
    }

    fn holds(&self, c: Option<&Value>, at: &str) -> Result<bool, TemplateError> {
        match c {
            None => Ok(true),
            Some(Value::String(name)) => self
                .conditions
                .get(name)
                .copied()
                .ok_or_else(|| invalid(format!("{at}: condition {name} is not defined"))),
            Some(_) => Err(invalid(format!("{at}: Condition must name a condition"))),
        }
    }

    fn condition(
        &self,
        name: &str,
        raw: &Map<String, Value>,
        visiting: &mut BTreeSet<String>,
        ctx: &Pseudo,
    ) -> Result<bool, TemplateError> {
        if let Some(v) = self.conditions.get(name) {
            return Ok(*v);
        }
        let def = raw
            .get(name)
            .ok_or_else(|| invalid(format!("condition {name} is not defined")))?;
        if !visiting.insert(name.to_owned()) {
            return Err(invalid(format!("condition {name} refers to itself")));
        }
        let at = format!("Conditions.{name}");
        let r = self.cond_value(def, raw, visiting, ctx, &at);
        visiting.remove(name);
        r
    }

    fn cond_value(
        &self,
        v: &Value,
        raw: &Map<String, Value>,
        visiting: &mut BTreeSet<String>,
        ctx: &Pseudo,
        at: &str,
    ) -> Result<bool, TemplateError> {
        let bad = |f: &str, reason: &str| TemplateError::Intrinsic {
            at: at.to_owned(),
            function: f.to_owned(),
            reason: reason.to_owned(),
        };
        let Some((f, arg)) = single_key(v) else {
            return match v {
                Value::Bool(b) => Ok(*b),
                _ => Err(bad(
                    "Condition",
                    "a condition is Fn::Equals, Fn::And, Fn::Or, Fn::Not or a Condition",
                )),
            };
        };
        match f {
            "Condition" => {
                let n = arg.as_str().ok_or_else(|| bad(f, "names a condition"))?;
                self.condition(n, raw, visiting, ctx)
            }
            "Fn::Equals" => {
                let Some([a, b]) = arg.as_array().map(Vec::as_slice) else {
                    return Err(bad(f, "takes a list of two values"));
                };
                let env = Env {
                    t: self,
                    ctx,
                    deployed: &HashMap::new(),
                };
                let (a, b) = (env.eval(a, at)?, env.eval(b, at)?);
                Ok(scalar_text(&a) == scalar_text(&b))
            }
            "Fn::Not" => {
                let Some([a]) = arg.as_array().map(Vec::as_slice) else {
                    return Err(bad(f, "takes a list of one condition"));
                };
                Ok(!self.cond_value(a, raw, visiting, ctx, at)?)
            }
            "Fn::And" | "Fn::Or" => {
                let items = arg
                    .as_array()
                    .filter(|a| (2..=10).contains(&a.len()))
                    .ok_or_else(|| bad(f, "takes a list of 2 to 10 conditions"))?;
                let mut out = f == "Fn::And";
                for c in items {
                    let v = self.cond_value(c, raw, visiting, ctx, at)?;
                    if f == "Fn::And" {
                        out &= v;
                    } else {
                        out |= v;
                    }
                }
                Ok(out)
            }
            other => Err(bad(other, "is not a condition function")),
        }
    }
}

/// A scalar as text, for comparisons (`Fn::Equals` compares strings).
fn scalar_text(v: &Value) -> Value {
    match v {
        Value::Number(n) => Value::String(n.to_string()),
        Value::Bool(b) => Value::String(b.to_string()),
        other => other.clone(),
    }
}

/// SAM's Globals rules: maps merge (the resource wins), lists add up, other
/// values are overridden by the resource.
fn merge_globals(global: &Map<String, Value>, local: Map<String, Value>) -> Map<String, Value> {
    let mut out = global.clone();
    for (k, v) in local {
        let merged = match (out.remove(&k), v) {
            (Some(Value::Object(g)), Value::Object(l))
                if single_key(&Value::Object(l.clone())).is_none() =>
            {
                Value::Object(merge_globals(&g, l))
            }
            (Some(Value::Array(mut g)), Value::Array(l)) => {
                g.extend(l);
                Value::Array(g)
            }
            (_, v) => v,
        };
        out.insert(k, merged);
    }
    out
}

/// `{"Fn::X": arg}` as ("Fn::X", arg) when the only key is an intrinsic.
pub fn single_key(v: &Value) -> Option<(&str, &Value)> {
    let m = v.as_object()?;
    if m.len() != 1 {
        return None;
    }
    let (k, v) = m.iter().next()?;
    (k == "Ref" || k == "Condition" || k.starts_with("Fn::")).then_some((k.as_str(), v))
}

fn parameters(
    def: Option<&Value>,
    overrides: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, Value>, TemplateError> {
    let defs = match def {
        None => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(invalid("Parameters must be a mapping")),
    };
    for k in overrides.keys() {
        if !defs.contains_key(k) {
            return Err(TemplateError::Parameter {
                name: k.clone(),
                reason: format!(
                    "is not a parameter of this template (its parameters: {})",
                    defs.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            });
        }
    }
    let mut out = BTreeMap::new();
    for (name, p) in &defs {
        let perr = |reason: String| TemplateError::Parameter {
            name: name.clone(),
            reason,
        };
        let kind = p.get("Type").and_then(Value::as_str).unwrap_or("String");
        let raw = match overrides.get(name) {
            Some(v) => v.clone(),
            None => match p.get("Default") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                Some(Value::Bool(b)) => b.to_string(),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| v.to_string())
                    })
                    .collect::<Vec<_>>()
                    .join(","),
                _ => {
                    return Err(perr(format!(
                        "has no Default: pass it with --parameter-overrides {name}=VALUE"
                    )));
                }
            },
        };
        if let Some(Value::Array(allowed)) = p.get("AllowedValues")
            && !allowed
                .iter()
                .any(|a| scalar_text(a) == Value::String(raw.clone()))
        {
            return Err(perr(format!(
                "'{raw}' is not one of its AllowedValues ({})",
                allowed
                    .iter()
                    .map(|a| match scalar_text(a) {
                        Value::String(s) => s,
                        o => o.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let value = match kind {
            "String" => Value::String(raw),
            "Number" => {
                raw.parse::<f64>()
                    .map_err(|_| perr(format!("'{raw}' is not a Number")))?;
                Value::String(raw)
            }
            "CommaDelimitedList" | "List<Number>" => Value::Array(
                raw.split(',')
                    .map(|s| Value::String(s.trim().to_owned()))
                    .collect(),
            ),
            other if other.starts_with("AWS::SSM::") => {
                return Err(perr(format!(
                    "type {other} is not supported (no Parameter Store): give the parameter a String type"
                )));
            }
            // AWS-specific types (AWS::EC2::VPC::Id, ...) are strings.
            _ => Value::String(raw),
        };
        out.insert(name.clone(), value);
    }
    Ok(out)
}

/// The pseudo parameters' values.
#[derive(Debug, Clone)]
pub struct Pseudo {
    pub stack_name: String,
    pub region: String,
    pub account: String,
}

impl Pseudo {
    pub fn partition(&self) -> &'static str {
        if self.region.starts_with("cn-") {
            "aws-cn"
        } else if self.region.starts_with("us-gov-") {
            "aws-us-gov"
        } else {
            "aws"
        }
    }
}

/// What a deployed resource answers to `Ref` and `Fn::GetAtt`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attributes {
    pub reference: String,
    pub attrs: BTreeMap<String, String>,
}

/// The environment intrinsics evaluate in.
pub struct Env<'a> {
    pub t: &'a Template,
    pub ctx: &'a Pseudo,
    pub deployed: &'a HashMap<String, Attributes>,
}

impl Env<'_> {
    /// Evaluates `v`; `AWS::NoValue` drops the property or list item it is.
    pub fn eval(&self, v: &Value, at: &str) -> Result<Value, TemplateError> {
        Ok(self.eval_opt(v, at)?.unwrap_or(Value::Null))
    }

    fn eval_opt(&self, v: &Value, at: &str) -> Result<Option<Value>, TemplateError> {
        if let Some((f, arg)) = single_key(v) {
            return self.function(f, arg, at);
        }
        Ok(Some(match v {
            Value::Object(m) => {
                let mut out = Map::new();
                for (k, v) in m {
                    if let Some(v) = self.eval_opt(v, &format!("{at}.{k}"))? {
                        out.insert(k.clone(), v);
                    }
                }
                Value::Object(out)
            }
            Value::Array(a) => {
                let mut out = Vec::new();
                for (i, v) in a.iter().enumerate() {
                    if let Some(v) = self.eval_opt(v, &format!("{at}[{i}]"))? {
                        out.push(v);
                    }
                }
                Value::Array(out)
            }
            other => other.clone(),
        }))
    }

    fn function(&self, f: &str, arg: &Value, at: &str) -> Result<Option<Value>, TemplateError> {
        let bad = |reason: &str| TemplateError::Intrinsic {
            at: at.to_owned(),
            function: f.to_owned(),
            reason: reason.to_owned(),
        };
        let list = |n: std::ops::RangeInclusive<usize>, what: &str| {
            arg.as_array()
                .filter(|a| n.contains(&a.len()))
                .ok_or_else(|| bad(what))
        };
        let text = |v: Value, what: &str| match v {
            Value::String(s) => Ok(s),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            _ => Err(bad(what)),
        };
        Ok(Some(match f {
            "Ref" => {
                let name = arg.as_str().ok_or_else(|| bad("takes a name"))?;
                if name == "AWS::NoValue" {
                    return Ok(None);
                }
                self.reference(name, at)?
            }
            "Fn::GetAtt" => {
                let (r, a) = match arg {
                    Value::Array(a) if a.len() == 2 => {
                        let attr = text(self.eval(&a[1], at)?, "takes [resource, attribute]")?;
                        (
                            a[0].as_str()
                                .ok_or_else(|| bad("takes [resource, attribute]"))?,
                            attr,
                        )
                    }
                    Value::String(s) => match s.split_once('.') {
                        Some((r, a)) => (r, a.to_owned()),
                        None => return Err(bad("takes Resource.Attribute")),
                    },
                    _ => return Err(bad("takes [resource, attribute]")),
                };
                Value::String(self.attribute(r, &a, at)?)
            }
            "Fn::Sub" => {
                let (tmpl, vars) = match arg {
                    Value::String(s) => (s.clone(), Map::new()),
                    Value::Array(a) if a.len() == 2 => {
                        let s = a[0].as_str().ok_or_else(|| bad("takes a string"))?;
                        let vars = match self.eval(&a[1], at)? {
                            Value::Object(m) => m,
                            _ => return Err(bad("takes [string, {variables}]")),
                        };
                        (s.to_owned(), vars)
                    }
                    _ => return Err(bad("takes a string or [string, {variables}]")),
                };
                Value::String(self.sub(&tmpl, &vars, at)?)
            }
            "Fn::Join" => {
                let a = list(2..=2, "takes [delimiter, [values]]")?;
                let d = a[0]
                    .as_str()
                    .ok_or_else(|| bad("takes a string delimiter"))?;
                let items = match self.eval(&a[1], at)? {
                    Value::Array(items) => items,
                    _ => return Err(bad("joins a list")),
                };
                let parts = items
                    .into_iter()
                    .map(|v| text(v, "joins strings"))
                    .collect::<Result<Vec<_>, _>>()?;
                Value::String(parts.join(d))
            }
            "Fn::Select" => {
                let a = list(2..=2, "takes [index, [values]]")?;
                let i = match self.eval(&a[0], at)? {
                    Value::Number(n) => n.as_u64(),
                    Value::String(s) => s.parse().ok(),
                    _ => None,
                }
                .ok_or_else(|| bad("takes a number as its index"))?;
                let items = match self.eval(&a[1], at)? {
                    Value::Array(items) => items,
                    _ => return Err(bad("selects from a list")),
                };
                items.get(i as usize).cloned().ok_or_else(|| {
                    bad(&format!(
                        "index {i} is past the list's {} items",
                        items.len()
                    ))
                })?
            }
            "Fn::Split" => {
                let a = list(2..=2, "takes [delimiter, string]")?;
                let d = a[0]
                    .as_str()
                    .ok_or_else(|| bad("takes a string delimiter"))?;
                let s = text(self.eval(&a[1], at)?, "splits a string")?;
                Value::Array(s.split(d).map(|p| Value::String(p.to_owned())).collect())
            }
            "Fn::If" => {
                let a = list(3..=3, "takes [condition, value if true, value if false]")?;
                let c = a[0]
                    .as_str()
                    .ok_or_else(|| bad("names a condition first"))?;
                let holds = *self
                    .t
                    .conditions
                    .get(c)
                    .ok_or_else(|| bad(&format!("condition {c} is not defined")))?;
                return self.eval_opt(if holds { &a[1] } else { &a[2] }, at);
            }
            "Fn::FindInMap" => {
                let a = list(3..=4, "takes [map, top-level key, second-level key]")?;
                let keys = a[..3]
                    .iter()
                    .map(|k| self.eval(k, at).and_then(|k| text(k, "takes string keys")))
                    .collect::<Result<Vec<_>, _>>()?;
                let found = self
                    .t
                    .mappings
                    .get(&keys[0])
                    .and_then(|m| m.get(&keys[1]))
                    .and_then(|m| m.get(&keys[2]));
                match (found, a.get(3)) {
                    (Some(v), _) => v.clone(),
                    (None, Some(Value::Object(d))) if d.contains_key("DefaultValue") => {
                        self.eval(&d["DefaultValue"], at)?
                    }
                    _ => {
                        return Err(bad(&format!(
                            "no value at {} / {} / {}",
                            keys[0], keys[1], keys[2]
                        )));
                    }
                }
            }
            "Fn::Equals" | "Fn::And" | "Fn::Or" | "Fn::Not" | "Condition" => {
                let raw = Map::new();
                let mut visiting = BTreeSet::new();
                Value::Bool(self.t.cond_value(
                    &Value::Object(std::iter::once((f.to_owned(), arg.clone())).collect()),
                    &raw,
                    &mut visiting,
                    self.ctx,
                    at,
                )?)
            }
            "Fn::Base64" => {
                use base64::Engine as _;
                let s = text(self.eval(arg, at)?, "encodes a string")?;
                Value::String(base64::engine::general_purpose::STANDARD.encode(s))
            }
            other => {
                return Err(bad(&format!(
                    "{other} is not supported (supported: Ref, Fn::GetAtt, Fn::Sub, Fn::Join, Fn::If, Fn::Select, Fn::Split, Fn::FindInMap, Fn::Equals, Fn::And, Fn::Or, Fn::Not, Fn::Base64)"
                )));
            }
        }))
    }

    fn reference(&self, name: &str, at: &str) -> Result<Value, TemplateError> {
        let c = self.ctx;
        Ok(match name {
            "AWS::Region" => Value::String(c.region.clone()),
            "AWS::AccountId" => Value::String(c.account.clone()),
            "AWS::StackName" => Value::String(c.stack_name.clone()),
            "AWS::StackId" => Value::String(format!(
                "arn:{}:cloudformation:{}:{}:stack/{}",
                c.partition(),
                c.region,
                c.account,
                c.stack_name
            )),
            "AWS::Partition" => Value::String(c.partition().to_owned()),
            "AWS::URLSuffix" => Value::String("amazonaws.com".into()),
            "AWS::NotificationARNs" => Value::Array(Vec::new()),
            _ => {
                if let Some(v) = self.t.parameters.get(name) {
                    return Ok(v.clone());
                }
                if let Some(d) = self.deployed.get(name) {
                    return Ok(Value::String(d.reference.clone()));
                }
                // SAM's `Function.Alias` and `Function.Version` references.
                if let Some((r, a)) = name.split_once('.')
                    && matches!(a, "Alias" | "Version")
                {
                    return Ok(Value::String(self.attribute(r, a, at)?));
                }
                return Err(self.missing(name, at));
            }
        })
    }

    fn attribute(&self, resource: &str, attr: &str, at: &str) -> Result<String, TemplateError> {
        match self.deployed.get(resource) {
            Some(d) => d
                .attrs
                .get(attr)
                .cloned()
                .ok_or_else(|| TemplateError::Intrinsic {
                    at: at.to_owned(),
                    function: "Fn::GetAtt".into(),
                    reason: format!(
                        "{resource} has no attribute {attr} (it has: {})",
                        d.attrs.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                }),
            None => Err(self.missing(resource, at)),
        }
    }

    fn missing(&self, name: &str, at: &str) -> TemplateError {
        if self.t.resources.iter().any(|r| r.logical_id == name) {
            TemplateError::Pending {
                at: at.to_owned(),
                target: name.to_owned(),
            }
        } else {
            TemplateError::Intrinsic {
                at: at.to_owned(),
                function: "Ref".into(),
                reason: format!(
                    "{name} is not a parameter, resource or pseudo parameter of this template"
                ),
            }
        }
    }

    fn sub(
        &self,
        tmpl: &str,
        vars: &Map<String, Value>,
        at: &str,
    ) -> Result<String, TemplateError> {
        let mut out = String::new();
        let mut rest = tmpl;
        while let Some(i) = rest.find("${") {
            out.push_str(&rest[..i]);
            let after = &rest[i + 2..];
            // `${!Literal}` is the literal `${Literal}`.
            if let Some(lit) = after.strip_prefix('!') {
                out.push_str("${");
                rest = lit;
                continue;
            }
            let end = after.find('}').ok_or_else(|| TemplateError::Intrinsic {
                at: at.to_owned(),
                function: "Fn::Sub".into(),
                reason: format!("unclosed ${{ in '{tmpl}'"),
            })?;
            let name = after[..end].trim();
            let v = match vars.get(name) {
                Some(v) => v.clone(),
                None => match name.split_once('.') {
                    Some((r, a))
                        if !name.starts_with("AWS::") && !self.t.parameters.contains_key(name) =>
                    {
                        Value::String(self.attribute(r, a, at)?)
                    }
                    _ => self.reference(name, at)?,
                },
            };
            match v {
                Value::String(s) => out.push_str(&s),
                Value::Number(n) => out.push_str(&n.to_string()),
                Value::Bool(b) => out.push_str(&b.to_string()),
                Value::Array(a) => out.push_str(
                    &a.iter()
                        .map(|v| {
                            v.as_str()
                                .map(str::to_owned)
                                .unwrap_or_else(|| v.to_string())
                        })
                        .collect::<Vec<_>>()
                        .join(","),
                ),
                other => out.push_str(&other.to_string()),
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// The logical ids `v` refers to (Ref, Fn::GetAtt, Fn::Sub variables),
/// for ordering the deployment.
pub fn references(v: &Value, out: &mut BTreeSet<String>) {
    match single_key(v) {
        Some(("Ref", Value::String(s))) => {
            out.insert(s.split('.').next().unwrap_or(s).to_owned());
        }
        Some(("Fn::GetAtt", Value::Array(a))) => {
            if let Some(r) = a.first().and_then(Value::as_str) {
                out.insert(r.to_owned());
            }
        }
        Some(("Fn::GetAtt", Value::String(s))) => {
            out.insert(s.split('.').next().unwrap_or(s).to_owned());
        }
        Some(("Fn::Sub", arg)) => {
            let s = match arg {
                Value::String(s) => Some(s.as_str()),
                Value::Array(a) => {
                    if let Some(vars) = a.get(1) {
                        references(vars, out);
                    }
                    a.first().and_then(Value::as_str)
                }
                _ => None,
            };
            let mut rest = s.unwrap_or("");
            while let Some(i) = rest.find("${") {
                let after = &rest[i + 2..];
                let Some(end) = after.find('}') else { break };
                let name = &after[..end];
                if !name.starts_with('!') {
                    out.insert(name.split('.').next().unwrap_or(name).trim().to_owned());
                }
                rest = &after[end + 1..];
            }
        }
        _ => match v {
            Value::Object(m) => m.values().for_each(|v| references(v, out)),
            Value::Array(a) => a.iter().for_each(|v| references(v, out)),
            _ => {}
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pseudo() -> Pseudo {
        Pseudo {
            stack_name: "app".into(),
            region: "eu-west-1".into(),
            account: "123456789012".into(),
        }
    }

    const TEMPLATE: &str = r#"
AWSTemplateFormatVersion: '2010-09-09'
Transform: AWS::Serverless-2016-10-31
Parameters:
  Stage:
    Type: String
    Default: dev
    AllowedValues: [dev, prod]
  Sizes:
    Type: CommaDelimitedList
    Default: "128,256"
Mappings:
  Memory:
    dev: {size: 128}
    prod: {size: 1024}
Conditions:
  IsProd: !Equals [!Ref Stage, prod]
  NotProd: !Not [!Condition IsProd]
  Both: !And [!Condition IsProd, !Condition NotProd]
  Either: !Or [!Condition IsProd, !Condition NotProd]
Globals:
  Function:
    Runtime: python3.12
    Timeout: 10
    Environment:
      Variables:
        SHARED: g
        OVERRIDDEN: g
    Layers: [arn:aws:lambda:eu-west-1:123456789012:layer:g:1]
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Handler: app.handler
      Timeout: 30
      Environment:
        Variables:
          OVERRIDDEN: local
      Layers: [arn:aws:lambda:eu-west-1:123456789012:layer:l:1]
  ProdOnly:
    Type: AWS::Serverless::Function
    Condition: IsProd
    Properties:
      Handler: x.y
Outputs:
  Arn:
    Value: !GetAtt Fn.Arn
  ProdThing:
    Condition: IsProd
    Value: x
"#;

    fn load(overrides: &[(&str, &str)]) -> Result<Template, TemplateError> {
        let o = overrides
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Template::load(TEMPLATE, &o, &pseudo(), ".".into())
    }

    #[test]
    fn globals_merge_and_conditions_filter() {
        let t = load(&[]).unwrap();
        assert_eq!(t.resources.len(), 1);
        assert_eq!(
            Value::Object(t.resources[0].properties.clone()),
            json!({
                "Runtime": "python3.12",
                "Timeout": 30,
                "Environment": {"Variables": {"SHARED": "g", "OVERRIDDEN": "local"}},
                "Layers": ["arn:aws:lambda:eu-west-1:123456789012:layer:g:1",
                           "arn:aws:lambda:eu-west-1:123456789012:layer:l:1"],
                "Handler": "app.handler",
            })
        );
        assert_eq!(
            t.conditions,
            BTreeMap::from([
                ("IsProd".into(), false),
                ("NotProd".into(), true),
                ("Both".into(), false),
                ("Either".into(), true)
            ])
        );
        assert_eq!(t.outputs.len(), 1);
        let t = load(&[("Stage", "prod")]).unwrap();
        assert_eq!(t.resources.len(), 2);
        assert_eq!(t.outputs.len(), 2);
    }

    #[test]
    fn parameters_are_checked() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("Stage", "qa")],
                "parameter Stage: 'qa' is not one of its AllowedValues (dev, prod)",
            ),
            (
                &[("Nope", "1")],
                "parameter Nope: is not a parameter of this template (its parameters: Stage, Sizes)",
            ),
        ];
        for (o, want) in cases {
            assert_eq!(load(o).unwrap_err().to_string(), *want);
        }
        let e = Template::load(
            "Parameters: {P: {Type: String}}\nResources: {}",
            &BTreeMap::new(),
            &pseudo(),
            ".".into(),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "parameter P: has no Default: pass it with --parameter-overrides P=VALUE"
        );
    }

    #[test]
    fn intrinsics_evaluate() {
        let t = load(&[]).unwrap();
        let deployed = HashMap::from([(
            "Fn".to_string(),
            Attributes {
                reference: "app-Fn".into(),
                attrs: BTreeMap::from([(
                    "Arn".into(),
                    "arn:aws:lambda:eu-west-1:123456789012:function:app-Fn".into(),
                )]),
            },
        )]);
        let env = Env {
            t: &t,
            ctx: &pseudo(),
            deployed: &deployed,
        };
        let cases: &[(Value, Value)] = &[
            (json!({"Ref": "Stage"}), json!("dev")),
            (json!({"Ref": "Fn"}), json!("app-Fn")),
            (json!({"Ref": "AWS::Region"}), json!("eu-west-1")),
            (json!({"Ref": "AWS::Partition"}), json!("aws")),
            (
                json!({"Fn::GetAtt": ["Fn", "Arn"]}),
                json!("arn:aws:lambda:eu-west-1:123456789012:function:app-Fn"),
            ),
            (
                json!({"Fn::Sub": "${AWS::StackName}-${Stage}-${Fn.Arn}-${!Lit}"}),
                json!("app-dev-arn:aws:lambda:eu-west-1:123456789012:function:app-Fn-${Lit}"),
            ),
            (
                json!({"Fn::Sub": ["${A}/${Stage}", {"A": {"Ref": "Fn"}}]}),
                json!("app-Fn/dev"),
            ),
            (
                json!({"Fn::Join": ["-", ["a", {"Ref": "Stage"}, 3]]}),
                json!("a-dev-3"),
            ),
            (json!({"Fn::Select": [1, {"Ref": "Sizes"}]}), json!("256")),
            (
                json!({"Fn::Select": ["0", {"Fn::Split": [",", "x,y"]}]}),
                json!("x"),
            ),
            (json!({"Fn::If": ["IsProd", 1, 2]}), json!(2)),
            (
                json!({"Fn::FindInMap": ["Memory", {"Ref": "Stage"}, "size"]}),
                json!(128),
            ),
            (
                json!({"Fn::FindInMap": ["Memory", "qa", "size", {"DefaultValue": 64}]}),
                json!(64),
            ),
            (
                json!({"a": {"Fn::If": ["IsProd", 1, {"Ref": "AWS::NoValue"}]}, "b": 1}),
                json!({"b": 1}),
            ),
            (json!([1, {"Ref": "AWS::NoValue"}, 2]), json!([1, 2])),
            (json!({"Fn::Equals": ["128", 128]}), json!(true)),
        ];
        for (v, want) in cases {
            assert_eq!(&env.eval(v, "X").unwrap(), want, "{v}");
        }
        let errors: &[(Value, &str)] = &[
            (
                json!({"Ref": "Nope"}),
                "X: Ref: Nope is not a parameter, resource or pseudo parameter of this template",
            ),
            (
                json!({"Fn::GetAtt": ["Fn", "Nope"]}),
                "X: Fn::GetAtt: Fn has no attribute Nope (it has: Arn)",
            ),
            (
                json!({"Fn::Select": [5, ["a"]]}),
                "X: Fn::Select: index 5 is past the list's 1 items",
            ),
            (
                json!({"Fn::FindInMap": ["Memory", "qa", "size"]}),
                "X: Fn::FindInMap: no value at Memory / qa / size",
            ),
            (
                json!({"Fn::ImportValue": "x"}),
                "X: Fn::ImportValue: Fn::ImportValue is not supported (supported: Ref, Fn::GetAtt, Fn::Sub, Fn::Join, Fn::If, Fn::Select, Fn::Split, Fn::FindInMap, Fn::Equals, Fn::And, Fn::Or, Fn::Not, Fn::Base64)",
            ),
            (
                json!({"Fn::Sub": "${Nope"}),
                "X: Fn::Sub: unclosed ${ in '${Nope'",
            ),
        ];
        for (v, want) in errors {
            assert_eq!(env.eval(v, "X").unwrap_err().to_string(), *want, "{v}");
        }
        let pending = Env {
            t: &t,
            ctx: &pseudo(),
            deployed: &HashMap::new(),
        };
        assert_eq!(
            pending.eval(&json!({"Ref": "Fn"}), "X").unwrap_err(),
            TemplateError::Pending {
                at: "X".into(),
                target: "Fn".into()
            }
        );
    }

    #[test]
    fn references_name_the_resources_used() {
        let mut out = BTreeSet::new();
        references(
            &json!({"a": {"Ref": "A"}, "b": [{"Fn::GetAtt": "B.Arn"}],
                    "c": {"Fn::Sub": ["${C.Arn} ${!D} ${E}", {"E": {"Ref": "F"}}]},
                    "d": {"Ref": "G.Alias"}}),
            &mut out,
        );
        assert_eq!(
            out,
            ["A", "B", "C", "E", "F", "G"]
                .into_iter()
                .map(String::from)
                .collect()
        );
    }

    #[test]
    fn bad_templates_say_what_is_wrong() {
        let cases: &[(&str, &str)] = &[
            (
                "Resources: {F: {Type: AWS::Serverless::Function}}",
                "resource F is AWS::Serverless::Function: the template needs Transform: AWS::Serverless-2016-10-31",
            ),
            (
                "Resourcez: {}",
                "unknown template section Resourcez (sections: AWSTemplateFormatVersion, Transform, Description, Metadata, Parameters, Mappings, Conditions, Globals, Resources, Outputs)",
            ),
            (
                "Transform: AWS::Serverless-2016-10-31\nGlobals: {Function: {Handlr: x}}\nResources: {}",
                "Globals.Function.Handlr is not a property SAM allows in Globals",
            ),
            (
                "Resources: {F: {Type: X, Condition: C}}",
                "F: condition C is not defined",
            ),
            (
                "Conditions: {A: !Condition B, B: !Condition A}\nResources: {}",
                "condition A refers to itself",
            ),
        ];
        for (text, want) in cases {
            let e = Template::load(text, &BTreeMap::new(), &pseudo(), ".".into()).unwrap_err();
            assert_eq!(e.to_string(), *want, "{text}");
        }
    }
}
