use std::time::Duration;

use super::*;

/// A runtime's view: one keep-alive HTTP/1.1 connection to the Runtime API.
struct Runtime {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl Runtime {
    async fn connect(addr: std::net::SocketAddr) -> Self {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(conn);
        Self { sender }
    }

    async fn call(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> (StatusCode, hyper::HeaderMap, Bytes) {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "127.0.0.1:9001");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = self
            .sender
            .send_request(req.body(Full::new(body)).unwrap())
            .await
            .unwrap();
        let (parts, body) = resp.into_parts();
        (
            parts.status,
            parts.headers,
            body.collect().await.unwrap().to_bytes(),
        )
    }

    async fn next(&mut self) -> (StatusCode, hyper::HeaderMap, Bytes) {
        self.call(
            Method::GET,
            "/2018-06-01/runtime/invocation/next",
            &[],
            Bytes::new(),
        )
        .await
    }
}

fn invocation(id: &str, payload: &'static str) -> Invocation {
    Invocation {
        request_id: id.into(),
        payload: Bytes::from_static(payload.as_bytes()),
        timeout: Duration::from_secs(3),
        invoked_arn: "arn:aws:lambda:us-east-1:123456789012:function:f".into(),
        trace_id: "Root=1-5e1b4151-5ac6c58f8f4a6b0d1e2f3a4b;Parent=0123456789abcdef;Sampled=0"
            .into(),
        client_context: Some("eyJjdXN0b20iOnt9fQ==".into()),
        cognito_identity: None,
    }
}

async fn start() -> (
    Arc<Channel>,
    std::net::SocketAddr,
    tokio::task::JoinHandle<()>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let ch = Arc::new(Channel::new());
    let task = tokio::spawn(serve(listener, ch.clone(), |_, _| true));
    (ch, addr, task)
}

#[tokio::test]
async fn invocation_round_trip_with_every_header() {
    let (ch, addr, _task) = start().await;
    let sub = ch.submit(invocation("req-1", r#"{"k":1}"#)).unwrap();
    let reply = sub.reply;
    assert_eq!(ch.phase(), Phase::Init);
    let mut rt = Runtime::connect(addr).await;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let (status, h, body) = rt.next().await;
    let handed = sub.started.await.unwrap();
    let deadline = handed.deadline_ms;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, r#"{"k":1}"#);
    assert_eq!(h["lambda-runtime-aws-request-id"], "req-1");
    assert_eq!(
        h["lambda-runtime-deadline-ms"],
        deadline.to_string().as_str()
    );
    assert!(
        deadline >= before + 3000 && deadline < before + 3000 + 5000,
        "absolute epoch ms: {deadline}"
    );
    assert_eq!(
        h["lambda-runtime-invoked-function-arn"],
        "arn:aws:lambda:us-east-1:123456789012:function:f"
    );
    assert!(
        h["lambda-runtime-trace-id"]
            .to_str()
            .unwrap()
            .starts_with("Root=1-")
    );
    assert_eq!(h["lambda-runtime-client-context"], "eyJjdXN0b20iOnt9fQ==");
    assert!(!h.contains_key("lambda-runtime-cognito-identity"));
    assert!(ch.init_done_at().is_some());
    assert_eq!(ch.phase(), Phase::Busy);
    assert!(
        ch.submit(invocation("req-2", "{}")).is_err(),
        "one invocation at a time"
    );

    // Another id is refused and changes nothing.
    let (status, _, body) = rt
        .call(
            Method::POST,
            "/2018-06-01/runtime/invocation/other/response",
            &[],
            Bytes::from_static(b"x"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&body).contains("InvalidRequestID"));

    let (status, _, body) = rt
        .call(
            Method::POST,
            "/2018-06-01/runtime/invocation/req-1/response",
            &[],
            Bytes::from_static(b"\x00binary\xff"),
        )
        .await;
    assert_eq!(
        (status, body.as_ref()),
        (StatusCode::ACCEPTED, &br#"{"status":"OK"}"#[..])
    );
    let answer = reply.await.unwrap();
    assert_eq!(
        answer.reply,
        Reply::Response(Bytes::from_static(b"\x00binary\xff"))
    );
    assert!(
        answer.at > handed.at,
        "the answer is timed after the hand-out, by the Runtime API"
    );
    // Answering twice is refused.
    let (status, _, _) = rt
        .call(
            Method::POST,
            "/2018-06-01/runtime/invocation/req-1/response",
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn hand_out_and_answer_are_timed_when_they_happen_not_when_awaited() {
    let (ch, addr, _task) = start().await;
    let mut rt = Runtime::connect(addr).await;
    let sub = ch.submit(invocation("d-1", "{}")).unwrap();
    rt.next().await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    rt.call(
        Method::POST,
        "/2018-06-01/runtime/invocation/d-1/response",
        &[],
        Bytes::from_static(b"{}"),
    )
    .await;
    // The platform gets to its receivers late (as a busy server does).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let handed = sub.started.await.unwrap();
    let answer = sub.reply.await.unwrap();
    let took = answer.at.duration_since(handed.at);
    assert!(
        took >= Duration::from_millis(30) && took < Duration::from_millis(300),
        "the handler's time, not the waiter's: {took:?}"
    );
}

#[tokio::test]
async fn function_errors_carry_the_error_type_header() {
    let (ch, addr, _task) = start().await;
    let mut rt = Runtime::connect(addr).await;
    let reply = ch.submit(invocation("e-1", "{}")).unwrap().reply;
    rt.next().await;
    let doc = r#"{"errorMessage":"boom","errorType":"ValueError","stackTrace":[]}"#;
    let (status, _, _) = rt
        .call(
            Method::POST,
            "/2018-06-01/runtime/invocation/e-1/error",
            &[
                ("lambda-runtime-function-error-type", "Unhandled"),
                ("content-type", "application/vnd.aws.lambda.error+json"),
            ],
            Bytes::from_static(doc.as_bytes()),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        reply.await.unwrap().reply,
        Reply::Error {
            error_type: Some("Unhandled".into()),
            body: Bytes::from_static(doc.as_bytes())
        }
    );
}

#[tokio::test]
async fn init_error_answers_the_waiting_invocation_at_once() {
    let (ch, addr, _task) = start().await;
    let reply = ch.submit(invocation("i-1", "{}")).unwrap().reply;
    let mut rt = Runtime::connect(addr).await;
    let doc = r#"{"errorMessage":"Unable to import module 'app': No module named 'app'","errorType":"Runtime.ImportModuleError"}"#;
    let (status, _, _) = rt
        .call(
            Method::POST,
            "/2018-06-01/runtime/init/error",
            &[(
                "lambda-runtime-function-error-type",
                "Runtime.ImportModuleError",
            )],
            Bytes::from_static(doc.as_bytes()),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let got = tokio::time::timeout(Duration::from_secs(5), reply)
        .await
        .expect("immediate")
        .unwrap()
        .reply;
    assert_eq!(
        got,
        Reply::Error {
            error_type: Some("Runtime.ImportModuleError".into()),
            body: Bytes::from_static(doc.as_bytes())
        }
    );
    assert!(ch.initialized().await.is_err());
}

#[tokio::test]
async fn oversized_response_is_refused_and_reported() {
    let (ch, addr, _task) = start().await;
    let mut rt = Runtime::connect(addr).await;
    let reply = ch.submit(invocation("big", "{}")).unwrap().reply;
    rt.next().await;
    let big = Bytes::from(vec![b'x'; MAX_RESPONSE_BYTES + 1]);
    let (status, _, _) = rt
        .call(
            Method::POST,
            "/2018-06-01/runtime/invocation/big/response",
            &[],
            big,
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.await.unwrap().reply, Reply::ResponseTooLarge);
}

#[tokio::test]
async fn next_without_answer_abandons_and_dropping_serve_closes_waiting_next() {
    let (ch, addr, task) = start().await;
    let mut rt = Runtime::connect(addr).await;
    let reply = ch.submit(invocation("a-1", "{}")).unwrap().reply;
    rt.next().await;
    // Asking for more work without answering abandons the invocation.
    let waiting = tokio::spawn(async move { rt.next().await });
    assert_eq!(reply.await.unwrap().reply, Reply::Abandoned);
    // Shutting the server down ends the parked /next instead of leaking it.
    task.abort();
    let res = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("closed promptly");
    assert!(res.is_err(), "the parked request saw its connection close");
    assert!(
        Arc::strong_count(&ch) <= 2,
        "no connection task still holds the channel"
    );
}

#[tokio::test]
async fn unknown_paths_are_404() {
    let (_ch, addr, _task) = start().await;
    let mut rt = Runtime::connect(addr).await;
    for path in [
        "/",
        "/2018-06-01/runtime/invocation/x/unknown",
        "/2020-01-01/extension/register",
    ] {
        let (status, _, _) = rt.call(Method::POST, path, &[], Bytes::new()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test]
async fn a_refused_answer_keeps_the_connection_usable() {
    let (ch, addr, _task) = start().await;
    let sub = ch.submit(invocation("req-1", "{}")).unwrap();
    let mut rt = Runtime::connect(addr).await;
    rt.next().await;
    // A body big enough not to arrive with the headers.
    let big = Bytes::from(vec![b'x'; 256 * 1024]);
    for path in [
        "/2018-06-01/runtime/invocation/not-req-1/response",
        "/2018-06-01/runtime/invocation/not-req-1/error",
        "/2018-06-01/runtime/no-such-path",
    ] {
        let (status, _, _) = rt.call(Method::POST, path, &[], big.clone()).await;
        assert!(status.is_client_error(), "{path}: {status}");
    }
    // The same connection still carries the real answer.
    let (status, _, _) = rt
        .call(
            Method::POST,
            "/2018-06-01/runtime/invocation/req-1/response",
            &[],
            Bytes::from_static(b"\"done\""),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        sub.reply.await.unwrap().reply,
        Reply::Response(Bytes::from_static(b"\"done\""))
    );
}

#[tokio::test]
async fn a_connection_the_check_refuses_is_closed_unanswered() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let ch = Arc::new(Channel::new());
    let admitted = Arc::new(std::sync::Mutex::new(None::<std::net::SocketAddr>));
    let only = admitted.clone();
    let _task = tokio::spawn(serve(listener, ch.clone(), move |local, peer| {
        assert_eq!(local, addr);
        *only.lock().unwrap() == Some(peer)
    }));
    let sub = ch.submit(invocation("req-1", "{}")).unwrap();
    // A stranger: its request is never read, and the invocation stays queued.
    let mut stranger = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(
        &mut stranger,
        b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nhost: x\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    let n = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::io::AsyncReadExt::read_to_end(&mut stranger, &mut buf),
    )
    .await
    .expect("closed")
    .unwrap_or(0);
    assert_eq!(n, 0, "no answer: {:?}", String::from_utf8_lossy(&buf));
    assert_eq!(ch.phase(), Phase::Init);
    // The environment's own connection is served and takes the invocation.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    *admitted.lock().unwrap() = Some(socket.local_addr().unwrap());
    let stream = socket.connect(addr).await.unwrap();
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut rt = Runtime { sender };
    let (status, h, _) = rt.next().await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h["lambda-runtime-aws-request-id"], "req-1");
    drop(sub);
}

/// Writes a chunked streaming `POST /response` by hand, so that each chunk
/// and the trailers go out exactly when the test says.
struct RawStream {
    sock: tokio::net::TcpStream,
}

impl RawStream {
    async fn begin(addr: std::net::SocketAddr, id: &str, content_type: &str) -> Self {
        use tokio::io::AsyncWriteExt;
        let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
        sock.set_nodelay(true).unwrap();
        let head = format!(
            "POST /2018-06-01/runtime/invocation/{id}/response HTTP/1.1\r\nHost: 127.0.0.1\r\n\
             Content-Type: {content_type}\r\nLambda-Runtime-Function-Response-Mode: streaming\r\n\
             Transfer-Encoding: chunked\r\n\
             Trailer: Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body\r\n\r\n"
        );
        sock.write_all(head.as_bytes()).await.unwrap();
        Self { sock }
    }

    async fn chunk(&mut self, data: &[u8]) {
        use tokio::io::AsyncWriteExt;
        self.sock
            .write_all(format!("{:x}\r\n", data.len()).as_bytes())
            .await
            .unwrap();
        self.sock.write_all(data).await.unwrap();
        self.sock.write_all(b"\r\n").await.unwrap();
    }

    /// Ends the body (with trailers, if any) and reads the status line.
    async fn end(mut self, trailers: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        self.sock
            .write_all(format!("0\r\n{trailers}\r\n").as_bytes())
            .await
            .unwrap();
        let mut buf = vec![0u8; 512];
        let n = self.sock.read(&mut buf).await.unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
}

async fn streaming_invocation(id: &str) -> (Arc<Channel>, std::net::SocketAddr, Submitted) {
    streaming_invocation_within(id, StreamLimits::LAMBDA).await
}

async fn streaming_invocation_within(
    id: &str,
    limits: StreamLimits,
) -> (Arc<Channel>, std::net::SocketAddr, Submitted) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let ch = Arc::new(Channel::with_stream_limits(limits));
    drop(tokio::spawn(serve(listener, ch.clone(), |_, _| true)));
    let sub = ch.submit(invocation(id, "{}")).unwrap();
    let mut rt = Runtime::connect(addr).await;
    let (status, _, _) = rt.next().await;
    assert_eq!(status, StatusCode::OK);
    (ch, addr, sub)
}

fn stream_of(reply: Reply) -> ResponseStream {
    match reply {
        Reply::Stream(s) => s,
        other => panic!("not a stream: {other:?}"),
    }
}

#[tokio::test]
async fn a_streamed_response_arrives_chunk_by_chunk_as_written() {
    let (ch, addr, sub) = streaming_invocation("s-1").await;
    let mut post = RawStream::begin(addr, "s-1", "text/plain").await;
    post.chunk(b"first ").await;
    // The stream is handed over when the response begins, and the first
    // chunk arrives while the runtime is still writing.
    let answer = tokio::time::timeout(Duration::from_secs(10), sub.reply)
        .await
        .unwrap()
        .unwrap();
    let mut stream = stream_of(answer.reply);
    assert_eq!(stream.content_type.as_deref(), Some("text/plain"));
    let first = tokio::time::timeout(Duration::from_secs(10), stream.chunks.recv())
        .await
        .unwrap();
    assert_eq!(first, Some(Bytes::from_static(b"first ")));
    assert!(stream.end.try_recv().is_err(), "not ended yet");
    post.chunk(b"second").await;
    assert_eq!(
        stream.chunks.recv().await,
        Some(Bytes::from_static(b"second"))
    );
    let status = post.end("").await;
    assert!(status.starts_with("HTTP/1.1 202"), "{status}");
    assert_eq!(stream.chunks.recv().await, None);
    let ended = stream.end.await.unwrap();
    assert_eq!((ended.end, ended.bytes), (StreamEnd::Complete, 12));
    // The environment is ready for the next invocation.
    assert!(ch.submit(invocation("s-2", "{}")).is_ok());
}

#[tokio::test]
async fn an_error_mid_stream_comes_from_the_trailers() {
    let (_ch, addr, sub) = streaming_invocation("s-err").await;
    let mut post = RawStream::begin(addr, "s-err", "application/octet-stream").await;
    post.chunk(b"partial").await;
    let mut stream = stream_of(sub.reply.await.unwrap().reply);
    assert_eq!(
        stream.chunks.recv().await,
        Some(Bytes::from_static(b"partial"))
    );
    let doc = br#"{"errorType":"Error","errorMessage":"went wrong mid-stream"}"#;
    use base64::Engine as _;
    let trailers = format!(
        "Lambda-Runtime-Function-Error-Type: Error\r\nLambda-Runtime-Function-Error-Body: {}\r\n",
        base64::engine::general_purpose::STANDARD.encode(doc)
    );
    let status = post.end(&trailers).await;
    assert!(status.starts_with("HTTP/1.1 202"), "{status}");
    assert_eq!(stream.chunks.recv().await, None);
    assert_eq!(
        stream.end.await.unwrap().end,
        StreamEnd::Error {
            error_type: "Error".into(),
            body: Bytes::from_static(doc),
        }
    );
}

#[tokio::test]
async fn a_stream_that_breaks_off_is_truncated() {
    let (_ch, addr, sub) = streaming_invocation("s-cut").await;
    let mut post = RawStream::begin(addr, "s-cut", "text/plain").await;
    post.chunk(b"some").await;
    let mut stream = stream_of(sub.reply.await.unwrap().reply);
    assert_eq!(
        stream.chunks.recv().await,
        Some(Bytes::from_static(b"some"))
    );
    drop(post);
    assert_eq!(stream.chunks.recv().await, None);
    assert_eq!(stream.end.await.unwrap().end, StreamEnd::Truncated);
}

#[tokio::test]
async fn an_unknown_response_mode_is_refused() {
    let (_ch, addr, sub) = streaming_invocation("s-mode").await;
    let mut rt = Runtime::connect(addr).await;
    let (status, _, body) = rt
        .call(
            Method::POST,
            "/2018-06-01/runtime/invocation/s-mode/response",
            &[("lambda-runtime-function-response-mode", "sideways")],
            Bytes::from_static(b"x"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&body).contains("InvalidResponseModeHeader"));
    match sub.reply.await.unwrap().reply {
        Reply::Error { error_type, .. } => {
            assert_eq!(
                error_type.as_deref(),
                Some("Runtime.InvalidResponseModeHeader")
            )
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_caller_that_stops_listening_lets_the_runtime_finish() {
    let (_ch, addr, sub) = streaming_invocation("s-gone").await;
    let mut post = RawStream::begin(addr, "s-gone", "text/plain").await;
    post.chunk(b"one").await;
    let stream = stream_of(sub.reply.await.unwrap().reply);
    let ResponseStream { chunks, end, .. } = stream;
    drop(chunks);
    // More chunks than the channel holds: none may block the runtime.
    for _ in 0..64 {
        post.chunk(b"more").await;
    }
    let status = post.end("").await;
    assert!(status.starts_with("HTTP/1.1 202"), "{status}");
    let ended = end.await.unwrap();
    assert_eq!((ended.end, ended.bytes), (StreamEnd::Complete, 3 + 64 * 4));
}

#[tokio::test]
async fn a_stream_over_the_limit_ends_too_large() {
    let limits = StreamLimits {
        max_bytes: 10,
        ..StreamLimits::LAMBDA
    };
    let (_ch, addr, sub) = streaming_invocation_within("s-big", limits).await;
    let mut post = RawStream::begin(addr, "s-big", "text/plain").await;
    post.chunk(b"0123456789").await;
    let mut stream = stream_of(sub.reply.await.unwrap().reply);
    assert_eq!(
        stream.chunks.recv().await,
        Some(Bytes::from_static(b"0123456789"))
    );
    post.chunk(b"x").await;
    assert_eq!(stream.chunks.recv().await, None, "nothing past the limit");
    let ended = stream.end.await.unwrap();
    assert_eq!(ended.end, StreamEnd::TooLarge);
    let status = post.end("").await;
    assert!(status.starts_with("HTTP/1.1 413"), "{status}");
    assert!(
        status.contains("Exceeded maximum allowed payload size (10 bytes)."),
        "{status}"
    );
}

#[tokio::test]
async fn past_the_uncapped_bytes_chunks_flow_at_the_capped_rate() {
    let limits = StreamLimits {
        max_bytes: 1 << 20,
        uncapped_bytes: 10,
        bytes_per_second: 100,
    };
    let (_ch, addr, sub) = streaming_invocation_within("s-slow", limits).await;
    let mut post = RawStream::begin(addr, "s-slow", "text/plain").await;
    post.chunk(b"0123456789").await;
    let mut stream = stream_of(sub.reply.await.unwrap().reply);
    let t0 = std::time::Instant::now();
    assert_eq!(stream.chunks.recv().await.map(|b| b.len()), Some(10));
    // 50 capped bytes at 100 bytes/s hold the next chunk back half a second.
    post.chunk(&[b'a'; 50]).await;
    post.chunk(b"b").await;
    assert_eq!(stream.chunks.recv().await.map(|b| b.len()), Some(50));
    assert_eq!(stream.chunks.recv().await.map(|b| b.len()), Some(1));
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(450),
        "the chunk after 50 capped bytes waited only {waited:?}"
    );
    post.end("").await;
}
