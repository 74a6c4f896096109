//! The measurements, each beside its baseline.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use serde_json::json;

use crate::client::{BoxError, Conn};
use crate::stats::{self, ms, ratio, summarize, us, verdict};
use crate::{Args, Counts, Section, procs};

const ROLE: &str = "arn:aws:iam::123456789012:role/bench";
const PAYLOAD: &[u8] = br#"{"hello":"world"}"#;

pub(crate) fn zip_of(files: &[(&str, &[u8], u32)]) -> Result<Vec<u8>, BoxError> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data, mode) in files {
        w.start_file(
            *name,
            zip::write::SimpleFileOptions::default().unix_permissions(*mode),
        )?;
        w.write_all(data)?;
    }
    Ok(w.finish()?.into_inner())
}

fn echo_runtime_binary() -> Result<PathBuf, BoxError> {
    let p = std::env::current_exe()?.with_file_name("lambent-echo-runtime");
    if !p.is_file() {
        return Err(format!("{} not found (build the bench crate)", p.display()).into());
    }
    Ok(p)
}

fn stream_runtime_binary() -> Result<PathBuf, BoxError> {
    let p = std::env::current_exe()?.with_file_name("lambent-stream-runtime");
    if !p.is_file() {
        return Err(format!("{} not found (build the bench crate)", p.display()).into());
    }
    Ok(p)
}

/// The first executable `name` on PATH (not a pyenv shim) or in /usr/bin,
/// resolved, as Lambent's runtime detection finds it.
fn find_interpreter(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/local/bin", "/usr/bin"].map(PathBuf::from));
    dirs.retain(|d| !d.components().any(|c| c.as_os_str() == "shims"));
    dirs.iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .map(|p| std::fs::canonicalize(&p).unwrap_or(p))
}

async fn create_function(
    c: &mut Conn,
    name: &str,
    runtime: &str,
    handler: &str,
    zip: &[u8],
    memory: u32,
) -> Result<(), BoxError> {
    c.json(
        "POST",
        "/2015-03-31/functions",
        json!({
            "FunctionName": name, "Runtime": runtime, "Role": ROLE, "Handler": handler,
            "MemorySize": memory, "Timeout": 30,
            "Code": {"ZipFile": base64::engine::general_purpose::STANDARD.encode(zip)},
        }),
    )
    .await?;
    Ok(())
}

pub async fn all(args: &Args, counts: &Counts, lambent: &Path) -> Result<Vec<Section>, BoxError> {
    let server = procs::start_lambent(
        lambent,
        &args.work,
        "lambent",
        &[
            "--account-concurrency",
            "5000",
            "--network",
            "isolated",
            "--keep-alive",
            "900",
            // 1,000 environments of 128 MB are promised more memory than
            // this host has (idle, they use far less): the environment
            // figures measure creation, not the capacity model.
            "--memory-budget-mb",
            "400000",
            "--account-memory-mb",
            "400000",
        ],
    )?;
    let echo = procs::start_echo(&args.work)?;
    let mut c = Conn::open(&server.addr).await?;
    let bootstrap = std::fs::read(echo_runtime_binary()?)?;
    let provided_zip = zip_of(&[("bootstrap", &bootstrap, 0o755)])?;
    // One full vCPU (1,769 MB) so that a function's own CPU share never
    // throttles what the platform is measured on.
    create_function(
        &mut c,
        "echo-provided",
        "provided.al2023",
        "bootstrap",
        &provided_zip,
        1769,
    )
    .await?;
    // The same function behind an AWS_IAM function URL.
    let url = c
        .json(
            "POST",
            "/2021-10-31/functions/echo-provided/url",
            serde_json::json!({ "AuthType": "AWS_IAM" }),
        )
        .await?;
    let url_host = url["FunctionUrl"]
        .as_str()
        .and_then(|u| u.strip_prefix("http://"))
        .map(|u| u.trim_end_matches('/').to_owned())
        .ok_or("CreateFunctionUrlConfig answered without an http FunctionUrl")?;
    let py = zip_of(&[(
        "app.py",
        b"def handler(event, context):\n    return event\n",
        0o644,
    )])?;
    create_function(
        &mut c,
        "noop-python",
        "python3.11",
        "app.handler",
        &py,
        1769,
    )
    .await?;
    let node = zip_of(&[(
        "index.js",
        b"exports.handler = async (event) => event;\n",
        0o644,
    )])?;
    create_function(
        &mut c,
        "noop-node",
        "nodejs20.x",
        "index.handler",
        &node,
        1769,
    )
    .await?;
    create_function(
        &mut c,
        "fleet",
        "provided.al2023",
        "bootstrap",
        &provided_zip,
        128,
    )
    .await?;

    let stream_bootstrap = std::fs::read(stream_runtime_binary()?)?;
    create_function(
        &mut c,
        "stream-provided",
        "provided.al2023",
        "bootstrap",
        &zip_of(&[("bootstrap", &stream_bootstrap, 0o755)])?,
        1769,
    )
    .await?;

    let want = |name: &str| args.only.as_deref().is_none_or(|o| name.contains(o));
    let mut out = Vec::new();
    if want("warm") {
        out.push(warm_latency(&server, &echo, &url_host, counts).await?);
    }
    if want("throughput") {
        out.push(throughput(&server, &echo, counts).await?);
    }
    if want("cold") {
        out.push(cold_start(counts, &mut c).await?);
    }
    if want("environments") {
        out.push(environments(&server, counts, &mut c).await?);
    }
    if want("async") {
        out.push(asynchronous(&server, counts, &args.work, lambent, &provided_zip).await?);
    }
    if want("control") {
        out.push(control_plane(&server, counts).await?);
    }
    if want("sns") {
        out.push(sns_fan_out(counts, &args.work, lambent, &provided_zip).await?);
    }
    if want("neighbours") {
        out.push(crate::neighbours::neighbours(&server, counts, &provided_zip).await?);
    }
    if want("streaming") {
        out.push(crate::streaming::streaming(&server, counts).await?);
    }
    drop(echo);
    drop(server);
    Ok(out)
}

