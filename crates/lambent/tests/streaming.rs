//! Response streaming through AWS's Rust SDK (`InvokeWithResponseStream`),
//! of a function built on AWS's `lambda_runtime` crate's streaming support
//! (the `fixture-rust-streaming` binary of the fixture workspace member).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{
    FunctionCode, InvokeWithResponseStreamResponseEvent as Event, Runtime,
};
use common::*;

fn fixture_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let bin = dir.join("fixture-rust-streaming");
    assert!(
        bin.is_file(),
        "{} is missing: build the workspace first (cargo build --workspace)",
        bin.display()
    );
    bin
}

/// The chunks with their arrival times (from the call), and the completion.
async fn stream(
    client: &aws_sdk_lambda::Client,
    name: &str,
    payload: &str,
) -> (
    Option<String>,
    Vec<(Duration, Vec<u8>)>,
    Duration,
    aws_sdk_lambda::types::InvokeWithResponseStreamCompleteEvent,
) {
    let start = Instant::now();
    let mut out = client
        .invoke_with_response_stream()
        .function_name(name)
        .payload(Blob::new(payload.as_bytes().to_vec()))
        .send()
        .await
        .expect("invoke_with_response_stream");
    let content_type = out.response_stream_content_type().map(str::to_owned);
    let mut chunks = Vec::new();
    loop {
        match out.event_stream.recv().await.expect("event") {
            Some(Event::PayloadChunk(c)) => chunks.push((
                start.elapsed(),
                c.payload().expect("payload").as_ref().to_vec(),
            )),
            Some(Event::InvokeComplete(done)) => {
                let at = start.elapsed();
                assert!(
                    out.event_stream.recv().await.expect("end").is_none(),
                    "nothing after InvokeComplete"
                );
                return (content_type, chunks, at, done);
            }
            Some(other) => panic!("unexpected event {other:?}"),
            None => panic!("the stream ended without InvokeComplete"),
        }
    }
}

#[tokio::test]
async fn lambda_runtime_crate_streams_each_chunk_as_it_is_written() {
    let server = Server::start();
    let client = server.client(KEY_A).await;
    let binary = std::fs::read(fixture_binary()).expect("read fixture");
    let zip = zip_of(&[("bootstrap", &binary, 0o755)]);
    client
        .create_function()
        .function_name("rusty-stream")
        .runtime(Runtime::Providedal2023)
        .role("arn:aws:iam::111111111111:role/lambda")
        .handler("bootstrap")
        .timeout(10)
        .code(FunctionCode::builder().zip_file(Blob::new(zip)).build())
        .send()
        .await
        .expect("create");

    // Warm first: the cold start is not what is measured.
    let (_, _, _, done) = stream(&client, "rusty-stream", r#"{"chunks":1}"#).await;
    assert_eq!(done.error_code(), None);

    let (content_type, chunks, end, done) =
        stream(&client, "rusty-stream", r#"{"chunks":3,"interval_ms":500}"#).await;
    assert_eq!(done.error_code(), None, "{done:?}");
    // lambda_runtime always streams with the HTTP-integration prelude.
    assert_eq!(
        content_type.as_deref(),
        Some("application/vnd.awslambda.http-integration-response")
    );
    let body: Vec<u8> = chunks.iter().flat_map(|(_, c)| c.clone()).collect();
    let split = body
        .windows(8)
        .position(|w| w == [0u8; 8])
        .expect("the prelude's delimiter");
    let prelude: serde_json::Value = serde_json::from_slice(&body[..split]).expect("prelude");
    assert_eq!(
        prelude["headers"]["content-type"],
        "application/octet-stream"
    );
    assert_eq!(&body[split + 8..], b"chunk 0\nchunk 1\nchunk 2\n");
    // The first chunk arrived while the function was still running: it
    // sleeps 500 ms between writes.
    let first = chunks
        .iter()
        .find(|(_, c)| c.windows(7).any(|w| w == b"chunk 0"))
        .map(|(t, _)| *t)
        .expect("chunk 0");
    assert!(
        end.saturating_sub(first) >= Duration::from_millis(600),
        "first chunk at {first:?}, completion at {end:?}"
    );
}
