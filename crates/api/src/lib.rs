//! The AWS Lambda REST API over HTTP.
//!
//! [`router`] builds the axum router: every Lambda route sits behind SigV4
//! authentication ([`auth`]); handlers parse the request into a typed call,
//! hand it to the control plane or the invoker, and write the answer. All
//! failures become AWS-shaped responses in [`error`]. [`run`] serves a router on
//! a listener until a shutdown signal.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use control::Control;
use http_body_util::BodyExt;
use serde::Serialize;
use serde::de::DeserializeOwned;

mod account;
mod aliases;
pub mod auth;
mod call;
mod concurrency;
pub mod error;
mod event_config;
mod event_source_mappings;
pub mod events;
mod eventstream;
pub mod function_urls;
mod functions;
mod invoke;
mod layers;
mod logs;
mod platform;
mod policies;
mod query;
pub mod schedules;
mod sns;
mod tags;
mod url_config;
mod versions;

pub use auth::{Caller, KeyEntry, Keyring};
pub use error::ApiError;

/// Largest request body accepted on any route (Lambda's CreateFunction limit).
pub const MAX_REQUEST_BYTES: usize = 70_167_211;

/// Everything the handlers need.
pub struct AppState {
    pub control: Arc<Control>,
    pub invoker: Arc<::invoke::Invoker>,
    pub dispatcher: Arc<dispatch::Dispatcher>,
    /// Event source mappings and their pollers.
    pub esm: ::esm::Esm,
    pub logs: ::logs::LogStore,
    pub keyring: Arc<Keyring>,
    /// Every function URL by id, for serving them.
    pub urls: Arc<function_urls::UrlIndex>,
    /// Where function URLs are served (the `FunctionUrl` the API reports).
    pub url_base: model::UrlBase,
    /// SNS topics and subscriptions.
    pub topics: Arc<::sns::Topics>,
    /// EventBridge Scheduler's schedules and groups.
    pub scheduler: Arc<::scheduler::Scheduler>,
    pub events: Arc<::eventbridge::EventBridge>,
}

/// The full API router. The Prometheus metrics are not on it: see
/// [`metrics_router`] and [`router_with_metrics`].
pub fn router(state: Arc<AppState>) -> Router {
    build(state, None)
}

/// The API router with `/lambent/metrics` beside it, for operators who ask
/// for the metrics on the API listener.
pub fn router_with_metrics(state: Arc<AppState>, access: MetricsAccess) -> Router {
    build(state, Some(access))
}

