//! The durable queue behind asynchronous invocation.
//!
//! Two kinds of work wait in it: events for a function (`Invoke` with
//! `InvocationType: Event`, destination records, dead letters sent to a
//! function) and HTTP deliveries (destination records and dead letters sent
//! to a webhook). [`Queue::enqueue`] returns only once the work is on disk:
//! a writer thread gathers every pending change into one SQLite transaction
//! and fsyncs once for all of them (group commit), so durability costs one
//! fsync per batch, not per event.
//!
//! An in-memory index orders the work by due time; [`Queue::next_due`] hands
//! out what is due, and [`Queue::finish`] records the outcome of an attempt —
//! a retry time, or removal together with the follow-up work it produces — in
//! one transaction, so an outcome and its consequences are never half
//! written. Work handed out but not finished when the process dies is handed
//! out again after a restart (at least once), with the same request id.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use model::Scope;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{Notify, oneshot};

mod schema;

/// Identifies one piece of queued work.
pub type WorkId = i64;

#[derive(Debug, Clone, thiserror::Error)]
pub enum QueueError {
    #[error("event queue storage failed during {op}: {detail}")]
    Storage { op: &'static str, detail: String },
    #[error("the event queue is shut down")]
    Closed,
    #[error("queued work {0} does not exist")]
    Missing(WorkId),
    /// New work is refused: the disk is at its reserve.
    #[error(transparent)]
    DiskFull(#[from] disk::DiskFull),
    /// A write failed because the disk has no space left.
    #[error("the platform's disk is full: the event queue could not write ({op})")]
    NoSpace { op: &'static str },
}

fn storage(op: &'static str) -> impl Fn(rusqlite::Error) -> QueueError {
    move |e| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DiskFull) => QueueError::NoSpace { op },
        _ => QueueError::Storage {
            op,
            detail: e.to_string(),
        },
    }
}

/// What a piece of work does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    /// Invoke a function asynchronously. `qualifier` is as the caller gave it
    /// (`None` for an unqualified name).
    Function {
        scope: Scope,
        name: String,
        qualifier: Option<String>,
        client_context: Option<String>,
    },
    /// POST the payload to a URL with these headers.
    Http {
        url: String,
        headers: Vec<(String, String)>,
    },
}

/// Work to add to the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWork {
    /// Kept across every attempt: the handler's idempotency key.
    pub request_id: String,
    pub recipient: Recipient,
    pub payload: Bytes,
    pub enqueued_ms: i64,
    /// When it may first run (usually `enqueued_ms`).
    pub due_ms: i64,
}

/// Work handed out by [`Queue::next_due`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub id: WorkId,
    pub request_id: String,
    pub recipient: Recipient,
    pub payload: Bytes,
    pub enqueued_ms: i64,
    /// Attempts that reached the function (or the URL) so far.
    pub attempts: u32,
    /// Consecutive retries after throttling or platform errors.
    pub throttles: u32,
    /// What the last attempt returned, as its handler recorded it.
    pub last_result: Option<String>,
}

/// The outcome of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    /// Try again at `due_ms` with these counters.
    Retry {
        due_ms: i64,
        attempts: u32,
        throttles: u32,
        last_result: Option<String>,
    },
    /// Finished (delivered, or given up): remove it and add `follow_up` in
    /// the same transaction.
    Done { follow_up: Vec<NewWork> },
}

/// Queue depth of one function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionDepth {
    pub scope: Scope,
    pub name: String,
    /// Events waiting or running.
    pub depth: u64,
    /// Enqueue time of the oldest of them.
    pub oldest_enqueued_ms: i64,
}

/// Totals over the whole queue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub functions: Vec<FunctionDepth>,
    /// HTTP deliveries waiting or running.
    pub deliveries: u64,
}

#[derive(Debug, Clone)]
struct Meta {
    function: Option<(Scope, String)>,
    enqueued_ms: i64,
    due_ms: i64,
}

#[derive(Default)]
struct Index {
    ready: BTreeSet<(i64, WorkId)>,
    meta: HashMap<WorkId, Meta>,
    inflight: HashSet<WorkId>,
}

