//! Asynchronous invocation: the dispatcher that takes due work from the
//! [`queue`] and carries it out.
//!
//! An event runs through the same path as a synchronous call (resolution,
//! concurrency, the pool). What happens next follows Lambda:
//! - success: the `OnSuccess` destination, if any, gets a record;
//! - a function error: retried up to `MaximumRetryAttempts` (default 2), one
//!   and then two minutes later; then `RetriesExhausted`;
//! - throttled or a platform error: retried with exponential backoff from one
//!   second to five minutes, without counting as an attempt, until the event
//!   is older than `MaximumEventAgeInSeconds` (default 6 hours); then
//!   `EventAgeExceeded`.
//!
//! A failure goes to the `OnFailure` destination and to the function's
//! dead-letter target. Destinations are functions (invoked asynchronously with
//! the record as their event) or `http://` URLs (POSTed the record). Each
//! outcome and the records it produces are written in one step
//! ([`queue::Completion::Done`]), so an acknowledged event always ends as a
//! success, a destination record or a dead letter, at least once.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use model::{Destination, EventInvokeConfig, Qualifier, Scope};
use queue::{Claimed, Completion, NewWork, Queue, Target};
use serde_json::{Value, json};

use crate::{InvokeError, InvokeResult, Invoker, random_uuid};

/// How the dispatcher paces itself.
#[derive(Debug, Clone, Copy)]
pub struct AsyncSettings {
    /// Multiplies every time constant: retry delays, backoff and the maximum
    /// event age. 1.0 is Lambda's schedule; tests shrink it.
    pub delay_scale: f64,
    /// Attempts that may run at once.
    pub max_concurrent: usize,
}

impl Default for AsyncSettings {
    fn default() -> Self {
        Self {
            delay_scale: 1.0,
            max_concurrent: 64,
        }
    }
}

/// Delay before retry `n` (1-based) after a function error: 1 min, then 2 min.
const FUNCTION_ERROR_DELAY_MS: i64 = 60_000;
/// Backoff after throttling or platform errors: from 1 s, doubling, to 5 min.
const BACKOFF_FIRST_MS: i64 = 1_000;
const BACKOFF_MAX_MS: i64 = 300_000;
/// HTTP deliveries are tried this many times before they are given up.
const DELIVERY_ATTEMPTS: u32 = 6;
/// How long one HTTP delivery may take.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Dead-letter error messages are cut to this many bytes, as AWS does.
const DLQ_MESSAGE_MAX: usize = 1024;

/// Why an event ended without success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Condition {
    Success,
    RetriesExhausted,
    EventAgeExceeded,
    /// The function's reserved concurrency is 0: events go straight to the
    /// failure targets, untried.
    ZeroReservedConcurrency,
}

impl Condition {
    fn as_str(self) -> &'static str {
        match self {
            Self::Success => "Success",
            Self::RetriesExhausted => "RetriesExhausted",
            Self::EventAgeExceeded => "EventAgeExceeded",
            Self::ZeroReservedConcurrency => "ZeroReservedConcurrency",
        }
    }
}

/// Starts the dispatcher on the current runtime.
///
/// With `max_concurrent` 0 nothing is dispatched: events are accepted and
/// wait in the queue (a paused platform, or a measurement of enqueueing
/// alone).
pub fn spawn(
    invoker: Arc<Invoker>,
    settings: AsyncSettings,
) -> Option<tokio::task::JoinHandle<()>> {
    let queue = invoker.queue.clone()?;
    if settings.max_concurrent == 0 {
        tracing::warn!("asynchronous dispatch is paused: events are queued but not run");
        return None;
    }
    Some(tokio::spawn(run(invoker, queue, settings)))
}

async fn run(invoker: Arc<Invoker>, queue: Queue, settings: AsyncSettings) {
    let slots = Arc::new(tokio::sync::Semaphore::new(settings.max_concurrent));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let claimed = match queue.next_due().await {
            Ok(c) => c,
            Err(queue::QueueError::Closed) => return,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the event queue");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let d = Dispatch {
            invoker: invoker.clone(),
            queue: queue.clone(),
            settings,
        };
        tokio::spawn(async move {
            d.handle(claimed).await;
            drop(permit);
        });
    }
}

struct Dispatch {
    invoker: Arc<Invoker>,
    queue: Queue,
    settings: AsyncSettings,
}

fn now_ms() -> i64 {
    model::time_fmt::now_ms()
}

