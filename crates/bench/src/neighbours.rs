//! Noisy neighbours: the latency of a quiet function of one account beside a
//! fork bomb and beside a CPU burn of another account, in alternating blocks
//! so that the machine's own noise hits both conditions.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use serde_json::json;

use crate::client::{ACCOUNT_B, BoxError, Conn};
use crate::stats::{summarize, us, verdict};
use crate::{Counts, Section, procs};

/// Forks `kind`'s children, every one spinning until `seconds` have passed:
/// as many as the environment allows (a fork bomb) or one per CPU (a burn;
/// processes, as threads share one interpreter lock).
const NOISY: &[u8] = br#"import os, time
def handler(event, context):
    stop = time.monotonic() + event["seconds"]
    most = (os.cpu_count() or 2) if event["kind"] == "burn" else 100000
    kids = []
    while len(kids) < most and time.monotonic() < stop:
        try:
            pid = os.fork()
        except OSError:
            break
        if pid == 0:
            while time.monotonic() < stop:
                pass
            os._exit(0)
        kids.append(pid)
    for pid in kids:
        os.waitpid(pid, 0)
    return {"children": len(kids)}
"#;

const BOMB: &[u8] = br#"{"kind":"bomb","seconds":1.0}"#;
const BURN: &[u8] = br#"{"kind":"burn","seconds":1.0}"#;
const PAYLOAD: &[u8] = br#"{"hello":"world"}"#;

async fn create(
    c: &mut Conn,
    name: &str,
    role: &str,
    runtime: &str,
    handler: &str,
    zip: &[u8],
    memory: u32,
) -> Result<(), BoxError> {
    let body = json!({
        "FunctionName": name, "Runtime": runtime, "Role": role, "Handler": handler,
        "MemorySize": memory, "Timeout": 60,
        "Code": {"ZipFile": base64::engine::general_purpose::STANDARD.encode(zip)},
    });
    let r = c
        .send(
            "POST",
            "/2015-03-31/functions",
            "lambda",
            &[("content-type", "application/json")],
            Bytes::from(serde_json::to_vec(&body)?),
        )
        .await?;
    if r.status != 201 {
        return Err(format!(
            "create {name}: {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        )
        .into());
    }
    Ok(())
}

/// The quiet function's latencies alone and beside the noisy one.
async fn measure(
    addr: &str,
    quiet: &mut Conn,
    noisy: &'static str,
    event: &'static [u8],
    k: &Counts,
) -> Result<(Vec<Duration>, Vec<Duration>), BoxError> {
    for _ in 0..200 {
        quiet.invoke("quiet", PAYLOAD).await?;
    }
    let (mut alone, mut beside) = (Vec::new(), Vec::new());
    for _ in 0..k.neighbour_blocks {
        for _ in 0..k.neighbour_samples {
            alone.push(quiet.invoke("quiet", PAYLOAD).await?);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let noise = {
            let (addr, stop) = (addr.to_owned(), stop.clone());
            tokio::spawn(async move {
                let mut c = Conn::open(&addr).await?;
                while !stop.load(Ordering::Relaxed) {
                    c.invoke(noisy, event).await?;
                }
                Ok::<_, BoxError>(())
            })
        };
        // Let the neighbour get going (the quiet function is kept busy, so
        // that it never idles long enough to be frozen).
        let settle = Instant::now() + Duration::from_millis(1500);
        while Instant::now() < settle {
            quiet.invoke("quiet", PAYLOAD).await?;
        }
        for _ in 0..k.neighbour_samples {
            beside.push(quiet.invoke("quiet", PAYLOAD).await?);
        }
        stop.store(true, Ordering::Relaxed);
        noise.await??;
    }
    Ok((alone, beside))
}

pub async fn neighbours(
    server: &procs::Proc,
    k: &Counts,
    bootstrap_zip: &[u8],
) -> Result<Section, BoxError> {
    let mut a = Conn::open(&server.addr).await?;
    let mut b = Conn::open_as_b(&server.addr).await?;
    let role_a = "arn:aws:iam::123456789012:role/bench";
    let role_b = format!("arn:aws:iam::{ACCOUNT_B}:role/bench");
    let noisy = crate::scenarios::zip_of(&[("app.py", NOISY, 0o644)])?;
    create(
        &mut b,
        "quiet",
        &role_b,
        "provided.al2023",
        "bootstrap",
        bootstrap_zip,
        1769,
    )
    .await?;
    create(
        &mut a,
        "noisy-bomb",
        role_a,
        "python3.11",
        "app.handler",
        &noisy,
        128,
    )
    .await?;
    create(
        &mut a,
        "noisy-burn",
        role_a,
        "python3.11",
        "app.handler",
        &noisy,
        3008,
    )
    .await?;
    let mut body = String::new();
    let _ = writeln!(
        body,
        "A quiet function of one account (the compiled bootstrap, 1,769 MB: one vCPU) is invoked sequentially on \
         one connection while another account runs a noisy function in a closed loop: a fork bomb (128 MB; it forks \
         until its environment's 1,024 processes, every child spinning for a second) or a CPU burn (3,008 MB, one \
         spinning process per CPU for a second). {} blocks of {} invocations alone alternate with as many beside the \
         neighbour. Accounts share CPU time equally and one account may use every CPU but one (`--account-cpus`), \
         so the quiet account and the platform keep a CPU whatever the neighbour does.\n",
        k.neighbour_blocks, k.neighbour_samples
    );
    let _ = writeln!(
        body,
        "| neighbour | p50 alone | p50 beside | p50 factor | p99 alone | p99 beside | p99 factor |"
    );
    let _ = writeln!(body, "| --- | --- | --- | --- | --- | --- | --- |");
    let mut worst: f64 = 0.0;
    for (label, function, event) in [
        ("fork bomb (128 MB)", "noisy-bomb", BOMB),
        ("CPU burn (3,008 MB)", "noisy-burn", BURN),
    ] {
        let (mut alone, mut beside) = measure(&server.addr, &mut b, function, event, k).await?;
        let (sa, sb) = (summarize(&mut alone), summarize(&mut beside));
        let f50 = sb.p50.as_secs_f64() / sa.p50.as_secs_f64().max(1e-9);
        let f99 = sb.p99.as_secs_f64() / sa.p99.as_secs_f64().max(1e-9);
        worst = worst.max(f99);
        let _ = writeln!(
            body,
            "| {label} | {} | {} | {f50:.2}x | {} | {} | {f99:.2}x |",
            us(sa.p50),
            us(sb.p50),
            us(sa.p99),
            us(sb.p99)
        );
    }
    let _ = writeln!(
        body,
        "\nTarget: the quiet function's p99 beside either neighbour within 2x of its p99 alone — {} (worst {worst:.2}x). \
         Before per-account CPU shares and caps, the bounded init and per-account process limits, a hostile-tenant \
         trial measured 1.5x to 37x beside a fork bomb and 8x beside the 3,008 MB burn.\n",
        verdict(worst <= 2.0)
    );
    Ok(Section {
        title: "7. Noisy neighbours".into(),
        body,
    })
}