impl Index {
    fn add(&mut self, id: WorkId, meta: Meta) {
        self.ready.insert((meta.due_ms, id));
        self.meta.insert(id, meta);
    }
}

enum Op {
    Enqueue(
        Vec<NewWork>,
        oneshot::Sender<Result<Vec<WorkId>, QueueError>>,
    ),
    Finish(
        WorkId,
        Completion,
        oneshot::Sender<Result<Vec<WorkId>, QueueError>>,
    ),
}

struct Shared {
    index: Mutex<Index>,
    notify: Notify,
    read: Mutex<Connection>,
    /// Transactions committed (each one fsync).
    commits: std::sync::atomic::AtomicU64,
}

/// The queue (cheap to clone).
#[derive(Clone)]
pub struct Queue {
    shared: Arc<Shared>,
    tx: std::sync::mpsc::Sender<Op>,
    /// New work is refused when the disk is at its reserve.
    disk: disk::DiskGuard,
}

fn now_ms() -> i64 {
    model::time_fmt::now_ms()
}

impl Queue {
    /// Opens (or creates) the queue at `path`; everything stored becomes due
    /// again, including work that was running when the process stopped.
    pub fn open(path: &Path) -> Result<Self, QueueError> {
        let dir = path.parent().unwrap_or(Path::new("."));
        Self::open_with(path, disk::DiskGuard::unreserved(dir))
    }

