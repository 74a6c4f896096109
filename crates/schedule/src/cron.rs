//! AWS's six-field cron: `minutes hours day-of-month month day-of-week year`.
//!
//! | field        | values            | wildcards         |
//! |--------------|-------------------|-------------------|
//! | minutes      | 0-59              | `, - * /`         |
//! | hours        | 0-23              | `, - * /`         |
//! | day-of-month | 1-31              | `, - * ? / L W`   |
//! | month        | 1-12 or JAN-DEC   | `, - * /`         |
//! | day-of-week  | 1-7 or SUN-SAT    | `, - * ? L #`     |
//! | year         | 1970-2199         | `, - * /`         |
//!
//! One of day-of-month and day-of-week is `?`, never both, never neither.
//! Day-of-month takes `L` (the month's last day), `LW` (its last weekday)
//! and `nW` (the weekday nearest the nth, within the month); day-of-week
//! takes `L` (Saturday, the week's last day), `nL` (the month's last such
//! day) and `n#k` (the month's kth such day).

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone,
    Timelike, Utc, Weekday,
};
use chrono_tz::Tz;

const MIN_YEAR: i32 = 1970;
const MAX_YEAR: i32 = 2199;

/// A set of small numbers (up to 63).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bits(u64);

impl Bits {
    fn has(self, n: u32) -> bool {
        n < 64 && self.0 & (1 << n) != 0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum DayOfMonth {
    Any,
    Days(Bits),
    Last,
    LastWeekday,
    NearestWeekday(u32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum DayOfWeek {
    Any,
    /// 1 = Sunday ... 7 = Saturday.
    Days(Bits),
    /// The month's last such day.
    Last(u32),
    /// The month's kth such day.
    Nth(u32, u32),
}

/// A parsed cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: Bits,
    hours: Bits,
    dom: DayOfMonth,
    months: Bits,
    dow: DayOfWeek,
    /// Years from 1970 (bit n = 1970 + n), as two words.
    years: [u128; 2],
}

type Reason = &'static str;

fn number(s: &str, names: &[&str], offset: u32) -> Result<u32, Reason> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().map_err(|_| "a value is out of range");
    }
    names
        .iter()
        .position(|n| n.eq_ignore_ascii_case(s))
        .map(|i| i as u32 + offset)
        .ok_or("a field holds a value that is not a number or a name")
}

/// Expands one field's list of values, ranges and steps.
fn values(
    field: &str,
    lo: u32,
    hi: u32,
    names: &[&str],
    name_base: u32,
) -> Result<Vec<u32>, Reason> {
    let mut out = Vec::new();
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let step = number(s, &[], 0)?;
                if step == 0 {
                    return Err("a step is at least 1");
                }
                (r, Some(step))
            }
            None => (item, None),
        };
        let (start, end) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (number(a, names, name_base)?, number(b, names, name_base)?)
        } else {
            let v = number(range, names, name_base)?;
            // `a/step` runs from a to the field's end.
            (v, if step.is_some() { hi } else { v })
        };
        if start < lo || start > hi || end < lo || end > hi {
            return Err("a value is out of range");
        }
        let step = step.unwrap_or(1);
        // A range may wrap (FRI-MON, 22-2).
        let span = if end >= start {
            end - start
        } else {
            hi - start + 1 + end - lo
        };
        let width = hi - lo + 1;
        let mut k = 0;
        while k <= span {
            out.push(lo + (start - lo + k) % width);
            k += step;
        }
    }
    Ok(out)
}

fn bits(field: &str, lo: u32, hi: u32, names: &[&str], name_base: u32) -> Result<Bits, Reason> {
    let mut b = 0u64;
    for v in values(field, lo, hi, names, name_base)? {
        b |= 1 << v;
    }
    Ok(Bits(b))
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

fn day_of_month(f: &str) -> Result<DayOfMonth, Reason> {
    Ok(match f {
        "?" => DayOfMonth::Any,
        "L" => DayOfMonth::Last,
        "LW" => DayOfMonth::LastWeekday,
        _ => {
            if let Some(n) = f.strip_suffix('W') {
                let n = number(n, &[], 0)?;
                if !(1..=31).contains(&n) {
                    return Err("a value is out of range");
                }
                DayOfMonth::NearestWeekday(n)
            } else {
                DayOfMonth::Days(bits(f, 1, 31, &[], 0)?)
            }
        }
    })
}

fn day_of_week(f: &str) -> Result<DayOfWeek, Reason> {
    Ok(match f {
        "?" => DayOfWeek::Any,
        "L" => DayOfWeek::Days(Bits(1 << 7)),
        _ => {
            if let Some(d) = f.strip_suffix('L') {
                let d = number(d, &DAYS, 1)?;
                if !(1..=7).contains(&d) {
                    return Err("a value is out of range");
                }
                DayOfWeek::Last(d)
            } else if let Some((d, k)) = f.split_once('#') {
                let d = number(d, &DAYS, 1)?;
                let k = number(k, &[], 0)?;
                if !(1..=7).contains(&d) || !(1..=5).contains(&k) {
                    return Err("a value is out of range");
                }
                DayOfWeek::Nth(d, k)
            } else {
                DayOfWeek::Days(bits(f, 1, 7, &DAYS, 1)?)
            }
        }
    })
}

/// 1 = Sunday ... 7 = Saturday.
fn dow_number(d: Weekday) -> u32 {
    d.num_days_from_sunday() + 1
}

fn days_in_month(year: i32, month: u32) -> u32 {
    let next = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)
    };
    next.and_then(|n| n.pred_opt())
        .map(|d| d.day())
        .unwrap_or(28)
}

