//! Function logs, kept per log group (`/aws/lambda/<name>`) and stream.
//!
//! The invoke path hands lines to a [`LogSink`] without waiting: a writer
//! thread batches them into SQLite (`logs.db`, WAL) a few milliseconds later.
//! [`LogStore`] answers the queries behind `FilterLogEvents`, `GetLogEvents`,
//! `DescribeLogStreams` and `DescribeLogGroups`.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use model::Scope;
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension as _, params};

mod query;

pub use query::{
    FilterPage, FilterPattern, FilterQuery, StreamPage, StreamQuery, StreamToken, page_by_offset,
};

mod retention;

pub use retention::{EVENT_OVERHEAD, Retention, event_bytes};

/// One log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    pub scope: Arc<Scope>,
    pub group: Arc<str>,
    pub stream: Arc<str>,
    pub timestamp_ms: i64,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("log group {0} does not exist")]
    GroupNotFound(String),
    #[error("log stream {0} does not exist")]
    StreamNotFound(String),
    #[error("the paging token is not one this server issued")]
    InvalidToken,
    #[error("log store failed during {op}: {detail}")]
    Store { op: &'static str, detail: String },
}

fn err(op: &'static str) -> impl Fn(rusqlite::Error) -> LogError {
    move |e| LogError::Store {
        op,
        detail: e.to_string(),
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    id       INTEGER PRIMARY KEY,
    account  TEXT NOT NULL,
    region   TEXT NOT NULL,
    grp      TEXT NOT NULL,
    stream   TEXT NOT NULL,
    ts       INTEGER NOT NULL,
    ingested INTEGER NOT NULL,
    message  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_group ON events (account, region, grp, id);
CREATE TABLE IF NOT EXISTS streams (
    account  TEXT NOT NULL,
    region   TEXT NOT NULL,
    grp      TEXT NOT NULL,
    stream   TEXT NOT NULL,
    created  INTEGER NOT NULL,
    first_ts INTEGER NOT NULL,
    last_ts  INTEGER NOT NULL,
    last_ingested INTEGER NOT NULL,
    PRIMARY KEY (account, region, grp, stream)
) WITHOUT ROWID;
";

/// Queue depth after which new lines are dropped rather than slowing invokes.
const SINK_CAPACITY: usize = 200_000;
/// Bytes of queued lines after which new lines are dropped: the queue never
/// holds much of the platform's memory, however long the lines.
const SINK_MAX_BYTES: u64 = 256 << 20;

/// Where the invoke path writes log lines; cheap to clone.
#[derive(Clone)]
pub struct LogSink {
    tx: SyncSender<LogEvent>,
    dropped: Arc<AtomicU64>,
    /// Bytes of the lines queued and not yet taken by the writer.
    queued: Arc<AtomicU64>,
}

impl LogSink {
    /// Queues a line; never blocks. Lines beyond the queue's capacity (in
    /// lines or bytes) are dropped and counted.
    pub fn push(&self, e: LogEvent) {
        let bytes = event_bytes(&e.message);
        let queued = self.queued.fetch_add(bytes, Ordering::AcqRel);
        let sent = queued + bytes <= SINK_MAX_BYTES && self.tx.try_send(e).is_ok();
        if !sent {
            self.queued.fetch_sub(bytes, Ordering::AcqRel);
            let n = self.dropped.fetch_add(1, Ordering::Relaxed);
            if n.is_power_of_two() {
                tracing::warn!(dropped = n + 1, "log writer is behind; dropping log lines");
            }
        }
    }
}

/// The log database, shared by the writer thread and readers.
#[derive(Clone)]
pub struct LogStore {
    read: Arc<Mutex<Connection>>,
}

/// One stored line, as queries return it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub id: i64,
    pub stream: String,
    pub timestamp_ms: i64,
    pub ingestion_ms: i64,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    pub name: String,
    pub created_ms: i64,
    pub first_ms: i64,
    pub last_ms: i64,
    pub last_ingestion_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    pub name: String,
    pub created_ms: i64,
    pub stored_bytes: i64,
}

/// The events one query selects, oldest first.
#[derive(Debug, Clone, Default)]
struct Select<'a> {
    streams: Option<&'a [String]>,
    stream_prefix: Option<&'a str>,
    start_ms: Option<i64>,
    /// Inclusive unless `end_exclusive`.
    end_ms: Option<i64>,
    end_exclusive: bool,
    /// Terms every message must contain.
    terms: &'a [String],
    after_id: Option<i64>,
    before_id: Option<i64>,
    /// Take the newest `limit` matches rather than the oldest.
    newest: bool,
    limit: usize,
}

