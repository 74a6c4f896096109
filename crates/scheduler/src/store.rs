//! Schedules and schedule groups in SQLite (`scheduler.db`, WAL,
//! `synchronous=FULL`): a schedule's definition as JSON beside its next
//! fire, so that the firing loop finds what is due with one indexed query
//! and a fire's outcome is one conditional update.

use std::path::Path;
use std::sync::Mutex;

use model::Scope;
use rusqlite::{Connection, OptionalExtension, params};

use crate::timing::Plan;
use crate::{SchedulerError, Spec};

/// Which schedule: (account, region, group, name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub account: String,
    pub region: String,
    pub group: String,
    pub name: String,
}

impl Key {
    pub fn new(scope: &Scope, group: &str, name: &str) -> Self {
        Self {
            account: scope.account.as_str().to_owned(),
            region: scope.region.as_str().to_owned(),
            group: group.to_owned(),
            name: name.to_owned(),
        }
    }
}

/// A schedule as stored.
#[derive(Debug, Clone)]
pub struct Row {
    pub key: Key,
    pub spec: Spec,
    /// Bumped by every change of the definition: a fire records its outcome
    /// only if the schedule is still the one it fired.
    pub revision: i64,
    pub plan: Option<Plan>,
    /// Failed delivery attempts of the current fire.
    pub attempts: u32,
}

/// A schedule group as stored.
#[derive(Debug, Clone)]
pub struct Group {
    pub name: String,
    pub created_ms: i64,
    pub modified_ms: i64,
    pub tags: Vec<(String, String)>,
}

pub struct Store {
    conn: Mutex<Connection>,
}

fn db(e: rusqlite::Error) -> SchedulerError {
    SchedulerError::Store(e.to_string())
}

fn json(e: serde_json::Error) -> SchedulerError {
    SchedulerError::Store(format!("a stored schedule does not read back: {e}"))
}

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = FULL;
CREATE TABLE IF NOT EXISTS groups (
    account TEXT NOT NULL, region TEXT NOT NULL, name TEXT NOT NULL,
    created_ms INTEGER NOT NULL, modified_ms INTEGER NOT NULL,
    tags TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (account, region, name)
);
CREATE TABLE IF NOT EXISTS schedules (
    account TEXT NOT NULL, region TEXT NOT NULL, grp TEXT NOT NULL, name TEXT NOT NULL,
    spec TEXT NOT NULL,
    revision INTEGER NOT NULL,
    expr_ms INTEGER, real_ms INTEGER, due_ms INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (account, region, grp, name)
);
CREATE INDEX IF NOT EXISTS schedules_due ON schedules (due_ms) WHERE due_ms IS NOT NULL;
";

type RawRow = (
    String,
    String,
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    i64,
);

const COLUMNS: &str =
    "account, region, grp, name, spec, revision, expr_ms, real_ms, due_ms, attempts";

fn raw(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
    ))
}

fn row(
    (account, region, group, name, spec, revision, expr_ms, real_ms, due_ms, attempts): RawRow,
) -> Result<Row, SchedulerError> {
    let plan = match (expr_ms, real_ms, due_ms) {
        (Some(expr_ms), Some(real_ms), Some(due_ms)) => Some(Plan {
            expr_ms,
            real_ms,
            due_ms,
        }),
        _ => None,
    };
    Ok(Row {
        key: Key {
            account,
            region,
            group,
            name,
        },
        spec: serde_json::from_str(&spec).map_err(json)?,
        revision,
        plan,
        attempts: attempts.max(0) as u32,
    })
}

impl Store {
    pub fn open(path: &Path) -> Result<Self, SchedulerError> {
        let conn = Connection::open(path).map_err(db)?;
        conn.execute_batch(SCHEMA).map_err(db)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, SchedulerError>,
    ) -> Result<T, SchedulerError> {
        let mut conn = self
            .conn
            .lock()
            .map_err(|_| SchedulerError::Store("the schedule store's lock is poisoned".into()))?;
        f(&mut conn)
    }

    /// The default group exists in every account and region.
    pub fn ensure_default(&self, scope: &Scope, now_ms: i64) -> Result<(), SchedulerError> {
        self.with(|c| {
            c.execute(
                "INSERT OR IGNORE INTO groups (account, region, name, created_ms, modified_ms) VALUES (?1, ?2, 'default', ?3, ?3)",
                params![scope.account.as_str(), scope.region.as_str(), now_ms],
            )
            .map_err(db)?;
            Ok(())
        })
    }

