//! When a schedule is due, as pure functions.
//!
//! A schedule's expression is evaluated on *schedule time*; the server fires
//! on *real time*. They are the same clock unless the operator compresses
//! time for tests (`time_scale` < 1): then a span of schedule time takes
//! `time_scale` times as long in real time, counted from the last fire (or
//! the schedule's creation). A [`Plan`] holds both ends of that mapping for
//! the next fire, and the moment it is due (its real time plus the flexible
//! window's offset).

use chrono::{DateTime, Utc};
use schedule::Expression;

use crate::Spec;

/// The next fire of a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// The instant the expression names (schedule time), in ms.
    pub expr_ms: i64,
    /// The real time that instant maps to, in ms.
    pub real_ms: i64,
    /// When to fire: `real_ms` plus the flexible window's offset.
    pub due_ms: i64,
}

fn instant(ms: i64) -> Option<DateTime<Utc>> {
    DateTime::<Utc>::from_timestamp_millis(ms)
}

/// The expression's next instant strictly after `after_ms` within the
/// schedule's StartDate and EndDate (which a one-time schedule ignores).
fn next_instant(spec: &Spec, expr: &Expression, after_ms: i64) -> Option<i64> {
    let tz = schedule::time_zone(&spec.timezone).ok()?;
    let one_time = expr.is_one_time();
    let mut after = after_ms;
    if !one_time && let Some(start) = spec.start_date_ms {
        // The first fire may be at StartDate itself.
        after = after.max(start - 1);
    }
    let anchor = instant(spec.anchor_ms())?;
    let next = expr
        .next_after(instant(after)?, anchor, tz)?
        .timestamp_millis();
    if !one_time && spec.end_date_ms.is_some_and(|end| next > end) {
        return None;
    }
    Some(next)
}

/// The flexible window's offset: a random moment within it, in real time.
fn jitter_ms(spec: &Spec, scale: f64, random: f64) -> i64 {
    match spec.flexible_window_min {
        Some(w) => (random * f64::from(w) * 60_000.0 * scale) as i64,
        None => 0,
    }
}

/// The first fire of a schedule created (or changed) at `now_ms`: a rate
/// without a StartDate fires at once; anything else at its first instant
/// from now on. `random` is in [0, 1) and places the fire in its window.
pub fn first(spec: &Spec, now_ms: i64, scale: f64, random: f64) -> Option<Plan> {
    let expr = spec.expression().ok()?;
    let expr_ms = next_instant(spec, &expr, now_ms - 1)?;
    let real_ms = now_ms + ((expr_ms - now_ms) as f64 * scale) as i64;
    Some(Plan {
        expr_ms,
        real_ms,
        due_ms: real_ms + jitter_ms(spec, scale, random),
    })
}