/// What the dispatcher needs to know of the function an event is for.
struct EventSettings {
    config: EventInvokeConfig,
    dead_letter: Option<String>,
    /// The ARN records name: qualified (`...:function:f:$LATEST`).
    function_arn: String,
    /// Reserved concurrency 0 disables the function.
    disabled: bool,
    /// The function's account and region.
    scope: Scope,
}

impl Dispatch {
    fn scaled(&self, ms: i64) -> i64 {
        ((ms as f64) * self.settings.delay_scale).round().max(0.0) as i64
    }

    fn backoff(&self, retries: u32) -> i64 {
        let exp = retries.saturating_sub(1).min(20);
        self.scaled((BACKOFF_FIRST_MS << exp).min(BACKOFF_MAX_MS))
    }

    async fn finish(&self, id: queue::WorkId, completion: Completion) {
        // The outcome must be recorded: keep trying (the work stays claimed
        // meanwhile, and runs again after a restart if this never lands).
        let mut wait = Duration::from_millis(100);
        while let Err(e) = self.queue.finish(id, completion.clone()).await {
            if matches!(e, queue::QueueError::Closed) {
                return;
            }
            tracing::error!(error = %e, id, "cannot record an asynchronous outcome; retrying");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(10));
        }
    }

    async fn handle(&self, c: Claimed) {
        match c.target.clone() {
            Target::Function {
                scope,
                name,
                qualifier,
                client_context,
            } => {
                self.handle_event(c, scope, name, qualifier, client_context)
                    .await
            }
            Target::Http { url, headers } => self.handle_delivery(c, url, headers).await,
        }
    }

    async fn handle_event(
        &self,
        c: Claimed,
        scope: Scope,
        name: String,
        qualifier: Option<String>,
        client_context: Option<String>,
    ) {
        let settings = match self
            .invoker
            .event_settings(&scope, &name, qualifier.as_deref())
            .await
        {
            Ok(s) => s,
            Err(InvokeError::Function(e)) => {
                // The function (or qualifier) is gone: nothing can take it.
                tracing::warn!(function = %name, request_id = %c.request_id, error = %e,
                    "dropping an asynchronous event: its function no longer exists");
                self.invoker
                    .metrics
                    .events_dropped
                    .fetch_add(1, Ordering::Relaxed);
                self.finish(c.id, Completion::Done { follow_up: vec![] })
                    .await;
                return;
            }
            Err(e) => {
                let throttles = c.throttles + 1;
                self.retry_later(&c, c.attempts, throttles, None, &e.to_string())
                    .await;
                return;
            }
        };
        if settings.disabled {
            let follow_up =
                self.failure_follow_up(&c, &settings, Condition::ZeroReservedConcurrency, None);
            self.finish(c.id, Completion::Done { follow_up }).await;
            return;
        }
        let now = now_ms();
        let max_age_ms = self.scaled(i64::from(settings.config.event_age_s()) * 1000);
        if now - c.enqueued_ms > max_age_ms {
            let last = c
                .last_result
                .as_deref()
                .and_then(|s| serde_json::from_str::<Value>(s).ok());
            let follow_up =
                self.failure_follow_up(&c, &settings, Condition::EventAgeExceeded, last);
            self.finish(c.id, Completion::Done { follow_up }).await;
            return;
        }
        let result = self
            .invoker
            .run_event(
                &scope,
                &name,
                qualifier.as_deref(),
                c.payload.clone(),
                c.request_id.clone(),
                client_context,
            )
            .await;
        match result {
            Ok(r) if r.function_error.is_none() => {
                let mut follow_up = Vec::new();
                if let Some(dest) = &settings.config.on_success {
                    let record =
                        record(&c, &settings, Condition::Success, c.attempts + 1, Some(&r));
                    follow_up.extend(destination_work(&settings.scope, dest, record));
                }
                self.finish(c.id, Completion::Done { follow_up }).await;
            }
            Ok(r) => {
                let attempts = c.attempts + 1;
                let last = response_context(&r);
                let due = now_ms() + self.scaled(FUNCTION_ERROR_DELAY_MS * i64::from(attempts));
                // Lambda looks ahead: a retry that would run after the event's
                // maximum age is not made at all.
                let too_old = due - c.enqueued_ms > max_age_ms;
                if attempts > settings.config.retry_attempts() || too_old {
                    let condition = if attempts > settings.config.retry_attempts() {
                        Condition::RetriesExhausted
                    } else {
                        Condition::EventAgeExceeded
                    };
                    let mut c = c;
                    c.attempts = attempts;
                    let follow_up = self.failure_follow_up(&c, &settings, condition, Some(last));
                    self.finish(c.id, Completion::Done { follow_up }).await;
                } else {
                    self.finish(
                        c.id,
                        Completion::Retry {
                            due_ms: due,
                            attempts,
                            throttles: 0,
                            last_result: Some(last.to_string()),
                        },
                    )
                    .await;
                }
            }
            Err(InvokeError::Function(e)) => {
                tracing::warn!(function = %name, request_id = %c.request_id, error = %e,
                    "dropping an asynchronous event: its function no longer exists");
                self.invoker
                    .metrics
                    .events_dropped
                    .fetch_add(1, Ordering::Relaxed);
                self.finish(c.id, Completion::Done { follow_up: vec![] })
                    .await;
            }
            Err(e) => {
                // Throttled, or the platform could not run it: back off
                // without spending an attempt.
                let throttles = c.throttles + 1;
                let deadline = c.enqueued_ms + max_age_ms + 1;
                let due = (now_ms() + self.backoff(throttles)).min(deadline);
                self.finish(
                    c.id,
                    Completion::Retry {
                        due_ms: due,
                        attempts: c.attempts,
                        throttles,
                        last_result: c.last_result.clone(),
                    },
                )
                .await;
                tracing::debug!(function = %name, request_id = %c.request_id, error = %e,
                    "asynchronous event deferred");
            }
        }
    }

    async fn retry_later(
        &self,
        c: &Claimed,
        attempts: u32,
        throttles: u32,
        last_result: Option<String>,
        why: &str,
    ) {
        tracing::warn!(request_id = %c.request_id, error = %why, "asynchronous event deferred");
        let due = now_ms() + self.backoff(throttles);
        self.finish(
            c.id,
            Completion::Retry {
                due_ms: due,
                attempts,
                throttles,
                last_result: last_result.or_else(|| c.last_result.clone()),
            },
        )
        .await;
    }

    /// The records a failed event produces: the `OnFailure` destination's and
    /// the dead letter.
    fn failure_follow_up(
        &self,
        c: &Claimed,
        settings: &EventSettings,
        condition: Condition,
        last: Option<Value>,
    ) -> Vec<NewWork> {
        let mut out = Vec::new();
        if let Some(dest) = &settings.config.on_failure {
            let mut rec = record(c, settings, condition, c.attempts, None);
            if let Some(last) = &last {
                if let Some(ctx) = last.get("responseContext") {
                    rec["responseContext"] = ctx.clone();
                }
                if let Some(p) = last.get("responsePayload") {
                    rec["responsePayload"] = p.clone();
                }
            }
            out.extend(destination_work(&settings.scope, dest, rec));
        }
        if let Some(dlq) = &settings.dead_letter {
            let (code, message) = match &last {
                Some(l) => (
                    l.pointer("/responseContext/statusCode")
                        .and_then(Value::as_u64)
                        .unwrap_or(200),
                    l.pointer("/responsePayload/errorMessage")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .unwrap_or_else(|| condition.as_str().to_owned()),
                ),
                None => (429, condition.as_str().to_owned()),
            };
            out.extend(dead_letter_work(&settings.scope, dlq, c, code, &message));
        }
        if out.is_empty() {
            self.invoker
                .metrics
                .events_dropped
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!(request_id = %c.request_id, condition = condition.as_str(),
                "asynchronous event discarded: no failure destination or dead-letter target");
        }
        out
    }

    async fn handle_delivery(&self, c: Claimed, url: String, headers: Vec<(String, String)>) {
        let dead_letter = headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(DLQ_HEADER_REQUEST_ID));
        match post(&url, &headers, c.payload.clone()).await {
            Ok(()) => {
                self.finish(c.id, Completion::Done { follow_up: vec![] })
                    .await
            }
            Err(e) => {
                let attempts = c.attempts + 1;
                if attempts >= DELIVERY_ATTEMPTS {
                    let counter = if dead_letter {
                        &self.invoker.metrics.dead_letter_errors
                    } else {
                        &self.invoker.metrics.destination_delivery_failures
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%url, request_id = %c.request_id, error = %e, attempts,
                        "giving up an HTTP delivery");
                    self.finish(c.id, Completion::Done { follow_up: vec![] })
                        .await;
                } else {
                    tracing::debug!(%url, error = %e, attempts, "HTTP delivery failed; will retry");
                    let due = now_ms() + self.backoff(attempts);
                    self.finish(
                        c.id,
                        Completion::Retry {
                            due_ms: due,
                            attempts,
                            throttles: 0,
                            last_result: None,
                        },
                    )
                    .await;
                }
            }
        }
    }
}

