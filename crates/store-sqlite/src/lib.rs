//! [`Store`] on an embedded SQLite database in WAL mode.
//!
//! Records are kept as JSON documents keyed by (account, region, name); a side
//! table of blob references lets the blob store collect unused code safely. All
//! SQLite work runs on tokio's blocking pool behind one connection mutex: the
//! control plane is not a hot path (the invoke path caches what it reads).

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use model::{FunctionName, FunctionRecord, LayerRecord, Scope};
use rusqlite::{Connection, OptionalExtension, params};
use store::{Page, Store, StoreError, Stored, Usage};

const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS functions (
    account TEXT NOT NULL,
    region  TEXT NOT NULL,
    name    TEXT NOT NULL,
    etag    INTEGER NOT NULL,
    record  TEXT NOT NULL,
    PRIMARY KEY (account, region, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blob_refs (
    account TEXT NOT NULL,
    region  TEXT NOT NULL,
    name    TEXT NOT NULL,
    version TEXT NOT NULL,
    digest  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS blob_refs_owner ON blob_refs (account, region, name, version);
CREATE TABLE IF NOT EXISTS layers (
    account TEXT NOT NULL,
    region  TEXT NOT NULL,
    name    TEXT NOT NULL,
    etag    INTEGER NOT NULL,
    record  TEXT NOT NULL,
    PRIMARY KEY (account, region, name)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS blob_refs_digest ON blob_refs (digest);
";

#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

fn backend(op: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| StoreError::Backend {
        op,
        detail: e.to_string(),
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, in WAL mode with full
    /// synchronous commits.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(|e| StoreError::Backend {
            op: "open",
            detail: format!("{}: {e}", path.display()),
        })?;
        Self::init(conn)
    }

    /// A private in-memory database (tests).
    pub fn open_in_memory() -> Result<Self, StoreError> {
        let conn = Connection::open_in_memory().map_err(backend("open"))?;
        Self::init(conn)
    }

    fn init(conn: Connection) -> Result<Self, StoreError> {
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(backend("set journal_mode"))?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(backend("set synchronous"))?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(backend("set foreign_keys"))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(backend("set busy_timeout"))?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(backend("read schema version"))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Backend {
                op: "open",
                detail: format!(
                    "database schema version {version} is newer than this build understands ({SCHEMA_VERSION})"
                ),
            });
        }
        conn.execute_batch(SCHEMA)
            .map_err(backend("create schema"))?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(backend("write schema version"))?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` with the connection on the blocking pool.
    async fn with<T: Send + 'static>(
        &self,
        op: &'static str,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().map_err(|_| StoreError::Backend {
                op,
                detail: "connection mutex poisoned".into(),
            })?;
            f(&mut guard)
        })
        .await
        .map_err(|e| StoreError::Backend {
            op,
            detail: e.to_string(),
        })?
    }
}

fn encode(record: &FunctionRecord) -> Result<String, StoreError> {
    serde_json::to_string(record).map_err(|e| StoreError::Backend {
        op: "encode record",
        detail: e.to_string(),
    })
}

fn decode(json: &str) -> Result<FunctionRecord, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Backend {
        op: "decode record",
        detail: e.to_string(),
    })
}

fn function_what(scope: &Scope, name: &str) -> String {
    format!(
        "function {name} in account {} {}",
        scope.account, scope.region
    )
}

/// Rewrites the blob references of one owner (a function and all its
/// versions, or a layer as `layer:<name>`).
fn write_owner_refs<'a>(
    tx: &rusqlite::Transaction<'_>,
    scope: &Scope,
    owner: &str,
    refs: impl Iterator<Item = (String, &'a str)>,
) -> Result<(), StoreError> {
    tx.execute(
        "DELETE FROM blob_refs WHERE account = ?1 AND region = ?2 AND name = ?3",
        params![scope.account.as_str(), scope.region.as_str(), owner],
    )
    .map_err(backend("clear blob refs"))?;
    let mut st = tx
        .prepare_cached(
            "INSERT INTO blob_refs (account, region, name, version, digest) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .map_err(backend("write blob ref"))?;
    for (version, digest) in refs {
        st.execute(params![
            scope.account.as_str(),
            scope.region.as_str(),
            owner,
            version,
            digest
        ])
        .map_err(backend("write blob ref"))?;
    }
    Ok(())
}

/// Every package a function's versions use: their code and layers.
fn write_refs(
    tx: &rusqlite::Transaction<'_>,
    scope: &Scope,
    record: &FunctionRecord,
) -> Result<(), StoreError> {
    let refs = std::iter::once(&record.latest)
        .chain(record.versions.values())
        .flat_map(|cfg| {
            std::iter::once(&cfg.code.digest_hex)
                .chain(cfg.layers.iter().map(|l| &l.code.digest_hex))
                .map(move |d| (cfg.version.clone(), d.as_str()))
        });
    write_owner_refs(tx, scope, record.latest.name.as_str(), refs)
}

fn layer_owner(name: &str) -> String {
    format!("layer:{name}")
}

fn decode_layer(json: &str) -> Result<LayerRecord, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Backend {
        op: "decode layer",
        detail: e.to_string(),
    })
}

/// The tables of records keyed by (account, region, name).
#[derive(Clone, Copy)]
enum Table {
    Functions,
    Layers,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Self::Functions => "functions",
            Self::Layers => "layers",
        }
    }
}

/// One record and its etag, if the scope has one by that name.
fn get_record<T>(
    conn: &Connection,
    table: Table,
    scope: &Scope,
    name: &str,
    decode: fn(&str) -> Result<T, StoreError>,
) -> Result<Option<Stored<T>>, StoreError> {
    let sql = format!(
        "SELECT etag, record FROM {} WHERE account = ?1 AND region = ?2 AND name = ?3",
        table.name()
    );
    let row: Option<(i64, String)> = conn
        .query_row(
            &sql,
            params![scope.account.as_str(), scope.region.as_str(), name],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(backend("get"))?;
    row.map(|(etag, json)| {
        Ok(Stored {
            value: decode(&json)?,
            etag: etag as u64,
        })
    })
    .transpose()
}

/// One page of a scope's records in name order, after `after`: at most
/// `limit`, and the name to continue after while there are more.
fn list_page<T>(
    conn: &Connection,
    table: Table,
    scope: &Scope,
    after: &str,
    limit: usize,
    decode: fn(&str) -> Result<T, StoreError>,
) -> Result<Page<T>, StoreError> {
    let limit = limit.max(1);
    let sql = format!(
        "SELECT name, record FROM {} WHERE account = ?1 AND region = ?2 AND name > ?3
         ORDER BY name LIMIT ?4",
        table.name()
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(backend("prepare list"))?;
    let mut rows = stmt
        .query_map(
            params![
                scope.account.as_str(),
                scope.region.as_str(),
                after,
                (limit + 1) as i64
            ],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
        )
        .map_err(backend("list"))?;
    let mut items = Vec::with_capacity(limit);
    let mut last = None;
    for row in rows.by_ref().take(limit) {
        let (name, json) = row.map_err(backend("read row"))?;
        items.push(decode(&json)?);
        last = Some(name);
    }
    let more = rows
        .next()
        .transpose()
        .map_err(backend("read row"))?
        .is_some();
    Ok(Page {
        items,
        next: last.filter(|_| more),
    })
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_function(
        &self,
        scope: &Scope,
        record: &FunctionRecord,
    ) -> Result<u64, StoreError> {
        let scope = scope.clone();
        let json = encode(record)?;
        let record = record.clone();
        self.with("create function", move |conn| {
            let tx = conn.transaction().map_err(backend("begin"))?;
            let name = record.latest.name.as_str();
            let inserted = tx
                .execute(
                    "INSERT INTO functions (account, region, name, etag, record) VALUES (?1, ?2, ?3, 1, ?4)
                     ON CONFLICT DO NOTHING",
                    params![scope.account.as_str(), scope.region.as_str(), name, json],
                )
                .map_err(backend("insert function"))?;
            if inserted == 0 {
                return Err(StoreError::AlreadyExists {
                    what: function_what(&scope, name),
                });
            }
            write_refs(&tx, &scope, &record)?;
            tx.commit().map_err(backend("commit"))?;
            Ok(1)
        })
        .await
    }

    async fn get_function(
        &self,
        scope: &Scope,
        name: &FunctionName,
    ) -> Result<Option<Stored<FunctionRecord>>, StoreError> {
        let scope = scope.clone();
        let name = name.clone();
        self.with("get function", move |conn| {
            get_record(conn, Table::Functions, &scope, name.as_str(), decode)
        })
        .await
    }

    async fn list_functions(
        &self,
        scope: &Scope,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<FunctionRecord>, StoreError> {
        let scope = scope.clone();
        let after = after.unwrap_or("").to_owned();
        self.with("list functions", move |conn| {
            list_page(conn, Table::Functions, &scope, &after, limit, decode)
        })
        .await
    }

    async fn update_function(
        &self,
        scope: &Scope,
        record: &FunctionRecord,
        etag: u64,
    ) -> Result<u64, StoreError> {
        let scope = scope.clone();
        let json = encode(record)?;
        let record = record.clone();
        self.with("update function", move |conn| {
            let tx = conn.transaction().map_err(backend("begin"))?;
            let name = record.latest.name.as_str();
            let current: Option<i64> = tx
                .query_row(
                    "SELECT etag FROM functions WHERE account = ?1 AND region = ?2 AND name = ?3",
                    params![scope.account.as_str(), scope.region.as_str(), name],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend("read etag"))?;
            match current {
                None => {
                    return Err(StoreError::NotFound {
                        what: function_what(&scope, name),
                    });
                }
                Some(cur) if cur as u64 != etag => {
                    return Err(StoreError::Conflict {
                        what: function_what(&scope, name),
                    });
                }
                Some(_) => {}
            }
            let next = etag + 1;
            tx.execute(
                "UPDATE functions SET etag = ?4, record = ?5 WHERE account = ?1 AND region = ?2 AND name = ?3",
                params![scope.account.as_str(), scope.region.as_str(), name, next as i64, json],
            )
            .map_err(backend("update function"))?;
            write_refs(&tx, &scope, &record)?;
            tx.commit().map_err(backend("commit"))?;
            Ok(next)
        })
        .await
    }

    async fn delete_function(&self, scope: &Scope, name: &FunctionName) -> Result<(), StoreError> {
        let scope = scope.clone();
        let name = name.clone();
        self.with("delete function", move |conn| {
            let tx = conn.transaction().map_err(backend("begin"))?;
            let keys = params![scope.account.as_str(), scope.region.as_str(), name.as_str()];
            let n = tx
                .execute(
                    "DELETE FROM functions WHERE account = ?1 AND region = ?2 AND name = ?3",
                    keys,
                )
                .map_err(backend("delete function"))?;
            if n == 0 {
                return Err(StoreError::NotFound {
                    what: function_what(&scope, name.as_str()),
                });
            }
            tx.execute(
                "DELETE FROM blob_refs WHERE account = ?1 AND region = ?2 AND name = ?3",
                keys,
            )
            .map_err(backend("delete blob refs"))?;
            tx.commit().map_err(backend("commit"))?;
            Ok(())
        })
        .await
    }

    async fn usage(&self, scope: &Scope) -> Result<Usage, StoreError> {
        let scope = scope.clone();
        self.with("sum usage", move |conn| {
            let keys = params![scope.account.as_str(), scope.region.as_str()];
            let (count, latest_size, reserved) = conn
                .query_row(
                    "SELECT COUNT(*),
                            COALESCE(SUM(json_extract(record, '$.latest.code.size')), 0),
                            COALESCE(SUM(json_extract(record, '$.reserved_concurrency')), 0)
                     FROM functions WHERE account = ?1 AND region = ?2",
                    keys,
                    |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, i64>(2)?,
                        ))
                    },
                )
                .map_err(backend("sum usage"))?;
            // Published versions keep their packages too.
            let versions_size: i64 = conn
                .query_row(
                    "SELECT COALESCE(SUM(json_extract(v.value, '$.code.size')), 0)
                     FROM functions, json_each(functions.record, '$.versions') AS v
                     WHERE account = ?1 AND region = ?2",
                    keys,
                    |r| r.get(0),
                )
                .map_err(backend("sum version sizes"))?;
            let provisioned: i64 = conn
                .query_row(
                    "SELECT COALESCE(SUM(json_extract(p.value, '$.requested')), 0)
                     FROM functions, json_each(functions.record, '$.provisioned') AS p
                     WHERE account = ?1 AND region = ?2
                       AND json_extract(functions.record, '$.reserved_concurrency') IS NULL",
                    keys,
                    |r| r.get(0),
                )
                .map_err(backend("sum provisioned concurrency"))?;
            let layers_size: i64 = conn
                .query_row(
                    "SELECT COALESCE(SUM(json_extract(v.value, '$.code.size')), 0)
                     FROM layers, json_each(layers.record, '$.versions') AS v
                     WHERE account = ?1 AND region = ?2",
                    keys,
                    |r| r.get(0),
                )
                .map_err(backend("sum layer sizes"))?;
            Ok(Usage {
                function_count: count as u64,
                total_code_size: (latest_size + versions_size + layers_size) as u64,
                reserved_concurrency: reserved as u64,
                provisioned_unreserved: provisioned as u64,
            })
        })
        .await
    }

    async fn account_code_size(&self, account: &model::AccountId) -> Result<u64, StoreError> {
        let account = account.as_str().to_owned();
        self.with("sum code size", move |conn| {
            let sum = |sql: &str| -> Result<i64, StoreError> {
                conn.query_row(sql, params![account], |r| r.get(0))
                    .map_err(backend("sum code size"))
            };
            let latest = sum(
                "SELECT COALESCE(SUM(json_extract(record, '$.latest.code.size')), 0)
                 FROM functions WHERE account = ?1",
            )?;
            let versions = sum(
                "SELECT COALESCE(SUM(json_extract(v.value, '$.code.size')), 0)
                 FROM functions, json_each(functions.record, '$.versions') AS v
                 WHERE account = ?1",
            )?;
            let layers = sum(
                "SELECT COALESCE(SUM(json_extract(v.value, '$.code.size')), 0)
                 FROM layers, json_each(layers.record, '$.versions') AS v
                 WHERE account = ?1",
            )?;
            Ok((latest + versions + layers).max(0) as u64)
        })
        .await
    }

    async fn blob_in_use(&self, digest_hex: &str) -> Result<bool, StoreError> {
        let digest = digest_hex.to_owned();
        self.with("query blob refs", move |conn| {
            conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM blob_refs WHERE digest = ?1)",
                params![digest],
                |r| r.get(0),
            )
            .map_err(backend("query blob refs"))
        })
        .await
    }

    async fn scopes(&self) -> Result<Vec<Scope>, StoreError> {
        self.with("list scopes", move |conn| {
            let mut st = conn
                .prepare_cached(
                    "SELECT DISTINCT account, region FROM functions ORDER BY account, region",
                )
                .map_err(backend("list scopes"))?;
            let rows = st
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                .map_err(backend("list scopes"))?;
            let mut out = Vec::new();
            for row in rows {
                let (a, r) = row.map_err(backend("read scope"))?;
                if let (Ok(a), Ok(r)) = (model::AccountId::parse(&a), model::Region::parse(&r)) {
                    out.push(Scope::new(a, r));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn get_layer(
        &self,
        scope: &Scope,
        name: &str,
    ) -> Result<Option<Stored<LayerRecord>>, StoreError> {
        let scope = scope.clone();
        let name = name.to_owned();
        self.with("get layer", move |conn| {
            get_record(conn, Table::Layers, &scope, &name, decode_layer)
        })
        .await
    }

    async fn put_layer(
        &self,
        scope: &Scope,
        record: &LayerRecord,
        etag: Option<u64>,
    ) -> Result<u64, StoreError> {
        let scope = scope.clone();
        let json = serde_json::to_string(record).map_err(|e| StoreError::Backend {
            op: "encode layer",
            detail: e.to_string(),
        })?;
        let record = record.clone();
        self.with("put layer", move |conn| {
            let tx = conn.transaction().map_err(backend("begin"))?;
            let what = || format!("layer {} in account {} {}", record.name, scope.account, scope.region);
            let keys = params![scope.account.as_str(), scope.region.as_str(), record.name];
            let current: Option<i64> = tx
                .query_row(
                    "SELECT etag FROM layers WHERE account = ?1 AND region = ?2 AND name = ?3",
                    keys,
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend("read etag"))?;
            let next = match (current, etag) {
                (None, None) => 1,
                (Some(_), None) => return Err(StoreError::AlreadyExists { what: what() }),
                (None, Some(_)) => return Err(StoreError::NotFound { what: what() }),
                (Some(cur), Some(e)) if cur as u64 != e => {
                    return Err(StoreError::Conflict { what: what() });
                }
                (Some(_), Some(e)) => e + 1,
            };
            tx.execute(
                "INSERT INTO layers (account, region, name, etag, record) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (account, region, name) DO UPDATE SET etag = excluded.etag, record = excluded.record",
                params![scope.account.as_str(), scope.region.as_str(), record.name, next as i64, json],
            )
            .map_err(backend("write layer"))?;
            let refs = record
                .versions
                .values()
                .map(|v| (v.version.to_string(), v.code.digest_hex.as_str()));
            write_owner_refs(&tx, &scope, &layer_owner(&record.name), refs)?;
            tx.commit().map_err(backend("commit"))?;
            Ok(next)
        })
        .await
    }

    async fn list_layers(
        &self,
        scope: &Scope,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<LayerRecord>, StoreError> {
        let scope = scope.clone();
        let after = after.unwrap_or("").to_owned();
        self.with("list layers", move |conn| {
            list_page(conn, Table::Layers, &scope, &after, limit, decode_layer)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    store::conformance_tests!(Arc::new(SqliteStore::open_in_memory().expect("open")));

    #[tokio::test]
    async fn survives_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("meta.db");
        let s = store::conformance::scope("111111111111", "us-east-1");
        {
            let db = SqliteStore::open(&path).expect("open");
            db.create_function(&s, &store::conformance::sample_record("f", "aa"))
                .await
                .expect("create");
        }
        let db = SqliteStore::open(&path).expect("reopen");
        let name = FunctionName::parse("f").expect("name");
        assert!(db.get_function(&s, &name).await.expect("get").is_some());
    }
}
