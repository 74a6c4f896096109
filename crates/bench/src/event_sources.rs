//! Event source mappings: records per second from a NATS JetStream stream to
//! the handler, beside a plain JetStream consumer of the same client library
//! doing the same pull-and-acknowledge work, and the latency from publish
//! to the record's acknowledgement (which follows the handler's return).

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, AckKind, consumer::pull};
use futures_util::StreamExt as _;
use serde_json::json;

use crate::Section;
use crate::client::{BoxError, Conn};
use crate::stats::{ms, summarize};

const NATS: &str = "127.0.0.1:4222";

fn unique(tag: &str) -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("BENCH_{tag}_{n}")
}

async fn stream_with(js: &jetstream::Context, records: usize) -> Result<String, BoxError> {
    let name = unique("ESM");
    let subject = name.to_lowercase();
    js.create_stream(jetstream::stream::Config {
        name: name.clone(),
        subjects: vec![format!("{subject}.>")],
        ..Default::default()
    })
    .await?;
    let mut acks = Vec::with_capacity(records);
    for i in 0..records {
        acks.push(
            js.publish(format!("{subject}.r"), format!("{{\"n\":{i}}}").into())
                .await?,
        );
    }
    for a in acks {
        a.await?;
    }
    Ok(name)
}

/// Waits until the durable consumer acknowledged everything in the stream.
async fn drained(
    js: &jetstream::Context,
    stream: &str,
    durable: &str,
    records: u64,
) -> Result<(), BoxError> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        if let Ok(s) = js.get_stream(stream).await
            && let Ok(mut c) = s.get_consumer::<pull::Config>(durable).await
            && let Ok(info) = c.info().await
            && info.ack_floor.stream_sequence >= records
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("{stream}: the mapping did not drain in 10 minutes").into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The plain consumer: pulls batches of `batch` and acknowledges each
/// message (double ack, as the poller does).
async fn plain(
    js: &jetstream::Context,
    stream: &str,
    records: usize,
    batch: usize,
) -> Result<f64, BoxError> {
    let s = js.get_stream(stream).await?;
    let consumer = s
        .get_or_create_consumer(
            "plain",
            pull::Config {
                durable_name: Some("plain".into()),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ..Default::default()
            },
        )
        .await?;
    let started = Instant::now();
    let mut got = 0;
    while got < records {
        let mut msgs = consumer
            .batch()
            .max_messages(batch)
            .expires(Duration::from_secs(1))
            .messages()
            .await?;
        let mut batch_msgs = Vec::with_capacity(batch);
        while let Some(m) = msgs.next().await {
            batch_msgs.push(m?);
        }
        got += batch_msgs.len();
        for r in futures_util::future::join_all(
            batch_msgs.iter().map(|m| m.double_ack_with(AckKind::Ack)),
        )
        .await
        {
            r?;
        }
    }
    Ok(records as f64 / started.elapsed().as_secs_f64())
}

async fn mapping(
    c: &mut Conn,
    function: &str,
    stream: &str,
    durable: &str,
    batch: usize,
) -> Result<String, BoxError> {
    let m = c
        .json(
            "POST",
            "/2015-03-31/event-source-mappings",
            json!({
                "FunctionName": function,
                "SelfManagedEventSource": {"Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": [format!("nats://{NATS}")]}},
                "Topics": [stream],
                "SelfManagedKafkaEventSourceConfig": {"ConsumerGroupId": durable},
                "StartingPosition": "TRIM_HORIZON",
                "BatchSize": batch,
            }),
        )
        .await?;
    Ok(m["UUID"].as_str().unwrap_or_default().to_owned())
}

