//! The RabbitMQ poller for Amazon MQ mappings, over AMQP 0-9-1 (lapin).
//!
//! The broker ARN and the `BASIC_AUTH` secret ARN resolve to an AMQP
//! address through the server's brokers file ([`crate::brokers`]); the
//! `VIRTUAL_HOST` access configuration picks the virtual host. The poller
//! consumes the mapping's queue with manual acknowledgements and a prefetch
//! of one batch, gathers up to `BatchSize` messages for up to
//! `MaximumBatchingWindowInSeconds`, invokes the function with Lambda's
//! `rmqMessagesByQueue` event, and then acknowledges the batch after a
//! success or returns it to the queue (`basic.nack` with requeue) after a
//! failure. A throttled invocation is retried; a stop or a lost connection
//! leaves unacknowledged messages to the broker, which requeues them.

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use futures_util::StreamExt as _;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties};
use serde_json::{Map, Value, json};

use crate::Counters;
use crate::mapping::{FUNCTION_FAILED, PROCESSED_OK};
use crate::poller::Ctx;

/// Lambda's synchronous payload limit, less room for the event's framing.
const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024 - 64 * 1024;
/// How long a batch without a window waits for more messages already on
/// their way once the first arrived.
const NO_WINDOW_LINGER: Duration = Duration::from_millis(20);

/// The queue and virtual host of a mapping, and the address to reach them.
pub(crate) struct Target {
    pub address: String,
    pub queue: String,
    pub vhost: String,
}

/// Where an Amazon MQ mapping reads, from the brokers file.
pub(crate) fn target(
    brokers: &crate::brokers::Brokers,
    m: &crate::mapping::Mapping,
) -> Result<Target, String> {
    let broker = m.event_source_arn.clone().unwrap_or_default();
    let sac = m.source_access.as_deref().unwrap_or_default();
    let secret = sac
        .iter()
        .find(|c| c.kind.as_deref() == Some("BASIC_AUTH"))
        .and_then(|c| c.uri.clone())
        .unwrap_or_default();
    let vhost = sac
        .iter()
        .find(|c| c.kind.as_deref() == Some("VIRTUAL_HOST"))
        .and_then(|c| c.uri.clone())
        .unwrap_or_else(|| "/".to_owned());
    if brokers.url(&broker).is_none() {
        return Err(format!(
            "The broker {broker} is not configured on this server: add it to the brokers file (--brokers-file)."
        ));
    }
    let address = brokers.amqp_address(&broker, &secret, &vhost).ok_or_else(|| {
        format!(
            "The secret {secret} is not configured on this server: add it to the brokers file (--brokers-file)."
        )
    })?;
    let queue = m
        .queues
        .as_ref()
        .and_then(|q| q.first().cloned())
        .unwrap_or_default();
    Ok(Target {
        address,
        queue,
        vhost,
    })
}

pub(crate) async fn run(mut ctx: Ctx) {
    let t = match target(&ctx.inner.brokers, &ctx.mapping) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(uuid = %ctx.mapping.uuid, error = %e, "cannot consume this broker");
            return;
        }
    };
    let mut pause = Duration::from_millis(200);
    while !ctx.stopped() {
        match consume(&mut ctx, &t).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(uuid = %ctx.mapping.uuid, queue = %t.queue, error = %e, "RabbitMQ consumer failed; reconnecting");
            }
        }
        if ctx.pause(pause).await {
            return;
        }
        pause = (pause * 2).min(Duration::from_secs(10));
    }
}

