//! A minimal custom runtime (`bootstrap`) for benchmarks: speaks the Lambda
//! Runtime API over one keep-alive connection with blocking I/O and answers
//! every invocation with its own event. No dependencies beyond std, so its
//! start-up is little more than an exec.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

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
    let mut req = Vec::with_capacity(512);
    loop {
        write!(
            w,
            "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: {api}\r\n\r\n"
        )?;
        let (status, id) = read_response(&mut r, &mut event)?;
        let Some(id) = id.filter(|_| status == 200) else {
            std::process::exit(1);
        };
        req.clear();
        write!(
            req,
            "POST /2018-06-01/runtime/invocation/{id}/response HTTP/1.1\r\nHost: {api}\r\nContent-Length: {}\r\n\r\n",
            event.len()
        )?;
        req.extend_from_slice(&event);
        w.write_all(&req)?;
        read_response(&mut r, &mut scratch)?;
    }
}