fn build(state: Arc<AppState>, metrics: Option<MetricsAccess>) -> Router {
    let lambda = Router::new()
        .route(
            "/2015-03-31/functions",
            get(functions::list).post(functions::create),
        )
        .route(
            "/2015-03-31/functions/",
            get(functions::list).post(functions::create),
        )
        .route(
            "/2015-03-31/functions/{name}",
            get(functions::get).delete(functions::delete),
        )
        .route(
            "/2015-03-31/functions/{name}/configuration",
            get(functions::get_configuration).put(functions::update_configuration),
        )
        .route(
            "/2015-03-31/functions/{name}/code",
            axum::routing::put(functions::update_code),
        )
        .route(
            "/2015-03-31/functions/{name}/invocations",
            axum::routing::post(invoke::invoke),
        )
        .route(
            "/2015-03-31/functions/{name}/versions",
            get(versions::list).post(versions::publish),
        )
        .route(
            "/2015-03-31/functions/{name}/aliases",
            get(aliases::list).post(aliases::create),
        )
        .route(
            "/2015-03-31/functions/{name}/aliases/{alias}",
            get(aliases::get)
                .put(aliases::update)
                .delete(aliases::delete),
        )
        .route(
            "/2017-10-31/functions/{name}/concurrency",
            axum::routing::put(concurrency::put_reserved).delete(concurrency::delete_reserved),
        )
        .route(
            "/2019-09-30/functions/{name}/concurrency",
            get(concurrency::get_reserved),
        )
        .route(
            "/2019-09-30/functions/{name}/provisioned-concurrency",
            get(concurrency::get_provisioned)
                .put(concurrency::put_provisioned)
                .delete(concurrency::delete_provisioned),
        )
        .route("/2018-10-31/layers", get(layers::list_or_find))
        .route(
            "/2018-10-31/layers/{name}/versions",
            get(layers::list_versions).post(layers::publish),
        )
        .route(
            "/2018-10-31/layers/{name}/versions/{version}",
            get(layers::get_version).delete(layers::delete_version),
        )
        .route(
            "/2018-10-31/layers/{name}/versions/{version}/policy",
            get(policies::get_layer_policy).post(policies::add_layer_permission),
        )
        .route(
            "/2018-10-31/layers/{name}/versions/{version}/policy/{sid}",
            axum::routing::delete(policies::remove_layer_permission),
        )
        .route(
            "/2015-03-31/functions/{name}/policy",
            get(policies::get_policy).post(policies::add_permission),
        )
        .route(
            "/2015-03-31/functions/{name}/policy/{sid}",
            axum::routing::delete(policies::remove_permission),
        )
        .route(
            "/2014-11-13/functions/{name}/invoke-async",
            axum::routing::post(invoke::invoke_async),
        )
        .route(
            "/2014-11-13/functions/{name}/invoke-async/",
            axum::routing::post(invoke::invoke_async),
        )
        .route(
            "/2019-09-25/functions/{name}/event-invoke-config",
            get(event_config::get)
                .put(event_config::put)
                .post(event_config::update)
                .delete(event_config::delete),
        )
        .route(
            "/2019-09-25/functions/{name}/event-invoke-config/list",
            get(event_config::list),
        )
        .route(
            "/2021-11-15/functions/{name}/response-streaming-invocations",
            axum::routing::post(invoke::invoke_with_response_stream),
        )
        .route(
            "/2021-10-31/functions/{name}/url",
            get(url_config::get)
                .post(url_config::create)
                .put(url_config::update)
                .delete(url_config::delete),
        )
        .route("/2021-10-31/functions/{name}/urls", get(url_config::list))
        .route(
            "/2015-03-31/event-source-mappings",
            get(event_source_mappings::list).post(event_source_mappings::create),
        )
        .route(
            "/2015-03-31/event-source-mappings/",
            get(event_source_mappings::list).post(event_source_mappings::create),
        )
        .route(
            "/2015-03-31/event-source-mappings/{uuid}",
            get(event_source_mappings::get)
                .put(event_source_mappings::update)
                .delete(event_source_mappings::delete),
        )
        .route("/", axum::routing::post(post_root))
        .route("/lambent/status", get(platform::status))
        .route(
            "/2017-03-31/tags/{arn}",
            get(tags::list).post(tags::tag).delete(tags::untag),
        )
        .route("/schedules", get(schedules::list_schedules))
        .route(
            "/schedules/{name}",
            get(schedules::get_schedule)
                .post(schedules::create_schedule)
                .put(schedules::update_schedule)
                .delete(schedules::delete_schedule),
        )
        .route("/schedule-groups", get(schedules::list_groups))
        .route(
            "/schedule-groups/{name}",
            get(schedules::get_group)
                .post(schedules::create_group)
                .delete(schedules::delete_group),
        )
        .route(
            "/tags/{arn}",
            get(schedules::list_tags)
                .post(schedules::tag)
                .delete(schedules::untag),
        )
        .route("/2016-08-19/account-settings", get(account::settings))
        .route("/2016-08-19/account-settings/", get(account::settings))
        .layer(middleware::from_fn_with_state(state.clone(), authenticate));
    let mut app = Router::new()
        .merge(lambda)
        .route("/lambent/code/{file}", get(platform::download_code))
        .route("/", get(sns::unsigned))
        .route("/lambent/sns/signing-key", get(sns::signing_key_note))
        .route("/lambent/health", get(|| async { "ok" }));
    if let Some(access) = metrics {
        app = app.merge(metrics_routes(access, &["/lambent/metrics"]));
    }
    app.fallback(|| async { ApiError::unknown_operation() })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            function_urls::dispatch,
        ))
        .layer(middleware::from_fn(request_id))
        .with_state(state)
}

