//! The one place typed errors become AWS error responses: status, the
//! `x-amzn-ErrorType` header, and a JSON body in AWS's shape.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use control::ControlError;
use serde_json::Value;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub extra: Vec<(&'static str, Value)>,
    pub retry_after_s: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            extra: Vec::new(),
            retry_after_s: None,
        }
    }

    pub fn unrecognized_client() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        )
    }

    /// A body that is not the JSON the operation takes.
    pub fn bad_json(detail: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContentException",
            format!("Could not parse request body into json: {detail}"),
        )
    }

    pub fn unknown_operation() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "UnknownOperationException",
            "Unknown operation",
        )
    }

    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ServiceException",
            "An internal error occurred. Try again.",
        )
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        let (status, code) = match &e {
            ControlError::Validation(_) => (StatusCode::BAD_REQUEST, "ValidationException"),
            ControlError::InvalidParameter(_) => {
                (StatusCode::BAD_REQUEST, "InvalidParameterValueException")
            }
            ControlError::NotFound(_) | ControlError::FunctionNotFound(_) => {
                (StatusCode::NOT_FOUND, "ResourceNotFoundException")
            }
            ControlError::Conflict(_) => (StatusCode::CONFLICT, "ResourceConflictException"),
            ControlError::PreconditionFailed(_) => (
                StatusCode::PRECONDITION_FAILED,
                "PreconditionFailedException",
            ),
            ControlError::TooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLargeException",
            ),
            ControlError::AccessDenied(_) => (StatusCode::FORBIDDEN, "AccessDeniedException"),
            ControlError::ProvisionedConfigNotFound(_) => (
                StatusCode::NOT_FOUND,
                "ProvisionedConcurrencyConfigNotFoundException",
            ),
            ControlError::Store(_) | ControlError::Blobs(_) => return Self::internal(&e),
        };
        Self::new(status, code, e.to_string())
    }
}

impl From<sigv4::SigError> for ApiError {
    fn from(e: sigv4::SigError) -> Self {
        Self::new(StatusCode::FORBIDDEN, e.code(), e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let fault = if self.status.is_server_error() {
            "Service"
        } else {
            "User"
        };
        let body = api_types::ErrorBody {
            code: self.code,
            message: &self.message,
            fault,
            extra: self.extra,
        }
        .to_json();
        let mut resp = (self.status, body).into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert("x-amzn-errortype", HeaderValue::from_static(self.code));
        if let Some(s) = self.retry_after_s
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            h.insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

impl From<invoke::InvokeError> for ApiError {
    fn from(e: invoke::InvokeError) -> Self {
        use invoke::InvokeError as E;
        let (status, code) = match &e {
            E::Reference(r) => return ControlError::from(r.clone()).into(),
            E::NotFound(_) => (StatusCode::NOT_FOUND, "ResourceNotFoundException"),
            E::InvalidContent(_) => (StatusCode::BAD_REQUEST, "InvalidRequestContentException"),
            E::TooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLargeException",
            ),
            E::Throttled { reason } => {
                let mut err = Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "TooManyRequestsException",
                    e.to_string(),
                );
                err.extra
                    .push(("Reason", Value::String(reason.as_str().into())));
                // The model's `retryAfterSeconds`: a slot frees when a running
                // invocation ends.
                err.retry_after_s = Some(1);
                return err;
            }
            E::Store(_)
            | E::RuntimeUnavailable { .. }
            | E::Package { .. }
            | E::Environment(_)
            | E::Queue(_) => return Self::internal(&e),
        };
        Self::new(status, code, e.to_string())
    }
}
