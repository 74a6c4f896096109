//! Schedule expressions as EventBridge Scheduler and EventBridge rules read
//! them, and when they fire.
//!
//! [`Expression::parse`] reads `rate(value unit)`, `cron(minutes hours
//! day-of-month month day-of-week year)` (AWS's six fields with `?`, `L`,
//! `W` and `#`) and the Scheduler's one-time `at(yyyy-mm-ddThh:mm:ss)`.
//! [`Expression::next_after`] computes the next fire time strictly after an
//! instant, in the expression's time zone, as AWS documents it:
//!
//! - a cron expression is evaluated on the zone's wall clock; a wall-clock
//!   time the zone skips (the spring-forward gap) does not fire, and a
//!   wall-clock time the zone repeats (the fall-back overlap) fires once,
//!   at its first occurrence;
//! - a rate is a fixed duration (a day is 24 hours, whatever the zone's
//!   clock does), counted from its anchor (the schedule's start);
//! - `at()` names a wall-clock time in the zone; in a gap it is the first
//!   instant after the gap.
//!
//! Pure computation: no clock, no I/O.

use chrono::{DateTime, Duration, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

mod cron;

pub use cron::Cron;

/// Which service reads the expression: their rules differ slightly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// EventBridge Scheduler: `rate`, `cron`, `at`; the rate's unit may be
    /// singular or plural whatever the value.
    Scheduler,
    /// EventBridge rules: `rate` and `cron` only (always UTC); a rate of 1
    /// takes the singular unit, any other value the plural.
    Rules,
}

/// An expression that does not parse, or names a value out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExprError {
    #[error("invalid schedule expression {expression:?}: {reason}")]
    Invalid {
        expression: String,
        reason: &'static str,
    },
    #[error("unknown time zone {0:?}")]
    UnknownTimeZone(String),
}

/// The unit of a `rate()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateUnit {
    Minute,
    Hour,
    Day,
}

/// `rate(value unit)`: every `value` units, counted from an anchor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub value: u32,
    pub unit: RateUnit,
}

impl Rate {
    /// The fixed interval between two fires.
    pub fn interval(&self) -> Duration {
        let v = i64::from(self.value);
        match self.unit {
            RateUnit::Minute => Duration::minutes(v),
            RateUnit::Hour => Duration::hours(v),
            RateUnit::Day => Duration::days(v),
        }
    }
}

/// A parsed schedule expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expression {
    Rate(Rate),
    Cron(Box<Cron>),
    /// A one-time schedule: a wall-clock time in the schedule's zone.
    At(NaiveDateTime),
}

/// Reads a time zone name as AWS accepts it (IANA names, and `UTC`).
pub fn time_zone(name: &str) -> Result<Tz, ExprError> {
    name.parse::<Tz>()
        .map_err(|_| ExprError::UnknownTimeZone(name.to_owned()))
}

fn invalid(expression: &str, reason: &'static str) -> ExprError {
    ExprError::Invalid {
        expression: expression.to_owned(),
        reason,
    }
}

impl Expression {
    /// Parses `text` exactly (no surrounding spaces, as AWS requires).
    pub fn parse(text: &str, dialect: Dialect) -> Result<Self, ExprError> {
        if let Some(inner) = text.strip_prefix("rate(").and_then(|r| r.strip_suffix(')')) {
            return parse_rate(text, inner, dialect).map(Self::Rate);
        }
        if let Some(inner) = text.strip_prefix("cron(").and_then(|r| r.strip_suffix(')')) {
            return Cron::parse(inner)
                .map(|c| Self::Cron(Box::new(c)))
                .map_err(|reason| invalid(text, reason));
        }
        if dialect == Dialect::Scheduler
            && let Some(inner) = text.strip_prefix("at(").and_then(|r| r.strip_suffix(')'))
        {
            return NaiveDateTime::parse_from_str(inner, "%Y-%m-%dT%H:%M:%S")
                .ok()
                // chrono accepts a shorter field; AWS takes exactly this form.
                .filter(|_| inner.len() == 19)
                .map(Self::At)
                .ok_or_else(|| invalid(text, "at() takes yyyy-mm-ddThh:mm:ss"));
        }
        Err(invalid(text, "expected rate(...), cron(...) or at(...)"))
    }

    /// Whether the expression fires once (`at()`).
    pub fn is_one_time(&self) -> bool {
        matches!(self, Self::At(_))
    }

    /// The first fire strictly after `after`, evaluated in `tz`; a rate
    /// counts from `anchor` (its first fire is at `anchor`). `None` when the
    /// expression never fires again.
    pub fn next_after(
        &self,
        after: DateTime<Utc>,
        anchor: DateTime<Utc>,
        tz: Tz,
    ) -> Option<DateTime<Utc>> {
        match self {
            Self::Rate(rate) => {
                let step = rate.interval().num_milliseconds();
                let from = anchor.timestamp_millis();
                let t = after.timestamp_millis();
                if t < from {
                    return Some(anchor);
                }
                let k = (t - from) / step + 1;
                DateTime::<Utc>::from_timestamp_millis(from.checked_add(k.checked_mul(step)?)?)
            }
            Self::Cron(cron) => cron.next_after(after, tz),
            Self::At(local) => {
                let at = local_instant(*local, tz)?;
                (at > after).then_some(at)
            }
        }
    }
}

/// The instant a wall-clock time names in `tz`: the first of two in an
/// overlap, the first instant after a gap.
pub fn local_instant(local: NaiveDateTime, tz: Tz) -> Option<DateTime<Utc>> {
    use chrono::LocalResult;
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(a, _) => Some(a.with_timezone(&Utc)),
        LocalResult::None => {
            // Gaps last at most a few hours: the first wall-clock minute
            // after it that exists.
            let minute = local.with_second(0)?.with_nanosecond(0)?;
            (1..=24 * 60).find_map(|m| {
                match tz.from_local_datetime(&(minute + Duration::minutes(m))) {
                    LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => {
                        Some(t.with_timezone(&Utc))
                    }
                    LocalResult::None => None,
                }
            })
        }
    }
}

fn parse_rate(text: &str, inner: &str, dialect: Dialect) -> Result<Rate, ExprError> {
    let mut parts = inner.split(' ');
    let (Some(value), Some(unit), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(invalid(text, "rate() takes a value and a unit"));
    };
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(text, "the rate's value is a positive whole number"));
    }
    let value: u32 = value
        .parse()
        .map_err(|_| invalid(text, "the rate's value is too large"))?;
    if value == 0 {
        return Err(invalid(text, "the rate's value is a positive whole number"));
    }
    let (unit, plural) = match unit {
        "minute" => (RateUnit::Minute, false),
        "minutes" => (RateUnit::Minute, true),
        "hour" => (RateUnit::Hour, false),
        "hours" => (RateUnit::Hour, true),
        "day" => (RateUnit::Day, false),
        "days" => (RateUnit::Day, true),
        _ => {
            return Err(invalid(
                text,
                "the rate's unit is minute(s), hour(s) or day(s)",
            ));
        }
    };
    if dialect == Dialect::Rules && plural != (value != 1) {
        return Err(invalid(
            text,
            "a rate of 1 takes a singular unit, any other value a plural one",
        ));
    }
    Ok(Rate { value, unit })
}

#[cfg(test)]
mod tests;
