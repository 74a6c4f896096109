//! An environment's stdout/stderr: split into log lines, attributed to the
//! invocation that is running, sent to the log sink, and (when asked) kept as
//! the invocation's tail for `X-Amz-Log-Result`.

use std::sync::Arc;

use logs::{LogEvent, LogSink};
use model::Scope;
use tokio::net::unix::pipe::Receiver;

/// Where an environment's lines go.
pub struct LogTarget {
    pub sink: LogSink,
    pub scope: Arc<Scope>,
    pub group: Arc<str>,
    pub stream: Arc<str>,
}

impl LogTarget {
    pub fn emit(&self, message: String, tail: Option<&mut Tail>) {
        if let Some(t) = tail {
            t.push(&message);
        }
        self.sink.push(LogEvent {
            scope: self.scope.clone(),
            group: self.group.clone(),
            stream: self.stream.clone(),
            timestamp_ms: model::time_fmt::now_ms(),
            message,
        });
    }
}

/// The last `limit` bytes of an invocation's log.
pub struct Tail {
    text: String,
    limit: usize,
}

impl Tail {
    pub fn new(limit: usize) -> Self {
        Self {
            text: String::new(),
            limit,
        }
    }

    pub fn push(&mut self, line: &str) {
        self.text.push_str(line);
        self.text.push('\n');
        if self.text.len() > self.limit * 2 {
            self.trim();
        }
    }

    fn trim(&mut self) {
        if self.text.len() > self.limit {
            let mut cut = self.text.len() - self.limit;
            while !self.text.is_char_boundary(cut) {
                cut += 1;
            }
            self.text.drain(..cut);
        }
    }

    pub fn finish(mut self) -> String {
        self.trim();
        self.text
    }
}

/// The read end of an environment's output pipe.
pub struct Output {
    pipe: Receiver,
    partial: Vec<u8>,
    /// Set when the pipe reached end of file (every writer is gone).
    closed: bool,
    budget: Budget,
}

/// Bytes of output one invocation may log (counted as the log store counts
/// them); lines beyond it are read and dropped.
struct Budget {
    limit: u64,
    used: u64,
    dropped_lines: u64,
    dropped_bytes: u64,
}

/// What an invocation's output lost to its budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncated {
    pub limit: u64,
    pub lines: u64,
    pub bytes: u64,
}

/// The longest line kept whole; longer output is split (Lambda splits at 256 KB).
const MAX_LINE: usize = 256 * 1024;

impl Output {
    /// `log_limit`: bytes of output one invocation may log.
    pub fn new(pipe: Receiver, log_limit: u64) -> Self {
        Self {
            pipe,
            partial: Vec::new(),
            closed: false,
            budget: Budget {
                limit: log_limit,
                used: 0,
                dropped_lines: 0,
                dropped_bytes: 0,
            },
        }
    }

    /// Starts counting a new invocation's output.
    pub fn begin_invocation(&mut self) {
        self.budget.used = 0;
        self.budget.dropped_lines = 0;
        self.budget.dropped_bytes = 0;
    }

    /// What this invocation's output lost to the budget, if anything.
    pub fn truncated(&self) -> Option<Truncated> {
        (self.budget.dropped_lines > 0).then_some(Truncated {
            limit: self.budget.limit,
            lines: self.budget.dropped_lines,
            bytes: self.budget.dropped_bytes,
        })
    }

    /// Logs one line of the function's output, within the budget.
    fn line(&mut self, text: String, target: &LogTarget, tail: Option<&mut Tail>) {
        let cost = logs::event_bytes(&text);
        if self.budget.used + cost > self.budget.limit {
            self.budget.dropped_lines += 1;
            self.budget.dropped_bytes += text.len() as u64;
            // Nothing more fits: later lines are dropped even when short.
            self.budget.used = self.budget.limit;
            return;
        }
        self.budget.used += cost;
        target.emit(text, tail);
    }

    /// Waits until there is output to read (or end of file).
    pub async fn readable(&self) -> std::io::Result<()> {
        if self.closed {
            return std::future::pending().await;
        }
        self.pipe.readable().await
    }

    /// Reads what is available now and emits every complete line.
    pub fn drain(&mut self, target: &LogTarget, mut tail: Option<&mut Tail>) {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match self.pipe.try_read(&mut buf) {
                Ok(0) => {
                    self.closed = true;
                    break;
                }
                Ok(n) => {
                    self.partial.extend_from_slice(&buf[..n]);
                    while let Some(pos) = self.partial.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = self.partial.drain(..=pos).collect();
                        let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
                        self.line(text, target, tail.as_deref_mut());
                    }
                    if self.partial.len() > MAX_LINE {
                        let line: Vec<u8> = self.partial.drain(..MAX_LINE).collect();
                        self.line(
                            String::from_utf8_lossy(&line).into_owned(),
                            target,
                            tail.as_deref_mut(),
                        );
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.closed = true;
                    break;
                }
            }
        }
    }

    /// Emits a trailing line that has no newline yet.
    pub fn flush_partial(&mut self, target: &LogTarget, tail: Option<&mut Tail>) {
        if !self.partial.is_empty() {
            let text = String::from_utf8_lossy(&self.partial).into_owned();
            self.partial.clear();
            self.line(text, target, tail);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_bytes_on_char_boundaries() {
        // "€" is three bytes: keeping 5 of "€€€\n" (10 bytes) would cut
        // inside the second one; the tail starts after it instead.
        let mut t = Tail::new(5);
        t.push("€€€");
        assert_eq!(t.finish(), "€\n");
        // Every cut through characters of two, three and four bytes: the
        // tail is the longest suffix of whole characters within the limit.
        let line = "aé€𝄞bé€𝄞";
        let full = format!("{line}\n{line}\n");
        for limit in 1..=full.len() {
            let mut t = Tail::new(limit);
            t.push(line);
            t.push(line);
            let got = t.finish();
            let want = (full.len() - limit..=full.len())
                .find(|&i| full.is_char_boundary(i))
                .map(|i| &full[i..])
                .unwrap();
            assert_eq!(got, want, "limit {limit}");
            assert!(
                got.len() <= limit && got.len() + 3 >= limit,
                "limit {limit}: {got:?}"
            );
        }
        let mut t = Tail::new(4096);
        t.push("START");
        t.push("END");
        assert_eq!(t.finish(), "START\nEND\n");
    }
}
