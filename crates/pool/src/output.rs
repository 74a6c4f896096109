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
}

/// The longest line kept whole; longer output is split (Lambda splits at 256 KB).
const MAX_LINE: usize = 256 * 1024;

impl Output {
    pub fn new(pipe: Receiver) -> Self {
        Self {
            pipe,
            partial: Vec::new(),
            closed: false,
        }
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
                        target.emit(text, tail.as_deref_mut());
                    }
                    if self.partial.len() > MAX_LINE {
                        let line: Vec<u8> = self.partial.drain(..MAX_LINE).collect();
                        target.emit(
                            String::from_utf8_lossy(&line).into_owned(),
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
            target.emit(text, tail);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_bytes_on_char_boundaries() {
        let mut t = Tail::new(10);
        t.push("hello");
        t.push("wörld!");
        let s = t.finish();
        assert!(s.len() <= 10, "{s:?}");
        assert!(s.ends_with("wörld!\n"));
        let mut t = Tail::new(4096);
        t.push("START");
        t.push("END");
        assert_eq!(t.finish(), "START\nEND\n");
    }
}
