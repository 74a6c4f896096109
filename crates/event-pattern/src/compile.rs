//! From JSON to a checked pattern tree, with event-ruler's reasons for what
//! is refused.

use serde_json::{Map, Value};

use crate::cidr::Cidr;
use crate::wildcard::Glob;
use crate::{Dialect, PatternError};

/// One object level of a pattern: every field must match, and in every
/// `$or` group one alternative must.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub fields: Vec<(String, Field)>,
    pub ors: Vec<Vec<Node>>,
}

#[derive(Clone, Debug)]
pub(crate) enum Field {
    Nested(Node),
    Rules(Vec<Rule>),
}

#[derive(Clone, Debug)]
pub(crate) enum Rule {
    Exact(Literal),
    Prefix { text: String, ignore_case: bool },
    Suffix { text: String, ignore_case: bool },
    EqualsIgnoreCase(String),
    AnythingBut(Not),
    Numeric(Range),
    Exists(bool),
    Wildcard(Glob),
    Cidr(Cidr),
}

#[derive(Clone, Debug)]
pub(crate) enum Literal {
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
}

#[derive(Clone, Debug)]
pub(crate) enum Not {
    Values(Vec<Literal>),
    Prefix(String),
    Suffix(String),
    IgnoreCase(Vec<String>),
    Wildcard(Vec<Glob>),
}

/// A numeric range; each bound with whether it is inclusive.
#[derive(Clone, Debug)]
pub(crate) struct Range {
    pub low: Option<(f64, bool)>,
    pub high: Option<(f64, bool)>,
}

const OR: &str = "$or";

/// Match-type names that may not name a field inside `$or`.
const RESERVED_IN_OR: &[&str] = &[
    "anything-but",
    "cidr",
    "equals-ignore-case",
    "exists",
    "numeric",
    "prefix",
    "suffix",
    "wildcard",
];

fn err<T>(reason: impl Into<String>) -> Result<T, PatternError> {
    Err(PatternError::new(reason))
}

/// The text event-ruler quotes for a token it did not expect.
fn token_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(_) => "[".into(),
        Value::Object(_) => "{".into(),
        other => other.to_string(),
    }
}

pub(crate) fn object(
    map: &Map<String, Value>,
    dialect: Dialect,
    inside_or: bool,
) -> Result<Node, PatternError> {
    if map.is_empty() {
        return err("Empty objects are not allowed");
    }
    let mut node = Node {
        fields: Vec::new(),
        ors: Vec::new(),
    };
    for (name, value) in map {
        if name == OR {
            node.ors.push(or_group(value, dialect)?);
            continue;
        }
        if inside_or && RESERVED_IN_OR.contains(&name.as_str()) {
            return err(format!(
                "{name} is Ruler reserved fieldName which cannot be used inside $or."
            ));
        }
        let field = match value {
            Value::Object(inner) => Field::Nested(object(inner, dialect, inside_or)?),
            Value::Array(items) => Field::Rules(rules(items, dialect)?),
            _ => return err(format!("\"{name}\" must be an object or an array")),
        };
        node.fields.push((name.clone(), field));
    }
    Ok(node)
}

fn or_group(value: &Value, dialect: Dialect) -> Result<Vec<Node>, PatternError> {
    let Value::Array(items) = value else {
        return err("It must be an Array followed with $or.");
    };
    let mut alternatives = Vec::with_capacity(items.len());
    for item in items {
        let Value::Object(map) = item else {
            return err("Only JSON object is allowed in array of $or relationship.");
        };
        alternatives.push(object(map, dialect, true)?);
    }
    if alternatives.len() < 2 {
        return err("There must have at least 2 Objects in $or relationship.");
    }
    Ok(alternatives)
}

fn rules(items: &[Value], dialect: Dialect) -> Result<Vec<Rule>, PatternError> {
    if items.is_empty() {
        return err("Empty arrays are not allowed");
    }
    items
        .iter()
        .map(|item| match item {
            Value::Object(map) => match_expression(map, dialect),
            Value::Array(_) => err("Match value must be String, number, true, false, or null"),
            scalar => Ok(Rule::Exact(literal(scalar))),
        })
        .collect()
}

fn literal(value: &Value) -> Literal {
    match value {
        Value::String(s) => Literal::Str(s.clone()),
        Value::Number(n) => Literal::Num(n.as_f64().unwrap_or(f64::NAN)),
        Value::Bool(b) => Literal::Bool(*b),
        _ => Literal::Null,
    }
}

fn single(map: &Map<String, Value>) -> Result<(&String, &Value), PatternError> {
    let mut entries = map.iter();
    let Some(first) = entries.next() else {
        return err("Match expression name not found");
    };
    if entries.next().is_some() {
        return err("Only one key allowed in match expression");
    }
    Ok(first)
}

