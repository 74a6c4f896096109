//! A `RESPONSE_STREAM` function URL's answer: the function's chunks sent to
//! the client as they are written. A response in the HTTP-integration format
//! (`application/vnd.awslambda.http-integration-response`, what
//! `awslambda.HttpResponseStream.from` and `lambda_runtime` write) opens with
//! a JSON prelude (`statusCode`, `headers`, `cookies`) and eight NUL bytes;
//! the prelude becomes the status line and headers, the rest the body. Any
//! other response is the body as it is, with the content type the function
//! declared.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use hyper::body::Frame;
use invoke::{StreamFrame, StreamingResponse};
use serde_json::Value;
use tokio::sync::mpsc;

/// The content type of a response that opens with a prelude.
pub(crate) const HTTP_INTEGRATION: &str = "application/vnd.awslambda.http-integration-response";
/// The prelude's end.
const DELIMITER: [u8; 8] = [0; 8];
/// The largest prelude read before the function is deemed to have answered
/// with something that is not one.
const MAX_PRELUDE_BYTES: usize = 64 * 1024;

/// Why a streamed URL response could not begin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum StreamStartError {
    /// The function failed before its response began, or its prelude is not
    /// one (502 on the URL, as for a buffered failure).
    #[error("the function did not begin a valid response")]
    FunctionFailed,
}

/// Waits for the response to begin (its prelude, for the HTTP-integration
/// format) and answers with a body that follows the function's writes.
pub(crate) async fn respond(s: StreamingResponse) -> Result<Response, StreamStartError> {
    let StreamingResponse {
        mut frames,
        completion,
        ..
    } = s;
    // The status goes out with the first bytes: until then a failure can
    // still be the URL's 502.
    let mut content_type = None;
    let mut pending = BytesMut::new();
    loop {
        match frames.recv().await {
            Some(StreamFrame::Began { content_type: ct }) => content_type = ct,
            Some(StreamFrame::Chunk(c)) if c.is_empty() => {}
            Some(StreamFrame::Chunk(c)) => {
                pending.extend_from_slice(&c);
                break;
            }
            None => {
                // Nothing was written: a failure is the URL's 502, a clean
                // end an empty 200.
                return match completion.await {
                    Ok(c) if c.error.is_none() => Ok(build(
                        StatusCode::OK,
                        Some(content_header(content_type)),
                        Bytes::new(),
                        frames,
                    )),
                    _ => Err(StreamStartError::FunctionFailed),
                };
            }
        }
    }
    if content_type.as_deref() != Some(HTTP_INTEGRATION) {
        return Ok(build(
            StatusCode::OK,
            Some(content_header(content_type)),
            pending.freeze(),
            frames,
        ));
    }
    // The prelude, however the function's writes split it.
    let split = loop {
        if let Some(at) = pending
            .windows(DELIMITER.len())
            .position(|w| w == DELIMITER)
        {
            break at;
        }
        if pending.len() > MAX_PRELUDE_BYTES {
            return Err(StreamStartError::FunctionFailed);
        }
        match frames.recv().await {
            Some(StreamFrame::Chunk(c)) => pending.extend_from_slice(&c),
            Some(StreamFrame::Began { .. }) => {}
            None => return Err(StreamStartError::FunctionFailed),
        }
    };
    let prelude = pending.split_to(split);
    let body = pending.split_off(DELIMITER.len()).freeze();
    let (status, headers) = parse_prelude(&prelude)?;
    let mut resp = build(status, None, body, frames);
    let h = resp.headers_mut();
    for (name, value) in headers {
        h.append(name, value);
    }
    if !h.contains_key(header::CONTENT_TYPE) {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
    }
    Ok(resp)
}

fn content_header(content_type: Option<String>) -> HeaderValue {
    content_type
        .filter(|c| c != HTTP_INTEGRATION)
        .and_then(|c| HeaderValue::from_str(&c).ok())
        .unwrap_or_else(|| HeaderValue::from_static("application/octet-stream"))
}

/// `{"statusCode": 201, "headers": {...}, "cookies": [...]}`: the status
/// (200 if absent) and the headers, each cookie a `Set-Cookie`.
fn parse_prelude(
    prelude: &[u8],
) -> Result<(StatusCode, Vec<(HeaderName, HeaderValue)>), StreamStartError> {
    let bad = || StreamStartError::FunctionFailed;
    let v: Value = serde_json::from_slice(prelude).map_err(|_| bad())?;
    let m = v.as_object().ok_or_else(bad)?;
    let status = match m.get("statusCode") {
        None | Some(Value::Null) => StatusCode::OK,
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .and_then(|n| StatusCode::from_u16(n).ok())
            .ok_or_else(bad)?,
        Some(_) => return Err(bad()),
    };
    let mut headers = Vec::new();
    if let Some(Value::Object(hs)) = m.get("headers") {
        for (k, v) in hs {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Number(_) | Value::Bool(_) => v.to_string(),
                _ => continue,
            };
            let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| bad())?;
            let value = HeaderValue::from_str(&text).map_err(|_| bad())?;
            headers.push((name, value));
        }
    }
    if let Some(Value::Array(cookies)) = m.get("cookies") {
        for c in cookies.iter().filter_map(Value::as_str) {
            headers.push((
                header::SET_COOKIE,
                HeaderValue::from_str(c).map_err(|_| bad())?,
            ));
        }
    }
    Ok((status, headers))
}

