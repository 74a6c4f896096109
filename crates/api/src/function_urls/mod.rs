//! Function URLs served on the API's listener, chosen by the `Host` header
//! (`<url-id>.lambda-url.<region>.<domain>`).
//!
//! A request goes: [`dispatch`] (is it for a URL?) -> the URL's route from
//! the [`UrlIndex`] -> CORS preflight ([`cors`], answered here without
//! invoking) -> authorization (SigV4 for `AWS_IAM`, then the function's
//! resource policy through `control::access`) -> the payload format 2.0
//! event ([`event`]) -> [`respond`], the one place the URL's invoke mode is
//! chosen -> the function's result as an HTTP response ([`reply`]), or for
//! `RESPONSE_STREAM` its chunks as the function writes them ([`stream`]).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use control::access::{AccessRequest, Action};
use http_body_util::BodyExt;
use model::{FunctionName, FunctionRecord, FunctionUrlConfig, InvokeMode, Policy, Scope};

use crate::{AppState, RequestId};

pub mod cors;
pub mod event;
pub mod reply;
mod stream;

pub use reply::UrlError;

/// Where a URL id leads: the function, the qualifier key (`""` or an alias
/// name), the URL's configuration and the policy that governs it, as of the
/// function's last change.
#[derive(Debug, Clone)]
pub struct UrlRoute {
    pub scope: Scope,
    pub name: FunctionName,
    pub key: String,
    pub config: FunctionUrlConfig,
    pub policy: Option<Policy>,
    /// The URL's request counters (kept across changes of the function).
    pub counters: Arc<UrlCounters>,
}

/// Every function URL on this server by id, kept in step with the control
/// plane's changes.
#[derive(Default)]
pub struct UrlIndex {
    inner: RwLock<Inner>,
    /// Requests per URL (function and qualifier), as Lambda's
    /// `UrlRequestCount`, `Url4xxCount` and `Url5xxCount`.
    counters: std::sync::Mutex<BTreeMap<CounterKey, Arc<UrlCounters>>>,
}

/// (account, region, function, qualifier key).
type CounterKey = (String, String, String, String);

/// What one URL answered since the server started.
#[derive(Debug, Default)]
pub struct UrlCounters {
    pub requests: AtomicU64,
    pub client_errors: AtomicU64,
    pub server_errors: AtomicU64,
}

impl UrlCounters {
    fn count(&self, status: StatusCode) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if status.is_client_error() {
            self.client_errors.fetch_add(1, Ordering::Relaxed);
        } else if status.is_server_error() {
            self.server_errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[derive(Default)]
struct Inner {
    routes: HashMap<String, Arc<UrlRoute>>,
    /// The ids each function holds, to drop them when it changes.
    by_function: HashMap<(Scope, FunctionName), Vec<String>>,
}

impl UrlIndex {
    /// Adds the URLs of every function the control plane keeps (when the
    /// server starts).
    pub async fn load(&self, control: &control::Control) -> Result<(), control::ControlError> {
        for (scope, rec) in control.function_records().await? {
            self.function_changed(&scope, &rec.latest.name, Some(&rec));
        }
        Ok(())
    }

    /// A function changed (`Some`) or was deleted (`None`).
    pub fn function_changed(
        &self,
        scope: &Scope,
        name: &FunctionName,
        record: Option<&FunctionRecord>,
    ) {
        let Ok(mut inner) = self.inner.write() else {
            return;
        };
        let key = (scope.clone(), name.clone());
        if let Some(old) = inner.by_function.remove(&key) {
            for id in old {
                inner.routes.remove(&id);
            }
        }
        let Some(rec) = record else { return };
        if rec.urls.is_empty() {
            return;
        }
        let mut ids = Vec::with_capacity(rec.urls.len());
        for (k, config) in &rec.urls {
            let route = UrlRoute {
                scope: scope.clone(),
                name: name.clone(),
                key: k.clone(),
                config: config.clone(),
                policy: rec.policies.get(k).cloned(),
                counters: self.counters_for(scope, name, k),
            };
            ids.push(config.url_id.clone());
            inner.routes.insert(config.url_id.clone(), Arc::new(route));
        }
        inner.by_function.insert(key, ids);
    }

    fn counters_for(&self, scope: &Scope, name: &FunctionName, key: &str) -> Arc<UrlCounters> {
        let k = (
            scope.account.to_string(),
            scope.region.to_string(),
            name.to_string(),
            key.to_owned(),
        );
        match self.counters.lock() {
            Ok(mut map) => map.entry(k).or_default().clone(),
            Err(_) => Arc::default(),
        }
    }

    /// Every URL's counters: (account, region, function, qualifier key).
    pub fn counter_rows(&self) -> Vec<(CounterKey, Arc<UrlCounters>)> {
        self.counters
            .lock()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    pub fn get(&self, url_id: &str) -> Option<Arc<UrlRoute>> {
        self.inner
            .read()
            .ok()
            .and_then(|i| i.routes.get(url_id).cloned())
    }
}

/// Largest request body a URL takes: Lambda's synchronous payload limit.
pub const MAX_URL_BODY_BYTES: usize = model::limits::SYNC_REQUEST_MAX_BYTES;

/// Sends requests addressed to a function URL to [`serve`], everything else
/// on to the API.
pub async fn dispatch(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let target = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(model::url::url_host)
        .map(|(id, region)| (id.to_ascii_lowercase(), region.to_owned()));
    match target {
        Some((id, region)) => serve(&state, req, &id, &region)
            .await
            .unwrap_or_else(IntoResponse::into_response),
        None => next.run(req).await,
    }
}

async fn serve(
    state: &Arc<AppState>,
    req: Request,
    url_id: &str,
    region: &str,
) -> Result<Response, UrlError> {
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let route = state
        .urls
        .get(url_id)
        .filter(|r| r.scope.region.as_str() == region)
        .ok_or(UrlError::NoSuchUrl)?;
    let resp = handle(state, req, &route, url_id, request_id)
        .await
        .unwrap_or_else(IntoResponse::into_response);
    route.counters.count(resp.status());
    Ok(resp)
}

/// A request to a known URL, from preflight to the function's answer.
async fn handle(
    state: &Arc<AppState>,
    req: Request,
    route: &UrlRoute,
    url_id: &str,
    request_id: String,
) -> Result<Response, UrlError> {
    let cors = route.config.cors.as_ref();
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(c) = cors
        && req.method() == Method::OPTIONS
        && origin.is_some()
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        return Ok(cors::preflight(c, origin.as_deref(), &request_id));
    }
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let (parts, body) = req.into_parts();
    if let Some(n) = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        && n > MAX_URL_BODY_BYTES
    {
        return Err(UrlError::TooLarge);
    }
    let body = match http_body_util::Limited::new(body, MAX_URL_BODY_BYTES)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return Err(UrlError::TooLarge),
        Err(_) => return Err(UrlError::BadRequest),
    };
    let identity = authorize(state, route, &parts, &body)?;
    let target = state
        .invoker
        .resolve(
            &route.scope,
            route.name.as_str(),
            (!route.key.is_empty()).then_some(route.key.as_str()),
        )
        .await
        .map_err(UrlError::Invoke)?;
    let trace_header = event::trace_header();
    let ev = event::build(&event::Request {
        parts: &parts,
        body: &body,
        url_id,
        request_id: &request_id,
        source_ip: peer.map(|p| p.ip().to_string()).unwrap_or_default(),
        trace_header: &trace_header,
        identity: identity.as_ref(),
    });
    if ev.len() > model::limits::SYNC_REQUEST_MAX_BYTES {
        return Err(UrlError::TooLarge);
    }
    let mut resp = respond(state, route, &target, ev, request_id.clone(), trace_header).await?;
    if let Some(c) = cors {
        cors::decorate(c, origin.as_deref(), resp.headers_mut());
    }
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-amzn-requestid", v);
    }
    Ok(resp)
}