/// The dead-letter attributes, as HTTP headers on a webhook delivery.
const DLQ_HEADER_REQUEST_ID: &str = "Lambda-DLQ-RequestID";
const DLQ_HEADER_ERROR_CODE: &str = "Lambda-DLQ-ErrorCode";
const DLQ_HEADER_ERROR_MESSAGE: &str = "Lambda-DLQ-ErrorMessage";

/// `responseContext` and `responsePayload` of one attempt, as a record has
/// them.
fn response_context(r: &InvokeResult) -> Value {
    let mut ctx = json!({
        "statusCode": r.status,
        "executedVersion": r.executed_version,
    });
    if let Some(fe) = r.function_error {
        ctx["functionError"] = json!(fe);
    }
    json!({
        "responseContext": ctx,
        "responsePayload": payload_value(&r.payload),
    })
}

/// A payload as it appears inside a record: its JSON, or a string when it is
/// not JSON.
fn payload_value(p: &Bytes) -> Value {
    if p.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(p)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(p).into_owned()))
}

/// AWS's destination record.
fn record(
    c: &Claimed,
    settings: &EventSettings,
    condition: Condition,
    invoke_count: u32,
    response: Option<&InvokeResult>,
) -> Value {
    let mut rec = json!({
        "version": "1.0",
        "timestamp": model::time_fmt::iso_millis_z(now_ms()),
        "requestContext": {
            "requestId": c.request_id,
            "functionArn": settings.function_arn,
            "condition": condition.as_str(),
            "approximateInvokeCount": invoke_count,
        },
        "requestPayload": if c.payload.is_empty() { json!({}) } else { payload_value(&c.payload) },
    });
    if let Some(r) = response {
        let rc = response_context(r);
        rec["responseContext"] = rc["responseContext"].clone();
        rec["responsePayload"] = rc["responsePayload"].clone();
    }
    rec
}

