//! The SQS poller, through the AWS SDK for Rust configured the standard way
//! (`AWS_ENDPOINT_URL_SQS` or `AWS_ENDPOINT_URL`, the standard credential
//! chain), so AWS, LocalStack, ElasticMQ and moto all serve.
//!
//! Workers long-poll the queue, gather a batch (up to `BatchSize`, for up to
//! `MaximumBatchingWindowInSeconds`, within the 6 MB payload limit), invoke
//! the function with Lambda's SQS event, and delete what the function took:
//! everything after a success, nothing after a failure (the queue's
//! visibility timeout and redrive policy govern retries and dead letters),
//! all but the reported items with `ReportBatchItemFailures`. Workers grow
//! with the backlog up to `ScalingConfig.MaximumConcurrency`, and shrink
//! when the queue runs dry. A FIFO group keeps its order: after a failed
//! message, none of that group's later messages in the batch is deleted.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName, QueueAttributeName,
};
use base64::Engine as _;
use bytes::Bytes;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use crate::Counters;
use crate::mapping::{FUNCTION_FAILED, Kind, PROCESSED_OK};
use crate::poller::{Ctx, Outcome};

/// Lambda's synchronous payload limit, less room for the event's framing.
const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024 - 64 * 1024;
/// Concurrent batches when the mapping sets no `MaximumConcurrency`.
const DEFAULT_MAX_WORKERS: usize = 1000;
/// SQS's longest long poll.
const LONG_POLL_S: i32 = 20;

/// The HTTP client every SQS client shares (HTTP and HTTPS).
#[derive(Default)]
pub(crate) struct Clients {
    http: std::sync::OnceLock<aws_sdk_sqs::config::SharedHttpClient>,
}

impl Clients {
    fn http(&self) -> aws_sdk_sqs::config::SharedHttpClient {
        self.http
            .get_or_init(|| {
                use aws_smithy_http_client::tls;
                aws_smithy_http_client::Builder::new()
                    .tls_provider(tls::Provider::Rustls(
                        tls::rustls_provider::CryptoMode::Ring,
                    ))
                    .build_https()
            })
            .clone()
    }

    /// An SQS client for `region`, configured from the environment.
    pub(crate) async fn sqs(&self, region: &str) -> Client {
        let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_owned()))
            .http_client(self.http())
            .load()
            .await;
        Client::new(&conf)
    }
}

/// The queue a mapping reads, from its ARN.
struct QueueArn {
    region: String,
    account: String,
    name: String,
}

fn parse_arn(arn: &str) -> Option<QueueArn> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", _, "sqs", region, account, name] if !name.is_empty() => Some(QueueArn {
            region: (*region).to_owned(),
            account: (*account).to_owned(),
            name: (*name).to_owned(),
        }),
        _ => None,
    }
}

/// One queue as the workers share it.
struct Queue {
    client: Client,
    url: String,
    arn: String,
    region: String,
    fifo: bool,
    visibility: Duration,
    active: AtomicUsize,
    max_workers: usize,
    filters: Option<event_pattern::lambda::FilterCriteria>,
}

