//! A function's triggers: SAM's `FunctionUrlConfig` and the `Events` whose
//! APIs the server has (SQS, Kinesis and DynamoDB event source mappings,
//! EventBridge Scheduler schedules, SNS subscriptions), each created,
//! replaced when its definition changed, or removed when it left the
//! template.
//!
//! Each trigger is recorded in a tag of its function:
//! `lambent:t:<EventName>` (or `lambent:url`) = `<digest>|<kind>|<id>`, the
//! definition's digest and what the server calls it (mapping UUID,
//! `group/name` of a schedule, subscription ARN). A trigger created but not
//! yet recorded is found again by the next deploy: mappings by source,
//! schedules by name, subscriptions by endpoint.

use serde_json::{Map, Value, json};
use signed_client::encode_segment;

use crate::lambda::{Lambda, LambdaError};
use crate::template::TemplateError;

pub const TAG_PREFIX: &str = "lambent:t:";
pub const TAG_URL: &str = "lambent:url";

/// The event types deployed, and the properties SAM gives each.
pub const EVENT_PROPERTIES: &[(&str, &[&str])] = &[
    (
        "SQS",
        &[
            "Queue",
            "BatchSize",
            "Enabled",
            "FilterCriteria",
            "FunctionResponseTypes",
            "MaximumBatchingWindowInSeconds",
            "ScalingConfig",
        ],
    ),
    ("Kinesis", STREAM_PROPERTIES),
    ("DynamoDB", STREAM_PROPERTIES),
    (
        "ScheduleV2",
        &[
            "ScheduleExpression",
            "ScheduleExpressionTimezone",
            "Input",
            "State",
            "FlexibleTimeWindow",
            "GroupName",
            "Name",
            "StartDate",
            "EndDate",
            "RetryPolicy",
            "DeadLetterConfig",
            "Description",
            "RoleArn",
            "PermissionsBoundary",
            "OmitName",
        ],
    ),
    (
        "SNS",
        &[
            "Topic",
            "FilterPolicy",
            "FilterPolicyScope",
            "Region",
            "RedrivePolicy",
        ],
    ),
];

const STREAM_PROPERTIES: &[&str] = &[
    "Stream",
    "StartingPosition",
    "StartingPositionTimestamp",
    "BatchSize",
    "Enabled",
    "FilterCriteria",
    "FunctionResponseTypes",
    "MaximumBatchingWindowInSeconds",
    "MaximumRecordAgeInSeconds",
    "MaximumRetryAttempts",
    "BisectBatchOnFunctionError",
    "ParallelizationFactor",
    "TumblingWindowInSeconds",
    "DestinationConfig",
];

pub const URL_PROPERTIES: &[&str] = &["AuthType", "Cors", "InvokeMode"];

/// Why an event type SAM defines is not deployed.
pub fn not_served(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "Api" | "HttpApi" => {
            "the local API Gateway is not available yet; use FunctionUrlConfig for HTTP"
        }
        "Schedule" | "EventBridgeRule" | "CloudWatchEvent" => {
            "EventBridge rules are not served yet; use a ScheduleV2 event for schedules"
        }
        "S3" | "CloudWatchLogs" | "IoTRule" | "AlexaSkill" | "Cognito" | "MSK" | "MQ"
        | "SelfManagedKafka" | "DocumentDB" => "this event source is not available on this server",
        _ => return None,
    })
}

/// Checks one event's type and property names.
pub fn check_event(resource: &str, name: &str, event: &Value) -> Result<(), TemplateError> {
    let unsupported = |property: String, hint: &str| TemplateError::UnsupportedProperty {
        resource: resource.to_owned(),
        property,
        hint: format!(": {hint}"),
    };
    let kind = event.get("Type").and_then(Value::as_str).unwrap_or("");
    if let Some(why) = not_served(kind) {
        return Err(unsupported(format!("Events.{name} (Type {kind})"), why));
    }
    let Some((_, allowed)) = EVENT_PROPERTIES.iter().find(|(k, _)| *k == kind) else {
        return Err(unsupported(
            format!("Events.{name} (Type {kind})"),
            "not an event type SAM defines",
        ));
    };
    if let Some(Value::Object(props)) = event.get("Properties") {
        for k in props.keys() {
            if !allowed.contains(&k.as_str()) {
                return Err(unsupported(
                    format!("Events.{name}.Properties.{k}"),
                    &format!("{kind} events take {}", allowed.join(", ")),
                ));
            }
        }
    }
    Ok(())
}

