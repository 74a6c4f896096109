//! Timestamps as the Lambda API writes them.

use time::OffsetDateTime;
use time::macros::format_description;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// `LastModified` as Lambda formats it: `2024-05-21T14:35:49.136+0000`.
pub fn last_modified(epoch_ms: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(epoch_ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let fmt = format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]+0000"
    );
    t.format(&fmt).unwrap_or_default()
}

/// `2019-12-31T20:28:49+0000`: whole seconds, as provisioned concurrency
/// configurations report `LastModified`.
pub fn seconds_plus0000(epoch_ms: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(epoch_ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let fmt = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]+0000");
    t.format(&fmt).unwrap_or_default()
}

/// ISO-8601 with milliseconds and `Z`, as destination records and log APIs use.
pub fn iso_millis_z(epoch_ms: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(epoch_ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    t.format(&fmt).unwrap_or_default()
}

/// ISO-8601 with microseconds and `Z`, as function URL configurations
/// report `CreationTime` (`2021-12-01T22:44:04.529000Z`).
pub fn iso_micros_z(epoch_ms: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(epoch_ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");
    t.format(&fmt).unwrap_or_default()
}

/// The common log format time of API Gateway's `requestContext.time`:
/// `12/Mar/2020:19:03:58 +0000`.
pub fn clf(epoch_ms: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(epoch_ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let fmt = format_description!("[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000");
    t.format(&fmt).unwrap_or_default()
}

/// `YYYY/MM/DD`, the date prefix of a log stream name.
pub fn log_stream_date(epoch_ms: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(epoch_ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let fmt = format_description!("[year]/[month]/[day]");
    t.format(&fmt).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        // 2024-05-21T14:35:49.136Z
        let ms = 1_716_302_149_136;
        assert_eq!(last_modified(ms), "2024-05-21T14:35:49.136+0000");
        assert_eq!(iso_millis_z(ms), "2024-05-21T14:35:49.136Z");
        assert_eq!(log_stream_date(ms), "2024/05/21");
    }
}
