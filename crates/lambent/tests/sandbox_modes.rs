//! Failing closed without isolation, and the explicit insecure mode.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{FunctionCode, Runtime};
use common::*;

#[test]
fn refuses_to_start_when_it_cannot_isolate() {
    let dir = tempfile::tempdir().expect("tempdir");
    // World-writable so that an unprivileged user can create its data there.
    std::process::Command::new("chmod")
        .arg("777")
        .arg(dir.path())
        .status()
        .expect("chmod");
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_lambent"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .output()
        .expect("run lambent as nobody");
    assert!(!out.status.success(), "must not serve without isolation");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to start") && err.contains("--insecure-no-sandbox"),
        "{err}"
    );
}

#[tokio::test]
async fn insecure_mode_runs_functions_as_plain_processes() {
    let server = Server::start_with(&["--insecure-no-sandbox"]);
    assert!(
        server
            .log()
            .contains("functions run as plain host processes"),
        "{}",
        server.log()
    );
    let client = server.client(KEY_A).await;
    let app = b"import os\ndef handler(event, context):\n    return {'root': os.environ['LAMBDA_TASK_ROOT'], 'event': event}\n";
    client
        .create_function()
        .function_name("plain")
        .runtime(Runtime::Python311)
        .role("arn:aws:iam::111111111111:role/lambda")
        .handler("app.handler")
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(zip_of(&[("app.py", app, 0o644)])))
                .build(),
        )
        .send()
        .await
        .expect("create");
    let out = client
        .invoke()
        .function_name("plain")
        .payload(Blob::new(br#"{"a":1}"#.to_vec()))
        .send()
        .await
        .expect("invoke");
    assert_eq!(out.function_error(), None);
    let body: serde_json::Value =
        serde_json::from_slice(out.payload().expect("payload").as_ref()).expect("json");
    assert_eq!(body["event"]["a"], 1);
    let root = body["root"].as_str().expect("root");
    assert!(
        root.starts_with(server.data_dir().to_str().expect("utf-8")),
        "code runs from the host path: {root}"
    );
}