/// CloudFormation hands a parameter's text to a property that takes a
/// number or a boolean as that type.
fn coerce(key: &str, v: &Value) -> Value {
    let Value::String(s) = v else {
        return v.clone();
    };
    match key {
        "BatchSize"
        | "MaximumBatchingWindowInSeconds"
        | "MaximumRecordAgeInSeconds"
        | "MaximumRetryAttempts"
        | "ParallelizationFactor"
        | "TumblingWindowInSeconds" => s
            .trim()
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| v.clone()),
        "Enabled" | "BisectBatchOnFunctionError" => match s.as_str() {
            "true" | "True" => Value::Bool(true),
            "false" | "False" => Value::Bool(false),
            _ => v.clone(),
        },
        _ => v.clone(),
    }
}

/// One trigger as the template wants it.
#[derive(Debug, Clone, PartialEq)]
pub struct Want {
    /// The tag that records it.
    pub tag: String,
    pub kind: &'static str,
    pub event: String,
    pub body: Value,
    pub digest: String,
}

/// The record in a tag: digest, kind, id.
pub fn parse_record(v: &str) -> Option<(&str, &str, &str)> {
    let mut it = v.splitn(3, '|');
    Some((it.next()?, it.next()?, it.next()?))
}

/// What the template asks of `function` (target: its ARN, qualified with
/// the alias when there is one).
pub fn wanted(
    stack: &str,
    logical_id: &str,
    events: &Map<String, Value>,
    url: Option<&Value>,
    target: &str,
    role: &str,
    digest: impl Fn(&Value) -> String,
) -> Result<Vec<Want>, TemplateError> {
    let mut out = Vec::new();
    let invalid = |s: String| TemplateError::Invalid(format!("resource {logical_id}: {s}"));
    for (name, e) in events {
        let kind = e.get("Type").and_then(Value::as_str).unwrap_or("");
        let props = e.get("Properties").cloned().unwrap_or(json!({}));
        let Value::Object(props) = props else {
            return Err(invalid(format!(
                "Events.{name}.Properties must be a mapping"
            )));
        };
        let (k, body) = match kind {
            "SQS" | "Kinesis" | "DynamoDB" => {
                let source_key = if kind == "SQS" { "Queue" } else { "Stream" };
                let source = props
                    .get(source_key)
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid(format!("Events.{name} needs {source_key}")))?;
                let mut b = Map::new();
                b.insert("EventSourceArn".into(), json!(source));
                b.insert("FunctionName".into(), json!(target));
                for (pk, pv) in &props {
                    match pk.as_str() {
                        "Queue" | "Stream" => {}
                        "DestinationConfig" => {
                            let mut d = Map::new();
                            if let Some(Value::Object(dc)) = Some(pv) {
                                for (when, t) in dc {
                                    if let Some(dest) = t.get("Destination") {
                                        d.insert(when.clone(), json!({"Destination": dest}));
                                    }
                                }
                            }
                            b.insert(pk.clone(), Value::Object(d));
                        }
                        _ => {
                            b.insert(pk.clone(), coerce(pk, pv));
                        }
                    }
                }
                ("esm", Value::Object(b))
            }
            "ScheduleV2" => {
                let expr = props
                    .get("ScheduleExpression")
                    .ok_or_else(|| invalid(format!("Events.{name} needs ScheduleExpression")))?;
                let mut sched_name = props
                    .get("Name")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("{stack}-{logical_id}-{name}"));
                sched_name.truncate(64);
                let mut t = Map::new();
                t.insert("Arn".into(), json!(target));
                t.insert(
                    "RoleArn".into(),
                    props.get("RoleArn").cloned().unwrap_or(json!(role)),
                );
                for f in ["Input", "RetryPolicy", "DeadLetterConfig"] {
                    if let Some(v) = props.get(f) {
                        let v = match (f, v) {
                            ("Input", Value::String(_)) => v.clone(),
                            ("Input", other) => json!(other.to_string()),
                            ("DeadLetterConfig", d) => {
                                json!({"Arn": d.get("Arn").cloned().unwrap_or(Value::Null)})
                            }
                            _ => v.clone(),
                        };
                        t.insert(f.into(), v);
                    }
                }
                let mut b = Map::new();
                b.insert("Name".into(), json!(sched_name));
                b.insert("ScheduleExpression".into(), expr.clone());
                b.insert(
                    "FlexibleTimeWindow".into(),
                    props
                        .get("FlexibleTimeWindow")
                        .cloned()
                        .unwrap_or(json!({"Mode": "OFF"})),
                );
                b.insert("Target".into(), Value::Object(t));
                for f in [
                    "ScheduleExpressionTimezone",
                    "State",
                    "GroupName",
                    "StartDate",
                    "EndDate",
                    "Description",
                ] {
                    if let Some(v) = props.get(f) {
                        b.insert(f.into(), v.clone());
                    }
                }
                ("schedule", Value::Object(b))
            }
            "SNS" => {
                let topic = props
                    .get("Topic")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid(format!("Events.{name} needs Topic")))?;
                let mut attrs = Map::new();
                if let Some(p) = props.get("FilterPolicy") {
                    attrs.insert("FilterPolicy".into(), json!(p.to_string()));
                }
                if let Some(s) = props.get("FilterPolicyScope") {
                    attrs.insert("FilterPolicyScope".into(), s.clone());
                }
                if let Some(r) = props.get("RedrivePolicy") {
                    attrs.insert("RedrivePolicy".into(), json!(r.to_string()));
                }
                (
                    "sns",
                    json!({"TopicArn": topic, "Endpoint": target, "Attributes": attrs}),
                )
            }
            other => {
                return Err(invalid(format!(
                    "Events.{name}: type {other} is not deployed"
                )));
            }
        };
        out.push(Want {
            tag: format!("{TAG_PREFIX}{name}"),
            kind: k,
            event: name.clone(),
            digest: digest(&body),
            body,
        });
    }
    if let Some(u) = url {
        let mut b = Map::new();
        for f in URL_PROPERTIES {
            if let Some(v) = u.get(*f) {
                b.insert((*f).into(), v.clone());
            }
        }
        if !b.contains_key("AuthType") {
            return Err(invalid(
                "FunctionUrlConfig needs AuthType (NONE or AWS_IAM)".into(),
            ));
        }
        b.insert("Target".into(), json!(target));
        let body = Value::Object(b);
        out.push(Want {
            tag: TAG_URL.into(),
            kind: "url",
            event: "FunctionUrlConfig".into(),
            digest: digest(&body),
            body,
        });
    }
    Ok(out)
}

