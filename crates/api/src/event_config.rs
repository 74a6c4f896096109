//! `/2019-09-25/functions/{FunctionName}/event-invoke-config`: asynchronous
//! invocation settings.

use axum::extract::Path;
use axum::response::Response;

use crate::ApiError;
use crate::call::{Call, no_content, ok};

pub async fn put(c: Call, Path(name): Path<String>) -> Result<Response, ApiError> {
    ok(c.control()
        .put_event_invoke_config(c.scope(), &name, c.qualifier(), c.body()?)
        .await?)
}

pub async fn update(c: Call, Path(name): Path<String>) -> Result<Response, ApiError> {
    ok(c.control()
        .update_event_invoke_config(c.scope(), &name, c.qualifier(), c.body()?)
        .await?)
}

pub async fn get(c: Call, Path(name): Path<String>) -> Result<Response, ApiError> {
    ok(c.control()
        .get_event_invoke_config(c.scope(), &name, c.qualifier())
        .await?)
}

pub async fn delete(c: Call, Path(name): Path<String>) -> Result<Response, ApiError> {
    no_content(
        c.control()
            .delete_event_invoke_config(c.scope(), &name, c.qualifier())
            .await?,
    )
}

pub async fn list(c: Call, Path(name): Path<String>) -> Result<Response, ApiError> {
    let (marker, max_items) = c.page();
    ok(c.control()
        .list_event_invoke_configs(c.scope(), &name, marker, max_items)
        .await?)
}