fn is_weekday(date: NaiveDate) -> bool {
    !matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

impl Cron {
    /// Parses the text between `cron(` and `)`.
    pub fn parse(inner: &str) -> Result<Self, Reason> {
        let fields: Vec<&str> = inner.split(' ').collect();
        let [mi, h, dom, mo, dow, y] = fields[..] else {
            return Err("cron() takes six fields separated by spaces");
        };
        let dom = day_of_month(dom)?;
        let dow = day_of_week(dow)?;
        // `*` in one day field reads as "any" once the other is `?`.
        let dom_any = matches!(dom, DayOfMonth::Any);
        let dow_any = matches!(dow, DayOfWeek::Any);
        if dom_any == dow_any {
            return Err("one of day-of-month and day-of-week must be ?, not both");
        }
        let mut years = [0u128; 2];
        for v in values(y, MIN_YEAR as u32, MAX_YEAR as u32, &[], 0)? {
            let i = v - MIN_YEAR as u32;
            years[(i / 128) as usize] |= 1 << (i % 128);
        }
        Ok(Self {
            minutes: bits(mi, 0, 59, &[], 0)?,
            hours: bits(h, 0, 23, &[], 0)?,
            dom,
            months: bits(mo, 1, 12, &MONTHS, 1)?,
            dow,
            years,
        })
    }

    fn year_ok(&self, y: i32) -> bool {
        if !(MIN_YEAR..=MAX_YEAR).contains(&y) {
            return false;
        }
        let i = (y - MIN_YEAR) as u32;
        self.years[(i / 128) as usize] & (1 << (i % 128)) != 0
    }

    fn day_ok(&self, date: NaiveDate) -> bool {
        let last = days_in_month(date.year(), date.month());
        let dom_ok = match &self.dom {
            DayOfMonth::Any => true,
            DayOfMonth::Days(b) => b.has(date.day()),
            DayOfMonth::Last => date.day() == last,
            DayOfMonth::LastWeekday => {
                let mut d = date.with_day(last).unwrap_or(date);
                while !is_weekday(d) {
                    d = d.pred_opt().unwrap_or(d);
                }
                d == date
            }
            DayOfMonth::NearestWeekday(n) => {
                let n = (*n).min(last);
                let Some(target) = date.with_day(n) else {
                    return false;
                };
                let nearest = match target.weekday() {
                    // Saturday: the Friday before, unless that leaves the
                    // month (then the Monday after).
                    Weekday::Sat if n > 1 => target - Duration::days(1),
                    Weekday::Sat => target + Duration::days(2),
                    // Sunday: the Monday after, unless that leaves the month.
                    Weekday::Sun if n < last => target + Duration::days(1),
                    Weekday::Sun => target - Duration::days(2),
                    _ => target,
                };
                nearest == date
            }
        };
        let dow = dow_number(date.weekday());
        let dow_ok = match &self.dow {
            DayOfWeek::Any => true,
            DayOfWeek::Days(b) => b.has(dow),
            DayOfWeek::Last(d) => *d == dow && date.day() + 7 > last,
            DayOfWeek::Nth(d, k) => *d == dow && (date.day() - 1) / 7 + 1 == *k,
        };
        dom_ok && dow_ok
    }

    /// The first wall-clock minute at or after `from` that the expression
    /// names, or `None` past the last year.
    fn next_local(&self, from: NaiveDateTime) -> Option<NaiveDateTime> {
        let mut t = from.with_second(0)?.with_nanosecond(0)?;
        loop {
            let date = t.date();
            if date.year() > MAX_YEAR {
                return None;
            }
            if !self.year_ok(date.year()) {
                t = NaiveDate::from_ymd_opt(date.year() + 1, 1, 1)?.and_time(NaiveTime::MIN);
                continue;
            }
            if !self.months.has(date.month()) {
                let (y, m) = if date.month() == 12 {
                    (date.year() + 1, 1)
                } else {
                    (date.year(), date.month() + 1)
                };
                t = NaiveDate::from_ymd_opt(y, m, 1)?.and_time(NaiveTime::MIN);
                continue;
            }
            if !self.day_ok(date) {
                t = date.succ_opt()?.and_time(NaiveTime::MIN);
                continue;
            }
            if !self.hours.has(t.hour()) {
                t = date.and_hms_opt(t.hour(), 0, 0)? + Duration::hours(1);
                continue;
            }
            if !self.minutes.has(t.minute()) {
                t += Duration::minutes(1);
                continue;
            }
            return Some(t);
        }
    }

    /// The first fire strictly after `after`, on `tz`'s wall clock: a
    /// skipped wall-clock time does not fire, a repeated one fires once.
    pub fn next_after(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&tz).naive_local();
        let mut from = local.with_second(0)?.with_nanosecond(0)? + Duration::minutes(1);
        loop {
            let candidate = self.next_local(from)?;
            match tz.from_local_datetime(&candidate) {
                LocalResult::Single(t) if t.with_timezone(&Utc) > after => {
                    return Some(t.with_timezone(&Utc));
                }
                LocalResult::Ambiguous(first, second) => {
                    if first.with_timezone(&Utc) > after {
                        return Some(first.with_timezone(&Utc));
                    }
                    // The first occurrence has passed, so `after` lies in the
                    // repeat. A schedule evaluated without interruption never
                    // gets here (after its fire at a first occurrence the
                    // wall clock is read on, past the overlap); one created
                    // during the repeat fires on the times still ahead.
                    if second.with_timezone(&Utc) > after {
                        return Some(second.with_timezone(&Utc));
                    }
                }
                // A wall-clock time the zone skips, or one already past.
                _ => {}
            }
            from = candidate + Duration::minutes(1);
        }
    }
}
