//! `Invoke` (and `InvokeWithResponseStream`, not available yet).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use invoke::{InvocationType, InvokeError, InvokeRequest};

use crate::{ApiError, AppState, Authed};

type Params = Query<std::collections::HashMap<String, String>>;

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

impl From<InvokeError> for ApiError {
    fn from(e: InvokeError) -> Self {
        match e {
            InvokeError::Function(c) => c.into(),
            InvokeError::InvalidContent(m) => {
                ApiError::new(StatusCode::BAD_REQUEST, "InvalidRequestContentException", m)
            }
            InvokeError::TooLarge(m) => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLargeException",
                m,
            ),
            InvokeError::Throttled { reason } => {
                let mut e = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "TooManyRequestsException",
                    "Rate Exceeded.",
                );
                e.extra
                    .push(("Reason", serde_json::Value::String(reason.into())));
                // The model's `retryAfterSeconds`: a slot frees when a running
                // invocation ends.
                e.retry_after_s = Some(1);
                e
            }
            InvokeError::Unsupported(m) => {
                ApiError::new(StatusCode::BAD_REQUEST, "InvalidParameterValueException", m)
            }
            InvokeError::Service(m) => ApiError::internal(m),
        }
    }
}

pub async fn invoke(
    State(s): State<Arc<AppState>>,
    req: Authed,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Params,
) -> Result<Response, ApiError> {
    let invocation_type = match header_str(&headers, "x-amz-invocation-type") {
        None => InvocationType::RequestResponse,
        Some(t) => InvocationType::parse(t).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "ValidationException",
                format!(
                    "1 validation error detected: Value '{t}' at 'invocationType' failed to satisfy constraint: Member must satisfy enum value set: [Event, RequestResponse, DryRun]"
                ),
            )
        })?,
    };
    let tail = match header_str(&headers, "x-amz-log-type") {
        None | Some("None") => false,
        Some("Tail") => true,
        Some(t) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "ValidationException",
                format!(
                    "1 validation error detected: Value '{t}' at 'logType' failed to satisfy constraint: Member must satisfy enum value set: [Tail, None]"
                ),
            ));
        }
    };
    let out = s
        .invoker
        .invoke(
            &req.caller.scope,
            InvokeRequest {
                function: name,
                qualifier: q.get("Qualifier").cloned(),
                payload: req.body.clone(),
                invocation_type,
                tail,
                client_context: header_str(&headers, "x-amz-client-context").map(str::to_owned),
                trace_header: header_str(&headers, "x-amzn-trace-id").map(str::to_owned),
            },
        )
        .await?;
    let status = StatusCode::from_u16(out.status).unwrap_or(StatusCode::OK);
    let mut resp = (status, out.payload).into_response();
    let h = resp.headers_mut();
    // An accepted event (202) and a dry run (204) carry no payload, type
    // or version.
    if status != StatusCode::OK {
        h.remove(header::CONTENT_TYPE);
    } else {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Ok(v) = HeaderValue::from_str(&out.executed_version) {
            h.insert("x-amz-executed-version", v);
        }
    }
    if let Some(fe) = out.function_error {
        h.insert("x-amz-function-error", HeaderValue::from_static(fe));
    }
    if let Some(log) = out.log_result
        && let Ok(v) = HeaderValue::from_str(&log)
    {
        h.insert("x-amz-log-result", v);
    }
    if let Ok(v) = HeaderValue::from_str(&out.request_id) {
        h.insert("x-amzn-requestid", v);
    }
    Ok(resp)
}

/// `InvokeAsync` (deprecated): queues the body as an event; 202.
pub async fn invoke_async(
    State(s): State<Arc<AppState>>,
    req: Authed,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let out = s
        .invoker
        .invoke(
            &req.caller.scope,
            InvokeRequest {
                function: name,
                qualifier: None,
                payload: req.body.clone(),
                invocation_type: InvocationType::Event,
                tail: false,
                client_context: None,
                trace_header: None,
            },
        )
        .await?;
    let mut resp = StatusCode::ACCEPTED.into_response();
    if let Ok(v) = HeaderValue::from_str(&out.request_id) {
        resp.headers_mut().insert("x-amzn-requestid", v);
    }
    Ok(resp)
}

pub async fn invoke_with_response_stream() -> ApiError {
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "NotImplementedException",
        "InvokeWithResponseStream is not available on this Lambent server yet; use Invoke.",
    )
}