/// One connection's life: consume until told to stop (`Ok`) or until the
/// connection fails.
async fn consume(ctx: &mut Ctx, t: &Target) -> Result<(), String> {
    let err = |e: lapin::Error| e.to_string();
    let Some(conn) = ctx
        .or_stop(Connection::connect(
            &t.address,
            ConnectionProperties::default(),
        ))
        .await
    else {
        return Ok(());
    };
    let conn = conn.map_err(err)?;
    let channel = conn.create_channel().await.map_err(err)?;
    let batch_size = ctx.mapping.batch_size.clamp(1, 10_000) as usize;
    channel
        .basic_qos(
            u16::try_from(batch_size).unwrap_or(u16::MAX),
            BasicQosOptions::default(),
        )
        .await
        .map_err(err)?;
    let tag = format!("lambent-{}", ctx.mapping.uuid);
    let mut consumer = channel
        .basic_consume(
            t.queue.as_str().into(),
            tag.as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(err)?;
    tracing::info!(uuid = %ctx.mapping.uuid, queue = %t.queue, "RabbitMQ consumer started");
    let window = Duration::from_secs(ctx.mapping.batching_window_s.unwrap_or(0).max(0) as u64);
    let key = format!("{}::{}", t.queue, t.vhost);
    loop {
        // The first message of a batch: wait as long as it takes.
        let first = match ctx.or_stop(consumer.next()).await {
            None => break,
            Some(None) => return Err("the broker cancelled the consumer".to_owned()),
            Some(Some(d)) => d.map_err(err)?,
        };
        let mut batch = vec![first];
        let mut bytes = batch[0].data.len();
        let deadline = tokio::time::Instant::now() + window.max(NO_WINDOW_LINGER);
        while batch.len() < batch_size && bytes < MAX_PAYLOAD_BYTES {
            match tokio::time::timeout_at(deadline, consumer.next()).await {
                Ok(Some(Ok(d))) => {
                    bytes += d.data.len();
                    batch.push(d);
                }
                Ok(Some(Err(e))) => return Err(err(e)),
                Ok(None) | Err(_) => break,
            }
        }
        Counters::add(&ctx.counters.polled, batch.len());
        process(ctx, &key, batch).await;
    }
    let _ = channel.close(200, "mapping stopped".into()).await;
    let _ = conn.close(200, "mapping stopped".into()).await;
    Ok(())
}

async fn process(ctx: &mut Ctx, key: &str, all: Vec<Delivery>) {
    let arn = ctx.mapping.event_source_arn.clone().unwrap_or_default();
    let mut kept = Vec::with_capacity(all.len());
    let mut records = Vec::with_capacity(all.len());
    for d in all {
        let r = record(&d);
        let keep = ctx
            .filters
            .as_ref()
            .is_none_or(|f| f.matches(&r, Some(event_pattern::lambda::Payload::DATA_BASE64)));
        if keep {
            kept.push(d);
            records.push(r);
        } else {
            // Lambda acknowledges what no filter matches.
            Counters::add(&ctx.counters.filtered_out, 1);
            if let Err(e) = d.ack(BasicAckOptions::default()).await {
                tracing::warn!(uuid = %ctx.mapping.uuid, error = %e, "cannot acknowledge a filtered-out message");
            }
        }
    }
    if kept.is_empty() {
        return;
    }
    let event = json!({
        "eventSource": "aws:rmq",
        "eventSourceArn": arn,
        "rmqMessagesByQueue": { key: records },
    });
    let payload = match serde_json::to_vec(&event) {
        Ok(p) => Bytes::from(p),
        Err(e) => {
            tracing::error!(uuid = %ctx.mapping.uuid, error = %e, "cannot write the RabbitMQ event");
            return;
        }
    };
    let n = kept.len();
    // The broker holds unacknowledged messages as long as the connection
    // lives: throttles are retried until the function answers or a stop.
    let far = tokio::time::Instant::now() + Duration::from_secs(365 * 24 * 3600);
    let ok = ctx.invoke_batch(payload, n, far).await;
    if ok {
        ctx.processing_result(PROCESSED_OK);
        // One acknowledgement for the batch: every tag up to the last.
        if let Some(last) = kept.last() {
            match last.acker.ack(BasicAckOptions { multiple: true }).await {
                Ok(_) => Counters::add(&ctx.counters.succeeded, n),
                Err(e) => {
                    tracing::warn!(uuid = %ctx.mapping.uuid, error = %e, "cannot acknowledge a batch; the broker hands it out again")
                }
            }
        }
    } else {
        Counters::add(&ctx.counters.failed_invoke, n);
        ctx.processing_result(FUNCTION_FAILED);
        if let Some(last) = kept.last()
            && let Err(e) = last
                .acker
                .nack(BasicNackOptions {
                    multiple: true,
                    requeue: true,
                })
                .await
        {
            tracing::warn!(uuid = %ctx.mapping.uuid, error = %e, "cannot return a batch to the queue");
        }
    }
}

fn short(v: &Option<lapin::types::ShortString>) -> Value {
    v.as_ref()
        .map_or(Value::Null, |s| Value::String(s.as_str().to_owned()))
}

fn header_value(v: &AMQPValue) -> Value {
    match v {
        AMQPValue::Boolean(b) => json!(b),
        AMQPValue::ShortShortInt(n) => json!(n),
        AMQPValue::ShortShortUInt(n) => json!(n),
        AMQPValue::ShortInt(n) => json!(n),
        AMQPValue::ShortUInt(n) => json!(n),
        AMQPValue::LongInt(n) => json!(n),
        AMQPValue::LongUInt(n) => json!(n),
        AMQPValue::LongLongInt(n) => json!(n),
        AMQPValue::Float(n) => json!(n),
        AMQPValue::Double(n) => json!(n),
        AMQPValue::Timestamp(n) => json!(n),
        // Strings arrive as their bytes, as Lambda writes them.
        AMQPValue::ShortString(s) => json!({ "bytes": s.as_str().as_bytes() }),
        AMQPValue::LongString(s) => json!({ "bytes": s.as_bytes() }),
        AMQPValue::ByteArray(b) => json!({ "bytes": b.as_slice() }),
        AMQPValue::FieldArray(a) => Value::Array(a.as_slice().iter().map(header_value).collect()),
        AMQPValue::FieldTable(t) => Value::Object(
            t.inner()
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), header_value(v)))
                .collect(),
        ),
        AMQPValue::DecimalValue(d) => json!(d.value as f64 / 10f64.powi(i32::from(d.scale))),
        AMQPValue::Void => Value::Null,
    }
}

