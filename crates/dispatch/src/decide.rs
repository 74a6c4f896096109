//! Lambda's decisions about an asynchronous event, as pure functions of the
//! event's progress, the function's settings and the time.
//!
//! - A function error is retried up to `MaximumRetryAttempts` (default 2),
//!   one minute after the first attempt, two minutes after the second.
//!   Lambda looks ahead: a retry that would run after the event's maximum
//!   age is not made (`EventAgeExceeded`).
//! - A throttle or a platform error is retried with exponential backoff from
//!   one second to five minutes, without spending an attempt, until the
//!   event is older than `MaximumEventAgeInSeconds` (default six hours).
//! - A function whose reserved concurrency is 0 gets nothing: its events go
//!   to the failure targets untried (`ZeroReservedConcurrency`).

/// Why an event ended, as destination records name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    Success,
    RetriesExhausted,
    EventAgeExceeded,
    ZeroReservedConcurrency,
}

impl Condition {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "Success",
            Self::RetriesExhausted => "RetriesExhausted",
            Self::EventAgeExceeded => "EventAgeExceeded",
            Self::ZeroReservedConcurrency => "ZeroReservedConcurrency",
        }
    }
}

/// Lambda's time constants, scaled (1.0 is Lambda's schedule; tests shrink it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    pub delay_scale: f64,
}

/// Delay before retry `n` after a function error: `n` minutes.
const FUNCTION_ERROR_DELAY_MS: i64 = 60_000;
/// Backoff after throttling or platform errors: from 1 s, doubling, to 5 min.
const BACKOFF_FIRST_MS: i64 = 1_000;
const BACKOFF_MAX_MS: i64 = 300_000;
/// HTTP deliveries are tried this many times before they are given up.
pub const DELIVERY_ATTEMPTS: u32 = 6;

impl Schedule {
    pub fn scaled(&self, ms: i64) -> i64 {
        ((ms as f64) * self.delay_scale).round().max(0.0) as i64
    }

    /// The wait before the retry that follows failed attempt `attempts`.
    fn retry_delay(&self, attempts: u32) -> i64 {
        self.scaled(FUNCTION_ERROR_DELAY_MS * i64::from(attempts))
    }

    /// The wait after the `n`-th consecutive throttle (1-based).
    fn backoff(&self, n: u32) -> i64 {
        let exp = n.saturating_sub(1).min(20);
        self.scaled((BACKOFF_FIRST_MS << exp).min(BACKOFF_MAX_MS))
    }
}

/// What governs one event, from the function version it resolved to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub max_retries: u32,
    /// `MaximumEventAgeInSeconds`, scaled, in milliseconds.
    pub max_age_ms: i64,
    /// Reserved concurrency 0.
    pub disabled: bool,
}

/// How far an event got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub enqueued_ms: i64,
    /// Attempts that reached the function.
    pub attempts: u32,
    /// Consecutive throttles since the last attempt.
    pub throttles: u32,
}

/// How one attempt went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    Succeeded,
    /// The function failed (its error, a timeout, a crash).
    FunctionError,
    /// It did not run: throttled, or the platform could not run it.
    Deferred,
}

/// When to try an event again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAt {
    pub due_ms: i64,
    pub attempts: u32,
    pub throttles: u32,
}

/// Why an event is given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    pub condition: Condition,
    /// Attempts made, as the record's `approximateInvokeCount`.
    pub attempts: u32,
}

/// What to do with the event after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Done: the success destination gets a record.
    Succeeded,
    Retry(RetryAt),
    /// Give up: the failure destination and the dead-letter target get it.
    Fail(Failure),
}

/// Before an attempt: whether to make it, or give up at once.
pub fn before_attempt(policy: &Policy, p: &Progress, now_ms: i64) -> Result<(), Failure> {
    let fail = |condition| {
        Err(Failure {
            condition,
            attempts: p.attempts,
        })
    };
    if policy.disabled {
        return fail(Condition::ZeroReservedConcurrency);
    }
    if now_ms - p.enqueued_ms > policy.max_age_ms {
        return fail(Condition::EventAgeExceeded);
    }
    Ok(())
}

