//! Invocation through AWS's Rust SDK, of a function built on AWS's own
//! `lambda_runtime` crate (the `fixture-rust-function` workspace member).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{FunctionCode, LogType, Runtime};
use base64::Engine as _;
use common::*;

/// The fixture binary, built by `cargo build --workspace` beside this test.
fn fixture_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let bin = dir.join("fixture-rust-function");
    assert!(
        bin.is_file(),
        "{} is missing: build the workspace first (cargo build --workspace)",
        bin.display()
    );
    bin
}

#[tokio::test]
async fn lambda_runtime_crate_function_runs_unchanged() {
    let server = Server::start();
    let client = server.client(KEY_A).await;
    let binary = std::fs::read(fixture_binary()).expect("read fixture");
    let zip = zip_of(&[("bootstrap", &binary, 0o755)]);
    client
        .create_function()
        .function_name("rusty")
        .runtime(Runtime::Providedal2023)
        .role("arn:aws:iam::111111111111:role/lambda")
        .handler("bootstrap")
        .code(FunctionCode::builder().zip_file(Blob::new(zip)).build())
        .send()
        .await
        .expect("create");

    let before = model::time_fmt::now_ms();
    let out = client
        .invoke()
        .function_name("rusty")
        .payload(Blob::new(br#"{"hello":"from the rust sdk"}"#.to_vec()))
        .log_type(LogType::Tail)
        .send()
        .await
        .expect("invoke");
    assert_eq!(out.status_code(), 200);
    assert_eq!(out.function_error(), None);
    assert_eq!(out.executed_version(), Some("$LATEST"));
    let body: serde_json::Value =
        serde_json::from_slice(out.payload().expect("payload").as_ref()).expect("json");
    assert_eq!(body["event"]["hello"], "from the rust sdk");
    assert_eq!(body["function_name"], "rusty");
    assert_eq!(
        body["arn"],
        "arn:aws:lambda:us-east-1:111111111111:function:rusty"
    );
    let deadline = body["deadline"].as_u64().expect("deadline") as i64;
    assert!(
        deadline > before + 2000 && deadline < before + 60_000,
        "absolute epoch ms: {deadline}"
    );
    let log = base64::engine::general_purpose::STANDARD
        .decode(out.log_result().expect("tail"))
        .expect("base64");
    let log = String::from_utf8_lossy(&log);
    assert!(
        log.contains("rust handler saw {\"hello\":\"from the rust sdk\"}"),
        "{log}"
    );
    assert!(log.contains("Init Duration: "), "{log}");

    let failed = client
        .invoke()
        .function_name("rusty")
        .payload(Blob::new(br#"{"fail":true}"#.to_vec()))
        .send()
        .await
        .expect("invoke");
    assert_eq!(failed.function_error(), Some("Unhandled"));
    let doc: serde_json::Value =
        serde_json::from_slice(failed.payload().expect("payload").as_ref()).expect("json");
    assert_eq!(doc["errorMessage"], "the rust function was asked to fail");

    let e = client
        .invoke()
        .function_name("nope")
        .send()
        .await
        .expect_err("missing")
        .into_service_error();
    assert!(e.is_resource_not_found_exception());
}
