use std::io::Write as _;
use std::sync::Arc;

use api_types as wire;
use base64::Engine as _;
use runtimes::{Catalog, Kind, RuntimeInfo};

use super::*;

fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in files {
        let opts = zip::write::SimpleFileOptions::default().unix_permissions(0o755);
        w.start_file(*name, opts).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

struct Fixture {
    _dir: tempfile::TempDir,
    control: Control,
    scope: Scope,
}

fn fixture() -> Fixture {
    fixture_with_quota(crate::account::TOTAL_CODE_SIZE_LIMIT)
}

/// A control plane whose accounts may store `code_storage_bytes` of packages.
fn fixture_with_quota(code_storage_bytes: u64) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(store_sqlite::SqliteStore::open_in_memory().unwrap());
    let blobs = blobs::BlobStore::open(dir.path()).unwrap();
    let catalog = Catalog::with(vec![RuntimeInfo {
        id: "provided.al2023".into(),
        kind: Kind::Provided,
        version_hash: "ab".into(),
    }]);
    let control = Control::new(
        store,
        blobs,
        Arc::new(catalog),
        Settings {
            account_concurrency: 100,
            vpc_subnets: [("subnet-0lan".to_owned(), "vpc-0home".to_owned())].into(),
            code_storage_bytes,
        },
        Arc::new(NoHooks),
        CodeUrlSigner::new([1; 32]),
    );
    Fixture {
        _dir: dir,
        control,
        scope: store::conformance::scope("123456789012", "us-east-1"),
    }
}