async fn sequential(
    addr: &str,
    function: &str,
    warmup: usize,
    n: usize,
) -> Result<Vec<Duration>, BoxError> {
    let mut c = Conn::open(addr).await?;
    for _ in 0..warmup {
        c.invoke(function, PAYLOAD).await?;
    }
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(c.invoke(function, PAYLOAD).await?);
    }
    Ok(v)
}

/// `n` sequential requests to a function URL after `warmup`.
async fn sequential_url(
    addr: &str,
    url_host: &str,
    warmup: usize,
    n: usize,
) -> Result<Vec<Duration>, BoxError> {
    let mut c = Conn::open(addr).await?;
    for _ in 0..warmup {
        c.invoke_url(url_host, PAYLOAD).await?;
    }
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(c.invoke_url(url_host, PAYLOAD).await?);
    }
    Ok(v)
}

async fn warm_latency(
    server: &procs::Proc,
    echo: &procs::Proc,
    url_host: &str,
    k: &Counts,
) -> Result<Section, BoxError> {
    let mut body = String::new();
    let _ = writeln!(
        body,
        "{} sequential invocations on one keep-alive connection after {} warm-up, each signed with SigV4 by the \
         client; the baseline is an axum/hyper echo server (the platform's HTTP stack) answering the same signed \
         requests. Functions have 1,769 MB (one vCPU).\n",
        k.warm_samples, k.warmup
    );
    let _ = writeln!(
        body,
        "| target | p50 | p90 | p99 | p99.9 | p50 overhead | p99 overhead |"
    );
    let _ = writeln!(body, "| --- | --- | --- | --- | --- | --- | --- |");
    let mut base = sequential(&echo.addr, "echo", k.warmup, k.warm_samples).await?;
    let b = summarize(&mut base);
    let _ = writeln!(
        body,
        "| echo baseline | {} | {} | {} | {} | | |",
        us(b.p50),
        us(b.p90),
        us(b.p99),
        us(b.p999)
    );
    let mut verdicts = Vec::new();
    let mut invoke_p50 = None;
    for (label, f) in [
        ("provided (compiled bootstrap)", "echo-provided"),
        ("python3.11", "noop-python"),
    ] {
        let mut s = sequential(&server.addr, f, k.warmup, k.warm_samples).await?;
        let m = summarize(&mut s);
        let o50 = m.p50.saturating_sub(b.p50);
        let o99 = m.p99.saturating_sub(b.p99);
        let _ = writeln!(
            body,
            "| {label} | {} | {} | {} | {} | {} | {} |",
            us(m.p50),
            us(m.p90),
            us(m.p99),
            us(m.p999),
            us(o50),
            us(o99)
        );
        if f == "echo-provided" {
            invoke_p50 = Some(m.p50);
            verdicts.push(format!(
                "Target (provided): p50 overhead ≤ 100 µs — {} ({}); p99 overhead ≤ 500 µs — {} ({}).",
                verdict(o50 <= Duration::from_micros(100)),
                us(o50),
                verdict(o99 <= Duration::from_micros(500)),
                us(o99)
            ));
        }
    }
    let mut u = sequential_url(&server.addr, url_host, k.warmup, k.warm_samples).await?;
    let m = summarize(&mut u);
    let _ = writeln!(
        body,
        "| provided via function URL (AWS_IAM) | {} | {} | {} | {} | {} | {} |",
        us(m.p50),
        us(m.p90),
        us(m.p99),
        us(m.p999),
        us(m.p50.saturating_sub(b.p50)),
        us(m.p99.saturating_sub(b.p99))
    );
    if let Some(invoke) = invoke_p50 {
        let gap = m.p50.saturating_sub(invoke);
        verdicts.push(format!(
            "Target (function URL): p50 within 50 µs of the Invoke API path — {} ({} beyond it).",
            verdict(gap <= Duration::from_micros(50)),
            us(gap)
        ));
    }
    let _ = writeln!(body, "\n{}\n", verdicts.join(" "));
    Ok(Section {
        title: "1. Warm invoke latency".into(),
        body,
    })
}