fn open(path: &Path) -> Result<Connection, LogError> {
    let conn = Connection::open(path).map_err(err("open"))?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(err("journal_mode"))?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(err("synchronous"))?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(err("busy_timeout"))?;
    conn.execute_batch(SCHEMA).map_err(err("schema"))?;
    Ok(conn)
}

/// Opens (creating) the log database and starts its writer thread, with the
/// default [`Retention`].
pub fn open_store(path: &Path) -> Result<(LogSink, LogStore), LogError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    open_store_with(path, Retention::default(), disk::DiskGuard::unreserved(dir))
}

/// Opens (creating) the log database and starts its writer thread; each log
/// group keeps at most `retention.group_bytes`, and lines are dropped while
/// the disk is at `disk`'s reserve.
pub fn open_store_with(
    path: &Path,
    retention: Retention,
    disk: disk::DiskGuard,
) -> Result<(LogSink, LogStore), LogError> {
    let writer = open(path)?;
    retention::prepare(&writer)?;
    let reader = open(path)?;
    let (tx, rx) = std::sync::mpsc::sync_channel(SINK_CAPACITY);
    let queued = Arc::new(AtomicU64::new(0));
    let taken = queued.clone();
    std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || write_loop(writer, rx, retention, disk, taken))
        .map_err(|e| LogError::Store {
            op: "start writer",
            detail: e.to_string(),
        })?;
    Ok((
        LogSink {
            tx,
            dropped: Arc::default(),
            queued,
        },
        LogStore {
            read: Arc::new(Mutex::new(reader)),
        },
    ))
}

fn now_ms() -> i64 {
    model::time_fmt::now_ms()
}

fn write_loop(
    mut conn: Connection,
    rx: Receiver<LogEvent>,
    retention: Retention,
    disk: disk::DiskGuard,
    queued: Arc<AtomicU64>,
) {
    let mut batch = Vec::with_capacity(1024);
    let mut failures = 0u64;
    let (mut refused_batches, mut refused_lines) = (0u64, 0u64);
    loop {
        match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(e) => batch.push(e),
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        }
        // Gather what else is waiting, briefly, so one commit covers many lines.
        let until = std::time::Instant::now() + Duration::from_millis(2);
        while batch.len() < 4096 {
            match rx.try_recv() {
                Ok(e) => batch.push(e),
                Err(_) if std::time::Instant::now() < until => {
                    std::thread::sleep(Duration::from_micros(200))
                }
                Err(_) => break,
            }
        }
        let bytes: u64 = batch.iter().map(|e| event_bytes(&e.message)).sum();
        queued.fetch_sub(bytes, Ordering::AcqRel);
        if let Err(full) = disk.check(bytes) {
            refused_batches += 1;
            refused_lines += batch.len() as u64;
            if refused_batches.is_power_of_two() {
                tracing::warn!(reason = %full, dropped = refused_lines, "dropping log lines");
            }
            batch.clear();
            continue;
        }
        match insert(&mut conn, &batch, retention.group_bytes) {
            Ok(()) => {}
            Err(e) => {
                // A full disk fails every batch: say so now and then, not per batch.
                failures += 1;
                if failures.is_power_of_two() {
                    tracing::warn!(error = %e, lines = batch.len(), failures, "could not store log lines");
                }
            }
        }
        batch.clear();
    }
}