/// `name:qualifier` ARN parts: (function name or ARN, qualifier).
fn split_target(target: &str) -> (&str, Option<&str>) {
    // arn:aws:lambda:region:account:function:name[:qualifier]
    let parts: Vec<&str> = target.split(':').collect();
    if parts.len() == 8 {
        let q = parts[7];
        (&target[..target.len() - q.len() - 1], Some(q))
    } else {
        (target, None)
    }
}

fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode_segment(k), encode_segment(v)))
        .collect::<Vec<_>>()
        .join("&")
        .into_bytes()
}

fn xml_text<'a>(body: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = body.find(&open)? + open.len();
    let end = body[start..].find(&format!("</{tag}>"))?;
    Some(&body[start..start + end])
}

async fn sns(
    lambda: &mut Lambda,
    action: &'static str,
    target: &str,
    pairs: &[(&str, &str)],
) -> Result<String, LambdaError> {
    let mut all = vec![("Action", action), ("Version", "2010-03-31")];
    all.extend_from_slice(pairs);
    let reply = lambda
        .request(
            "sns",
            "POST",
            "/",
            &[(
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )],
            form(&all),
        )
        .await?;
    let body = String::from_utf8_lossy(&reply.body).into_owned();
    if reply.status >= 300 {
        return Err(LambdaError::Api {
            operation: action,
            target: target.to_owned(),
            status: reply.status,
            code: xml_text(&body, "Code").unwrap_or("Error").to_owned(),
            message: xml_text(&body, "Message").unwrap_or_default().to_owned(),
        });
    }
    Ok(body)
}

async fn add_permission(
    lambda: &mut Lambda,
    target: &str,
    sid: &str,
    body: Value,
) -> Result<(), LambdaError> {
    let (function, qualifier) = split_target(target);
    remove_permission(lambda, target, sid).await?;
    let mut path = format!("/2015-03-31/functions/{}/policy", encode_segment(function));
    if let Some(q) = qualifier {
        path.push_str(&format!("?Qualifier={}", encode_segment(q)));
    }
    let mut b = body;
    b["StatementId"] = json!(sid);
    lambda
        .json_call("lambda", "AddPermission", target, "POST", &path, Some(&b))
        .await?;
    Ok(())
}