fn match_expression(map: &Map<String, Value>, dialect: Dialect) -> Result<Rule, PatternError> {
    let (name, value) = single(map)?;
    match name.as_str() {
        "prefix" | "suffix" => {
            let (text, ignore_case) = match value {
                Value::String(s) => (s.clone(), false),
                Value::Object(inner) if dialect != Dialect::Sns => match single(inner)? {
                    (op, Value::String(s)) if op == "equals-ignore-case" => (s.clone(), true),
                    _ => return err(format!("{name} match pattern must be a string")),
                },
                _ => return err(format!("{name} match pattern must be a string")),
            };
            Ok(if name == "prefix" {
                Rule::Prefix { text, ignore_case }
            } else {
                Rule::Suffix { text, ignore_case }
            })
        }
        "equals-ignore-case" => match value {
            Value::String(s) => Ok(Rule::EqualsIgnoreCase(s.clone())),
            _ => err("equals-ignore-case match pattern must be a string"),
        },
        "wildcard" if dialect != Dialect::Sns => match value {
            Value::String(s) => Ok(Rule::Wildcard(Glob::parse(s)?)),
            _ => err("wildcard match pattern must be a string"),
        },
        "numeric" => match value {
            Value::Array(items) => Ok(Rule::Numeric(numeric(items)?)),
            _ => err("Value of numeric must be an array."),
        },
        "exists" => match value {
            Value::Bool(b) => Ok(Rule::Exists(*b)),
            _ => err("exists match pattern must be either true or false."),
        },
        "cidr" => match value {
            // event-ruler's wording for a cidr that is not a string.
            Value::String(s) => Ok(Rule::Cidr(Cidr::parse(s)?)),
            _ => err("prefix match pattern must be a string"),
        },
        "anything-but" => Ok(Rule::AnythingBut(anything_but(value, dialect)?)),
        other => err(format!("Unrecognized match type {other}")),
    }
}

fn number(value: Option<&Value>) -> Option<f64> {
    value.and_then(Value::as_f64)
}

fn numeric(items: &[Value]) -> Result<Range, PatternError> {
    let Some(first) = items.first() else {
        return err("Invalid member in numeric match: ]");
    };
    let Value::String(op) = first else {
        return err(format!(
            "Invalid member in numeric match: {}",
            token_text(first)
        ));
    };
    let operand = |op: &str, value: Option<&Value>| {
        number(value).ok_or_else(|| {
            let name = if op == "=" { "equals" } else { op };
            PatternError::new(format!("Value of {name} must be numeric"))
        })
    };
    match op.as_str() {
        "=" | "<" | "<=" => {
            let v = operand(op, items.get(1))?;
            if items.len() > 2 {
                return err("Too many elements in numeric expression");
            }
            Ok(match op.as_str() {
                "=" => Range {
                    low: Some((v, true)),
                    high: Some((v, true)),
                },
                "<" => Range {
                    low: None,
                    high: Some((v, false)),
                },
                _ => Range {
                    low: None,
                    high: Some((v, true)),
                },
            })
        }
        ">" | ">=" => {
            let bottom = operand(op, items.get(1))?;
            let low = Some((bottom, op == ">="));
            let Some(second) = items.get(2) else {
                return Ok(Range { low, high: None });
            };
            let Value::String(op2) = second else {
                return err(format!(
                    "Bad value in numeric range: {}",
                    token_text(second)
                ));
            };
            if op2 != "<" && op2 != "<=" {
                return err(format!("Bad numeric range operator: {op2}"));
            }
            let top = operand(op2, items.get(3))?;
            if items.len() > 4 {
                return err("Too many terms in numeric range expression");
            }
            if bottom >= top {
                return err("Bottom must be less than top");
            }
            Ok(Range {
                low,
                high: Some((top, op2 == "<=")),
            })
        }
        other => err(format!("Unrecognized numeric range operator: {other}")),
    }
}

fn strings(value: &Value, dialect_message: &str) -> Result<Vec<String>, PatternError> {
    match value {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.clone()),
                _ => err(dialect_message),
            })
            .collect(),
        _ => err(dialect_message),
    }
}

fn anything_but(value: &Value, dialect: Dialect) -> Result<Not, PatternError> {
    match value {
        Value::Object(map) => {
            let mut entries = map.iter();
            let Some((op, inner)) = entries.next() else {
                return err("Anything-But expression name not found");
            };
            let allowed = match op.as_str() {
                "prefix" | "suffix" => true,
                "equals-ignore-case" | "wildcard" => dialect != Dialect::Sns,
                _ => false,
            };
            if !allowed {
                return err(format!("Unsupported anything-but pattern: {op}"));
            }
            if entries.next().is_some() {
                return err("Only one key allowed in match expression");
            }
            match op.as_str() {
                "prefix" | "suffix" => {
                    let Value::String(text) = inner else {
                        return err("prefix/suffix match pattern must be a string");
                    };
                    if text.is_empty() {
                        return err("Null prefix/suffix not allowed");
                    }
                    Ok(if op == "prefix" {
                        Not::Prefix(text.clone())
                    } else {
                        Not::Suffix(text.clone())
                    })
                }
                "equals-ignore-case" => Ok(Not::IgnoreCase(strings(
                    inner,
                    "Inside anything-but/equals-ignore-case list, number|start|null|boolean is not supported.",
                )?)),
                _ => {
                    let texts = strings(inner, "wildcard match pattern must be a string")?;
                    Ok(Not::Wildcard(
                        texts
                            .iter()
                            .map(|t| Glob::parse(t))
                            .collect::<Result<_, _>>()?,
                    ))
                }
            }
        }
        Value::Array(items) => {
            let mut has_string = false;
            let mut has_number = false;
            let mut values = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(_) => has_string = true,
                    Value::Number(_) => has_number = true,
                    _ => {
                        return err(
                            "Inside anything but list, start|null|boolean is not supported.",
                        );
                    }
                }
                values.push(literal(item));
            }
            if has_string == has_number {
                return err(
                    "Inside anything but list, either all values are number or string, mixed type is not supported",
                );
            }
            Ok(Not::Values(values))
        }
        Value::String(_) | Value::Number(_) => Ok(Not::Values(vec![literal(value)])),
        _ => err("Value of anything-but must be an array or single string/number value."),
    }
}
