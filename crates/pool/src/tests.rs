use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use runtimes::{Kind, RuntimeInfo};

use super::*;

const APP: &str = r#"
import os, time
COUNT = 0
def handler(event, context):
    global COUNT
    COUNT += 1
    action = event.get("action")
    print("handling", action)
    if action == "sleep":
        time.sleep(event["seconds"])
    if action == "exit":
        os._exit(event["code"])
    if action == "fail":
        raise ValueError("bad input")
    if action == "flood":
        for _ in range(event["lines"]):
            print("z" * 1000)
    if action == "hog":
        hog = bytearray(event["mb"] * 1024 * 1024)
        for i in range(0, len(hog), 4096):
            hog[i] = 1
    with open("/tmp/marker", "a") as f:
        f.write("x")
    return {"count": COUNT, "pid": os.getpid(), "tmp": len(open("/tmp/marker").read()),
            "remaining": context.get_remaining_time_in_millis()}
"#;

struct Fixture {
    _dirs: Vec<tempfile::TempDir>,
    pool: Pool,
    spec: Arc<FunctionSpec>,
}

fn python() -> RuntimeInfo {
    RuntimeInfo::new(
        "python3.11",
        Kind::Python {
            interpreter: "/usr/bin/python3.11".into(),
            minor: 11,
        },
    )
}

fn fixture(keep_alive: Duration) -> Fixture {
    fixture_with(keep_alive, |state| {
        Arc::new(
            sandbox::NamespaceLauncher::new(&state.join("sandbox"), sandbox::NetworkMode::Isolated)
                .unwrap(),
        )
    })
}

fn fixture_with(
    keep_alive: Duration,
    launcher: impl FnOnce(&std::path::Path) -> Arc<dyn sandbox::Launcher>,
) -> Fixture {
    fixture_with_settings(PoolSettings::with_keep_alive(keep_alive), launcher)
}

fn namespaces(state: &std::path::Path) -> Arc<dyn sandbox::Launcher> {
    Arc::new(
        sandbox::NamespaceLauncher::new(&state.join("sandbox"), sandbox::NetworkMode::Isolated)
            .unwrap(),
    )
}

fn fixture_with_settings(
    settings: PoolSettings,
    launcher: impl FnOnce(&std::path::Path) -> Arc<dyn sandbox::Launcher>,
) -> Fixture {
    let state = tempfile::tempdir().unwrap();
    let code = tempfile::tempdir().unwrap();
    std::fs::write(code.path().join("app.py"), APP).unwrap();
    let launcher = launcher(state.path());
    let runtime_dir = runtimes::clients::install(&state.path().join("runtimes")).unwrap();
    let (sink, _store) = logs::open_store(&state.path().join("logs.db")).unwrap();
    let pool = Pool::new(launcher, runtime_dir, sink, settings);
    let spec = Arc::new(FunctionSpec {
        scope: Arc::new(Scope::new(
            model::AccountId::parse("123456789012").unwrap(),
            model::Region::parse("us-east-1").unwrap(),
        )),
        name: FunctionName::parse("f").unwrap(),
        version: "$LATEST".into(),
        revision: "r1".into(),
        runtime: python(),
        handler: "app.handler".into(),
        memory_mb: 128,
        timeout: Duration::from_secs(3),
        ephemeral_mb: 512,
        variables: vec![],
        code_dir: code.path().to_owned(),
        code_digest: "d1".into(),
        opt_dir: None,
        layer_digests: vec![],
        log_group: "/aws/lambda/f".into(),
        vpc_subnets: vec![],
    });
    Fixture {
        _dirs: vec![state, code],
        pool,
        spec,
    }
}

fn inv(id: &str, payload: &str, timeout: Duration) -> runtime_api::Invocation {
    runtime_api::Invocation {
        request_id: id.into(),
        payload: Bytes::from(payload.to_owned()),
        timeout,
        invoked_arn: "arn:aws:lambda:us-east-1:123456789012:function:f".into(),
        trace_id: "Root=1-00000000-000000000000000000000000;Parent=0000000000000000;Sampled=0"
            .into(),
        client_context: None,
        cognito_identity: None,
    }
}

fn body(c: &Completed) -> serde_json::Value {
    match &c.outcome {
        Outcome::Response(b) => serde_json::from_slice(b).unwrap(),
        other => panic!("not a response: {other:?}"),
    }
}

