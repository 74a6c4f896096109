//! Versions, aliases, reserved and provisioned concurrency.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::{ApiError, AppState, Authed, json_response};

type Params = Query<HashMap<String, String>>;

fn q<'a>(p: &'a HashMap<String, String>, k: &str) -> Option<&'a str> {
    p.get(k).map(String::as_str)
}

pub async fn publish_version(
    State(s): State<Arc<AppState>>,
    req: Authed,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let body = req.json()?;
    let out = s
        .control
        .publish_version(&req.caller.scope, &name, body)
        .await?;
    Ok(json_response(StatusCode::CREATED, &out))
}

pub async fn list_versions(
    State(s): State<Arc<AppState>>,
    req: Authed,
    Path(name): Path<String>,
    Query(p): Params,
) -> Result<Response, ApiError> {
    let out = s
        .control
        .list_versions(&req.caller.scope, &name, q(&p, "Marker"), q(&p, "MaxItems"))
        .await?;
    Ok(json_response(StatusCode::OK, &out))
}

pub async fn create_alias(
    State(s): State<Arc<AppState>>,
    req: Authed,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let body = req.json()?;
    let out = s
        .control
        .create_alias(&req.caller.scope, &name, body)
        .await?;
    Ok(json_response(StatusCode::CREATED, &out))
}

pub async fn list_aliases(
    State(s): State<Arc<AppState>>,
    req: Authed,
    Path(name): Path<String>,
    Query(p): Params,
) -> Result<Response, ApiError> {
    let out = s
        .control
        .list_aliases(
            &req.caller.scope,
            &name,
            q(&p, "FunctionVersion"),
            q(&p, "Marker"),
            q(&p, "MaxItems"),
        )
        .await?;
    Ok(json_response(StatusCode::OK, &out))
}

pub async fn get_alias(
    State(s): State<Arc<AppState>>,
    req: Authed,
    Path((name, alias)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let out = s
        .control
        .get_alias(&req.caller.scope, &name, &alias)
        .await?;
    Ok(json_response(StatusCode::OK, &out))
}

pub async fn update_alias(
    State(s): State<Arc<AppState>>,
    req: Authed,
    Path((name, alias)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let body = req.json()?;
    let out = s
        .control
        .update_alias(&req.caller.scope, &name, &alias, body)
        .await?;
    Ok(json_response(StatusCode::OK, &out))
}

pub async fn delete_alias(
    State(s): State<Arc<AppState>>,
    req: Authed,
    Path((name, alias)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    s.control
        .delete_alias(&req.caller.scope, &name, &alias)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn put_concurrency(
    State(s): State<Arc<AppState>>,
    req: Authed,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let body = req.json()?;
    let out = s
        .control
        .put_function_concurrency(&req.caller.scope, &name, body)
        .await?;
    Ok(json_response(StatusCode::OK, &out))
}

pub async fn get_concurrency(
    State(s): State<Arc<AppState>>,
    req: Authed,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let out = s
        .control
        .get_function_concurrency(&req.caller.scope, &name)
        .await?;
    Ok(json_response(StatusCode::OK, &out))
}

pub async fn delete_concurrency(
    State(s): State<Arc<AppState>>,
    req: Authed,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    s.control
        .delete_function_concurrency(&req.caller.scope, &name)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn put_provisioned(
    State(s): State<Arc<AppState>>,
    req: Authed,
    Path(name): Path<String>,
    Query(p): Params,
) -> Result<Response, ApiError> {
    let body = req.json()?;
    let out = s
        .control
        .put_provisioned_concurrency(&req.caller.scope, &name, q(&p, "Qualifier"), body)
        .await?;
    Ok(json_response(StatusCode::ACCEPTED, &out))
}

/// `GET .../provisioned-concurrency`: one config, or all with `List=ALL`.
pub async fn get_provisioned(
    State(s): State<Arc<AppState>>,
    req: Authed,
    Path(name): Path<String>,
    Query(p): Params,
) -> Result<Response, ApiError> {
    if q(&p, "List") == Some("ALL") {
        let out = s
            .control
            .list_provisioned_concurrency(
                &req.caller.scope,
                &name,
                q(&p, "Marker"),
                q(&p, "MaxItems"),
            )
            .await?;
        return Ok(json_response(StatusCode::OK, &out));
    }
    let out = s
        .control
        .get_provisioned_concurrency(&req.caller.scope, &name, q(&p, "Qualifier"))
        .await?;
    Ok(json_response(StatusCode::OK, &out))
}

pub async fn delete_provisioned(
    State(s): State<Arc<AppState>>,
    req: Authed,
    Path(name): Path<String>,
    Query(p): Params,
) -> Result<Response, ApiError> {
    s.control
        .delete_provisioned_concurrency(&req.caller.scope, &name, q(&p, "Qualifier"))
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
