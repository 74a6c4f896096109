//! Concurrency: a slot from the function's reservation or from the account's
//! unreserved pool, or a throttle.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use model::{FunctionName, Scope};

use crate::{InvokeError, Invoker, Resolved};

/// Why an invocation was throttled (the `Reason` of a 429).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleReason {
    /// The account's unreserved concurrency is in use.
    ConcurrentInvocationLimitExceeded,
    /// The function's reserved concurrency is in use.
    ReservedFunctionConcurrentInvocationLimitExceeded,
}

impl ThrottleReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConcurrentInvocationLimitExceeded => "ConcurrentInvocationLimitExceeded",
            Self::ReservedFunctionConcurrentInvocationLimitExceeded => {
                "ReservedFunctionConcurrentInvocationLimitExceeded"
            }
        }
    }
}

type Counter = Arc<AtomicU32>;

/// Running invocations per account and per function with a reservation.
pub(crate) struct Admission {
    account_concurrency: u32,
    /// Concurrent executions per account and region.
    running: Mutex<HashMap<Arc<Scope>, Counter>>,
    /// Concurrent executions per function with reserved concurrency.
    reserved_running: Mutex<HashMap<(Arc<Scope>, FunctionName), Counter>>,
    /// Sum of reservations per scope, cached until a function changes.
    reserved: Mutex<HashMap<Arc<Scope>, u32>>,
}

/// A concurrency slot, released when dropped.
pub(crate) struct Slot(Counter);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Admission {
    pub(crate) fn new(account_concurrency: u32) -> Self {
        Self {
            account_concurrency,
            running: Mutex::new(HashMap::new()),
            reserved_running: Mutex::new(HashMap::new()),
            reserved: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn forget_reservations(&self, scope: &Arc<Scope>) {
        self.reserved
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(scope);
    }

    /// Takes a slot: from the function's reservation if it has one, else
    /// from the account's unreserved pool; or throttles.
    pub(crate) async fn admit(&self, invoker: &Invoker, t: &Resolved) -> Result<Slot, InvokeError> {
        let (counter, limit, reason) = match t.reserved_concurrency() {
            Some(reserved) => {
                let mut r = self
                    .reserved_running
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                let c = r
                    .entry((t.scope.clone(), t.name.clone()))
                    .or_default()
                    .clone();
                (
                    c,
                    reserved,
                    ThrottleReason::ReservedFunctionConcurrentInvocationLimitExceeded,
                )
            }
            None => {
                let reserved = self.reserved_total(invoker, &t.scope).await?;
                let mut r = self.running.lock().unwrap_or_else(|p| p.into_inner());
                let c = r.entry(t.scope.clone()).or_default().clone();
                (
                    c,
                    self.account_concurrency.saturating_sub(reserved),
                    ThrottleReason::ConcurrentInvocationLimitExceeded,
                )
            }
        };
        let prev = counter.fetch_add(1, Ordering::AcqRel);
        if prev >= limit {
            counter.fetch_sub(1, Ordering::AcqRel);
            return Err(InvokeError::Throttled { reason });
        }
        Ok(Slot(counter))
    }

    /// Concurrency the scope's reservations hold back from the shared pool.
    async fn reserved_total(
        &self,
        invoker: &Invoker,
        scope: &Arc<Scope>,
    ) -> Result<u32, InvokeError> {
        if let Some(n) = self
            .reserved
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(scope)
        {
            return Ok(*n);
        }
        let generation = invoker.generation();
        let usage = invoker.store.usage(scope).await?;
        let n = usage.reserved_concurrency.min(u64::from(u32::MAX)) as u32;
        let mut reserved = self.reserved.lock().unwrap_or_else(|p| p.into_inner());
        if invoker.generation() == generation {
            reserved.insert(scope.clone(), n);
        }
        Ok(n)
    }
}
