//! The one place typed errors become AWS error responses: status, the
//! `x-amzn-ErrorType` header, and a body in the shape of the protocol the
//! service speaks.
//!
//! Handlers return [`ApiError`]; the service they belong to decides how it is
//! written ([`ApiError::response`]). A failure of the platform itself is
//! logged here, under the request's span, and reaches the client only as the
//! service's generic error.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use control::ControlError;
use logs::LogError;
use serde_json::{Map, Value};

/// The wire protocols of the services on this endpoint. Each writes an error
/// its own way: a new protocol is one arm in [`ApiError::response`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// REST-JSON (Lambda): the code in `x-amzn-ErrorType`, the body
    /// `{"Type": ..., "message" | "Message": ...}`.
    RestJson,
    /// AWS JSON 1.0 (Scheduler, EventBridge): `{"__type": ..., "message": ...}`.
    AwsJson1_0,
    /// AWS JSON 1.1 (CloudWatch Logs): as 1.0, under its own content type.
    AwsJson1_1,
    /// AWS Query (SNS): `<ErrorResponse><Error><Type>`, `<Code>`,
    /// `<Message>`... in XML.
    Query,
}

impl Protocol {
    pub const fn content_type(self) -> &'static str {
        match self {
            Self::RestJson => "application/json",
            Self::AwsJson1_0 => "application/x-amz-json-1.0",
            Self::AwsJson1_1 => "application/x-amz-json-1.1",
            Self::Query => "text/xml",
        }
    }
}

/// A service answering on this endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Lambda,
    Logs,
    Sns,
    Scheduler,
    Events,
}

impl Service {
    pub const fn protocol(self) -> Protocol {
        match self {
            Self::Lambda | Self::Scheduler => Protocol::RestJson,
            Self::Logs | Self::Events => Protocol::AwsJson1_1,
            Self::Sns => Protocol::Query,
        }
    }

    /// What the service answers for a failure of its own (the detail stays in
    /// the server's log).
    const fn internal_error(self) -> (&'static str, &'static str) {
        match self {
            Self::Lambda => ("ServiceException", "An internal error occurred. Try again."),
            Self::Logs => (
                "ServiceUnavailableException",
                "The service cannot complete the request.",
            ),
            Self::Events => ("InternalException", "An internal error occurred."),
            Self::Sns => ("InternalError", "Internal Error"),
            Self::Scheduler => (
                "InternalServerException",
                "Unexpected error encountered while processing the request.",
            ),
        }
    }

    /// The code for a request body that is not the JSON the operation takes.
    const fn unreadable_body_code(self) -> &'static str {
        match self {
            Self::Lambda => "InvalidRequestContentException",
            Self::Logs | Self::Events => "SerializationException",
            Self::Sns => "MalformedQueryString",
            Self::Scheduler => "ValidationException",
        }
    }
}

/// An error on its way to the client.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub extra: Vec<(&'static str, Value)>,
    pub retry_after_s: Option<u64>,
    kind: Kind,
}

