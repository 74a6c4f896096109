//! What a Lambda REST handler takes and how it answers: [`Call`] bundles the
//! server state, the signed request and its query string; [`ok`],
//! [`created`], [`accepted`] and [`no_content`] write the reply. Path
//! segments stay axum `Path` extractors beside it.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Query};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use control::Control;
use model::Scope;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{ApiError, AppState, Authed, json_response};

/// One signed Lambda API request, ready for a handler.
pub struct Call {
    pub state: Arc<AppState>,
    pub req: Authed,
    query: HashMap<String, String>,
    raw_query: String,
}

impl Call {
    pub fn control(&self) -> &Control {
        &self.state.control
    }

    /// The caller's account and region.
    pub fn scope(&self) -> &Scope {
        &self.req.caller.scope
    }

    /// A query-string parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    /// The query string as sent (for repeated parameters).
    pub fn raw_query(&self) -> &str {
        &self.raw_query
    }

    /// `?Qualifier=`: a version or alias.
    pub fn qualifier(&self) -> Option<&str> {
        self.param("Qualifier")
    }

    /// `?RevisionId=`, for changes conditional on a policy's revision.
    pub fn revision_id(&self) -> Option<&str> {
        self.param("RevisionId")
    }

    /// `?Marker=` and `?MaxItems=` of a listing.
    pub fn page(&self) -> (Option<&str>, Option<&str>) {
        (self.param("Marker"), self.param("MaxItems"))
    }

    /// The body as the operation's JSON input.
    pub fn body<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        self.req.json()
    }

    /// Makes a server-relative download link absolute, on the address the
    /// client used.
    pub fn absolute(&self, location: &str) -> String {
        format!("http://{}{location}", self.req.host)
    }
}

impl FromRequestParts<Arc<AppState>> for Call {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let req = Authed::from_request_parts(parts, state).await?;
        let Query(query) = Query::try_from_uri(&parts.uri).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "InvalidParameterValueException",
                format!("Could not read the query string: {e}"),
            )
        })?;
        Ok(Self {
            state: state.clone(),
            req,
            query,
            raw_query: parts.uri.query().unwrap_or("").to_owned(),
        })
    }
}

/// 200 with `value` as JSON.
pub fn ok<T: Serialize>(value: T) -> Result<Response, ApiError> {
    Ok(json_response(StatusCode::OK, &value))
}

/// 201 with `value` as JSON.
pub fn created<T: Serialize>(value: T) -> Result<Response, ApiError> {
    Ok(json_response(StatusCode::CREATED, &value))
}

/// 202 with `value` as JSON.
pub fn accepted<T: Serialize>(value: T) -> Result<Response, ApiError> {
    Ok(json_response(StatusCode::ACCEPTED, &value))
}

/// 204 and no body.
pub fn no_content(_: ()) -> Result<Response, ApiError> {
    Ok(StatusCode::NO_CONTENT.into_response())
}
