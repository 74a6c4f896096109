//! `/2019-09-25/functions/{FunctionName}/event-invoke-config`: asynchronous
//! invocation settings.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::{ApiError, AppState, Authed, json_response};

type Params = Query<HashMap<String, String>>;

pub async fn put(
    State(s): State<Arc<AppState>>,
    req: Authed,
    Path(name): Path<String>,
    Query(q): Params,
) -> Result<Response, ApiError> {
    let body = req.json()?;
    let out = s
        .control
        .put_event_invoke_config(
            &req.caller.scope,
            &name,
            q.get("Qualifier").map(String::as_str),
            body,
        )
        .await?;
    Ok(json_response(StatusCode::OK, &out))
}

pub async fn update(
    State(s): State<Arc<AppState>>,
    req: Authed,
    Path(name): Path<String>,
    Query(q): Params,
) -> Result<Response, ApiError> {
    let body = req.json()?;
    let out = s
        .control
        .update_event_invoke_config(
            &req.caller.scope,
            &name,
            q.get("Qualifier").map(String::as_str),
            body,
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
    let out = s
        .control
        .get_event_invoke_config(
            &req.caller.scope,
            &name,
            q.get("Qualifier").map(String::as_str),
        )
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
        .delete_event_invoke_config(
            &req.caller.scope,
            &name,
            q.get("Qualifier").map(String::as_str),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn list(
    State(s): State<Arc<AppState>>,
    req: Authed,
    Path(name): Path<String>,
    Query(q): Params,
) -> Result<Response, ApiError> {
    let out = s
        .control
        .list_event_invoke_configs(
            &req.caller.scope,
            &name,
            q.get("Marker").map(String::as_str),
            q.get("MaxItems").map(String::as_str),
        )
        .await?;
    Ok(json_response(StatusCode::OK, &out))
}