/// Errors whose code and message depend on the service answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `code` and `message` are what the client sees.
    Specific,
    /// A failure of the platform: the service's generic error.
    Internal,
    /// A body that does not parse: the service's code, the parser's message.
    UnreadableBody,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            extra: Vec::new(),
            retry_after_s: None,
            kind: Kind::Specific,
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
        Self {
            kind: Kind::UnreadableBody,
            ..Self::new(
                StatusCode::BAD_REQUEST,
                Service::Lambda.unreadable_body_code(),
                format!("Could not parse request body into json: {detail}"),
            )
        }
    }

    pub fn unknown_operation() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "UnknownOperationException",
            "Unknown operation",
        )
    }

    /// 429 `TooManyRequestsException` with Lambda's `Reason`.
    pub fn throttled(message: String, reason: invoke::ThrottleReason) -> Self {
        let mut err = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequestsException",
            message,
        );
        err.extra
            .push(("Reason", Value::String(reason.as_str().into())));
        // The model's `retryAfterSeconds`: a slot frees when a running
        // invocation ends.
        err.retry_after_s = Some(1);
        err
    }

    /// A metrics scrape without the configured bearer token.
    pub fn metrics_unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "UnrecognizedClientException",
            "The metrics endpoint requires the bearer token it was configured with.",
        )
    }

    /// A failure of the platform itself: the detail goes to the server's log
    /// (under the request's span, so with its request id), the client gets the
    /// service's generic error.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        let (code, message) = Service::Lambda.internal_error();
        Self {
            kind: Kind::Internal,
            ..Self::new(StatusCode::INTERNAL_SERVER_ERROR, code, message)
        }
    }

    /// The response as `service` writes it.
    pub fn response(self, service: Service) -> Response {
        self.response_for(service, None)
    }

    /// The response as `service` writes it; protocols that carry the
    /// request id in the body (Query) get `request_id`.
    pub fn response_for(self, service: Service, request_id: Option<&str>) -> Response {
        let (code, message) = match self.kind {
            Kind::Specific => (self.code, self.message),
            Kind::Internal => {
                let (code, message) = service.internal_error();
                (code, message.to_owned())
            }
            Kind::UnreadableBody => (service.unreadable_body_code(), self.message),
        };
        let protocol = service.protocol();
        let body = match protocol {
            // The Scheduler's errors carry only `Message` (its model's shape).
            Protocol::RestJson if service == Service::Scheduler => {
                serde_json::json!({ "Message": message })
                    .to_string()
                    .into_bytes()
            }
            Protocol::RestJson => api_types::ErrorBody {
                code,
                message: &message,
                fault: if self.status.is_server_error() {
                    "Service"
                } else {
                    "User"
                },
                extra: self.extra,
            }
            .to_json(),
            Protocol::AwsJson1_0 | Protocol::AwsJson1_1 => {
                let mut m: Map<String, Value> = self
                    .extra
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect();
                m.insert("__type".into(), Value::String(code.into()));
                m.insert("message".into(), Value::String(message));
                Value::Object(m).to_string().into_bytes()
            }
            Protocol::Query => {
                let mut x = crate::query::Xml::default();
                x.open(r#"ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/""#)
                    .open("Error")
                    .text(
                        "Type",
                        if self.status.is_server_error() {
                            "Receiver"
                        } else {
                            "Sender"
                        },
                    )
                    .text("Code", code)
                    .text("Message", &message)
                    .close("Error")
                    .optional("RequestId", request_id)
                    .close("ErrorResponse");
                x.finish().into_bytes()
            }
        };
        let mut resp = (self.status, body).into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(protocol.content_type()),
        );
        h.insert("x-amzn-errortype", HeaderValue::from_static(code));
        if let Some(s) = self.retry_after_s
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            h.insert(header::RETRY_AFTER, v);
        }
        resp
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
            ControlError::CodeStorageExceeded(_) => {
                (StatusCode::BAD_REQUEST, "CodeStorageExceededException")
            }
            ControlError::ProvisionedConfigNotFound(_) => (
                StatusCode::NOT_FOUND,
                "ProvisionedConcurrencyConfigNotFoundException",
            ),
            ControlError::Store(_) | ControlError::Blobs(_) => return Self::internal(&e),
        };
        Self::new(status, code, e.to_string())
    }
}

impl From<sns::SnsError> for ApiError {
    fn from(e: sns::SnsError) -> Self {
        if let sns::SnsError::Store(_) = &e {
            return Self::internal(&e);
        }
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
        Self::new(status, e.code(), e.to_string())
    }
}

impl From<scheduler::SchedulerError> for ApiError {
    fn from(e: scheduler::SchedulerError) -> Self {
        use scheduler::SchedulerError as E;
        let (status, code) = match &e {
            E::Validation(_) => (StatusCode::BAD_REQUEST, "ValidationException"),
            E::NotFound(_) => (StatusCode::NOT_FOUND, "ResourceNotFoundException"),
            E::Conflict(_) => (StatusCode::CONFLICT, "ConflictException"),
            E::Store(_) => return Self::internal(&e),
        };
        Self::new(status, code, e.to_string())
    }
}

impl From<eventbridge::EventsError> for ApiError {
    fn from(e: eventbridge::EventsError) -> Self {
        use eventbridge::EventsError as E;
        let code = match &e {
            E::Validation(_) => "ValidationException",
            E::NotFound(_) => "ResourceNotFoundException",
            E::AlreadyExists(_) => "ResourceAlreadyExistsException",
            E::InvalidPattern(_) => "InvalidEventPatternException",
            E::Store(_) => return Self::internal(&e),
        };
        Self::new(StatusCode::BAD_REQUEST, code, e.to_string())
    }
}

impl From<sigv4::SigError> for ApiError {
    fn from(e: sigv4::SigError) -> Self {
        Self::new(StatusCode::FORBIDDEN, e.code(), e.to_string())
    }
}

impl From<LogError> for ApiError {
    fn from(e: LogError) -> Self {
        let (code, message) = match &e {
            LogError::GroupNotFound(_) => (
                "ResourceNotFoundException",
                "The specified log group does not exist.",
            ),
            LogError::StreamNotFound(_) => (
                "ResourceNotFoundException",
                "The specified log stream does not exist.",
            ),
            LogError::InvalidToken => (
                "InvalidParameterException",
                "The specified nextToken is invalid.",
            ),
            LogError::Store { .. } => return Self::internal(&e),
        };
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
}

/// Lambda's errors (REST-JSON); other services write theirs with
/// [`ApiError::response`].
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.response(Service::Lambda)
    }
}

