use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

/// One HTTP/1.1 request to the Runtime API; the response's headers and body.
fn call(api: &str, method: &str, path: &str, body: &str) -> (Vec<String>, String) {
    let mut s = TcpStream::connect(api).expect("connect to the Runtime API");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {api}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut r = BufReader::new(s);
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).expect("read");
        if line.trim().is_empty() {
            break;
        }
        headers.push(line.trim().to_owned());
    }
    let mut body = String::new();
    r.read_to_string(&mut body).expect("read body");
    (headers, body)
}

fn main() {
    let api = std::env::var("AWS_LAMBDA_RUNTIME_API").expect("AWS_LAMBDA_RUNTIME_API");
    loop {
        let (headers, event) = call(&api, "GET", "/2018-06-01/runtime/invocation/next", "");
        let id = headers
            .iter()
            .find_map(|h| h.to_ascii_lowercase().strip_prefix("lambda-runtime-aws-request-id:").map(|v| v.trim().to_owned()))
            .expect("request id");
        let answer = format!("{{\"from\":\"rust\",\"event\":{event}}}");
        call(&api, "POST", &format!("/2018-06-01/runtime/invocation/{id}/response"), &answer);
    }
}