pub async fn event_sources(c: &mut Conn, smoke: bool) -> Result<Section, BoxError> {
    let title = "8. Event source mappings (NATS JetStream)".to_owned();
    let client = match async_nats::connect(NATS).await {
        Ok(c) => c,
        Err(e) => {
            return Ok(Section {
                title,
                body: format!("Not measured: no NATS server with JetStream at {NATS} ({e}).\n"),
            });
        }
    };
    let js = jetstream::new(client);
    let records = if smoke { 300 } else { 5000 };
    let mut body = format!(
        "{records} records (`{{\"n\":i}}`) already in a stream, drained by a mapping to the compiled echo function \
         (`provided.al2023`) at each batch size, from the mapping's creation until the durable consumer's \
         acknowledgement floor reaches the last record. The baseline is a plain async-nats pull consumer on the \
         same machine that pulls batches of the same size and acknowledges each record the same way (double ack, \
         a batch's acknowledgements sent together), \
         without invoking anything.\n\n\
         | batch size | plain consumer records/s | mapping records/s | ratio |\n| --- | --- | --- | --- |\n"
    );
    let mut at_ten = None;
    for batch in [1usize, 10, 100] {
        let base_stream = stream_with(&js, records).await?;
        let base = plain(&js, &base_stream, records, batch).await?;
        let _ = js.delete_stream(&base_stream).await;
        let stream = stream_with(&js, records).await?;
        let started = Instant::now();
        let uuid = mapping(c, "echo-provided", &stream, "bench", batch).await?;
        drained(&js, &stream, "bench", records as u64).await?;
        let ours = records as f64 / started.elapsed().as_secs_f64();
        c.json(
            "DELETE",
            &format!("/2015-03-31/event-source-mappings/{uuid}"),
            serde_json::Value::Null,
        )
        .await?;
        let _ = js.delete_stream(&stream).await;
        if batch == 10 {
            at_ten = Some(ours / base);
        }
        body.push_str(&format!(
            "| {batch} | {base:.0} | {ours:.0} | {:.2}x |\n",
            ours / base
        ));
    }
    if let Some(r) = at_ten {
        body.push_str(&format!(
            "\nTarget: at batch 10, at least 0.8x the plain consumer — {} ({r:.2}x).\n",
            if r >= 0.8 { "met" } else { "missed" }
        ));
    }

    // Latency: one record at a time, publish to acknowledgement.
    let samples = if smoke { 30 } else { 300 };
    let stream = stream_with(&js, 0).await?;
    let subject = stream.to_lowercase();
    let uuid = mapping(c, "echo-provided", &stream, "latency", 1).await?;
    // The poller creates the durable consumer: wait for it.
    let ready = Instant::now();
    loop {
        if let Ok(s) = js.get_stream(&stream).await
            && s.get_consumer::<pull::Config>("latency").await.is_ok()
        {
            break;
        }
        if ready.elapsed() > Duration::from_secs(60) {
            return Err("the latency mapping's consumer never appeared".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut ours = Vec::with_capacity(samples);
    for i in 0..samples {
        let t = Instant::now();
        js.publish(format!("{subject}.r"), "{}".into())
            .await?
            .await?;
        drained(&js, &stream, "latency", i as u64 + 1).await?;
        ours.push(t.elapsed());
    }
    c.json(
        "DELETE",
        &format!("/2015-03-31/event-source-mappings/{uuid}"),
        serde_json::Value::Null,
    )
    .await?;
    // The same with the plain consumer pulling one at a time.
    let s = js.get_stream(&stream).await?;
    let consumer = s
        .get_or_create_consumer(
            "plain-latency",
            pull::Config {
                durable_name: Some("plain-latency".into()),
                deliver_policy: jetstream::consumer::DeliverPolicy::New,
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ..Default::default()
            },
        )
        .await?;
    let mut base = Vec::with_capacity(samples);
    for _ in 0..samples {
        let t = Instant::now();
        let mut msgs = consumer
            .batch()
            .max_messages(1)
            .expires(Duration::from_secs(5))
            .messages()
            .await?;
        js.publish(format!("{subject}.r"), "{}".into())
            .await?
            .await?;
        if let Some(m) = msgs.next().await {
            m?.double_ack_with(AckKind::Ack).await?;
        }
        base.push(t.elapsed());
    }
    let _ = js.delete_stream(&stream).await;
    let (o, b) = (summarize(&mut ours), summarize(&mut base));
    body.push_str(&format!(
        "\nLatency, {samples} records published one at a time (batch size 1), from the publish call to the \
         record's acknowledgement as the stream reports it (the handler has returned by then, so this bounds \
         publish-to-handler-start from above; the poll of the consumer's state adds up to 5 ms):\n\n\
         | | p50 | p99 |\n| --- | --- | --- |\n\
         | plain consumer (pull, ack) | {} | {} |\n| mapping (pull, invoke, ack) | {} | {} |\n",
        ms(b.p50),
        ms(b.p99),
        ms(o.p50),
        ms(o.p99)
    ));
    Ok(Section { title, body })
}
