//! SNS subscription filter policies.
//!
//! Scope `MessageAttributes` (the default) matches the policy's top-level
//! keys against the message's attributes: `String` values as strings,
//! `Number` values as numbers, `String.Array` values as the JSON array they
//! hold (any element may match); `Binary` attributes are ignored. Scope
//! `MessageBody` matches the policy against the message body, which must be
//! a JSON object; nested keys are allowed there only.

use serde_json::{Map, Number, Value};

use crate::{Dialect, EventPattern};

/// The policy's `FilterPolicyScope`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Scope {
    #[default]
    MessageAttributes,
    MessageBody,
}

impl Scope {
    pub fn parse(text: &str) -> Option<Scope> {
        match text {
            "MessageAttributes" => Some(Scope::MessageAttributes),
            "MessageBody" => Some(Scope::MessageBody),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::MessageAttributes => "MessageAttributes",
            Scope::MessageBody => "MessageBody",
        }
    }
}

/// A policy SNS refuses. `message` gives SNS's `InvalidParameter` text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyError {
    /// What follows SNS's "Invalid parameter: " prefix.
    detail: String,
}

impl PolicyError {
    fn policy(reason: impl std::fmt::Display) -> Self {
        PolicyError {
            detail: format!("FilterPolicy: {reason}"),
        }
    }

    /// The message: `Subscribe` puts "Attributes Reason: " before the
    /// detail, `SetSubscriptionAttributes` does not.
    pub fn message(&self, on_subscribe: bool) -> String {
        if on_subscribe {
            format!("Invalid parameter: Attributes Reason: {}", self.detail)
        } else {
            format!("Invalid parameter: {}", self.detail)
        }
    }

    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message(false))
    }
}

impl std::error::Error for PolicyError {}

/// The most attribute names (top-level keys) a policy may have.
pub const MAX_KEYS: usize = 5;
/// The most value combinations a policy may have.
pub const MAX_COMBINATIONS: u64 = 150;
/// The largest policy, in bytes.
pub const MAX_POLICY_BYTES: usize = 256 * 1024;

/// A message attribute as published: its `DataType` and `StringValue`
/// (binary attributes pass no value and never match).
#[derive(Clone, Copy, Debug)]
pub struct Attribute<'a> {
    pub data_type: &'a str,
    pub value: Option<&'a str>,
}

/// A subscription's filter policy, validated.
#[derive(Clone, Debug)]
pub struct FilterPolicy {
    /// `None` for `{}`, which accepts every message.
    pattern: Option<EventPattern>,
    scope: Scope,
}

impl FilterPolicy {
    pub fn parse(text: &str, scope: Scope) -> Result<Self, PolicyError> {
        if text.len() > MAX_POLICY_BYTES {
            return Err(PolicyError::policy("Filter policy is too long"));
        }
        let value: Value = serde_json::from_str(text)
            .map_err(|e| PolicyError::policy(format!("failed to parse JSON. {e}")))?;
        let Value::Object(map) = &value else {
            return Err(PolicyError::policy("Filter is not an object"));
        };
        if map.is_empty() {
            return Ok(FilterPolicy {
                pattern: None,
                scope,
            });
        }
        if map.len() > MAX_KEYS {
            return Err(PolicyError::policy(
                "Filter policy can not have more than 5 keys",
            ));
        }
        let combinations = combinations(map, scope, 1, 1)?;
        if combinations > MAX_COMBINATIONS {
            return Err(PolicyError::policy("Filter policy is too complex"));
        }
        let pattern =
            EventPattern::from_value_as(&value, Dialect::Sns).map_err(PolicyError::policy)?;
        Ok(FilterPolicy {
            pattern: Some(pattern),
            scope,
        })
    }

    pub fn scope(&self) -> Scope {
        self.scope
    }

    /// Whether a message with these attributes and this body goes to the
    /// subscription.
    pub fn matches<'a>(
        &self,
        attributes: impl IntoIterator<Item = (&'a str, Attribute<'a>)>,
        body: &str,
    ) -> bool {
        let Some(pattern) = &self.pattern else {
            return true;
        };
        match self.scope {
            Scope::MessageAttributes => {
                let mut object = Map::new();
                for (name, attribute) in attributes {
                    if let Some(value) = attribute_value(attribute) {
                        object.insert(name.to_owned(), value);
                    }
                }
                pattern.matches(&Value::Object(object))
            }
            Scope::MessageBody => match serde_json::from_str::<Value>(body) {
                Ok(json @ Value::Object(_)) => pattern.matches(&json),
                _ => false,
            },
        }
    }
}

/// An attribute as the JSON value its type says it holds.
fn attribute_value(attribute: Attribute<'_>) -> Option<Value> {
    let text = attribute.value?;
    let base = attribute.data_type.split('.').next().unwrap_or_default();
    if attribute.data_type == "String.Array" {
        return match serde_json::from_str::<Value>(text) {
            Ok(array @ Value::Array(_)) => Some(array),
            _ => None,
        };
    }
    match base {
        "String" => Some(Value::String(text.to_owned())),
        "Number" => Some(
            text.trim()
                .parse::<f64>()
                .ok()
                .and_then(Number::from_f64)
                .map(Value::Number)
                .unwrap_or_else(|| Value::String(text.to_owned())),
        ),
        _ => None,
    }
}

/// The policy's value combinations as SNS counts them: each array of
/// values multiplies by its length times its depth; the branches of `$or`
/// add up. Also refuses empty arrays, and nesting in attribute scope.
fn combinations(
    map: &Map<String, Value>,
    scope: Scope,
    depth: u64,
    mut total: u64,
) -> Result<u64, PolicyError> {
    for (key, value) in map {
        match value {
            Value::Object(inner) => {
                if scope == Scope::MessageAttributes {
                    return Err(PolicyError {
                        detail: "Filter policy scope MessageAttributes does not support nested filter policy".into(),
                    });
                }
                total = combinations(inner, scope, depth + 1, total)?;
            }
            Value::Array(items) => {
                if items.is_empty() {
                    return Err(PolicyError::policy("Empty arrays are not allowed"));
                }
                if key == "$or" {
                    let mut sum: u64 = 0;
                    for item in items {
                        let Value::Object(branch) = item else {
                            return Err(PolicyError::policy(
                                "Only JSON object is allowed in array of $or relationship.",
                            ));
                        };
                        sum = sum.saturating_add(combinations(branch, scope, depth, total)?);
                    }
                    total = sum;
                } else {
                    total = total
                        .saturating_mul(items.len() as u64)
                        .saturating_mul(depth);
                }
            }
            _ => {
                return Err(PolicyError::policy(format!(
                    "\"{key}\" must be an object or an array"
                )));
            }
        }
    }
    Ok(total)
}