async fn remove_permission(
    lambda: &mut Lambda,
    target: &str,
    sid: &str,
) -> Result<(), LambdaError> {
    let (function, qualifier) = split_target(target);
    let mut path = format!(
        "/2015-03-31/functions/{}/policy/{}",
        encode_segment(function),
        encode_segment(sid)
    );
    if let Some(q) = qualifier {
        path.push_str(&format!("?Qualifier={}", encode_segment(q)));
    }
    match lambda
        .json_call("lambda", "RemovePermission", target, "DELETE", &path, None)
        .await
    {
        Err(e) if !e.is_not_found() => Err(e),
        _ => Ok(()),
    }
}

/// Changes a mapping in place when its source stays the same (answers
/// false when the source differs: the mapping must be replaced).
pub async fn update_esm(
    lambda: &mut Lambda,
    uuid: &str,
    body: &Value,
) -> Result<bool, LambdaError> {
    let path = format!("/2015-03-31/event-source-mappings/{}", encode_segment(uuid));
    let cur = lambda
        .json_call("lambda", "GetEventSourceMapping", uuid, "GET", &path, None)
        .await?;
    if cur["EventSourceArn"] != body["EventSourceArn"] || cur["State"] == "Deleting" {
        return Ok(false);
    }
    let mut upd = body.clone();
    if let Some(o) = upd.as_object_mut() {
        o.remove("EventSourceArn");
        o.remove("StartingPosition");
        o.remove("StartingPositionTimestamp");
    }
    lambda
        .json_call(
            "lambda",
            "UpdateEventSourceMapping",
            uuid,
            "PUT",
            &format!("/2015-03-31/event-source-mappings/{}", encode_segment(uuid)),
            Some(&upd),
        )
        .await?;
    Ok(true)
}

