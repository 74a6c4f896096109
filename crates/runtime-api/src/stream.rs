//! Streamed responses: `POST /response` with
//! `Lambda-Runtime-Function-Response-Mode: streaming` and a chunked body.
//!
//! The platform is handed a [`ResponseStream`] as soon as the response
//! begins. Each chunk the runtime writes is passed on as it arrives: the
//! first [`STREAM_UNCAPPED_BYTES`] at once, the rest at most
//! [`STREAM_BYTES_PER_SECOND`] (Lambda's documented bandwidth for streamed
//! responses), up to [`MAX_STREAM_BYTES`]. An error the runtime reports
//! mid-stream comes as the trailers `Lambda-Runtime-Function-Error-Type` and
//! `Lambda-Runtime-Function-Error-Body` (base64) and ends the stream as a
//! [`StreamEnd::Error`].

use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{HeaderMap, Request, Response, StatusCode};
use tokio::sync::{mpsc, oneshot};

use crate::{Body, Channel, Reply, accepted, invalid_request_id, json};

pub(crate) const MODE_HEADER: &str = "lambda-runtime-function-response-mode";
const ERROR_TYPE_TRAILER: &str = "lambda-runtime-function-error-type";
const ERROR_BODY_TRAILER: &str = "lambda-runtime-function-error-body";

/// The largest streamed response Lambda accepts (200 MiB).
pub const MAX_STREAM_BYTES: u64 = 200 * 1024 * 1024;
/// Bytes of a streamed response passed on without a bandwidth cap.
pub const STREAM_UNCAPPED_BYTES: u64 = 6 * 1024 * 1024;
/// The bandwidth of a streamed response past its uncapped bytes (2 MiB/s).
pub const STREAM_BYTES_PER_SECOND: u64 = 2 * 1024 * 1024;

/// The limits a streamed response is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLimits {
    /// The largest response, in bytes.
    pub max_bytes: u64,
    /// Bytes passed on without a bandwidth cap.
    pub uncapped_bytes: u64,
    /// The bandwidth past them, in bytes per second.
    pub bytes_per_second: u64,
}

impl StreamLimits {
    /// Lambda's: 200 MiB, the first 6 MiB uncapped, then 2 MiB/s.
    pub const LAMBDA: Self = Self {
        max_bytes: MAX_STREAM_BYTES,
        uncapped_bytes: STREAM_UNCAPPED_BYTES,
        bytes_per_second: STREAM_BYTES_PER_SECOND,
    };
}

/// How many chunks may wait for the platform before the runtime's writes
/// wait too (a slow reader slows the writer, as on Lambda).
const CHUNKS_IN_FLIGHT: usize = 16;

/// A response the runtime is streaming.
pub struct ResponseStream {
    /// The `Content-Type` the runtime declared, if any.
    pub content_type: Option<String>,
    /// The chunks, in order, as they arrive. Dropping the receiver discards
    /// the rest of the response; the runtime may still finish writing it.
    pub chunks: mpsc::Receiver<Bytes>,
    /// How the stream ended, once it has.
    pub end: oneshot::Receiver<StreamEnded>,
}

impl std::fmt::Debug for ResponseStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseStream")
            .field("content_type", &self.content_type)
            .finish_non_exhaustive()
    }
}

/// A stream is a live channel: no two are ever equal.
impl PartialEq for ResponseStream {
    fn eq(&self, _: &Self) -> bool {
        false
    }
}

/// How a streamed response ended.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEnd {
    /// The body ended normally.
    Complete,
    /// The runtime reported an error in the trailers.
    Error { error_type: String, body: Bytes },
    /// The body went over the limit ([`MAX_STREAM_BYTES`]); the rest was
    /// not read.
    TooLarge,
    /// The body broke off before its end (the runtime's connection failed).
    Truncated,
}

/// A stream's end and when it came: where `Duration` ends.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamEnded {
    pub end: StreamEnd,
    /// Bytes of body received.
    pub bytes: u64,
    pub at: Instant,
}

/// Lambda's bandwidth cap: holds back each chunk past the uncapped bytes
/// until the bytes before it have drained at the capped rate.
#[derive(Debug)]
pub(crate) struct Pacer {
    uncapped: u64,
    per_second: u64,
    sent: u64,
    capped_since: Option<Instant>,
}

impl Pacer {
    pub(crate) fn new(uncapped: u64, per_second: u64) -> Self {
        Self {
            uncapped,
            per_second: per_second.max(1),
            sent: 0,
            capped_since: None,
        }
    }

    /// When a chunk of `len` bytes arriving at `now` may be passed on.
    pub(crate) fn release_at(&mut self, now: Instant, len: u64) -> Instant {
        let before = self.sent;
        self.sent = self.sent.saturating_add(len);
        if self.sent <= self.uncapped {
            return now;
        }
        let since = *self.capped_since.get_or_insert(now);
        let capped_before = before.saturating_sub(self.uncapped);
        let at = since + Duration::from_secs_f64(capped_before as f64 / self.per_second as f64);
        at.max(now)
    }
}

fn error_trailers(trailers: &HeaderMap) -> Option<StreamEnd> {
    let error_type = trailers
        .get(ERROR_TYPE_TRAILER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty())?
        .to_owned();
    let body = trailers
        .get(ERROR_BODY_TRAILER)
        .map(|v| {
            let raw = v.as_bytes();
            match base64::engine::general_purpose::STANDARD.decode(raw) {
                Ok(doc) => Bytes::from(doc),
                Err(_) => Bytes::copy_from_slice(raw),
            }
        })
        .unwrap_or_default();
    Some(StreamEnd::Error { error_type, body })
}

