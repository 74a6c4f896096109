//! One server per data directory: a second `lambent serve` on a directory in
//! use is refused before it touches anything, a crash releases the directory,
//! and a clean stop removes the `endpoint` file clients look for.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{FunctionCode, InvocationType, Runtime};
use common::*;

/// Reports which environment answered and how often it has.
const APP: &[u8] = b"import uuid\nENV = uuid.uuid4().hex\nCOUNT = 0\n\
def handler(event, context):\n    global COUNT\n    COUNT += 1\n    print('mark', event.get('mark'))\n    return {'env': ENV, 'count': COUNT}\n";

async fn create(client: &aws_sdk_lambda::Client, name: &str) {
    client
        .create_function()
        .function_name(name)
        .runtime(Runtime::Python311)
        .role("arn:aws:iam::111111111111:role/lambda")
        .handler("app.handler")
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(zip_of(&[("app.py", APP, 0o644)])))
                .build(),
        )
        .send()
        .await
        .expect("create");
}

async fn invoke(client: &aws_sdk_lambda::Client, name: &str) -> serde_json::Value {
    let out = client
        .invoke()
        .function_name(name)
        .payload(Blob::new(b"{}".to_vec()))
        .send()
        .await
        .expect("invoke");
    assert_eq!(out.function_error(), None);
    serde_json::from_slice(out.payload().expect("payload").as_ref()).expect("json")
}

/// Runs the `lambent` CLI with account A's key.
fn cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lambent"))
        .args(args)
        .env("AWS_ACCESS_KEY_ID", KEY_A.0)
        .env("AWS_SECRET_ACCESS_KEY", KEY_A.1)
        .env_remove("LAMBENT_ENDPOINT")
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .output()
        .expect("run lambent")
}

#[tokio::test]
async fn a_second_server_on_a_data_directory_in_use_is_refused_and_changes_nothing() {
    let mut server = Server::start();
    let client = server.client(KEY_A).await;
    create(&client, "held").await;
    let first = invoke(&client, "held").await;
    assert_eq!(first["count"], 1);
    let data = server.data_dir();

    let mut second = Command::new(env!("CARGO_BIN_EXE_lambent"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "off",
        ])
        .arg("--data-dir")
        .arg(&data)
        .arg("--credentials-file")
        .arg(server.credentials_file())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the second server");
    let status = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for("the second server to exit", Duration::from_secs(30), || {
            second.try_wait().ok().flatten()
        })
    }));
    let Ok(status) = status else {
        let _ = second.kill();
        let _ = second.wait();
        panic!("a second server kept running on a data directory in use");
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success(), "{err}");
    assert!(
        err.contains("another `lambent serve`") && err.contains(&format!("pid {}", server.pid())),
        "names the running server: {err}"
    );
    assert_eq!(
        std::fs::read_to_string(data.join("endpoint")).unwrap(),
        server.endpoint,
        "the running server's endpoint file is untouched"
    );

    // The first server still serves from its warm environment...
    let again = invoke(&client, "held").await;
    assert_eq!(again["env"], first["env"], "the warm environment survived");
    assert_eq!(again["count"], 2);
    // ...and runs its queue.
    let queued = client
        .invoke()
        .function_name("held")
        .invocation_type(InvocationType::Event)
        .payload(Blob::new(br#"{"mark":"after-the-refusal"}"#.to_vec()))
        .send()
        .await
        .expect("queue an event");
    assert_eq!(queued.status_code(), 202);
    let data_arg = data.to_str().unwrap().to_owned();
    wait_for(
        "the first server to run the queued event",
        Duration::from_secs(30),
        || {
            let out = cli(&["logs", "held", "--data-dir", &data_arg]);
            String::from_utf8_lossy(&out.stdout)
                .contains("mark after-the-refusal")
                .then_some(())
        },
    );

    // A clean stop removes the endpoint file, and the CLI then says what is wrong.
    assert!(server.terminate().success());
    assert!(!data.join("endpoint").exists(), "endpoint removed on stop");
    let out = cli(&["invoke", "held", "--data-dir", &data_arg]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is `lambent serve` running?"), "{err}");
}

#[tokio::test]
async fn a_crashed_server_releases_its_data_directory() {
    let mut server = Server::start();
    let client = server.client(KEY_A).await;
    create(&client, "survivor").await;
    let before = invoke(&client, "survivor").await;
    server.kill();
    // Clients are told the server is gone, not sent to a dead address.
    let data_arg = server.data_dir().to_str().unwrap().to_owned();
    let out = cli(&["invoke", "survivor", "--data-dir", &data_arg]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is `lambent serve` running?"), "{err}");

    // SIGKILL released the lock: a new server takes over the directory,
    // with the function, in a fresh environment.
    server.restart(&[]);
    let client = server.client(KEY_A).await;
    let after = invoke(&client, "survivor").await;
    assert_eq!(after["count"], 1);
    assert_ne!(after["env"], before["env"]);
    let lock = std::fs::read_to_string(server.data_dir().join("serve.lock")).unwrap();
    assert_eq!(lock.trim(), server.pid().to_string());
}
