//! The NATS JetStream poller, a source AWS does not have, expressed through
//! the self-managed event source shape so that the aws CLI and the SDKs
//! create it unchanged:
//!
//! - `SelfManagedEventSource.Endpoints.KAFKA_BOOTSTRAP_SERVERS`: `nats://`
//!   server URLs (the scheme tells NATS from Kafka);
//! - `Topics`: the JetStream stream's name;
//! - `SelfManagedKafkaEventSourceConfig.ConsumerGroupId`: the durable
//!   consumer's name (default `lambent-<mapping uuid>`);
//! - `StartingPosition`: `TRIM_HORIZON` (the stream's first message),
//!   `LATEST` (new messages only) or `AT_TIMESTAMP`, used when the durable
//!   consumer is created; after that the consumer keeps the position.
//!
//! The poller pulls a batch (the first message as soon as it comes, then
//! more for up to the batching window), invokes the function, and then
//! acknowledges every message after a success or asks for redelivery
//! (`NAK`) after a failure. Unacknowledged messages come back after the
//! consumer's ack wait: nothing is acknowledged before the function took it.

use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::pull};
use base64::Engine as _;
use bytes::Bytes;
use futures_util::StreamExt as _;
use serde_json::{Map, Value, json};

use crate::Counters;
use crate::mapping::{FUNCTION_FAILED, Mapping, PROCESSED_OK};
use crate::poller::Ctx;

const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024 - 64 * 1024;
/// How long one pull for the first message of a batch waits.
const FIRST_WAIT: Duration = Duration::from_secs(5);

/// Where a NATS mapping reads.
pub(crate) struct Target {
    pub servers: Vec<String>,
    pub stream: String,
    pub consumer: String,
}

pub(crate) fn target(m: &Mapping) -> Target {
    Target {
        servers: m
            .self_managed
            .as_ref()
            .and_then(|s| s.endpoints.get("KAFKA_BOOTSTRAP_SERVERS").cloned())
            .unwrap_or_default(),
        stream: m
            .topics
            .as_ref()
            .and_then(|t| t.first().cloned())
            .unwrap_or_default(),
        consumer: m
            .kafka_config
            .as_ref()
            .and_then(|k| k.consumer_group_id.clone())
            .unwrap_or_else(|| format!("lambent-{}", m.uuid)),
    }
}

fn deliver_policy(m: &Mapping) -> pull::Config {
    let deliver_policy = match m.starting_position.as_deref() {
        Some("LATEST") => jetstream::consumer::DeliverPolicy::New,
        Some("AT_TIMESTAMP") => {
            let secs = m.starting_position_timestamp.unwrap_or_default();
            match time::OffsetDateTime::from_unix_timestamp_nanos((secs * 1e9) as i128) {
                Ok(start_time) => jetstream::consumer::DeliverPolicy::ByStartTime { start_time },
                Err(_) => jetstream::consumer::DeliverPolicy::All,
            }
        }
        _ => jetstream::consumer::DeliverPolicy::All,
    };
    pull::Config {
        durable_name: None,
        deliver_policy,
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        // A batch is in the function's hands at most its timeout (15
        // minutes at most) plus the acknowledgement.
        ack_wait: Duration::from_secs(16 * 60),
        max_ack_pending: m.batch_size.clamp(1, 10_000) * 4,
        ..Default::default()
    }
}

pub(crate) async fn run(mut ctx: Ctx) {
    let t = target(&ctx.mapping);
    let mut pause = Duration::from_millis(200);
    while !ctx.stopped() {
        match consume(&mut ctx, &t).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(uuid = %ctx.mapping.uuid, stream = %t.stream, error = %e, "JetStream consumer failed; reconnecting");
            }
        }
        if ctx.pause(pause).await {
            return;
        }
        pause = (pause * 2).min(Duration::from_secs(10));
    }
}

async fn consume(ctx: &mut Ctx, t: &Target) -> Result<(), String> {
    let addrs: Vec<async_nats::ServerAddr> =
        t.servers.iter().filter_map(|s| s.parse().ok()).collect();
    let Some(client) = ctx.or_stop(async_nats::connect(addrs)).await else {
        return Ok(());
    };
    let client = client.map_err(|e| e.to_string())?;
    let js = jetstream::new(client);
    let stream = js.get_stream(&t.stream).await.map_err(|e| e.to_string())?;
    let mut config = deliver_policy(&ctx.mapping);
    config.durable_name = Some(t.consumer.clone());
    let consumer = stream
        .get_or_create_consumer(&t.consumer, config)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(uuid = %ctx.mapping.uuid, stream = %t.stream, consumer = %t.consumer, "JetStream consumer started");
    let batch_size = ctx.mapping.batch_size.clamp(1, 10_000) as usize;
    let window = Duration::from_secs(ctx.mapping.batching_window_s.unwrap_or(0).max(0) as u64);
    loop {
        // The first message: wait for it, a pull at a time.
        let first = consumer
            .batch()
            .max_messages(1)
            .expires(FIRST_WAIT)
            .messages()
            .await
            .map_err(|e| e.to_string())?;
        let Some(mut first) = ctx.or_stop(collect(first, MAX_PAYLOAD_BYTES)).await else {
            return Ok(());
        };
        let mut batch = first.drain(..).collect::<Result<Vec<_>, _>>()?;
        if batch.is_empty() {
            continue;
        }
        // Then what is there already, or arrives within the window.
        if batch_size > 1 {
            let bytes: usize = batch.iter().map(|m| m.payload.len()).sum();
            let more = if window.is_zero() {
                consumer
                    .fetch()
                    .max_messages(batch_size - 1)
                    .messages()
                    .await
            } else {
                consumer
                    .batch()
                    .max_messages(batch_size - 1)
                    .expires(window)
                    .messages()
                    .await
            }
            .map_err(|e| e.to_string())?;
            // A stop here leaves the messages unacknowledged: they return.
            for m in collect(more, MAX_PAYLOAD_BYTES.saturating_sub(bytes)).await {
                batch.push(m?);
            }
        }
        Counters::add(&ctx.counters.polled, batch.len());
        process(ctx, t, batch).await;
        if ctx.stopped() {
            return Ok(());
        }
    }
}

