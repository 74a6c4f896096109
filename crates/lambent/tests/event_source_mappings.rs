//! Event source mappings through AWS's own Rust SDK: the five operations,
//! their answers, Lambda's validation errors, and mappings surviving a
//! restart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use aws_sdk_lambda::types::{EventSourcePosition, FunctionResponseType, ScalingConfig};
use common::*;

const QUEUE: &str = "arn:aws:sqs:us-east-1:123456789012:jobs";

#[tokio::test]
async fn mapping_lifecycle_through_the_rust_sdk() {
    let server = Server::start();
    let a = server.client(KEY_A).await;
    let arn = create_noop_function(&a, "consumer").await;

    let created = a
        .create_event_source_mapping()
        .function_name("consumer")
        .event_source_arn(QUEUE)
        .enabled(false)
        .send()
        .await
        .expect("create");
    let uuid = created.uuid().unwrap().to_owned();
    assert_eq!(uuid.len(), 36);
    assert_eq!(created.state(), Some("Creating"));
    assert_eq!(created.state_transition_reason(), Some("USER_INITIATED"));
    assert_eq!(created.batch_size(), Some(10));
    assert_eq!(created.maximum_batching_window_in_seconds(), Some(0));
    assert_eq!(created.function_arn(), Some(arn.as_str()));
    assert_eq!(created.event_source_arn(), Some(QUEUE));
    assert_eq!(
        created.event_source_mapping_arn(),
        Some(format!("arn:aws:lambda:us-east-1:111111111111:event-source-mapping:{uuid}").as_str())
    );
    assert!(created.last_modified().is_some());
    // SQS mappings carry no stream members.
    assert_eq!(created.starting_position(), None);
    assert_eq!(created.parallelization_factor(), None);
    assert_eq!(created.last_processing_result(), None);

    let got = a
        .get_event_source_mapping()
        .uuid(&uuid)
        .send()
        .await
        .expect("get");
    assert_eq!(got.state(), Some("Disabled"));

    let updated = a
        .update_event_source_mapping()
        .uuid(&uuid)
        .batch_size(5)
        .function_response_types(FunctionResponseType::ReportBatchItemFailures)
        .scaling_config(ScalingConfig::builder().maximum_concurrency(3).build())
        .send()
        .await
        .expect("update");
    assert_eq!(updated.state(), Some("Updating"));
    assert_eq!(updated.batch_size(), Some(5));
    assert_eq!(
        updated.function_response_types(),
        &[FunctionResponseType::ReportBatchItemFailures]
    );
    assert_eq!(
        updated
            .scaling_config()
            .and_then(|s| s.maximum_concurrency()),
        Some(3)
    );
    let got = a
        .get_event_source_mapping()
        .uuid(&uuid)
        .send()
        .await
        .unwrap();
    assert_eq!(got.state(), Some("Disabled"));
    assert_eq!(got.batch_size(), Some(5));

    // A second mapping, qualified by version: listing by function and by
    // source, one page at a time.
    a.publish_version()
        .function_name("consumer")
        .send()
        .await
        .unwrap();
    let second = a
        .create_event_source_mapping()
        .function_name("consumer:1")
        .event_source_arn("arn:aws:sqs:us-east-1:123456789012:other")
        .enabled(false)
        .send()
        .await
        .unwrap();
    assert_eq!(second.function_arn(), Some(format!("{arn}:1").as_str()));
    let all = a
        .list_event_source_mappings()
        .function_name("consumer")
        .send()
        .await
        .unwrap();
    assert_eq!(all.event_source_mappings().len(), 2);
    let only_v1 = a
        .list_event_source_mappings()
        .function_name("consumer:1")
        .send()
        .await
        .unwrap();
    assert_eq!(only_v1.event_source_mappings().len(), 1);
    let by_source = a
        .list_event_source_mappings()
        .event_source_arn(QUEUE)
        .send()
        .await
        .unwrap();
    assert_eq!(by_source.event_source_mappings().len(), 1);
    assert_eq!(
        by_source.event_source_mappings()[0].uuid(),
        Some(uuid.as_str())
    );
    let page1 = a
        .list_event_source_mappings()
        .max_items(1)
        .send()
        .await
        .unwrap();
    assert_eq!(page1.event_source_mappings().len(), 1);
    let marker = page1.next_marker().expect("a second page").to_owned();
    let page2 = a
        .list_event_source_mappings()
        .max_items(1)
        .marker(marker)
        .send()
        .await
        .unwrap();
    assert_eq!(page2.event_source_mappings().len(), 1);
    assert_eq!(page2.next_marker(), None);
    assert_ne!(
        page1.event_source_mappings()[0].uuid(),
        page2.event_source_mappings()[0].uuid()
    );

    // Another account sees none of them.
    let b = server.client(KEY_B).await;
    let e = b
        .get_event_source_mapping()
        .uuid(&uuid)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code_and_message(&e).0, "ResourceNotFoundException");
    assert!(
        b.list_event_source_mappings()
            .send()
            .await
            .unwrap()
            .event_source_mappings()
            .is_empty()
    );

    let deleted = a
        .delete_event_source_mapping()
        .uuid(&uuid)
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.state(), Some("Deleting"));
    let gone = async {
        for _ in 0..(200.0 * timeout_scale()) as u32 {
            match a.get_event_source_mapping().uuid(&uuid).send().await {
                Err(e) if code_and_message(&e).0 == "ResourceNotFoundException" => return true,
                _ => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        }
        false
    };
    assert!(gone.await, "the deleted mapping is still there");
    let e = a
        .delete_event_source_mapping()
        .uuid(&uuid)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code_and_message(&e),
        (
            "ResourceNotFoundException".into(),
            "The resource you requested does not exist.".into()
        )
    );
}

