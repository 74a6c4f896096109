//! The control plane through AWS's own Rust SDK.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Environment, FunctionCode, Runtime};
use common::*;

const ROLE: &str = "arn:aws:iam::111111111111:role/lambda-role";

fn package(tag: &str) -> Vec<u8> {
    zip_of(&[(
        "bootstrap",
        format!("#!/bin/sh\n# {tag}\n").as_bytes(),
        0o755,
    )])
}

async fn create(
    client: &aws_sdk_lambda::Client,
    name: &str,
    zip: Vec<u8>,
) -> aws_sdk_lambda::operation::create_function::CreateFunctionOutput {
    client
        .create_function()
        .function_name(name)
        .runtime(Runtime::Providedal2023)
        .role(ROLE)
        .handler("bootstrap")
        .code(FunctionCode::builder().zip_file(Blob::new(zip)).build())
        .send()
        .await
        .expect("create_function")
}

fn code_of<E: aws_sdk_lambda::error::ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or("").to_owned()
}

#[tokio::test]
async fn function_lifecycle_through_the_rust_sdk() {
    let server = Server::start();
    let a = server.client(KEY_A).await;

    let zip = package("v1");
    let created = create(&a, "lifecycle", zip.clone()).await;
    assert_eq!(
        created.function_arn(),
        Some("arn:aws:lambda:us-east-1:111111111111:function:lifecycle")
    );
    assert_eq!(created.code_size(), zip.len() as i64);
    assert_eq!(created.memory_size(), Some(128));
    assert_eq!(created.timeout(), Some(3));

    let got = a
        .get_function()
        .function_name("lifecycle")
        .send()
        .await
        .expect("get_function");
    let cfg = got.configuration().expect("configuration");
    assert_eq!(cfg.state().map(|s| s.as_str()), Some("Active"));
    assert_eq!(
        cfg.last_update_status().map(|s| s.as_str()),
        Some("Successful")
    );
    let location = got
        .code()
        .and_then(|c| c.location())
        .expect("Code.Location");
    let (status, body) = http_get(location).expect("download");
    assert_eq!(status, 200);
    assert_eq!(body, zip, "Code.Location serves the uploaded package");

    // Partial and full ARNs name the same function.
    for name in [
        "111111111111:function:lifecycle",
        "arn:aws:lambda:us-east-1:111111111111:function:lifecycle",
    ] {
        let c = a
            .get_function_configuration()
            .function_name(name)
            .send()
            .await
            .expect("by arn");
        assert_eq!(c.function_name(), Some("lifecycle"));
    }

    let updated = a
        .update_function_configuration()
        .function_name("lifecycle")
        .memory_size(1024)
        .timeout(30)
        .environment(
            Environment::builder()
                .variables("GREETING", "hello")
                .build(),
        )
        .send()
        .await
        .expect("update configuration");
    assert_eq!(updated.memory_size(), Some(1024));
    assert_ne!(updated.revision_id(), created.revision_id());

    // A stale RevisionId is refused and changes nothing.
    let stale = a
        .update_function_code()
        .function_name("lifecycle")
        .zip_file(Blob::new(package("v2")))
        .revision_id(created.revision_id().unwrap_or_default())
        .send()
        .await
        .expect_err("stale revision");
    assert_eq!(
        code_of(&stale.into_service_error()),
        "PreconditionFailedException"
    );

    let zip2 = package("v2");
    let code2 = a
        .update_function_code()
        .function_name("lifecycle")
        .zip_file(Blob::new(zip2.clone()))
        .revision_id(updated.revision_id().unwrap_or_default())
        .send()
        .await
        .expect("update code");
    assert_ne!(code2.code_sha256(), created.code_sha256());
    assert_eq!(code2.memory_size(), Some(1024));

    a.delete_function()
        .function_name("lifecycle")
        .send()
        .await
        .expect("delete");
    let gone = a
        .get_function()
        .function_name("lifecycle")
        .send()
        .await
        .expect_err("deleted");
    let gone = gone.into_service_error();
    assert!(gone.is_resource_not_found_exception(), "{gone:?}");
    assert_eq!(
        gone.meta().message(),
        Some("Function not found: arn:aws:lambda:us-east-1:111111111111:function:lifecycle")
    );
}