/// The queued work that delivers `record` to a destination.
fn destination_work(source: &Scope, dest: &str, record: Value) -> Option<NewWork> {
    let payload = Bytes::from(serde_json::to_vec(&record).ok()?);
    // Records nest the event and the response; a chain of destinations
    // (A's failures to B, B's to A) grows them each hop. Stop at Lambda's
    // response limit.
    if payload.len() > model::limits::SYNC_RESPONSE_MAX_BYTES {
        tracing::warn!(destination = %dest, bytes = payload.len(), "destination record too large; dropped");
        return None;
    }
    work_for(source, dest, payload, Vec::new())
}

/// The queued work that delivers the original event to a dead-letter target.
fn dead_letter_work(
    source: &Scope,
    target: &str,
    c: &Claimed,
    code: u64,
    message: &str,
) -> Option<NewWork> {
    let mut message = message.to_owned();
    if message.len() > DLQ_MESSAGE_MAX {
        let mut cut = DLQ_MESSAGE_MAX;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
    }
    let headers = vec![
        (DLQ_HEADER_REQUEST_ID.to_owned(), c.request_id.clone()),
        (DLQ_HEADER_ERROR_CODE.to_owned(), code.to_string()),
        (DLQ_HEADER_ERROR_MESSAGE.to_owned(), header_safe(&message)),
    ];
    work_for(source, target, c.payload.clone(), headers)
}

/// Text as an HTTP header value can carry it: visible ASCII and spaces;
/// control characters become spaces and other characters `\u{..}` escapes.
fn header_safe(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            ' '..='~' => out.push(ch),
            c if c.is_control() => out.push(' '),
            c => out.extend(c.escape_unicode()),
        }
    }
    out
}

