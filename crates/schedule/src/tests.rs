use super::*;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn parse(s: &str) -> Expression {
    Expression::parse(s, Dialect::Scheduler).unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// The next `n` fires after `after`.
fn fires(expr: &str, tz: &str, after: &str, n: usize) -> Vec<String> {
    let e = parse(expr);
    let tz = time_zone(tz).unwrap();
    let mut t = utc(after);
    let mut out = Vec::new();
    for _ in 0..n {
        match e.next_after(t, t, tz) {
            Some(next) => {
                out.push(next.format("%Y-%m-%dT%H:%M:%SZ").to_string());
                t = next;
            }
            None => break,
        }
    }
    out
}

/// The cron examples of AWS's EventBridge and Scheduler guides, each with
/// the fires its description implies.
#[test]
fn documented_cron_examples() {
    let table: &[(&str, &str, &[&str])] = &[
        // Run at 10:00 am (UTC+0) every day.
        (
            "cron(0 10 * * ? *)",
            "2026-03-10T10:00:00Z",
            &["2026-03-11T10:00:00Z", "2026-03-12T10:00:00Z"],
        ),
        // Run at 12:15 pm (UTC+0) every day.
        (
            "cron(15 12 * * ? *)",
            "2026-03-10T12:14:59Z",
            &["2026-03-10T12:15:00Z", "2026-03-11T12:15:00Z"],
        ),
        // Run at 6:00 pm (UTC+0) every Monday through Friday (2026-03-13
        // is a Friday).
        (
            "cron(0 18 ? * MON-FRI *)",
            "2026-03-13T18:00:00Z",
            &["2026-03-16T18:00:00Z", "2026-03-17T18:00:00Z"],
        ),
        // Run at 8:00 am (UTC+0) every first day of the month.
        (
            "cron(0 8 1 * ? *)",
            "2026-01-15T00:00:00Z",
            &["2026-02-01T08:00:00Z", "2026-03-01T08:00:00Z"],
        ),
        // Run every 15 minutes.
        (
            "cron(0/15 * * * ? *)",
            "2026-03-10T10:07:00Z",
            &[
                "2026-03-10T10:15:00Z",
                "2026-03-10T10:30:00Z",
                "2026-03-10T10:45:00Z",
                "2026-03-10T11:00:00Z",
            ],
        ),
        // Run every 10 minutes Monday through Friday.
        (
            "cron(0/10 * ? * MON-FRI *)",
            "2026-03-13T23:55:00Z",
            &["2026-03-16T00:00:00Z", "2026-03-16T00:10:00Z"],
        ),
        // Run every 5 minutes Monday through Friday between 8:00 am and
        // 5:55 pm (UTC+0).
        (
            "cron(0/5 8-17 ? * MON-FRI *)",
            "2026-03-10T17:50:00Z",
            &["2026-03-10T17:55:00Z", "2026-03-11T08:00:00Z"],
        ),
        // Run every 30 minutes Monday through Friday between 10:00 pm on the
        // day before and 2:00 am (the two documented rules together are one
        // schedule; this is the second).
        (
            "cron(0/30 0-2 ? * TUE-SAT *)",
            "2026-03-14T02:30:00Z",
            &["2026-03-17T00:00:00Z", "2026-03-17T00:30:00Z"],
        ),
        // Run at 9:00 am on the first Monday of every month.
        (
            "cron(0 9 ? * 2#1 *)",
            "2026-03-01T00:00:00Z",
            &["2026-03-02T09:00:00Z", "2026-04-06T09:00:00Z"],
        ),
        // The last day of every month.
        (
            "cron(0 0 L * ? *)",
            "2028-01-31T00:00:00Z",
            &[
                "2028-02-29T00:00:00Z",
                "2028-03-31T00:00:00Z",
                "2028-04-30T00:00:00Z",
            ],
        ),
        // The last Friday of every month.
        (
            "cron(0 12 ? * 6L *)",
            "2026-01-01T00:00:00Z",
            &["2026-01-30T12:00:00Z", "2026-02-27T12:00:00Z"],
        ),
        // The weekday nearest the 15th: 2026-02-15 is a Sunday (Monday
        // 16th); 2026-08-15 is a Saturday (Friday 14th).
        (
            "cron(0 6 15W * ? *)",
            "2026-02-01T00:00:00Z",
            &["2026-02-16T06:00:00Z", "2026-03-16T06:00:00Z"],
        ),
        (
            "cron(0 6 15W * ? *)",
            "2026-08-01T00:00:00Z",
            &["2026-08-14T06:00:00Z"],
        ),
        // 1W on a Saturday stays in the month: Monday the 3rd (2026-08-01
        // is a Saturday).
        (
            "cron(0 6 1W * ? *)",
            "2026-07-31T00:00:00Z",
            &["2026-08-03T06:00:00Z"],
        ),
        // The last weekday: 2026-05-31 is a Sunday, so Friday the 29th.
        (
            "cron(0 6 LW * ? *)",
            "2026-05-01T00:00:00Z",
            &["2026-05-29T06:00:00Z", "2026-06-30T06:00:00Z"],
        ),
        // Lists, names and a bounded year range: nothing after 2027.
        (
            "cron(30 6,18 ? JAN,JUL SUN 2026-2027)",
            "2027-07-25T18:30:00Z",
            &[],
        ),
        (
            "cron(30 6,18 ? JAN,JUL SUN 2026-2027)",
            "2027-07-25T06:30:00Z",
            &["2027-07-25T18:30:00Z"],
        ),
        // L in day-of-week is Saturday.
        (
            "cron(0 0 ? * L *)",
            "2026-03-09T00:00:00Z",
            &["2026-03-14T00:00:00Z", "2026-03-21T00:00:00Z"],
        ),
        // A wrapping range of days (FRI-MON).
        (
            "cron(0 0 ? * FRI-MON *)",
            "2026-03-10T00:00:00Z",
            &[
                "2026-03-13T00:00:00Z",
                "2026-03-14T00:00:00Z",
                "2026-03-15T00:00:00Z",
                "2026-03-16T00:00:00Z",
                "2026-03-20T00:00:00Z",
            ],
        ),
        // February 29th only.
        (
            "cron(0 0 29 2 ? *)",
            "2026-01-01T00:00:00Z",
            &["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"],
        ),
    ];
    for (expr, after, want) in table {
        // One more than expected: an expression with nothing left gives
        // nothing.
        let n = if want.is_empty() { 1 } else { want.len() };
        assert_eq!(fires(expr, "UTC", after, n), *want, "{expr} after {after}");
    }
}

/// AWS's daylight-saving rules: a cron time the spring-forward gap skips
/// does not fire; a repeated one fires once; a rate is a fixed duration.
#[test]
fn daylight_saving_transitions() {
    // America/New_York springs forward at 2026-03-08 02:00 EST (07:00Z)
    // and falls back at 2026-11-01 02:00 EDT (06:00Z).
    let ny = "America/New_York";
    // 02:30 does not exist on 2026-03-08: skipped, not moved.
    assert_eq!(
        fires("cron(30 2 * * ? *)", ny, "2026-03-07T00:00:00Z", 3),
        [
            "2026-03-07T07:30:00Z", // 02:30 EST
            "2026-03-09T06:30:00Z", // 02:30 EDT, the 8th skipped
            "2026-03-10T06:30:00Z",
        ]
    );
    // 01:30 happens twice on 2026-11-01: it fires at the first only.
    assert_eq!(
        fires("cron(30 1 * * ? *)", ny, "2026-10-31T00:00:00Z", 3),
        [
            "2026-10-31T05:30:00Z", // 01:30 EDT
            "2026-11-01T05:30:00Z", // the first 01:30 (EDT)
            "2026-11-02T06:30:00Z", // 01:30 EST
        ]
    );
    // Every hour on the hour: 01:00 repeats and fires once; 02:00 EST is
    // the next.
    assert_eq!(
        fires("cron(0 * * * ? *)", ny, "2026-11-01T04:30:00Z", 3),
        [
            "2026-11-01T05:00:00Z", // 01:00 EDT
            "2026-11-01T07:00:00Z", // 02:00 EST
            "2026-11-01T08:00:00Z",
        ]
    );
    // Spring forward, every hour: 02:00 does not exist.
    assert_eq!(
        fires("cron(0 * * * ? *)", ny, "2026-03-08T05:30:00Z", 3),
        [
            "2026-03-08T06:00:00Z", // 01:00 EST
            "2026-03-08T07:00:00Z", // 03:00 EDT
            "2026-03-08T08:00:00Z",
        ]
    );
    // A schedule created during the repeat fires on the times ahead.
    assert_eq!(
        fires("cron(40 1 * * ? *)", ny, "2026-11-01T06:10:00Z", 1),
        ["2026-11-01T06:40:00Z"]
    );
    // Wall-clock time in the zone: 09:00 local, before and after the change.
    assert_eq!(
        fires(
            "cron(0 9 ? * MON *)",
            "Europe/Berlin",
            "2026-03-20T00:00:00Z",
            2
        ),
        ["2026-03-23T08:00:00Z", "2026-03-30T07:00:00Z"]
    );
    // A southern-hemisphere zone: Sydney leaves daylight time on 2026-04-05
    // at 03:00 AEDT (16:00Z the 4th); 02:30 repeats.
    assert_eq!(
        fires(
            "cron(30 2 * * ? *)",
            "Australia/Sydney",
            "2026-04-03T00:00:00Z",
            3
        ),
        [
            "2026-04-03T15:30:00Z", // the 4th, 02:30 AEDT
            "2026-04-04T15:30:00Z", // the 5th, the first 02:30 (AEDT)
            "2026-04-05T16:30:00Z", // the 6th, 02:30 AEST
        ]
    );
    // rate(1 day) is 24 hours, whatever the clock does: 09:00 EST becomes
    // 10:00 EDT.
    let e = parse("rate(1 day)");
    let tz = time_zone(ny).unwrap();
    let anchor = utc("2026-03-07T14:00:00Z");
    let next = e.next_after(anchor, anchor, tz).unwrap();
    assert_eq!(next, utc("2026-03-08T14:00:00Z"));
    assert_eq!(next.with_timezone(&tz).format("%H:%M").to_string(), "10:00");
}

#[test]
fn rates_count_from_their_anchor() {
    let e = parse("rate(5 minutes)");
    let tz = Tz::UTC;
    let anchor = utc("2026-03-10T10:02:00Z");
    // Before the anchor: the anchor itself.
    assert_eq!(
        e.next_after(utc("2026-03-10T09:00:00Z"), anchor, tz),
        Some(anchor)
    );
    assert_eq!(
        e.next_after(anchor, anchor, tz),
        Some(utc("2026-03-10T10:07:00Z"))
    );
    assert_eq!(
        e.next_after(utc("2026-03-10T10:31:30Z"), anchor, tz),
        Some(utc("2026-03-10T10:32:00Z"))
    );
    assert_eq!(
        parse("rate(2 hours)").next_after(anchor, anchor, tz),
        Some(utc("2026-03-10T12:02:00Z"))
    );
    // The Scheduler takes either number for the unit.
    assert_eq!(
        parse("rate(2 minute)"),
        Expression::Rate(Rate {
            value: 2,
            unit: RateUnit::Minute
        })
    );
}

#[test]
fn one_time_schedules_fire_once_at_local_time() {
    let e = parse("at(2026-07-01T09:30:00)");
    assert!(e.is_one_time());
    let tz = time_zone("Asia/Tokyo").unwrap();
    let before = utc("2026-06-30T00:00:00Z");
    let at = e.next_after(before, before, tz).unwrap();
    assert_eq!(at, utc("2026-07-01T00:30:00Z"));
    assert_eq!(e.next_after(at, before, tz), None);
    // In the spring-forward gap: the first instant after it.
    let gap = parse("at(2026-03-08T02:30:00)");
    let ny = time_zone("America/New_York").unwrap();
    assert_eq!(
        gap.next_after(before - Duration::days(200), before, ny),
        Some(utc("2026-03-08T07:00:00Z"))
    );
}

/// The expressions AWS refuses, as recorded against AWS (each answered
/// `ValidationException: Invalid Schedule Expression <expr>.`), and more.
#[test]
fn invalid_expressions() {
    for bad in [
        "cron(0 1 * * * *)",
        "cron(7 20 * * NOT *)",
        "cron(INVALID)",
        "cron(0 dummy ? * MON-FRI *)",
        "cron(71 8 1 * ? *)",
        "cron()",
        "rate(10 seconds)",
        "rate(10 years)",
        "rate()",
        "rate(10)",
        "rate(10 minutess)",
        "rate(foo minutes)",
        "rate(-10 minutes)",
        "rate( 10 minutes )",
        " rate(10 minutes)",
        "at(2021-12-31T23:59:59Z)",
        "at(2021-12-31)",
        "rate(0 minutes)",
        "cron(0 1 ? * ? *)",
        "cron(0 24 * * ? *)",
        "cron(0 1 32 * ? *)",
        "cron(0 1 ? 13 ? *)",
        "cron(0 1 ? * 8 *)",
        "cron(0 1 ? * 2#6 *)",
        "cron(0 1 * * ? 2200)",
        "cron(0 1 * * ? 1969)",
        "cron(0/0 1 * * ? *)",
        "cron(0 1 * * ?)",
        "cron(0 1 * * ? * *)",
        "every 5 minutes",
        "at(2026-7-1T09:30:00)",
    ] {
        assert!(
            Expression::parse(bad, Dialect::Scheduler).is_err(),
            "{bad:?} was accepted"
        );
    }
    // Rules: no at(), and the unit's number agrees with the value.
    for bad in [
        "at(2030-01-01T00:00:00)",
        "rate(1 minutes)",
        "rate(5 minute)",
    ] {
        assert!(Expression::parse(bad, Dialect::Rules).is_err(), "{bad}");
    }
    for good in ["rate(1 minute)", "rate(5 minutes)", "cron(0 12 * * ? *)"] {
        assert!(Expression::parse(good, Dialect::Rules).is_ok(), "{good}");
    }
    assert!(time_zone("Mars/Olympus").is_err());
    assert!(time_zone("UTC").is_ok());
    assert!(time_zone("America/Los_Angeles").is_ok());
}
