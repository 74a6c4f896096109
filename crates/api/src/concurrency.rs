//! Reserved and provisioned concurrency.

use axum::extract::Path;
use axum::response::Response;

use crate::ApiError;
use crate::call::{Call, accepted, no_content, ok};

pub async fn put_reserved(c: Call, Path(name): Path<String>) -> Result<Response, ApiError> {
    ok(c.control()
        .put_function_concurrency(c.scope(), &name, c.body()?)
        .await?)
}

pub async fn get_reserved(c: Call, Path(name): Path<String>) -> Result<Response, ApiError> {
    ok(c.control()
        .get_function_concurrency(c.scope(), &name)
        .await?)
}

pub async fn delete_reserved(c: Call, Path(name): Path<String>) -> Result<Response, ApiError> {
    no_content(
        c.control()
            .delete_function_concurrency(c.scope(), &name)
            .await?,
    )
}

pub async fn put_provisioned(c: Call, Path(name): Path<String>) -> Result<Response, ApiError> {
    accepted(
        c.control()
            .put_provisioned_concurrency(c.scope(), &name, c.qualifier(), c.body()?)
            .await?,
    )
}

/// `GET .../provisioned-concurrency`: one config, or all with `List=ALL`.
pub async fn get_provisioned(c: Call, Path(name): Path<String>) -> Result<Response, ApiError> {
    if c.param("List") == Some("ALL") {
        let (marker, max_items) = c.page();
        return ok(c
            .control()
            .list_provisioned_concurrency(c.scope(), &name, marker, max_items)
            .await?);
    }
    ok(c.control()
        .get_provisioned_concurrency(c.scope(), &name, c.qualifier())
        .await?)
}

pub async fn delete_provisioned(c: Call, Path(name): Path<String>) -> Result<Response, ApiError> {
    no_content(
        c.control()
            .delete_provisioned_concurrency(c.scope(), &name, c.qualifier())
            .await?,
    )
}
