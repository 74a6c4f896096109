//! The Extensions API (2020-01-01) of one execution environment.
//!
//! An extension registers (`POST /2020-01-01/extension/register`) for
//! `INVOKE` and/or `SHUTDOWN` events and then long-polls
//! `GET /2020-01-01/extension/event/next`. Init ends when the runtime and
//! every extension have asked for their next event; an invocation ends when
//! the runtime has answered and every extension that was sent its `INVOKE`
//! has asked for the next event again.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use crate::{Body, Channel, InitError, MAX_ERROR_BYTES, Read, read_body};

pub(crate) const PREFIX: &str = "/2020-01-01/extension/";
const ID_HEADER: &str = "lambda-extension-identifier";
const NAME_HEADER: &str = "lambda-extension-name";
const ERROR_TYPE_HEADER: &str = "lambda-extension-function-error-type";

/// What `register` tells an extension about the function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionInfo {
    pub function_name: String,
    pub function_version: String,
    pub handler: String,
    pub account_id: String,
}

/// Why an environment's shutdown began, as the `SHUTDOWN` event says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownReason {
    /// Idle too long, or retired by a change of the function.
    Spindown,
    /// An invocation ran out of time.
    Timeout,
    /// The runtime or an extension failed.
    Failure,
}

impl ShutdownReason {
    fn as_str(self) -> &'static str {
        match self {
            ShutdownReason::Spindown => "spindown",
            ShutdownReason::Timeout => "timeout",
            ShutdownReason::Failure => "failure",
        }
    }
}

pub(crate) struct Ext {
    name: String,
    id: String,
    invoke: bool,
    shutdown: bool,
    /// Events not yet fetched.
    pending: VecDeque<String>,
    /// Handed (or queued) an event it has not finished: it has not asked
    /// for the next one since.
    owes: bool,
    /// Has asked for an event at least once: its init is over.
    ready: bool,
}

/// The extensions of one environment.
#[derive(Default)]
pub(crate) struct Extensions {
    pub(crate) info: Option<FunctionInfo>,
    /// How many external extensions were started: init waits for each.
    pub(crate) expected: usize,
    pub(crate) list: Vec<Ext>,
    /// Registration is closed once init is over.
    pub(crate) closed: bool,
    /// When the last of them asked for its first event.
    pub(crate) ready_at: Option<Instant>,
    /// When the last one that owed an event asked for the next.
    pub(crate) idle_at: Option<Instant>,
    /// An extension reported `exit/error`: the environment must not be reused.
    pub(crate) failed: Option<String>,
    pub(crate) shutting_down: bool,
}

impl Extensions {
    pub(crate) fn all_ready(&self) -> bool {
        self.list.len() >= self.expected && self.list.iter().all(|e| e.ready)
    }

    fn none_owe(&self) -> bool {
        self.list.iter().all(|e| !e.owes)
    }

    /// Queues an `INVOKE` event for every extension that registered for it.
    pub(crate) fn invoke(&mut self, inv: &crate::Invocation, deadline_ms: i64) -> bool {
        let event = serde_json::json!({
            "eventType": "INVOKE",
            "deadlineMs": deadline_ms,
            "requestId": inv.request_id,
            "invokedFunctionArn": inv.invoked_arn,
            "tracing": {"type": "X-Amzn-Trace-Id", "value": inv.trace_id},
        })
        .to_string();
        let mut any = false;
        for e in self.list.iter_mut().filter(|e| e.invoke) {
            e.pending.push_back(event.clone());
            e.owes = true;
            any = true;
        }
        if any {
            self.idle_at = None;
        }
        any
    }
}

/// Why the Extensions API refused a call.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Refusal {
    /// Init is over (or failed): no more registrations.
    RegistrationClosed,
    /// An extension of this name registered already.
    AlreadyRegistered(String),
    /// Lambda's limit of extensions per function is reached.
    TooManyExtensions,
    /// No registered extension has this identifier.
    UnknownIdentifier,
}

impl Refusal {
    fn response(&self) -> Response<Body> {
        match self {
            Refusal::RegistrationClosed => error(
                StatusCode::FORBIDDEN,
                "Extension.RegistrationClosed",
                "Registration is only allowed during init",
            ),
            Refusal::AlreadyRegistered(name) => error(
                StatusCode::CONFLICT,
                "Extension.AlreadyRegistered",
                &format!("Extension {name} is already registered"),
            ),
            Refusal::TooManyExtensions => error(
                StatusCode::FORBIDDEN,
                "Extension.TooManyExtensions",
                "Too many extensions registered",
            ),
            Refusal::UnknownIdentifier => unknown_identifier(),
        }
    }
}

