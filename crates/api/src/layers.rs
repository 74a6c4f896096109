//! Layers and resource policies.

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

/// Makes a layer version's download link absolute, on the address the client used.
fn absolute(
    req: &Authed,
    mut out: api_types::LayerVersionResponse,
) -> api_types::LayerVersionResponse {
    out.content.location = format!("http://{}{}", req.host, out.content.location);
    out
}

fn now_s() -> i64 {
    model::time_fmt::now_ms() / 1000
}

pub async fn publish(
    State(s): State<Arc<AppState>>,
    req: Authed,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let body = req.json()?;
    let out = s
        .control
        .publish_layer_version(&req.caller.scope, &name, body, now_s())
        .await?;
    Ok(json_response(StatusCode::CREATED, &absolute(&req, out)))
}

pub async fn list_versions(
    State(s): State<Arc<AppState>>,
    req: Authed,
    Path(name): Path<String>,
    Query(p): Params,
) -> Result<Response, ApiError> {
    let out = s
        .control
        .list_layer_versions(
            &req.caller.scope,
            &name,
            q(&p, "CompatibleRuntime"),
            q(&p, "CompatibleArchitecture"),
            q(&p, "Marker"),
            q(&p, "MaxItems"),
        )
        .await?;
    Ok(json_response(StatusCode::OK, &out))
}

pub async fn get_version(
    State(s): State<Arc<AppState>>,
    req: Authed,
    Path((name, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let out = s
        .control
        .get_layer_version(&req.caller.scope, &name, &version, now_s())
        .await?;
    Ok(json_response(StatusCode::OK, &absolute(&req, out)))
}

pub async fn delete_version(
    State(s): State<Arc<AppState>>,
    req: Authed,
    Path((name, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    s.control
        .delete_layer_version(&req.caller.scope, &name, &version)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /2018-10-31/layers`: `ListLayers`, or `GetLayerVersionByArn` with
/// `find=LayerVersion`.
pub async fn list_or_find(
    State(s): State<Arc<AppState>>,
    req: Authed,
    Query(p): Params,
) -> Result<Response, ApiError> {
    if q(&p, "find") == Some("LayerVersion") {
        let out = s
            .control
            .get_layer_version_by_arn(&req.caller.scope, q(&p, "Arn").unwrap_or_default(), now_s())
            .await?;
        return Ok(json_response(StatusCode::OK, &absolute(&req, out)));
    }
    let out = s
        .control
        .list_layers(
            &req.caller.scope,
            q(&p, "CompatibleRuntime"),
            q(&p, "CompatibleArchitecture"),
            q(&p, "Marker"),
            q(&p, "MaxItems"),
        )
        .await?;
    Ok(json_response(StatusCode::OK, &out))
}

pub async fn add_layer_permission(
    State(s): State<Arc<AppState>>,
    req: Authed,
    Path((name, version)): Path<(String, String)>,
    Query(p): Params,
) -> Result<Response, ApiError> {
    let body = req.json()?;
    let out = s
        .control
        .add_layer_version_permission(
            &req.caller.scope,
            &name,
            &version,
            q(&p, "RevisionId"),
            body,
        )
        .await?;
    Ok(json_response(StatusCode::CREATED, &out))
}

pub async fn get_layer_policy(
    State(s): State<Arc<AppState>>,
    req: Authed,
    Path((name, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let out = s
        .control
        .get_layer_version_policy(&req.caller.scope, &name, &version)
        .await?;
    Ok(json_response(StatusCode::OK, &out))
}

pub async fn remove_layer_permission(
    State(s): State<Arc<AppState>>,
    req: Authed,
    Path((name, version, sid)): Path<(String, String, String)>,
    Query(p): Params,
) -> Result<Response, ApiError> {
    s.control
        .remove_layer_version_permission(
            &req.caller.scope,
            &name,
            &version,
            &sid,
            q(&p, "RevisionId"),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn add_permission(
    State(s): State<Arc<AppState>>,
    req: Authed,
    Path(name): Path<String>,
    Query(p): Params,
) -> Result<Response, ApiError> {
    let body = req.json()?;
    let out = s
        .control
        .add_permission(&req.caller.scope, &name, q(&p, "Qualifier"), body)
        .await?;
    Ok(json_response(StatusCode::CREATED, &out))
}

pub async fn get_policy(
    State(s): State<Arc<AppState>>,
    req: Authed,
    Path(name): Path<String>,
    Query(p): Params,
) -> Result<Response, ApiError> {
    let out = s
        .control
        .get_policy(&req.caller.scope, &name, q(&p, "Qualifier"))
        .await?;
    Ok(json_response(StatusCode::OK, &out))
}

pub async fn remove_permission(
    State(s): State<Arc<AppState>>,
    req: Authed,
    Path((name, sid)): Path<(String, String)>,
    Query(p): Params,
) -> Result<Response, ApiError> {
    s.control
        .remove_permission(
            &req.caller.scope,
            &name,
            &sid,
            q(&p, "Qualifier"),
            q(&p, "RevisionId"),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