#[tokio::test]
async fn each_validation_error_is_lambdas_and_changes_nothing() {
    let server = Server::start();
    let a = server.client(KEY_A).await;
    create_noop_function(&a, "f").await;

    macro_rules! refused {
        ($req:expr, $code:expr, $msg:expr) => {{
            let e = $req.send().await.expect_err("refused");
            assert_eq!(code_and_message(&e), ($code.to_string(), $msg.to_string()));
        }};
    }
    let create = || {
        a.create_event_source_mapping()
            .function_name("f")
            .event_source_arn(QUEUE)
            .enabled(false)
    };
    refused!(
        create().batch_size(0),
        "ValidationException",
        "1 validation error detected: Value '0' at 'batchSize' failed to satisfy constraint: Member must have value greater than or equal to 1"
    );
    refused!(
        create().batch_size(10_001),
        "ValidationException",
        "1 validation error detected: Value '10001' at 'batchSize' failed to satisfy constraint: Member must have value less than or equal to 10000"
    );
    refused!(
        create().maximum_batching_window_in_seconds(301),
        "ValidationException",
        "1 validation error detected: Value '301' at 'maximumBatchingWindowInSeconds' failed to satisfy constraint: Member must have value less than or equal to 300"
    );
    refused!(
        create().scaling_config(ScalingConfig::builder().maximum_concurrency(1).build()),
        "ValidationException",
        "1 validation error detected: Value '1' at 'scalingConfig.maximumConcurrency' failed to satisfy constraint: Member must have value greater than or equal to 2"
    );
    refused!(
        create().batch_size(11),
        "InvalidParameterValueException",
        "Maximum batch window in seconds must be greater than 0 if maximum batch size is greater than 10"
    );
    refused!(
        create()
            .event_source_arn("arn:aws:sqs:us-east-1:123456789012:jobs.fifo")
            .batch_size(11)
            .maximum_batching_window_in_seconds(1),
        "InvalidParameterValueException",
        "Batch size cannot be greater than 10 for an SQS FIFO queue."
    );
    refused!(
        create().starting_position(EventSourcePosition::Latest),
        "InvalidParameterValueException",
        "Unsupported StartingPosition parameter for given event source mapping type."
    );
    refused!(
        create().maximum_retry_attempts(3),
        "InvalidParameterValueException",
        "Unsupported MaximumRetryAttempts parameter for given event source mapping type."
    );
    refused!(
        create().event_source_arn("arn:aws:s3:::bucket"),
        "InvalidParameterValueException",
        "Unrecognized event source."
    );
    refused!(
        create().function_name("missing"),
        "ResourceNotFoundException",
        "Function not found: arn:aws:lambda:us-east-1:111111111111:function:missing"
    );
    refused!(
        create().event_source_arn("arn:aws:kinesis:us-east-1:123456789012:stream/s"),
        "InvalidParameterValueException",
        "1 validation error detected: Value null at 'startingPosition' failed to satisfy constraint: Member must not be null."
    );
    refused!(
        create()
            .event_source_arn(
                "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2026-01-01T00:00:00.000"
            )
            .starting_position(EventSourcePosition::AtTimestamp)
            .starting_position_timestamp(aws_sdk_lambda::primitives::DateTime::from_secs(1)),
        "InvalidParameterValueException",
        "Unsupported starting position for arn type: arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2026-01-01T00:00:00.000"
    );
    refused!(
        create().event_source_arn("arn:aws:mq:us-east-1:123456789012:broker:b:b-1"),
        "InvalidParameterValueException",
        "Required 'queues' parameter is missing."
    );
    refused!(
        create().filter_criteria(
            aws_sdk_lambda::types::FilterCriteria::builder()
                .filters(
                    aws_sdk_lambda::types::Filter::builder()
                        .pattern("{not json")
                        .build()
                )
                .build()
        ),
        "InvalidParameterValueException",
        "Invalid filter pattern definition."
    );
    // Nothing was stored by any of them.
    assert!(
        a.list_event_source_mappings()
            .send()
            .await
            .unwrap()
            .event_source_mappings()
            .is_empty()
    );

    let m = create().send().await.expect("a valid mapping");
    let uuid = m.uuid().unwrap();
    let e = create().send().await.expect_err("a duplicate");
    assert_eq!(
        code_and_message(&e),
        (
            "ResourceConflictException".into(),
            format!(
                "An event source mapping with SQS arn (\" {QUEUE} \") and function (\" f \") already exists. Please update or delete the existing mapping with UUID {uuid}"
            )
        )
    );
    // A refused update leaves the mapping as it was.
    let e = a
        .update_event_source_mapping()
        .uuid(uuid)
        .batch_size(50)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code_and_message(&e).1,
        "Maximum batch window in seconds must be greater than 0 if maximum batch size is greater than 10"
    );
    let e = a
        .update_event_source_mapping()
        .uuid(uuid)
        .bisect_batch_on_function_error(true)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code_and_message(&e).0, "InvalidParameterValueException");
    let got = a
        .get_event_source_mapping()
        .uuid(uuid)
        .send()
        .await
        .unwrap();
    assert_eq!(got.batch_size(), Some(10));
    let e = a
        .update_event_source_mapping()
        .uuid("00000000-0000-0000-0000-000000000000")
        .batch_size(5)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code_and_message(&e).0, "ResourceNotFoundException");
    let e = a
        .list_event_source_mappings()
        .max_items(0)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code_and_message(&e).0, "ValidationException");
}

#[tokio::test]
async fn mappings_survive_a_restart() {
    let mut server = Server::start();
    let a = server.client(KEY_A).await;
    create_noop_function(&a, "kept").await;
    let m = a
        .create_event_source_mapping()
        .function_name("kept")
        .event_source_arn(QUEUE)
        .batch_size(7)
        .enabled(false)
        .send()
        .await
        .unwrap();
    let uuid = m.uuid().unwrap().to_owned();
    server.kill();
    server.restart(&[]);
    let a = server.client(KEY_A).await;
    let got = a
        .get_event_source_mapping()
        .uuid(&uuid)
        .send()
        .await
        .unwrap();
    assert_eq!(got.batch_size(), Some(7));
    assert_eq!(got.state(), Some("Disabled"));
    assert_eq!(got.last_modified(), m.last_modified());
}