/// `POST /`: the services that share the root path, told apart by their
/// protocol: a form body is the Query protocol (SNS); otherwise
/// `X-Amz-Target` names the JSON service (EventBridge's `AWSEvents.*`, else
/// CloudWatch Logs).
async fn post_root(
    State(s): State<Arc<AppState>>,
    req: Authed,
    id: RequestId,
    headers: axum::http::HeaderMap,
) -> Response {
    if sns::is_query(&headers) {
        return sns::dispatch(s, req, id).await;
    }
    let json_target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if json_target.starts_with(events::TARGET_PREFIX) {
        return events::dispatch(s, req, headers).await;
    }
    logs::dispatch(State(s), req, headers).await
}

/// Who may read the Prometheus metrics, which name every account's functions.
#[derive(Clone, Default)]
pub struct MetricsAccess {
    /// When set, a scrape must send `Authorization: Bearer <token>`.
    pub bearer_token: Option<Arc<str>>,
}

/// The Prometheus metrics for a listener of their own (loopback by default):
/// `/metrics`, and `/lambent/metrics` where the API listener once served
/// them; unsigned, as scrapers expect.
pub fn metrics_router(state: Arc<AppState>, access: MetricsAccess) -> Router {
    metrics_routes(access, &["/metrics", "/lambent/metrics"])
        .fallback(|| async { ApiError::unknown_operation() })
        .with_state(state)
}

fn metrics_routes(access: MetricsAccess, paths: &[&str]) -> Router<Arc<AppState>> {
    let mut r = Router::new();
    for path in paths {
        r = r.route(path, get(platform::metrics));
    }
    r.layer(middleware::from_fn_with_state(
        access,
        require_metrics_token,
    ))
}

/// Refuses a scrape without the configured bearer token (compared in
/// constant time).
async fn require_metrics_token(
    State(access): State<MetricsAccess>,
    req: Request,
    next: Next,
) -> Response {
    if let Some(token) = &access.bearer_token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            given.as_bytes(),
            token.as_bytes(),
        )) {
            let mut resp = ApiError::metrics_unauthorized().into_response();
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"lambent-metrics\""),
            );
            return resp;
        }
    }
    next.run(req).await
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets in-flight
/// requests finish.
pub async fn run(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt as _;
    let listener = listener.tap_io(|tcp| {
        // Responses are small and latency matters: no Nagle delays.
        let _ = tcp.set_nodelay(true);
    });
    // The peer's address is a function URL event's `sourceIp`.
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// A request's body, read once, with the caller who signed it.
pub struct Authed {
    pub caller: Caller,
    pub body: Bytes,
    /// The `Host` the client addressed, for links back to this server.
    pub host: String,
}

/// Reads the body, verifies the SigV4 signature, and hands the handler an
/// [`Authed`] request; refuses with AWS's 403s otherwise.
async fn authenticate(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    if let Some(len) = parts.headers.get(header::CONTENT_LENGTH)
        && let Some(n) = len.to_str().ok().and_then(|v| v.parse::<usize>().ok())
        && n > MAX_REQUEST_BYTES
    {
        return too_large().into_response();
    }
    let body = match http_body_util::Limited::new(body, MAX_REQUEST_BYTES)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                return too_large().into_response();
            }
            return ApiError::bad_json(format!("could not read the request body: {e}"))
                .into_response();
        }
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    let sreq = sigv4::Request {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        headers: &parts.headers,
    };
    let caller = match state.keyring.authenticate(&sreq, &body, now) {
        Ok(c) => c,
        Err(mut e) if sns::is_query(&parts.headers) => {
            e.code = sns::auth_error_code(e.code);
            let id = parts.extensions.get::<RequestId>().map(|r| r.0.clone());
            return e.response_for(error::Service::Sns, id.as_deref());
        }
        Err(e) => return e.into_response(),
    };
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_owned();
    parts.extensions.insert(Authed { caller, body, host });
    next.run(Request::from_parts(parts, Body::empty())).await
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "RequestEntityTooLargeException",
        format!("Request must be smaller than {MAX_REQUEST_BYTES} bytes for the operation"),
    )
}

