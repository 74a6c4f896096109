//! `/2021-10-31/functions/{FunctionName}/url(s)`: function URL
//! configurations. The URLs themselves are served by [`crate::function_urls`].

use axum::extract::Path;
use axum::response::Response;

use crate::ApiError;
use crate::call::{Call, created, no_content, ok};

pub async fn create(c: Call, Path(name): Path<String>) -> Result<Response, ApiError> {
    created(
        c.control()
            .create_function_url_config(
                c.scope(),
                &name,
                c.qualifier(),
                c.body()?,
                &c.state.url_base,
            )
            .await?,
    )
}

pub async fn get(c: Call, Path(name): Path<String>) -> Result<Response, ApiError> {
    ok(c.control()
        .get_function_url_config(c.scope(), &name, c.qualifier(), &c.state.url_base)
        .await?)
}

pub async fn update(c: Call, Path(name): Path<String>) -> Result<Response, ApiError> {
    ok(c.control()
        .update_function_url_config(
            c.scope(),
            &name,
            c.qualifier(),
            c.body()?,
            &c.state.url_base,
        )
        .await?)
}

pub async fn delete(c: Call, Path(name): Path<String>) -> Result<Response, ApiError> {
    no_content(
        c.control()
            .delete_function_url_config(c.scope(), &name, c.qualifier())
            .await?,
    )
}

pub async fn list(c: Call, Path(name): Path<String>) -> Result<Response, ApiError> {
    let (marker, max_items) = c.page();
    ok(c.control()
        .list_function_url_configs(c.scope(), &name, marker, max_items, &c.state.url_base)
        .await?)
}