/// After an attempt that did not run (throttled, or the platform could not
/// run it): back off, spending no attempt, but not past the moment the event
/// expires (it is then given up at once, by [`before_attempt`]).
pub fn deferred(policy: &Policy, schedule: &Schedule, p: &Progress, now_ms: i64) -> RetryAt {
    let throttles = p.throttles + 1;
    let deadline = p.enqueued_ms + policy.max_age_ms + 1;
    RetryAt {
        due_ms: (now_ms + schedule.backoff(throttles)).min(deadline),
        attempts: p.attempts,
        throttles,
    }
}

/// After an attempt: done, retry when, or give up why.
pub fn after_attempt(
    policy: &Policy,
    schedule: &Schedule,
    p: &Progress,
    attempt: Attempt,
    now_ms: i64,
) -> Decision {
    match attempt {
        Attempt::Succeeded => Decision::Succeeded,
        Attempt::FunctionError => {
            let attempts = p.attempts + 1;
            let fail = |condition| {
                Decision::Fail(Failure {
                    condition,
                    attempts,
                })
            };
            if attempts > policy.max_retries {
                return fail(Condition::RetriesExhausted);
            }
            let due_ms = now_ms + schedule.retry_delay(attempts);
            if due_ms - p.enqueued_ms > policy.max_age_ms {
                return fail(Condition::EventAgeExceeded);
            }
            Decision::Retry(RetryAt {
                due_ms,
                attempts,
                throttles: 0,
            })
        }
        Attempt::Deferred => Decision::Retry(deferred(policy, schedule, p, now_ms)),
    }
}

/// What to do with an HTTP delivery after an attempt at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryDecision {
    Delivered,
    Retry { due_ms: i64, attempts: u32 },
    GiveUp { attempts: u32 },
}

