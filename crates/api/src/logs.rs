//! The CloudWatch Logs subset that `aws logs tail` and SDK log readers use
//! (JSON 1.1 protocol, `X-Amz-Target: Logs_20140328.<Operation>`):
//! FilterLogEvents, GetLogEvents, DescribeLogStreams, DescribeLogGroups.
//!
//! Each operation is one function from its request shape to its answer; the
//! querying and paging live in the `logs` crate, errors are written by
//! [`crate::error`].

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use logs::{FilterPattern, FilterQuery, LogStore, StreamQuery};
use model::Scope;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::error::Service;
use crate::{ApiError, AppState, Authed};

const TARGET_PREFIX: &str = "Logs_20140328.";

/// Most events one page returns (the model's `EventsLimit`).
const MAX_EVENTS: usize = 10_000;
/// Most streams or groups one page returns (the model's `DescribeLimit`).
const MAX_DESCRIBED: usize = 50;

/// `POST /` with `X-Amz-Target: Logs_20140328.*`.
pub async fn dispatch(State(s): State<Arc<AppState>>, req: Authed, headers: HeaderMap) -> Response {
    let op = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.strip_prefix(TARGET_PREFIX));
    let store = &s.logs;
    let scope = &req.caller.scope;
    let answer = match op {
        Some("FilterLogEvents") => parse(&req).and_then(|r| filter_log_events(store, scope, r)),
        Some("GetLogEvents") => parse(&req).and_then(|r| get_log_events(store, scope, r)),
        Some("DescribeLogStreams") => {
            parse(&req).and_then(|r| describe_log_streams(store, scope, r))
        }
        Some("DescribeLogGroups") => parse(&req).and_then(|r| describe_log_groups(store, scope, r)),
        Some(other) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            format!("{other} is not available on this server"),
        )),
        None => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            "Unknown operation",
        )),
    };
    match answer {
        Ok(v) => ok(v),
        Err(e) => e.response(Service::Logs),
    }
}

fn parse<T: DeserializeOwned>(req: &Authed) -> Result<T, ApiError> {
    req.json()
}

fn ok(v: Value) -> Response {
    let mut r = (StatusCode::OK, v.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(Service::Logs.protocol().content_type()),
    );
    r
}

/// The log group a request names, by `logGroupName` or by
/// `logGroupIdentifier` (a name or an ARN).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct GroupRef {
    log_group_name: Option<String>,
    log_group_identifier: Option<String>,
}

impl GroupRef {
    fn name(&self) -> Result<String, ApiError> {
        let name = self.log_group_name.clone().or_else(|| {
            self.log_group_identifier.as_ref().map(|i| {
                i.rsplit(":log-group:")
                    .next()
                    .unwrap_or(i)
                    .trim_end_matches(":*")
                    .to_owned()
            })
        });
        // A group named by nothing reads as one that does not exist.
        name.ok_or_else(|| logs::LogError::GroupNotFound(String::new()).into())
    }
}

