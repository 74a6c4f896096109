//! `Invoke` and `InvokeWithResponseStream`.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use invoke::{Invocation, InvocationType, InvokeRequest};

use crate::{ApiError, AppState, Authed, RequestId};

type Params = Query<std::collections::HashMap<String, String>>;

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

pub async fn invoke(
    State(s): State<Arc<AppState>>,
    RequestId(request_id): RequestId,
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
    let call = InvokeRequest {
        function: name,
        qualifier: q.get("Qualifier").cloned(),
        payload: req.body.clone(),
        tail,
        client_context: header_str(&headers, "x-amz-client-context").map(str::to_owned),
        trace_header: header_str(&headers, "x-amzn-trace-id").map(str::to_owned),
    };
    let owner = owning_scope(&s, &req.caller, &call).await?;
    let scope = &owner;
    let out = match invocation_type {
        InvocationType::RequestResponse => {
            // Resolved and executed here, not through `Invoker::invoke`, so
            // that the function runs under this request's id: the one its
            // span logs under and its response carries.
            let target = s
                .invoker
                .resolve(scope, &call.function, call.qualifier.as_deref())
                .await?;
            invoke::check_payload(invocation_type, &call.payload)?;
            let run = invoke::Call {
                request_id,
                payload: call.payload,
                client_context: call.client_context,
                trace_header: call.trace_header,
                tail: call.tail,
            };
            Invocation::Completed(s.invoker.execute(&target, run).await?)
        }
        InvocationType::DryRun => s.invoker.dry_run(scope, &call).await?,
        InvocationType::Event => s.dispatcher.accept(scope, call).await?,
    };
    Ok(invocation_response(out))
}

/// The scope the invoked function lives in: the caller's own, or, for an
/// ARN of another account (in the caller's region), that account's when the
/// function's resource policy grants the caller `lambda:InvokeFunction`.
/// Everything else stays private to its account: a function that does not
/// exist there is refused exactly like one that does not grant access.
async fn owning_scope(
    s: &AppState,
    caller: &crate::Caller,
    call: &InvokeRequest,
) -> Result<model::Scope, ApiError> {
    let own = &caller.scope;
    let Ok(r) = model::FunctionRef::parse(&call.function) else {
        return Ok(own.clone());
    };
    let (Some(account), region) = (&r.account, &r.region) else {
        return Ok(own.clone());
    };
    if account == &own.account || region.as_ref().is_some_and(|reg| reg != &own.region) {
        // The caller's own function, or one in another region (refused
        // with the region's message when resolved).
        return Ok(own.clone());
    }
    let owner = model::Scope::new(account.clone(), own.region.clone());
    let mut arn = owner.function_arn(&r.name);
    arn.qualifier = match (&r.qualifier, call.qualifier.as_deref()) {
        (Some(q), _) => Some(q.clone()),
        (None, Some(q)) => model::Qualifier::parse(q).ok(),
        (None, None) => None,
    };
    let denied = || {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "AccessDeniedException",
            format!(
                "User: {} is not authorized to perform: lambda:InvokeFunction on resource: {arn} because no resource-based policy allows the lambda:InvokeFunction action",
                own.account_root()
            ),
        )
    };
    let target = match s
        .invoker
        .resolve(&owner, &call.function, call.qualifier.as_deref())
        .await
    {
        Ok(t) => t,
        Err(invoke::InvokeError::NotFound(_)) => return Err(denied()),
        Err(e) => return Err(e.into()),
    };
    let request = control::access::AccessRequest {
        action: control::access::Action::InvokeFunction,
        caller: Some(&own.account),
        service: None,
        source_account: None,
        source_arn: None,
        url_auth_type: None,
    };
    let policy = control::access::policy_for(target.record(), target.qualifier.as_ref());
    if control::access::allowed(&owner.account, policy, &request) {
        Ok(owner)
    } else {
        Err(denied())
    }
}