pub(crate) async fn run(mut ctx: Ctx) {
    let arn = ctx.mapping.event_source_arn.clone().unwrap_or_default();
    let Some(q) = parse_arn(&arn) else {
        tracing::error!(uuid = %ctx.mapping.uuid, %arn, "not an SQS queue ARN");
        return;
    };
    let client = ctx.inner.sources.sqs(&q.region).await;
    // The queue may not exist yet, or the endpoint may be down: keep trying.
    let mut pause = Duration::from_millis(200);
    let url = loop {
        let got = ctx
            .or_stop(
                client
                    .get_queue_url()
                    .queue_name(&q.name)
                    .queue_owner_aws_account_id(&q.account)
                    .send(),
            )
            .await;
        match got {
            None => return,
            Some(Ok(out)) if out.queue_url().is_some() => {
                break out.queue_url().unwrap_or_default().to_owned();
            }
            Some(Ok(_)) => tracing::warn!(uuid = %ctx.mapping.uuid, %arn, "the queue has no URL"),
            Some(Err(e)) => {
                tracing::warn!(uuid = %ctx.mapping.uuid, %arn, error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "cannot find the queue; retrying")
            }
        }
        if ctx.pause(pause).await {
            return;
        }
        pause = (pause * 2).min(Duration::from_secs(10));
    };
    let visibility = queue_attribute(&client, &url, QueueAttributeName::VisibilityTimeout)
        .await
        .and_then(|v| v.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(30));
    let max_workers = ctx
        .mapping
        .scaling
        .as_ref()
        .and_then(|s| s.maximum_concurrency)
        .map(|n| n.max(1) as usize)
        .unwrap_or(DEFAULT_MAX_WORKERS);
    let filters = match ctx
        .mapping
        .filter_criteria
        .as_ref()
        .map(crate::validate::compile_filters)
    {
        Some(Ok(f)) => Some(f),
        Some(Err(e)) => {
            tracing::error!(uuid = %ctx.mapping.uuid, error = %e, "the stored filters do not compile");
            return;
        }
        None => None,
    };
    let queue = Arc::new(Queue {
        filters,
        client,
        url,
        arn: arn.clone(),
        region: q.region,
        fifo: matches!(ctx.mapping.kind, Kind::Sqs { fifo: true }),
        visibility,
        active: AtomicUsize::new(0),
        max_workers,
    });
    tracing::info!(uuid = %ctx.mapping.uuid, queue = %queue.url, "SQS poller started");
    let (grow_tx, mut grow_rx) = mpsc::channel::<()>(16);
    let mut workers = tokio::task::JoinSet::new();
    spawn_worker(&mut workers, &ctx, &queue, &grow_tx);
    let mut backlog_tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            _ = ctx.stop.changed() => break,
            Some(()) = grow_rx.recv() => {
                if queue.active.load(Ordering::Acquire) < queue.max_workers {
                    spawn_worker(&mut workers, &ctx, &queue, &grow_tx);
                }
            }
            Some(done) = workers.join_next() => {
                if let Err(e) = done && e.is_panic() {
                    tracing::error!(uuid = %ctx.mapping.uuid, "an SQS worker panicked");
                }
                if workers.is_empty() && !ctx.stopped() {
                    spawn_worker(&mut workers, &ctx, &queue, &grow_tx);
                }
            }
            _ = backlog_tick.tick() => {
                if let Some(n) = queue_attribute(&queue.client, &queue.url, QueueAttributeName::ApproximateNumberOfMessages).await
                    .and_then(|v| v.parse::<i64>().ok())
                {
                    ctx.counters.backlog.store(n, Ordering::Relaxed);
                }
            }
        }
        if ctx.stopped() {
            break;
        }
    }
    // Workers see the stop and finish their in-flight batch.
    while let Some(done) = workers.join_next().await {
        if let Err(e) = done
            && e.is_panic()
        {
            tracing::error!(uuid = %ctx.mapping.uuid, "an SQS worker panicked");
        }
    }
    tracing::info!(uuid = %ctx.mapping.uuid, "SQS poller stopped");
}

fn spawn_worker(
    set: &mut tokio::task::JoinSet<()>,
    ctx: &Ctx,
    queue: &Arc<Queue>,
    grow: &mpsc::Sender<()>,
) {
    queue.active.fetch_add(1, Ordering::AcqRel);
    let (ctx, queue, grow) = (ctx.clone(), queue.clone(), grow.clone());
    set.spawn(async move {
        worker(ctx, &queue, grow).await;
        queue.active.fetch_sub(1, Ordering::AcqRel);
    });
}

async fn queue_attribute(client: &Client, url: &str, name: QueueAttributeName) -> Option<String> {
    let out = client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(name.clone())
        .send()
        .await
        .ok()?;
    out.attributes()?.get(&name).cloned()
}

async fn worker(mut ctx: Ctx, q: &Queue, grow: mpsc::Sender<()>) {
    let batch_size = ctx.mapping.batch_size.clamp(1, 10_000) as usize;
    let window = Duration::from_secs(ctx.mapping.batching_window_s.unwrap_or(0).max(0) as u64);
    let mut carried: Vec<Message> = Vec::new();
    let mut pause = Duration::from_millis(100);
    while !ctx.stopped() {
        let batch = match gather(&mut ctx, q, batch_size, window, &mut carried).await {
            Some(Ok(b)) => b,
            Some(Err(e)) => {
                tracing::warn!(uuid = %ctx.mapping.uuid, error = %e, "cannot receive from the queue; retrying");
                if ctx.pause(pause).await {
                    return;
                }
                pause = (pause * 2).min(Duration::from_secs(10));
                continue;
            }
            None => return,
        };
        pause = Duration::from_millis(100);
        if batch.is_empty() {
            // The queue ran dry: the extra workers go.
            if q.active.load(Ordering::Acquire) > 1 {
                return;
            }
            continue;
        }
        if batch.len() >= batch_size.min(10) && q.active.load(Ordering::Acquire) < q.max_workers {
            let _ = grow.try_send(());
        }
        process(&mut ctx, q, batch).await;
    }
}

