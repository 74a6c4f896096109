//! Asynchronous work: the layer every trigger hands events to.
//!
//! [`Dispatcher::accept`] queues an event durably (an `Event` invocation
//! answers 202 only after that). The dispatcher loop takes due work from the
//! [`queue`] and carries it out: an event resolves its function once per
//! attempt (so the version that runs is the version whose settings decide
//! what follows), runs through the same path as a synchronous call, and the
//! outcome is decided by the pure functions in [`decide`] (retry when, give
//! up why). A success goes to the `OnSuccess` destination; a failure to the
//! `OnFailure` destination and the version's dead-letter target
//! ([`records`]). Destinations are functions (queued as events) or `http://`
//! URLs (POSTed by [`webhook`]). Each outcome and the records it produces are
//! written in one step ([`queue::Completion::Done`]), so an acknowledged
//! event always ends as a success, a destination record or a dead letter,
//! at least once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use invoke::{Call, Invocation, InvocationType, InvokeError, InvokeRequest, Invoker, Resolved};
use model::Scope;
use queue::{Claimed, Completion, NewWork, Queue, Recipient};
use serde_json::Value;

pub mod decide;
mod records;
pub mod webhook;

use decide::{
    Attempt, Condition, Decision, DeliveryDecision, Failure, Policy, Progress, RetryAt, Schedule,
};

/// How the dispatcher paces itself.
#[derive(Debug, Clone, Copy)]
pub struct DispatchSettings {
    /// Multiplies every time constant: retry delays, backoff and the maximum
    /// event age. 1.0 is Lambda's schedule; tests shrink it.
    pub delay_scale: f64,
    /// Attempts that may run at once (0 pauses dispatch: events are accepted
    /// and kept).
    pub max_concurrent: usize,
}

impl Default for DispatchSettings {
    fn default() -> Self {
        Self {
            delay_scale: 1.0,
            max_concurrent: 64,
        }
    }
}

/// Counters of asynchronous invocation, as Lambda's metrics name them.
#[derive(Debug, Default)]
pub struct AsyncMetrics {
    /// Events accepted (`AsyncEventsReceived`).
    pub events_received: AtomicU64,
    /// Events dropped without a destination to take them (`AsyncEventsDropped`).
    pub events_dropped: AtomicU64,
    /// Records a destination did not accept (`DestinationDeliveryFailures`).
    pub destination_delivery_failures: AtomicU64,
    /// Events the dead-letter target did not accept (`DeadLetterErrors`).
    pub dead_letter_errors: AtomicU64,
}

/// Queues events and carries them out.
pub struct Dispatcher {
    invoker: Arc<Invoker>,
    queue: Queue,
    settings: DispatchSettings,
    metrics: AsyncMetrics,
}

fn now_ms() -> i64 {
    model::time_fmt::now_ms()
}

impl Dispatcher {
    pub fn new(invoker: Arc<Invoker>, queue: Queue, settings: DispatchSettings) -> Arc<Self> {
        Arc::new(Self {
            invoker,
            queue,
            settings,
            metrics: AsyncMetrics::default(),
        })
    }

    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    pub fn metrics(&self) -> &AsyncMetrics {
        &self.metrics
    }

    fn schedule(&self) -> Schedule {
        Schedule {
            delay_scale: self.settings.delay_scale,
        }
    }

    /// Accepts an asynchronous invocation: the function must exist and the
    /// payload fit; returns once the event is on disk.
    pub async fn accept(
        &self,
        scope: &Scope,
        req: InvokeRequest,
    ) -> Result<Invocation, InvokeError> {
        let target = self
            .invoker
            .resolve(scope, &req.function, req.qualifier.as_deref())
            .await?;
        invoke::check_payload(InvocationType::Event, &req.payload)?;
        let request_id = invoke::random_uuid().to_string();
        let now = now_ms();
        self.queue
            .enqueue(vec![NewWork {
                request_id: request_id.clone(),
                recipient: Recipient::Function {
                    scope: (*target.scope).clone(),
                    name: target.name.to_string(),
                    qualifier: target.qualifier.as_ref().map(ToString::to_string),
                    // Lambda passes a client context to synchronous
                    // invocations only.
                    client_context: None,
                },
                payload: req.payload,
                enqueued_ms: now,
                due_ms: now,
            }])
            .await
            .map_err(|e| match e {
                queue::QueueError::DiskFull(_) | queue::QueueError::NoSpace { .. } => {
                    InvokeError::DiskFull(e.to_string())
                }
                e => InvokeError::Queue(e.to_string()),
            })?;
        self.metrics.events_received.fetch_add(1, Ordering::Relaxed);
        Ok(Invocation::Accepted { request_id })
    }