#[tokio::test]
async fn errors_in_aws_shapes() {
    let server = Server::start();
    let a = server.client(KEY_A).await;
    create(&a, "dup", package("x")).await;

    let e = a
        .create_function()
        .function_name("dup")
        .runtime(Runtime::Providedal2023)
        .role(ROLE)
        .handler("bootstrap")
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(package("x")))
                .build(),
        )
        .send()
        .await
        .expect_err("duplicate")
        .into_service_error();
    assert!(e.is_resource_conflict_exception(), "{e:?}");
    assert_eq!(e.meta().message(), Some("Function already exist: dup"));

    let e = a
        .create_function()
        .function_name("bad-memory")
        .runtime(Runtime::Providedal2023)
        .role(ROLE)
        .handler("bootstrap")
        .memory_size(64)
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(package("x")))
                .build(),
        )
        .send()
        .await
        .expect_err("memory too small")
        .into_service_error();
    assert_eq!(code_of(&e), "ValidationException");

    let e = a
        .create_function()
        .function_name("not-a-zip")
        .runtime(Runtime::Providedal2023)
        .role(ROLE)
        .handler("bootstrap")
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(b"plain text".to_vec()))
                .build(),
        )
        .send()
        .await
        .expect_err("not a zip")
        .into_service_error();
    assert!(e.is_invalid_parameter_value_exception(), "{e:?}");

    let e = a
        .create_function()
        .function_name("cobol")
        .runtime(Runtime::from("cobol1.0"))
        .role(ROLE)
        .handler("bootstrap")
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(package("x")))
                .build(),
        )
        .send()
        .await
        .expect_err("unknown runtime")
        .into_service_error();
    let msg = e.meta().message().unwrap_or_default().to_owned();
    assert!(
        msg.contains("Member must satisfy enum value set: [") && msg.contains("provided.al2023"),
        "{msg}"
    );

    let e = a
        .delete_function()
        .function_name("nope")
        .send()
        .await
        .expect_err("missing")
        .into_service_error();
    assert!(e.is_resource_not_found_exception());

    // Nothing the refused calls touched exists.
    let names: Vec<String> = a
        .list_functions()
        .send()
        .await
        .expect("list")
        .functions()
        .iter()
        .filter_map(|f| f.function_name().map(str::to_owned))
        .collect();
    assert_eq!(names, ["dup"]);
}

#[tokio::test]
async fn paging_tags_accounts_and_settings() {
    let server = Server::start();
    let a = server.client(KEY_A).await;
    let b = server.client(KEY_B).await;
    for i in 0..7 {
        create(&a, &format!("fn-{i}"), package(&i.to_string())).await;
    }
    // The SDK's paginator walks Marker / NextMarker.
    let mut pages = a.list_functions().max_items(3).into_paginator().send();
    let mut names = Vec::new();
    let mut page_count = 0;
    while let Some(page) = pages.next().await {
        let page = page.expect("page");
        page_count += 1;
        names.extend(
            page.functions()
                .iter()
                .filter_map(|f| f.function_name().map(str::to_owned)),
        );
    }
    assert_eq!(page_count, 3);
    assert_eq!(names, (0..7).map(|i| format!("fn-{i}")).collect::<Vec<_>>());

    // Account B sees none of them, and can use the same names.
    assert!(
        b.list_functions()
            .send()
            .await
            .expect("list b")
            .functions()
            .is_empty()
    );
    let e = b
        .get_function()
        .function_name("fn-0")
        .send()
        .await
        .expect_err("invisible")
        .into_service_error();
    assert!(e.is_resource_not_found_exception());
    let e = b
        .get_function()
        .function_name("arn:aws:lambda:us-east-1:111111111111:function:fn-0")
        .send()
        .await
        .expect_err("other account's arn");
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(403));
    create(&b, "fn-0", package("b")).await;

    let arn = "arn:aws:lambda:us-east-1:111111111111:function:fn-0";
    a.tag_resource()
        .resource(arn)
        .tags("team", "core")
        .tags("env", "test")
        .send()
        .await
        .expect("tag");
    a.untag_resource()
        .resource(arn)
        .tag_keys("env")
        .send()
        .await
        .expect("untag");
    let tags = a.list_tags().resource(arn).send().await.expect("list tags");
    assert_eq!(tags.tags().map(|t| t.len()), Some(1));
    assert_eq!(
        tags.tags().and_then(|t| t.get("team")).map(String::as_str),
        Some("core")
    );
    let got = a
        .get_function()
        .function_name("fn-0")
        .send()
        .await
        .expect("get");
    assert_eq!(
        got.tags().and_then(|t| t.get("team")).map(String::as_str),
        Some("core")
    );

    let settings = a.get_account_settings().send().await.expect("settings");
    let usage = settings.account_usage().expect("usage");
    assert_eq!(usage.function_count(), 7);
    assert!(usage.total_code_size() > 0);
    let limit = settings.account_limit().expect("limit");
    assert_eq!(limit.code_size_zipped(), 52_428_800);
    assert!(limit.concurrent_executions() > 0);
}

#[tokio::test]
async fn sigterm_stops_the_server_cleanly() {
    let server = Server::start();
    let status = server.stop();
    assert!(status.success(), "exit status {status:?}");
}