async fn closed_loop(
    addr: &str,
    function: &'static str,
    conns: usize,
    secs: f64,
) -> Result<(f64, Duration), BoxError> {
    let mut handles = Vec::new();
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    for _ in 0..conns {
        let addr = addr.to_owned();
        handles.push(tokio::spawn(async move {
            let mut c = Conn::open(&addr).await?;
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                lat.push(c.invoke(function, PAYLOAD).await?);
            }
            Ok::<_, BoxError>(lat)
        }));
    }
    let started = Instant::now();
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await??);
    }
    let elapsed = started.elapsed().as_secs_f64().max(secs);
    let s = summarize(&mut all);
    Ok((all.len() as f64 / elapsed, s.p99))
}

async fn throughput(
    server: &procs::Proc,
    echo: &procs::Proc,
    k: &Counts,
) -> Result<Section, BoxError> {
    let mut body = String::new();
    let _ = writeln!(
        body,
        "Closed loop for {:.1} s per row: each connection sends its next signed invocation as soon as the last one \
         returns. The load generator runs on the same 2 CPUs as the platform.\n",
        k.throughput_secs
    );
    let _ = writeln!(
        body,
        "| connections | echo req/s | echo p99 | provided inv/s | provided p99 | ratio |"
    );
    let _ = writeln!(body, "| --- | --- | --- | --- | --- | --- |");
    let mut at64 = 0.0;
    for conns in [1usize, 8, 64] {
        // Warm up the environments this concurrency needs.
        closed_loop(&server.addr, "echo-provided", conns, 0.5).await?;
        let (e_rps, e_p99) = closed_loop(&echo.addr, "echo", conns, k.throughput_secs).await?;
        let (l_rps, l_p99) =
            closed_loop(&server.addr, "echo-provided", conns, k.throughput_secs).await?;
        if conns == 64 {
            at64 = l_rps;
        }
        let _ = writeln!(
            body,
            "| {conns} | {e_rps:.0} | {} | {l_rps:.0} | {} | {:.2}x |",
            us(e_p99),
            us(l_p99),
            l_rps / e_rps
        );
    }
    let _ = writeln!(
        body,
        "\nTarget: ≥ 25,000 invocations/s with 64 connections — {} ({at64:.0}/s).\n",
        verdict(at64 >= 25_000.0)
    );
    Ok(Section {
        title: "2. Throughput".into(),
        body,
    })
}

