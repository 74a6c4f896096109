//! Resource-based policies: on functions (`AddPermission` and friends) and on
//! layer versions (`AddLayerVersionPermission` and friends).

use axum::extract::Path;
use axum::response::Response;

use crate::ApiError;
use crate::call::{Call, created, no_content, ok};

pub async fn add_permission(c: Call, Path(name): Path<String>) -> Result<Response, ApiError> {
    created(
        c.control()
            .add_permission(c.scope(), &name, c.qualifier(), c.body()?)
            .await?,
    )
}

pub async fn get_policy(c: Call, Path(name): Path<String>) -> Result<Response, ApiError> {
    ok(c.control()
        .get_policy(c.scope(), &name, c.qualifier())
        .await?)
}

pub async fn remove_permission(
    c: Call,
    Path((name, sid)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    no_content(
        c.control()
            .remove_permission(c.scope(), &name, &sid, c.qualifier(), c.revision_id())
            .await?,
    )
}

pub async fn add_layer_permission(
    c: Call,
    Path((name, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    created(
        c.control()
            .add_layer_version_permission(c.scope(), &name, &version, c.revision_id(), c.body()?)
            .await?,
    )
}

pub async fn get_layer_policy(
    c: Call,
    Path((name, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    ok(c.control()
        .get_layer_version_policy(c.scope(), &name, &version)
        .await?)
}

pub async fn remove_layer_permission(
    c: Call,
    Path((name, version, sid)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    no_content(
        c.control()
            .remove_layer_version_permission(c.scope(), &name, &version, &sid, c.revision_id())
            .await?,
    )
}