/// Receives up to `batch_size` messages for up to `window` (a single long
/// poll when there is no window); `None` when told to stop. Messages beyond
/// the payload limit are carried into the next batch.
async fn gather(
    ctx: &mut Ctx,
    q: &Queue,
    batch_size: usize,
    window: Duration,
    carried: &mut Vec<Message>,
) -> Option<Result<Vec<Message>, String>> {
    let started = tokio::time::Instant::now();
    let mut batch: Vec<Message> = std::mem::take(carried);
    let mut bytes: usize = batch.iter().map(approx_size).sum();
    loop {
        if batch.len() >= batch_size || bytes >= MAX_PAYLOAD_BYTES {
            break;
        }
        let elapsed = started.elapsed();
        let wait_s = if window.is_zero() {
            if batch.is_empty() { LONG_POLL_S } else { 0 }
        } else if elapsed >= window {
            break;
        } else {
            ((window - elapsed).as_secs_f64().ceil() as i32).clamp(0, LONG_POLL_S)
        };
        let want = (batch_size - batch.len()).min(10) as i32;
        let received = ctx
            .or_stop(
                q.client
                    .receive_message()
                    .queue_url(&q.url)
                    .max_number_of_messages(want)
                    .wait_time_seconds(wait_s)
                    .message_attribute_names("All")
                    .message_system_attribute_names(MessageSystemAttributeName::All)
                    .send(),
            )
            .await;
        let out = match received {
            None => {
                // Told to stop: what was gathered returns to the queue when
                // its visibility timeout ends.
                return None;
            }
            Some(Err(e)) => {
                if batch.is_empty() {
                    return Some(Err(aws_sdk_sqs::error::DisplayErrorContext(&e).to_string()));
                }
                break;
            }
            Some(Ok(out)) => out,
        };
        let got = out.messages().len();
        for m in out.messages() {
            let size = approx_size(m);
            if bytes + size > MAX_PAYLOAD_BYTES && !batch.is_empty() {
                carried.push(m.clone());
            } else {
                bytes += size;
                batch.push(m.clone());
            }
        }
        if !carried.is_empty() {
            break;
        }
        if window.is_zero() && (got == 0 || batch.len() >= batch_size || got < want as usize) {
            break;
        }
    }
    Counters::add(&ctx.counters.polled, batch.len());
    Some(Ok(batch))
}

fn approx_size(m: &Message) -> usize {
    m.body().map_or(0, str::len) + 1024
}

/// Lambda's SQS event record for a message.
pub(crate) fn record(q_arn: &str, region: &str, m: &Message) -> Value {
    {
        {
            let mut attributes = Map::new();
            if let Some(a) = m.attributes() {
                let mut sorted: Vec<(&MessageSystemAttributeName, &String)> = a.iter().collect();
                sorted.sort_by(|x, y| x.0.as_str().cmp(y.0.as_str()));
                for (k, v) in sorted {
                    attributes.insert(k.as_str().to_owned(), Value::String(v.clone()));
                }
            }
            let mut message_attributes = Map::new();
            if let Some(a) = m.message_attributes() {
                let mut sorted: Vec<_> = a.iter().collect();
                sorted.sort_by(|x, y| x.0.cmp(y.0));
                for (k, v) in sorted {
                    let b64 = |b: &aws_sdk_sqs::primitives::Blob| {
                        Value::String(base64::engine::general_purpose::STANDARD.encode(b.as_ref()))
                    };
                    let mut attr = Map::new();
                    if let Some(s) = v.string_value() {
                        attr.insert("stringValue".into(), Value::String(s.to_owned()));
                    }
                    if let Some(b) = v.binary_value() {
                        attr.insert("binaryValue".into(), b64(b));
                    }
                    attr.insert(
                        "stringListValues".into(),
                        Value::Array(
                            v.string_list_values()
                                .iter()
                                .map(|s| Value::String(s.clone()))
                                .collect(),
                        ),
                    );
                    attr.insert(
                        "binaryListValues".into(),
                        Value::Array(v.binary_list_values().iter().map(b64).collect()),
                    );
                    attr.insert("dataType".into(), Value::String(v.data_type().to_owned()));
                    message_attributes.insert(k.clone(), Value::Object(attr));
                }
            }
            let mut rec = Map::new();
            rec.insert(
                "messageId".into(),
                json!(m.message_id().unwrap_or_default()),
            );
            rec.insert(
                "receiptHandle".into(),
                json!(m.receipt_handle().unwrap_or_default()),
            );
            rec.insert("body".into(), json!(m.body().unwrap_or_default()));
            rec.insert("attributes".into(), Value::Object(attributes));
            rec.insert(
                "messageAttributes".into(),
                Value::Object(message_attributes),
            );
            rec.insert(
                "md5OfBody".into(),
                json!(m.md5_of_body().unwrap_or_default()),
            );
            if let Some(md5) = m.md5_of_message_attributes() {
                rec.insert("md5OfMessageAttributes".into(), json!(md5));
            }
            rec.insert("eventSource".into(), json!("aws:sqs"));
            rec.insert("eventSourceARN".into(), json!(q_arn));
            rec.insert("awsRegion".into(), json!(region));
            Value::Object(rec)
        }
    }
}