fn work_for(
    source: &Scope,
    target: &str,
    payload: Bytes,
    extra_headers: Vec<(String, String)>,
) -> Option<NewWork> {
    let now = now_ms();
    let target = match Destination::parse(target).ok()? {
        // Configuration refuses other accounts' functions; never deliver to
        // one either.
        Destination::Function { scope, .. } if scope.account != source.account => {
            tracing::warn!(target = %target, "not delivering to a function of another account");
            return None;
        }
        Destination::Function {
            scope,
            name,
            qualifier,
        } => Target::Function {
            scope,
            name: name.to_string(),
            qualifier: qualifier.map(|q| q.to_string()),
            client_context: None,
        },
        Destination::Http(url) => {
            let mut headers = vec![("Content-Type".to_owned(), "application/json".to_owned())];
            headers.extend(extra_headers);
            Target::Http { url, headers }
        }
    };
    Some(NewWork {
        request_id: random_uuid().to_string(),
        target,
        payload,
        enqueued_ms: now,
        due_ms: now,
    })
}

/// POSTs `body` to an `http://` URL; any 2xx is success.
async fn post(url: &str, headers: &[(String, String)], body: Bytes) -> Result<(), String> {
    use http_body_util::Full;
    let uri: hyper::Uri = url.parse().map_err(|e| format!("invalid URL: {e}"))?;
    let host = uri
        .host()
        .ok_or("URL has no host")?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(80);
    let attempt = async {
        let stream = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let path = uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".into());
        let mut req = hyper::Request::post(path).header(
            hyper::header::HOST,
            uri.authority().map(|a| a.as_str()).unwrap_or(host.as_str()),
        );
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| format!("request: {e}"))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("send: {e}"))?;
        // The status is all that counts; the body is not read (an endpoint
        // could stream without end).
        let status = resp.status();
        drop(resp);
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("the endpoint answered {status}"))
        }
    };
    tokio::time::timeout(DELIVERY_TIMEOUT, attempt)
        .await
        .map_err(|_| format!("no answer within {} s", DELIVERY_TIMEOUT.as_secs()))?
}

impl Invoker {
    /// The retry settings, destinations and dead-letter target that apply to
    /// an event for `name` (and `qualifier`).
    async fn event_settings(
        &self,
        scope: &Scope,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<EventSettings, InvokeError> {
        let t = self.target(scope, name, qualifier).await?;
        let key = t
            .qualifier
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_else(|| "$LATEST".to_owned());
        let record = &t.cached.record;
        let mut arn = t.scope.function_arn(&t.name);
        arn.qualifier = Some(t.qualifier.clone().unwrap_or(Qualifier::Latest));
        Ok(EventSettings {
            config: record
                .event_invoke_configs
                .get(&key)
                .cloned()
                .unwrap_or_default(),
            // The dead-letter target is part of a version's configuration.
            dead_letter: t.dead_letter.clone(),
            function_arn: arn.to_string(),
            disabled: record.reserved_concurrency == Some(0),
            scope: (*t.scope).clone(),
        })
    }

    /// One attempt at a queued event, with its own request id.
    async fn run_event(
        &self,
        scope: &Scope,
        name: &str,
        qualifier: Option<&str>,
        payload: Bytes,
        request_id: String,
        client_context: Option<String>,
    ) -> Result<InvokeResult, InvokeError> {
        let t = self.target(scope, name, qualifier).await?;
        self.execute(&t, payload, request_id, client_context, None, false)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letter_messages_are_cut_to_one_kilobyte_on_a_character_boundary() {
        let c = Claimed {
            id: 1,
            request_id: "r".into(),
            target: Target::Http {
                url: "http://127.0.0.1/".into(),
                headers: vec![],
            },
            payload: Bytes::from_static(b"{\"a\":1}"),
            enqueued_ms: 0,
            attempts: 3,
            throttles: 0,
            last_result: None,
        };
        let msg = "é".repeat(600);
        let scope = Scope::new(
            model::AccountId::parse("123456789012").unwrap(),
            model::Region::parse("us-east-1").unwrap(),
        );
        let w = dead_letter_work(&scope, "http://127.0.0.1:1/dlq", &c, 200, &msg).unwrap();
        let Target::Http { headers, .. } = w.target else {
            panic!("not http")
        };
        let m = &headers
            .iter()
            .find(|(k, _)| k == DLQ_HEADER_ERROR_MESSAGE)
            .unwrap()
            .1;
        // 1 KB of the message (512 two-byte characters), each escaped.
        assert_eq!(m.matches("\\u{e9}").count(), DLQ_MESSAGE_MAX / 2);
        assert_eq!(m.len(), DLQ_MESSAGE_MAX / 2 * "\\u{e9}".len());
        assert_eq!(header_safe("a\x1b[31mred\tb"), "a [31mred b");
        assert_eq!(&w.payload[..], b"{\"a\":1}");
    }
}
