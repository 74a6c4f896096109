//! PutEvents to function, beside the asynchronous Invoke path, in the same
//! run on the same server and function.
//!
//! A rule on the default bus sends every `bench` event to a compiled no-op
//! function whose `OnSuccess` destination is an HTTP collector in this
//! process. Each event carries a sequence number; its latency runs from the
//! moment the client sends it to the moment its success record arrives (so
//! it covers the acknowledgement, the queue, the function's run and the
//! record's POST: an upper bound of the time to the function's start). The
//! rate is events delivered per second, first send to last record.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{Value, json};

use crate::client::{ACCOUNT, BoxError, Conn};
use crate::stats::{ms, summarize};
use crate::{Counts, Section, procs};

const CONNS: usize = 16;
const FUNCTION: &str = "bus-target";

type Arrivals = Arc<Mutex<HashMap<u64, Instant>>>;

/// The sequence number an event's success record carries.
fn seq_of(record: &Value) -> Option<u64> {
    let p = record.get("requestPayload")?;
    p.get("seq")
        .or_else(|| p.get("detail").and_then(|d| d.get("seq")))
        .and_then(Value::as_u64)
}

async fn collector() -> Result<(String, Arrivals), BoxError> {
    let arrivals: Arrivals = Arc::default();
    let a = arrivals.clone();
    let app = axum::Router::new().fallback(axum::routing::post(move |body: Bytes| {
        let a = a.clone();
        async move {
            if let Some(seq) = serde_json::from_slice::<Value>(&body)
                .ok()
                .as_ref()
                .and_then(seq_of)
                && let Ok(mut m) = a.lock()
            {
                m.entry(seq).or_insert_with(Instant::now);
            }
            ""
        }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((url, arrivals))
}

async fn events_call(c: &mut Conn, op: &str, body: Value) -> Result<Value, BoxError> {
    let target = format!("AWSEvents.{op}");
    let r = c
        .send(
            "POST",
            "/",
            "events",
            &[
                ("x-amz-target", &target),
                ("content-type", "application/x-amz-json-1.1"),
            ],
            Bytes::from(body.to_string()),
        )
        .await?;
    if r.status != 200 {
        return Err(format!(
            "{op} answered {}: {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        )
        .into());
    }
    Ok(serde_json::from_slice(&r.body)?)
}

#[derive(Clone, Copy)]
enum Path {
    Invoke,
    PutEvents,
}

/// Sends `n` events over `CONNS` connections; returns when each was sent.
async fn send_all(
    addr: &str,
    path: Path,
    base: u64,
    n: u64,
) -> Result<HashMap<u64, Instant>, BoxError> {
    let next = Arc::new(std::sync::atomic::AtomicU64::new(base));
    let mut handles = Vec::new();
    for _ in 0..CONNS {
        let addr = addr.to_owned();
        let next = next.clone();
        handles.push(tokio::spawn(async move {
            let mut c = Conn::open(&addr).await?;
            let mut sent = Vec::new();
            loop {
                let seq = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if seq >= base + n {
                    break;
                }
                let at = Instant::now();
                match path {
                    Path::Invoke => {
                        let r = c
                            .send(
                                "POST",
                                &format!("/2015-03-31/functions/{FUNCTION}/invocations"),
                                "lambda",
                                &[("x-amz-invocation-type", "Event")],
                                Bytes::from(json!({ "seq": seq }).to_string()),
                            )
                            .await?;
                        if r.status != 202 {
                            return Err::<_, BoxError>(
                                format!("event invoke answered {}", r.status).into(),
                            );
                        }
                    }
                    Path::PutEvents => {
                        let out = events_call(
                            &mut c,
                            "PutEvents",
                            json!({"Entries": [{"Source": "bench", "DetailType": "tick",
                                "Detail": json!({ "seq": seq }).to_string()}]}),
                        )
                        .await?;
                        if out["FailedEntryCount"] != 0 {
                            return Err(format!("PutEvents failed: {out}").into());
                        }
                    }
                }
                sent.push((seq, at));
            }
            Ok(sent)
        }));
    }
    let mut all = HashMap::new();
    for h in handles {
        all.extend(h.await??);
    }
    Ok(all)
}

struct Figures {
    rate: f64,
    p50: Duration,
    p99: Duration,
}

async fn measure(
    addr: &str,
    arrivals: &Arrivals,
    path: Path,
    base: u64,
    n: u64,
) -> Result<Figures, BoxError> {
    let started = Instant::now();
    let sent = send_all(addr, path, base, n).await?;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let done = arrivals
            .lock()
            .map_err(|_| "collector lock")?
            .keys()
            .filter(|k| (base..base + n).contains(*k))
            .count() as u64;
        if done == n {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("only {done} of {n} events reached the function").into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let arrived = arrivals.lock().map_err(|_| "collector lock")?.clone();
    let mut lat: Vec<Duration> = sent
        .iter()
        .filter_map(|(seq, at)| arrived.get(seq).map(|t| t.duration_since(*at)))
        .collect();
    let last = (base..base + n)
        .filter_map(|s| arrived.get(&s))
        .max()
        .copied()
        .unwrap_or(started);
    let s = summarize(&mut lat);
    Ok(Figures {
        rate: n as f64 / last.duration_since(started).as_secs_f64().max(1e-9),
        p50: s.p50,
        p99: s.p99,
    })
}

pub async fn put_events(
    server: &procs::Proc,
    k: &Counts,
    provided_zip: &[u8],
) -> Result<Section, BoxError> {
    let n: u64 = if k.warm_samples < 1_000 { 200 } else { 4_000 };
    let (url, arrivals) = collector().await?;
    let mut c = Conn::open(&server.addr).await?;
    crate::scenarios::create_function(
        &mut c,
        FUNCTION,
        "provided.al2023",
        "bootstrap",
        provided_zip,
        1769,
    )
    .await?;
    c.json(
        "PUT",
        &format!("/2019-09-25/functions/{FUNCTION}/event-invoke-config"),
        json!({"MaximumRetryAttempts": 0,
               "DestinationConfig": {"OnSuccess": {"Destination": format!("{url}/done")}}}),
    )
    .await?;
    let rule = events_call(
        &mut c,
        "PutRule",
        json!({"Name": "bench", "EventPattern": "{\"source\": [\"bench\"]}"}),
    )
    .await?;
    let rule_arn = rule["RuleArn"].as_str().unwrap_or_default().to_owned();
    c.json(
        "POST",
        &format!("/2015-03-31/functions/{FUNCTION}/policy"),
        json!({"StatementId": "bench-rule", "Action": "lambda:InvokeFunction",
               "Principal": "events.amazonaws.com", "SourceArn": rule_arn}),
    )
    .await?;
    events_call(
        &mut c,
        "PutTargets",
        json!({"Rule": "bench", "Targets": [{"Id": "1",
            "Arn": format!("arn:aws:lambda:us-east-1:{ACCOUNT}:function:{FUNCTION}")}]}),
    )
    .await?;
    // Warm the function and the paths.
    measure(&server.addr, &arrivals, Path::Invoke, 1_000_000, 20).await?;
    let invoke = measure(&server.addr, &arrivals, Path::Invoke, 0, n).await?;
    let put = measure(&server.addr, &arrivals, Path::PutEvents, n, n).await?;
    let mut body = String::new();
    let _ = writeln!(
        body,
        "{n} events per path from {CONNS} connections to a compiled no-op function whose `OnSuccess` destination is \
         an HTTP collector in the benchmark process; both paths on the same server and function, one after the other. \
         Latency: from sending the event to its success record arriving (acknowledgement, queue, the function's \
         run, the record's POST; an upper bound of the time to the function's start). Rate: events delivered per \
         second, first send to last record. PutEvents carries one entry per call, matched by one rule with one \
         target, whose resource policy is checked per event.\n"
    );
    let _ = writeln!(body, "| path | events/s | p50 | p99 |");
    let _ = writeln!(body, "| --- | --- | --- | --- |");
    for (name, f) in [
        ("async Invoke (`InvocationType: Event`)", &invoke),
        ("PutEvents → rule → function", &put),
    ] {
        let _ = writeln!(
            body,
            "| {name} | {:.0} | {} | {} |",
            f.rate,
            ms(f.p50),
            ms(f.p99)
        );
    }
    let _ = writeln!(
        body,
        "\nPutEvents over async Invoke: {:.2}x the rate, {:.2}x the p50.\n",
        put.rate / invoke.rate.max(1e-9),
        put.p50.as_secs_f64() / invoke.p50.as_secs_f64().max(1e-9)
    );
    Ok(Section {
        title: "EventBridge: PutEvents to function, beside async Invoke".into(),
        body,
    })
}