/// Creates `w`; answers its id for the record and, for a URL, its address.
pub async fn create(
    lambda: &mut Lambda,
    w: &Want,
) -> Result<(String, Option<String>), LambdaError> {
    let b = &w.body;
    match w.kind {
        "esm" => {
            // A mapping of this function and source left unrecorded by a
            // failed deploy is taken over rather than duplicated.
            let function = b["FunctionName"].as_str().unwrap_or_default();
            let source = b["EventSourceArn"].as_str().unwrap_or_default();
            let list = lambda
                .json_call(
                    "lambda",
                    "ListEventSourceMappings",
                    function,
                    "GET",
                    &format!(
                        "/2015-03-31/event-source-mappings/?FunctionName={}&EventSourceArn={}",
                        encode_segment(function),
                        encode_segment(source)
                    ),
                    None,
                )
                .await?;
            if let Some(uuid) = list["EventSourceMappings"]
                .as_array()
                .and_then(|a| a.iter().find(|m| m["State"] != "Deleting"))
                .and_then(|m| m["UUID"].as_str())
                && update_esm(lambda, uuid, b).await?
            {
                return Ok((uuid.to_owned(), None));
            }
            let v = lambda
                .json_call(
                    "lambda",
                    "CreateEventSourceMapping",
                    source,
                    "POST",
                    "/2015-03-31/event-source-mappings/",
                    Some(b),
                )
                .await?;
            Ok((v["UUID"].as_str().unwrap_or_default().to_owned(), None))
        }
        "schedule" => {
            let name = b["Name"].as_str().unwrap_or_default();
            let group = b["GroupName"].as_str().unwrap_or("default");
            let mut body = b.clone();
            if let Some(o) = body.as_object_mut() {
                o.remove("Name");
            }
            let path = format!("/schedules/{}", encode_segment(name));
            match lambda
                .json_call(
                    "scheduler",
                    "CreateSchedule",
                    name,
                    "POST",
                    &path,
                    Some(&body),
                )
                .await
            {
                Err(LambdaError::Api { status: 409, .. }) => {
                    lambda
                        .json_call(
                            "scheduler",
                            "UpdateSchedule",
                            name,
                            "PUT",
                            &path,
                            Some(&body),
                        )
                        .await?;
                }
                other => {
                    other?;
                }
            }
            Ok((format!("{group}/{name}"), None))
        }
        "sns" => {
            let topic = b["TopicArn"].as_str().unwrap_or_default();
            let endpoint = b["Endpoint"].as_str().unwrap_or_default();
            add_permission(
                lambda,
                endpoint,
                &format!("{}Permission", w.event),
                json!({"Action": "lambda:InvokeFunction", "Principal": "sns.amazonaws.com", "SourceArn": topic}),
            )
            .await?;
            let mut pairs: Vec<(String, String)> = vec![
                ("TopicArn".into(), topic.into()),
                ("Protocol".into(), "lambda".into()),
                ("Endpoint".into(), endpoint.into()),
                ("ReturnSubscriptionArn".into(), "true".into()),
            ];
            if let Some(attrs) = b["Attributes"].as_object() {
                for (i, (k, v)) in attrs.iter().enumerate() {
                    pairs.push((format!("Attributes.entry.{}.key", i + 1), k.clone()));
                    pairs.push((
                        format!("Attributes.entry.{}.value", i + 1),
                        v.as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| v.to_string()),
                    ));
                }
            }
            let refs: Vec<(&str, &str)> = pairs
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let body = sns(lambda, "Subscribe", topic, &refs).await?;
            let arn = xml_text(&body, "SubscriptionArn")
                .unwrap_or_default()
                .to_owned();
            Ok((arn, None))
        }
        _ => {
            let target = b["Target"].as_str().unwrap_or_default();
            let (function, qualifier) = split_target(target);
            let mut path = format!("/2021-10-31/functions/{}/url", encode_segment(function));
            if let Some(q) = qualifier {
                path.push_str(&format!("?Qualifier={}", encode_segment(q)));
            }
            let mut body = b.clone();
            if let Some(o) = body.as_object_mut() {
                o.remove("Target");
            }
            let created = lambda
                .json_call(
                    "lambda",
                    "CreateFunctionUrlConfig",
                    target,
                    "POST",
                    &path,
                    Some(&body),
                )
                .await;
            let v = match created {
                Err(LambdaError::Api { status: 409, .. }) => {
                    lambda
                        .json_call(
                            "lambda",
                            "UpdateFunctionUrlConfig",
                            target,
                            "PUT",
                            &path,
                            Some(&body),
                        )
                        .await?
                }
                other => other?,
            };
            // As SAM does: a public URL gets the permission that opens it.
            if b["AuthType"] == "NONE" {
                add_permission(
                    lambda,
                    target,
                    "FunctionUrlAllowPublicAccess",
                    json!({"Action": "lambda:InvokeFunctionUrl", "Principal": "*", "FunctionUrlAuthType": "NONE"}),
                )
                .await?;
            } else {
                remove_permission(lambda, target, "FunctionUrlAllowPublicAccess").await?;
            }
            let url = v["FunctionUrl"].as_str().map(str::to_owned);
            Ok((qualifier.unwrap_or("").to_owned(), url))
        }
    }
}

