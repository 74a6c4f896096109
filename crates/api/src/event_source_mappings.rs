//! `/2015-03-31/event-source-mappings`: functions reading queues and
//! streams.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;

use crate::call::{Call, ok};
use crate::{ApiError, json_response};

pub async fn create(c: Call) -> Result<Response, ApiError> {
    let m = c.state.esm.create(c.scope(), c.body()?).await?;
    Ok(json_response(StatusCode::ACCEPTED, &m))
}

pub async fn get(c: Call, Path(uuid): Path<String>) -> Result<Response, ApiError> {
    ok(c.state.esm.get(c.scope(), &uuid)?)
}

pub async fn update(c: Call, Path(uuid): Path<String>) -> Result<Response, ApiError> {
    let m = c.state.esm.update(c.scope(), &uuid, c.body()?).await?;
    Ok(json_response(StatusCode::ACCEPTED, &m))
}

pub async fn delete(c: Call, Path(uuid): Path<String>) -> Result<Response, ApiError> {
    let m = c.state.esm.delete(c.scope(), &uuid).await?;
    Ok(json_response(StatusCode::ACCEPTED, &m))
}

pub async fn list(c: Call) -> Result<Response, ApiError> {
    let (marker, max_items) = c.page();
    ok(c.state
        .esm
        .list(
            c.scope(),
            c.param("EventSourceArn"),
            c.param("FunctionName"),
            marker,
            max_items,
        )
        .await?)
}
