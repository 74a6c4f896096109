//! One execution environment: a sandboxed runtime process, its Runtime API,
//! its output, and the run of one invocation inside it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use runtime_api::{Channel, Invocation, Reply, ResponseStream, StreamEnd};
use sandbox::{ExitStatus, Process};

use crate::FunctionSpec;
use crate::output::{LogTarget, Output, Tail};

/// Where an environment is in its life. Legal moves are in [`EnvState::next`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvState {
    /// Launched; the runtime has not asked for work yet.
    Starting,
    /// Warm, waiting for an invocation.
    Idle,
    /// Running an invocation.
    Busy,
    /// Being stopped; never used again.
    Draining,
    /// Its process has ended.
    Dead,
}

impl EnvState {
    /// The state after `event`, or `None` if the move is not allowed.
    pub fn next(self, event: EnvEvent) -> Option<EnvState> {
        use EnvEvent as E;
        use EnvState as S;
        match (self, event) {
            (S::Starting | S::Idle, E::Acquired) => Some(S::Busy),
            (S::Busy, E::Released) => Some(S::Idle),
            (S::Starting | S::Idle | S::Busy, E::Retired) => Some(S::Draining),
            (_, E::Exited) => Some(S::Dead),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvEvent {
    Acquired,
    Released,
    Retired,
    Exited,
}

/// How one invocation ended inside the environment.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The handler's result.
    Response(Bytes),
    /// The runtime reported a function error.
    FunctionError {
        error_type: Option<String>,
        body: Bytes,
    },
    /// Initialisation failed (`/runtime/init/error`).
    InitError {
        error_type: Option<String>,
        body: Bytes,
    },
    /// The function ran past its timeout; the environment was killed.
    Timeout,
    /// The runtime process ended (during init or the invocation).
    Exited(ExitStatus),
    /// The environment went over its memory limit and the kernel killed it.
    OutOfMemory(ExitStatus),
    /// The response exceeded the 6 MB limit.
    ResponseTooLarge,
    /// The runtime asked for more work without answering.
    Abandoned,
    /// The runtime streamed its response to a streaming caller (the chunks
    /// went to its [`StreamSink`]); how the stream ended.
    Streamed(StreamEnd),
}

/// What a streaming caller receives while the function runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// The runtime began its response, with the content type it declared.
    Began { content_type: Option<String> },
    /// A part of the response, as the runtime wrote it.
    Chunk(Bytes),
}

/// Where a streaming caller receives the response. If the receiver goes
/// away (the client left), the rest of the response is discarded and the
/// invocation runs to its end.
pub type StreamSink = tokio::sync::mpsc::Sender<Frame>;

/// How the runtime's first answer came: whole, or as the start of a stream.
enum Answered {
    Whole(Outcome),
    Stream(ResponseStream),
}

/// What an invocation produced, with the figures for the REPORT line.
#[derive(Debug, Clone, PartialEq)]
pub struct Completed {
    pub outcome: Outcome,
    /// Set on a cold start: from launch to the runtime's first `/next`.
    pub init_duration: Option<Duration>,
    /// From hand-over to the runtime until its answer.
    pub duration: Duration,
    pub max_memory_mb: u64,
    /// The last 4 KB of the invocation's log, when asked for.
    pub log_tail: Option<String>,
}

impl Completed {
    /// Whether the environment can serve again.
    pub fn env_survives(&self) -> bool {
        matches!(
            self.outcome,
            Outcome::Response(_)
                | Outcome::FunctionError { .. }
                | Outcome::ResponseTooLarge
                | Outcome::Streamed(
                    StreamEnd::Complete | StreamEnd::Error { .. } | StreamEnd::TooLarge
                )
        )
    }
}

pub struct Environment {
    pub(crate) id: String,
    pub(crate) spec: Arc<FunctionSpec>,
    pub(crate) channel: Arc<Channel>,
    pub(crate) process: Process,
    pub(crate) api_task: tokio::task::AbortHandle,
    pub(crate) output: tokio::sync::Mutex<Output>,
    pub(crate) log: LogTarget,
    /// When the runtime process started (after the sandbox was set up).
    pub(crate) launched_at: Instant,
    /// How long setting up the sandbox took.
    pub(crate) setup: Duration,
    pub(crate) state: Mutex<EnvState>,
    pub(crate) last_used: Mutex<Instant>,
    pub(crate) invocations: AtomicU64,
    pub(crate) frozen: std::sync::atomic::AtomicBool,
    /// The provisioned concurrency configuration (qualifier) this
    /// environment was initialised for; such environments are not reaped.
    pub(crate) provisioned: Mutex<Option<String>>,
    /// The memory promised to it; given back once it is stopped.
    pub(crate) reservation: Mutex<Option<crate::capacity::Reservation>>,
}

/// `2.00`, as Lambda prints a timeout in seconds.
fn seconds(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64())
}

