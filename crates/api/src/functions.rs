//! Function routes: create, read, list, update, delete.

use axum::extract::Path;
use axum::response::Response;

use crate::ApiError;
use crate::call::{Call, created, no_content, ok};

pub(crate) fn now_s() -> i64 {
    model::time_fmt::now_ms() / 1000
}

pub async fn create(c: Call) -> Result<Response, ApiError> {
    created(c.control().create_function(c.scope(), c.body()?).await?)
}

pub async fn list(c: Call) -> Result<Response, ApiError> {
    let (marker, max_items) = c.page();
    let version = c.param("FunctionVersion");
    ok(c.control()
        .list_functions(c.scope(), marker, max_items, version)
        .await?)
}

pub async fn get(c: Call, Path(name): Path<String>) -> Result<Response, ApiError> {
    let mut out = c
        .control()
        .get_function(c.scope(), &name, c.qualifier(), now_s())
        .await?;
    out.code.location = c.absolute(&out.code.location);
    ok(out)
}

pub async fn get_configuration(c: Call, Path(name): Path<String>) -> Result<Response, ApiError> {
    ok(c.control()
        .get_function_configuration(c.scope(), &name, c.qualifier())
        .await?)
}

pub async fn update_configuration(c: Call, Path(name): Path<String>) -> Result<Response, ApiError> {
    ok(c.control()
        .update_function_configuration(c.scope(), &name, c.body()?)
        .await?)
}

pub async fn update_code(c: Call, Path(name): Path<String>) -> Result<Response, ApiError> {
    ok(c.control()
        .update_function_code(c.scope(), &name, c.body()?)
        .await?)
}

pub async fn delete(c: Call, Path(name): Path<String>) -> Result<Response, ApiError> {
    no_content(
        c.control()
            .delete_function(c.scope(), &name, c.qualifier())
            .await?,
    )
}
