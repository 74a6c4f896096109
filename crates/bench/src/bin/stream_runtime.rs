//! A minimal streaming custom runtime (`bootstrap`) for benchmarks: answers
//! every invocation in the Runtime API's streaming mode, writing one chunk
//! at once (the wall-clock time of that write, in nanoseconds since the
//! epoch) and ending the response after a pause (the event's number of
//! milliseconds, default 20). The harness compares the written time with
//! the chunk's arrival: the platform's time to first byte. No dependencies
//! beyond std.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn read_response(
    r: &mut BufReader<TcpStream>,
    body: &mut Vec<u8>,
) -> std::io::Result<(u16, Option<String>)> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut len = 0usize;
    let mut request_id = None;
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            let v = v.trim();
            if k.eq_ignore_ascii_case("content-length") {
                len = v.parse().unwrap_or(0);
            } else if k.eq_ignore_ascii_case("lambda-runtime-aws-request-id") {
                request_id = Some(v.to_owned());
            }
        }
    }
    body.resize(len, 0);
    r.read_exact(body)?;
    Ok((status, request_id))
}

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
