//! A minimal streaming custom runtime (`bootstrap`) for benchmarks: answers
//! every invocation in the Runtime API's streaming mode, writing one chunk
//! at once (the wall-clock time of that write, in nanoseconds since the
//! epoch) and ending the response after a pause (the event's number of
//! milliseconds, default 20). The harness compares the written time with
//! the chunk's arrival: the platform's time to first byte. No dependencies
//! beyond std.

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[path = "../runtime_wire.rs"]
mod runtime_wire;
use runtime_wire::read_response;

fn main() -> std::io::Result<()> {
    let api = std::env::var("AWS_LAMBDA_RUNTIME_API").unwrap_or_else(|_| "127.0.0.1:9001".into());
    let stream = TcpStream::connect(&api)?;
    stream.set_nodelay(true)?;
    let mut w = stream.try_clone()?;
    let mut r = BufReader::new(stream);
    let mut event = Vec::new();
    let mut scratch = Vec::new();
    loop {
        write!(
            w,
            "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: {api}\r\n\r\n"
        )?;
        let (status, id) = read_response(&mut r, &mut event)?;
        let Some(id) = id.filter(|_| status == 200) else {
            std::process::exit(1);
        };
        let pause_ms: u64 = std::str::from_utf8(&event)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(20);
        write!(
            w,
            "POST /2018-06-01/runtime/invocation/{id}/response HTTP/1.1\r\nHost: {api}\r\n\
             Lambda-Runtime-Function-Response-Mode: streaming\r\nContent-Type: text/plain\r\n\
             Transfer-Encoding: chunked\r\n\r\n"
        )?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
            .to_string();
        write!(w, "{:x}\r\n{now}\r\n", now.len())?;
        std::thread::sleep(Duration::from_millis(pause_ms));
        w.write_all(b"4\r\ndone\r\n0\r\n\r\n")?;
        read_response(&mut r, &mut scratch)?;
    }
}