    /// Like [`Queue::open`]; new work is refused once the disk's free space
    /// falls to `disk`'s reserve (the outcomes of work already queued are
    /// still recorded).
    pub fn open_with(path: &Path, disk: disk::DiskGuard) -> Result<Self, QueueError> {
        let write = schema::open(path)?;
        let read = schema::open(path)?;
        let mut index = Index::default();
        {
            let mut st = read
                .prepare("SELECT id, kind, account, region, target, enqueued_ms, due_ms FROM queue")
                .map_err(storage("recover"))?;
            let rows = st
                .query_map([], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, i64>(5)?,
                        r.get::<_, i64>(6)?,
                    ))
                })
                .map_err(storage("recover"))?;
            for row in rows {
                let (id, kind, account, region, target, enqueued_ms, due_ms) =
                    row.map_err(storage("recover"))?;
                let function = (kind == schema::KIND_FUNCTION)
                    .then(|| scope_of(&account, &region).map(|s| (s, target)))
                    .flatten();
                index.add(
                    id,
                    Meta {
                        function,
                        enqueued_ms,
                        due_ms,
                    },
                );
            }
        }
        let shared = Arc::new(Shared {
            index: Mutex::new(index),
            notify: Notify::new(),
            read: Mutex::new(read),
            commits: std::sync::atomic::AtomicU64::new(0),
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let s = shared.clone();
        std::thread::Builder::new()
            .name("event-queue".into())
            .spawn(move || write_loop(write, rx, &s))
            .map_err(|e| QueueError::Storage {
                op: "start writer",
                detail: e.to_string(),
            })?;
        Ok(Self { shared, tx, disk })
    }

    fn index(&self) -> std::sync::MutexGuard<'_, Index> {
        self.shared.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds work; returns once it is durable on disk.
    pub async fn enqueue(&self, work: Vec<NewWork>) -> Result<Vec<WorkId>, QueueError> {
        let bytes: usize = work.iter().map(|w| w.payload.len() + 512).sum();
        self.disk.check(bytes as u64)?;
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Op::Enqueue(work, ack))
            .map_err(|_| QueueError::Closed)?;
        done.await.map_err(|_| QueueError::Closed)?
    }

    /// Records the outcome of an attempt at claimed work; returns once it is
    /// durable.
    pub async fn finish(&self, id: WorkId, completion: Completion) -> Result<(), QueueError> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Op::Finish(id, completion, ack))
            .map_err(|_| QueueError::Closed)?;
        done.await.map_err(|_| QueueError::Closed)?.map(drop)
    }

    /// Waits until some work is due, and hands it out (to one caller only).
    pub async fn next_due(&self) -> Result<Claimed, QueueError> {
        loop {
            let notified = self.shared.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let wait = {
                let mut ix = self.index();
                let now = now_ms();
                match ix.ready.first().copied() {
                    Some((due, id)) if due <= now => {
                        ix.ready.remove(&(due, id));
                        ix.inflight.insert(id);
                        drop(ix);
                        match self.load(id) {
                            Ok(c) => return Ok(c),
                            // Gone from storage: forget it.
                            Err(QueueError::Missing(_)) => {
                                let mut ix = self.index();
                                ix.inflight.remove(&id);
                                ix.meta.remove(&id);
                                continue;
                            }
                            Err(e) => {
                                // Put it back so that it is not lost.
                                let mut ix = self.index();
                                ix.inflight.remove(&id);
                                ix.ready.insert((now + 1000, id));
                                return Err(e);
                            }
                        }
                    }
                    Some((due, _)) => Some(Duration::from_millis((due - now) as u64)),
                    None => None,
                }
            };
            match wait {
                Some(d) => {
                    tokio::select! {
                        _ = &mut notified => {}
                        _ = tokio::time::sleep(d) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    fn load(&self, id: WorkId) -> Result<Claimed, QueueError> {
        let conn = self.shared.read.lock().unwrap_or_else(|p| p.into_inner());
        let mut st = conn
            .prepare_cached(
                "SELECT request_id, kind, account, region, target, qualifier, extra, payload,
                        enqueued_ms, attempts, throttles, last_result FROM queue WHERE id = ?1",
            )
            .map_err(storage("load"))?;
        let row = st
            .query_row([id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, Option<String>>(6)?,
                    r.get::<_, Vec<u8>>(7)?,
                    r.get::<_, i64>(8)?,
                    r.get::<_, u32>(9)?,
                    r.get::<_, u32>(10)?,
                    r.get::<_, Option<String>>(11)?,
                ))
            })
            .optional()
            .map_err(storage("load"))?
            .ok_or(QueueError::Missing(id))?;
        let (
            request_id,
            kind,
            account,
            region,
            target,
            qualifier,
            extra,
            payload,
            enqueued_ms,
            attempts,
            throttles,
            last_result,
        ) = row;
        let recipient = if kind == schema::KIND_FUNCTION {
            Recipient::Function {
                scope: scope_of(&account, &region).ok_or_else(|| QueueError::Storage {
                    op: "load",
                    detail: format!("stored scope {account}/{region} is not valid"),
                })?,
                name: target,
                qualifier,
                client_context: extra,
            }
        } else {
            Recipient::Http {
                url: target,
                headers: extra
                    .as_deref()
                    .and_then(|h| serde_json::from_str(h).ok())
                    .unwrap_or_default(),
            }
        };
        Ok(Claimed {
            id,
            request_id,
            recipient,
            payload: Bytes::from(payload),
            enqueued_ms,
            attempts,
            throttles,
            last_result,
        })
    }

    /// Depth and oldest event per function, and the deliveries waiting.
    pub fn stats(&self) -> QueueStats {
        let ix = self.index();
        let mut per: HashMap<(&Scope, &str), (u64, i64)> = HashMap::new();
        let mut deliveries = 0;
        for m in ix.meta.values() {
            match &m.function {
                Some((scope, name)) => {
                    let e = per
                        .entry((scope, name.as_str()))
                        .or_insert((0, m.enqueued_ms));
                    e.0 += 1;
                    e.1 = e.1.min(m.enqueued_ms);
                }
                None => deliveries += 1,
            }
        }
        let mut functions: Vec<FunctionDepth> = per
            .into_iter()
            .map(|((scope, name), (depth, oldest))| FunctionDepth {
                scope: scope.clone(),
                name: name.to_owned(),
                depth,
                oldest_enqueued_ms: oldest,
            })
            .collect();
        functions.sort_by(|a, b| {
            (a.scope.account.as_str(), a.scope.region.as_str(), &a.name).cmp(&(
                b.scope.account.as_str(),
                b.scope.region.as_str(),
                &b.name,
            ))
        });
        QueueStats {
            functions,
            deliveries,
        }
    }

    /// Items stored (waiting or running).
    pub fn len(&self) -> usize {
        self.index().meta.len()
    }

    /// Transactions the writer has committed since the queue was opened:
    /// one fsync each, however many changes each carried.
    pub fn commits(&self) -> u64 {
        self.shared
            .commits
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn scope_of(account: &str, region: &str) -> Option<Scope> {
    Some(Scope::new(
        model::AccountId::parse(account).ok()?,
        model::Region::parse(region).ok()?,
    ))
}

/// The writer: applies every waiting change in one transaction, commits
/// (one fsync), updates the index, then acknowledges them all.
fn write_loop(mut conn: Connection, rx: std::sync::mpsc::Receiver<Op>, shared: &Shared) {
    while let Ok(first) = rx.recv() {
        let mut ops = vec![first];
        while ops.len() < 4096 {
            match rx.try_recv() {
                Ok(op) => ops.push(op),
                Err(_) => break,
            }
        }
        let applied = apply(&mut conn, &ops);
        match applied {
            Ok(results) => {
                shared
                    .commits
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                {
                    let mut ix = shared.index.lock().unwrap_or_else(|p| p.into_inner());
                    for (op, ids) in ops.iter().zip(&results) {
                        match op {
                            Op::Enqueue(work, _) => {
                                for (w, id) in work.iter().zip(ids) {
                                    ix.add(*id, meta_of(w));
                                }
                            }
                            Op::Finish(id, completion, _) => {
                                ix.inflight.remove(id);
                                match completion {
                                    Completion::Retry { due_ms, .. } => {
                                        if let Some(m) = ix.meta.get_mut(id) {
                                            m.due_ms = *due_ms;
                                            ix.ready.insert((*due_ms, *id));
                                        }
                                    }
                                    Completion::Done { follow_up } => {
                                        ix.meta.remove(id);
                                        for (w, nid) in follow_up.iter().zip(ids) {
                                            ix.add(*nid, meta_of(w));
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                shared.notify.notify_waiters();
                for (op, ids) in ops.into_iter().zip(results) {
                    let ack = match op {
                        Op::Enqueue(_, ack) | Op::Finish(_, _, ack) => ack,
                    };
                    let _ = ack.send(Ok(ids));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, changes = ops.len(), "event queue write failed");
                for op in ops {
                    let ack = match op {
                        Op::Enqueue(_, ack) | Op::Finish(_, _, ack) => ack,
                    };
                    let _ = ack.send(Err(e.clone()));
                }
            }
        }
    }
}

fn meta_of(w: &NewWork) -> Meta {
    Meta {
        function: match &w.recipient {
            Recipient::Function { scope, name, .. } => Some((scope.clone(), name.clone())),
            Recipient::Http { .. } => None,
        },
        enqueued_ms: w.enqueued_ms,
        due_ms: w.due_ms,
    }
}

fn apply(conn: &mut Connection, ops: &[Op]) -> Result<Vec<Vec<WorkId>>, QueueError> {
    let tx = conn.transaction().map_err(storage("begin"))?;
    let mut results = Vec::with_capacity(ops.len());
    for op in ops {
        match op {
            Op::Enqueue(work, _) => {
                let mut ids = Vec::with_capacity(work.len());
                for w in work {
                    ids.push(schema::insert(&tx, w)?);
                }
                results.push(ids);
            }
            Op::Finish(
                id,
                Completion::Retry {
                    due_ms,
                    attempts,
                    throttles,
                    last_result,
                },
                _,
            ) => {
                tx.prepare_cached(
                    "UPDATE queue SET due_ms = ?2, attempts = ?3, throttles = ?4, last_result = ?5 WHERE id = ?1",
                )
                .and_then(|mut st| st.execute(params![id, due_ms, attempts, throttles, last_result]))
                .map_err(storage("reschedule"))?;
                results.push(Vec::new());
            }
            Op::Finish(id, Completion::Done { follow_up }, _) => {
                tx.prepare_cached("DELETE FROM queue WHERE id = ?1")
                    .and_then(|mut st| st.execute([id]))
                    .map_err(storage("remove"))?;
                let mut ids = Vec::with_capacity(follow_up.len());
                for w in follow_up {
                    ids.push(schema::insert(&tx, w)?);
                }
                results.push(ids);
            }
        }
    }
    tx.commit().map_err(storage("commit"))?;
    Ok(results)
}

#[cfg(test)]
mod tests;