/// Durable `Event` enqueues, closed loop, beside raw SQLite inserts with the
/// same durability (WAL, `synchronous=FULL`) on the same filesystem.
async fn asynchronous(
    server: &procs::Proc,
    k: &Counts,
    work: &Path,
    lambent: &Path,
    provided_zip: &[u8],
) -> Result<Section, BoxError> {
    const CONNS: usize = 64;
    // Enqueueing alone: a server whose dispatch is paused keeps every event.
    let paused = procs::start_lambent(
        lambent,
        work,
        "lambent-paused",
        &["--async-concurrency", "0", "--network", "isolated"],
    )?;
    let mut c = Conn::open(&paused.addr).await?;
    create_function(
        &mut c,
        "echo-provided",
        "provided.al2023",
        "bootstrap",
        provided_zip,
        1769,
    )
    .await?;
    let (alone_rate, alone) = event_loop(&paused.addr, CONNS, k.throughput_secs).await?;
    drop(paused);
    // Enqueueing while the same server runs the events.
    let (busy_rate, busy) = event_loop(&server.addr, CONNS, k.throughput_secs).await?;
    let dir = work.join(format!("sqlite-baseline-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let secs = k.throughput_secs;
    let d2 = dir.clone();
    let (grouped, single) = tokio::task::spawn_blocking(move || {
        Ok::<_, BoxError>((
            sqlite_inserts(&d2.join("grouped.db"), CONNS, secs)?,
            sqlite_inserts(&d2.join("single.db"), 1, secs.min(2.0))?,
        ))
    })
    .await??;
    let _ = std::fs::remove_dir_all(&dir);
    let mut body = String::new();
    let _ = writeln!(
        body,
        "{CONNS} connections send `Event` invocations of the compiled no-op function in a closed loop for {:.1} s; \
         each 202 comes after the event is fsynced (the queue's group commit). First with dispatch paused \
         (`--async-concurrency 0`: the enqueue path alone), then on a server that runs the events as they arrive \
         (both compete for the same 2 CPUs). Baseline: one thread inserting rows of the same shape into SQLite \
         (WAL, `synchronous=FULL`) on the same filesystem, {CONNS} rows per transaction (the same group size) and \
         one row per transaction.\n",
        k.throughput_secs
    );
    let _ = writeln!(body, "| measure | events/s | p50 | p99 |");
    let _ = writeln!(body, "| --- | --- | --- | --- |");
    let _ = writeln!(
        body,
        "| Lambent, durable enqueue (dispatch paused) | {alone_rate:.0} | {} | {} |",
        ms(alone.p50),
        ms(alone.p99)
    );
    let _ = writeln!(
        body,
        "| Lambent, durable enqueue while running the events | {busy_rate:.0} | {} | {} |",
        ms(busy.p50),
        ms(busy.p99)
    );
    let _ = writeln!(
        body,
        "| raw SQLite, {CONNS} rows per fsync | {grouped:.0} | | |"
    );
    let _ = writeln!(body, "| raw SQLite, 1 row per fsync | {single:.0} | | |");
    let _ = writeln!(
        body,
        "\nEnqueue alone: {:.2}x grouped raw SQLite, {:.1}x one fsync per row. Targets: ≥ 20,000 events/s — {} ({alone_rate:.0}/s); p99 ≤ 5 ms — {} ({}).\n",
        alone_rate / grouped.max(1.0),
        alone_rate / single.max(1.0),
        verdict(alone_rate >= 20_000.0),
        verdict(alone.p99 <= Duration::from_millis(5)),
        ms(alone.p99)
    );
    Ok(Section {
        title: "5. Asynchronous invocation: durable enqueue".into(),
        body,
    })
}

/// Functions an SNS message fans out to in the fan-out figure.
const FAN_OUT: usize = 10;

/// One signed SNS (Query protocol) call; the body of a 200.
async fn sns_call(c: &mut Conn, form: &str) -> Result<Bytes, BoxError> {
    let r = c
        .send(
            "POST",
            "/",
            "sns",
            &[("content-type", "application/x-www-form-urlencoded")],
            Bytes::from(form.to_owned()),
        )
        .await?;
    if r.status != 200 {
        return Err(format!(
            "SNS answered {}: {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        )
        .into());
    }
    Ok(r.body)
}

/// SNS `Publish` to a topic with ten Lambda subscribers, beside the same
/// ten `Event` invocations sent one by one, on a server with dispatch
/// paused (the durable hand-off alone), then on one that runs the events.
async fn sns_fan_out(
    k: &Counts,
    work: &Path,
    lambent: &Path,
    provided_zip: &[u8],
) -> Result<Section, BoxError> {
    const CONNS: usize = 16;
    let enc = signed_client::encode_segment;
    let mut rows = Vec::new();
    for (label, extra) in [
        ("dispatch paused", &["--async-concurrency", "0"][..]),
        ("running the events", &["--async-delay-scale", "1"][..]),
    ] {
        let mut args = vec!["--network", "isolated", "--account-concurrency", "5000"];
        args.extend_from_slice(extra);
        let server = procs::start_lambent(lambent, work, "lambent-sns", &args)?;
        let mut c = Conn::open(&server.addr).await?;
        let body = sns_call(&mut c, "Action=CreateTopic&Version=2010-03-31&Name=fanout").await?;
        let topic = format!("arn:aws:sns:us-east-1:{}:fanout", crate::client::ACCOUNT);
        if !String::from_utf8_lossy(&body).contains(&topic) {
            return Err(format!("CreateTopic answered {}", String::from_utf8_lossy(&body)).into());
        }
        for i in 0..FAN_OUT {
            let name = format!("fan-{i}");
            create_function(
                &mut c,
                &name,
                "provided.al2023",
                "bootstrap",
                provided_zip,
                128,
            )
            .await?;
            c.json(
                "POST",
                &format!("/2015-03-31/functions/{name}/policy"),
                json!({"StatementId": "sns", "Action": "lambda:InvokeFunction",
                       "Principal": "sns.amazonaws.com", "SourceArn": topic}),
            )
            .await?;
            let arn = format!(
                "arn:aws:lambda:us-east-1:{}:function:{name}",
                crate::client::ACCOUNT
            );
            sns_call(
                &mut c,
                &format!(
                    "Action=Subscribe&Version=2010-03-31&TopicArn={}&Protocol=lambda&Endpoint={}",
                    enc(&topic),
                    enc(&arn)
                ),
            )
            .await?;
        }
        let form = format!(
            "Action=Publish&Version=2010-03-31&TopicArn={}&Message={}",
            enc(&topic),
            enc(std::str::from_utf8(PAYLOAD)?)
        );
        let deadline = Instant::now() + Duration::from_secs_f64(k.throughput_secs);
        let mut handles = Vec::new();
        for _ in 0..CONNS {
            let (addr, form) = (server.addr.clone(), form.clone());
            handles.push(tokio::spawn(async move {
                let mut c = Conn::open(&addr).await?;
                let mut lat = Vec::new();
                while Instant::now() < deadline {
                    let started = Instant::now();
                    sns_call(&mut c, &form).await?;
                    lat.push(started.elapsed());
                }
                Ok::<_, BoxError>(lat)
            }));
        }
        let started = Instant::now();
        let mut publishes = Vec::new();
        for h in handles {
            publishes.extend(h.await??);
        }
        let publish_rate =
            publishes.len() as f64 / started.elapsed().as_secs_f64().max(k.throughput_secs);
        let publish = summarize(&mut publishes);
        // The baseline: the client sends the ten Event invocations itself.
        let deadline = Instant::now() + Duration::from_secs_f64(k.throughput_secs);
        let mut handles = Vec::new();
        for _ in 0..CONNS {
            let addr = server.addr.clone();
            handles.push(tokio::spawn(async move {
                let mut c = Conn::open(&addr).await?;
                let mut lat = Vec::new();
                while Instant::now() < deadline {
                    let started = Instant::now();
                    for i in 0..FAN_OUT {
                        c.invoke_event(&format!("fan-{i}"), PAYLOAD).await?;
                    }
                    lat.push(started.elapsed());
                }
                Ok::<_, BoxError>(lat)
            }));
        }
        let started = Instant::now();
        let mut rounds = Vec::new();
        for h in handles {
            rounds.extend(h.await??);
        }
        let round_rate =
            rounds.len() as f64 / started.elapsed().as_secs_f64().max(k.throughput_secs);
        let round = summarize(&mut rounds);
        rows.push((label, publish_rate, publish, round_rate, round));
        drop(server);
    }
    let mut body = String::new();
    let _ = writeln!(
        body,
        "A topic with {FAN_OUT} Lambda subscribers (each allowed by its resource policy to be invoked by \
         `sns.amazonaws.com` for the topic). {CONNS} connections publish in a closed loop for {:.1} s; each \
         `Publish` answers once its {FAN_OUT} asynchronous invocations are fsynced in the queue. Baseline, in the \
         same run on the same server: the client sends the same {FAN_OUT} `Event` invocations itself, one after \
         another, per message.\n",
        k.throughput_secs
    );
    let _ = writeln!(
        body,
        "| server | publishes/s | deliveries/s | Publish p50 | Publish p99 | 10 Event invokes/s (messages) | their p50 | their p99 |"
    );
    let _ = writeln!(body, "| --- | --- | --- | --- | --- | --- | --- | --- |");
    for (label, rate, p, round_rate, r) in &rows {
        let _ = writeln!(
            body,
            "| {label} | {rate:.0} | {:.0} | {} | {} | {round_rate:.0} | {} | {} |",
            rate * FAN_OUT as f64,
            ms(p.p50),
            ms(p.p99),
            ms(r.p50),
            ms(r.p99)
        );
    }
    if let Some((_, rate, _, round_rate, _)) = rows.first() {
        let _ = writeln!(
            body,
            "\nWith dispatch paused, a published message reaches its {FAN_OUT} subscribers' queues at {:.2}x the rate of the client fanning out itself.\n",
            rate / round_rate.max(1.0)
        );
    }
    Ok(Section {
        title: "SNS: publish fan-out to 10 functions".into(),
        body,
    })
}

/// A closed loop of `Event` invocations; the rate and latency of the 202s.
async fn event_loop(
    addr: &str,
    conns: usize,
    secs: f64,
) -> Result<(f64, stats::Summary), BoxError> {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut handles = Vec::new();
    for _ in 0..conns {
        let addr = addr.to_owned();
        handles.push(tokio::spawn(async move {
            let mut c = Conn::open(&addr).await?;
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                lat.push(c.invoke_event("echo-provided", PAYLOAD).await?);
            }
            Ok::<_, BoxError>(lat)
        }));
    }
    let started = Instant::now();
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await??);
    }
    let rate = all.len() as f64 / started.elapsed().as_secs_f64().max(secs);
    Ok((rate, summarize(&mut all)))
}

