//! The Lambda Runtime API (2018-06-01) of one execution environment.
//!
//! A [`Channel`] joins the platform and the runtime process of one environment.
//! The platform [`submit`](Channel::submit)s an [`Invocation`] and awaits its
//! [`Reply`]; the runtime fetches it with `GET /runtime/invocation/next` and
//! answers with `POST .../response` or `.../error`. [`serve`] runs the HTTP side
//! on a listener that only this environment can reach.
//!
//! Each invocation carries its own reply channel, so an answer can only ever
//! reach the caller of the invocation it names.
//!
//! A runtime may stream its answer (`Lambda-Runtime-Function-Response-Mode:
//! streaming`, a chunked body): the caller then gets a [`Reply::Stream`] as
//! soon as the response begins, whose chunks arrive as the runtime writes
//! them, at Lambda's bandwidth once past the uncapped first bytes, and whose
//! [`StreamEnd`] reports an error the runtime sent as trailers.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::{Notify, oneshot};

mod stream;
pub use stream::{
    MAX_STREAM_BYTES, ResponseStream, STREAM_BYTES_PER_SECOND, STREAM_UNCAPPED_BYTES, StreamEnd,
    StreamEnded, StreamLimits,
};

/// The largest response a function may return (6 MB plus Lambda's 100 bytes of slack).
pub const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024 + 100;
/// The largest error document or init error accepted.
const MAX_ERROR_BYTES: usize = 1024 * 1024;

/// One invocation handed to the runtime.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub request_id: String,
    pub payload: Bytes,
    /// How long the function may run once it has the invocation; the
    /// deadline it sees is set when `/next` hands the invocation over.
    pub timeout: std::time::Duration,
    /// The ARN the caller used, qualified or not.
    pub invoked_arn: String,
    /// X-Ray trace header (`Root=1-...;Parent=...;Sampled=0`).
    pub trace_id: String,
    pub client_context: Option<String>,
    pub cognito_identity: Option<String>,
}

/// What the runtime answered.
#[derive(Debug, PartialEq)]
pub enum Reply {
    /// `POST /response`: the handler's result, byte for byte.
    Response(Bytes),
    /// `POST /response` in streaming mode: the response has begun; its
    /// chunks and its end follow on the stream.
    Stream(ResponseStream),
    /// `POST /error` (or `/init/error` during a cold start): an error document
    /// and the `Lambda-Runtime-Function-Error-Type` header, if any.
    Error {
        error_type: Option<String>,
        body: Bytes,
    },
    /// The response exceeded [`MAX_RESPONSE_BYTES`].
    ResponseTooLarge,
    /// The runtime asked for the next invocation without answering this one.
    Abandoned,
}

/// An initialisation failure reported through `POST /runtime/init/error`.
#[derive(Debug, Clone, PartialEq)]
pub struct InitError {
    pub error_type: Option<String>,
    pub body: Bytes,
}

/// Where the runtime is in its life, as the Runtime API sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Started, has not asked for work yet.
    Init,
    /// Waiting in `/next` (or about to call it).
    Ready,
    /// Working on an invocation.
    Busy,
}

/// The moment the runtime took an invocation from `/next`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandedOut {
    /// The absolute deadline the runtime was given (epoch ms).
    pub deadline_ms: i64,
    /// When `/next` handed it over: where Lambda's `Duration` starts.
    pub at: Instant,
}

/// The runtime's answer and when it arrived: where `Duration` ends. Both
/// instants are taken by the Runtime API itself, so they do not depend on
/// when the platform's task that waits for them gets to run.
#[derive(Debug, PartialEq)]
pub struct Answer {
    pub reply: Reply,
    pub at: Instant,
}

impl Answer {
    fn now(reply: Reply) -> Self {
        Self {
            reply,
            at: Instant::now(),
        }
    }
}

/// The platform's side of one submitted invocation.
pub struct Submitted {
    /// Yields when the runtime takes the invocation; dropped unanswered if
    /// the runtime never does.
    pub started: oneshot::Receiver<HandedOut>,
    /// Yields the runtime's answer.
    pub reply: oneshot::Receiver<Answer>,
}

struct Queued {
    inv: Invocation,
    started: oneshot::Sender<HandedOut>,
    reply: oneshot::Sender<Answer>,
}

