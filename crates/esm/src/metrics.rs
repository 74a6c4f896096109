//! Lambda's event source mapping metrics, per mapping: what the poller
//! took, dropped and invoked, and how far behind it is.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use model::Scope;

use crate::mapping::Mapping;

/// Counted by a mapping's poller since the server started.
#[derive(Debug)]
pub struct Counters {
    /// `PolledEventCount`: records read from the source.
    pub polled: AtomicU64,
    /// `FilteredOutEventCount`: records no filter matched.
    pub filtered_out: AtomicU64,
    /// `InvokedEventCount`: records handed to the function.
    pub invoked: AtomicU64,
    /// `FailedInvokeEventCount`: records of batches the function failed.
    pub failed_invoke: AtomicU64,
    /// `DroppedEventCount`: records given up on (age, retries).
    pub dropped: AtomicU64,
    /// `OnFailureDestinationDeliveredEventCount`.
    pub on_failure_delivered: AtomicU64,
    /// Records deleted, acknowledged or checkpointed after success.
    pub succeeded: AtomicU64,
    /// Invocations refused for concurrency and retried.
    pub throttled: AtomicU64,
    /// Records waiting in the source (-1: not known yet).
    pub backlog: AtomicI64,
    /// `IteratorAge` in milliseconds for streams (-1: not a stream).
    pub iterator_age_ms: AtomicI64,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            polled: AtomicU64::new(0),
            filtered_out: AtomicU64::new(0),
            invoked: AtomicU64::new(0),
            failed_invoke: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            on_failure_delivered: AtomicU64::new(0),
            succeeded: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            backlog: AtomicI64::new(-1),
            iterator_age_ms: AtomicI64::new(-1),
        }
    }
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// One mapping's state and counters at a moment.
#[derive(Debug, Clone, PartialEq)]
pub struct MappingStats {
    pub scope: Scope,
    pub uuid: String,
    pub function_arn: String,
    pub source: String,
    pub state: &'static str,
    pub polled: u64,
    pub filtered_out: u64,
    pub invoked: u64,
    pub failed_invoke: u64,
    pub dropped: u64,
    pub on_failure_delivered: u64,
    pub succeeded: u64,
    pub throttled: u64,
    /// Records waiting in the source, when known.
    pub backlog: Option<u64>,
    pub iterator_age_ms: Option<u64>,
}

impl MappingStats {
    pub(crate) fn of(m: &Mapping, c: &Counters) -> Self {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let non_negative = |a: &AtomicI64| u64::try_from(a.load(Ordering::Relaxed)).ok();
        Self {
            scope: m.scope.clone(),
            uuid: m.uuid.clone(),
            function_arn: m.function_arn.clone(),
            source: m
                .event_source_arn
                .clone()
                .or_else(|| {
                    m.self_managed
                        .as_ref()
                        .and_then(|s| s.endpoints.values().flatten().next().cloned())
                })
                .unwrap_or_default(),
            state: m.state.as_str(),
            polled: get(&c.polled),
            filtered_out: get(&c.filtered_out),
            invoked: get(&c.invoked),
            failed_invoke: get(&c.failed_invoke),
            dropped: get(&c.dropped),
            on_failure_delivered: get(&c.on_failure_delivered),
            succeeded: get(&c.succeeded),
            throttled: get(&c.throttled),
            backlog: non_negative(&c.backlog),
            iterator_age_ms: non_negative(&c.iterator_age_ms),
        }
    }
}
