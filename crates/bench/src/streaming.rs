//! Response streaming: the time from a function's write of its first chunk
//! to that chunk's arrival at the client, through `InvokeWithResponseStream`.

use std::fmt::Write as _;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;

use crate::client::{BoxError, Conn};
use crate::stats::{summarize, us, verdict};
use crate::{Counts, Section, procs};

/// The function's pause after its first chunk, in ms (its event).
const PAUSE_MS: &[u8] = b"20";

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

/// One streamed invocation: (first chunk's delay after the function wrote
/// it, time from the request to the first chunk, time to the end).
async fn one(c: &mut Conn, function: &str) -> Result<(Duration, Duration, Duration), BoxError> {
    let path = format!("/2021-11-15/functions/{function}/response-streaming-invocations");
    let started = Instant::now();
    let resp = c
        .send_streaming("POST", &path, "lambda", &[], Bytes::from_static(PAUSE_MS))
        .await?;
    if resp.status() != 200 {
        return Err(format!("InvokeWithResponseStream answered {}", resp.status()).into());
    }
    let mut body = resp.into_body();
    let mut buf = BytesMut::new();
    let mut first: Option<(Duration, Duration)> = None;
    let mut complete = false;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        let arrived_ns = now_ns();
        let arrived = started.elapsed();
        buf.extend_from_slice(&data);
        while buf.len() >= 4 {
            let total = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
            if buf.len() < total {
                break;
            }
            let mut whole = buf.split_to(total).freeze();
            let message = aws_smithy_eventstream::frame::read_message_from(&mut whole)?;
            let kind = message
                .headers()
                .iter()
                .find(|h| h.name().as_str() == ":event-type")
                .and_then(|h| h.value().as_string().ok())
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default();
            match kind.as_str() {
                "PayloadChunk" if first.is_none() => {
                    let written: u128 = std::str::from_utf8(message.payload())?.trim().parse()?;
                    let delay = Duration::from_nanos(arrived_ns.saturating_sub(written) as u64);
                    first = Some((delay, arrived));
                }
                "InvokeComplete" => {
                    let doc: serde_json::Value = serde_json::from_slice(message.payload())?;
                    if doc.get("ErrorCode").is_some() {
                        return Err(format!("the streamed invocation failed: {doc}").into());
                    }
                    complete = true;
                }
                _ => {}
            }
        }
    }
    let end = started.elapsed();
    match (first, complete) {
        (Some((delay, ttfb)), true) => Ok((delay, ttfb, end)),
        _ => Err("the stream ended without a chunk and InvokeComplete".into()),
    }
}

pub async fn streaming(server: &procs::Proc, k: &Counts) -> Result<Section, BoxError> {
    let mut c = Conn::open(&server.addr).await?;
    for _ in 0..k.stream_warmup {
        one(&mut c, "stream-provided").await?;
    }
    let (mut delays, mut ttfbs, mut ends) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..k.stream_samples {
        let (d, t, e) = one(&mut c, "stream-provided").await?;
        delays.push(d);
        ttfbs.push(t);
        ends.push(e);
    }
    let d = summarize(&mut delays);
    let t = summarize(&mut ttfbs);
    let e = summarize(&mut ends);
    let mut body = String::new();
    let _ = writeln!(
        body,
        "{} sequential `InvokeWithResponseStream` calls on one keep-alive connection after {} warm-up, of a \
         compiled streaming bootstrap (1,769 MB) that writes one chunk at once (its wall-clock time) and ends the \
         response {} ms later. \"Write to arrival\" is the chunk's arrival at the client minus the time the \
         function wrote it (same host clock); the request-to-first-chunk and request-to-end times include the \
         signed request and the hand-over to the function.\n",
        k.stream_samples,
        k.stream_warmup,
        String::from_utf8_lossy(PAUSE_MS)
    );
    let _ = writeln!(body, "| measure | p50 | p90 | p99 | p99.9 |");
    let _ = writeln!(body, "| --- | --- | --- | --- | --- |");
    for (label, m) in [
        ("write to arrival (first chunk)", &d),
        ("request to first chunk", &t),
        ("request to InvokeComplete", &e),
    ] {
        let _ = writeln!(
            body,
            "| {label} | {} | {} | {} | {} |",
            us(m.p50),
            us(m.p90),
            us(m.p99),
            us(m.p999)
        );
    }
    let _ = writeln!(
        body,
        "\nTarget: the first chunk within 1 ms of the function's write, p99 — {} ({}).\n",
        verdict(d.p99 <= Duration::from_millis(1)),
        us(d.p99)
    );
    Ok(Section {
        title: "8. Response streaming: time to first byte".into(),
        body,
    })
}
