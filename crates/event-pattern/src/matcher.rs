//! Matching a checked pattern against a JSON event.

use serde_json::Value;

use crate::compile::{Field, Literal, Node, Not, Range, Rule};

/// Whether the object `value` (absent when the event has no such field)
/// satisfies `pattern`.
pub(crate) fn node(pattern: &Node, value: Option<&Value>) -> bool {
    let object = value.and_then(Value::as_object);
    pattern.fields.iter().all(|(name, field)| {
        let child = object.and_then(|o| o.get(name));
        match field {
            Field::Nested(sub) => match child {
                // Under an array of objects the nested pattern must match
                // within one element.
                Some(Value::Array(items)) if !items.is_empty() => {
                    items.iter().any(|item| node(sub, Some(item)))
                }
                Some(Value::Array(_)) | None => node(sub, None),
                Some(other) => node(sub, Some(other)),
            },
            Field::Rules(rules) => leaf(rules, child),
        }
    }) && pattern
        .ors
        .iter()
        .all(|alternatives| alternatives.iter().any(|alt| node(alt, value)))
}

/// The scalar values at a field: itself, or the elements of an array
/// (nested arrays flattened). Objects are not leaves.
fn leaves<'a>(value: &'a Value, out: &mut Vec<&'a Value>) {
    match value {
        Value::Array(items) => items.iter().for_each(|item| leaves(item, out)),
        Value::Object(_) => {}
        scalar => out.push(scalar),
    }
}

fn leaf(rules: &[Rule], value: Option<&Value>) -> bool {
    let mut values = Vec::new();
    if let Some(v) = value {
        leaves(v, &mut values);
    }
    let present = !values.is_empty();
    rules.iter().any(|rule| match rule {
        Rule::Exists(wanted) => *wanted == present,
        other => values.iter().any(|v| test(other, v)),
    })
}

fn lower(s: &str) -> String {
    s.to_lowercase()
}

fn literal_eq(literal: &Literal, value: &Value) -> bool {
    match (literal, value) {
        (Literal::Str(a), Value::String(b)) => a == b,
        (Literal::Num(a), Value::Number(b)) => b.as_f64() == Some(*a),
        (Literal::Bool(a), Value::Bool(b)) => a == b,
        (Literal::Null, Value::Null) => true,
        _ => false,
    }
}

fn in_range(range: &Range, n: f64) -> bool {
    let above = match range.low {
        None => true,
        Some((low, true)) => n >= low,
        Some((low, false)) => n > low,
    };
    let below = match range.high {
        None => true,
        Some((high, true)) => n <= high,
        Some((high, false)) => n < high,
    };
    above && below
}

fn test(rule: &Rule, value: &Value) -> bool {
    let text = value.as_str();
    match rule {
        Rule::Exact(literal) => literal_eq(literal, value),
        Rule::Prefix {
            text: p,
            ignore_case,
        } => text.is_some_and(|s| {
            if *ignore_case {
                lower(s).starts_with(&lower(p))
            } else {
                s.starts_with(p.as_str())
            }
        }),
        Rule::Suffix {
            text: p,
            ignore_case,
        } => text.is_some_and(|s| {
            if *ignore_case {
                lower(s).ends_with(&lower(p))
            } else {
                s.ends_with(p.as_str())
            }
        }),
        Rule::EqualsIgnoreCase(p) => text.is_some_and(|s| lower(s) == lower(p)),
        Rule::Numeric(range) => {
            value.is_number() && value.as_f64().is_some_and(|n| in_range(range, n))
        }
        Rule::Wildcard(glob) => text.is_some_and(|s| glob.matches(s)),
        Rule::Cidr(cidr) => text.is_some_and(|s| cidr.contains(s)),
        // Only leaves reach here: presence is decided in `leaf`.
        Rule::Exists(wanted) => *wanted,
        Rule::AnythingBut(not) => match not {
            Not::Values(values) => !values.iter().any(|l| literal_eq(l, value)),
            Not::Prefix(p) => text.is_none_or(|s| !s.starts_with(p.as_str())),
            Not::Suffix(p) => text.is_none_or(|s| !s.ends_with(p.as_str())),
            Not::IgnoreCase(values) => {
                text.is_none_or(|s| !values.iter().any(|v| lower(v) == lower(s)))
            }
            Not::Wildcard(globs) => text.is_none_or(|s| !globs.iter().any(|g| g.matches(s))),
        },
    }
}