/// The fire after `fired`, handled at `now_ms`: fires missed meanwhile (a
/// server that was down) are not made up one by one; the next is the
/// first instant still ahead.
pub fn after_fire(spec: &Spec, fired: Plan, now_ms: i64, scale: f64, random: f64) -> Option<Plan> {
    let expr = spec.expression().ok()?;
    if expr.is_one_time() {
        return None;
    }
    // Schedule time now, as the last fire's mapping reads real time.
    let expr_now = fired.expr_ms + ((now_ms - fired.real_ms) as f64 / scale) as i64;
    let expr_ms = next_instant(spec, &expr, fired.expr_ms.max(expr_now))?;
    let real_ms = fired.real_ms + ((expr_ms - fired.expr_ms) as f64 * scale) as i64;
    Some(Plan {
        expr_ms,
        real_ms,
        due_ms: real_ms + jitter_ms(spec, scale, random),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Spec, TargetSpec};

    fn spec(expr: &str) -> Spec {
        Spec {
            expression: expr.into(),
            timezone: "UTC".into(),
            start_date_ms: None,
            end_date_ms: None,
            description: None,
            enabled: true,
            kms_key_arn: None,
            target: TargetSpec {
                arn: "arn:aws:lambda:us-east-1:123456789012:function:f".into(),
                role_arn: "arn:aws:iam::123456789012:role/r".into(),
                input: None,
                dead_letter_arn: None,
                max_event_age_s: 86_400,
                max_retries: 185,
            },
            flexible_window_min: None,
            delete_after_completion: false,
            created_ms: 0,
            modified_ms: T0,
        }
    }

    const T0: i64 = 1_780_000_000_000; // 2026-05-28T20:26:40Z
    const MIN: i64 = 60_000;

    #[test]
    fn a_rate_without_start_fires_at_once_then_every_interval() {
        let s = spec("rate(5 minutes)");
        let p = first(&s, T0, 1.0, 0.0).unwrap();
        assert_eq!((p.expr_ms, p.real_ms, p.due_ms), (T0, T0, T0));
        let p2 = after_fire(&s, p, T0 + 10, 1.0, 0.0).unwrap();
        assert_eq!(p2.expr_ms, T0 + 5 * MIN);
        assert_eq!(p2.real_ms, T0 + 5 * MIN);
    }

    #[test]
    fn time_scale_compresses_the_wait_not_the_expression() {
        let s = spec("rate(1 minute)");
        let p = first(&s, T0, 0.01, 0.0).unwrap();
        let p2 = after_fire(&s, p, T0 + 5, 0.01, 0.0).unwrap();
        // One minute of schedule time is 600 ms of real time.
        assert_eq!(p2.expr_ms, T0 + MIN);
        assert_eq!(p2.real_ms, T0 + 600);
        let p3 = after_fire(&s, p2, T0 + 605, 0.01, 0.0).unwrap();
        assert_eq!((p3.expr_ms, p3.real_ms), (T0 + 2 * MIN, T0 + 1200));
        // A one-time schedule two minutes ahead fires 1.2 s from now.
        let at = spec("at(2026-05-28T20:28:40)");
        let p = first(&at, T0, 0.01, 0.0).unwrap();
        assert_eq!(p.real_ms, T0 + 1200);
        assert_eq!(after_fire(&at, p, T0 + 1300, 0.01, 0.0), None);
    }

    #[test]
    fn missed_fires_collapse_into_one() {
        let s = spec("rate(1 minute)");
        let p = first(&s, T0, 1.0, 0.0).unwrap();
        // Handled ten and a half minutes late (the server was down): the
        // next is the first instant still ahead, not ten catch-up fires.
        let p2 = after_fire(&s, p, T0 + 10 * MIN + MIN / 2, 1.0, 0.0).unwrap();
        assert_eq!(p2.expr_ms, T0 + 11 * MIN);
    }

    #[test]
    fn start_and_end_dates_bound_recurring_schedules() {
        let mut s = spec("rate(10 minutes)");
        s.start_date_ms = Some(T0 + 30 * MIN);
        s.end_date_ms = Some(T0 + 45 * MIN);
        let p = first(&s, T0, 1.0, 0.0).unwrap();
        assert_eq!(p.expr_ms, T0 + 30 * MIN);
        let p2 = after_fire(&s, p, p.due_ms, 1.0, 0.0).unwrap();
        assert_eq!(p2.expr_ms, T0 + 40 * MIN);
        assert_eq!(after_fire(&s, p2, p2.due_ms, 1.0, 0.0), None);
        // A past one-time schedule never fires.
        assert_eq!(first(&spec("at(2020-01-01T00:00:00)"), T0, 1.0, 0.0), None);
    }

    #[test]
    fn the_flexible_window_delays_within_its_width() {
        let mut s = spec("cron(0 * * * ? *)");
        s.flexible_window_min = Some(15);
        let p = first(&s, T0, 1.0, 0.5).unwrap();
        assert_eq!(p.due_ms - p.real_ms, 450_000);
        let p = first(&s, T0, 0.01, 0.999).unwrap();
        assert!(p.due_ms - p.real_ms < 9_000);
    }
}
