//! `InvokeWithResponseStream`'s body: AWS event-stream messages
//! (`application/vnd.amazon.eventstream` framing), one `PayloadChunk` per
//! chunk the function wrote, as it is written, then one `InvokeComplete`.

use std::pin::Pin;
use std::task::{Context, Poll};

use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use bytes::{Bytes, BytesMut};
use hyper::body::Frame;
use invoke::{StreamCompletion, StreamFrame};
use tokio::sync::{mpsc, oneshot};

fn event(event_type: &'static str, content_type: &'static str, payload: Bytes) -> Bytes {
    let message = Message::new(payload)
        .add_header(Header::new(
            ":event-type",
            HeaderValue::String(event_type.into()),
        ))
        .add_header(Header::new(
            ":content-type",
            HeaderValue::String(content_type.into()),
        ))
        .add_header(Header::new(
            ":message-type",
            HeaderValue::String("event".into()),
        ));
    let mut buf = BytesMut::with_capacity(message.payload().len() + 96);
    match aws_smithy_eventstream::frame::write_message_to(&message, &mut buf) {
        Ok(()) => buf.freeze(),
        Err(e) => {
            // Only a payload over the format's 16 MB message limit fails,
            // and chunks never get there (see `split`).
            tracing::error!(error = %e, "event-stream message not encoded");
            Bytes::new()
        }
    }
}

/// The largest payload one message carries; a larger chunk is split.
const MAX_PAYLOAD: usize = 1 << 20;

/// A `PayloadChunk` for each up-to-1 MiB part of `chunk`.
pub(crate) fn payload_chunks(chunk: Bytes) -> Bytes {
    if chunk.len() <= MAX_PAYLOAD {
        return event("PayloadChunk", "application/octet-stream", chunk);
    }
    let mut out = BytesMut::new();
    let mut rest = chunk;
    while !rest.is_empty() {
        let part = rest.split_to(rest.len().min(MAX_PAYLOAD));
        out.extend_from_slice(&event("PayloadChunk", "application/octet-stream", part));
    }
    out.freeze()
}

/// The `InvokeComplete` event: `ErrorCode`, `ErrorDetails`, `LogResult`.
pub(crate) fn invoke_complete(c: &StreamCompletion) -> Bytes {
    let mut doc = serde_json::Map::new();
    if let Some(e) = &c.error {
        doc.insert("ErrorCode".into(), e.code.clone().into());
        doc.insert("ErrorDetails".into(), e.details.clone().into());
    }
    if let Some(log) = &c.log_result {
        doc.insert("LogResult".into(), log.clone().into());
    }
    let payload = serde_json::to_vec(&doc).unwrap_or_else(|_| b"{}".to_vec());
    event("InvokeComplete", "application/json", Bytes::from(payload))
}

/// The response body: each frame encoded as it arrives, then the completion.
pub(crate) struct EventStreamBody {
    /// A chunk received before the body was built (while waiting for the
    /// response to begin).
    pending: Option<Bytes>,
    frames: Option<mpsc::Receiver<StreamFrame>>,
    completion: Option<oneshot::Receiver<StreamCompletion>>,
}

impl EventStreamBody {
    pub(crate) fn new(
        pending: Option<Bytes>,
        frames: mpsc::Receiver<StreamFrame>,
        completion: oneshot::Receiver<StreamCompletion>,
    ) -> Self {
        Self {
            pending,
            frames: Some(frames),
            completion: Some(completion),
        }
    }
}

impl hyper::body::Body for EventStreamBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(chunk) = self.pending.take() {
            return Poll::Ready(Some(Ok(Frame::data(payload_chunks(chunk)))));
        }
        while let Some(frames) = self.frames.as_mut() {
            match frames.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(StreamFrame::Chunk(chunk))) => {
                    if chunk.is_empty() {
                        continue;
                    }
                    return Poll::Ready(Some(Ok(Frame::data(payload_chunks(chunk)))));
                }
                Poll::Ready(Some(StreamFrame::Began { .. })) => continue,
                Poll::Ready(None) => self.frames = None,
            }
        }
        let Some(completion) = self.completion.as_mut() else {
            return Poll::Ready(None);
        };
        let done = match Pin::new(completion).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(done) => done,
        };
        self.completion = None;
        let done = done.unwrap_or_else(|_| StreamCompletion {
            error: Some(invoke::StreamError {
                code: "ServiceException".into(),
                details: "The invocation ended without a result.".into(),
            }),
            log_result: None,
        });
        Poll::Ready(Some(Ok(Frame::data(invoke_complete(&done)))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_eventstream::frame::read_message_from;

    fn header<'a>(m: &'a Message, name: &str) -> &'a str {
        m.headers()
            .iter()
            .find(|h| h.name().as_str() == name)
            .and_then(|h| h.value().as_string().ok())
            .map(|s| s.as_str())
            .unwrap()
    }

    #[test]
    fn a_chunk_is_a_payload_chunk_event() {
        let b = payload_chunks(Bytes::from_static(b"hello"));
        let mut buf = &b[..];
        let m = read_message_from(&mut buf).unwrap();
        assert!(buf.is_empty());
        assert_eq!(header(&m, ":event-type"), "PayloadChunk");
        assert_eq!(header(&m, ":message-type"), "event");
        assert_eq!(&m.payload()[..], b"hello");
    }

    #[test]
    fn a_large_chunk_is_split_in_order() {
        let data: Vec<u8> = (0..(MAX_PAYLOAD * 2 + 10)).map(|i| i as u8).collect();
        let b = payload_chunks(Bytes::from(data.clone()));
        let mut buf = &b[..];
        let mut got = Vec::new();
        while !buf.is_empty() {
            let m = read_message_from(&mut buf).unwrap();
            assert!(m.payload().len() <= MAX_PAYLOAD);
            got.extend_from_slice(m.payload());
        }
        assert_eq!(got, data);
    }

    #[test]
    fn the_completion_carries_its_error_and_log() {
        let b = invoke_complete(&StreamCompletion {
            error: Some(invoke::StreamError {
                code: "Sandbox.Timedout".into(),
                details: "Task timed out after 1.00 seconds".into(),
            }),
            log_result: Some("bG9n".into()),
        });
        let m = read_message_from(&mut &b[..]).unwrap();
        assert_eq!(header(&m, ":event-type"), "InvokeComplete");
        let v: serde_json::Value = serde_json::from_slice(m.payload()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"ErrorCode": "Sandbox.Timedout", "ErrorDetails": "Task timed out after 1.00 seconds", "LogResult": "bG9n"})
        );
        let ok = invoke_complete(&StreamCompletion {
            error: None,
            log_result: None,
        });
        let m = read_message_from(&mut &ok[..]).unwrap();
        assert_eq!(&m.payload()[..], b"{}");
    }
}