/// `Jan 1, 1970, 12:33:41 AM`, as Lambda writes an AMQP timestamp.
fn timestamp(secs: u64) -> Value {
    let fmt = time::macros::format_description!(
        "[month repr:short] [day padding:none], [year], [hour repr:12 padding:none]:[minute]:[second] [period]"
    );
    i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| t.format(fmt).ok())
        .map_or(Value::Null, Value::String)
}

/// One message of Lambda's `rmqMessagesByQueue` event.
pub(crate) fn record(d: &Delivery) -> Value {
    let p = &d.properties;
    let mut props = Map::new();
    props.insert("contentType".into(), short(p.content_type()));
    props.insert("contentEncoding".into(), short(p.content_encoding()));
    props.insert(
        "headers".into(),
        p.headers().as_ref().map_or(Value::Null, |h| {
            Value::Object(
                h.inner()
                    .iter()
                    .map(|(k, v)| (k.as_str().to_owned(), header_value(v)))
                    .collect(),
            )
        }),
    );
    props.insert("deliveryMode".into(), json!(p.delivery_mode()));
    props.insert("priority".into(), json!(p.priority()));
    props.insert("correlationId".into(), short(p.correlation_id()));
    props.insert("replyTo".into(), short(p.reply_to()));
    props.insert("expiration".into(), short(p.expiration()));
    props.insert("messageId".into(), short(p.message_id()));
    props.insert(
        "timestamp".into(),
        p.timestamp().map_or(Value::Null, timestamp),
    );
    props.insert("type".into(), short(p.kind()));
    props.insert("userId".into(), short(p.user_id()));
    props.insert("appId".into(), short(p.app_id()));
    props.insert("clusterId".into(), short(p.cluster_id()));
    props.insert("bodySize".into(), json!(d.data.len()));
    json!({
        "basicProperties": Value::Object(props),
        "redelivered": d.redelivered,
        "data": base64::engine::general_purpose::STANDARD.encode(&d.data),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_read_as_lambda_writes_them() {
        assert_eq!(timestamp(2021), json!("Jan 1, 1970, 12:33:41 AM"));
        assert_eq!(timestamp(1_700_000_000), json!("Nov 14, 2023, 10:13:20 PM"));
    }
}