/// The HTTP answer for each way an invocation ends: the payload with its
/// headers, or an empty 202 (queued) or 204 (dry run).
fn invocation_response(out: Invocation) -> Response {
    let r = match out {
        Invocation::Accepted { request_id } => return empty(StatusCode::ACCEPTED, &request_id),
        Invocation::DryRun { request_id } => return empty(StatusCode::NO_CONTENT, &request_id),
        Invocation::Completed(r) => r,
    };
    let mut resp = (StatusCode::OK, r.payload).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(&r.executed_version) {
        h.insert("x-amz-executed-version", v);
    }
    if let Some(fe) = r.function_error {
        h.insert("x-amz-function-error", HeaderValue::from_static(fe));
    }
    if let Some(log) = r.log_result
        && let Ok(v) = HeaderValue::from_str(&log)
    {
        h.insert("x-amz-log-result", v);
    }
    if let Ok(v) = HeaderValue::from_str(&r.request_id) {
        h.insert("x-amzn-requestid", v);
    }
    resp
}

fn empty(status: StatusCode, request_id: &str) -> Response {
    let mut resp = status.into_response();
    if let Ok(v) = HeaderValue::from_str(request_id) {
        resp.headers_mut().insert("x-amzn-requestid", v);
    }
    resp
}

/// `InvokeAsync` (deprecated): queues the body as an event; 202.
pub async fn invoke_async(
    State(s): State<Arc<AppState>>,
    req: Authed,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let out = s
        .dispatcher
        .accept(
            &req.caller.scope,
            InvokeRequest {
                function: name,
                qualifier: None,
                payload: req.body.clone(),
                tail: false,
                client_context: None,
                trace_header: None,
            },
        )
        .await?;
    Ok(invocation_response(out))
}

/// `InvokeWithResponseStream`: the function's response as AWS event-stream
/// messages, each chunk sent as the function writes it. Refusals (unknown
/// function, throttles) are ordinary errors; once the function runs, the
/// answer is 200 and how it ended comes in the final `InvokeComplete`.
pub async fn invoke_with_response_stream(
    State(s): State<Arc<AppState>>,
    RequestId(request_id): RequestId,
    req: Authed,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Params,
) -> Result<Response, ApiError> {
    let dry_run = match header_str(&headers, "x-amz-invocation-type") {
        None | Some("RequestResponse") => false,
        Some("DryRun") => true,
        Some(t) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "ValidationException",
                format!(
                    "1 validation error detected: Value '{t}' at 'invocationType' failed to satisfy constraint: Member must satisfy enum value set: [RequestResponse, DryRun]"
                ),
            ));
        }
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
    let scope = &req.caller.scope;
    let target = s
        .invoker
        .resolve(scope, &name, q.get("Qualifier").map(String::as_str))
        .await?;
    invoke::check_payload(InvocationType::RequestResponse, &req.body)?;
    if dry_run {
        return Ok(empty(StatusCode::NO_CONTENT, &request_id));
    }
    let run = invoke::Call {
        request_id,
        payload: req.body.clone(),
        client_context: header_str(&headers, "x-amz-client-context").map(str::to_owned),
        trace_header: header_str(&headers, "x-amzn-trace-id").map(str::to_owned),
        tail,
    };
    let mut streaming = s.invoker.execute_stream(&target, run).await?;
    // The headers go out when the response begins: they carry its content
    // type.
    let (content_type, pending) = match streaming.frames.recv().await {
        Some(invoke::StreamFrame::Began { content_type }) => (content_type, None),
        Some(invoke::StreamFrame::Chunk(c)) => (None, Some(c)),
        None => (None, None),
    };
    let body =
        crate::eventstream::EventStreamBody::new(pending, streaming.frames, streaming.completion);
    let mut resp = Response::new(axum::body::Body::new(body));
    let h = resp.headers_mut();
    let content_type = content_type
        .and_then(|c| HeaderValue::from_str(&c).ok())
        .unwrap_or_else(|| HeaderValue::from_static("application/octet-stream"));
    h.insert(header::CONTENT_TYPE, content_type);
    if let Ok(v) = HeaderValue::from_str(&streaming.executed_version) {
        h.insert("x-amz-executed-version", v);
    }
    if let Ok(v) = HeaderValue::from_str(&streaming.request_id) {
        h.insert("x-amzn-requestid", v);
    }
    Ok(resp)
}