fn error(status: StatusCode, error_type: &str, message: &str) -> Response<Body> {
    let body = serde_json::json!({"errorMessage": message, "errorType": error_type}).to_string();
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn header(req: &Request<Incoming>, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

impl Channel {
    /// Whether any extension registered.
    pub fn has_extensions(&self) -> bool {
        !self.lock().ext.list.is_empty()
    }

    /// Set when an extension reported `exit/error` after init: the
    /// environment is not to be reused.
    pub fn extension_failed(&self) -> Option<String> {
        self.lock().ext.failed.clone()
    }

    /// Waits until every extension sent an `INVOKE` has asked for its next
    /// event; yields when the last one did.
    pub async fn extensions_done(&self) -> Instant {
        loop {
            let notified = self.ext_idle.notified();
            {
                let st = self.lock();
                if st.ext.none_owe() {
                    return st.ext.idle_at.unwrap_or_else(Instant::now);
                }
            }
            notified.await;
        }
    }

    /// Sends `SHUTDOWN` to every extension registered for it; `false` if
    /// none did. [`Channel::extensions_done`] then says when they all asked
    /// for the next event (most simply exit instead).
    pub fn shutdown(&self, reason: ShutdownReason, deadline_ms: i64) -> bool {
        let event = serde_json::json!({
            "eventType": "SHUTDOWN",
            "shutdownReason": reason.as_str(),
            "deadlineMs": deadline_ms,
        })
        .to_string();
        let mut st = self.lock();
        st.ext.shutting_down = true;
        let mut any = false;
        for e in st.ext.list.iter_mut().filter(|e| e.shutdown) {
            e.pending.push_back(event.clone());
            e.owes = true;
            any = true;
        }
        drop(st);
        self.ext_events.notify_waiters();
        any
    }

    fn register(&self, name: String, invoke: bool, shutdown: bool) -> Result<String, Refusal> {
        let mut st = self.lock();
        if st.ext.closed || st.init_error.is_some() {
            return Err(Refusal::RegistrationClosed);
        }
        if st.ext.list.iter().any(|e| e.name == name) {
            return Err(Refusal::AlreadyRegistered(name));
        }
        if st.ext.list.len() >= crate::MAX_EXTENSIONS {
            return Err(Refusal::TooManyExtensions);
        }
        let id = uuid::Uuid::new_v4().to_string();
        st.ext.list.push(Ext {
            name,
            id: id.clone(),
            invoke,
            shutdown,
            pending: VecDeque::new(),
            owes: false,
            ready: false,
        });
        Ok(id)
    }

    /// `event/next` for extension `id`: finishes the event it was handed,
    /// then waits for its next one.
    async fn extension_next(&self, id: &str) -> Result<String, Refusal> {
        loop {
            let notified = self.ext_events.notified();
            {
                let mut st = self.lock();
                let Some(i) = st.ext.list.iter().position(|e| e.id == id) else {
                    return Err(Refusal::UnknownIdentifier);
                };
                let mut init_moved = false;
                if !st.ext.list[i].ready {
                    st.ext.list[i].ready = true;
                    if st.ext.all_ready() {
                        st.ext.ready_at = Some(Instant::now());
                        init_moved = true;
                    }
                }
                if let Some(ev) = st.ext.list[i].pending.pop_front() {
                    st.ext.list[i].owes = true;
                    drop(st);
                    if init_moved {
                        self.init.notify_waiters();
                    }
                    return Ok(ev);
                }
                let mut idle_moved = false;
                if st.ext.list[i].owes {
                    st.ext.list[i].owes = false;
                    if st.ext.none_owe() {
                        st.ext.idle_at = Some(Instant::now());
                        idle_moved = true;
                    }
                }
                drop(st);
                if init_moved {
                    self.init.notify_waiters();
                }
                if idle_moved {
                    self.ext_idle.notify_waiters();
                }
            }
            notified.await;
        }
    }

    fn extension_error(
        &self,
        id: &str,
        during_init: bool,
        error_type: String,
        body: Bytes,
    ) -> bool {
        let mut st = self.lock();
        let Some(ext) = st.ext.list.iter().find(|e| e.id == id) else {
            return false;
        };
        let name = ext.name.clone();
        let init_over = st.init_done_at.is_some() && st.ext.all_ready() && st.ext.closed;
        if during_init || !init_over {
            let platform_type = if during_init {
                "Extension.InitError"
            } else {
                "Extension.ExitError"
            };
            let detail = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| {
                    v.get("errorMessage")
                        .and_then(|m| m.as_str())
                        .map(str::to_owned)
                });
            let message = match detail {
                Some(m) => format!("Extension {name} reported {error_type}: {m}"),
                None => format!("Extension {name} reported {error_type}"),
            };
            let doc = serde_json::json!({"errorMessage": message, "errorType": platform_type})
                .to_string();
            drop(st);
            self.record_init_error(InitError {
                error_type: Some(platform_type.to_owned()),
                body: Bytes::from(doc),
            });
        } else {
            st.ext.failed = Some(error_type);
        }
        true
    }
}

fn unknown_identifier() -> Response<Body> {
    error(
        StatusCode::FORBIDDEN,
        "Extension.InvalidExtensionIdentifier",
        "Invalid extension identifier",
    )
}

fn accepted() -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from_static(br#"{"status":"OK"}"#)));
    *r.status_mut() = StatusCode::ACCEPTED;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// Answers one Extensions API request (`rest` follows [`PREFIX`]).
pub(crate) async fn handle(
    channel: &Channel,
    req: Request<Incoming>,
    rest: &str,
) -> Response<Body> {
    match (req.method(), rest) {
        (&Method::POST, "register") => {
            let Some(name) = header(&req, NAME_HEADER).filter(|n| !n.is_empty()) else {
                return crate::refuse(
                    req,
                    error(
                        StatusCode::FORBIDDEN,
                        "Extension.InvalidExtensionName",
                        "Missing Lambda-Extension-Name header",
                    ),
                )
                .await;
            };
            let account = header(&req, "lambda-extension-accept-feature")
                .is_some_and(|f| f.split(',').any(|f| f.trim() == "accountId"));
            let body = match read_body(req.into_body(), MAX_ERROR_BYTES).await {
                Read::Body(b) => b,
                _ => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "InvalidRequestFormat",
                        "Could not read the request body",
                    );
                }
            };
            let events: Vec<String> = match serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("events").cloned())
                .map(serde_json::from_value::<Vec<String>>)
            {
                Some(Ok(e)) => e,
                None if body.is_empty() => Vec::new(),
                _ => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "InvalidRequestFormat",
                        "The request body must be {\"events\":[...]}",
                    );
                }
            };
            if let Some(bad) = events.iter().find(|e| *e != "INVOKE" && *e != "SHUTDOWN") {
                return error(
                    StatusCode::FORBIDDEN,
                    "Extension.InvalidEventType",
                    &format!("Unknown event type {bad}: INVOKE and SHUTDOWN are allowed"),
                );
            }
            let invoke = events.iter().any(|e| e == "INVOKE");
            let shutdown = events.iter().any(|e| e == "SHUTDOWN");
            let id = match channel.register(name, invoke, shutdown) {
                Ok(id) => id,
                Err(r) => return r.response(),
            };
            let info = channel.lock().ext.info.clone();
            let mut doc = serde_json::Map::new();
            if let Some(info) = info {
                doc.insert("functionName".into(), info.function_name.into());
                doc.insert("functionVersion".into(), info.function_version.into());
                doc.insert("handler".into(), info.handler.into());
                if account {
                    doc.insert("accountId".into(), info.account_id.into());
                }
            }
            let mut r = Response::new(Full::new(Bytes::from(
                serde_json::Value::Object(doc).to_string(),
            )));
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            if let Ok(v) = HeaderValue::from_str(&id) {
                r.headers_mut().insert(ID_HEADER, v);
            }
            r
        }
        (&Method::GET, "event/next") => {
            let Some(id) = header(&req, ID_HEADER) else {
                return error(
                    StatusCode::FORBIDDEN,
                    "Extension.MissingExtensionIdentifier",
                    "Missing Lambda-Extension-Identifier header",
                );
            };
            match channel.extension_next(&id).await {
                Ok(event) => {
                    let mut r = Response::new(Full::new(Bytes::from(event)));
                    r.headers_mut()
                        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                    if let Ok(v) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
                        r.headers_mut()
                            .insert("lambda-extension-event-identifier", v);
                    }
                    r
                }
                Err(r) => r.response(),
            }
        }
        (&Method::POST, action @ ("init/error" | "exit/error")) => {
            let during_init = action == "init/error";
            let Some(id) = header(&req, ID_HEADER) else {
                return crate::refuse(
                    req,
                    error(
                        StatusCode::FORBIDDEN,
                        "Extension.MissingExtensionIdentifier",
                        "Missing Lambda-Extension-Identifier header",
                    ),
                )
                .await;
            };
            let error_type = header(&req, ERROR_TYPE_HEADER).unwrap_or_else(|| "Unknown".into());
            let body = match read_body(req.into_body(), MAX_ERROR_BYTES).await {
                Read::Body(b) => b,
                _ => Bytes::new(),
            };
            if channel.extension_error(&id, during_init, error_type, body) {
                accepted()
            } else {
                unknown_identifier()
            }
        }
        _ => crate::refuse(req, crate::not_found()).await,
    }
}