/// Stores a batch; groups it takes over `group_limit` bytes lose their
/// oldest events, down to three quarters of the limit, in the same
/// transaction.
fn insert(conn: &mut Connection, batch: &[LogEvent], group_limit: u64) -> Result<(), LogError> {
    let ingested = now_ms();
    let tx = conn.transaction().map_err(err("begin"))?;
    {
        let mut ev = tx
            .prepare_cached(
                "INSERT INTO events (account, region, grp, stream, ts, ingested, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .map_err(err("prepare insert"))?;
        let mut st = tx
            .prepare_cached(
                "INSERT INTO streams (account, region, grp, stream, created, first_ts, last_ts, last_ingested)
                 VALUES (?1, ?2, ?3, ?4, ?6, ?5, ?7, ?6)
                 ON CONFLICT DO UPDATE SET first_ts = MIN(first_ts, excluded.first_ts),
                     last_ts = MAX(last_ts, excluded.last_ts), last_ingested = excluded.last_ingested",
            )
            .map_err(err("prepare stream"))?;
        // One stream upsert per stream in the batch, not per line.
        let mut streams: Vec<(&LogEvent, i64, i64)> = Vec::new();
        for e in batch {
            let (a, r) = (e.scope.account.as_str(), e.scope.region.as_str());
            ev.execute(params![
                a,
                r,
                &*e.group,
                &*e.stream,
                e.timestamp_ms,
                ingested,
                e.message
            ])
            .map_err(err("insert event"))?;
            match streams
                .iter_mut()
                .find(|(s, _, _)| s.stream == e.stream && s.group == e.group && s.scope == e.scope)
            {
                Some((_, first, last)) => {
                    *first = (*first).min(e.timestamp_ms);
                    *last = (*last).max(e.timestamp_ms);
                }
                None => streams.push((e, e.timestamp_ms, e.timestamp_ms)),
            }
        }
        for (e, first, last) in streams {
            st.execute(params![
                e.scope.account.as_str(),
                e.scope.region.as_str(),
                &*e.group,
                &*e.stream,
                first,
                ingested,
                last
            ])
            .map_err(err("upsert stream"))?;
        }
    }
    for (group, size) in retention::count(&tx, batch, group_limit)? {
        let removed = retention::prune(&tx, group, size, group_limit / 4 * 3)?;
        tracing::debug!(
            group = group.2,
            removed,
            "log group over its bound: oldest events removed"
        );
    }
    tx.commit().map_err(err("commit"))
}

impl LogStore {
    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.read.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes one log group holds, as its bound counts them.
    pub fn group_bytes(&self, scope: &Scope, group: &str) -> Result<u64, LogError> {
        retention::group_size(
            &self.conn(),
            scope.account.as_str(),
            scope.region.as_str(),
            group,
        )
    }

    /// `GetLogEvents`: a page of one stream's events (see [`StreamQuery`]).
    pub fn get_log_events(
        &self,
        scope: &Scope,
        group: &str,
        stream: &str,
        q: &StreamQuery<'_>,
    ) -> Result<StreamPage, LogError> {
        let conn = self.conn();
        require_group(&conn, scope, group)?;
        let found = exists(
            &conn,
            "SELECT 1 FROM streams WHERE account = ?1 AND region = ?2 AND grp = ?3 AND stream = ?4",
            params![scope.account.as_str(), scope.region.as_str(), group, stream],
        )?;
        if !found {
            return Err(LogError::StreamNotFound(stream.to_owned()));
        }
        let token = q.token.map(StreamToken::parse).transpose()?;
        let names = [stream.to_owned()];
        let mut sel = Select {
            streams: Some(&names),
            start_ms: q.start_ms,
            end_ms: q.end_ms,
            end_exclusive: true,
            limit: q.limit,
            newest: !q.start_from_head,
            ..Default::default()
        };
        match token {
            Some(StreamToken::Forward(id)) => {
                sel.after_id = Some(id);
                sel.newest = false;
            }
            Some(StreamToken::Backward(id)) => {
                sel.before_id = Some(id);
                sel.newest = true;
            }
            None => {}
        }
        let events = select_events(&conn, scope, group, &sel)?;
        Ok(StreamPage::new(events, token))
    }

    /// `FilterLogEvents`: a page of a group's matching events, oldest first.
    pub fn filter_log_events(
        &self,
        scope: &Scope,
        group: &str,
        q: &FilterQuery<'_>,
    ) -> Result<FilterPage, LogError> {
        let after_id = q.token.map(query::parse_filter_token).transpose()?;
        let conn = self.conn();
        require_group(&conn, scope, group)?;
        let limit = q.limit.max(1);
        let events = select_events(
            &conn,
            scope,
            group,
            &Select {
                streams: q.streams,
                stream_prefix: q.stream_prefix,
                start_ms: q.start_ms,
                end_ms: q.end_ms,
                terms: q.pattern.terms(),
                after_id,
                limit,
                ..Default::default()
            },
        )?;
        let next_token = (events.len() == limit)
            .then(|| events.last().map(|e| query::filter_token(e.id)))
            .flatten();
        Ok(FilterPage { events, next_token })
    }

    /// `DescribeLogStreams`: a group's streams by name.
    pub fn describe_streams(
        &self,
        scope: &Scope,
        group: &str,
        prefix: Option<&str>,
    ) -> Result<Vec<StreamInfo>, LogError> {
        let streams = self.streams(scope, group, prefix)?;
        if streams.is_empty() {
            require_group(&self.conn(), scope, group)?;
        }
        Ok(streams)
    }

    fn streams(
        &self,
        scope: &Scope,
        group: &str,
        prefix: Option<&str>,
    ) -> Result<Vec<StreamInfo>, LogError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT stream, created, first_ts, last_ts, last_ingested FROM streams
                 WHERE account = ?1 AND region = ?2 AND grp = ?3 AND substr(stream, 1, length(?4)) = ?4
                 ORDER BY stream",
            )
            .map_err(err("prepare streams"))?;
        let rows = stmt
            .query_map(
                params![
                    scope.account.as_str(),
                    scope.region.as_str(),
                    group,
                    prefix.unwrap_or("")
                ],
                |r| {
                    Ok(StreamInfo {
                        name: r.get(0)?,
                        created_ms: r.get(1)?,
                        first_ms: r.get(2)?,
                        last_ms: r.get(3)?,
                        last_ingestion_ms: r.get(4)?,
                    })
                },
            )
            .map_err(err("streams"))?;
        rows.collect::<Result<_, _>>().map_err(err("read stream"))
    }

    pub fn groups(&self, scope: &Scope, prefix: Option<&str>) -> Result<Vec<GroupInfo>, LogError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT s.grp, MIN(s.created),
                        (SELECT COALESCE(SUM(length(e.message)), 0) FROM events e
                          WHERE e.account = s.account AND e.region = s.region AND e.grp = s.grp)
                 FROM streams s WHERE s.account = ?1 AND s.region = ?2 AND substr(s.grp, 1, length(?3)) = ?3
                 GROUP BY s.grp ORDER BY s.grp",
            )
            .map_err(err("prepare groups"))?;
        let rows = stmt
            .query_map(
                params![
                    scope.account.as_str(),
                    scope.region.as_str(),
                    prefix.unwrap_or("")
                ],
                |r| {
                    Ok(GroupInfo {
                        name: r.get(0)?,
                        created_ms: r.get(1)?,
                        stored_bytes: r.get(2)?,
                    })
                },
            )
            .map_err(err("groups"))?;
        rows.collect::<Result<_, _>>().map_err(err("read group"))
    }
}