    pub fn group(&self, scope: &Scope, name: &str) -> Result<Option<Group>, SchedulerError> {
        self.with(|c| {
            let g = c
                .query_row(
                    "SELECT name, created_ms, modified_ms, tags FROM groups WHERE account = ?1 AND region = ?2 AND name = ?3",
                    params![scope.account.as_str(), scope.region.as_str(), name],
                    |r| Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?, r.get::<_, String>(3)?)),
                )
                .optional()
                .map_err(db)?;
            g.map(|(name, created_ms, modified_ms, tags)| {
                Ok(Group {
                    name,
                    created_ms,
                    modified_ms,
                    tags: serde_json::from_str(&tags).map_err(json)?,
                })
            })
            .transpose()
        })
    }

    pub fn groups(&self, scope: &Scope) -> Result<Vec<Group>, SchedulerError> {
        self.with(|c| {
            let mut st = c
                .prepare("SELECT name, created_ms, modified_ms, tags FROM groups WHERE account = ?1 AND region = ?2 ORDER BY name")
                .map_err(db)?;
            let rows = st
                .query_map(params![scope.account.as_str(), scope.region.as_str()], |r| {
                    Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?, r.get::<_, String>(3)?))
                })
                .map_err(db)?;
            let mut out = Vec::new();
            for r in rows {
                let (name, created_ms, modified_ms, tags) = r.map_err(db)?;
                out.push(Group {
                    name,
                    created_ms,
                    modified_ms,
                    tags: serde_json::from_str(&tags).map_err(json)?,
                });
            }
            Ok(out)
        })
    }

    /// Creates a group; `false` if it exists.
    pub fn create_group(&self, scope: &Scope, g: &Group) -> Result<bool, SchedulerError> {
        let tags = serde_json::to_string(&g.tags).map_err(json)?;
        self.with(|c| {
            let n = c
                .execute(
                    "INSERT OR IGNORE INTO groups (account, region, name, created_ms, modified_ms, tags) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![scope.account.as_str(), scope.region.as_str(), g.name, g.created_ms, g.modified_ms, tags],
                )
                .map_err(db)?;
            Ok(n == 1)
        })
    }

    pub fn set_group_tags(
        &self,
        scope: &Scope,
        name: &str,
        tags: &[(String, String)],
    ) -> Result<bool, SchedulerError> {
        let tags = serde_json::to_string(tags).map_err(json)?;
        self.with(|c| {
            let n = c
                .execute(
                    "UPDATE groups SET tags = ?4 WHERE account = ?1 AND region = ?2 AND name = ?3",
                    params![scope.account.as_str(), scope.region.as_str(), name, tags],
                )
                .map_err(db)?;
            Ok(n == 1)
        })
    }

    /// Deletes a group and every schedule in it; `false` if it did not exist.
    pub fn delete_group(&self, scope: &Scope, name: &str) -> Result<bool, SchedulerError> {
        self.with(|c| {
            let tx = c.transaction().map_err(db)?;
            tx.execute(
                "DELETE FROM schedules WHERE account = ?1 AND region = ?2 AND grp = ?3",
                params![scope.account.as_str(), scope.region.as_str(), name],
            )
            .map_err(db)?;
            let n = tx
                .execute(
                    "DELETE FROM groups WHERE account = ?1 AND region = ?2 AND name = ?3",
                    params![scope.account.as_str(), scope.region.as_str(), name],
                )
                .map_err(db)?;
            tx.commit().map_err(db)?;
            Ok(n == 1)
        })
    }

    pub fn get(&self, key: &Key) -> Result<Option<Row>, SchedulerError> {
        self.with(|c| {
            c.query_row(
                &format!("SELECT {COLUMNS} FROM schedules WHERE account = ?1 AND region = ?2 AND grp = ?3 AND name = ?4"),
                params![key.account, key.region, key.group, key.name],
                raw,
            )
            .optional()
            .map_err(db)?
            .map(row)
            .transpose()
        })
    }

    /// Stores a new schedule; `false` if one of that name exists in the group.
    pub fn insert(
        &self,
        key: &Key,
        spec: &Spec,
        plan: Option<Plan>,
    ) -> Result<bool, SchedulerError> {
        let spec = serde_json::to_string(spec).map_err(json)?;
        self.with(|c| {
            let n = c
                .execute(
                    "INSERT OR IGNORE INTO schedules (account, region, grp, name, spec, revision, expr_ms, real_ms, due_ms, attempts) VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?7, ?8, 0)",
                    params![key.account, key.region, key.group, key.name, spec,
                        plan.map(|p| p.expr_ms), plan.map(|p| p.real_ms), plan.map(|p| p.due_ms)],
                )
                .map_err(db)?;
            Ok(n == 1)
        })
    }

    /// Replaces a schedule's definition and next fire; `false` if it does
    /// not exist.
    pub fn replace(
        &self,
        key: &Key,
        spec: &Spec,
        plan: Option<Plan>,
    ) -> Result<bool, SchedulerError> {
        let spec = serde_json::to_string(spec).map_err(json)?;
        self.with(|c| {
            let n = c
                .execute(
                    "UPDATE schedules SET spec = ?5, revision = revision + 1, expr_ms = ?6, real_ms = ?7, due_ms = ?8, attempts = 0 WHERE account = ?1 AND region = ?2 AND grp = ?3 AND name = ?4",
                    params![key.account, key.region, key.group, key.name, spec,
                        plan.map(|p| p.expr_ms), plan.map(|p| p.real_ms), plan.map(|p| p.due_ms)],
                )
                .map_err(db)?;
            Ok(n == 1)
        })
    }

    pub fn delete(&self, key: &Key) -> Result<bool, SchedulerError> {
        self.with(|c| {
            let n = c
                .execute(
                    "DELETE FROM schedules WHERE account = ?1 AND region = ?2 AND grp = ?3 AND name = ?4",
                    params![key.account, key.region, key.group, key.name],
                )
                .map_err(db)?;
            Ok(n == 1)
        })
    }

    /// A scope's schedules, ordered by group and name.
    pub fn list(&self, scope: &Scope, group: Option<&str>) -> Result<Vec<Row>, SchedulerError> {
        self.with(|c| {
            let mut st = c
                .prepare(&format!(
                    "SELECT {COLUMNS} FROM schedules WHERE account = ?1 AND region = ?2 AND (?3 IS NULL OR grp = ?3) ORDER BY grp, name"
                ))
                .map_err(db)?;
            let rows = st
                .query_map(
                    params![scope.account.as_str(), scope.region.as_str(), group],
                    raw,
                )
                .map_err(db)?;
            let mut out = Vec::new();
            for r in rows {
                out.push(row(r.map_err(db)?)?);
            }
            Ok(out)
        })
    }

    /// Schedules due at `now_ms`, earliest first.
    pub fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<Row>, SchedulerError> {
        self.with(|c| {
            let mut st = c
                .prepare(&format!(
                    "SELECT {COLUMNS} FROM schedules WHERE due_ms IS NOT NULL AND due_ms <= ?1 ORDER BY due_ms LIMIT ?2"
                ))
                .map_err(db)?;
            let rows = st
                .query_map(params![now_ms, limit as i64], raw)
                .map_err(db)?;
            let mut out = Vec::new();
            for r in rows {
                out.push(row(r.map_err(db)?)?);
            }
            Ok(out)
        })
    }

    /// When the next schedule is due.
    pub fn earliest_due(&self) -> Result<Option<i64>, SchedulerError> {
        self.with(|c| {
            c.query_row(
                "SELECT MIN(due_ms) FROM schedules WHERE due_ms IS NOT NULL",
                [],
                |r| r.get(0),
            )
            .map_err(db)
        })
    }

    /// Records a fire's outcome if the schedule is still at `revision`:
    /// its next fire, or (none left) its end: removed, or kept without a
    /// next fire. `false` if the schedule changed meanwhile.
    pub fn record_fired(
        &self,
        key: &Key,
        revision: i64,
        next: Option<Plan>,
        delete: bool,
    ) -> Result<bool, SchedulerError> {
        self.with(|c| {
            let n = if next.is_none() && delete {
                c.execute(
                    "DELETE FROM schedules WHERE account = ?1 AND region = ?2 AND grp = ?3 AND name = ?4 AND revision = ?5",
                    params![key.account, key.region, key.group, key.name, revision],
                )
            } else {
                c.execute(
                    "UPDATE schedules SET expr_ms = ?6, real_ms = ?7, due_ms = ?8, attempts = 0 WHERE account = ?1 AND region = ?2 AND grp = ?3 AND name = ?4 AND revision = ?5",
                    params![key.account, key.region, key.group, key.name, revision,
                        next.map(|p| p.expr_ms), next.map(|p| p.real_ms), next.map(|p| p.due_ms)],
                )
            }
            .map_err(db)?;
            Ok(n == 1)
        })
    }

    /// Puts a failed delivery off to `due_ms`, counting the attempt.
    pub fn record_retry(
        &self,
        key: &Key,
        revision: i64,
        due_ms: i64,
        attempts: u32,
    ) -> Result<bool, SchedulerError> {
        self.with(|c| {
            let n = c
                .execute(
                    "UPDATE schedules SET due_ms = ?6, attempts = ?7 WHERE account = ?1 AND region = ?2 AND grp = ?3 AND name = ?4 AND revision = ?5",
                    params![key.account, key.region, key.group, key.name, revision, due_ms, attempts],
                )
                .map_err(db)?;
            Ok(n == 1)
        })
    }
}
