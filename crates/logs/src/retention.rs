//! Bounded log groups: the store counts each group's bytes as lines arrive
//! and, once a group holds more than its bound, removes its oldest events
//! (and streams left without events) down to three quarters of the bound.
//!
//! Bytes are counted as CloudWatch Logs counts a batch: each message's UTF-8
//! bytes plus 26 per event, so that a flood of empty lines costs too.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension as _, Transaction, params};

use crate::{LogError, LogEvent, err};

/// What one event costs beyond its message.
pub const EVENT_OVERHEAD: u64 = 26;

/// How much one log group may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Bytes of one log group (a function's, unless it names a shared one);
    /// older events are removed beyond it.
    pub group_bytes: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            group_bytes: 64 << 20,
        }
    }
}

/// What an event counts for.
pub fn event_bytes(message: &str) -> u64 {
    message.len() as u64 + EVENT_OVERHEAD
}

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS group_bytes (
    account TEXT NOT NULL,
    region  TEXT NOT NULL,
    grp     TEXT NOT NULL,
    bytes   INTEGER NOT NULL,
    PRIMARY KEY (account, region, grp)
) WITHOUT ROWID;
";

/// Creates the byte counts; a store written before they existed is counted once.
pub(crate) fn prepare(conn: &Connection) -> Result<(), LogError> {
    conn.execute_batch(SCHEMA)
        .map_err(err("retention schema"))?;
    let counted: Option<i64> = conn
        .query_row("SELECT 1 FROM group_bytes LIMIT 1", [], |r| r.get(0))
        .optional()
        .map_err(err("read group sizes"))?;
    if counted.is_none() {
        conn.execute(
            "INSERT INTO group_bytes (account, region, grp, bytes)
             SELECT account, region, grp, SUM(octet_length(message) + ?1) FROM events
             GROUP BY account, region, grp",
            params![EVENT_OVERHEAD as i64],
        )
        .map_err(err("count group sizes"))?;
    }
    Ok(())
}

/// (account, region, group) of an event.
type GroupKey<'a> = (&'a str, &'a str, &'a str);

/// Adds a batch's bytes to its groups' counts (inside the batch's
/// transaction); returns the groups that went over `limit`, with their size.
pub(crate) fn count<'a>(
    tx: &Transaction<'_>,
    batch: &'a [LogEvent],
    limit: u64,
) -> Result<Vec<(GroupKey<'a>, u64)>, LogError> {
    let mut added: HashMap<GroupKey<'a>, u64> = HashMap::new();
    for e in batch {
        *added
            .entry((e.scope.account.as_str(), e.scope.region.as_str(), &*e.group))
            .or_default() += event_bytes(&e.message);
    }
    let mut stmt = tx
        .prepare_cached(
            "INSERT INTO group_bytes (account, region, grp, bytes) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT DO UPDATE SET bytes = bytes + excluded.bytes
             RETURNING bytes",
        )
        .map_err(err("prepare group size"))?;
    let mut over = Vec::new();
    for (key, n) in added {
        let total: i64 = stmt
            .query_row(params![key.0, key.1, key.2, n as i64], |r| r.get(0))
            .map_err(err("count group size"))?;
        if total as u64 > limit {
            over.push((key, total as u64));
        }
    }
    Ok(over)
}

/// Removes a group's oldest events until it holds at most `target` bytes,
/// and the streams that no longer have events, in the transaction that
/// added the lines (so that no reader ever sees the group over its bound).
/// Returns the bytes removed.
pub(crate) fn prune(
    tx: &Transaction<'_>,
    (account, region, group): GroupKey<'_>,
    size: u64,
    target: u64,
) -> Result<u64, LogError> {
    let excess = size.saturating_sub(target);
    if excess == 0 {
        return Ok(0);
    }
    let (mut removed, mut cutoff) = (0u64, None);
    {
        let mut stmt = tx
            .prepare_cached(
                "SELECT id, octet_length(message) FROM events
                 WHERE account = ?1 AND region = ?2 AND grp = ?3 ORDER BY id",
            )
            .map_err(err("prepare prune"))?;
        let mut rows = stmt
            .query(params![account, region, group])
            .map_err(err("oldest events"))?;
        while let Some(row) = rows.next().map_err(err("oldest event"))? {
            let id: i64 = row.get(0).map_err(err("event id"))?;
            let len: i64 = row.get(1).map_err(err("event size"))?;
            removed += len.max(0) as u64 + EVENT_OVERHEAD;
            cutoff = Some(id);
            if removed >= excess {
                break;
            }
        }
    }
    if let Some(cutoff) = cutoff {
        tx.execute(
            "DELETE FROM events WHERE account = ?1 AND region = ?2 AND grp = ?3 AND id <= ?4",
            params![account, region, group, cutoff],
        )
        .map_err(err("remove old events"))?;
        tx.execute(
            "UPDATE group_bytes SET bytes = MAX(bytes - ?4, 0)
             WHERE account = ?1 AND region = ?2 AND grp = ?3",
            params![account, region, group, removed as i64],
        )
        .map_err(err("update group size"))?;
        // Events are ingested in id order: a stream whose last line came
        // before the oldest remaining event has none left. (One in the same
        // millisecond stays listed until a later pass.)
        tx.execute(
            "DELETE FROM streams WHERE account = ?1 AND region = ?2 AND grp = ?3
               AND last_ingested < COALESCE((SELECT ingested FROM events
                   WHERE account = ?1 AND region = ?2 AND grp = ?3 ORDER BY id LIMIT 1), 9223372036854775807)",
            params![account, region, group],
        )
        .map_err(err("remove empty streams"))?;
    }
    Ok(removed)
}