/// Which messages of a batch the function took, by its answer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Taken {
    All,
    None,
    /// All but these message ids.
    AllBut(HashSet<String>),
}

/// Reads a `ReportBatchItemFailures` answer the way Lambda does: an empty
/// or null answer or failure list is a success; invalid JSON, or an item
/// identifier that is empty, null, misnamed or not in the batch, fails the
/// whole batch.
pub(crate) fn taken_from_report(payload: &[u8], ids: &HashSet<&str>) -> Taken {
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Taken::All;
    }
    let Ok(v) = serde_json::from_slice::<Value>(payload) else {
        return Taken::None;
    };
    let failures = match &v {
        Value::Null => return Taken::All,
        Value::Object(o) => match o.get("batchItemFailures") {
            None | Some(Value::Null) => return Taken::All,
            Some(Value::Array(a)) => a,
            Some(_) => return Taken::None,
        },
        _ => return Taken::All,
    };
    let mut failed = HashSet::new();
    for f in failures {
        match f.get("itemIdentifier") {
            Some(Value::String(id)) if !id.is_empty() && ids.contains(id.as_str()) => {
                failed.insert(id.clone());
            }
            _ => return Taken::None,
        }
    }
    if failed.is_empty() {
        Taken::All
    } else {
        Taken::AllBut(failed)
    }
}

async fn process(ctx: &mut Ctx, q: &Queue, all: Vec<Message>) {
    // Records no filter matches are deleted without an invocation, as
    // Lambda deletes them.
    let mut batch = Vec::with_capacity(all.len());
    let mut records = Vec::with_capacity(all.len());
    let mut filtered = Vec::new();
    for m in all {
        let r = record(&q.arn, &q.region, &m);
        let keep = q
            .filters
            .as_ref()
            .is_none_or(|f| f.matches(&r, Some(event_pattern::lambda::Payload::SQS)));
        if keep {
            batch.push(m);
            records.push(r);
        } else {
            filtered.push(m);
        }
    }
    if !filtered.is_empty() {
        Counters::add(&ctx.counters.filtered_out, filtered.len());
        let refs: Vec<&Message> = filtered.iter().collect();
        delete_messages(ctx, q, &refs).await;
    }
    if batch.is_empty() {
        return;
    }
    let payload = match serde_json::to_vec(&json!({ "Records": records })) {
        Ok(p) => Bytes::from(p),
        Err(e) => {
            tracing::error!(uuid = %ctx.mapping.uuid, error = %e, "cannot write the SQS event");
            return;
        }
    };
    let n = batch.len();
    // Past the visibility timeout SQS hands the messages out again: stop
    // retrying throttles before then.
    let deadline = tokio::time::Instant::now() + q.visibility.mul_f64(0.8);
    let Some(outcome) = ctx.invoke_retrying_throttles(payload, deadline).await else {
        return;
    };
    let taken = match outcome {
        Outcome::Success(answer) => {
            Counters::add(&ctx.counters.invoked, n);
            if ctx.mapping.reports_item_failures() {
                let ids: HashSet<&str> = batch.iter().filter_map(Message::message_id).collect();
                taken_from_report(&answer, &ids)
            } else {
                Taken::All
            }
        }
        Outcome::FunctionError => {
            Counters::add(&ctx.counters.invoked, n);
            Taken::None
        }
        Outcome::Throttled => Taken::None,
        Outcome::Unavailable(why) => {
            tracing::warn!(uuid = %ctx.mapping.uuid, error = %why, "cannot invoke the mapped function");
            let _ = ctx.pause(Duration::from_secs(1)).await;
            Taken::None
        }
    };
    let delete: Vec<&Message> = match &taken {
        Taken::All => batch.iter().collect(),
        Taken::None => Vec::new(),
        Taken::AllBut(failed) => {
            let mut blocked_groups: HashSet<String> = HashSet::new();
            batch
                .iter()
                .filter(|m| {
                    let id = m.message_id().unwrap_or_default();
                    let group = q.fifo.then(|| group_of(m)).flatten();
                    if failed.contains(id) {
                        if let Some(g) = group {
                            blocked_groups.insert(g);
                        }
                        return false;
                    }
                    group.is_none_or(|g| !blocked_groups.contains(&g))
                })
                .collect()
        }
    };
    let failed = n - delete.len();
    if failed > 0 {
        Counters::add(&ctx.counters.failed_invoke, failed);
        ctx.processing_result(FUNCTION_FAILED);
    } else {
        ctx.processing_result(PROCESSED_OK);
    }
    delete_messages(ctx, q, &delete).await;
}