/// After an attempt at an HTTP delivery (`attempts` made before it).
pub fn after_delivery(
    schedule: &Schedule,
    attempts: u32,
    ok: bool,
    now_ms: i64,
) -> DeliveryDecision {
    let attempts = attempts + 1;
    if ok {
        DeliveryDecision::Delivered
    } else if attempts >= DELIVERY_ATTEMPTS {
        DeliveryDecision::GiveUp { attempts }
    } else {
        DeliveryDecision::Retry {
            due_ms: now_ms + schedule.backoff(attempts),
            attempts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    const LAMBDA: Schedule = Schedule { delay_scale: 1.0 };

    fn policy(max_retries: u32, max_age_s: i64) -> Policy {
        Policy {
            max_retries,
            max_age_ms: max_age_s * 1000,
            disabled: false,
        }
    }

    fn progress(attempts: u32, throttles: u32) -> Progress {
        Progress {
            enqueued_ms: 0,
            attempts,
            throttles,
        }
    }

    /// Follows one event through function errors, each attempt made when
    /// the previous decision said: the times of the attempts and the end.
    fn run_failing(policy: Policy, first_attempt_ms: i64) -> (Vec<i64>, Decision) {
        let mut p = progress(0, 0);
        let mut now = first_attempt_ms;
        let mut times = Vec::new();
        loop {
            assert_eq!(before_attempt(&policy, &p, now), Ok(()));
            times.push(now);
            match after_attempt(&policy, &LAMBDA, &p, Attempt::FunctionError, now) {
                Decision::Retry(RetryAt {
                    due_ms, attempts, ..
                }) => {
                    p.attempts = attempts;
                    now = due_ms;
                }
                end => return (times, end),
            }
        }
    }

    #[test]
    fn function_errors_follow_lambdas_retry_schedule() {
        // (retries, max age s) -> attempt times, and how it ends.
        let cases: &[(u32, i64, &[i64], Condition, u32)] = &[
            // The default: three attempts, one then two minutes apart.
            (
                2,
                21_600,
                &[10, 10 + MIN, 10 + 3 * MIN],
                Condition::RetriesExhausted,
                3,
            ),
            (1, 21_600, &[10, 10 + MIN], Condition::RetriesExhausted, 2),
            (0, 21_600, &[10], Condition::RetriesExhausted, 1),
            // Look-ahead: a retry due after the maximum age is not made.
            (2, 60, &[10], Condition::EventAgeExceeded, 1),
            (2, 90, &[10, 10 + MIN], Condition::EventAgeExceeded, 2),
            (2, 180, &[10, 10 + MIN], Condition::EventAgeExceeded, 2),
            (
                2,
                181,
                &[10, 10 + MIN, 10 + 3 * MIN],
                Condition::RetriesExhausted,
                3,
            ),
        ];
        for &(retries, age, times, condition, attempts) in cases {
            let (got, end) = run_failing(policy(retries, age), 10);
            assert_eq!(got, times, "attempt times for retries {retries}, age {age}");
            assert_eq!(
                end,
                Decision::Fail(Failure {
                    condition,
                    attempts
                }),
                "end for retries {retries}, age {age}"
            );
        }
    }

    #[test]
    fn throttles_back_off_without_spending_attempts() {
        let pol = policy(2, 21_600);
        let mut p = progress(1, 0);
        let mut waits = Vec::new();
        let mut now = 5 * MIN;
        for _ in 0..12 {
            let Decision::Retry(RetryAt {
                due_ms,
                attempts,
                throttles,
            }) = after_attempt(&pol, &LAMBDA, &p, Attempt::Deferred, now)
            else {
                panic!("a throttle is retried")
            };
            assert_eq!(attempts, 1, "a throttle spends no attempt");
            waits.push((due_ms - now) / 1000);
            p.throttles = throttles;
            now = due_ms;
        }
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        // The next function error is the second attempt, a minute later, and
        // starts the backoff afresh.
        assert_eq!(
            after_attempt(&pol, &LAMBDA, &p, Attempt::FunctionError, now),
            Decision::Retry(RetryAt {
                due_ms: now + 2 * MIN,
                attempts: 2,
                throttles: 0
            })
        );
    }

    #[test]
    fn throttled_events_expire_at_their_maximum_age() {
        let pol = policy(2, 60);
        let p = progress(0, 8);
        // The backoff (256 s) would pass the age: the retry comes at expiry...
        let d = after_attempt(&pol, &LAMBDA, &p, Attempt::Deferred, 30_000);
        assert_eq!(
            d,
            Decision::Retry(RetryAt {
                due_ms: 60_001,
                attempts: 0,
                throttles: 9
            })
        );
        // ... and finds the event too old.
        assert_eq!(
            before_attempt(&pol, &p, 60_001),
            Err(Failure {
                condition: Condition::EventAgeExceeded,
                attempts: 0
            })
        );
        assert_eq!(before_attempt(&pol, &p, 60_000), Ok(()));
    }

    #[test]
    fn zero_reserved_concurrency_fails_untried_and_success_is_final() {
        let mut pol = policy(2, 21_600);
        assert_eq!(
            after_attempt(&pol, &LAMBDA, &progress(1, 3), Attempt::Succeeded, 1),
            Decision::Succeeded
        );
        pol.disabled = true;
        assert_eq!(
            before_attempt(&pol, &progress(0, 0), 1),
            Err(Failure {
                condition: Condition::ZeroReservedConcurrency,
                attempts: 0
            })
        );
    }

    #[test]
    fn the_schedule_scales() {
        let fast = Schedule { delay_scale: 0.01 };
        let pol = Policy {
            max_retries: 2,
            max_age_ms: fast.scaled(21_600_000),
            disabled: false,
        };
        assert_eq!(
            after_attempt(&pol, &fast, &progress(1, 0), Attempt::FunctionError, 0),
            Decision::Retry(RetryAt {
                due_ms: 1_200,
                attempts: 2,
                throttles: 0
            })
        );
    }

    #[test]
    fn deliveries_are_tried_six_times() {
        let mut attempts = 0;
        let mut waits = Vec::new();
        loop {
            match after_delivery(&LAMBDA, attempts, false, 0) {
                DeliveryDecision::Retry {
                    due_ms,
                    attempts: a,
                } => {
                    waits.push(due_ms / 1000);
                    attempts = a;
                }
                DeliveryDecision::GiveUp { attempts: a } => {
                    assert_eq!(a, DELIVERY_ATTEMPTS);
                    break;
                }
                DeliveryDecision::Delivered => panic!("not delivered"),
            }
        }
        assert_eq!(waits, [1, 2, 4, 8, 16]);
        assert_eq!(
            after_delivery(&LAMBDA, 3, true, 0),
            DeliveryDecision::Delivered
        );
    }
}