impl From<esm::EsmError> for ApiError {
    fn from(e: esm::EsmError) -> Self {
        use esm::EsmError as E;
        let (status, code) = match &e {
            E::Validation(_) => (StatusCode::BAD_REQUEST, "ValidationException"),
            E::InvalidParameter(_) => (StatusCode::BAD_REQUEST, "InvalidParameterValueException"),
            E::NotFound => (StatusCode::NOT_FOUND, "ResourceNotFoundException"),
            E::Conflict(_) => (StatusCode::CONFLICT, "ResourceConflictException"),
            E::InUse(_) => (StatusCode::BAD_REQUEST, "ResourceInUseException"),
            E::Function(r) => return ControlError::from(r.clone()).into(),
            E::Store(_) | E::Lookup(_) => return Self::internal(&e),
        };
        Self::new(status, code, e.to_string())
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
            E::InvalidSubnet(_) => (StatusCode::BAD_GATEWAY, "InvalidSubnetIDException"),
            E::Throttled { reason } => return Self::throttled(e.to_string(), *reason),
            // The closest of Lambda's reasons: the account cannot run more
            // at once (its share of the host, or the host, is in use).
            E::NoCapacity(_) => {
                return Self::throttled(
                    e.to_string(),
                    invoke::ThrottleReason::ConcurrentInvocationLimitExceeded,
                );
            }
            // Throttled, so that clients retry; no Lambda reason fits.
            E::DiskFull(_) => {
                let mut err = Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "TooManyRequestsException",
                    e.to_string(),
                );
                err.retry_after_s = Some(10);
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

/// How a function URL request that got no answer from its function is
/// written: the status codes and `{"Message": ...}` bodies of Lambda's
/// URL front end.
impl IntoResponse for crate::function_urls::UrlError {
    fn into_response(self) -> Response {
        use crate::function_urls::UrlError as U;
        use invoke::InvokeError as E;
        const FORBIDDEN: &str = "Forbidden. For troubleshooting Function URL authorization issues, see: https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html";
        let too_large = || {
            format!(
                "Request must be smaller than {} bytes for the InvokeFunction operation",
                model::limits::SYNC_REQUEST_MAX_BYTES
            )
        };
        let (status, code, message): (StatusCode, Option<&str>, Option<String>) = match &self {
            U::NoSuchUrl => (StatusCode::FORBIDDEN, Some("AccessDeniedException"), None),
            U::Forbidden => (
                StatusCode::FORBIDDEN,
                Some("AccessDeniedException"),
                Some(FORBIDDEN.to_owned()),
            ),
            U::TooLarge | U::Invoke(E::TooLarge(_)) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                Some("RequestEntityTooLargeException"),
                Some(too_large()),
            ),
            U::BadRequest => (
                StatusCode::BAD_REQUEST,
                None,
                Some("Bad Request".to_owned()),
            ),
            U::Invoke(E::Throttled { .. } | E::NoCapacity(_) | E::DiskFull(_)) => (
                StatusCode::TOO_MANY_REQUESTS,
                Some("TooManyRequestsException"),
                Some("Rate Exceeded.".to_owned()),
            ),
            // The URL's alias or version went away since the URL was
            // looked up: as if the URL were gone.
            U::Invoke(E::NotFound(_) | E::Reference(_)) => {
                (StatusCode::FORBIDDEN, Some("AccessDeniedException"), None)
            }
            U::FunctionFailed | U::Invoke(E::InvalidSubnet(_) | E::InvalidContent(_)) => {
                let mut resp = (StatusCode::BAD_GATEWAY, "Internal Server Error").into_response();
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                return resp;
            }
            U::Invoke(e) => {
                tracing::error!(error = %e, "function URL request failed in the platform");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    None,
                    Some("Internal Server Error".to_owned()),
                )
            }
        };
        let body = serde_json::json!({ "Message": message });
        let mut resp = (status, body.to_string()).into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(code) = code {
            h.insert("x-amzn-errortype", HeaderValue::from_static(code));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;

    async fn written(e: ApiError, service: Service) -> (StatusCode, String, String, Value) {
        let r = e.response(service);
        let status = r.status();
        let header = |n: &str| {
            r.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        let (ty, code) = (header("content-type"), header("x-amzn-errortype"));
        let body = r.into_body().collect().await.unwrap().to_bytes();
        (status, ty, code, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn each_service_writes_errors_in_its_protocol() {
        let nf = || LogError::GroupNotFound("/aws/lambda/x".into()).into();
        let (st, ty, code, body) = written(nf(), Service::Logs).await;
        assert_eq!(
            (st, ty.as_str(), code.as_str()),
            (
                StatusCode::BAD_REQUEST,
                "application/x-amz-json-1.1",
                "ResourceNotFoundException"
            )
        );
        assert_eq!(
            body,
            serde_json::json!({"__type": "ResourceNotFoundException",
                               "message": "The specified log group does not exist."})
        );
        let (_, ty, _, body) = written(nf(), Service::Lambda).await;
        assert_eq!(ty, "application/json");
        assert_eq!(
            body,
            serde_json::json!({"Type": "User", "Message": "The specified log group does not exist."})
        );
    }

    #[tokio::test]
    async fn internal_failures_answer_the_services_generic_error_only() {
        let detail = "disk I/O error at /var/lib/secret/path";
        for (service, code, message) in [
            (
                Service::Lambda,
                "ServiceException",
                "An internal error occurred. Try again.",
            ),
            (
                Service::Logs,
                "ServiceUnavailableException",
                "The service cannot complete the request.",
            ),
        ] {
            let (st, _, got, body) = written(ApiError::internal(detail), service).await;
            assert_eq!(
                (st, got.as_str()),
                (StatusCode::INTERNAL_SERVER_ERROR, code)
            );
            assert!(!body.to_string().contains("secret"), "{body}");
            let key = if service == Service::Lambda {
                "Message"
            } else {
                "message"
            };
            assert_eq!(body[key], message);
        }
        let store = LogError::Store {
            op: "select",
            detail: detail.into(),
        };
        let (_, _, code, body) = written(store.into(), Service::Logs).await;
        assert_eq!(code, "ServiceUnavailableException");
        assert!(!body.to_string().contains("secret"));
    }

    #[tokio::test]
    async fn sns_errors_are_query_xml_with_the_request_id() {
        let r = ApiError::from(sns::SnsError::topic_not_found())
            .response_for(Service::Sns, Some("req-1"));
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(r.headers()["content-type"], "text/xml");
        assert_eq!(r.headers()["x-amzn-errortype"], "NotFound");
        let body = r.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            r#"<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><Error><Type>Sender</Type><Code>NotFound</Code><Message>Topic does not exist</Message></Error><RequestId>req-1</RequestId></ErrorResponse>"#
        );
        let r = ApiError::internal("secret detail").response_for(Service::Sns, None);
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = r.into_body().collect().await.unwrap().to_bytes();
        let text = std::str::from_utf8(&body).unwrap();
        assert!(
            text.contains("<Type>Receiver</Type><Code>InternalError</Code>"),
            "{text}"
        );
        assert!(!text.contains("secret"));
    }

    #[tokio::test]
    async fn unreadable_bodies_use_the_services_code() {
        let (_, _, code, _) = written(ApiError::bad_json("eof"), Service::Lambda).await;
        assert_eq!(code, "InvalidRequestContentException");
        let (_, _, code, body) = written(ApiError::bad_json("eof"), Service::Logs).await;
        assert_eq!(code, "SerializationException");
        assert_eq!(body["__type"], "SerializationException");
    }

    /// The Scheduler answers REST-JSON with only `Message`; EventBridge JSON
    /// 1.1 with `__type` and `message`, every client error a 400.
    #[tokio::test]
    async fn scheduler_and_eventbridge_write_their_shapes() {
        let nf = scheduler::SchedulerError::NotFound("Schedule s does not exist.".into());
        let (st, ty, code, body) = written(nf.into(), Service::Scheduler).await;
        assert_eq!(
            (st, ty.as_str(), code.as_str()),
            (
                StatusCode::NOT_FOUND,
                "application/json",
                "ResourceNotFoundException"
            )
        );
        assert_eq!(
            body,
            serde_json::json!({"Message": "Schedule s does not exist."})
        );
        let conflict = scheduler::SchedulerError::Conflict("Schedule s already exists.".into());
        let (st, _, code, _) = written(conflict.into(), Service::Scheduler).await;
        assert_eq!(
            (st, code.as_str()),
            (StatusCode::CONFLICT, "ConflictException")
        );
        let (_, _, code, _) = written(ApiError::internal("disk"), Service::Scheduler).await;
        assert_eq!(code, "InternalServerException");

        let bad = eventbridge::EventsError::InvalidPattern(
            "Event pattern is not valid. Reason: x".into(),
        );
        let (st, ty, code, body) = written(bad.into(), Service::Events).await;
        assert_eq!(
            (st, ty.as_str(), code.as_str()),
            (
                StatusCode::BAD_REQUEST,
                "application/x-amz-json-1.1",
                "InvalidEventPatternException"
            )
        );
        assert_eq!(body["__type"], "InvalidEventPatternException");
        let (_, _, code, _) = written(ApiError::internal("disk"), Service::Events).await;
        assert_eq!(code, "InternalException");
    }
}
