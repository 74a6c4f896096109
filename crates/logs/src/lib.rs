//! Function logs, kept per log group (`/aws/lambda/<name>`) and stream.
//!
//! The invoke path hands lines to a [`LogSink`] without waiting: a writer
//! thread batches them into SQLite (`logs.db`, WAL) a few milliseconds later.
//! [`LogStore`] answers the queries behind `FilterLogEvents`, `GetLogEvents`,
//! `DescribeLogStreams` and `DescribeLogGroups`.

use std::path::Path;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use model::Scope;
use rusqlite::{Connection, params};

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

/// Where the invoke path writes log lines; cheap to clone.
#[derive(Clone)]
pub struct LogSink {
    tx: SyncSender<LogEvent>,
    dropped: Arc<std::sync::atomic::AtomicU64>,
}

impl LogSink {
    /// Queues a line; never blocks. Lines beyond the queue's capacity are
    /// dropped and counted.
    pub fn push(&self, e: LogEvent) {
        match self.tx.try_send(e) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                let n = self
                    .dropped
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n.is_power_of_two() {
                    tracing::warn!(dropped = n + 1, "log writer is behind; dropping log lines");
                }
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

/// A query over one group's events.
#[derive(Debug, Clone, Default)]
pub struct Filter<'a> {
    pub streams: Option<&'a [String]>,
    pub stream_prefix: Option<&'a str>,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    /// A plain substring the message must contain.
    pub contains: Option<&'a str>,
    /// Only events after this id (pagination).
    pub after_id: Option<i64>,
    pub limit: usize,
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

/// Opens (creating) the log database and starts its writer thread.
pub fn open_store(path: &Path) -> Result<(LogSink, LogStore), LogError> {
    let writer = open(path)?;
    let reader = open(path)?;
    let (tx, rx) = std::sync::mpsc::sync_channel(SINK_CAPACITY);
    std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || write_loop(writer, rx))
        .map_err(|e| LogError::Store {
            op: "start writer",
            detail: e.to_string(),
        })?;
    Ok((
        LogSink {
            tx,
            dropped: Arc::default(),
        },
        LogStore {
            read: Arc::new(Mutex::new(reader)),
        },
    ))
}

fn now_ms() -> i64 {
    model::time_fmt::now_ms()
}

fn write_loop(mut conn: Connection, rx: Receiver<LogEvent>) {
    let mut batch = Vec::with_capacity(1024);
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
        if let Err(e) = insert(&mut conn, &batch) {
            tracing::warn!(error = %e, lines = batch.len(), "could not store log lines");
        }
        batch.clear();
    }
}

fn insert(conn: &mut Connection, batch: &[LogEvent]) -> Result<(), LogError> {
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
    tx.commit().map_err(err("commit"))
}

impl LogStore {
    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.read.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Events of one group in arrival order.
    pub fn filter(
        &self,
        scope: &Scope,
        group: &str,
        f: &Filter<'_>,
    ) -> Result<Vec<StoredEvent>, LogError> {
        let conn = self.conn();
        let mut sql = String::from(
            "SELECT id, stream, ts, ingested, message FROM events WHERE account = ?1 AND region = ?2 AND grp = ?3 AND id > ?4 AND ts >= ?5 AND ts <= ?6",
        );
        if f.stream_prefix.is_some() {
            sql.push_str(" AND substr(stream, 1, length(?7)) = ?7");
        } else {
            sql.push_str(" AND ?7 IS NULL");
        }
        if f.contains.is_some() {
            sql.push_str(" AND instr(message, ?8) > 0");
        } else {
            sql.push_str(" AND ?8 IS NULL");
        }
        sql.push_str(" ORDER BY id LIMIT ?9");
        let mut stmt = conn.prepare_cached(&sql).map_err(err("prepare filter"))?;
        let rows = stmt
            .query_map(
                params![
                    scope.account.as_str(),
                    scope.region.as_str(),
                    group,
                    f.after_id.unwrap_or(0),
                    f.start_ms.unwrap_or(i64::MIN),
                    f.end_ms.unwrap_or(i64::MAX),
                    f.stream_prefix,
                    f.contains,
                    (f.limit.max(1) * if f.streams.is_some() { 4 } else { 1 }) as i64,
                ],
                |r| {
                    Ok(StoredEvent {
                        id: r.get(0)?,
                        stream: r.get(1)?,
                        timestamp_ms: r.get(2)?,
                        ingestion_ms: r.get(3)?,
                        message: r.get(4)?,
                    })
                },
            )
            .map_err(err("filter"))?;
        let mut out = Vec::new();
        for row in rows {
            let e = row.map_err(err("read event"))?;
            if let Some(names) = f.streams
                && !names.contains(&e.stream)
            {
                continue;
            }
            out.push(e);
            if out.len() == f.limit.max(1) {
                break;
            }
        }
        Ok(out)
    }

    pub fn streams(
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

    fn wait_for(store: &LogStore, s: &Scope, group: &str, n: usize) -> Vec<StoredEvent> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let got = store
                .filter(
                    s,
                    group,
                    &Filter {
                        limit: 1000,
                        ..Default::default()
                    },
                )
                .unwrap();
            if got.len() >= n || std::time::Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn lines_reach_the_store_in_order_and_scoped() {
        let dir = tempfile::tempdir().unwrap();
        let (sink, store) = open_store(&dir.path().join("logs.db")).unwrap();
        let a = scope("111111111111");
        let b = scope("222222222222");
        for i in 0..100 {
            sink.push(ev(
                &a,
                "/aws/lambda/f",
                if i % 2 == 0 { "s1" } else { "s2" },
                1000 + i,
                &format!("line {i}"),
            ));
        }
        sink.push(ev(&b, "/aws/lambda/f", "s1", 5, "other account"));
        let got = wait_for(&store, &a, "/aws/lambda/f", 100);
        assert_eq!(got.len(), 100);
        assert_eq!(got[0].message, "line 0");
        assert_eq!(got[99].message, "line 99");
        let page = store
            .filter(
                &a,
                "/aws/lambda/f",
                &Filter {
                    after_id: Some(got[49].id),
                    limit: 10,
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(page[0].message, "line 50");
        let only_s2 = ["s2".to_string()];
        let s2 = store
            .filter(
                &a,
                "/aws/lambda/f",
                &Filter {
                    streams: Some(&only_s2),
                    limit: 1000,
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(s2.len(), 50);
        let hits = store
            .filter(
                &a,
                "/aws/lambda/f",
                &Filter {
                    contains: Some("line 7"),
                    limit: 1000,
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(hits.len(), 11, "line 7 and 70..79");
        let timed = store
            .filter(
                &a,
                "/aws/lambda/f",
                &Filter {
                    start_ms: Some(1090),
                    limit: 1000,
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(timed.len(), 10);
        let streams = store.streams(&a, "/aws/lambda/f", None).unwrap();
        assert_eq!(
            streams.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["s1", "s2"]
        );
        assert_eq!(streams[0].first_ms, 1000);
        let groups = store.groups(&a, Some("/aws/lambda/")).unwrap();
        assert_eq!(groups.len(), 1);
        let other = wait_for(&store, &b, "/aws/lambda/f", 1);
        assert_eq!(other.len(), 1);
        assert_eq!(other[0].message, "other account");
    }
}
