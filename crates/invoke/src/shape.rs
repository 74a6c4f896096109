//! Lambda's answer for each way an invocation can end.

use base64::Engine as _;
use bytes::Bytes;
use pool::{Completed, FunctionSpec, Outcome};
use runtime_api::StreamEnd;

use crate::{Response, random_uuid};

/// The `X-Amzn-Trace-Id` for an invocation: the caller's root, or a new one.
pub(crate) fn trace_id(given: Option<&str>) -> String {
    let id = random_uuid().simple().to_string();
    let root = given
        .and_then(|h| h.split(';').find_map(|p| p.trim().strip_prefix("Root=")))
        .map(str::to_owned)
        .unwrap_or_else(|| format!("1-{:08x}-{}", model::time_fmt::now_ms() / 1000, &id[..24]));
    format!("Root={root};Parent={};Sampled=0", &id[16..32])
}

fn error_doc(error_type: &str, message: &str) -> Bytes {
    let v = serde_json::json!({ "errorType": error_type, "errorMessage": message });
    Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
}

fn unhandled(request_id: String, spec: &FunctionSpec, payload: Bytes) -> Response {
    Response {
        request_id,
        executed_version: spec.version.clone(),
        payload,
        function_error: Some("Unhandled"),
        log_result: None,
    }
}

/// The runtime's program could not be executed: the function's fault.
pub(crate) fn invalid_entrypoint(
    request_id: String,
    spec: &FunctionSpec,
    e: &pool::PoolError,
) -> Response {
    let doc = error_doc(
        "Runtime.InvalidEntrypoint",
        &format!("RequestId: {request_id} Error: {e}"),
    );
    unhandled(request_id, spec, doc)
}

pub(crate) fn response(request_id: String, spec: &FunctionSpec, done: Completed) -> Response {
    let log_result = done
        .log_tail
        .as_ref()
        .map(|t| base64::engine::general_purpose::STANDARD.encode(t.as_bytes()));
    let error = |t: &str, m: String| (error_doc(t, &m), Some("Unhandled"));
    let (payload, function_error) = match done.outcome {
        Outcome::Response(b) => (b, None),
        Outcome::FunctionError { error_type, body } | Outcome::InitError { error_type, body } => {
            if body.is_empty() {
                let t = error_type.as_deref().unwrap_or("Runtime.Unknown");
                error(
                    t,
                    format!("RequestId: {request_id} Error: the runtime reported {t}"),
                )
            } else {
                (body, Some("Unhandled"))
            }
        }
        Outcome::Timeout => error(
            "Sandbox.Timedout",
            format!(
                "RequestId: {request_id} Error: Task timed out after {:.2} seconds",
                spec.timeout.as_secs_f64()
            ),
        ),
        Outcome::Exited(st) => error(
            "Runtime.ExitError",
            format!("RequestId: {request_id} Error: {}", pool::exit_reason(st)),
        ),
        Outcome::OutOfMemory(st) => error(
            "Runtime.OutOfMemory",
            format!("RequestId: {request_id} Error: {}", pool::exit_reason(st)),
        ),
        Outcome::ResponseTooLarge => error(
            "Function.ResponseSizeTooLarge",
            "Response payload size exceeded maximum allowed payload size (6291556 bytes).".into(),
        ),
        Outcome::Streamed(StreamEnd::Complete) => (Bytes::new(), None),
        Outcome::Streamed(StreamEnd::Error { error_type, body }) => {
            if body.is_empty() {
                error(
                    &error_type,
                    format!("RequestId: {request_id} Error: the runtime reported {error_type}"),
                )
            } else {
                (body, Some("Unhandled"))
            }
        }
        Outcome::Streamed(StreamEnd::TooLarge) => error(
            "Function.ResponseSizeTooLarge",
            format!(
                "Response payload size exceeded maximum allowed payload size ({} bytes).",
                runtime_api::MAX_STREAM_BYTES
            ),
        ),
        Outcome::Streamed(StreamEnd::Truncated) => error(
            "Runtime.TruncatedResponse",
            format!(
                "RequestId: {request_id} Error: the runtime's response broke off before its end"
            ),
        ),
        Outcome::Abandoned => error(
            "Runtime.InvalidResponse",
            format!(
                "RequestId: {request_id} Error: the runtime asked for the next invocation without answering this one"
            ),
        ),
    };
    Response {
        request_id,
        executed_version: spec.version.clone(),
        payload,
        function_error,
        log_result,
    }
}
