//! A streamed invocation's result: frames as the function writes them, then
//! how it ended (`InvokeWithResponseStream`'s `PayloadChunk`s and
//! `InvokeComplete`).

use bytes::Bytes;
use pool::Frame;
use tokio::sync::{mpsc, oneshot};

use crate::Response;

/// Frames waiting for a slow caller before the function's writes wait too.
pub(crate) const FRAMES_IN_FLIGHT: usize = 16;

/// A streamed invocation under way.
#[derive(Debug)]
pub struct StreamingResponse {
    pub request_id: String,
    /// The version that runs (`$LATEST`, `3`).
    pub executed_version: String,
    /// [`Frame::Began`] when the response begins (with the content type the
    /// runtime declared), then the chunks as they are written. Closes when
    /// the invocation ends; dropping it discards the rest of the response
    /// (the function still runs to its end).
    pub frames: mpsc::Receiver<Frame>,
    /// How the invocation ended: ready once `frames` has closed.
    pub completion: oneshot::Receiver<StreamCompletion>,
}

/// The end of a streamed invocation (`InvokeComplete`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamCompletion {
    pub error: Option<StreamError>,
    /// Base64 of the last 4 KB of the log, when asked for.
    pub log_result: Option<String>,
}

/// Why a streamed invocation failed: `ErrorCode` and `ErrorDetails`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamError {
    /// The error type (`Sandbox.Timedout`, `Runtime.ExitError`, the
    /// function's own `errorType`).
    pub code: String,
    /// The error message.
    pub details: String,
}

/// The completion for a shaped result: an error document's type and
/// message become the code and details.
pub(crate) fn completion(r: &Response) -> StreamCompletion {
    let error = r.function_error.map(|_| error_of(&r.payload));
    StreamCompletion {
        error,
        log_result: r.log_result.clone(),
    }
}

fn error_of(doc: &Bytes) -> StreamError {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(doc).ok();
    let field = |name: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(name))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    StreamError {
        code: field("errorType").unwrap_or_else(|| "Unhandled".to_owned()),
        details: field("errorMessage").unwrap_or_else(|| String::from_utf8_lossy(doc).into_owned()),
    }
}

/// Ends a streamed invocation: a response the runtime gave whole (not
/// streamed) goes out as one chunk, then the frames close and the
/// completion follows.
pub(crate) async fn finish(
    r: Response,
    frames: mpsc::Sender<Frame>,
    done: oneshot::Sender<StreamCompletion>,
) {
    let completion = completion(&r);
    if r.function_error.is_none() && !r.payload.is_empty() {
        // A caller that left is no reason to stop: the completion is sent
        // regardless.
        if frames
            .send(Frame::Began { content_type: None })
            .await
            .is_ok()
        {
            let _ = frames.send(Frame::Chunk(r.payload)).await;
        }
    }
    drop(frames);
    let _ = done.send(completion);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(payload: &'static [u8], function_error: Option<&'static str>) -> Response {
        Response {
            request_id: "id".into(),
            executed_version: "$LATEST".into(),
            payload: Bytes::from_static(payload),
            function_error,
            log_result: Some("bG9n".into()),
        }
    }

    #[test]
    fn an_error_document_becomes_code_and_details() {
        let c = completion(&response(
            br#"{"errorType":"Sandbox.Timedout","errorMessage":"RequestId: x Error: Task timed out after 1.00 seconds"}"#,
            Some("Unhandled"),
        ));
        assert_eq!(
            c.error,
            Some(StreamError {
                code: "Sandbox.Timedout".into(),
                details: "RequestId: x Error: Task timed out after 1.00 seconds".into(),
            })
        );
        assert_eq!(c.log_result.as_deref(), Some("bG9n"));
    }

    #[test]
    fn an_error_that_is_not_a_document_keeps_its_text() {
        let c = completion(&response(b"boom", Some("Unhandled")));
        assert_eq!(
            c.error,
            Some(StreamError {
                code: "Unhandled".into(),
                details: "boom".into()
            })
        );
    }

    #[tokio::test]
    async fn a_whole_response_goes_out_as_one_chunk_then_completes() {
        let (tx, mut rx) = mpsc::channel(4);
        let (done_tx, done_rx) = oneshot::channel();
        finish(response(b"\"hello\"", None), tx, done_tx).await;
        assert_eq!(rx.recv().await, Some(Frame::Began { content_type: None }));
        assert_eq!(
            rx.recv().await,
            Some(Frame::Chunk(Bytes::from_static(b"\"hello\"")))
        );
        assert_eq!(rx.recv().await, None);
        assert_eq!(done_rx.await.unwrap().error, None);
    }
}