/// Rows per second inserted into a fresh SQLite database with `per_txn`
/// rows per transaction, for `secs`.
fn sqlite_inserts(path: &Path, per_txn: usize, secs: f64) -> Result<f64, BoxError> {
    let mut conn = rusqlite::Connection::open(path)?;
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
         CREATE TABLE q (id INTEGER PRIMARY KEY AUTOINCREMENT, request_id TEXT, account TEXT, region TEXT,
                         target TEXT, payload BLOB, enqueued_ms INTEGER, due_ms INTEGER);",
    )?;
    let started = Instant::now();
    let mut rows = 0usize;
    while started.elapsed().as_secs_f64() < secs {
        let tx = conn.transaction()?;
        {
            let mut st = tx.prepare_cached(
                "INSERT INTO q (request_id, account, region, target, payload, enqueued_ms, due_ms)
                 VALUES (?1, '123456789012', 'us-east-1', 'echo-provided', ?2, ?3, ?3)",
            )?;
            for i in 0..per_txn {
                st.execute(rusqlite::params![
                    format!("00000000-0000-4000-8000-{:012}", rows + i),
                    PAYLOAD,
                    rows as i64
                ])?;
            }
        }
        tx.commit()?;
        rows += per_txn;
    }
    Ok(rows as f64 / started.elapsed().as_secs_f64())
}