/// Receives a streamed response for the in-flight invocation `id`.
pub(crate) async fn receive(channel: &Channel, id: &str, req: Request<Incoming>) -> Response<Body> {
    let content_type = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (chunk_tx, chunk_rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
    let (end_tx, end_rx) = oneshot::channel();
    let stream = ResponseStream {
        content_type,
        chunks: chunk_rx,
        end: end_rx,
    };
    if !channel.complete(id, Reply::Stream(stream)) {
        return crate::refuse(req, invalid_request_id()).await;
    }
    let mut body = req.into_body();
    let limits = channel.stream_limits;
    let mut pacer = Pacer::new(limits.uncapped_bytes, limits.bytes_per_second);
    let mut listening = true;
    let mut bytes = 0u64;
    let (end, answer) = loop {
        match body.frame().await {
            None => break (StreamEnd::Complete, accepted()),
            Some(Err(e)) => {
                tracing::debug!(error = %e, "streamed response broke off");
                break (
                    StreamEnd::Truncated,
                    json(
                        StatusCode::BAD_REQUEST,
                        r#"{"errorMessage":"Could not read the response body","errorType":"InvalidRequest"}"#,
                    ),
                );
            }
            Some(Ok(frame)) => {
                let frame = match frame.into_data() {
                    Ok(data) => {
                        if data.is_empty() {
                            continue;
                        }
                        bytes += data.len() as u64;
                        if bytes > limits.max_bytes {
                            let doc = serde_json::json!({
                                "errorMessage": format!("Exceeded maximum allowed payload size ({} bytes).", limits.max_bytes),
                                "errorType": "RequestEntityTooLarge",
                            });
                            let mut answer = Response::new(Body::new(Bytes::from(doc.to_string())));
                            *answer.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
                            answer.headers_mut().insert(
                                hyper::header::CONTENT_TYPE,
                                hyper::header::HeaderValue::from_static("application/json"),
                            );
                            break (StreamEnd::TooLarge, answer);
                        }
                        if listening {
                            let at = pacer.release_at(Instant::now(), data.len() as u64);
                            if at > Instant::now() {
                                tokio::time::sleep_until(at.into()).await;
                            }
                            listening = chunk_tx.send(data).await.is_ok();
                        }
                        continue;
                    }
                    Err(frame) => frame,
                };
                if let Ok(trailers) = frame.into_trailers()
                    && let Some(end) = error_trailers(&trailers)
                {
                    // Whatever follows the trailers is not part of the body.
                    while let Some(Ok(_)) = body.frame().await {}
                    break (end, accepted());
                }
            }
        }
    };
    drop(chunk_tx);
    let _ = end_tx.send(StreamEnded {
        end,
        bytes,
        at: Instant::now(),
    });
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_bytes_pass_at_once() {
        let t0 = Instant::now();
        let mut p = Pacer::new(100, 10);
        assert_eq!(p.release_at(t0, 60), t0);
        assert_eq!(p.release_at(t0, 40), t0, "exactly the uncapped bytes");
    }

    #[test]
    fn the_rest_drains_at_the_capped_rate() {
        let t0 = Instant::now();
        let mut p = Pacer::new(100, 10);
        assert_eq!(p.release_at(t0, 100), t0);
        // The chunk that crosses the line goes at once; it starts the cap.
        assert_eq!(p.release_at(t0, 20), t0);
        // The next waits for those 20 capped bytes: 2 s at 10 bytes/s.
        assert_eq!(p.release_at(t0, 10), t0 + Duration::from_secs(2));
        assert_eq!(p.release_at(t0, 10), t0 + Duration::from_secs(3));
        // A chunk arriving late is not held back further.
        let late = t0 + Duration::from_secs(10);
        assert_eq!(p.release_at(late, 10), late);
    }

    #[test]
    fn lambdas_figures() {
        let t0 = Instant::now();
        let mut p = Pacer::new(STREAM_UNCAPPED_BYTES, STREAM_BYTES_PER_SECOND);
        assert_eq!(p.release_at(t0, STREAM_UNCAPPED_BYTES), t0);
        assert_eq!(p.release_at(t0, 4 << 20), t0);
        // 4 MiB past the uncapped 6 MiB at 2 MiB/s: two seconds.
        assert_eq!(p.release_at(t0, 1), t0 + Duration::from_secs(2));
    }

    #[test]
    fn error_trailers_decode_the_body() {
        let mut h = HeaderMap::new();
        assert_eq!(error_trailers(&h), None);
        h.insert(ERROR_TYPE_TRAILER, "Runtime.StreamError".parse().unwrap());
        h.insert(
            ERROR_BODY_TRAILER,
            base64::engine::general_purpose::STANDARD
                .encode(br#"{"errorType":"Runtime.StreamError","errorMessage":"boom"}"#)
                .parse()
                .unwrap(),
        );
        assert_eq!(
            error_trailers(&h),
            Some(StreamEnd::Error {
                error_type: "Runtime.StreamError".into(),
                body: Bytes::from_static(
                    br#"{"errorType":"Runtime.StreamError","errorMessage":"boom"}"#
                ),
            })
        );
    }
}
