//! Topics and subscriptions on disk: `sns.db` in the data directory (SQLite,
//! WAL, `synchronous=FULL`), one JSON record per topic and subscription, and
//! the server's signing key.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension as _, params};

use crate::types::{SnsError, Subscription, Topic};

#[derive(Clone)]
pub(crate) struct Db {
    conn: Arc<Mutex<Connection>>,
}

fn store_err(e: impl std::fmt::Display) -> SnsError {
    SnsError::Store(e.to_string())
}

impl Db {
    pub(crate) fn open(path: &Path) -> Result<Self, SnsError> {
        Self::init(Connection::open(path).map_err(store_err)?)
    }

    pub(crate) fn open_in_memory() -> Result<Self, SnsError> {
        Self::init(Connection::open_in_memory().map_err(store_err)?)
    }

    fn init(conn: Connection) -> Result<Self, SnsError> {
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(store_err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(store_err)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS topics (arn TEXT PRIMARY KEY, record TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS subscriptions (
                 arn TEXT PRIMARY KEY, topic_arn TEXT NOT NULL, record TEXT NOT NULL);
             CREATE INDEX IF NOT EXISTS subscriptions_by_topic ON subscriptions (topic_arn);
             CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);",
        )
        .map_err(store_err)?;
        Ok(Db {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, SnsError> {
        let mut conn = self
            .conn
            .lock()
            .map_err(|_| SnsError::Store("the topic store's lock is poisoned".into()))?;
        f(&mut conn).map_err(store_err)
    }

    /// Everything stored, for start-up.
    pub(crate) fn load(&self) -> Result<(Vec<Topic>, Vec<Subscription>), SnsError> {
        let (topics, subs) = self.with(|c| {
            let topics = c
                .prepare("SELECT record FROM topics")?
                .query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            let subs = c
                .prepare("SELECT record FROM subscriptions")?
                .query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok((topics, subs))
        })?;
        let topics = topics
            .iter()
            .map(|t| serde_json::from_str(t).map_err(store_err))
            .collect::<Result<_, _>>()?;
        let subs = subs
            .iter()
            .map(|s| serde_json::from_str(s).map_err(store_err))
            .collect::<Result<_, _>>()?;
        Ok((topics, subs))
    }

    /// The server's signing key, made on first use.
    pub(crate) fn signing_key(&self) -> Result<[u8; 32], SnsError> {
        self.with(|c| {
            let existing: Option<Vec<u8>> = c
                .query_row(
                    "SELECT value FROM meta WHERE key = 'signing-key'",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(k) = existing
                && let Ok(key) = <[u8; 32]>::try_from(k.as_slice())
            {
                return Ok(key);
            }
            let mut key = [0u8; 32];
            for b in key.iter_mut() {
                *b = fastrand::u8(..);
            }
            let fresh = uuid::Uuid::new_v4();
            // Mix in a v4 UUID (OS randomness) so the key does not rest on
            // the PRNG's seed alone.
            for (k, u) in key.iter_mut().zip(fresh.as_bytes().iter().cycle()) {
                *k ^= u;
            }
            c.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('signing-key', ?1)",
                params![key.to_vec()],
            )?;
            Ok(key)
        })
    }

    pub(crate) fn put_topic(&self, t: &Topic) -> Result<(), SnsError> {
        let record = serde_json::to_string(t).map_err(store_err)?;
        self.with(|c| {
            c.execute(
                "INSERT OR REPLACE INTO topics (arn, record) VALUES (?1, ?2)",
                params![t.arn, record],
            )
            .map(drop)
        })
    }

    /// Deletes a topic and its subscriptions in one transaction.
    pub(crate) fn delete_topic(&self, arn: &str) -> Result<(), SnsError> {
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "DELETE FROM subscriptions WHERE topic_arn = ?1",
                params![arn],
            )?;
            tx.execute("DELETE FROM topics WHERE arn = ?1", params![arn])?;
            tx.commit()
        })
    }

    /// Writes a subscription and, when given, its topic (counters) together.
    pub(crate) fn put_subscription(
        &self,
        s: &Subscription,
        topic: Option<&Topic>,
    ) -> Result<(), SnsError> {
        let record = serde_json::to_string(s).map_err(store_err)?;
        let topic_record = match topic {
            Some(t) => Some((t.arn.clone(), serde_json::to_string(t).map_err(store_err)?)),
            None => None,
        };
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "INSERT OR REPLACE INTO subscriptions (arn, topic_arn, record) VALUES (?1, ?2, ?3)",
                params![s.arn, s.topic_arn, record],
            )?;
            if let Some((arn, rec)) = &topic_record {
                tx.execute(
                    "INSERT OR REPLACE INTO topics (arn, record) VALUES (?1, ?2)",
                    params![arn, rec],
                )?;
            }
            tx.commit()
        })
    }

    pub(crate) fn delete_subscription(&self, arn: &str, topic: &Topic) -> Result<(), SnsError> {
        let topic_record = serde_json::to_string(topic).map_err(store_err)?;
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute("DELETE FROM subscriptions WHERE arn = ?1", params![arn])?;
            tx.execute(
                "INSERT OR REPLACE INTO topics (arn, record) VALUES (?1, ?2)",
                params![topic.arn, topic_record],
            )?;
            tx.commit()
        })
    }
}