fn millis(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

impl Environment {
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn spec(&self) -> &Arc<FunctionSpec> {
        &self.spec
    }

    pub fn state(&self) -> EnvState {
        *self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies a lifecycle event; `false` if it is not a legal move now.
    pub(crate) fn transition(&self, event: EnvEvent) -> bool {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match st.next(event) {
            Some(n) => {
                *st = n;
                true
            }
            None => false,
        }
    }

    pub fn log_stream(&self) -> &str {
        &self.log.stream
    }

    pub(crate) fn provisioned_for(&self) -> Option<String> {
        self.provisioned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Waits until the runtime has finished its init (its first `/next`),
    /// logging its output meanwhile; for environments initialised ahead of
    /// demand. `Err` says why init failed.
    pub(crate) async fn initialize(&self, budget: Duration) -> Result<(), String> {
        let mut output = self.output.lock().await;
        output.begin_invocation();
        let log = &self.log;
        let deadline = tokio::time::Instant::now() + budget;
        let result = loop {
            tokio::select! {
                biased;
                r = self.channel.initialized() => break r.map_err(|e| {
                    e.error_type.unwrap_or_else(|| "Runtime.Unknown".into())
                }),
                r = self.process.wait() => {
                    break Err(match r {
                        Ok(st) => format!("Runtime.ExitError: {}", crate::exit_reason(st)),
                        Err(e) => format!("Runtime.ExitError: {e}"),
                    });
                }
                _ = output.readable() => output.drain(log, None),
                _ = tokio::time::sleep_until(deadline) => break Err("Sandbox.Timedout".into()),
            }
        };
        output.drain(log, None);
        if let Some(t) = output.truncated() {
            log.emit(truncation_line(None, t), None);
        }
        if let Err(why) = &result {
            output.flush_partial(log, None);
            log.emit(format!("INIT_REPORT Init Duration: {} ms\tPhase: init\tStatus: error\tError Type: {why}", millis(self.launched_at.elapsed())), None);
        } else {
            // Init ran unthrottled, as Lambda boosts it.
            self.process.limit_cpu();
        }
        result
    }

    /// Stops the environment: abandons any invocation, kills its processes,
    /// reaps them and closes its Runtime API.
    pub(crate) async fn stop(&self) {
        self.transition(EnvEvent::Retired);
        self.thaw();
        self.channel.abandon();
        self.process.kill();
        let _ = self.process.wait().await;
        self.transition(EnvEvent::Exited);
        self.api_task.abort();
        self.reservation
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
    }

    fn report(&self, request_id: &str, c: &Completed, status: Option<&str>) -> String {
        let billed = c.duration.as_nanos().div_ceil(1_000_000).max(1);
        let mut line = format!(
            "REPORT RequestId: {request_id}\tDuration: {} ms\tBilled Duration: {billed} ms\tMemory Size: {} MB\tMax Memory Used: {} MB",
            millis(c.duration),
            self.spec.memory_mb,
            c.max_memory_mb,
        );
        if let Some(init) = c.init_duration {
            line.push_str(&format!("\tInit Duration: {} ms", millis(init)));
        }
        if let Some(s) = status {
            line.push('\t');
            line.push_str(s);
        }
        line
    }

    fn peak_mb(&self) -> u64 {
        self.process
            .memory_peak_bytes()
            .map(|b| b.div_ceil(1024 * 1024))
            .unwrap_or(0)
    }

    /// Whether the environment is frozen (idle, costing no CPU).
    pub(crate) fn frozen(&self) -> bool {
        self.frozen.load(Ordering::Acquire)
    }

    pub(crate) fn freeze(&self) {
        if !self.frozen.swap(true, Ordering::AcqRel) && !self.process.set_frozen(true) {
            self.frozen.store(false, Ordering::Release);
        }
    }

    pub(crate) fn thaw(&self) {
        if self.frozen.swap(false, Ordering::AcqRel) {
            self.process.set_frozen(false);
        }
    }

    /// Runs one invocation to its end: waits until the runtime is ready for
    /// work (its init, on a cold start), writes START, hands the invocation
    /// over, collects its output as log lines, enforces the timeout, and
    /// writes END and REPORT. `cold` means this invocation started the
    /// environment.
    ///
    /// START is written before the invocation is handed over, so nothing the
    /// handler prints can be logged ahead of it; what the runtime printed
    /// before (its init) is drained first. `Duration` runs from the hand-out
    /// to the answer, both timed by the Runtime API as they happen.
    ///
    /// A streamed answer goes to `sink` as it is written (ending as
    /// [`Outcome::Streamed`]); without a sink it is collected into a whole
    /// response, within the buffered limit, as Lambda's `Invoke` does.
    pub async fn run(
        &self,
        inv: Invocation,
        cold: bool,
        want_tail: bool,
        sink: Option<&StreamSink>,
    ) -> Completed {
        let request_id = inv.request_id.clone();
        let timeout = inv.timeout;
        self.invocations.fetch_add(1, Ordering::Relaxed);
        let mut tail = want_tail.then(|| Tail::new(model::limits::LOG_TAIL_BYTES));
        let mut output = self.output.lock().await;
        output.begin_invocation();
        let log = &self.log;

        // Phase 1: until the runtime asks for work (its first `/next`), or
        // reports an init error, or ends; bounded by the init limit plus the
        // timeout. On a warm environment this is immediate.
        let init_budget = Duration::from_secs(u64::from(model::limits::INIT_TIMEOUT_S)) + timeout;
        let init_deadline = tokio::time::Instant::now() + init_budget;
        let early: Option<Outcome> = loop {
            tokio::select! {
                biased;
                r = self.channel.initialized() => match r {
                    Ok(()) => break None,
                    Err(e) => break Some(Outcome::InitError { error_type: e.error_type, body: e.body }),
                },
                r = self.process.wait() => {
                    output.drain(log, tail.as_mut());
                    // An init error posted just before exiting wins.
                    if let Some(e) = self.channel.init_error() {
                        break Some(Outcome::InitError { error_type: e.error_type, body: e.body });
                    }
                    break Some(Outcome::Exited(r.unwrap_or(ExitStatus::Signaled(9))));
                }
                _ = output.readable() => output.drain(log, tail.as_mut()),
                _ = tokio::time::sleep_until(init_deadline) => break Some(Outcome::Timeout),
            }
        };
        let init_duration = if cold {
            self.channel
                .init_done_at()
                .map(|t| t.saturating_duration_since(self.launched_at))
                .or_else(|| Some(self.launched_at.elapsed()))
        } else {
            None
        };
        // Everything printed so far belongs to init (or to the invocation
        // before): it goes ahead of START.
        output.drain(log, tail.as_mut());
        if cold && early.is_none() {
            // Init ran unthrottled, as Lambda boosts it; from now on the
            // function gets the CPU share of its memory size.
            self.process.limit_cpu();
        }
        let version = &self.spec.version;
        log.emit(
            format!("START RequestId: {request_id} Version: {version}"),
            tail.as_mut(),
        );
        let began = Instant::now();

        // Phase 2: hand the invocation over, and wait for its answer.
        let mut handed: Option<Instant> = None;
        let mut answered: Option<Instant> = None;
        let outcome = match early {
            Some(o) => o,
            None => match self.channel.submit(inv) {
                Err(_) => Outcome::Abandoned,
                Ok(submitted) => {
                    let mut started = submitted.started;
                    let mut reply = submitted.reply;
                    let mut started_done = false;
                    let deadline = tokio::time::Instant::now() + timeout;
                    let first = loop {
                        tokio::select! {
                            biased;
                            r = &mut reply => break match r {
                                Ok(answer) => {
                                    answered = Some(answer.at);
                                    reply_outcome(answer.reply)
                                }
                                Err(_) => Answered::Whole(Outcome::Exited(self.process.wait().await.unwrap_or(ExitStatus::Signaled(9)))),
                            },
                            h = &mut started, if !started_done => {
                                started_done = true;
                                handed = h.ok().map(|h| h.at);
                            }
                            r = self.process.wait() => {
                                if let Ok(answer) = reply.try_recv() {
                                    answered = Some(answer.at);
                                    break reply_outcome(answer.reply);
                                }
                                break Answered::Whole(Outcome::Exited(r.unwrap_or(ExitStatus::Signaled(9))));
                            }
                            _ = output.readable() => output.drain(log, tail.as_mut()),
                            _ = tokio::time::sleep_until(deadline) => break Answered::Whole(Outcome::Timeout),
                        }
                    };
                    if !started_done && let Ok(h) = started.try_recv() {
                        handed = Some(h.at);
                    }
                    match first {
                        Answered::Whole(o) => o,
                        Answered::Stream(stream) => {
                            let (o, at) = self
                                .stream_reply(stream, sink, deadline, &mut output, tail.as_mut())
                                .await;
                            answered = at;
                            o
                        }
                    }
                }
            },
        };
        let duration = match (handed, answered) {
            (Some(h), Some(a)) => a.saturating_duration_since(h),
            (Some(h), None) => h.elapsed(),
            (None, _) => began.elapsed(),
        };
        let max_memory_mb = self.peak_mb();
        let outcome = match outcome {
            // A SIGKILL the platform did not send, in an environment where
            // the kernel has OOM-killed: the memory limit ended it. (The
            // count is read only here, not on every invocation.)
            Outcome::Exited(st @ ExitStatus::Signaled(9)) if self.process.oom_kills() > 0 => {
                Outcome::OutOfMemory(st)
            }
            other => other,
        };
        if matches!(outcome, Outcome::Timeout) {
            self.process.kill();
        }
        output.drain(log, tail.as_mut());
        if !matches!(
            outcome,
            Outcome::Response(_)
                | Outcome::FunctionError { .. }
                | Outcome::ResponseTooLarge
                | Outcome::Streamed(
                    StreamEnd::Complete | StreamEnd::Error { .. } | StreamEnd::TooLarge
                )
        ) {
            output.flush_partial(log, tail.as_mut());
        }
        if let Some(t) = output.truncated() {
            log.emit(truncation_line(Some(&request_id), t), tail.as_mut());
        }
        let mut done = Completed {
            outcome,
            init_duration,
            duration,
            max_memory_mb,
            log_tail: None,
        };
        let status = match &done.outcome {
            Outcome::Timeout => {
                let ts = model::time_fmt::iso_millis_z(model::time_fmt::now_ms());
                log.emit(
                    format!(
                        "{ts} {request_id} Task timed out after {} seconds",
                        seconds(timeout)
                    ),
                    tail.as_mut(),
                );
                Some("Status: timeout".to_owned())
            }
            Outcome::Exited(st) => {
                let reason = exit_reason(*st);
                log.emit(
                    format!("RequestId: {request_id} Error: {reason}\nRuntime.ExitError"),
                    tail.as_mut(),
                );
                Some("Status: error\tError Type: Runtime.ExitError".to_owned())
            }
            Outcome::OutOfMemory(st) => {
                let reason = exit_reason(*st);
                log.emit(
                    format!("RequestId: {request_id} Error: {reason}\nRuntime.OutOfMemory"),
                    tail.as_mut(),
                );
                Some("Status: error\tError Type: Runtime.OutOfMemory".to_owned())
            }
            Outcome::InitError { error_type, .. } => Some(format!(
                "Status: error\tError Type: {}",
                error_type.as_deref().unwrap_or("Runtime.Unknown")
            )),
            _ => None,
        };
        log.emit(format!("END RequestId: {request_id}"), tail.as_mut());
        log.emit(
            self.report(&request_id, &done, status.as_deref()),
            tail.as_mut(),
        );
        done.log_tail = tail.map(Tail::finish);
        done
    }
}

/// The platform's line saying that output went over the invocation's log limit.
fn truncation_line(request_id: Option<&str>, t: crate::output::Truncated) -> String {
    let what = match request_id {
        Some(id) => format!("RequestId: {id} Warning: this invocation's"),
        None => "Warning: the init phase's".to_owned(),
    };
    format!(
        "{what} log output reached the limit of {} bytes: {} more lines ({} bytes) were dropped",
        t.limit, t.lines, t.bytes
    )
}

fn reply_outcome(r: Reply) -> Answered {
    Answered::Whole(match r {
        Reply::Response(b) => Outcome::Response(b),
        Reply::Stream(s) => return Answered::Stream(s),
        Reply::Error { error_type, body } => Outcome::FunctionError { error_type, body },
        Reply::ResponseTooLarge => Outcome::ResponseTooLarge,
        Reply::Abandoned => Outcome::Abandoned,
    })
}

/// A streamed response as a buffered caller sees it: collected whole
/// within the buffered limit.
struct Collected {
    body: BytesMut,
    too_large: bool,
}

impl Collected {
    fn push(&mut self, chunk: &[u8]) {
        if self.too_large || self.body.len() + chunk.len() > runtime_api::MAX_RESPONSE_BYTES {
            self.too_large = true;
            self.body.clear();
            return;
        }
        self.body.extend_from_slice(chunk);
    }

    fn outcome(self, end: StreamEnd) -> Outcome {
        match end {
            StreamEnd::Complete if self.too_large => Outcome::ResponseTooLarge,
            StreamEnd::Complete => Outcome::Response(self.body.freeze()),
            StreamEnd::Error { error_type, body } => Outcome::FunctionError {
                error_type: Some(error_type),
                body,
            },
            StreamEnd::TooLarge => Outcome::ResponseTooLarge,
            StreamEnd::Truncated => Outcome::Streamed(StreamEnd::Truncated),
        }
    }
}

/// Sends a frame to a streaming caller; a caller that left is forgotten
/// (`sink` becomes `None`), one that stops reading holds the stream only
/// until the deadline (`false`).
async fn forward(
    sink: &mut Option<&StreamSink>,
    frame: Frame,
    deadline: tokio::time::Instant,
) -> bool {
    if let Some(s) = *sink {
        match tokio::time::timeout_at(deadline, s.send(frame)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => *sink = None,
            Err(_) => return false,
        }
    }
    true
}

impl Environment {
    /// Passes a streamed response on as it arrives (to `sink`, or collected
    /// for a buffered caller) until it ends, the runtime dies or the
    /// deadline passes; logs output meanwhile. Returns the outcome and when
    /// the stream ended.
    async fn stream_reply(
        &self,
        stream: ResponseStream,
        sink: Option<&StreamSink>,
        deadline: tokio::time::Instant,
        output: &mut Output,
        mut tail: Option<&mut Tail>,
    ) -> (Outcome, Option<Instant>) {
        let log = &self.log;
        let ResponseStream {
            content_type,
            mut chunks,
            mut end,
        } = stream;
        // A streaming caller gets the chunks (until it leaves: then they are
        // discarded); a buffered caller gets them collected.
        let streaming = sink.is_some();
        let mut sink = sink;
        let mut collected = Collected {
            body: BytesMut::new(),
            too_large: false,
        };
        if !forward(&mut sink, Frame::Began { content_type }, deadline).await {
            return (Outcome::Timeout, None);
        }
        let mut open = true;
        loop {
            tokio::select! {
                biased;
                c = chunks.recv(), if open => match c {
                    Some(chunk) if streaming => {
                        if !forward(&mut sink, Frame::Chunk(chunk), deadline).await {
                            return (Outcome::Timeout, None);
                        }
                    }
                    Some(chunk) => collected.push(&chunk),
                    None => open = false,
                },
                e = &mut end, if !open => return match e {
                    Ok(ended) if streaming => (Outcome::Streamed(ended.end), Some(ended.at)),
                    Ok(ended) => (collected.outcome(ended.end), Some(ended.at)),
                    Err(_) => (
                        Outcome::Exited(self.process.wait().await.unwrap_or(ExitStatus::Signaled(9))),
                        None,
                    ),
                },
                r = self.process.wait() => {
                    return (Outcome::Exited(r.unwrap_or(ExitStatus::Signaled(9))), None);
                }
                _ = output.readable() => output.drain(log, tail.as_deref_mut()),
                _ = tokio::time::sleep_until(deadline) => return (Outcome::Timeout, None),
            }
        }
    }
}

/// Lambda's wording for how a runtime ended.
pub fn exit_reason(st: ExitStatus) -> String {
    match st {
        ExitStatus::Exited(0) => "Runtime exited without providing a reason".into(),
        other => format!("Runtime exited with error: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_moves() {
        use EnvEvent as E;
        use EnvState as S;
        assert_eq!(S::Starting.next(E::Acquired), Some(S::Busy));
        assert_eq!(S::Busy.next(E::Released), Some(S::Idle));
        assert_eq!(S::Idle.next(E::Acquired), Some(S::Busy));
        assert_eq!(S::Busy.next(E::Acquired), None, "one invocation at a time");
        assert_eq!(
            S::Draining.next(E::Acquired),
            None,
            "never reused once retired"
        );
        assert_eq!(S::Dead.next(E::Released), None);
        assert_eq!(S::Busy.next(E::Exited), Some(S::Dead));
    }

    #[test]
    fn exit_reasons() {
        assert_eq!(
            exit_reason(ExitStatus::Exited(0)),
            "Runtime exited without providing a reason"
        );
        assert_eq!(
            exit_reason(ExitStatus::Exited(1)),
            "Runtime exited with error: exit status 1"
        );
        assert_eq!(
            exit_reason(ExitStatus::Signaled(9)),
            "Runtime exited with error: signal: killed"
        );
    }
}