/// Spawns the echo runtime against a minimal in-process Runtime API that has
/// one invocation waiting, and times spawn to response (the physical floor of
/// a compiled runtime's cold start).
fn bare_provided_cold(binary: &Path) -> Result<Duration, BoxError> {
    use std::io::{BufRead, BufReader, Read};
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?.to_string();
    let started = Instant::now();
    let mut child = std::process::Command::new(binary)
        .env("AWS_LAMBDA_RUNTIME_API", &addr)
        .spawn()?;
    let (stream, _) = listener.accept()?;
    stream.set_nodelay(true)?;
    let mut w = stream.try_clone()?;
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    // GET /next
    loop {
        line.clear();
        r.read_line(&mut line)?;
        if line.trim().is_empty() {
            break;
        }
    }
    write!(
        w,
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nLambda-Runtime-Aws-Request-Id: r1\r\nLambda-Runtime-Deadline-Ms: 0\r\n\r\n",
        PAYLOAD.len()
    )?;
    w.write_all(PAYLOAD)?;
    // POST /response
    let mut len = 0usize;
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let l = line.trim();
        if l.is_empty() {
            break;
        }
        if let Some(v) = l.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    let took = started.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    Ok(took)
}

fn time_command(program: &Path, args: &[&str]) -> Result<Duration, BoxError> {
    let started = Instant::now();
    let status = std::process::Command::new(program).args(args).status()?;
    if !status.success() {
        return Err(format!("{} {:?} failed", program.display(), args).into());
    }
    Ok(started.elapsed())
}

async fn last_cold_start(
    c: &mut Conn,
    function: &str,
) -> Result<Option<(u64, u64, u64)>, BoxError> {
    let v = c
        .json("GET", "/lambent/status", serde_json::Value::Null)
        .await?;
    Ok(v["Functions"].as_array().and_then(|fs| {
        fs.iter()
            .find(|f| f["FunctionName"] == function)
            .and_then(|f| {
                let cs = &f["LastColdStart"];
                Some((
                    cs["SandboxSetupMicros"].as_u64()?,
                    cs["RuntimeInitMicros"].as_u64()?,
                    cs["FirstInvokeMicros"].as_u64()?,
                ))
            })
    }))
}

async fn cold_start(k: &Counts, c: &mut Conn) -> Result<Section, BoxError> {
    let mut body = String::new();
    let _ = writeln!(
        body,
        "Client-observed: one invocation with no warm environment (a configuration change retires the old one first, \
         untimed), from request to response. Baselines, same clock: the compiled bootstrap spawned with fork+exec \
         against a bare Runtime API with the invocation already waiting; `python3.11 -c pass` and `node -e 0` with \
         the interpreters Lambent uses. The split is the platform's own account of the same cold starts (medians).\n"
    );
    let _ = writeln!(
        body,
        "| runtime | cold start p50 | p90 | baseline p50 | ratio (p50) | sandbox setup | runtime init | first invoke |"
    );
    let _ = writeln!(body, "| --- | --- | --- | --- | --- | --- | --- | --- |");
    let echo_bin = echo_runtime_binary()?;
    let python = find_interpreter("python3.11").ok_or("python3.11 not found")?;
    let node = find_interpreter("node").ok_or("node not found")?;
    let mut verdicts = Vec::new();
    for (label, function, n) in [
        ("provided (compiled)", "echo-provided", k.cold_provided),
        ("python3.11", "noop-python", k.cold_python),
        ("nodejs20.x", "noop-node", k.cold_node),
    ] {
        let mut samples = Vec::new();
        let mut splits = (Vec::new(), Vec::new(), Vec::new());
        let mut base = Vec::new();
        for i in 0..n {
            let before = last_cold_start(c, function).await?;
            c.json(
                "PUT",
                &format!("/2015-03-31/functions/{function}/configuration"),
                json!({"Environment": {"Variables": {"SAMPLE": i.to_string()}}}),
            )
            .await?;
            samples.push(c.invoke(function, PAYLOAD).await?);
            // A warm invocation here would pass for a fast cold start: the
            // platform must report a cold start it had not reported before.
            match last_cold_start(c, function).await? {
                Some(after) if Some(after) != before => {
                    let (s, r, f) = after;
                    splits.0.push(Duration::from_micros(s));
                    splits.1.push(Duration::from_micros(r));
                    splits.2.push(Duration::from_micros(f));
                }
                after => {
                    return Err(format!(
                        "cold-start sample {i} of {function} was not a cold start \
                         (last cold start before {before:?}, after {after:?})"
                    )
                    .into());
                }
            }
            base.push(match function {
                "echo-provided" => bare_provided_cold(&echo_bin)?,
                "noop-python" => time_command(&python, &["-c", "pass"])?,
                _ => time_command(&node, &["-e", "0"])?,
            });
        }
        let m = summarize(&mut samples);
        let b = summarize(&mut base);
        let s = (
            summarize(&mut splits.0),
            summarize(&mut splits.1),
            summarize(&mut splits.2),
        );
        let _ = writeln!(
            body,
            "| {label} | {} | {} | {} | {} | {} | {} | {} |",
            ms(m.p50),
            ms(m.p90),
            ms(b.p50),
            ratio(m.p50, b.p50),
            ms(s.0.p50),
            ms(s.1.p50),
            ms(s.2.p50)
        );
        let r = m.p50.as_secs_f64() / b.p50.as_secs_f64().max(1e-9);
        match function {
            "echo-provided" => verdicts.push(format!(
                "Compiled bootstrap: ≤ 5 ms p50 — {} ({}); ≤ 2x its bare fork+exec — {} ({r:.2}x).",
                verdict(m.p50 <= Duration::from_millis(5)),
                ms(m.p50),
                verdict(r <= 2.0)
            )),
            "noop-python" => verdicts.push(format!(
                "Python: ≤ 1.3x `python3 -c pass` — {} ({r:.2}x).",
                verdict(r <= 1.3)
            )),
            _ => verdicts.push(format!(
                "Node: ≤ 1.2x `node -e 0` — {} ({r:.2}x).",
                verdict(r <= 1.2)
            )),
        }
    }
    let _ = writeln!(body, "\n{}\n", verdicts.join(" "));
    Ok(Section {
        title: "3. Cold start".into(),
        body,
    })
}