/// Who signed a URL request (`AWS_IAM`), for the event's `authorizer.iam`.
#[derive(Debug, Clone)]
pub struct Identity {
    pub access_key: String,
    pub account: model::AccountId,
}

/// `AWS_IAM`: a valid SigV4 signature (service `lambda`, the URL's region)
/// from the owning account or one the policy grants; `NONE`: anyone the
/// policy grants as `*` with `lambda:FunctionUrlAuthType` `NONE`.
fn authorize(
    state: &AppState,
    route: &UrlRoute,
    parts: &axum::http::request::Parts,
    body: &[u8],
) -> Result<Option<Identity>, UrlError> {
    let auth = route.config.auth_type;
    let identity = match auth {
        model::UrlAuthType::None => None,
        model::UrlAuthType::AwsIam => {
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
            // The keyring also takes CloudWatch Logs signatures: a URL takes
            // only those for `lambda`.
            if sigv4::parse(&sreq).map_or(true, |a| a.service != "lambda") {
                return Err(UrlError::Forbidden);
            }
            let caller = state
                .keyring
                .authenticate(&sreq, body, now)
                .map_err(|_| UrlError::Forbidden)?;
            if caller.scope.region != route.scope.region {
                return Err(UrlError::Forbidden);
            }
            Some(Identity {
                access_key: caller.access_key,
                account: caller.scope.account,
            })
        }
    };
    let req = AccessRequest {
        action: Action::InvokeFunctionUrl,
        caller: identity.as_ref().map(|i| &i.account),
        service: None,
        source_account: None,
        source_arn: None,
        url_auth_type: Some(auth.as_str()),
    };
    if control::access::allowed(&route.scope.account, route.policy.as_ref(), &req) {
        Ok(identity)
    } else {
        Err(UrlError::Forbidden)
    }
}

/// Runs the function for a URL request and answers: the one place the
/// URL's invoke mode is chosen.
async fn respond(
    state: &AppState,
    route: &UrlRoute,
    target: &invoke::Resolved,
    event: Bytes,
    request_id: String,
    trace_header: String,
) -> Result<Response, UrlError> {
    let call = invoke::Call {
        request_id,
        payload: event,
        client_context: None,
        trace_header: Some(trace_header),
        tail: false,
    };
    match route.config.invoke_mode {
        InvokeMode::Buffered => {
            let out = state
                .invoker
                .execute(target, call)
                .await
                .map_err(UrlError::Invoke)?;
            reply::buffered(out)
        }
        // Chunks go to the client as the function writes them.
        InvokeMode::ResponseStream => {
            let streaming = state
                .invoker
                .execute_stream(target, call)
                .await
                .map_err(UrlError::Invoke)?;
            stream::respond(streaming)
                .await
                .map_err(|_| UrlError::FunctionFailed)
        }
    }
}
