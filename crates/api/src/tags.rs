//! `/2017-03-31/tags/{ARN}`: tags on functions.

use axum::extract::{Path, RawQuery};
use axum::response::Response;

use crate::ApiError;
use crate::call::{Call, no_content, ok};

pub async fn tag(c: Call, Path(arn): Path<String>) -> Result<Response, ApiError> {
    no_content(c.control().tag_resource(c.scope(), &arn, c.body()?).await?)
}

/// `tagKeys` repeats, so the raw query is read rather than a map.
pub async fn untag(
    c: Call,
    Path(arn): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let keys: Vec<String> = sigv4::decode_query(q.as_deref().unwrap_or(""))
        .into_iter()
        .filter(|(k, _)| k == "tagKeys")
        .map(|(_, v)| v)
        .collect();
    no_content(c.control().untag_resource(c.scope(), &arn, &keys).await?)
}

pub async fn list(c: Call, Path(arn): Path<String>) -> Result<Response, ApiError> {
    ok(c.control().list_tags(c.scope(), &arn).await?)
}