fn create_req(name: &str, zip: &[u8]) -> wire::CreateFunctionRequest {
    wire::CreateFunctionRequest {
        function_name: Some(name.into()),
        runtime: Some("provided.al2023".into()),
        role: Some("arn:aws:iam::123456789012:role/lambda".into()),
        handler: Some("bootstrap".into()),
        code: Some(wire::FunctionCode {
            zip_file: Some(b64(zip)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn code(e: &ControlError) -> &'static str {
    match e {
        ControlError::Validation(_) => "ValidationException",
        ControlError::InvalidParameter(_) => "InvalidParameterValueException",
        ControlError::NotFound(_) | ControlError::FunctionNotFound(_) => {
            "ResourceNotFoundException"
        }
        ControlError::Conflict(_) => "ResourceConflictException",
        ControlError::PreconditionFailed(_) => "PreconditionFailedException",
        ControlError::TooLarge(_) => "RequestEntityTooLargeException",
        ControlError::AccessDenied(_) => "AccessDeniedException",
        ControlError::CodeStorageExceeded(_) => "CodeStorageExceededException",
        ControlError::ProvisionedConfigNotFound(_) => {
            "ProvisionedConcurrencyConfigNotFoundException"
        }
        ControlError::Store(_) | ControlError::Blobs(_) => "ServiceException",
    }
}

#[tokio::test]
async fn create_get_list_delete() {
    let f = fixture();
    let zip = zip_of(&[("bootstrap", b"#!/bin/sh\n")]);
    let created = f
        .control
        .create_function(&f.scope, create_req("f", &zip))
        .await
        .unwrap();
    assert_eq!(
        created.function_arn,
        "arn:aws:lambda:us-east-1:123456789012:function:f"
    );
    assert_eq!(created.state.as_deref(), Some("Pending"));
    assert_eq!(created.code_size, zip.len() as u64);
    assert_eq!(created.code_sha256, blobs::Digest256::of(&zip).base64);
    assert_eq!(
        (
            created.memory_size,
            created.timeout,
            created.ephemeral_storage.size
        ),
        (128, 3, 512)
    );
    assert_eq!(created.version, "$LATEST");
    assert_eq!(created.revision_id.len(), 36);
    assert!(created.last_modified.ends_with("+0000"));

    let got = f
        .control
        .get_function(&f.scope, "f", None, 1000)
        .await
        .unwrap();
    assert_eq!(got.configuration.state.as_deref(), Some("Active"));
    assert_eq!(
        got.configuration.last_update_status.as_deref(),
        Some("Successful")
    );
    assert_eq!(got.configuration.revision_id, created.revision_id);
    assert_eq!(got.code.repository_type, "S3");
    // The download link works, and only as issued.
    let (path, query) = got.code.location.split_once('?').unwrap();
    let digest = path
        .trim_start_matches(code_url::PATH_PREFIX)
        .trim_end_matches(".zip");
    let sig = query.split("Signature=").nth(1).unwrap();
    assert_eq!(
        f.control
            .download_code(digest, 1600, sig, 1000)
            .await
            .unwrap(),
        zip
    );
    assert!(
        f.control
            .download_code(digest, 1600, sig, 1601)
            .await
            .is_err()
    );

    // Name, partial ARN and full ARN all reach it.
    for raw in [
        "f",
        "123456789012:function:f",
        "arn:aws:lambda:us-east-1:123456789012:function:f",
    ] {
        f.control
            .get_function_configuration(&f.scope, raw, None)
            .await
            .unwrap();
    }
    let list = f
        .control
        .list_functions(&f.scope, None, None, None)
        .await
        .unwrap();
    assert_eq!(list.functions.len(), 1);
    assert!(list.functions[0].state.is_none());

    f.control
        .delete_function(&f.scope, "f", None)
        .await
        .unwrap();
    let e = f
        .control
        .get_function(&f.scope, "f", None, 0)
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Function not found: arn:aws:lambda:us-east-1:123456789012:function:f"
    );
    assert!(
        f.control.blobs().read(digest).is_err(),
        "unused package collected"
    );
}

#[tokio::test]
async fn duplicate_and_not_found_and_other_accounts() {
    let f = fixture();
    let zip = zip_of(&[("bootstrap", b"x")]);
    f.control
        .create_function(&f.scope, create_req("f", &zip))
        .await
        .unwrap();
    let e = f
        .control
        .create_function(&f.scope, create_req("f", &zip))
        .await
        .unwrap_err();
    assert_eq!(
        (code(&e), e.to_string().as_str()),
        ("ResourceConflictException", "Function already exist: f")
    );
    let e = f
        .control
        .get_function_configuration(
            &f.scope,
            "arn:aws:lambda:eu-west-1:123456789012:function:f",
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Functions from 'eu-west-1' are not reachable in this region ('us-east-1')"
    );
    let e = f
        .control
        .get_function_configuration(
            &f.scope,
            "arn:aws:lambda:us-east-1:999999999999:function:f",
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDeniedException");
    let other = store::conformance::scope("999999999999", "us-east-1");
    let e = f
        .control
        .get_function_configuration(&other, "f", None)
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ResourceNotFoundException");
    let e = f
        .control
        .get_function_configuration(&f.scope, "f", Some("7"))
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Function not found: arn:aws:lambda:us-east-1:123456789012:function:f:7"
    );
    let e = f
        .control
        .get_function_configuration(&f.scope, "f:1", Some("$LATEST"))
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "The derived qualifier from the function name does not match the specified qualifier."
    );
    let e = f
        .control
        .get_function_configuration(&f.scope, &"a".repeat(65), None)
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ResourceNotFoundException");
}

#[tokio::test]
async fn validation_errors_change_nothing() {
    let f = fixture();
    let zip = zip_of(&[("bootstrap", b"x")]);
    let check =
        |req: wire::CreateFunctionRequest, want_code: &'static str, want_msg: &'static str| {
            let control = &f.control;
            let scope = &f.scope;
            async move {
                let e = control.create_function(scope, req).await.unwrap_err();
                assert_eq!(code(&e), want_code, "{e}");
                assert!(e.to_string().contains(want_msg), "{e}");
                assert_eq!(
                    control.store().usage(scope).await.unwrap().function_count,
                    0
                );
            }
        };
    let mut r = create_req("f", &zip);
    r.memory_size = Some(64);
    check(r, "ValidationException", "Value '64' at 'memorySize' failed to satisfy constraint: Member must have value greater than or equal to 128").await;
    let mut r = create_req("f", &zip);
    r.memory_size = Some(10_241);
    check(
        r,
        "ValidationException",
        "Member must have value less than or equal to 10240",
    )
    .await;
    let mut r = create_req("f", &zip);
    r.timeout = Some(0);
    check(r, "ValidationException", "at 'timeout'").await;
    let mut r = create_req("f", &zip);
    r.timeout = Some(901);
    check(
        r,
        "ValidationException",
        "Member must have value less than or equal to 900",
    )
    .await;
    let mut r = create_req("f", &zip);
    r.ephemeral_storage = Some(wire::EphemeralStorage { size: Some(511) });
    check(r, "ValidationException", "at 'ephemeralStorage.size'").await;
    let mut r = create_req("f", &zip);
    r.role = Some("r1".into());
    check(
        r,
        "ValidationException",
        "Value 'r1' at 'role' failed to satisfy constraint",
    )
    .await;
    let mut r = create_req("f", &zip);
    r.role = None;
    check(
        r,
        "ValidationException",
        "Value null at 'role' failed to satisfy constraint: Member must not be null",
    )
    .await;
    let mut r = create_req("f", &zip);
    r.handler = Some("has space".into());
    check(r, "ValidationException", "at 'handler'").await;
    check(create_req("my-function!", &zip), "ValidationException", "at 'functionName' failed to satisfy constraint: Member must satisfy regular expression pattern").await;
    check(
        create_req(&"a".repeat(65), &zip),
        "InvalidParameterValueException",
        "Member must have length less than or equal to 64",
    )
    .await;
    let mut r = create_req("f", &zip);
    r.runtime = Some("python2.7".into());
    check(
        r,
        "InvalidParameterValueException",
        "The runtime parameter of python2.7 is no longer supported",
    )
    .await;
    let mut r = create_req("f", &zip);
    r.runtime = Some("nodejs99.x".into());
    check(r, "InvalidParameterValueException", "Value nodejs99.x at 'runtime' failed to satisfy constraint: Member must satisfy enum value set: [provided.al2023] or be a valid ARN").await;
    // A runtime Lambda has but this host cannot run: AWS's message, then
    // what to install.
    let mut r = create_req("f", &zip);
    r.runtime = Some("python3.12".into());
    check(r, "InvalidParameterValueException", "Value python3.12 at 'runtime' failed to satisfy constraint: Member must satisfy enum value set: [provided.al2023] or be a valid ARN. python3.12 needs /usr/bin/python3.12").await;
    let mut r = create_req("f", &zip);
    r.environment = Some(wire::Environment {
        variables: Some([("AWS_REGION".to_string(), "x".to_string())].into()),
    });
    check(
        r,
        "InvalidParameterValueException",
        "Reserved keys used in this request: AWS_REGION",
    )
    .await;
    let mut r = create_req("f", &zip);
    r.environment = Some(wire::Environment {
        variables: Some([("BIG".to_string(), "x".repeat(5000))].into()),
    });
    check(
        r,
        "InvalidParameterValueException",
        "exceeded the 4KB limit",
    )
    .await;
    let mut r = create_req("f", &zip);
    r.code = Some(wire::FunctionCode {
        zip_file: Some(b64(b"this is not a zip")),
        ..Default::default()
    });
    check(
        r,
        "InvalidParameterValueException",
        "Could not unzip uploaded file. Please check your file, then try to upload again.",
    )
    .await;
    let mut r = create_req("f", &zip);
    r.tags = Some(
        (0..51)
            .map(|i| (format!("k{i}"), "v".to_string()))
            .collect(),
    );
    check(
        r,
        "InvalidParameterValueException",
        "Number of tags exceeds resource tag limit.",
    )
    .await;
    let mut r = create_req("f", &zip);
    r.architectures = Some(vec!["x86_64".into(), "arm64".into()]);
    check(r, "ValidationException", "at 'architectures'").await;
    let mut r = create_req("f", &zip);
    r.runtime = None;
    check(
        r,
        "InvalidParameterValueException",
        "Runtime and Handler are mandatory",
    )
    .await;
    // Nothing was left behind by any refused package.
    assert!(
        std::fs::read_dir(f._dir.path().join("code"))
            .unwrap()
            .next()
            .is_none()
    );
}

#[tokio::test]
async fn updates_bump_revision_and_honour_preconditions() {
    let f = fixture();
    let zip1 = zip_of(&[("bootstrap", b"one")]);
    let zip2 = zip_of(&[("bootstrap", b"two")]);
    let c = f
        .control
        .create_function(&f.scope, create_req("f", &zip1))
        .await
        .unwrap();

    let upd = wire::UpdateFunctionConfigurationRequest {
        memory_size: Some(512),
        environment: Some(wire::Environment {
            variables: Some([("GREETING".to_string(), "hi".to_string())].into()),
        }),
        revision_id: Some("00000000-0000-0000-0000-000000000000".into()),
        ..Default::default()
    };
    let e = f
        .control
        .update_function_configuration(&f.scope, "f", upd.clone())
        .await
        .unwrap_err();
    assert_eq!(code(&e), "PreconditionFailedException");
    let ok = wire::UpdateFunctionConfigurationRequest {
        revision_id: Some(c.revision_id.clone()),
        ..upd
    };
    let u = f
        .control
        .update_function_configuration(&f.scope, "f", ok)
        .await
        .unwrap();
    assert_eq!(u.memory_size, 512);
    assert_eq!(u.last_update_status.as_deref(), Some("InProgress"));
    assert_eq!(u.environment.as_ref().unwrap().variables["GREETING"], "hi");
    assert_ne!(u.revision_id, c.revision_id);

    let u2 = f
        .control
        .update_function_code(
            &f.scope,
            "f",
            wire::UpdateFunctionCodeRequest {
                zip_file: Some(b64(&zip2)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(u2.code_sha256, blobs::Digest256::of(&zip2).base64);
    assert_ne!(u2.revision_id, u.revision_id);
    assert_eq!(
        u2.memory_size, 512,
        "configuration kept across a code update"
    );
    assert!(
        f.control
            .blobs()
            .read(&blobs::Digest256::of(&zip1).hex)
            .is_err(),
        "old package collected"
    );

    let e = f
        .control
        .update_function_code(
            &f.scope,
            "nope",
            wire::UpdateFunctionCodeRequest {
                zip_file: Some(b64(&zip2)),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ResourceNotFoundException");
}

#[tokio::test]
async fn tags_and_account_settings() {
    let f = fixture();
    let zip = zip_of(&[("bootstrap", b"x")]);
    let mut req = create_req("f", &zip);
    req.tags = Some([("a".to_string(), "1".to_string())].into());
    f.control.create_function(&f.scope, req).await.unwrap();
    let arn = "arn:aws:lambda:us-east-1:123456789012:function:f";
    f.control
        .tag_resource(
            &f.scope,
            arn,
            wire::TagResourceRequest {
                tags: Some([("b".to_string(), "2".to_string())].into()),
            },
        )
        .await
        .unwrap();
    let tags = f.control.list_tags(&f.scope, arn).await.unwrap().tags;
    assert_eq!(tags.len(), 2);
    f.control
        .untag_resource(&f.scope, arn, &["a".into(), "zzz".into()])
        .await
        .unwrap();
    assert_eq!(
        f.control
            .list_tags(&f.scope, arn)
            .await
            .unwrap()
            .tags
            .keys()
            .collect::<Vec<_>>(),
        ["b"]
    );
    let e = f
        .control
        .list_tags(&f.scope, &format!("{arn}:1"))
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidParameterValueException");
    let e = f
        .control
        .list_tags(&f.scope, "arn:aws:something")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ValidationException");
    let e = f
        .control
        .list_tags(
            &f.scope,
            "arn:aws:lambda:us-east-1:123456789012:function:nope",
        )
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ResourceNotFoundException");

    let s = f.control.account_settings(&f.scope).await.unwrap();
    assert_eq!(s.account_usage.function_count, 1);
    assert_eq!(s.account_usage.total_code_size, zip.len() as u64);
    assert_eq!(s.account_limit.concurrent_executions, 100);
    assert_eq!(s.account_limit.unreserved_concurrent_executions, 100);
    assert_eq!(s.account_limit.code_size_zipped, 52_428_800);
}

#[tokio::test]
async fn event_invoke_config_ranges_and_paging() {
    let f = fixture();
    let zip = zip_of(&[("bootstrap", b"#!/bin/sh\n")]);
    f.control
        .create_function(&f.scope, create_req("cfg", &zip))
        .await
        .unwrap();
    let put = |retries: Option<i64>, age: Option<i64>| wire::PutFunctionEventInvokeConfigRequest {
        maximum_retry_attempts: retries,
        maximum_event_age_in_seconds: age,
        destination_config: None,
    };
    let e = f
        .control
        .put_event_invoke_config(&f.scope, "cfg", None, put(Some(3), Some(59)))
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "2 validation errors detected: Value '3' at 'maximumRetryAttempts' failed to satisfy constraint: Member must have value less than or equal to 2; Value '59' at 'maximumEventAgeInSeconds' failed to satisfy constraint: Member must have value greater than or equal to 60"
    );
    let e = f
        .control
        .put_event_invoke_config(&f.scope, "cfg", None, put(Some(-1), Some(21_601)))
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ValidationException");
    assert!(e.to_string().contains("less than or equal to 21600"), "{e}");
    // Nothing was stored by the refusals.
    assert_eq!(
        code(
            &f.control
                .get_event_invoke_config(&f.scope, "cfg", None)
                .await
                .unwrap_err()
        ),
        "ResourceNotFoundException"
    );
    let ok = f
        .control
        .put_event_invoke_config(&f.scope, "cfg", Some("$LATEST"), put(Some(0), Some(60)))
        .await
        .unwrap();
    assert_eq!(ok.maximum_retry_attempts, Some(0));
    assert_eq!(ok.maximum_event_age_in_seconds, Some(60));
    // Two more: version 1 and an alias to it.
    f.control
        .publish_version(&f.scope, "cfg", wire::PublishVersionRequest::default())
        .await
        .unwrap();
    f.control
        .create_alias(
            &f.scope,
            "cfg",
            wire::CreateAliasRequest {
                name: Some("live".into()),
                function_version: Some("1".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    for q in ["1", "live"] {
        f.control
            .put_event_invoke_config(&f.scope, "cfg", Some(q), put(Some(1), Some(120)))
            .await
            .unwrap();
    }
    // Pages of one, then of two: each marker leads on, and together the
    // pages hold each configuration once.
    for size in ["1", "2"] {
        let (mut marker, mut arns, mut pages) = (None::<String>, Vec::new(), 0);
        loop {
            let page = f
                .control
                .list_event_invoke_configs(&f.scope, "cfg", marker.as_deref(), Some(size))
                .await
                .unwrap();
            pages += 1;
            assert!(page.function_event_invoke_configs.len() <= size.parse().unwrap());
            arns.extend(
                page.function_event_invoke_configs
                    .iter()
                    .map(|c| c.function_arn.clone()),
            );
            match page.next_marker {
                Some(m) => marker = Some(m),
                None => break,
            }
            assert!(pages < 10, "the markers never end");
        }
        arns.sort();
        let base = "arn:aws:lambda:us-east-1:123456789012:function:cfg";
        assert_eq!(
            arns,
            [
                format!("{base}:$LATEST"),
                format!("{base}:1"),
                format!("{base}:live")
            ],
            "pages of {size}"
        );
        assert_eq!(pages, if size == "1" { 3 } else { 2 }, "pages of {size}");
    }
    // All in one page: no marker.
    let page = f
        .control
        .list_event_invoke_configs(&f.scope, "cfg", None, Some("3"))
        .await
        .unwrap();
    assert_eq!(page.function_event_invoke_configs.len(), 3);
    assert_eq!(page.next_marker, None);
    let e = f
        .control
        .list_event_invoke_configs(&f.scope, "cfg", None, Some("51"))
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ValidationException");
}

#[tokio::test]
async fn reservations_leave_the_minimum_unreserved_and_respect_provisioned() {
    let f = fixture(); // account concurrency 100: minimum unreserved 10
    let zip = zip_of(&[("bootstrap", b"#!/bin/sh\n")]);
    for name in ["a", "b"] {
        let mut req = create_req(name, &zip);
        req.publish = Some(true);
        f.control.create_function(&f.scope, req).await.unwrap();
    }
    let put = |n: i64| wire::PutFunctionConcurrencyRequest {
        reserved_concurrent_executions: Some(n),
    };
    f.control
        .put_function_concurrency(&f.scope, "a", put(60))
        .await
        .unwrap();
    // 60 + 31 would leave 9 < 10.
    let e = f
        .control
        .put_function_concurrency(&f.scope, "b", put(31))
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Specified ReservedConcurrentExecutions for function decreases account's UnreservedConcurrentExecution below its minimum value of [10]."
    );
    f.control
        .put_function_concurrency(&f.scope, "b", put(30))
        .await
        .unwrap();
    // Re-putting one's own value never fails; 0 always succeeds.
    f.control
        .put_function_concurrency(&f.scope, "a", put(60))
        .await
        .unwrap();
    f.control
        .put_function_concurrency(&f.scope, "a", put(0))
        .await
        .unwrap();
    let settings = f.control.account_settings(&f.scope).await.unwrap();
    assert_eq!(settings.account_limit.unreserved_concurrent_executions, 70);
    // Provisioned concurrency must fit inside a reservation.
    let prov = |n: i64| wire::PutProvisionedConcurrencyConfigRequest {
        provisioned_concurrent_executions: Some(n),
    };
    let e = f
        .control
        .put_provisioned_concurrency(&f.scope, "b", Some("1"), prov(31))
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidParameterValueException");
    f.control
        .put_provisioned_concurrency(&f.scope, "b", Some("1"), prov(20))
        .await
        .unwrap();
    let e = f
        .control
        .put_function_concurrency(&f.scope, "b", put(19))
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        " ReservedConcurrentExecutions  19 should not be lower than function's total provisioned concurrency [20]."
    );
    // Nothing changed by the refusals.
    let b = f
        .control
        .get_function_concurrency(&f.scope, "b")
        .await
        .unwrap();
    assert_eq!(b.reserved_concurrent_executions, Some(30));
}

#[tokio::test]
async fn publishing_is_idempotent_until_latest_changes() {
    let f = fixture();
    let zip = zip_of(&[("bootstrap", b"#!/bin/sh\n")]);
    f.control
        .create_function(&f.scope, create_req("p", &zip))
        .await
        .unwrap();
    let publish = || wire::PublishVersionRequest::default();
    let v1 = f
        .control
        .publish_version(&f.scope, "p", publish())
        .await
        .unwrap();
    let again = f
        .control
        .publish_version(&f.scope, "p", publish())
        .await
        .unwrap();
    assert_eq!((v1.version.as_str(), again.version.as_str()), ("1", "1"));
    assert_eq!(v1.revision_id, again.revision_id);
    f.control
        .update_function_configuration(
            &f.scope,
            "p",
            wire::UpdateFunctionConfigurationRequest {
                description: Some("changed".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let v2 = f
        .control
        .publish_version(&f.scope, "p", publish())
        .await
        .unwrap();
    assert_eq!(v2.version, "2");
    assert_eq!(v2.description, "changed");
    // Deleting the newest version does not free its number.
    f.control
        .delete_function(&f.scope, "p", Some("2"))
        .await
        .unwrap();
    f.control
        .update_function_configuration(
            &f.scope,
            "p",
            wire::UpdateFunctionConfigurationRequest {
                description: Some("again".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let v3 = f
        .control
        .publish_version(&f.scope, "p", publish())
        .await
        .unwrap();
    assert_eq!(v3.version, "3");
}

#[tokio::test]
async fn vpc_config_names_only_mapped_subnets() {
    let f = fixture();
    let zip = zip_of(&[("bootstrap", b"#!/bin/sh\n")]);
    let vpc = |subnets: &[&str]| wire::VpcConfig {
        subnet_ids: Some(subnets.iter().map(|s| s.to_string()).collect()),
        security_group_ids: Some(vec!["sg-0web".into()]),
        ipv6_allowed_for_dual_stack: None,
    };
    let mut r = create_req("f", &zip);
    r.vpc_config = Some(vpc(&["subnet-0lan", "subnet-0nope"]));
    let e = f.control.create_function(&f.scope, r).await.unwrap_err();
    assert_eq!(code(&e), "InvalidParameterValueException");
    assert!(
        e.to_string()
            .contains("InvalidSubnetID.NotFound. EC2 Error Message: The subnet ID 'subnet-0nope' does not exist"),
        "{e}"
    );
    assert_eq!(
        f.control
            .store()
            .usage(&f.scope)
            .await
            .unwrap()
            .function_count,
        0
    );
    let mut r = create_req("f", &zip);
    r.vpc_config = Some(vpc(&["subnet-0lan"]));
    let created = f.control.create_function(&f.scope, r).await.unwrap();
    let v = created.vpc_config.unwrap();
    assert_eq!(v.subnet_ids, ["subnet-0lan"]);
    assert_eq!(v.security_group_ids, ["sg-0web"]);
    assert_eq!(v.vpc_id, "vpc-0home");
    // An update naming an unknown subnet changes nothing.
    let upd = wire::UpdateFunctionConfigurationRequest {
        vpc_config: Some(vpc(&["subnet-0other"])),
        ..Default::default()
    };
    let e = f
        .control
        .update_function_configuration(&f.scope, "f", upd)
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidParameterValueException");
    let got = f
        .control
        .get_function(&f.scope, "f", None, 1000)
        .await
        .unwrap();
    let v = got.configuration.vpc_config.unwrap();
    assert_eq!(v.subnet_ids, ["subnet-0lan"]);
    assert_eq!(v.vpc_id, "vpc-0home");
    // Leaving the VPC: no subnets, no VPC id.
    let upd = wire::UpdateFunctionConfigurationRequest {
        vpc_config: Some(vpc(&[])),
        ..Default::default()
    };
    let updated = f
        .control
        .update_function_configuration(&f.scope, "f", upd)
        .await
        .unwrap();
    let v = updated.vpc_config.unwrap();
    assert!(v.subnet_ids.is_empty());
    assert_eq!(v.vpc_id, "");
}

/// Incompressible content, so that the zip is about as large as it.
fn noise(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[tokio::test]
async fn code_storage_is_bounded_per_account_over_every_region() {
    let f = fixture_with_quota(100_000);
    let zip = zip_of(&[("bootstrap", b"#!/bin/sh\n"), ("blob", &noise(60_000))]);
    let size = zip.len() as u64;
    f.control
        .create_function(&f.scope, create_req("a", &zip))
        .await
        .unwrap();
    let settings = f.control.account_settings(&f.scope).await.unwrap();
    assert_eq!(settings.account_limit.total_code_size, 100_000);
    assert_eq!(settings.account_usage.total_code_size, size);
    // Another region of the same account shares the quota.
    let west = store::conformance::scope("123456789012", "us-west-2");
    let other = zip_of(&[("bootstrap", b"#!/bin/sh\n"), ("blob", &noise(50_000))]);
    let e = f
        .control
        .create_function(&west, create_req("b", &other))
        .await
        .unwrap_err();
    assert_eq!(code(&e), "CodeStorageExceededException");
    assert_eq!(e.to_string(), "Code storage limit exceeded.");
    assert_eq!(
        f.control
            .store()
            .account_code_size(&west.account)
            .await
            .unwrap(),
        size,
        "nothing stored"
    );
    assert!(
        !f.control
            .blobs()
            .code_dir(&blobs::Digest256::of(&other).hex)
            .exists(),
        "the refused package is not on disk"
    );
    // A new version keeps $LATEST's package once more.
    let e = f
        .control
        .publish_version(&f.scope, "a", Default::default())
        .await
        .unwrap_err();
    assert_eq!(code(&e), "CodeStorageExceededException");
    // Replacing $LATEST's package counts only the difference.
    let smaller = zip_of(&[("bootstrap", b"#!/bin/sh\n"), ("blob", &noise(30_000))]);
    f.control
        .update_function_code(
            &f.scope,
            "a",
            wire::UpdateFunctionCodeRequest {
                zip_file: Some(b64(&smaller)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    f.control
        .publish_version(&f.scope, "a", Default::default())
        .await
        .unwrap();
    assert_eq!(
        f.control
            .account_settings(&f.scope)
            .await
            .unwrap()
            .account_usage
            .total_code_size,
        2 * smaller.len() as u64
    );
    // Another account has its own quota.
    let other_account = store::conformance::scope("210987654321", "us-east-1");
    f.control
        .create_function(&other_account, create_req("b", &other))
        .await
        .unwrap();
}
