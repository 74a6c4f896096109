//! The mappings' durable state: `esm.db` (SQLite, WAL, `synchronous=FULL`)
//! holds each mapping as a JSON document and each stream position a
//! poller has checkpointed.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};

use crate::mapping::Mapping;

/// Why the mapping store failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("event source mapping store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("event source mapping record {uuid} is unreadable: {source}")]
    Corrupt {
        uuid: String,
        source: serde_json::Error,
    },
    #[error("event source mapping store: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("event source mapping store: a blocking task failed: {0}")]
    Task(String),
}

#[derive(Clone)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
}

impl Db {
    pub fn open(path: &Path) -> Result<Self, DbError> {
        let conn = Connection::open(path)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=FULL;
             PRAGMA busy_timeout=5000;
             CREATE TABLE IF NOT EXISTS mapping (
                 uuid TEXT PRIMARY KEY,
                 doc TEXT NOT NULL
             );
             CREATE TABLE IF NOT EXISTS checkpoint (
                 uuid TEXT NOT NULL,
                 shard TEXT NOT NULL,
                 position TEXT NOT NULL,
                 PRIMARY KEY (uuid, shard)
             );",
        )?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` on the connection on a blocking thread.
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, DbError> + Send + 'static,
    ) -> Result<T, DbError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut c)
        })
        .await
        .map_err(|e| DbError::Task(e.to_string()))?
    }

    pub fn load_all(&self) -> Result<Vec<Mapping>, DbError> {
        let c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let mut stmt = c.prepare("SELECT uuid, doc FROM mapping ORDER BY uuid")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (uuid, doc) = row?;
            out.push(
                serde_json::from_str(&doc).map_err(|source| DbError::Corrupt { uuid, source })?,
            );
        }
        Ok(out)
    }

    pub async fn put(&self, m: &Mapping) -> Result<(), DbError> {
        let doc = serde_json::to_string(m)?;
        let uuid = m.uuid.clone();
        self.with(move |c| {
            c.execute(
                "INSERT INTO mapping (uuid, doc) VALUES (?1, ?2)
                 ON CONFLICT(uuid) DO UPDATE SET doc = excluded.doc",
                params![uuid, doc],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn delete(&self, uuid: &str) -> Result<(), DbError> {
        let uuid = uuid.to_owned();
        self.with(move |c| {
            let tx = c.transaction()?;
            tx.execute("DELETE FROM mapping WHERE uuid = ?1", params![uuid])?;
            tx.execute("DELETE FROM checkpoint WHERE uuid = ?1", params![uuid])?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// The stored position of one shard (or partition, or consumer).
    pub async fn checkpoint(&self, uuid: &str, shard: &str) -> Result<Option<String>, DbError> {
        let (uuid, shard) = (uuid.to_owned(), shard.to_owned());
        self.with(move |c| {
            Ok(c.query_row(
                "SELECT position FROM checkpoint WHERE uuid = ?1 AND shard = ?2",
                params![uuid, shard],
                |r| r.get(0),
            )
            .optional()?)
        })
        .await
    }

    /// Records that everything up to `position` in `shard` is done.
    pub async fn set_checkpoint(
        &self,
        uuid: &str,
        shard: &str,
        position: &str,
    ) -> Result<(), DbError> {
        let (uuid, shard, position) = (uuid.to_owned(), shard.to_owned(), position.to_owned());
        self.with(move |c| {
            c.execute(
                "INSERT INTO checkpoint (uuid, shard, position) VALUES (?1, ?2, ?3)
                 ON CONFLICT(uuid, shard) DO UPDATE SET position = excluded.position",
                params![uuid, shard, position],
            )?;
            Ok(())
        })
        .await
    }
}
