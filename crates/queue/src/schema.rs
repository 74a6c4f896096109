//! The queue's table, and opening it durably.

use std::path::Path;

use rusqlite::{Connection, Transaction, params};

use crate::{NewWork, QueueError, Recipient, WorkId, storage};

pub(crate) const KIND_FUNCTION: i64 = 0;
pub(crate) const KIND_HTTP: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS queue (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        INTEGER NOT NULL,
    request_id  TEXT NOT NULL,
    account     TEXT NOT NULL,
    region      TEXT NOT NULL,
    -- the function's name, or the URL
    target      TEXT NOT NULL,
    qualifier   TEXT,
    -- a function's client context, or an HTTP delivery's headers (JSON)
    extra       TEXT,
    payload     BLOB NOT NULL,
    enqueued_ms INTEGER NOT NULL,
    due_ms      INTEGER NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    throttles   INTEGER NOT NULL DEFAULT 0,
    last_result TEXT
);
";

/// Opens the database with the durability acknowledged events rely on: WAL,
/// and `synchronous=FULL` so that a commit survives power loss, not only a
/// crash of this process.
pub(crate) fn open(path: &Path) -> Result<Connection, QueueError> {
    let conn = Connection::open(path).map_err(storage("open"))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(storage("open"))?;
    conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;")
        .map_err(storage("open"))?;
    conn.execute_batch(SCHEMA)
        .map_err(storage("create schema"))?;
    Ok(conn)
}

pub(crate) fn insert(tx: &Transaction<'_>, w: &NewWork) -> Result<WorkId, QueueError> {
    let (kind, account, region, target, qualifier, extra) = match &w.recipient {
        Recipient::Function {
            scope,
            name,
            qualifier,
            client_context,
        } => (
            KIND_FUNCTION,
            scope.account.as_str(),
            scope.region.as_str(),
            name.as_str(),
            qualifier.clone(),
            client_context.clone(),
        ),
        Recipient::Http { url, headers } => (
            KIND_HTTP,
            "",
            "",
            url.as_str(),
            None,
            Some(
                serde_json::to_string(headers).map_err(|e| QueueError::Storage {
                    op: "encode headers",
                    detail: e.to_string(),
                })?,
            ),
        ),
    };
    let mut st = tx
        .prepare_cached(
            "INSERT INTO queue (kind, request_id, account, region, target, qualifier, extra, payload, enqueued_ms, due_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )
        .map_err(storage("enqueue"))?;
    st.execute(params![
        kind,
        w.request_id,
        account,
        region,
        target,
        qualifier,
        extra,
        &w.payload[..],
        w.enqueued_ms,
        w.due_ms
    ])
    .map_err(storage("enqueue"))?;
    Ok(tx.last_insert_rowid())
}