/// Removes a recorded trigger of `function` (gone already is fine).
pub async fn delete(
    lambda: &mut Lambda,
    function: &str,
    target: &str,
    tag: &str,
    kind: &str,
    id: &str,
) -> Result<(), LambdaError> {
    let ok = |r: Result<Value, LambdaError>| match r {
        Err(e) if !e.is_not_found() => Err(e),
        _ => Ok(()),
    };
    match kind {
        "esm" => {
            ok(lambda
                .json_call(
                    "lambda",
                    "DeleteEventSourceMapping",
                    id,
                    "DELETE",
                    &format!("/2015-03-31/event-source-mappings/{}", encode_segment(id)),
                    None,
                )
                .await)?;
        }
        "schedule" => {
            let (group, name) = id.split_once('/').unwrap_or(("default", id));
            ok(lambda
                .json_call(
                    "scheduler",
                    "DeleteSchedule",
                    name,
                    "DELETE",
                    &format!(
                        "/schedules/{}?groupName={}",
                        encode_segment(name),
                        encode_segment(group)
                    ),
                    None,
                )
                .await)?;
        }
        "sns" => {
            match sns(lambda, "Unsubscribe", id, &[("SubscriptionArn", id)]).await {
                Err(LambdaError::Api { code, .. }) if code == "NotFound" => {}
                other => {
                    other?;
                }
            }
            let event = tag.strip_prefix(TAG_PREFIX).unwrap_or(tag);
            // The permission sits on the function or the alias it targeted.
            let sid = format!("{event}Permission");
            remove_permission(lambda, target, &sid).await?;
        }
        _ => {
            let mut path = format!("/2021-10-31/functions/{}/url", encode_segment(function));
            if !id.is_empty() {
                path.push_str(&format!("?Qualifier={}", encode_segment(id)));
            }
            ok(lambda
                .json_call(
                    "lambda",
                    "DeleteFunctionUrlConfig",
                    function,
                    "DELETE",
                    &path,
                    None,
                )
                .await)?;
            let target = if id.is_empty() {
                function.to_owned()
            } else {
                format!("{function}:{id}")
            };
            remove_permission(lambda, &target, "FunctionUrlAllowPublicAccess").await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_become_api_requests() {
        let events = json!({
            "Queue": {"Type": "SQS", "Properties": {"Queue": "arn:aws:sqs:us-east-1:123456789012:q", "BatchSize": "5", "Enabled": "true",
                      "FilterCriteria": {"Filters": [{"Pattern": "{\"body\": {\"a\": [1]}}"}]}}},
            "Tick": {"Type": "ScheduleV2", "Properties": {"ScheduleExpression": "rate(1 minute)", "Input": {"k": 1}}},
            "Topic": {"Type": "SNS", "Properties": {"Topic": "arn:aws:sns:us-east-1:123456789012:t", "FilterPolicy": {"kind": ["a"]}}},
        });
        let target = "arn:aws:lambda:us-east-1:123456789012:function:s-F:live";
        let w = wanted(
            "s",
            "F",
            events.as_object().unwrap(),
            Some(&json!({"AuthType": "NONE"})),
            target,
            "arn:aws:iam::123456789012:role/r",
            |v| v.to_string().len().to_string(),
        )
        .unwrap();
        let got: Vec<_> = w
            .iter()
            .map(|w| (w.tag.as_str(), w.kind, w.body.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "lambent:t:Queue",
                    "esm",
                    json!({"EventSourceArn": "arn:aws:sqs:us-east-1:123456789012:q",
                    "FunctionName": target, "BatchSize": 5, "Enabled": true,
                    "FilterCriteria": {"Filters": [{"Pattern": "{\"body\": {\"a\": [1]}}"}]}})
                ),
                (
                    "lambent:t:Tick",
                    "schedule",
                    json!({"Name": "s-F-Tick", "ScheduleExpression": "rate(1 minute)",
                    "FlexibleTimeWindow": {"Mode": "OFF"},
                    "Target": {"Arn": target, "RoleArn": "arn:aws:iam::123456789012:role/r", "Input": "{\"k\":1}"}})
                ),
                (
                    "lambent:t:Topic",
                    "sns",
                    json!({"TopicArn": "arn:aws:sns:us-east-1:123456789012:t", "Endpoint": target,
                    "Attributes": {"FilterPolicy": "{\"kind\":[\"a\"]}"}})
                ),
                (
                    "lambent:url",
                    "url",
                    json!({"AuthType": "NONE", "Target": target})
                ),
            ]
        );
        assert_eq!(
            split_target(target),
            (
                "arn:aws:lambda:us-east-1:123456789012:function:s-F",
                Some("live")
            )
        );
        assert_eq!(parse_record("ab|esm|u-1"), Some(("ab", "esm", "u-1")));
    }

    #[test]
    fn unsupported_events_are_named() {
        let cases = [
            (
                json!({"Type": "HttpApi"}),
                "resource F: property Events.E (Type HttpApi) is not supported by lambent deploy: the local API Gateway is not available yet; use FunctionUrlConfig for HTTP",
            ),
            (
                json!({"Type": "Schedule", "Properties": {"Schedule": "rate(1 minute)"}}),
                "resource F: property Events.E (Type Schedule) is not supported by lambent deploy: EventBridge rules are not served yet; use a ScheduleV2 event for schedules",
            ),
            (
                json!({"Type": "Bogus"}),
                "resource F: property Events.E (Type Bogus) is not supported by lambent deploy: not an event type SAM defines",
            ),
            (
                json!({"Type": "SQS", "Properties": {"Queue": "q", "Batch": 1}}),
                "resource F: property Events.E.Properties.Batch is not supported by lambent deploy: SQS events take Queue, BatchSize, Enabled, FilterCriteria, FunctionResponseTypes, MaximumBatchingWindowInSeconds, ScalingConfig",
            ),
        ];
        for (e, want) in cases {
            assert_eq!(check_event("F", "E", &e).unwrap_err().to_string(), want);
        }
        check_event("F", "E", &json!({"Type": "Kinesis", "Properties": {"Stream": "s", "StartingPosition": "LATEST"}})).unwrap();
    }
}
