//! What every poller shares: starting and stopping one, invoking the
//! function with a batch and telling its outcomes apart, and pausing in a
//! way a stop interrupts.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use invoke::{Call, InvokeError};
use tokio::sync::watch;

use crate::mapping::{Kind, Mapping};
use crate::{Counters, EsmError, Inner, mq, nats, sqs};

/// A running poller: the signal that stops it and the task to wait for.
pub(crate) struct Runner {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Runner {
    /// Asks the poller to stop and waits until its in-flight batch is
    /// finished (deleted, acknowledged or left to the source).
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.task.await
            && e.is_panic()
        {
            tracing::error!(error = %e, "an event source poller panicked");
        }
    }
}

/// What a poller works with.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub inner: Arc<Inner>,
    pub mapping: Arc<Mapping>,
    pub counters: Arc<Counters>,
    pub stop: watch::Receiver<bool>,
    /// The mapping's compiled `FilterCriteria`.
    pub filters: Option<Arc<event_pattern::lambda::FilterCriteria>>,
}

impl Ctx {
    pub fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    /// Sleeps `d`, or less if the poller is told to stop; true when it
    /// must stop.
    pub async fn pause(&mut self, d: Duration) -> bool {
        if self.stopped() {
            return true;
        }
        tokio::select! {
            _ = self.stop.changed() => true,
            _ = tokio::time::sleep(d) => self.stopped(),
        }
    }

    /// Runs `fut` unless the poller is told to stop first (`None`).
    pub async fn or_stop<T>(&mut self, fut: impl std::future::Future<Output = T>) -> Option<T> {
        if self.stopped() {
            return None;
        }
        tokio::select! {
            _ = self.stop.changed() => None,
            v = fut => Some(v),
        }
    }

    /// Invokes the function once with `payload`, synchronously.
    pub async fn invoke(&self, payload: Bytes) -> Outcome {
        let m = &self.mapping;
        let target = match self
            .inner
            .invoker
            .resolve(&m.scope, &m.function_arn, None)
            .await
        {
            Ok(t) => t,
            Err(e) => return Outcome::from_error(e),
        };
        let call = Call {
            request_id: invoke::random_uuid().to_string(),
            payload,
            client_context: None,
            trace_header: None,
            tail: false,
        };
        match self.inner.invoker.execute(&target, call).await {
            Ok(r) if r.function_error.is_none() => Outcome::Success(r.payload),
            Ok(_) => Outcome::FunctionError,
            Err(e) => Outcome::from_error(e),
        }
    }

    /// Invokes until the function answers (success or error), retrying
    /// throttles with a growing pause; gives up (`None`) when told to stop
    /// or when `deadline` passes, so that the source hands the records out
    /// again.
    pub async fn invoke_retrying_throttles(
        &mut self,
        payload: Bytes,
        deadline: tokio::time::Instant,
    ) -> Option<Outcome> {
        let mut pause = Duration::from_millis(50);
        loop {
            let outcome = self.invoke(payload.clone()).await;
            if !matches!(outcome, Outcome::Throttled) {
                return Some(outcome);
            }
            Counters::add(&self.counters.throttled, 1);
            if tokio::time::Instant::now() + pause >= deadline || self.pause(pause).await {
                return None;
            }
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }

    /// Invokes with a batch of `n` records as a broker source does (the whole
    /// batch succeeds or fails together): counts the records invoked, pauses
    /// a second when the function cannot run, and says whether the batch may
    /// be acknowledged. Throttles are retried until `deadline`.
    pub async fn invoke_batch(
        &mut self,
        payload: Bytes,
        n: usize,
        deadline: tokio::time::Instant,
    ) -> bool {
        match self.invoke_retrying_throttles(payload, deadline).await {
            Some(Outcome::Success(_)) => {
                Counters::add(&self.counters.invoked, n);
                true
            }
            Some(Outcome::FunctionError) => {
                Counters::add(&self.counters.invoked, n);
                false
            }
            Some(Outcome::Unavailable(why)) => {
                tracing::warn!(uuid = %self.mapping.uuid, error = %why, "cannot invoke the mapped function");
                let _ = self.pause(Duration::from_secs(1)).await;
                false
            }
            Some(Outcome::Throttled) | None => false,
        }
    }

    pub fn processing_result(&self, result: &str) {
        self.inner.processing_result(&self.mapping.uuid, result);
    }
}

/// How one invocation with a batch ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The function returned this payload.
    Success(Bytes),
    /// The function failed (its error document).
    FunctionError,
    /// Refused for concurrency or capacity: try again later.
    Throttled,
    /// The function could not run (deleted, runtime gone, ...).
    Unavailable(String),
}

impl Outcome {
    fn from_error(e: InvokeError) -> Self {
        match e {
            InvokeError::Throttled { .. }
            | InvokeError::NoCapacity(_)
            | InvokeError::DiskFull(_) => Self::Throttled,
            other => Self::Unavailable(other.to_string()),
        }
    }
}

/// Refuses mappings of sources this server cannot consume yet, before
/// anything is stored.
pub(crate) fn check_supported(inner: &Inner, m: &Mapping) -> Result<(), EsmError> {
    match m.kind {
        Kind::Sqs { .. } => Ok(()),
        Kind::Mq => mq::target(&inner.brokers, m)
            .map(|_| ())
            .map_err(EsmError::InvalidParameter),
        Kind::Nats => Ok(()),
        other => Err(EsmError::InvalidParameter(format!(
            "This server does not consume {} event sources.",
            match other {
                Kind::Kinesis => "Kinesis",
                Kind::DynamoDb => "DynamoDB Streams",
                Kind::Mq => "Amazon MQ",
                Kind::Kafka => "Kafka",
                Kind::Nats => "NATS",
                Kind::Sqs { .. } => "SQS",
            }
        ))),
    }
}

/// Starts the poller of an enabled mapping.
pub(crate) fn start(inner: Arc<Inner>, mapping: Mapping, counters: Arc<Counters>) -> Runner {
    let (tx, rx) = watch::channel(false);
    let filters = match mapping
        .filter_criteria
        .as_ref()
        .map(crate::validate::compile_filters)
    {
        Some(Ok(f)) => Some(Arc::new(f)),
        Some(Err(e)) => {
            // Validated when stored: a filter that no longer compiles stops
            // nothing but this mapping.
            tracing::error!(uuid = %mapping.uuid, error = %e, "the stored filters do not compile");
            let task = tokio::spawn(async {});
            return Runner { stop: tx, task };
        }
        None => None,
    };
    let ctx = Ctx {
        inner,
        mapping: Arc::new(mapping),
        counters,
        stop: rx,
        filters,
    };
    let task = tokio::spawn(async move {
        let uuid = ctx.mapping.uuid.clone();
        match ctx.mapping.kind {
            Kind::Sqs { .. } => sqs::run(ctx).await,
            Kind::Mq => mq::run(ctx).await,
            Kind::Nats => nats::run(ctx).await,
            other => tracing::error!(%uuid, ?other, "no poller for this source type"),
        }
    });
    Runner { stop: tx, task }
}
