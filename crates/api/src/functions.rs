//! Function, tag and account routes.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::{ApiError, AppState, Authed, json_response};

type Params = Query<HashMap<String, String>>;

fn now_s() -> i64 {
    model::time_fmt::now_ms() / 1000
}

pub async fn create(State(s): State<Arc<AppState>>, req: Authed) -> Result<Response, ApiError> {
    let body = req.json()?;
    let out = s.control.create_function(&req.caller.scope, body).await?;
    Ok(json_response(StatusCode::CREATED, &out))
}

pub async fn list(
    State(s): State<Arc<AppState>>,
    req: Authed,
    Query(q): Params,
) -> Result<Response, ApiError> {
    let out = s
        .control
        .list_functions(
            &req.caller.scope,
            q.get("Marker").map(String::as_str),
            q.get("MaxItems").map(String::as_str),
            q.get("FunctionVersion").map(String::as_str),
        )
        .await?;
    Ok(json_response(StatusCode::OK, &out))
}

pub async fn get(
    State(s): State<Arc<AppState>>,
    req: Authed,
    Path(name): Path<String>,
    Query(q): Params,
) -> Result<Response, ApiError> {
    let mut out = s
        .control
        .get_function(
            &req.caller.scope,
            &name,
            q.get("Qualifier").map(String::as_str),
            now_s(),
        )
        .await?;
    out.code.location = format!("http://{}{}", req.host, out.code.location);
    Ok(json_response(StatusCode::OK, &out))
}

pub async fn get_configuration(
    State(s): State<Arc<AppState>>,
    req: Authed,
    Path(name): Path<String>,
    Query(q): Params,
) -> Result<Response, ApiError> {
    let out = s
        .control
        .get_function_configuration(
            &req.caller.scope,
            &name,
            q.get("Qualifier").map(String::as_str),
        )
        .await?;
    Ok(json_response(StatusCode::OK, &out))
}

pub async fn update_configuration(
    State(s): State<Arc<AppState>>,
    req: Authed,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let body = req.json()?;
    let out = s
        .control
        .update_function_configuration(&req.caller.scope, &name, body)
        .await?;
    Ok(json_response(StatusCode::OK, &out))
}

pub async fn update_code(
    State(s): State<Arc<AppState>>,
    req: Authed,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let body = req.json()?;
    let out = s
        .control
        .update_function_code(&req.caller.scope, &name, body)
        .await?;
    Ok(json_response(StatusCode::OK, &out))
}

pub async fn delete(
    State(s): State<Arc<AppState>>,
    req: Authed,
    Path(name): Path<String>,
    Query(q): Params,
) -> Result<Response, ApiError> {
    s.control
        .delete_function(
            &req.caller.scope,
            &name,
            q.get("Qualifier").map(String::as_str),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn tag(
    State(s): State<Arc<AppState>>,
    req: Authed,
    Path(arn): Path<String>,
) -> Result<Response, ApiError> {
    let body = req.json()?;
    s.control
        .tag_resource(&req.caller.scope, &arn, body)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn untag(
    State(s): State<Arc<AppState>>,
    req: Authed,
    Path(arn): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let keys: Vec<String> = sigv4::decode_query(q.as_deref().unwrap_or(""))
        .into_iter()
        .filter(|(k, _)| k == "tagKeys")
        .map(|(_, v)| v)
        .collect();
    s.control
        .untag_resource(&req.caller.scope, &arn, &keys)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn list_tags(
    State(s): State<Arc<AppState>>,
    req: Authed,
    Path(arn): Path<String>,
) -> Result<Response, ApiError> {
    let out = s.control.list_tags(&req.caller.scope, &arn).await?;
    Ok(json_response(StatusCode::OK, &out))
}

pub async fn account_settings(
    State(s): State<Arc<AppState>>,
    req: Authed,
) -> Result<Response, ApiError> {
    let out = s.control.account_settings(&req.caller.scope).await?;
    Ok(json_response(StatusCode::OK, &out))
}

/// `Code.Location` downloads: authorised by the link's own signature, not SigV4.
pub async fn download_code(
    State(s): State<Arc<AppState>>,
    Path(file): Path<String>,
    Query(q): Params,
) -> Result<Response, ApiError> {
    let digest = file.strip_suffix(".zip").unwrap_or(&file);
    let expires = q
        .get("Expires")
        .and_then(|e| e.parse::<i64>().ok())
        .unwrap_or(0);
    let signature = q.get("Signature").map(String::as_str).unwrap_or("");
    let zip = s
        .control
        .download_code(digest, expires, signature, now_s())
        .await?;
    let mut resp = (StatusCode::OK, zip).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    Ok(resp)
}

/// `GET /lambent/status`: the caller's execution environments per function
/// version (Lambent's own endpoint, signed like the Lambda API).
pub async fn status(State(s): State<Arc<AppState>>, req: Authed) -> Response {
    let stats = s.invoker.pool().stats(&req.caller.scope);
    let functions: Vec<serde_json::Value> = stats
        .iter()
        .map(|v| {
            let cold = v.last_cold_start.map(|c| {
                serde_json::json!({
                    "SandboxSetupMicros": c.sandbox_setup.as_micros() as u64,
                    "RuntimeInitMicros": c.runtime_init.as_micros() as u64,
                    "FirstInvokeMicros": c.first_invoke.as_micros() as u64,
                })
            });
            serde_json::json!({"FunctionName": v.name, "Version": v.version,
                               "IdleEnvironments": v.idle, "BusyEnvironments": v.busy,
                               "LastColdStart": cold})
        })
        .collect();
    json_response(
        StatusCode::OK,
        &serde_json::json!({ "Functions": functions }),
    )
}