fn group_of(m: &Message) -> Option<String> {
    m.attributes()?
        .get(&MessageSystemAttributeName::MessageGroupId)
        .cloned()
}

/// Deletes what the function took, ten at a time; retries what the queue
/// did not delete (a message left undeleted comes back: at least once).
async fn delete_messages(ctx: &mut Ctx, q: &Queue, msgs: &[&Message]) {
    for chunk in msgs.chunks(10) {
        let mut entries = Vec::with_capacity(chunk.len());
        for (i, m) in chunk.iter().enumerate() {
            let id = i.to_string();
            match DeleteMessageBatchRequestEntry::builder()
                .id(id)
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .build()
            {
                Ok(e) => entries.push(e),
                Err(e) => tracing::error!(error = %e, "cannot build a delete entry"),
            }
        }
        let mut pending = entries;
        for attempt in 0..5 {
            if pending.is_empty() {
                break;
            }
            match q
                .client
                .delete_message_batch()
                .queue_url(&q.url)
                .set_entries(Some(pending.clone()))
                .send()
                .await
            {
                Ok(out) => {
                    Counters::add(&ctx.counters.succeeded, out.successful().len());
                    let failed: HashSet<&str> = out.failed().iter().map(|f| f.id()).collect();
                    for f in out.failed() {
                        tracing::warn!(uuid = %ctx.mapping.uuid, code = f.code(), message = f.message().unwrap_or_default(), "SQS did not delete a message");
                    }
                    pending.retain(|e| failed.contains(e.id()));
                }
                Err(e) => {
                    tracing::warn!(uuid = %ctx.mapping.uuid, attempt, error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "cannot delete messages; retrying");
                }
            }
            if !pending.is_empty() {
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_rules() {
        let ids: HashSet<&str> = ["a", "b"].into_iter().collect();
        assert_eq!(taken_from_report(b"", &ids), Taken::All);
        assert_eq!(taken_from_report(b"null", &ids), Taken::All);
        assert_eq!(taken_from_report(b"{}", &ids), Taken::All);
        assert_eq!(
            taken_from_report(br#"{"batchItemFailures": []}"#, &ids),
            Taken::All
        );
        assert_eq!(
            taken_from_report(br#"{"batchItemFailures": null}"#, &ids),
            Taken::All
        );
        assert_eq!(
            taken_from_report(br#"{"batchItemFailures": [{"itemIdentifier": "b"}]}"#, &ids),
            Taken::AllBut(["b".to_owned()].into_iter().collect())
        );
        for bad in [
            &br#"{"batchItemFailures": [{"itemIdentifier": ""}]}"#[..],
            br#"{"batchItemFailures": [{"itemIdentifier": null}]}"#,
            br#"{"batchItemFailures": [{"id": "a"}]}"#,
            br#"{"batchItemFailures": [{"itemIdentifier": "zzz"}]}"#,
            b"{not json",
        ] {
            assert_eq!(
                taken_from_report(bad, &ids),
                Taken::None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn queue_arns() {
        let q = parse_arn("arn:aws:sqs:eu-west-1:123456789012:jobs.fifo").unwrap();
        assert_eq!(
            (q.region.as_str(), q.account.as_str(), q.name.as_str()),
            ("eu-west-1", "123456789012", "jobs.fifo")
        );
        assert!(parse_arn("arn:aws:sns:eu-west-1:123456789012:t").is_none());
    }
}