/// Bytes a group holds, as counted.
pub(crate) fn group_size(
    conn: &Connection,
    account: &str,
    region: &str,
    group: &str,
) -> Result<u64, LogError> {
    let n: Option<i64> = conn
        .query_row(
            "SELECT bytes FROM group_bytes WHERE account = ?1 AND region = ?2 AND grp = ?3",
            params![account, region, group],
            |r| r.get(0),
        )
        .optional()
        .map_err(err("read group size"))?;
    Ok(n.unwrap_or(0).max(0) as u64)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use model::Scope;

    use crate::{LogEvent, open_store_with};

    use super::*;

    fn scope(a: &str) -> Arc<Scope> {
        Arc::new(Scope::new(
            model::AccountId::parse(a).unwrap(),
            model::Region::parse("us-east-1").unwrap(),
        ))
    }

    fn count_rows(path: &std::path::Path, sql: &str) -> i64 {
        Connection::open(path)
            .unwrap()
            .query_row(sql, [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn a_group_keeps_its_newest_events_within_its_bound() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs.db");
        let limit = 100 * (100 + EVENT_OVERHEAD);
        let (sink, store) = open_store_with(
            &path,
            Retention { group_bytes: limit },
            disk::DiskGuard::unreserved(dir.path()),
        )
        .unwrap();
        let (a, b) = (scope("111111111111"), scope("222222222222"));
        let line = |i: usize| format!("{i:05}{}", "x".repeat(95));
        // 1,000 lines of 100 bytes over three streams; a neighbour's group
        // is untouched.
        for i in 0..1000 {
            if i == 500 {
                // The first stream's lines are stored (and ingested) before
                // the others: streams are told empty by ingestion time.
                let deadline = std::time::Instant::now() + Duration::from_secs(20);
                while count_rows(
                    &path,
                    "SELECT COUNT(*) FROM events WHERE message LIKE '00499%'",
                ) == 0
                {
                    assert!(std::time::Instant::now() < deadline, "lines never arrived");
                    std::thread::sleep(Duration::from_millis(5));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            let stream = match i {
                0..500 => "first",
                500..990 => "old",
                _ => "new",
            };
            sink.push(LogEvent {
                scope: a.clone(),
                group: "/aws/lambda/noisy".into(),
                stream: stream.into(),
                timestamp_ms: i as i64,
                message: line(i),
            });
        }
        sink.push(LogEvent {
            scope: b.clone(),
            group: "/aws/lambda/noisy".into(),
            stream: "s".into(),
            timestamp_ms: 1,
            message: "neighbour".into(),
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let last = count_rows(
                &path,
                "SELECT COUNT(*) FROM events WHERE message LIKE '00999%'",
            );
            let neighbour = count_rows(
                &path,
                "SELECT COUNT(*) FROM events WHERE message = 'neighbour'",
            );
            if last == 1 && neighbour == 1 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "lines never arrived");
            std::thread::sleep(Duration::from_millis(10));
        }
        let held = store.group_bytes(&a, "/aws/lambda/noisy").unwrap();
        assert!(held <= limit, "{held} > {limit}");
        let kept = count_rows(
            &path,
            "SELECT COUNT(*) FROM events WHERE account = '111111111111'",
        );
        assert!((70..=100).contains(&kept), "kept {kept} of 1,000 lines");
        let oldest: String = Connection::open(&path)
            .unwrap()
            .query_row(
                "SELECT message FROM events WHERE account = '111111111111' ORDER BY id LIMIT 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(
            oldest.as_str() > "00899",
            "the newest lines stay: oldest is {oldest}"
        );
        let bytes_in_rows = count_rows(
            &path,
            "SELECT SUM(octet_length(message) + 26) FROM events WHERE account = '111111111111'",
        ) as u64;
        assert_eq!(bytes_in_rows, held, "the count matches what is stored");
        assert_eq!(
            store.group_bytes(&b, "/aws/lambda/noisy").unwrap(),
            9 + EVENT_OVERHEAD
        );
        // The stream whose lines all went is gone; the others stay.
        let streams = store.streams(&a, "/aws/lambda/noisy", None).unwrap();
        assert_eq!(
            streams.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["new", "old"]
        );
    }

    #[test]
    fn a_store_from_before_the_counts_is_counted_once_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(crate::SCHEMA).unwrap();
            conn.execute(
                "INSERT INTO events (account, region, grp, stream, ts, ingested, message)
                 VALUES ('111111111111', 'us-east-1', 'g', 's', 1, 1, 'héllo')",
                [],
            )
            .unwrap();
        }
        let (_sink, store) = open_store_with(
            &path,
            Retention::default(),
            disk::DiskGuard::unreserved(dir.path()),
        )
        .unwrap();
        assert_eq!(
            store.group_bytes(&scope("111111111111"), "g").unwrap(),
            6 + EVENT_OVERHEAD,
            "UTF-8 bytes, not characters"
        );
    }
}