/// Drains a pull's messages (within a byte budget: whatever is beyond it
/// stays unacknowledged and is delivered again). An error ends the pull.
async fn collect<S, E>(mut s: S, budget: usize) -> Vec<Result<jetstream::Message, String>>
where
    S: futures_util::Stream<Item = Result<jetstream::Message, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut out = Vec::new();
    let mut bytes = 0;
    while let Some(m) = s.next().await {
        match m {
            Ok(m) => {
                bytes += m.payload.len();
                if bytes > budget && !out.is_empty() {
                    continue;
                }
                out.push(Ok(m));
            }
            Err(e) => {
                out.push(Err(e.to_string()));
                break;
            }
        }
    }
    out
}

/// One record of the NATS event.
fn record(m: &jetstream::Message) -> Value {
    let (sequence, delivered, timestamp) = match m.info() {
        Ok(i) => (
            i.stream_sequence,
            i.delivered,
            (i.published.unix_timestamp_nanos() / 1_000_000) as i64,
        ),
        Err(_) => (0, 0, 0),
    };
    let mut headers = Map::new();
    if let Some(h) = &m.headers {
        for (k, vs) in h.iter() {
            headers.insert(
                k.to_string(),
                Value::Array(vs.iter().map(|v| json!(v.as_str())).collect()),
            );
        }
    }
    json!({
        "subject": m.subject.as_str(),
        "sequence": sequence,
        "timestamp": timestamp,
        "deliveries": delivered,
        "headers": headers,
        "data": base64::engine::general_purpose::STANDARD.encode(&m.payload),
    })
}

async fn process(ctx: &mut Ctx, t: &Target, all: Vec<jetstream::Message>) {
    let mut kept = Vec::with_capacity(all.len());
    let mut records = Vec::with_capacity(all.len());
    for m in all {
        let r = record(&m);
        let keep = ctx
            .filters
            .as_ref()
            .is_none_or(|f| f.matches(&r, Some(event_pattern::lambda::Payload::DATA_BASE64)));
        if keep {
            kept.push(m);
            records.push(r);
        } else {
            Counters::add(&ctx.counters.filtered_out, 1);
            if let Err(e) = m.ack().await {
                tracing::warn!(uuid = %ctx.mapping.uuid, error = %e, "cannot acknowledge a filtered-out message");
            }
        }
    }
    if kept.is_empty() {
        return;
    }
    let event = json!({
        "eventSource": "lambent:nats",
        "servers": t.servers.join(","),
        "stream": t.stream,
        "consumer": t.consumer,
        "records": records,
    });
    let payload = match serde_json::to_vec(&event) {
        Ok(p) => Bytes::from(p),
        Err(e) => {
            tracing::error!(uuid = %ctx.mapping.uuid, error = %e, "cannot write the NATS event");
            return;
        }
    };
    let n = kept.len();
    // Within the consumer's ack wait the messages stay ours.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15 * 60);
    let ok = ctx.invoke_batch(payload, n, deadline).await;
    if ok {
        ctx.processing_result(PROCESSED_OK);
        // Double acks wait for the server's confirmation; the batch's go
        // out together.
        let results =
            futures_util::future::join_all(kept.iter().map(|m| m.double_ack_with(AckKind::Ack)))
                .await;
        let mut acked = 0;
        for r in results {
            match r {
                Ok(()) => acked += 1,
                Err(e) => {
                    tracing::warn!(uuid = %ctx.mapping.uuid, error = %e, "cannot acknowledge a message; it is delivered again")
                }
            }
        }
        Counters::add(&ctx.counters.succeeded, acked);
    } else {
        Counters::add(&ctx.counters.failed_invoke, n);
        ctx.processing_result(FUNCTION_FAILED);
        for m in &kept {
            if let Err(e) = m.ack_with(AckKind::Nak(None)).await {
                tracing::warn!(uuid = %ctx.mapping.uuid, error = %e, "cannot return a message for redelivery");
            }
        }
    }
}