fn build(
    status: StatusCode,
    content_type: Option<HeaderValue>,
    first: Bytes,
    frames: mpsc::Receiver<StreamFrame>,
) -> Response {
    let body = RawStreamBody {
        pending: (!first.is_empty()).then_some(first),
        frames: Some(frames),
    };
    let mut resp = Response::new(axum::body::Body::new(body));
    *resp.status_mut() = status;
    if let Some(ct) = content_type {
        resp.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    resp
}

/// The function's chunks as the HTTP body, each sent as it comes. The body
/// ends when the invocation does (an error mid-stream ends it early: the
/// client has what was written).
struct RawStreamBody {
    pending: Option<Bytes>,
    frames: Option<mpsc::Receiver<StreamFrame>>,
}

impl hyper::body::Body for RawStreamBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(first) = self.pending.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        while let Some(frames) = self.frames.as_mut() {
            match frames.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(StreamFrame::Chunk(c))) if !c.is_empty() => {
                    return Poll::Ready(Some(Ok(Frame::data(c))));
                }
                Poll::Ready(Some(_)) => {}
                Poll::Ready(None) => self.frames = None,
            }
        }
        Poll::Ready(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;
    use invoke::StreamCompletion;
    use tokio::sync::oneshot;

    fn streaming(frames: Vec<StreamFrame>, error: bool) -> StreamingResponse {
        let (tx, rx) = mpsc::channel(64);
        for f in frames {
            tx.try_send(f).unwrap();
        }
        drop(tx);
        let (done_tx, done) = oneshot::channel();
        done_tx
            .send(StreamCompletion {
                error: error.then(|| invoke::StreamError {
                    code: "Error".into(),
                    details: "boom".into(),
                }),
                log_result: None,
            })
            .unwrap();
        StreamingResponse {
            request_id: "r".into(),
            executed_version: "$LATEST".into(),
            frames: rx,
            completion: done,
        }
    }

    fn chunk(b: &'static [u8]) -> StreamFrame {
        StreamFrame::Chunk(Bytes::from_static(b))
    }

    async fn body(r: Response) -> Bytes {
        r.into_body().collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn the_prelude_becomes_status_and_headers_across_chunk_boundaries() {
        let s = streaming(
            vec![
                StreamFrame::Began {
                    content_type: Some(HTTP_INTEGRATION.into()),
                },
                chunk(br#"{"statusCode":201,"headers":{"content-type":"text/plain","x-a":"b"},"#),
                chunk(br#""cookies":["a=1","b=2"]}"#),
                chunk(b"\0\0\0\0\0"),
                chunk(b"\0\0\0hello "),
                chunk(b"world"),
            ],
            false,
        );
        let r = respond(s).await.unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        assert_eq!(r.headers()["content-type"], "text/plain");
        assert_eq!(r.headers()["x-a"], "b");
        let cookies: Vec<_> = r.headers().get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
        assert_eq!(body(r).await, "hello world");
    }

    #[tokio::test]
    async fn another_content_type_is_the_body_as_it_is() {
        let s = streaming(
            vec![
                StreamFrame::Began {
                    content_type: Some("text/event-stream".into()),
                },
                chunk(b"data: 1\n\n"),
                chunk(b"data: 2\n\n"),
            ],
            false,
        );
        let r = respond(s).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        assert_eq!(body(r).await, "data: 1\n\ndata: 2\n\n");
    }

    #[tokio::test]
    async fn a_failure_before_anything_was_written_is_refused() {
        assert_eq!(
            respond(streaming(vec![], true)).await.unwrap_err(),
            StreamStartError::FunctionFailed
        );
        let began = StreamFrame::Began {
            content_type: Some("text/plain".into()),
        };
        assert_eq!(
            respond(streaming(vec![began], true)).await.unwrap_err(),
            StreamStartError::FunctionFailed,
            "begun, but nothing written before the error"
        );
        let r = respond(streaming(vec![], false)).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(body(r).await, "");
    }

    #[tokio::test]
    async fn a_prelude_that_is_not_one_is_refused() {
        for frames in [
            vec![
                StreamFrame::Began {
                    content_type: Some(HTTP_INTEGRATION.into()),
                },
                chunk(b"not json\0\0\0\0\0\0\0\0body"),
            ],
            vec![
                StreamFrame::Began {
                    content_type: Some(HTTP_INTEGRATION.into()),
                },
                chunk(br#"{"statusCode":200}"#),
            ],
            vec![
                StreamFrame::Began {
                    content_type: Some(HTTP_INTEGRATION.into()),
                },
                chunk(b"{\"statusCode\":99}\0\0\0\0\0\0\0\0"),
            ],
        ] {
            assert_eq!(
                respond(streaming(frames, false)).await.unwrap_err(),
                StreamStartError::FunctionFailed
            );
        }
    }
}
