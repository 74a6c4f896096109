//! Lambent's own endpoints under `/lambent/`: `Code.Location` downloads,
//! the caller's status, Prometheus metrics.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::call::Call;
use crate::functions::now_s;
use crate::{ApiError, AppState, json_response};

/// `Code.Location` downloads: authorised by the link's own signature, not SigV4.
pub async fn download_code(
    State(s): State<Arc<AppState>>,
    Path(file): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let digest = file.strip_suffix(".zip").unwrap_or(&file);
    let expires = q
        .get("Expires")
        .and_then(|e| e.parse::<i64>().ok())
        .unwrap_or(0);
    let signature = q.get("Signature").map(String::as_str).unwrap_or("");
    let zip = s
        .control
        .download_code(digest, expires, signature, now_s())
        .await?;
    let mut resp = (StatusCode::OK, zip).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    Ok(resp)
}

/// `GET /lambent/status`: the caller's execution environments per function
/// version (Lambent's own endpoint, signed like the Lambda API).
pub async fn status(c: Call) -> Response {
    let (s, scope) = (&c.state, c.scope());
    let stats = s.invoker.pool().stats(scope);
    let functions: Vec<serde_json::Value> = stats
        .iter()
        .map(|v| {
            let cold = v.last_cold_start.map(|c| {
                serde_json::json!({
                    "SandboxSetupMicros": c.sandbox_setup.as_micros() as u64,
                    "RuntimeInitMicros": c.runtime_init.as_micros() as u64,
                    "FirstInvokeMicros": c.first_invoke.as_micros() as u64,
                })
            });
            serde_json::json!({"FunctionName": v.name, "Version": v.version,
                               "IdleEnvironments": v.idle, "BusyEnvironments": v.busy,
                               "LastColdStart": cold})
        })
        .collect();
    let now = model::time_fmt::now_ms();
    let st = s.dispatcher.queue().stats();
    let queue: Vec<serde_json::Value> = st
        .functions
        .iter()
        .filter(|f| f.scope == *scope)
        .map(|f| {
            serde_json::json!({
                "FunctionName": f.name,
                "Depth": f.depth,
                "OldestEventAgeSeconds": ((now - f.oldest_enqueued_ms).max(0) as f64) / 1000.0,
            })
        })
        .collect();
    let deliveries = st.deliveries;
    let mappings: Vec<serde_json::Value> = s
        .esm
        .stats()
        .into_iter()
        .filter(|m| m.scope == *scope)
        .map(|m| {
            serde_json::json!({
                "UUID": m.uuid,
                "FunctionArn": m.function_arn,
                "Source": m.source,
                "State": m.state,
                "Backlog": m.backlog,
                "IteratorAgeMilliseconds": m.iterator_age_ms,
                "PolledEventCount": m.polled,
                "FilteredOutEventCount": m.filtered_out,
                "InvokedEventCount": m.invoked,
                "FailedInvokeEventCount": m.failed_invoke,
                "DroppedEventCount": m.dropped,
                "OnFailureDestinationDeliveredEventCount": m.on_failure_delivered,
                "ThrottledInvocations": m.throttled,
            })
        })
        .collect();
    json_response(
        StatusCode::OK,
        &serde_json::json!({
            "Functions": functions,
            "AsyncQueue": queue,
            "PendingDeliveries": deliveries,
            "EventSourceMappings": mappings,
        }),
    )
}

