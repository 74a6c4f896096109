//! The Runtime API client side shared by the benchmark's bootstraps: one
//! HTTP/1.1 response read off a keep-alive connection with blocking I/O.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;

/// Reads one response: its status, its `Lambda-Runtime-Aws-Request-Id`, and
/// its body into `body`.
pub fn read_response(
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