/// PSS of a process, in KiB.
fn pss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Pss:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// (pid, parent pid) of every process.
fn process_table() -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            if let Some(ppid) = stat
                .rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().nth(1))
                .and_then(|p| p.parse().ok())
            {
                out.push((pid, ppid));
            }
        }
    }
    out
}

async fn environments(server: &procs::Proc, k: &Counts, c: &mut Conn) -> Result<Section, BoxError> {
    let mut body = String::new();
    let _ = writeln!(
        body,
        "N concurrent invocations of a function with no environment yet (128 MB, the compiled bootstrap) make the \
         platform create N environments at once; the rate is N over the time until all answered. Baseline: the \
         same number of fork+exec of the same binary, sequentially, in the same run. Memory: the platform's PSS \
         growth plus each environment's init process, per idle environment (the runtime process itself not \
         counted; its PSS is shown beside).\n"
    );
    let _ = writeln!(
        body,
        "| environments | created/s | fork+exec/s | ratio | platform memory per idle env | runtime process PSS |"
    );
    let _ = writeln!(body, "| --- | --- | --- | --- | --- | --- |");
    let echo_bin = echo_runtime_binary()?;
    let server_pid = server.child.id();
    let mut verdicts = Vec::new();
    let mut prev_total = 0usize;
    for (round, n) in k.env_counts.iter().copied().enumerate() {
        let function = format!("fleet{round}");
        let bootstrap = std::fs::read(&echo_bin)?;
        let zip = zip_of(&[("bootstrap", &bootstrap, 0o755)])?;
        create_function(c, &function, "provided.al2023", "bootstrap", &zip, 128).await?;
        let before = pss_kib(server_pid);
        let fname: &'static str = Box::leak(function.clone().into_boxed_str());
        let started = Instant::now();
        let mut handles = Vec::new();
        for _ in 0..n {
            let addr = server.addr.clone();
            handles.push(tokio::spawn(async move {
                let mut conn = Conn::open(&addr).await?;
                conn.invoke(fname, PAYLOAD).await
            }));
        }
        for h in handles {
            h.await??;
        }
        let elapsed = started.elapsed();
        let rate = n as f64 / elapsed.as_secs_f64();
        // fork+exec baseline: the same binary, which exits at once (no API).
        let b_started = Instant::now();
        for _ in 0..n {
            let _ = std::process::Command::new(&echo_bin)
                .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:1")
                .stderr(std::process::Stdio::null())
                .status();
        }
        let b_rate = n as f64 / b_started.elapsed().as_secs_f64();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = pss_kib(server_pid);
        let table = process_table();
        let inits: Vec<u32> = table
            .iter()
            .filter(|(_, pp)| *pp == server_pid)
            .map(|(p, _)| *p)
            .collect();
        let runtimes: Vec<u32> = table
            .iter()
            .filter(|(_, pp)| inits.contains(pp))
            .map(|(p, _)| *p)
            .collect();
        let init_pss: u64 = inits.iter().map(|p| pss_kib(*p)).sum();
        let runtime_pss: u64 = runtimes.iter().map(|p| pss_kib(*p)).sum();
        let total_envs = inits.len().max(1);
        let new_envs = total_envs.saturating_sub(prev_total).max(1);
        prev_total = total_envs;
        let per_env_kib = (after.saturating_sub(before) as f64
            + init_pss as f64 * new_envs as f64 / total_envs as f64)
            / new_envs as f64;
        let _ = writeln!(
            body,
            "| {n} | {rate:.0} | {b_rate:.0} | {:.2}x | {:.0} KiB | {:.0} KiB |",
            rate / b_rate,
            per_env_kib,
            runtime_pss as f64 / runtimes.len().max(1) as f64
        );
        if n == *k.env_counts.last().unwrap_or(&n) {
            verdicts.push(format!(
                "Targets: ≥ 300 new environments/s — {} ({rate:.0}/s); ≤ 1 MiB platform memory per idle environment — {} ({per_env_kib:.0} KiB).",
                verdict(rate >= 300.0),
                verdict(per_env_kib <= 1024.0)
            ));
        }
    }
    let _ = writeln!(body, "\n{}\n", verdicts.join(" "));
    Ok(Section {
        title: "4. Environment creation and idle memory".into(),
        body,
    })
}