fn limit(requested: Option<usize>, max: usize) -> usize {
    requested.unwrap_or(max).clamp(1, max)
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct FilterRequest {
    #[serde(flatten)]
    group: GroupRef,
    log_stream_names: Option<Vec<String>>,
    log_stream_name_prefix: Option<String>,
    start_time: Option<i64>,
    end_time: Option<i64>,
    filter_pattern: Option<String>,
    next_token: Option<String>,
    limit: Option<usize>,
}

fn filter_log_events(store: &LogStore, scope: &Scope, r: FilterRequest) -> Result<Value, ApiError> {
    let group = r.group.name()?;
    let page = store.filter_log_events(
        scope,
        &group,
        &FilterQuery {
            streams: r.log_stream_names.as_deref(),
            stream_prefix: r.log_stream_name_prefix.as_deref(),
            start_ms: r.start_time,
            end_ms: r.end_time,
            pattern: FilterPattern::parse(r.filter_pattern.as_deref().unwrap_or("")),
            token: r.next_token.as_deref(),
            limit: limit(r.limit, MAX_EVENTS),
        },
    )?;
    let events: Vec<Value> = page
        .events
        .iter()
        .map(|e| {
            json!({"logStreamName": e.stream, "timestamp": e.timestamp_ms, "message": e.message,
                   "ingestionTime": e.ingestion_ms, "eventId": e.id.to_string()})
        })
        .collect();
    let mut v = json!({ "events": events, "searchedLogStreams": [] });
    if let Some(n) = page.next_token {
        v["nextToken"] = json!(n);
    }
    Ok(v)
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct GetEventsRequest {
    #[serde(flatten)]
    group: GroupRef,
    log_stream_name: Option<String>,
    start_time: Option<i64>,
    end_time: Option<i64>,
    next_token: Option<String>,
    limit: Option<usize>,
    start_from_head: Option<bool>,
}

fn get_log_events(store: &LogStore, scope: &Scope, r: GetEventsRequest) -> Result<Value, ApiError> {
    let group = r.group.name()?;
    let Some(stream) = r.log_stream_name else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidParameterException",
            "logStreamName is required",
        ));
    };
    let page = store.get_log_events(
        scope,
        &group,
        &stream,
        &StreamQuery {
            start_ms: r.start_time,
            end_ms: r.end_time,
            limit: limit(r.limit, MAX_EVENTS),
            start_from_head: r.start_from_head.unwrap_or(false),
            token: r.next_token.as_deref(),
        },
    )?;
    let events: Vec<Value> = page
        .events
        .iter()
        .map(|e| json!({"timestamp": e.timestamp_ms, "message": e.message, "ingestionTime": e.ingestion_ms}))
        .collect();
    Ok(json!({
        "events": events,
        "nextForwardToken": page.forward.to_string(),
        "nextBackwardToken": page.backward.to_string(),
    }))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct DescribeStreamsRequest {
    #[serde(flatten)]
    group: GroupRef,
    log_stream_name_prefix: Option<String>,
    order_by: Option<String>,
    descending: Option<bool>,
    next_token: Option<String>,
    limit: Option<usize>,
}

fn describe_log_streams(
    store: &LogStore,
    scope: &Scope,
    r: DescribeStreamsRequest,
) -> Result<Value, ApiError> {
    let group = r.group.name()?;
    let mut streams = store.describe_streams(scope, &group, r.log_stream_name_prefix.as_deref())?;
    if r.order_by.as_deref() == Some("LastEventTime") {
        streams.sort_by_key(|s| s.last_ms);
    }
    if r.descending == Some(true) {
        streams.reverse();
    }
    let (streams, next) = logs::page_by_offset(
        streams,
        r.next_token.as_deref(),
        limit(r.limit, MAX_DESCRIBED),
    )?;
    let arn_prefix = format!(
        "arn:{}:logs:{}:{}:log-group:{group}",
        scope.partition(),
        scope.region,
        scope.account
    );
    let out: Vec<Value> = streams
        .iter()
        .map(|s| {
            json!({"logStreamName": s.name, "creationTime": s.created_ms, "firstEventTimestamp": s.first_ms,
                   "lastEventTimestamp": s.last_ms, "lastIngestionTime": s.last_ingestion_ms,
                   "arn": format!("{arn_prefix}:log-stream:{}", s.name), "storedBytes": 0})
        })
        .collect();
    let mut v = json!({ "logStreams": out });
    if let Some(n) = next {
        v["nextToken"] = json!(n);
    }
    Ok(v)
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct DescribeGroupsRequest {
    log_group_name_prefix: Option<String>,
    next_token: Option<String>,
    limit: Option<usize>,
}

fn describe_log_groups(
    store: &LogStore,
    scope: &Scope,
    r: DescribeGroupsRequest,
) -> Result<Value, ApiError> {
    let groups = store.groups(scope, r.log_group_name_prefix.as_deref())?;
    let (groups, next) = logs::page_by_offset(
        groups,
        r.next_token.as_deref(),
        limit(r.limit, MAX_DESCRIBED),
    )?;
    let out: Vec<Value> = groups
        .iter()
        .map(|g| {
            let arn = format!(
                "arn:{}:logs:{}:{}:log-group:{}",
                scope.partition(),
                scope.region,
                scope.account,
                g.name
            );
            json!({"logGroupName": g.name, "creationTime": g.created_ms, "metricFilterCount": 0,
                   "arn": format!("{arn}:*"), "logGroupArn": arn, "storedBytes": g.stored_bytes,
                   "logGroupClass": "STANDARD"})
        })
        .collect();
    let mut v = json!({ "logGroups": out });
    if let Some(n) = next {
        v["nextToken"] = json!(n);
    }
    Ok(v)
}
