//! Function versions.

use axum::extract::Path;
use axum::response::Response;

use crate::ApiError;
use crate::call::{Call, created, ok};

pub async fn publish(c: Call, Path(name): Path<String>) -> Result<Response, ApiError> {
    created(
        c.control()
            .publish_version(c.scope(), &name, c.body()?)
            .await?,
    )
}

pub async fn list(c: Call, Path(name): Path<String>) -> Result<Response, ApiError> {
    let (marker, max_items) = c.page();
    ok(c.control()
        .list_versions(c.scope(), &name, marker, max_items)
        .await?)
}
