//! What a target receives: the event itself, a constant `Input`, the part
//! of the event an `InputPath` selects, or an `InputTransformer`'s template
//! filled with values the `InputPathsMap` selects.
//!
//! Paths are JSONPath as EventBridge takes them: `$`, then `.field` or
//! `['field']` steps and `[n]` indexes. In a template, a placeholder
//! `<name>` inside a JSON string takes the value's text (a string without
//! its quotes); outside a string it takes the value as JSON. Besides the
//! map's names, `<aws.events.rule-arn>`, `<aws.events.rule-name>`,
//! `<aws.events.event.ingestion-time>` and `<aws.events.event>` /
//! `<aws.events.event.json>` (the whole event) are always defined.

use serde_json::Value;

/// A path that is not the JSONPath EventBridge takes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} is not a valid JSON path")]
pub struct BadPath(pub String);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Field(String),
    Index(usize),
}

fn parse_path(path: &str) -> Result<Vec<Step>, BadPath> {
    let bad = || BadPath(path.to_owned());
    let mut rest = path.strip_prefix('$').ok_or_else(bad)?;
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let name = &r[..end];
            if name.is_empty() {
                return Err(bad());
            }
            steps.push(Step::Field(name.to_owned()));
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix("['") {
            let end = r.find("']").ok_or_else(bad)?;
            steps.push(Step::Field(r[..end].to_owned()));
            rest = &r[end + 2..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']').ok_or_else(bad)?;
            let n = r[..end].parse().map_err(|_| bad())?;
            steps.push(Step::Index(n));
            rest = &r[end + 1..];
        } else {
            return Err(bad());
        }
    }
    Ok(steps)
}

/// Checks a path when a target is put.
pub fn check_path(path: &str) -> Result<(), BadPath> {
    parse_path(path).map(|_| ())
}

/// The value `path` selects in `event`, if any.
pub fn select<'a>(event: &'a Value, path: &str) -> Option<&'a Value> {
    let steps = parse_path(path).ok()?;
    let mut at = event;
    for s in &steps {
        at = match s {
            Step::Field(f) => at.get(f)?,
            Step::Index(i) => at.get(*i)?,
        };
    }
    Some(at)
}

/// What the rule that sends the event says about itself.
pub struct RuleContext<'a> {
    pub rule_arn: &'a str,
    pub rule_name: &'a str,
    pub ingestion_time: &'a str,
}

/// Fills `template` with `vars` (name, value selected from the event).
pub fn fill(
    template: &str,
    vars: &[(String, Option<Value>)],
    event: &Value,
    ctx: &RuleContext<'_>,
) -> String {
    let lookup = |name: &str| -> Option<Option<Value>> {
        if let Some((_, v)) = vars.iter().find(|(n, _)| n == name) {
            return Some(v.clone());
        }
        Some(Some(match name {
            "aws.events.rule-arn" => Value::String(ctx.rule_arn.to_owned()),
            "aws.events.rule-name" => Value::String(ctx.rule_name.to_owned()),
            "aws.events.event.ingestion-time" => Value::String(ctx.ingestion_time.to_owned()),
            "aws.events.event" | "aws.events.event.json" => event.clone(),
            _ => return None,
        }))
    };
    let mut out = String::with_capacity(template.len());
    let mut in_string = false;
    let mut escaped = false;
    let mut rest = template;
    while let Some(c) = rest.chars().next() {
        if c == '<'
            && let Some(end) = rest.find('>')
            && let Some(value) = lookup(&rest[1..end])
        {
            match (in_string, value) {
                (true, Some(Value::String(s))) => {
                    // Inside a JSON string: the text, escaped for it.
                    let quoted = Value::String(s).to_string();
                    out.push_str(&quoted[1..quoted.len() - 1]);
                }
                (true, Some(v)) => {
                    let text = v.to_string();
                    let quoted = Value::String(text).to_string();
                    out.push_str(&quoted[1..quoted.len() - 1]);
                }
                (true, None) => {}
                (false, Some(v)) => out.push_str(&v.to_string()),
                (false, None) => out.push_str("null"),
            }
            rest = &rest[end + 1..];
            continue;
        }
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event() -> Value {
        json!({
            "version": "0", "id": "e1", "detail-type": "Order Placed", "source": "shop",
            "account": "111111111111", "time": "2026-03-10T10:00:00Z", "region": "us-east-1",
            "resources": ["arn:aws:shop:order/1"],
            "detail": {"order": {"id": 42, "item": "book \"A\""}, "tags": ["x", "y"], "paid": true}
        })
    }

    fn ctx() -> RuleContext<'static> {
        RuleContext {
            rule_arn: "arn:aws:events:us-east-1:111111111111:rule/orders",
            rule_name: "orders",
            ingestion_time: "2026-03-10T10:00:01Z",
        }
    }

    #[test]
    fn paths_select_as_eventbridge_does() {
        let e = event();
        assert_eq!(select(&e, "$"), Some(&e));
        assert_eq!(select(&e, "$.detail.order.id"), Some(&json!(42)));
        assert_eq!(select(&e, "$.detail.tags[1]"), Some(&json!("y")));
        assert_eq!(select(&e, "$['detail-type']"), Some(&json!("Order Placed")));
        assert_eq!(select(&e, "$.detail.missing"), None);
        assert!(check_path("detail").is_err());
        assert!(check_path("$.").is_err());
        assert!(check_path("$.detail[x]").is_err());
    }

    /// The documented InputTransformer examples: values inside quotes are
    /// inserted as text, outside as JSON.
    #[test]
    fn templates_fill_in_and_out_of_strings() {
        let e = event();
        let vars = vec![
            ("id".to_owned(), select(&e, "$.detail.order.id").cloned()),
            (
                "item".to_owned(),
                select(&e, "$.detail.order.item").cloned(),
            ),
            ("paid".to_owned(), select(&e, "$.detail.paid").cloned()),
            ("none".to_owned(), select(&e, "$.detail.nothing").cloned()),
        ];
        let out = fill(
            r#"{"order": <id>, "text": "Order <id> of <item> (<paid>)", "item": <item>, "rule": "<aws.events.rule-name>", "n": <none>}"#,
            &vars,
            &e,
            &ctx(),
        );
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            v,
            json!({"order": 42, "text": "Order 42 of book \"A\" (true)", "item": "book \"A\"",
                   "rule": "orders", "n": null})
        );
        // A plain-text template (not JSON), and the whole event.
        assert_eq!(
            fill("Order <id> placed", &vars, &e, &ctx()),
            "Order 42 placed"
        );
        let whole: Value = serde_json::from_str(&fill(
            r#"{"e": <aws.events.event.json>}"#,
            &vars,
            &e,
            &ctx(),
        ))
        .unwrap();
        assert_eq!(whole["e"], e);
        // An unknown placeholder stays as written.
        assert_eq!(fill("a <b> c", &vars, &e, &ctx()), "a <b> c");
    }
}