/// `d` scaled by `LAMBENT_TEST_TIMEOUT_SCALE` (a busy machine is slower).
fn scaled(d: Duration) -> Duration {
    let scale = std::env::var("LAMBENT_TEST_TIMEOUT_SCALE")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(1.0);
    d.mul_f64(scale)
}

/// Waits until the environment's init has ended and been reaped (its
/// `/proc` entry is gone, so no zombie either), failing after `within`
/// (scaled).
async fn ended(env: &Environment, within: Duration) {
    let pid = env.process.pid();
    let limit = scaled(within);
    let deadline = std::time::Instant::now() + limit;
    while env.process.is_alive() || std::path::Path::new(&format!("/proc/{pid}")).exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "environment {} (pid {pid}) still there after {limit:?}",
            env.id()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn cold_then_warm_keeps_globals_and_tmp() {
    let f = fixture(Duration::from_secs(60));
    let mut lease = f.pool.acquire(&f.spec).await.unwrap();
    assert!(lease.is_cold());
    let first = lease
        .invoke(inv("a", "{}", Duration::from_secs(3)), true)
        .await;
    let env_id = lease.env().id().to_owned();
    drop(lease);
    assert!(first.init_duration.is_some(), "cold start reports init");
    let tail = first.log_tail.clone().unwrap();
    assert!(
        tail.contains("START RequestId: a Version: $LATEST\n"),
        "{tail}"
    );
    assert!(tail.contains("handling None\n"), "{tail}");
    assert!(tail.contains("END RequestId: a\n"), "{tail}");
    assert!(tail.contains("REPORT RequestId: a\tDuration: "), "{tail}");
    assert!(tail.contains("\tInit Duration: "), "{tail}");
    assert!(first.max_memory_mb > 1, "measured: {}", first.max_memory_mb);
    assert_eq!(body(&first)["count"], 1);
    let remaining = body(&first)["remaining"].as_u64().unwrap();
    assert!(remaining > 2000 && remaining <= 3000, "{remaining}");

    let mut lease = f.pool.acquire(&f.spec).await.unwrap();
    assert!(!lease.is_cold());
    assert_eq!(lease.env().id(), env_id);
    let second = lease
        .invoke(inv("b", "{}", Duration::from_secs(3)), true)
        .await;
    drop(lease);
    assert!(second.init_duration.is_none());
    assert!(!second.log_tail.clone().unwrap().contains("Init Duration"));
    assert_eq!(body(&second)["count"], 2, "globals persist");
    assert_eq!(body(&second)["tmp"], 2, "/tmp persists");
    assert_eq!(
        f.pool.counts(&f.spec.scope, &f.spec.name, "$LATEST"),
        (1, 0)
    );
}

#[tokio::test]
async fn concurrent_invocations_get_separate_environments() {
    let f = fixture(Duration::from_secs(60));
    let mut a = f.pool.acquire(&f.spec).await.unwrap();
    let mut b = f.pool.acquire(&f.spec).await.unwrap();
    assert_ne!(a.env().id(), b.env().id());
    let (ra, rb) = tokio::join!(
        a.invoke(
            inv(
                "a",
                r#"{"action":"sleep","seconds":0.2}"#,
                Duration::from_secs(3)
            ),
            false
        ),
        b.invoke(
            inv(
                "b",
                r#"{"action":"sleep","seconds":0.2}"#,
                Duration::from_secs(3)
            ),
            false
        ),
    );
    assert_ne!(body(&ra)["pid"], serde_json::Value::Null);
    assert_eq!(body(&ra)["count"], 1);
    assert_eq!(body(&rb)["count"], 1);
    drop((a, b));
    assert_eq!(
        f.pool.counts(&f.spec.scope, &f.spec.name, "$LATEST"),
        (2, 0)
    );
}

#[tokio::test]
async fn timeout_kills_and_replaces_the_environment() {
    let f = fixture(Duration::from_secs(60));
    let mut lease = f.pool.acquire(&f.spec).await.unwrap();
    let started = std::time::Instant::now();
    let done = lease
        .invoke(
            inv(
                "t",
                r#"{"action":"sleep","seconds":30}"#,
                Duration::from_secs(1),
            ),
            true,
        )
        .await;
    let killed = lease.env().clone();
    let id = killed.id().to_owned();
    drop(lease);
    assert_eq!(done.outcome, Outcome::Timeout);
    // Killed, not left to the keep-alive (60 s).
    ended(&killed, Duration::from_secs(10)).await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    let tail = done.log_tail.unwrap();
    assert!(
        tail.contains(" t Task timed out after 1.00 seconds\n"),
        "{tail}"
    );
    assert!(tail.contains("Status: timeout"), "{tail}");
    let mut next = f.pool.acquire(&f.spec).await.unwrap();
    assert!(next.is_cold());
    assert_ne!(next.env().id(), id);
    assert_eq!(
        body(
            &next
                .invoke(inv("n", "{}", Duration::from_secs(3)), false)
                .await
        )["count"],
        1
    );
}

#[tokio::test]
async fn runtime_exit_is_reported_with_its_status() {
    let f = fixture(Duration::from_secs(60));
    let mut lease = f.pool.acquire(&f.spec).await.unwrap();
    let done = lease
        .invoke(
            inv("x", r#"{"action":"exit","code":3}"#, Duration::from_secs(3)),
            true,
        )
        .await;
    assert_eq!(
        done.outcome,
        Outcome::Exited(sandbox::ExitStatus::Exited(3))
    );
    assert!(
        done.log_tail
            .unwrap()
            .contains("Error: Runtime exited with error: exit status 3")
    );
    drop(lease);
    let mut lease = f.pool.acquire(&f.spec).await.unwrap();
    assert!(lease.is_cold(), "a dead environment is not reused");
    let err = lease
        .invoke(
            inv("e", r#"{"action":"fail"}"#, Duration::from_secs(3)),
            false,
        )
        .await;
    match &err.outcome {
        Outcome::FunctionError { error_type, body } => {
            assert_eq!(error_type.as_deref(), Some("ValueError"));
            let doc: serde_json::Value = serde_json::from_slice(body).unwrap();
            assert_eq!(doc["errorMessage"], "bad input");
            assert_eq!(doc["requestId"], "e");
        }
        other => panic!("{other:?}"),
    }
    drop(lease);
    let lease = f.pool.acquire(&f.spec).await.unwrap();
    assert!(!lease.is_cold(), "a function error keeps the environment");
}

#[tokio::test]
async fn new_revision_retires_old_environments() {
    let f = fixture(Duration::from_secs(60));
    let mut lease = f.pool.acquire(&f.spec).await.unwrap();
    lease
        .invoke(inv("1", "{}", Duration::from_secs(3)), false)
        .await;
    let old = lease.env().clone();
    drop(lease);
    let mut changed = (*f.spec).clone();
    changed.revision = "r2".into();
    let changed = Arc::new(changed);
    let lease = f.pool.acquire(&changed).await.unwrap();
    assert!(lease.is_cold());
    assert_ne!(lease.env().id(), old.id());
    // The old one is stopped at once, long before its keep-alive (60 s).
    ended(&old, Duration::from_secs(10)).await;
    drop(lease);
    assert_eq!(
        f.pool.counts(&f.spec.scope, &f.spec.name, "$LATEST"),
        (1, 0)
    );
    // Retiring the function stops its idle environments too.
    let idle = f.pool.acquire(&changed).await.unwrap().env().clone();
    f.pool.retire(&f.spec.scope, &f.spec.name);
    ended(&idle, Duration::from_secs(10)).await;
    assert_eq!(
        f.pool.counts(&f.spec.scope, &f.spec.name, "$LATEST"),
        (0, 0)
    );
}

#[tokio::test]
async fn keep_alive_reaps_idle_environments() {
    let f = fixture(Duration::from_millis(300));
    let mut lease = f.pool.acquire(&f.spec).await.unwrap();
    lease
        .invoke(inv("1", "{}", Duration::from_secs(3)), false)
        .await;
    let env = lease.env().clone();
    drop(lease);
    // Idle past the keep-alive: stopped, and its processes with it.
    ended(&env, Duration::from_secs(10)).await;
    assert_eq!(
        f.pool.counts(&f.spec.scope, &f.spec.name, "$LATEST"),
        (0, 0)
    );
}

#[tokio::test]
async fn memory_limit_kills_with_out_of_memory() {
    let f = fixture(Duration::from_secs(60));
    let mut lease = f.pool.acquire(&f.spec).await.unwrap();
    let done = lease
        .invoke(
            inv("m", r#"{"action":"hog","mb":400}"#, Duration::from_secs(10)),
            true,
        )
        .await;
    assert_eq!(
        done.outcome,
        Outcome::OutOfMemory(sandbox::ExitStatus::Signaled(9)),
        "{:?}",
        done.log_tail
    );
    assert!(
        done.max_memory_mb >= 120 && done.max_memory_mb <= 129,
        "peak at the limit: {}",
        done.max_memory_mb
    );
    assert!(done.log_tail.unwrap().contains("Runtime.OutOfMemory"));
    let killed = lease.env().clone();
    drop(lease);
    // Gone at once, not left to the keep-alive (60 s).
    ended(&killed, Duration::from_secs(10)).await;
    // The platform is fine and the next invocation gets a new environment.
    let mut lease = f.pool.acquire(&f.spec).await.unwrap();
    assert!(lease.is_cold());
    assert_eq!(
        body(
            &lease
                .invoke(inv("n", "{}", Duration::from_secs(3)), false)
                .await
        )["count"],
        1
    );
}

#[tokio::test]
async fn idle_environments_freeze_and_thaw_on_demand() {
    let f = fixture(Duration::from_secs(60));
    let mut lease = f.pool.acquire(&f.spec).await.unwrap();
    lease
        .invoke(inv("1", "{}", Duration::from_secs(3)), false)
        .await;
    let env = lease.env().clone();
    drop(lease);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !env.process.is_frozen() {
        assert!(std::time::Instant::now() < deadline, "never frozen");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut lease = f.pool.acquire(&f.spec).await.unwrap();
    assert_eq!(lease.env().id(), env.id());
    assert!(!env.process.is_frozen(), "thawed when taken");
    let done = lease
        .invoke(inv("2", "{}", Duration::from_secs(3)), false)
        .await;
    assert_eq!(body(&done)["count"], 2);
}

/// Starts environments the way a loaded host does: each sandbox takes a
/// long, blocking while to build.
struct SlowLauncher {
    inner: sandbox::DirectLauncher,
    setup: Duration,
}

impl sandbox::Launcher for SlowLauncher {
    fn launch(
        &self,
        spec: &sandbox::LaunchSpec,
    ) -> Result<sandbox::Launched, sandbox::LaunchError> {
        std::thread::sleep(self.setup);
        self.inner.launch(spec)
    }

    fn isolation(&self) -> &'static str {
        "none (test)"
    }
}

#[test]
fn warm_invocations_go_on_during_a_burst_of_cold_starts() {
    // As in the server: two workers, and every request a task on them.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async { tokio::spawn(burst_beside_warm_invocations()).await.unwrap() });
}

async fn burst_beside_warm_invocations() {
    const SETUP: Duration = Duration::from_millis(1500);
    let f = fixture_with(Duration::from_secs(60), |_| {
        Arc::new(SlowLauncher {
            inner: sandbox::DirectLauncher::new().unwrap(),
            setup: SETUP,
        })
    });
    // One warm environment of `f`.
    let mut lease = f.pool.acquire(&f.spec).await.unwrap();
    lease
        .invoke(inv("w0", "{}", Duration::from_secs(10)), false)
        .await;
    drop(lease);
    // Cold starts of another function, more than there are workers; each
    // keeps its environment, so each is a cold start.
    let other = Arc::new(FunctionSpec {
        name: FunctionName::parse("other").unwrap(),
        ..(*f.spec).clone()
    });
    let burst: Vec<_> = (0..6)
        .map(|_| {
            let (pool, spec) = (f.pool.clone(), other.clone());
            tokio::spawn(async move { pool.acquire(&spec).await })
        })
        .collect();
    // A request arrives from outside the runtime (as a connection would)
    // while the burst is under way; its latency is measured by that
    // outside thread, which no blocked worker can hold up.
    let handle = tokio::runtime::Handle::current();
    let (pool, spec) = (f.pool.clone(), f.spec.clone());
    let client = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        let started = std::time::Instant::now();
        let (tx, rx) = std::sync::mpsc::channel();
        handle.spawn(async move {
            let mut lease = pool.acquire(&spec).await.unwrap();
            let done = lease
                .invoke(inv("w1", "{}", Duration::from_secs(10)), false)
                .await;
            let _ = tx.send((done, lease.is_cold()));
        });
        let (done, cold) = rx.recv().unwrap();
        (started.elapsed(), done, cold)
    });
    let (warm, done, cold) = tokio::task::spawn_blocking(move || client.join().unwrap())
        .await
        .unwrap();
    assert!(!cold);
    assert_eq!(body(&done)["count"], 2);
    // A warm invocation takes milliseconds; had the cold starts held the
    // workers it would wait for their setup.
    assert!(
        warm < SETUP / 2,
        "a warm invocation took {warm:?} during the burst (setup {SETUP:?})"
    );
    for b in burst {
        assert!(b.await.unwrap().unwrap().is_cold());
    }
}

/// Launches for real, noting whether each launch allowed the init burst.
struct Recording {
    inner: Arc<dyn sandbox::Launcher>,
    bursts: Arc<Mutex<Vec<bool>>>,
}

impl sandbox::Launcher for Recording {
    fn launch(
        &self,
        spec: &sandbox::LaunchSpec,
    ) -> Result<sandbox::Launched, sandbox::LaunchError> {
        self.bursts.lock().unwrap().push(spec.init_cpu_burst);
        self.inner.launch(spec)
    }
    fn isolation(&self) -> &'static str {
        self.inner.isolation()
    }
    fn pids(&self, account: &str) -> Option<sandbox::PidUsage> {
        self.inner.pids(account)
    }
}

#[tokio::test]
async fn after_an_abnormal_end_init_runs_without_the_burst() {
    let bursts = Arc::new(Mutex::new(Vec::new()));
    let seen = bursts.clone();
    let f = fixture_with(Duration::from_secs(60), move |state| {
        Arc::new(Recording {
            inner: namespaces(state),
            bursts: seen,
        })
    });
    let mut lease = f.pool.acquire(&f.spec).await.unwrap();
    let crashed = lease
        .invoke(
            inv("a", r#"{"action":"exit","code":3}"#, Duration::from_secs(3)),
            false,
        )
        .await;
    assert!(matches!(crashed.outcome, Outcome::Exited(_)), "{crashed:?}");
    drop(lease);
    let mut lease = f.pool.acquire(&f.spec).await.unwrap();
    assert!(lease.is_cold());
    let ok = lease
        .invoke(inv("b", "{}", Duration::from_secs(3)), false)
        .await;
    assert_eq!(body(&ok)["count"], 1);
    drop(lease);
    assert_eq!(*bursts.lock().unwrap(), [true, false]);
}

#[tokio::test]
async fn a_full_memory_budget_stops_the_oldest_idle_environment_or_throttles() {
    let settings = PoolSettings {
        capacity: Capacity {
            memory_mb: 10_000,
            account_memory_mb: 256,
        },
        ..PoolSettings::with_keep_alive(Duration::from_secs(60))
    };
    let f = fixture_with_settings(settings, namespaces);
    let older = f.pool.acquire(&f.spec).await.unwrap();
    let newer = f.pool.acquire(&f.spec).await.unwrap();
    assert_eq!(f.pool.memory_promised_mb(), 256);
    let refused = f.pool.acquire(&f.spec).await.err();
    assert!(
        matches!(
            refused,
            Some(PoolError::Capacity(CapacityError::AccountMemory {
                used_mb: 256,
                limit_mb: 256
            }))
        ),
        "{refused:?}"
    );
    assert_eq!(
        f.pool.counts(&f.spec.scope, &f.spec.name, "$LATEST"),
        (0, 2)
    );
    let (older_id, newer_id) = (older.env().id().to_owned(), newer.env().id().to_owned());
    drop(older);
    tokio::time::sleep(Duration::from_millis(20)).await;
    drop(newer);
    // Another function of the account needs room: the oldest idle
    // environment goes.
    let other = Arc::new(FunctionSpec {
        name: FunctionName::parse("g").unwrap(),
        log_group: "/aws/lambda/g".into(),
        ..(*f.spec).clone()
    });
    let g = f.pool.acquire(&other).await.unwrap();
    assert!(g.is_cold());
    assert_eq!(
        f.pool.counts(&f.spec.scope, &f.spec.name, "$LATEST"),
        (1, 0)
    );
    let warm = f.pool.acquire(&f.spec).await.unwrap();
    assert_eq!(warm.env().id(), newer_id);
    assert_ne!(warm.env().id(), older_id);
    assert_eq!(f.pool.memory_promised_mb(), 256);
    // Another account's environments are not held to this account's budget.
    let elsewhere = Arc::new(FunctionSpec {
        scope: Arc::new(Scope::new(
            model::AccountId::parse("210987654321").unwrap(),
            model::Region::parse("us-east-1").unwrap(),
        )),
        ..(*f.spec).clone()
    });
    let e = f.pool.acquire(&elsewhere).await.unwrap();
    assert!(e.is_cold());
    drop((g, warm, e));
}

#[tokio::test]
async fn an_invocations_log_is_cut_at_its_limit_with_a_platform_line() {
    let settings = PoolSettings {
        invocation_log_bytes: 64 * 1024,
        ..PoolSettings::with_keep_alive(Duration::from_secs(60))
    };
    let f = fixture_with_settings(settings, namespaces);
    let mut lease = f.pool.acquire(&f.spec).await.unwrap();
    let flood = lease
        .invoke(
            inv(
                "a",
                r#"{"action":"flood","lines":200}"#,
                Duration::from_secs(10),
            ),
            true,
        )
        .await;
    assert_eq!(
        body(&flood)["count"],
        1,
        "the function itself is not stopped"
    );
    let tail = flood.log_tail.unwrap();
    let line = tail
        .lines()
        .find(|l| l.starts_with("RequestId: a Warning: "))
        .unwrap_or_else(|| panic!("no truncation line in {tail}"));
    let dropped: u64 = line
        .split("bytes: ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(
        line.starts_with(
            "RequestId: a Warning: this invocation's log output reached the limit of 65536 bytes: "
        ),
        "{line}"
    );
    // 64 KB holds 63 lines of 1,000 bytes (each counted with 26 more).
    assert!((135..=138).contains(&dropped), "{line}");
    assert!(tail.contains("END RequestId: a\n"));
    // The next invocation has a budget of its own.
    let quiet = lease
        .invoke(
            inv(
                "b",
                r#"{"action":"flood","lines":10}"#,
                Duration::from_secs(10),
            ),
            true,
        )
        .await;
    assert!(!quiet.log_tail.unwrap().contains("Warning"));
}

/// An idle environment provisioned for `qualifier`, other than `not`,
/// whose process runs; waits for one (at most `within`, scaled).
async fn idle_provisioned(
    f: &Fixture,
    qualifier: &str,
    not: Option<&str>,
    within: Duration,
) -> Arc<Environment> {
    let limit = scaled(within);
    let deadline = std::time::Instant::now() + limit;
    loop {
        let found = {
            let slots = f.pool.inner.slots.lock().unwrap();
            slots
                .values()
                .flat_map(|s| s.idle.iter())
                .find(|e| {
                    e.provisioned_for().as_deref() == Some(qualifier)
                        && Some(e.id()) != not
                        && e.process.is_alive()
                })
                .cloned()
        };
        if let Some(env) = found {
            return env;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no provisioned environment for {qualifier} within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn provisioned_environments_outlive_the_keep_alive_and_are_replaced_when_killed() {
    let f = fixture(Duration::from_millis(300));
    let v1 = Arc::new(FunctionSpec {
        version: "1".into(),
        ..(*f.spec).clone()
    });
    f.pool
        .set_provisioned(&f.spec.scope, &f.spec.name, "1", v1.clone(), 1);
    let provisioned = idle_provisioned(&f, "1", None, Duration::from_secs(20)).await;
    // Beside it an on-demand environment: the first lease takes the
    // provisioned one, the second starts another.
    let a = f.pool.acquire(&v1).await.unwrap();
    assert_eq!(a.env().id(), provisioned.id());
    let b = f.pool.acquire(&v1).await.unwrap();
    assert!(b.is_cold());
    let on_demand = b.env().clone();
    drop((a, b));
    // Both idle from here on: the keep-alive stops the on-demand one only.
    ended(&on_demand, Duration::from_secs(10)).await;
    assert!(
        provisioned.process.is_alive(),
        "provisioned environment reaped"
    );
    assert_eq!(f.pool.counts(&f.spec.scope, &f.spec.name, "1"), (1, 0));
    assert_eq!(
        f.pool
            .provisioned_status(&f.spec.scope, &f.spec.name, "1")
            .available,
        1
    );
    // Killed from outside (an operator, the kernel): replaced by a new
    // provisioned environment without waiting for an invocation to find
    // the dead one.
    provisioned.process.kill();
    let replacement =
        idle_provisioned(&f, "1", Some(provisioned.id()), Duration::from_secs(20)).await;
    ended(&provisioned, Duration::from_secs(10)).await;
    let mut lease = f.pool.acquire(&v1).await.unwrap();
    assert!(!lease.is_cold());
    assert_eq!(lease.env().id(), replacement.id());
    let done = lease
        .invoke(inv("p", "{}", Duration::from_secs(3)), false)
        .await;
    assert_eq!(body(&done)["count"], 1);
}