/// A function's labels, then its queue depth and oldest event's age.
type FunctionRow = ([(&'static str, String); 3], [String; 2]);

/// Prometheus text exposition, a metric family at a time.
#[derive(Default)]
struct Exposition(String);

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        use std::fmt::Write as _;
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One sample; label values are escaped as the format requires.
    fn sample<V: AsRef<str>>(
        &mut self,
        name: &str,
        labels: &[(&str, V)],
        value: impl std::fmt::Display,
    ) {
        use std::fmt::Write as _;
        self.0.push_str(name);
        for (i, (k, v)) in labels.iter().enumerate() {
            let v = v.as_ref().replace('\\', "\\\\").replace('"', "\\\"");
            let sep = if i == 0 { '{' } else { ',' };
            let _ = write!(self.0, "{sep}{k}=\"{v}\"");
        }
        if !labels.is_empty() {
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }
}

/// Prometheus text exposition of the platform's gauges and counters.
pub async fn metrics(State(s): State<Arc<AppState>>) -> Response {
    use std::sync::atomic::Ordering;
    let mut out = Exposition::default();
    let now = model::time_fmt::now_ms();
    let st = s.dispatcher.queue().stats();
    let rows: Vec<FunctionRow> = st
        .functions
        .iter()
        .map(|f| {
            let labels = [
                ("account", f.scope.account.to_string()),
                ("region", f.scope.region.to_string()),
                ("function", f.name.to_string()),
            ];
            let age = ((now - f.oldest_enqueued_ms).max(0) as f64) / 1000.0;
            (labels, [f.depth.to_string(), format!("{age:.3}")])
        })
        .collect();
    for (column, name, help) in [
        (
            0,
            "lambent_async_queue_depth",
            "Asynchronous events waiting or running, per function.",
        ),
        (
            1,
            "lambent_async_oldest_event_age_seconds",
            "Age of the oldest queued event, per function.",
        ),
    ] {
        out.family(name, "gauge", help);
        for (labels, values) in &rows {
            out.sample(name, labels, &values[column]);
        }
    }
    out.family(
        "lambent_async_pending_deliveries",
        "gauge",
        "Destination records and dead letters waiting for an HTTP endpoint.",
    );
    out.sample::<&str>("lambent_async_pending_deliveries", &[], st.deliveries);
    let m = s.dispatcher.metrics();
    for (name, help, v) in [
        (
            "lambent_async_events_received_total",
            "Asynchronous events accepted.",
            &m.events_received,
        ),
        (
            "lambent_async_events_dropped_total",
            "Asynchronous events dropped with nowhere to go.",
            &m.events_dropped,
        ),
        (
            "lambent_destination_delivery_failures_total",
            "Destination records an endpoint never accepted.",
            &m.destination_delivery_failures,
        ),
        (
            "lambent_dead_letter_errors_total",
            "Dead letters an endpoint never accepted.",
            &m.dead_letter_errors,
        ),
    ] {
        out.family(name, "counter", help);
        out.sample::<&str>(name, &[], v.load(Ordering::Relaxed));
    }
    let urls = s.urls.counter_rows();
    for (name, help, pick) in [
        (
            "lambent_url_requests_total",
            "Requests to a function URL (Lambda's UrlRequestCount).",
            0,
        ),
        (
            "lambent_url_4xx_total",
            "Function URL requests answered with a 4xx status (Url4xxCount).",
            1,
        ),
        (
            "lambent_url_5xx_total",
            "Function URL requests answered with a 5xx status (Url5xxCount).",
            2,
        ),
    ] {
        out.family(name, "counter", help);
        for ((account, region, function, qualifier), c) in &urls {
            let v = match pick {
                0 => &c.requests,
                1 => &c.client_errors,
                _ => &c.server_errors,
            };
            let labels = [
                ("account", account.as_str()),
                ("region", region.as_str()),
                ("function", function.as_str()),
                ("qualifier", qualifier.as_str()),
            ];
            out.sample(name, &labels, v.load(Ordering::Relaxed));
        }
    }
    let sm = s.topics.metrics();
    for (name, help, v) in [
        (
            "lambent_sns_messages_published_total",
            "Messages published to SNS topics (NumberOfMessagesPublished).",
            &sm.messages_published,
        ),
        (
            "lambent_sns_notifications_delivered_total",
            "Notifications handed to a function or an HTTP endpoint's queue (NumberOfNotificationsDelivered).",
            &sm.notifications_delivered,
        ),
        (
            "lambent_sns_notifications_failed_total",
            "Notifications not delivered: no such function, or its policy does not let SNS invoke it (NumberOfNotificationsFailed).",
            &sm.notifications_failed,
        ),
        (
            "lambent_sns_notifications_filtered_out_total",
            "Notifications a subscription's filter policy rejected (NumberOfNotificationsFilteredOut).",
            &sm.notifications_filtered_out,
        ),
    ] {
        out.family(name, "counter", help);
        out.sample::<&str>(name, &[], v.load(Ordering::Relaxed));
    }
    esm_metrics(&mut out, &s.esm.stats());
    let mut resp = out.0.into_response();
    resp.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    resp
}

/// Lambda's event source mapping metrics, one sample per mapping.
fn esm_metrics(out: &mut Exposition, stats: &[esm::MappingStats]) {
    let labels = |m: &esm::MappingStats| {
        [
            ("account", m.scope.account.to_string()),
            ("region", m.scope.region.to_string()),
            ("uuid", m.uuid.clone()),
            ("function", m.function_arn.clone()),
            ("source", m.source.clone()),
        ]
    };
    type Pick = fn(&esm::MappingStats) -> u64;
    let counters: [(&str, &str, Pick); 8] = [
        (
            "lambent_esm_polled_events_total",
            "PolledEventCount: records read from the source.",
            |m| m.polled,
        ),
        (
            "lambent_esm_filtered_out_events_total",
            "FilteredOutEventCount: records no filter matched.",
            |m| m.filtered_out,
        ),
        (
            "lambent_esm_invoked_events_total",
            "InvokedEventCount: records handed to the function.",
            |m| m.invoked,
        ),
        (
            "lambent_esm_failed_invoke_events_total",
            "FailedInvokeEventCount: records of batches the function failed.",
            |m| m.failed_invoke,
        ),
        (
            "lambent_esm_dropped_events_total",
            "DroppedEventCount: records given up on.",
            |m| m.dropped,
        ),
        (
            "lambent_esm_on_failure_destination_delivered_events_total",
            "OnFailureDestinationDeliveredEventCount.",
            |m| m.on_failure_delivered,
        ),
        (
            "lambent_esm_succeeded_events_total",
            "Records deleted, acknowledged or checkpointed after success.",
            |m| m.succeeded,
        ),
        (
            "lambent_esm_throttled_invocations_total",
            "Invocations refused for concurrency and retried.",
            |m| m.throttled,
        ),
    ];
    for (name, help, pick) in counters {
        out.family(name, "counter", help);
        for m in stats {
            out.sample(name, &labels(m), pick(m));
        }
    }
    out.family(
        "lambent_esm_backlog",
        "gauge",
        "Records waiting in the source (the mapping's lag).",
    );
    for m in stats.iter().filter(|m| m.backlog.is_some()) {
        out.sample(
            "lambent_esm_backlog",
            &labels(m),
            m.backlog.unwrap_or_default(),
        );
    }
    out.family(
        "lambent_esm_iterator_age_milliseconds",
        "gauge",
        "IteratorAge: age of the newest record a stream poller read.",
    );
    for m in stats.iter().filter(|m| m.iterator_age_ms.is_some()) {
        out.sample(
            "lambent_esm_iterator_age_milliseconds",
            &labels(m),
            m.iterator_age_ms.unwrap_or_default(),
        );
    }
    out.family(
        "lambent_esm_enabled",
        "gauge",
        "1 for a mapping whose poller runs.",
    );
    for m in stats {
        out.sample(
            "lambent_esm_enabled",
            &labels(m),
            u8::from(m.state == "Enabled"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::Exposition;

    #[test]
    fn exposition_format() {
        let mut e = Exposition::default();
        e.family("m", "gauge", "A gauge.");
        e.sample("m", &[("function", r#"a"b\c"#), ("region", "r")], 1.5);
        e.sample::<&str>("m", &[], 2);
        assert_eq!(
            e.0,
            "# HELP m A gauge.\n# TYPE m gauge\nm{function=\"a\\\"b\\\\c\",region=\"r\"} 1.5\nm 2\n"
        );
    }
}