/// The id of one API request: made when the request arrives, carried by the
/// request's tracing span (so everything logged while serving it names it),
/// and returned as `x-amzn-RequestId`. Handlers read it from the request's
/// extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// Gives every request an id and a span, and every response the id as
/// `x-amzn-RequestId` (unless the handler set one).
async fn request_id(mut req: Request, next: Next) -> Response {
    use tracing::Instrument as _;
    let id = uuid::Uuid::new_v4().to_string();
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        path = %req.uri().path(),
    );
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut resp = next.run(req).instrument(span).await;
    if !resp.headers().contains_key("x-amzn-requestid")
        && let Ok(v) = HeaderValue::from_str(&id)
    {
        resp.headers_mut().insert("x-amzn-requestid", v);
    }
    resp
}

impl Clone for Authed {
    fn clone(&self) -> Self {
        Self {
            caller: self.caller.clone(),
            body: self.body.clone(),
            host: self.host.clone(),
        }
    }
}

/// Handlers take what the middleware left in the request's extensions; a
/// missing one is a wiring fault of the server, not the caller's.
macro_rules! from_extension {
    ($ty:ty, $what:literal) => {
        impl<S: Send + Sync> axum::extract::FromRequestParts<S> for $ty {
            type Rejection = ApiError;

            async fn from_request_parts(
                parts: &mut axum::http::request::Parts,
                _: &S,
            ) -> Result<Self, ApiError> {
                parts.extensions.remove::<$ty>().ok_or_else(|| {
                    ApiError::internal(concat!("request reached a handler without ", $what))
                })
            }
        }
    };
}

from_extension!(Authed, "authentication");
from_extension!(RequestId, "a request id");

impl Authed {
    /// The body as the JSON an operation takes; an empty body reads as `{}`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        let body: &[u8] = if self.body.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &self.body
        };
        serde_json::from_slice(body).map_err(ApiError::bad_json)
    }
}

/// A JSON response with a status.
pub fn json_response<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => {
            let mut resp = (status, body).into_response();
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            resp
        }
        Err(e) => ApiError::internal(e).into_response(),
    }
}

/// What the control plane tells the data plane: changed functions, code
/// still in use, provisioning progress; and the function URLs served.
pub struct DataPlane(pub Arc<::invoke::Invoker>, pub Arc<function_urls::UrlIndex>);

impl control::FunctionHooks for DataPlane {
    fn function_changed(
        &self,
        scope: &model::Scope,
        name: &model::FunctionName,
        record: Option<&model::FunctionRecord>,
    ) {
        self.0.function_changed(scope, name, record);
        self.1.function_changed(scope, name, record);
    }

    fn code_in_use(&self, digest_hex: &str) -> bool {
        self.0.code_in_use(digest_hex)
    }

    fn provisioned_status(
        &self,
        scope: &model::Scope,
        name: &model::FunctionName,
        qualifier: &str,
    ) -> control::ProvisionedStatus {
        let s = self.0.provisioned_status(scope, name, qualifier);
        control::ProvisionedStatus {
            allocated: s.allocated,
            available: s.available,
            failure: s.failure,
        }
    }
}

#[cfg(test)]
mod tests;