/// A group exists while it has a stream (it appears with its first line).
fn require_group(conn: &Connection, scope: &Scope, group: &str) -> Result<(), LogError> {
    let found = exists(
        conn,
        "SELECT 1 FROM streams WHERE account = ?1 AND region = ?2 AND grp = ?3 LIMIT 1",
        params![scope.account.as_str(), scope.region.as_str(), group],
    )?;
    if found {
        Ok(())
    } else {
        Err(LogError::GroupNotFound(group.to_owned()))
    }
}

/// Whether `sql` finds a row.
fn exists(conn: &Connection, sql: &str, args: impl rusqlite::Params) -> Result<bool, LogError> {
    let found: Option<i64> = conn
        .prepare_cached(sql)
        .map_err(err("prepare lookup"))?
        .query_row(args, |r| r.get(0))
        .optional()
        .map_err(err("lookup"))?;
    Ok(found.is_some())
}

/// Runs a [`Select`]: the matching events of one group, oldest first.
fn select_events(
    conn: &Connection,
    scope: &Scope,
    group: &str,
    s: &Select<'_>,
) -> Result<Vec<StoredEvent>, LogError> {
    let mut sql = String::from(
        "SELECT id, stream, ts, ingested, message FROM events WHERE account = ? AND region = ? AND grp = ?",
    );
    let mut args: Vec<SqlValue> = vec![
        scope.account.as_str().to_owned().into(),
        scope.region.as_str().to_owned().into(),
        group.to_owned().into(),
    ];
    let mut cond = |clause: &str, v: SqlValue| {
        sql.push_str(clause);
        args.push(v);
    };
    if let Some(id) = s.after_id {
        cond(" AND id > ?", id.into());
    }
    if let Some(id) = s.before_id {
        cond(" AND id < ?", id.into());
    }
    if let Some(t) = s.start_ms {
        cond(" AND ts >= ?", t.into());
    }
    if let Some(t) = s.end_ms {
        cond(
            if s.end_exclusive {
                " AND ts < ?"
            } else {
                " AND ts <= ?"
            },
            t.into(),
        );
    }
    if let Some(p) = s.stream_prefix {
        cond(" AND substr(stream, 1, length(?))", p.to_owned().into());
        cond(" = ?", p.to_owned().into());
    }
    for t in s.terms {
        cond(" AND instr(message, ?) > 0", t.clone().into());
    }
    match s.streams {
        // `IN ()` is not SQL: an empty list selects nothing.
        Some([]) => sql.push_str(" AND 0"),
        Some(names) => {
            sql.push_str(" AND stream IN (?");
            sql.push_str(&", ?".repeat(names.len() - 1));
            sql.push(')');
            args.extend(names.iter().map(|n| SqlValue::from(n.clone())));
        }
        None => {}
    }
    sql.push_str(if s.newest {
        " ORDER BY id DESC LIMIT ?"
    } else {
        " ORDER BY id LIMIT ?"
    });
    args.push((s.limit.max(1) as i64).into());
    let mut stmt = conn.prepare_cached(&sql).map_err(err("prepare select"))?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(args), |r| {
            Ok(StoredEvent {
                id: r.get(0)?,
                stream: r.get(1)?,
                timestamp_ms: r.get(2)?,
                ingestion_ms: r.get(3)?,
                message: r.get(4)?,
            })
        })
        .map_err(err("select"))?;
    let mut out = rows
        .collect::<Result<Vec<_>, _>>()
        .map_err(err("read event"))?;
    if s.newest {
        out.reverse();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(a: &str) -> Arc<Scope> {
        Arc::new(Scope::new(
            model::AccountId::parse(a).unwrap(),
            model::Region::parse("us-east-1").unwrap(),
        ))
    }

    fn ev(scope: &Arc<Scope>, group: &str, stream: &str, ts: i64, msg: &str) -> LogEvent {
        LogEvent {
            scope: scope.clone(),
            group: group.into(),
            stream: stream.into(),
            timestamp_ms: ts,
            message: msg.into(),
        }
    }

    fn all(store: &LogStore, s: &Scope, group: &str) -> Vec<StoredEvent> {
        match store.filter_log_events(
            s,
            group,
            &FilterQuery {
                limit: 10_000,
                ..Default::default()
            },
        ) {
            Ok(p) => p.events,
            Err(LogError::GroupNotFound(_)) => Vec::new(),
            Err(e) => panic!("{e}"),
        }
    }

    fn wait_for(store: &LogStore, s: &Scope, group: &str, n: usize) -> Vec<StoredEvent> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let got = all(store, s, group);
            if got.len() >= n || std::time::Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn filter(store: &LogStore, s: &Scope, q: FilterQuery<'_>) -> FilterPage {
        store.filter_log_events(s, "/aws/lambda/f", &q).unwrap()
    }

    /// 100 lines, alternating between streams s1 and s2, at 1000.. ms.
    fn hundred_lines() -> (tempfile::TempDir, LogStore, Arc<Scope>, Vec<StoredEvent>) {
        let dir = tempfile::tempdir().unwrap();
        let (sink, store) = open_store(&dir.path().join("logs.db")).unwrap();
        let a = scope("111111111111");
        for i in 0..100 {
            sink.push(ev(
                &a,
                "/aws/lambda/f",
                if i % 2 == 0 { "s1" } else { "s2" },
                1000 + i,
                &format!("line {i}"),
            ));
        }
        let got = wait_for(&store, &a, "/aws/lambda/f", 100);
        assert_eq!(got.len(), 100);
        (dir, store, a, got)
    }

    #[test]
    fn lines_reach_the_store_in_order_and_scoped() {
        let (_dir, store, a, got) = hundred_lines();
        let b = scope("222222222222");
        assert_eq!(got[0].message, "line 0");
        assert_eq!(got[99].message, "line 99");
        let streams = store.describe_streams(&a, "/aws/lambda/f", None).unwrap();
        assert_eq!(
            streams.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["s1", "s2"]
        );
        assert_eq!(streams[0].first_ms, 1000);
        let groups = store.groups(&a, Some("/aws/lambda/")).unwrap();
        assert_eq!(groups.len(), 1);
        assert!(
            matches!(
                store.filter_log_events(&b, "/aws/lambda/f", &FilterQuery::default()),
                Err(LogError::GroupNotFound(_))
            ),
            "another account does not see the group"
        );
        assert!(store.groups(&b, None).unwrap().is_empty());
    }

    #[test]
    fn filter_selects_by_stream_pattern_time_and_pages() {
        let (_dir, store, a, got) = hundred_lines();
        let only_s2 = ["s2".to_string()];
        let s2 = filter(
            &store,
            &a,
            FilterQuery {
                streams: Some(&only_s2),
                limit: 1000,
                ..Default::default()
            },
        );
        assert_eq!(s2.events.len(), 50);
        assert!(s2.events.iter().all(|e| e.stream == "s2"));
        assert_eq!(s2.next_token, None, "a page that is not full is the last");
        let prefixed = filter(
            &store,
            &a,
            FilterQuery {
                stream_prefix: Some("s1"),
                limit: 1000,
                ..Default::default()
            },
        );
        assert_eq!(prefixed.events.len(), 50);
        let hits = filter(
            &store,
            &a,
            FilterQuery {
                pattern: FilterPattern::parse(r#""line 7""#),
                limit: 1000,
                ..Default::default()
            },
        );
        assert_eq!(hits.events.len(), 11, "line 7 and 70..79");
        let timed = filter(
            &store,
            &a,
            FilterQuery {
                start_ms: Some(1090),
                end_ms: Some(1094),
                limit: 1000,
                ..Default::default()
            },
        );
        assert_eq!(timed.events.len(), 5, "both ends inclusive");
        // Pages of 30 matching lines, resumed from the token.
        let mut token = None;
        let mut seen = Vec::new();
        loop {
            let page = filter(
                &store,
                &a,
                FilterQuery {
                    pattern: FilterPattern::parse("line"),
                    token: token.as_deref(),
                    limit: 30,
                    ..Default::default()
                },
            );
            seen.extend(page.events.iter().map(|e| e.id));
            match page.next_token {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        assert_eq!(seen, got.iter().map(|e| e.id).collect::<Vec<_>>());
        assert!(matches!(
            store.filter_log_events(
                &a,
                "/aws/lambda/f",
                &FilterQuery {
                    token: Some("f/1"),
                    ..Default::default()
                }
            ),
            Err(LogError::InvalidToken)
        ));
    }

    fn messages(p: &StreamPage) -> Vec<&str> {
        p.events.iter().map(|e| e.message.as_str()).collect()
    }

    #[test]
    fn get_log_events_reads_from_the_tail_or_the_head_and_pages_both_ways() {
        let (_dir, store, a, _) = hundred_lines();
        let get = |q: StreamQuery<'_>| store.get_log_events(&a, "/aws/lambda/f", "s1", &q).unwrap();
        // Default: the newest `limit` events, oldest first.
        let tail = get(StreamQuery {
            limit: 3,
            ..Default::default()
        });
        assert_eq!(messages(&tail), ["line 94", "line 96", "line 98"]);
        // Backwards from there, page by page, to the head.
        let back = tail.backward.to_string();
        let before = get(StreamQuery {
            limit: 3,
            token: Some(&back),
            ..Default::default()
        });
        assert_eq!(messages(&before), ["line 88", "line 90", "line 92"]);
        let mut token = before.backward.to_string();
        let mut pages = 2;
        loop {
            let p = get(StreamQuery {
                limit: 3,
                token: Some(&token),
                ..Default::default()
            });
            if p.events.is_empty() {
                assert_eq!(p.backward.to_string(), token, "the same token at the head");
                break;
            }
            pages += 1;
            token = p.backward.to_string();
        }
        assert_eq!(pages, 17, "50 events in pages of 3");
        // From the head, then forwards to the end.
        let head = get(StreamQuery {
            limit: 2,
            start_from_head: true,
            ..Default::default()
        });
        assert_eq!(messages(&head), ["line 0", "line 2"]);
        let fwd = head.forward.to_string();
        let next = get(StreamQuery {
            limit: 2,
            token: Some(&fwd),
            ..Default::default()
        });
        assert_eq!(messages(&next), ["line 4", "line 6"]);
        let end = tail.forward.to_string();
        let at_end = get(StreamQuery {
            limit: 2,
            start_from_head: true,
            token: Some(&end),
            ..Default::default()
        });
        assert!(at_end.events.is_empty());
        assert_eq!(at_end.forward.to_string(), end, "the same token at the end");
        // endTime is exclusive; startTime inclusive.
        let window = get(StreamQuery {
            start_ms: Some(1010),
            end_ms: Some(1016),
            limit: 100,
            start_from_head: true,
            ..Default::default()
        });
        assert_eq!(messages(&window), ["line 10", "line 12", "line 14"]);
        let err = store.get_log_events(
            &a,
            "/aws/lambda/f",
            "s1",
            &StreamQuery {
                token: Some("e5"),
                ..Default::default()
            },
        );
        assert!(matches!(err, Err(LogError::InvalidToken)));
    }

    #[test]
    fn unknown_groups_and_streams_are_errors_not_empty_pages() {
        let (_dir, store, a, _) = hundred_lines();
        let q = StreamQuery::default();
        assert!(matches!(
            store.get_log_events(&a, "/aws/lambda/none", "s1", &q),
            Err(LogError::GroupNotFound(g)) if g == "/aws/lambda/none"
        ));
        assert!(matches!(
            store.get_log_events(&a, "/aws/lambda/f", "s9", &q),
            Err(LogError::StreamNotFound(s)) if s == "s9"
        ));
        assert!(matches!(
            store.filter_log_events(&a, "/aws/lambda/none", &FilterQuery::default()),
            Err(LogError::GroupNotFound(_))
        ));
        assert!(matches!(
            store.describe_streams(&a, "/aws/lambda/none", None),
            Err(LogError::GroupNotFound(_))
        ));
        assert!(
            store
                .describe_streams(&a, "/aws/lambda/f", Some("zz"))
                .unwrap()
                .is_empty(),
            "a prefix nothing matches in a group that exists"
        );
    }
}
