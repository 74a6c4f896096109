//! A minimal custom runtime (`bootstrap`) for benchmarks: speaks the Lambda
//! Runtime API over one keep-alive connection with blocking I/O and answers
//! every invocation with its own event. No dependencies beyond std, so its
//! start-up is little more than an exec.

use std::io::{BufReader, Write};
use std::net::TcpStream;

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
