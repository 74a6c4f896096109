//! Function aliases.

use axum::extract::Path;
use axum::response::Response;

use crate::ApiError;
use crate::call::{Call, created, no_content, ok};

pub async fn create(c: Call, Path(name): Path<String>) -> Result<Response, ApiError> {
    created(
        c.control()
            .create_alias(c.scope(), &name, c.body()?)
            .await?,
    )
}

pub async fn list(c: Call, Path(name): Path<String>) -> Result<Response, ApiError> {
    let (marker, max_items) = c.page();
    let version = c.param("FunctionVersion");
    ok(c.control()
        .list_aliases(c.scope(), &name, version, marker, max_items)
        .await?)
}

pub async fn get(
    c: Call,
    Path((name, alias)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    ok(c.control().get_alias(c.scope(), &name, &alias).await?)
}

pub async fn update(
    c: Call,
    Path((name, alias)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    ok(c.control()
        .update_alias(c.scope(), &name, &alias, c.body()?)
        .await?)
}

pub async fn delete(
    c: Call,
    Path((name, alias)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    no_content(c.control().delete_alias(c.scope(), &name, &alias).await?)
}