async fn control_plane(server: &procs::Proc, k: &Counts) -> Result<Section, BoxError> {
    let mut body = String::new();
    let mut c = Conn::open(&server.addr).await?;
    // 10 MB of incompressible data, so that the zip is 10 MB.
    let mut data = vec![0u8; 10 << 20];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_ne_bytes()[..chunk.len()]);
    }
    let big = zip_of(&[
        ("bootstrap", b"#!/bin/sh\n", 0o755),
        ("blob.bin", &data, 0o644),
    ])?;
    let mut creates = Vec::new();
    for i in 0..3 {
        let started = Instant::now();
        create_function(
            &mut c,
            &format!("big{i}"),
            "provided.al2023",
            "bootstrap",
            &big,
            128,
        )
        .await?;
        creates.push(started.elapsed());
    }
    let cr = summarize(&mut creates);
    // Many functions for ListFunctions.
    let n = k.list_functions;
    let small = zip_of(&[("bootstrap", b"#!/bin/sh\n", 0o755)])?;
    let started = Instant::now();
    let workers = 8;
    let mut handles = Vec::new();
    for w in 0..workers {
        let addr = server.addr.clone();
        let small = small.clone();
        handles.push(tokio::spawn(async move {
            let mut c = Conn::open(&addr).await?;
            let mut i = w;
            while i < n {
                create_function(
                    &mut c,
                    &format!("many-{i:05}"),
                    "provided.al2023",
                    "bootstrap",
                    &small,
                    128,
                )
                .await?;
                i += workers;
            }
            Ok::<_, BoxError>(())
        }));
    }
    for h in handles {
        h.await??;
    }
    let create_rate = n as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut marker: Option<String> = None;
    let mut pages = 0;
    let mut seen = 0;
    let mut names = std::collections::BTreeSet::new();
    let mut page_times = Vec::new();
    loop {
        let path = match &marker {
            Some(m) => format!("/2015-03-31/functions?MaxItems=50&Marker={m}"),
            None => "/2015-03-31/functions?MaxItems=50".to_owned(),
        };
        let t = Instant::now();
        let v = c.json("GET", &path, serde_json::Value::Null).await?;
        page_times.push(t.elapsed());
        pages += 1;
        for f in v["Functions"].as_array().into_iter().flatten() {
            seen += 1;
            if let Some(name) = f["FunctionName"].as_str() {
                names.insert(name.to_owned());
            }
        }
        match v["NextMarker"].as_str() {
            Some(m) => marker = Some(m.to_owned()),
            None => break,
        }
    }
    let walk = started.elapsed();
    // The walk must see every function created here, each once.
    let missing: Vec<String> = (0..n)
        .map(|i| format!("many-{i:05}"))
        .chain((0..3).map(|i| format!("big{i}")))
        .filter(|name| !names.contains(name))
        .collect();
    if !missing.is_empty() || seen != names.len() {
        return Err(format!(
            "the ListFunctions walk saw {seen} functions ({} distinct) in {pages} pages; \
             {} of the {} created are missing (first: {:?})",
            names.len(),
            missing.len(),
            n + 3,
            missing.first()
        )
        .into());
    }
    let pt = summarize(&mut page_times);
    let _ = writeln!(body, "| operation | result |");
    let _ = writeln!(body, "| --- | --- |");
    let _ = writeln!(
        body,
        "| CreateFunction, 10 MB zip (p50 of 3) | {} |",
        ms(cr.p50)
    );
    let _ = writeln!(
        body,
        "| CreateFunction, tiny zip, 8 connections | {create_rate:.0}/s |"
    );
    let _ = writeln!(
        body,
        "| ListFunctions over {seen} functions, 50 per page | {pages} pages in {} (page p50 {}, p99 {}) |",
        ms(walk),
        ms(pt.p50),
        ms(pt.p99)
    );
    let _ = writeln!(body);
    let _ = Bytes::new();
    let _ = stats::verdict(true);
    Ok(Section {
        title: "6. Control plane".into(),
        body,
    })
}
