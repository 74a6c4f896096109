//! The CloudWatch Logs subset that `aws logs tail` and SDK log readers use
//! (JSON 1.1 protocol, `X-Amz-Target: Logs_20140328.<Operation>`):
//! FilterLogEvents, GetLogEvents, DescribeLogStreams, DescribeLogGroups.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{AppState, Authed};

/// A JSON 1.1 error (`__type` plus `message`).
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({ "__type": code, "message": message });
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    if let Ok(v) = HeaderValue::from_str(code) {
        r.headers_mut().insert("x-amzn-errortype", v);
    }
    r
}

fn ok(v: Value) -> Response {
    let mut r = (StatusCode::OK, v.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    r
}

fn no_group() -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "ResourceNotFoundException",
        "The specified log group does not exist.",
    )
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct FilterRequest {
    log_group_name: Option<String>,
    log_group_identifier: Option<String>,
    log_stream_names: Option<Vec<String>>,
    log_stream_name_prefix: Option<String>,
    start_time: Option<i64>,
    end_time: Option<i64>,
    filter_pattern: Option<String>,
    next_token: Option<String>,
    limit: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct GetEventsRequest {
    log_group_name: Option<String>,
    log_group_identifier: Option<String>,
    log_stream_name: Option<String>,
    start_time: Option<i64>,
    end_time: Option<i64>,
    next_token: Option<String>,
    limit: Option<usize>,
    start_from_head: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct DescribeStreamsRequest {
    log_group_name: Option<String>,
    log_group_identifier: Option<String>,
    log_stream_name_prefix: Option<String>,
    order_by: Option<String>,
    descending: Option<bool>,
    limit: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct DescribeGroupsRequest {
    log_group_name_prefix: Option<String>,
    limit: Option<usize>,
}

/// The terms of a filter pattern: quoted phrases or bare words, all required.
fn terms(pattern: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = pattern.trim();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('"') {
            let end = r.find('"').unwrap_or(r.len());
            out.push(r[..end].to_owned());
            rest = r.get(end + 1..).unwrap_or("").trim_start();
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            out.push(rest[..end].to_owned());
            rest = rest[end..].trim_start();
        }
    }
    out.retain(|t| !t.is_empty());
    out
}

fn group_of(name: &Option<String>, ident: &Option<String>) -> Option<String> {
    name.clone().or_else(|| {
        ident.as_ref().map(|i| {
            i.rsplit(":log-group:")
                .next()
                .unwrap_or(i)
                .trim_end_matches(":*")
                .to_owned()
        })
    })
}

/// `POST /` with `X-Amz-Target: Logs_20140328.*`.
pub async fn dispatch(State(s): State<Arc<AppState>>, req: Authed, headers: HeaderMap) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(op) = target.strip_prefix("Logs_20140328.") else {
        return error(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            "Unknown operation",
        );
    };
    let body: &[u8] = if req.body.is_empty() {
        b"{}"
    } else {
        &req.body
    };
    let scope = &req.caller.scope;
    macro_rules! parse {
        ($t:ty) => {
            match serde_json::from_slice::<$t>(body) {
                Ok(v) => v,
                Err(e) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "SerializationException",
                        &e.to_string(),
                    );
                }
            }
        };
    }
    let store = &s.logs;
    let failed = |e: logs::LogError| {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ServiceUnavailableException",
            &e.to_string(),
        )
    };
    match op {
        "FilterLogEvents" => {
            let r = parse!(FilterRequest);
            let Some(group) = group_of(&r.log_group_name, &r.log_group_identifier) else {
                return no_group();
            };
            let limit = r.limit.unwrap_or(10_000).clamp(1, 10_000);
            let after = r
                .next_token
                .as_deref()
                .and_then(|t| t.strip_prefix('e'))
                .and_then(|t| t.parse().ok());
            let want = terms(r.filter_pattern.as_deref().unwrap_or(""));
            let mut events = Vec::new();
            let mut cursor = after;
            loop {
                let page = match store.filter(
                    scope,
                    &group,
                    &logs::Filter {
                        streams: r.log_stream_names.as_deref(),
                        stream_prefix: r.log_stream_name_prefix.as_deref(),
                        start_ms: r.start_time,
                        end_ms: r.end_time,
                        contains: None,
                        after_id: cursor,
                        limit,
                    },
                ) {
                    Ok(p) => p,
                    Err(e) => return failed(e),
                };
                let full = page.len() == limit;
                for e in page {
                    cursor = Some(e.id);
                    if want.iter().all(|t| e.message.contains(t.as_str())) {
                        events.push(e);
                    }
                }
                if !full || events.len() >= limit {
                    break;
                }
            }
            events.truncate(limit);
            let next = (events.len() == limit)
                .then(|| format!("e{}", events.last().map(|e| e.id).unwrap_or(0)));
            let out: Vec<Value> = events
                .iter()
                .map(|e| {
                    json!({"logStreamName": e.stream, "timestamp": e.timestamp_ms, "message": e.message,
                           "ingestionTime": e.ingestion_ms, "eventId": e.id.to_string()})
                })
                .collect();
            let mut v = json!({ "events": out, "searchedLogStreams": [] });
            if let Some(n) = next {
                v["nextToken"] = json!(n);
            }
            ok(v)
        }
        "GetLogEvents" => {
            let r = parse!(GetEventsRequest);
            let Some(group) = group_of(&r.log_group_name, &r.log_group_identifier) else {
                return no_group();
            };
            let Some(stream) = r.log_stream_name else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "InvalidParameterException",
                    "logStreamName is required",
                );
            };
            let limit = r.limit.unwrap_or(10_000).clamp(1, 10_000);
            let after = r
                .next_token
                .as_deref()
                .and_then(|t| t.strip_prefix("f/"))
                .and_then(|t| t.parse().ok());
            let names = [stream];
            let events = match store.filter(
                scope,
                &group,
                &logs::Filter {
                    streams: Some(&names),
                    start_ms: r.start_time,
                    end_ms: r.end_time,
                    after_id: after,
                    limit,
                    ..Default::default()
                },
            ) {
                Ok(e) => e,
                Err(e) => return failed(e),
            };
            let _ = r.start_from_head;
            let last = events.last().map(|e| e.id).or(after).unwrap_or(0);
            let first = events.first().map(|e| e.id).unwrap_or(last);
            let out: Vec<Value> = events
                .iter()
                .map(|e| json!({"timestamp": e.timestamp_ms, "message": e.message, "ingestionTime": e.ingestion_ms}))
                .collect();
            ok(
                json!({"events": out, "nextForwardToken": format!("f/{last}"), "nextBackwardToken": format!("b/{first}")}),
            )
        }
        "DescribeLogStreams" => {
            let r = parse!(DescribeStreamsRequest);
            let Some(group) = group_of(&r.log_group_name, &r.log_group_identifier) else {
                return no_group();
            };
            let mut streams =
                match store.streams(scope, &group, r.log_stream_name_prefix.as_deref()) {
                    Ok(s) => s,
                    Err(e) => return failed(e),
                };
            if streams.is_empty()
                && matches!(store.groups(scope, Some(&group)), Ok(g) if !g.iter().any(|g| g.name == group))
            {
                return no_group();
            }
            if r.order_by.as_deref() == Some("LastEventTime") {
                streams.sort_by_key(|s| s.last_ms);
            }
            if r.descending == Some(true) {
                streams.reverse();
            }
            streams.truncate(r.limit.unwrap_or(50).clamp(1, 50));
            let arn_prefix = format!(
                "arn:aws:logs:{}:{}:log-group:{group}",
                scope.region, scope.account
            );
            let out: Vec<Value> = streams
                .iter()
                .map(|s| {
                    json!({"logStreamName": s.name, "creationTime": s.created_ms, "firstEventTimestamp": s.first_ms,
                           "lastEventTimestamp": s.last_ms, "lastIngestionTime": s.last_ingestion_ms,
                           "arn": format!("{arn_prefix}:log-stream:{}", s.name), "storedBytes": 0})
                })
                .collect();
            ok(json!({ "logStreams": out }))
        }
        "DescribeLogGroups" => {
            let r = parse!(DescribeGroupsRequest);
            let mut groups = match store.groups(scope, r.log_group_name_prefix.as_deref()) {
                Ok(g) => g,
                Err(e) => return failed(e),
            };
            groups.truncate(r.limit.unwrap_or(50).clamp(1, 50));
            let out: Vec<Value> = groups
                .iter()
                .map(|g| {
                    let arn = format!("arn:aws:logs:{}:{}:log-group:{}", scope.region, scope.account, g.name);
                    json!({"logGroupName": g.name, "creationTime": g.created_ms, "metricFilterCount": 0,
                           "arn": format!("{arn}:*"), "logGroupArn": arn, "storedBytes": g.stored_bytes,
                           "logGroupClass": "STANDARD"})
                })
                .collect();
            ok(json!({ "logGroups": out }))
        }
        _ => error(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            &format!("{op} is not available on this server"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::terms;

    #[test]
    fn filter_terms() {
        assert_eq!(terms(""), Vec::<String>::new());
        assert_eq!(terms("ERROR timeout"), ["ERROR", "timeout"]);
        assert_eq!(
            terms(r#""Task timed out" REPORT"#),
            ["Task timed out", "REPORT"]
        );
    }
}
