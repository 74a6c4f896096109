//! Layers and their versions.

use axum::extract::Path;
use axum::response::Response;

use crate::ApiError;
use crate::call::{Call, created, no_content, ok};
use crate::functions::now_s;

/// Makes a layer version's download link absolute.
fn absolute(c: &Call, mut out: api_types::LayerVersionResponse) -> api_types::LayerVersionResponse {
    out.content.location = c.absolute(&out.content.location);
    out
}

pub async fn publish(c: Call, Path(name): Path<String>) -> Result<Response, ApiError> {
    let out = c
        .control()
        .publish_layer_version(c.scope(), &name, c.body()?, now_s())
        .await?;
    created(absolute(&c, out))
}

pub async fn list_versions(c: Call, Path(name): Path<String>) -> Result<Response, ApiError> {
    let (marker, max_items) = c.page();
    let (runtime, arch) = (
        c.param("CompatibleRuntime"),
        c.param("CompatibleArchitecture"),
    );
    ok(c.control()
        .list_layer_versions(c.scope(), &name, runtime, arch, marker, max_items)
        .await?)
}

pub async fn get_version(
    c: Call,
    Path((name, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let out = c
        .control()
        .get_layer_version(c.scope(), &name, &version, now_s())
        .await?;
    ok(absolute(&c, out))
}

pub async fn delete_version(
    c: Call,
    Path((name, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    no_content(
        c.control()
            .delete_layer_version(c.scope(), &name, &version)
            .await?,
    )
}

/// `GET /2018-10-31/layers`: `ListLayers`, or `GetLayerVersionByArn` with
/// `find=LayerVersion`.
pub async fn list_or_find(c: Call) -> Result<Response, ApiError> {
    if c.param("find") == Some("LayerVersion") {
        let arn = c.param("Arn").unwrap_or_default();
        let out = c
            .control()
            .get_layer_version_by_arn(c.scope(), arn, now_s())
            .await?;
        return ok(absolute(&c, out));
    }
    let (marker, max_items) = c.page();
    let (runtime, arch) = (
        c.param("CompatibleRuntime"),
        c.param("CompatibleArchitecture"),
    );
    ok(c.control()
        .list_layers(c.scope(), runtime, arch, marker, max_items)
        .await?)
}