struct State {
    queued: Option<Queued>,
    in_flight: Option<(String, oneshot::Sender<Answer>)>,
    phase: Phase,
    /// When the runtime first called `/next`: the end of its init phase.
    init_done_at: Option<Instant>,
    init_error: Option<InitError>,
}

/// The meeting point of the platform and one runtime.
pub struct Channel {
    state: Mutex<State>,
    /// Wakes the `/next` handler when an invocation is queued.
    work: Notify,
    /// Wakes whoever waits for the end of init (first `/next` or init error).
    init: Notify,
    /// What a streamed response is held to.
    stream_limits: StreamLimits,
}

impl Default for Channel {
    fn default() -> Self {
        Self::new()
    }
}

/// Why an invocation could not be handed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmitError {
    /// Another invocation is queued or in flight: an environment serves one at a time.
    Busy,
}

impl Channel {
    pub fn new() -> Self {
        Self {
            state: Mutex::new(State {
                queued: None,
                in_flight: None,
                phase: Phase::Init,
                init_done_at: None,
                init_error: None,
            }),
            work: Notify::new(),
            init: Notify::new(),
            stream_limits: StreamLimits::LAMBDA,
        }
    }

    /// A channel whose streamed responses are held to `limits` instead of
    /// Lambda's.
    pub fn with_stream_limits(limits: StreamLimits) -> Self {
        Self {
            stream_limits: limits,
            ..Self::new()
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock would be a bug in this module; keep
        // serving rather than poisoning every later call.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues an invocation for the runtime's next `/next`; the receiver yields
    /// the runtime's answer. If the runtime dies first, the receiver yields an
    /// error (the sender is dropped) and the platform reports how it died.
    pub fn submit(&self, inv: Invocation) -> Result<Submitted, SubmitError> {
        let (tx, rx) = oneshot::channel();
        let (started_tx, started_rx) = oneshot::channel();
        let mut st = self.lock();
        if st.queued.is_some() || st.in_flight.is_some() {
            return Err(SubmitError::Busy);
        }
        if let Some(err) = &st.init_error {
            // Init failed: the error is the answer to the first invocation.
            let _ = tx.send(Answer::now(Reply::Error {
                error_type: err.error_type.clone(),
                body: err.body.clone(),
            }));
            return Ok(Submitted {
                started: started_rx,
                reply: rx,
            });
        }
        st.queued = Some(Queued {
            inv,
            started: started_tx,
            reply: tx,
        });
        drop(st);
        self.work.notify_one();
        Ok(Submitted {
            started: started_rx,
            reply: rx,
        })
    }

    pub fn phase(&self) -> Phase {
        self.lock().phase
    }

    /// When init ended (the runtime's first `/next`), if it has.
    pub fn init_done_at(&self) -> Option<Instant> {
        self.lock().init_done_at
    }

    pub fn init_error(&self) -> Option<InitError> {
        self.lock().init_error.clone()
    }

    /// Resolves once the runtime has finished init: `Ok` on its first `/next`,
    /// `Err` with the error it posted to `/init/error`.
    pub async fn initialized(&self) -> Result<(), InitError> {
        loop {
            let notified = self.init.notified();
            {
                let st = self.lock();
                if let Some(e) = &st.init_error {
                    return Err(e.clone());
                }
                if st.init_done_at.is_some() {
                    return Ok(());
                }
            }
            notified.await;
        }
    }

    /// Drops any queued or in-flight invocation (the environment is going
    /// away); their callers see the reply channel close.
    pub fn abandon(&self) {
        let mut st = self.lock();
        st.queued = None;
        st.in_flight = None;
    }

    /// `GET /next`: waits for work and takes it; returns the invocation and
    /// its absolute deadline.
    async fn next(&self) -> (Invocation, i64) {
        {
            let mut st = self.lock();
            if st.init_done_at.is_none() {
                st.init_done_at = Some(Instant::now());
                drop(st);
                self.init.notify_waiters();
                st = self.lock();
            }
            if let Some((_, tx)) = st.in_flight.take() {
                let _ = tx.send(Answer::now(Reply::Abandoned));
            }
            st.phase = Phase::Ready;
        }
        loop {
            let notified = self.work.notified();
            {
                let mut st = self.lock();
                if let Some(q) = st.queued.take() {
                    st.in_flight = Some((q.inv.request_id.clone(), q.reply));
                    st.phase = Phase::Busy;
                    let now_ms = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_millis() as i64)
                        .unwrap_or_default();
                    let deadline = now_ms + q.inv.timeout.as_millis() as i64;
                    let _ = q.started.send(HandedOut {
                        deadline_ms: deadline,
                        at: Instant::now(),
                    });
                    return (q.inv, deadline);
                }
            }
            notified.await;
        }
    }

    /// Completes the in-flight invocation `id` with `reply`; `false` when `id`
    /// is not the invocation in flight.
    fn complete(&self, id: &str, reply: Reply) -> bool {
        let mut st = self.lock();
        match &st.in_flight {
            Some((current, _)) if current == id => {}
            _ => return false,
        }
        if let Some((_, tx)) = st.in_flight.take() {
            let _ = tx.send(Answer::now(reply));
        }
        st.phase = Phase::Ready;
        true
    }

    fn in_flight_is(&self, id: &str) -> bool {
        matches!(&self.lock().in_flight, Some((current, _)) if current == id)
    }

    fn record_init_error(&self, err: InitError) {
        let mut st = self.lock();
        if st.init_error.is_none() {
            st.init_error = Some(err.clone());
        }
        if let Some(q) = st.queued.take() {
            let _ = q.reply.send(Answer::now(Reply::Error {
                error_type: err.error_type,
                body: err.body,
            }));
        }
        drop(st);
        self.init.notify_waiters();
    }
}

type Body = Full<Bytes>;

fn json(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn accepted() -> Response<Body> {
    json(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
}

fn invalid_request_id() -> Response<Body> {
    json(
        StatusCode::BAD_REQUEST,
        r#"{"errorMessage":"Invalid request ID","errorType":"InvalidRequestID"}"#,
    )
}

fn not_found() -> Response<Body> {
    json(
        StatusCode::NOT_FOUND,
        r#"{"errorMessage":"Unknown Runtime API path","errorType":"InvalidPath"}"#,
    )
}

fn next_response((inv, deadline_ms): (Invocation, i64)) -> Response<Body> {
    let mut r = Response::new(Full::new(inv.payload));
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let mut put = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    };
    put("lambda-runtime-aws-request-id", &inv.request_id);
    put("lambda-runtime-deadline-ms", &deadline_ms.to_string());
    put("lambda-runtime-invoked-function-arn", &inv.invoked_arn);
    put("lambda-runtime-trace-id", &inv.trace_id);
    if let Some(c) = &inv.client_context {
        put("lambda-runtime-client-context", c);
    }
    if let Some(c) = &inv.cognito_identity {
        put("lambda-runtime-cognito-identity", c);
    }
    r
}

fn error_type_header(req: &Request<Incoming>) -> Option<String> {
    req.headers()
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

enum Read {
    Body(Bytes),
    TooLarge,
    Failed,
}

async fn read_body(body: Incoming, limit: usize) -> Read {
    match Limited::new(body, limit).collect().await {
        Ok(b) => Read::Body(b.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Read::TooLarge
        }
        Err(_) => Read::Failed,
    }
}

const PREFIX: &str = "/2018-06-01/runtime/";

/// Answers one Runtime API request.
pub async fn handle(channel: &Channel, req: Request<Incoming>) -> Response<Body> {
    let Some(rest) = req.uri().path().strip_prefix(PREFIX) else {
        return not_found();
    };
    let rest = rest.to_owned();
    match (req.method(), rest.as_str()) {
        (&Method::GET, "invocation/next") => next_response(channel.next().await),
        (&Method::POST, "init/error") => {
            let error_type = error_type_header(&req);
            let body = match read_body(req.into_body(), MAX_ERROR_BYTES).await {
                Read::Body(b) => b,
                _ => Bytes::new(),
            };
            channel.record_init_error(InitError { error_type, body });
            accepted()
        }
        (&Method::POST, path) => {
            let Some(rest) = path.strip_prefix("invocation/") else {
                return refuse(req, not_found()).await;
            };
            let Some((id, action)) = rest.split_once('/') else {
                return refuse(req, not_found()).await;
            };
            let id = id.to_owned();
            match action {
                "response" => {
                    if !channel.in_flight_is(&id) {
                        return refuse(req, invalid_request_id()).await;
                    }
                    match req.headers().get(stream::MODE_HEADER).map(|v| v.as_bytes()) {
                        None => {}
                        Some(b"streaming") => return stream::receive(channel, &id, req).await,
                        Some(_) => {
                            let doc = Bytes::from_static(
                                br#"{"errorMessage":"Invalid Lambda-Runtime-Function-Response-Mode header","errorType":"Runtime.InvalidResponseModeHeader"}"#,
                            );
                            channel.complete(
                                &id,
                                Reply::Error {
                                    error_type: Some("Runtime.InvalidResponseModeHeader".into()),
                                    body: doc,
                                },
                            );
                            return refuse(
                                req,
                                json(
                                    StatusCode::BAD_REQUEST,
                                    r#"{"errorMessage":"Invalid Lambda-Runtime-Function-Response-Mode header","errorType":"Runtime.InvalidResponseModeHeader"}"#,
                                ),
                            )
                            .await;
                        }
                    }
                    match read_body(req.into_body(), MAX_RESPONSE_BYTES).await {
                        Read::Body(b) => {
                            if channel.complete(&id, Reply::Response(b)) {
                                accepted()
                            } else {
                                invalid_request_id()
                            }
                        }
                        Read::TooLarge => {
                            channel.complete(&id, Reply::ResponseTooLarge);
                            json(
                                StatusCode::PAYLOAD_TOO_LARGE,
                                r#"{"errorMessage":"Exceeded maximum allowed payload size (6291556 bytes).","errorType":"RequestEntityTooLarge"}"#,
                            )
                        }
                        Read::Failed => json(
                            StatusCode::BAD_REQUEST,
                            r#"{"errorMessage":"Could not read the response body","errorType":"InvalidRequest"}"#,
                        ),
                    }
                }
                "error" => {
                    if !channel.in_flight_is(&id) {
                        return refuse(req, invalid_request_id()).await;
                    }
                    let error_type = error_type_header(&req);
                    let body = match read_body(req.into_body(), MAX_ERROR_BYTES).await {
                        Read::Body(b) => b,
                        _ => Bytes::new(),
                    };
                    if channel.complete(&id, Reply::Error { error_type, body }) {
                        accepted()
                    } else {
                        invalid_request_id()
                    }
                }
                _ => refuse(req, not_found()).await,
            }
        }
        _ => refuse(req, not_found()).await,
    }
}

/// Answers a request it refuses only after reading its body (up to the
/// response limit), so the runtime's keep-alive connection stays usable: a
/// body left unread closes the connection, and the runtime's next request on
/// it fails.
async fn refuse(req: Request<Incoming>, answer: Response<Body>) -> Response<Body> {
    let _ = read_body(req.into_body(), MAX_RESPONSE_BYTES).await;
    answer
}

/// Serves the Runtime API for `channel` on `listener`. Dropping (or aborting)
/// the future closes every connection it accepted, including a `/next` that is
/// still waiting for work. Each connection is served only if `admit(local,
/// peer)` says it comes from the environment itself; others are closed
/// unanswered.
pub async fn serve(
    listener: tokio::net::TcpListener,
    channel: Arc<Channel>,
    admit: impl Fn(std::net::SocketAddr, std::net::SocketAddr) -> bool + Send + 'static,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let admitted = stream.local_addr().is_ok_and(|local| admit(local, peer));
                    if !admitted {
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    connections.spawn(serve_connection(stream, channel.clone()));
                }
                Err(e) => {
                    tracing::debug!(error = %e, "runtime API accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection(stream: tokio::net::TcpStream, channel: Arc<Channel>) {
    let svc = hyper::service::service_fn(move |req| {
        let channel = channel.clone();
        async move { Ok::<_, Infallible>(handle(&channel, req).await) }
    });
    let io = hyper_util::rt::TokioIo::new(stream);
    if let Err(e) = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(io, svc)
        .await
    {
        tracing::trace!(error = %e, "runtime API connection ended");
    }
}

#[cfg(test)]
mod tests;