    /// Queues an HTTP POST a trigger sends (an SNS notification or
    /// subscription confirmation): durable once this returns, then carried
    /// out by the webhook client on the delivery schedule.
    pub async fn accept_http(
        &self,
        url: String,
        headers: Vec<(String, String)>,
        body: bytes::Bytes,
    ) -> Result<String, InvokeError> {
        let request_id = invoke::random_uuid().to_string();
        let now = now_ms();
        self.queue
            .enqueue(vec![NewWork {
                request_id: request_id.clone(),
                recipient: Recipient::Http { url, headers },
                payload: body,
                enqueued_ms: now,
                due_ms: now,
            }])
            .await
            .map_err(|e| match e {
                queue::QueueError::DiskFull(_) | queue::QueueError::NoSpace { .. } => {
                    InvokeError::DiskFull(e.to_string())
                }
                e => InvokeError::Queue(e.to_string()),
            })?;
        Ok(request_id)
    }

    /// Starts the dispatcher loop on the current runtime; `None` when
    /// dispatch is paused.
    pub fn spawn(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        if self.settings.max_concurrent == 0 {
            tracing::warn!("asynchronous dispatch is paused: events are queued but not run");
            return None;
        }
        Some(tokio::spawn(self.clone().run()))
    }

    async fn run(self: Arc<Self>) {
        let slots = Arc::new(tokio::sync::Semaphore::new(self.settings.max_concurrent));
        loop {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let claimed = match self.queue.next_due().await {
                Ok(c) => c,
                Err(queue::QueueError::Closed) => return,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the event queue");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let d = self.clone();
            tokio::spawn(async move {
                d.handle(claimed).await;
                drop(permit);
            });
        }
    }

    /// Records an attempt's outcome. It must be recorded: keep trying (the
    /// work stays claimed meanwhile, and runs again after a restart if this
    /// never lands).
    async fn finish(&self, id: queue::WorkId, completion: Completion) {
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
        match c.recipient.clone() {
            Recipient::Function {
                scope,
                name,
                qualifier,
                client_context,
            } => {
                self.handle_event(c, scope, name, qualifier, client_context)
                    .await
            }
            Recipient::Http { url, headers } => self.handle_delivery(c, url, headers).await,
        }
    }

    fn drop_event(&self, c: &Claimed, name: &str, why: &InvokeError) {
        tracing::warn!(function = %name, request_id = %c.request_id, error = %why,
            "dropping an asynchronous event: its function no longer exists");
        self.metrics.events_dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// One attempt at an event: one resolution decides both which version
    /// runs and which settings govern what follows.
    async fn handle_event(
        &self,
        c: Claimed,
        scope: Scope,
        name: String,
        qualifier: Option<String>,
        client_context: Option<String>,
    ) {
        let progress = Progress {
            enqueued_ms: c.enqueued_ms,
            attempts: c.attempts,
            throttles: c.throttles,
        };
        let target = match self
            .invoker
            .resolve(&scope, &name, qualifier.as_deref())
            .await
        {
            Ok(t) => t,
            Err(e @ (InvokeError::NotFound(_) | InvokeError::Reference(_))) => {
                // The function (or qualifier) is gone: nothing can take it.
                self.drop_event(&c, &name, &e);
                self.finish(c.id, Completion::Done { follow_up: vec![] })
                    .await;
                return;
            }
            Err(e) => {
                tracing::warn!(request_id = %c.request_id, error = %e, "asynchronous event deferred");
                // No settings to go by: back off within the default age.
                let policy = Policy {
                    max_retries: 0,
                    max_age_ms: self.schedule().scaled(
                        i64::from(model::EventInvokeConfig::default().event_age_s()) * 1000,
                    ),
                    disabled: false,
                };
                let r = decide::deferred(&policy, &self.schedule(), &progress, now_ms());
                self.finish(c.id, retry(r, c.last_result.clone())).await;
                return;
            }
        };
        let config = target.event_invoke_config();
        let policy = Policy {
            max_retries: config.retry_attempts(),
            max_age_ms: self
                .schedule()
                .scaled(i64::from(config.event_age_s()) * 1000),
            disabled: target.reserved_concurrency() == Some(0),
        };
        if let Err(failure) = decide::before_attempt(&policy, &progress, now_ms()) {
            let last = c.last_result.clone();
            self.apply(&c, &target, Decision::Fail(failure), last).await;
            return;
        }
        let call = Call {
            request_id: c.request_id.clone(),
            payload: c.payload.clone(),
            client_context,
            trace_header: None,
            tail: false,
        };
        let (attempt, last) = match self.invoker.execute(&target, call).await {
            Ok(r) => {
                let attempt = if r.function_error.is_none() {
                    Attempt::Succeeded
                } else {
                    Attempt::FunctionError
                };
                (attempt, Some(records::response_context(&r).to_string()))
            }
            Err(e) => {
                tracing::debug!(function = %name, request_id = %c.request_id, error = %e,
                    "asynchronous event deferred");
                (Attempt::Deferred, c.last_result.clone())
            }
        };
        let after = decide::after_attempt(&policy, &self.schedule(), &progress, attempt, now_ms());
        self.apply(&c, &target, after, last).await;
    }

    /// Carries out a decision: the queue's record of it, and the records it
    /// produces, in one step.
    async fn apply(&self, c: &Claimed, t: &Resolved, d: Decision, last: Option<String>) {
        let last_value = last
            .as_deref()
            .and_then(|s| serde_json::from_str::<Value>(s).ok());
        let completion = match d {
            Decision::Retry(r) => retry(r, last),
            Decision::Succeeded => {
                let mut follow_up = Vec::new();
                if let Some(dest) = &t.event_invoke_config().on_success {
                    let now = now_ms();
                    let arn = t.record_arn().to_string();
                    let origin = records::Origin { function_arn: &arn };
                    let rec = records::record(
                        c,
                        &origin,
                        Condition::Success,
                        c.attempts + 1,
                        last_value.as_ref(),
                        now,
                    );
                    follow_up.extend(records::destination_work(&t.scope, dest, rec, now));
                }
                Completion::Done { follow_up }
            }
            Decision::Fail(f) => Completion::Done {
                follow_up: self.failure_follow_up(c, t, f, last_value.as_ref()),
            },
        };
        self.finish(c.id, completion).await;
    }

    /// The records a failed event produces: the `OnFailure` destination's and
    /// the dead letter.
    fn failure_follow_up(
        &self,
        c: &Claimed,
        t: &Resolved,
        Failure {
            condition,
            attempts,
        }: Failure,
        last: Option<&Value>,
    ) -> Vec<NewWork> {
        let now = now_ms();
        let mut out = Vec::new();
        if let Some(dest) = &t.event_invoke_config().on_failure {
            let arn = t.record_arn().to_string();
            let origin = records::Origin { function_arn: &arn };
            let rec = records::record(c, &origin, condition, attempts, last, now);
            out.extend(records::destination_work(&t.scope, dest, rec, now));
        }
        if let Some(dlq) = t.dead_letter_target() {
            let (code, message) = records::dead_letter_error(last, condition);
            out.extend(records::dead_letter_work(
                &t.scope, dlq, c, code, &message, now,
            ));
        }
        if out.is_empty() {
            self.metrics.events_dropped.fetch_add(1, Ordering::Relaxed);
            tracing::info!(request_id = %c.request_id, condition = condition.as_str(),
                "asynchronous event discarded: no failure destination or dead-letter target");
        }
        out
    }

    async fn handle_delivery(&self, c: Claimed, url: String, headers: Vec<(String, String)>) {
        let result = webhook::post(&url, &headers, c.payload.clone()).await;
        let d = decide::after_delivery(&self.schedule(), c.attempts, result.is_ok(), now_ms());
        let completion = match d {
            DeliveryDecision::Delivered => Completion::Done { follow_up: vec![] },
            DeliveryDecision::Retry { due_ms, attempts } => {
                if let Err(e) = &result {
                    tracing::debug!(%url, error = %e, attempts, "HTTP delivery failed; will retry");
                }
                Completion::Retry {
                    due_ms,
                    attempts,
                    throttles: 0,
                    last_result: None,
                }
            }
            DeliveryDecision::GiveUp { attempts } => {
                let dead_letter = headers
                    .iter()
                    .any(|(k, _)| k.eq_ignore_ascii_case(records::DLQ_HEADER_REQUEST_ID));
                let counter = if dead_letter {
                    &self.metrics.dead_letter_errors
                } else {
                    &self.metrics.destination_delivery_failures
                };
                counter.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = &result {
                    tracing::warn!(%url, request_id = %c.request_id, error = %e, attempts,
                        "giving up an HTTP delivery");
                }
                Completion::Done { follow_up: vec![] }
            }
        };
        self.finish(c.id, completion).await;
    }
}

fn retry(r: RetryAt, last_result: Option<String>) -> Completion {
    Completion::Retry {
        due_ms: r.due_ms,
        attempts: r.attempts,
        throttles: r.throttles,
        last_result,
    }
}
