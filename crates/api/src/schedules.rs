//! EventBridge Scheduler (REST-JSON, signing name `scheduler`): schedules,
//! schedule groups and their tags. Each route is one call into the
//! `scheduler` crate; errors are written by [`crate::error`] in the
//! Scheduler's shape.

use std::sync::Arc;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use model::Scope;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::call::Call;
use crate::error::Service;
use crate::{ApiError, json_response};

fn answer(r: Result<Value, ApiError>) -> Response {
    match r {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(e) => e.response(Service::Scheduler),
    }
}

fn page(p: Result<scheduler::Page, scheduler::SchedulerError>, key: &str) -> Response {
    answer(p.map_err(ApiError::from).map(|p| {
        let mut v = json!({ key: p.items });
        if let Some(t) = p.next_token {
            v["NextToken"] = json!(t);
        }
        v
    }))
}

/// A repeated query parameter (`?TagKeys=a&TagKeys=b`), decoded.
fn params(c: &Call, name: &str) -> Vec<String> {
    c.raw_query()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| *k == name)
        .map(|(_, v)| decode(v))
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn max_results(c: &Call) -> Result<Option<i64>, ApiError> {
    c.param("MaxResults")
        .map(|m| {
            m.parse::<i64>().map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "ValidationException",
                    format!("MaxResults must be a number: {m}"),
                )
            })
        })
        .transpose()
}

pub async fn create_schedule(c: Call, Path(name): Path<String>) -> Response {
    let r = async {
        let input = c.body()?;
        Ok(scheduler(&c)
            .create_schedule(c.scope(), &name, input)
            .await?)
    };
    answer(r.await)
}

pub async fn update_schedule(c: Call, Path(name): Path<String>) -> Response {
    let r = async {
        let input = c.body()?;
        Ok(scheduler(&c)
            .update_schedule(c.scope(), &name, input)
            .await?)
    };
    answer(r.await)
}

pub async fn get_schedule(c: Call, Path(name): Path<String>) -> Response {
    answer(
        scheduler(&c)
            .get_schedule(c.scope(), &name, c.param("groupName"))
            .await
            .map_err(Into::into),
    )
}

pub async fn delete_schedule(c: Call, Path(name): Path<String>) -> Response {
    answer(
        scheduler(&c)
            .delete_schedule(c.scope(), &name, c.param("groupName"))
            .await
            .map_err(Into::into),
    )
}

pub async fn list_schedules(c: Call) -> Response {
    let max = match max_results(&c) {
        Ok(m) => m,
        Err(e) => return e.response(Service::Scheduler),
    };
    let q = scheduler::ListSchedules {
        group: c.param("ScheduleGroup").map(str::to_owned),
        name_prefix: c.param("NamePrefix").map(str::to_owned),
        state: c.param("State").map(str::to_owned),
        max_results: max,
        next_token: c.param("NextToken").map(str::to_owned),
    };
    page(
        scheduler(&c).list_schedules(c.scope(), q).await,
        "Schedules",
    )
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct TagInput {
    tags: Vec<TagPair>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct TagPair {
    key: String,
    value: String,
}

fn pairs(t: TagInput) -> Vec<(String, String)> {
    t.tags.into_iter().map(|p| (p.key, p.value)).collect()
}

pub async fn create_group(c: Call, Path(name): Path<String>) -> Response {
    let r = async {
        let input: TagInput = c.body()?;
        Ok(scheduler(&c)
            .create_group(c.scope(), &name, pairs(input))
            .await?)
    };
    answer(r.await)
}

pub async fn get_group(c: Call, Path(name): Path<String>) -> Response {
    answer(
        scheduler(&c)
            .get_group(c.scope(), &name)
            .await
            .map_err(Into::into),
    )
}

pub async fn delete_group(c: Call, Path(name): Path<String>) -> Response {
    answer(
        scheduler(&c)
            .delete_group(c.scope(), &name)
            .await
            .map_err(Into::into),
    )
}

pub async fn list_groups(c: Call) -> Response {
    let max = match max_results(&c) {
        Ok(m) => m,
        Err(e) => return e.response(Service::Scheduler),
    };
    page(
        scheduler(&c)
            .list_groups(c.scope(), c.param("NamePrefix"), max, c.param("NextToken"))
            .await,
        "ScheduleGroups",
    )
}

pub async fn list_tags(c: Call, Path(arn): Path<String>) -> Response {
    answer(
        scheduler(&c)
            .list_tags(c.scope(), &arn)
            .await
            .map_err(Into::into),
    )
}

pub async fn tag(c: Call, Path(arn): Path<String>) -> Response {
    let r = async {
        let input: TagInput = c.body()?;
        Ok(scheduler(&c).tag(c.scope(), &arn, pairs(input)).await?)
    };
    answer(r.await)
}

pub async fn untag(c: Call, Path(arn): Path<String>) -> Response {
    let keys = params(&c, "TagKeys");
    answer(
        scheduler(&c)
            .untag(c.scope(), &arn, keys)
            .await
            .map_err(Into::into),
    )
}

fn scheduler(c: &Call) -> &scheduler::Scheduler {
    &c.state.scheduler
}

/// Scheduler's fires go to the target function's asynchronous queue, where
/// its retries, maximum event age, destinations and dead letters apply.
pub struct QueueDelivery(pub Arc<dispatch::Dispatcher>);

#[async_trait::async_trait]
impl scheduler::Deliver for QueueDelivery {
    async fn deliver(
        &self,
        scope: &Scope,
        function_arn: &str,
        payload: Bytes,
    ) -> Result<(), scheduler::DeliveryError> {
        use invoke::InvokeError as E;
        let req = invoke::InvokeRequest {
            function: function_arn.to_owned(),
            qualifier: None,
            payload,
            tail: false,
            client_context: None,
            trace_header: None,
        };
        match self.0.accept(scope, req).await {
            Ok(_) => Ok(()),
            Err(e @ (E::NotFound(_) | E::Reference(_) | E::InvalidContent(_) | E::TooLarge(_))) => {
                Err(scheduler::DeliveryError::Permanent(e.to_string()))
            }
            Err(e) => Err(scheduler::DeliveryError::Retryable(e.to_string())),
        }
    }
}
