#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use model::names::{AccountId, Region};
use serde_json::Value;

use super::*;

fn scope(account: &str) -> Scope {
    Scope::new(
        AccountId::parse(account).unwrap(),
        Region::parse("us-east-1").unwrap(),
    )
}

fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

const BASE: &str = "http://127.0.0.1:9000";
const FN: &str = "arn:aws:lambda:us-east-1:111111111111:function:f";

fn string_attr(v: &str) -> MessageAttribute {
    MessageAttribute {
        data_type: "String".into(),
        string_value: Some(v.into()),
        binary_value: None,
    }
}

#[tokio::test]
async fn topics_create_idempotently_and_check_names() {
    let t = Topics::in_memory().unwrap();
    let s = scope("111111111111");
    let arn = t
        .create_topic(&s, Some("orders"), &attrs(&[]), &[])
        .await
        .unwrap();
    assert_eq!(arn, "arn:aws:sns:us-east-1:111111111111:orders");
    assert_eq!(
        t.create_topic(&s, Some("orders"), &attrs(&[]), &[])
            .await
            .unwrap(),
        arn
    );
    let err = t
        .create_topic(&s, Some("orders"), &attrs(&[("DisplayName", "x")]), &[])
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Invalid parameter: Attributes Reason: Topic already exists with different attributes"
    );
    for bad in ["has space", "", "a.fifo"] {
        let err = t
            .create_topic(&s, Some(bad), &attrs(&[]), &[])
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "Invalid parameter: Topic Name", "{bad}");
        assert_eq!(err.code(), "InvalidParameter");
    }
    let err = t
        .create_topic(&s, Some("nofifo"), &attrs(&[("FifoTopic", "true")]), &[])
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("Invalid parameter: Fifo Topic names must end with .fifo")
    );
    t.create_topic(&s, Some("o.fifo"), &attrs(&[("FifoTopic", "true")]), &[])
        .await
        .unwrap();
    // Another account sees none of them.
    let other = scope("222222222222");
    assert!(t.list_topics(&other, None).unwrap().items.is_empty());
    assert_eq!(t.list_topics(&s, None).unwrap().items.len(), 2);
    assert_eq!(
        t.topic_attributes(&other, Some(&arn)).unwrap_err().code(),
        "NotFound"
    );
}

#[tokio::test]
async fn publish_fans_out_through_filter_policies() {
    let t = Topics::in_memory().unwrap();
    let s = scope("111111111111");
    let topic = t
        .create_topic(&s, Some("t"), &attrs(&[]), &[])
        .await
        .unwrap();
    let all = t
        .subscribe(
            &s,
            Some(&topic),
            Some("lambda"),
            Some(FN),
            &attrs(&[]),
            false,
            BASE,
        )
        .await
        .unwrap();
    assert!(all.subscription_arn.starts_with(&format!("{topic}:")));
    assert!(all.confirmation.is_none());
    let filtered = t
        .subscribe(
            &s,
            Some(&topic),
            Some("lambda"),
            Some("arn:aws:lambda:us-east-1:111111111111:function:g"),
            &attrs(&[("FilterPolicy", r#"{"store": ["example_corp"]}"#)]),
            false,
            BASE,
        )
        .await
        .unwrap();
    let input = |store: &str| PublishInput {
        topic_arn: Some(topic.clone()),
        message: Some("hello".into()),
        subject: Some("greeting".into()),
        attributes: BTreeMap::from([("store".to_owned(), string_attr(store))]),
        ..Default::default()
    };
    let p = t.publish(&s, input("example_corp"), BASE).unwrap();
    assert_eq!(p.deliveries.len(), 2);
    let Delivery::Lambda {
        event,
        function_arn,
        subscription_arn,
        ..
    } = &p.deliveries[0]
    else {
        panic!("a lambda delivery");
    };
    let ev: Value = serde_json::from_slice(event).unwrap();
    let sns = &ev["Records"][0]["Sns"];
    assert_eq!(ev["Records"][0]["EventSource"], "aws:sns");
    assert_eq!(
        ev["Records"][0]["EventSubscriptionArn"],
        subscription_arn.as_str()
    );
    assert_eq!(sns["Message"], "hello");
    assert_eq!(sns["Subject"], "greeting");
    assert_eq!(sns["MessageId"], p.message_id.as_str());
    assert_eq!(sns["TopicArn"], topic.as_str());
    assert_eq!(sns["Type"], "Notification");
    assert_eq!(sns["MessageAttributes"]["store"]["Type"], "String");
    assert_eq!(sns["MessageAttributes"]["store"]["Value"], "example_corp");
    for field in [
        "Timestamp",
        "SignatureVersion",
        "Signature",
        "SigningCertUrl",
        "UnsubscribeUrl",
    ] {
        assert!(
            sns[field].as_str().is_some_and(|v| !v.is_empty()),
            "{field}"
        );
    }
    assert!(function_arn == FN || function_arn.ends_with(":g"));
    let p = t.publish(&s, input("other"), BASE).unwrap();
    assert_eq!(
        p.deliveries.len(),
        1,
        "the filtered subscription is skipped"
    );
    assert_eq!(
        t.metrics()
            .notifications_filtered_out
            .load(Ordering::Relaxed),
        1
    );
    // Removing the policy lets everything through again.
    t.set_subscription_attribute(
        &s,
        Some(&filtered.subscription_arn),
        Some("FilterPolicy"),
        Some(""),
    )
    .await
    .unwrap();
    assert_eq!(
        t.publish(&s, input("other"), BASE)
            .unwrap()
            .deliveries
            .len(),
        2
    );
}

#[tokio::test]
async fn http_subscriptions_confirm_by_token() {
    let t = Topics::in_memory().unwrap();
    let s = scope("111111111111");
    let topic = t
        .create_topic(&s, Some("t"), &attrs(&[]), &[])
        .await
        .unwrap();
    let sub = t
        .subscribe(
            &s,
            Some(&topic),
            Some("http"),
            Some("http://127.0.0.1:1/hook"),
            &attrs(&[]),
            false,
            BASE,
        )
        .await
        .unwrap();
    assert_eq!(sub.subscription_arn, "pending confirmation");
    let Some(Delivery::Http {
        url, headers, body, ..
    }) = sub.confirmation
    else {
        panic!("a confirmation");
    };
    assert_eq!(url, "http://127.0.0.1:1/hook");
    assert!(headers.contains(&(
        "x-amz-sns-message-type".into(),
        "SubscriptionConfirmation".into()
    )));
    let doc: Value = serde_json::from_slice(&body).unwrap();
    let token = doc["Token"].as_str().unwrap().to_owned();
    assert!(
        doc["SubscribeURL"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{BASE}/?Action=ConfirmSubscription&TopicArn="))
    );
    // Subscribing the pending endpoint again sends the same token again.
    let again = t
        .subscribe(
            &s,
            Some(&topic),
            Some("http"),
            Some("http://127.0.0.1:1/hook"),
            &attrs(&[]),
            false,
            BASE,
        )
        .await
        .unwrap();
    let Some(Delivery::Http {
        body: again_body, ..
    }) = again.confirmation
    else {
        panic!("a second confirmation");
    };
    let again_doc: Value = serde_json::from_slice(&again_body).unwrap();
    assert_eq!(again_doc["Token"], doc["Token"]);
    assert_eq!(t.list_subscriptions(&s, None, None).unwrap().items.len(), 1);
    // Pending subscriptions get nothing.
    let msg = PublishInput {
        topic_arn: Some(topic.clone()),
        message: Some("m".into()),
        ..Default::default()
    };
    assert!(
        t.publish(&s, msg.clone(), BASE)
            .unwrap()
            .deliveries
            .is_empty()
    );
    assert_eq!(
        t.confirm_subscription(None, Some(&topic), Some("wrong"), false)
            .await
            .unwrap_err()
            .to_string(),
        "Invalid parameter: Token"
    );
    let arn = t
        .confirm_subscription(None, Some(&topic), Some(&token), false)
        .await
        .unwrap();
    let p = t.publish(&s, msg, BASE).unwrap();
    let [Delivery::Http { headers, body, .. }] = p.deliveries.as_slice() else {
        panic!("one http delivery");
    };
    assert!(headers.contains(&("x-amz-sns-subscription-arn".into(), arn.clone())));
    let doc: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(doc["Message"], "m");
    assert!(doc.get("Subject").is_none());
    // Raw delivery sends the message alone.
    t.set_subscription_attribute(&s, Some(&arn), Some("RawMessageDelivery"), Some("true"))
        .await
        .unwrap();
    let p = t
        .publish(
            &s,
            PublishInput {
                topic_arn: Some(topic.clone()),
                message: Some("raw".into()),
                ..Default::default()
            },
            BASE,
        )
        .unwrap();
    let [Delivery::Http { body, .. }] = p.deliveries.as_slice() else {
        panic!("one http delivery");
    };
    assert_eq!(body.as_slice(), b"raw");
}

#[tokio::test]
async fn state_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sns.db");
    let s = scope("111111111111");
    let (topic, sub) = {
        let t = Topics::open(&path).unwrap();
        let topic = t
            .create_topic(&s, Some("durable"), &attrs(&[("DisplayName", "D")]), &[])
            .await
            .unwrap();
        let sub = t
            .subscribe(
                &s,
                Some(&topic),
                Some("lambda"),
                Some(FN),
                &attrs(&[("FilterPolicy", r#"{"a": ["b"]}"#)]),
                false,
                BASE,
            )
            .await
            .unwrap();
        (topic, sub.subscription_arn)
    };
    let t = Topics::open(&path).unwrap();
    assert_eq!(
        t.topic_attributes(&s, Some(&topic)).unwrap()["DisplayName"],
        "D"
    );
    let a = t.subscription_attributes(&s, Some(&sub)).unwrap();
    assert_eq!(a["FilterPolicy"], r#"{"a": ["b"]}"#);
    t.unsubscribe(Some(&s), Some(&sub)).await.unwrap();
    drop(t);
    let t = Topics::open(&path).unwrap();
    assert!(
        t.list_subscriptions(&s, None, None)
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(
        t.topic_attributes(&s, Some(&topic)).unwrap()["SubscriptionsDeleted"],
        "1"
    );
    t.delete_topic(&s, Some(&topic)).await.unwrap();
    drop(t);
    assert!(
        Topics::open(&path)
            .unwrap()
            .list_topics(&s, None)
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn publish_validation_answers_sns_errors_and_changes_nothing() {
    let t = Topics::in_memory().unwrap();
    let s = scope("111111111111");
    let topic = t
        .create_topic(&s, Some("t"), &attrs(&[]), &[])
        .await
        .unwrap();
    let base = PublishInput {
        topic_arn: Some(topic.clone()),
        message: Some("m".into()),
        ..Default::default()
    };
    let cases: Vec<(PublishInput, &str, &str)> = vec![
        (
            PublishInput {
                message: Some(String::new()),
                ..base.clone()
            },
            "InvalidParameter",
            "Invalid parameter: Empty message",
        ),
        (
            PublishInput {
                topic_arn: None,
                ..base.clone()
            },
            "InvalidParameter",
            "Invalid parameter: TopicArn or TargetArn Reason: no value for required parameter",
        ),
        (
            PublishInput {
                topic_arn: Some("nope".into()),
                ..base.clone()
            },
            "InvalidParameter",
            "Invalid parameter: TopicArn",
        ),
        (
            PublishInput {
                topic_arn: Some("arn:aws:sns:us-east-1:111111111111:missing".into()),
                ..base.clone()
            },
            "NotFound",
            "Topic does not exist",
        ),
        (
            PublishInput {
                subject: Some("line\nbreak".into()),
                ..base.clone()
            },
            "InvalidParameter",
            "Invalid parameter: Subject",
        ),
        (
            PublishInput {
                message_structure: Some("json".into()),
                message: Some("{\"lambda\": \"x\"}".into()),
                ..base.clone()
            },
            "InvalidParameter",
            "Invalid parameter: Message Structure - No default entry in JSON message body",
        ),
        (
            PublishInput {
                message_structure: Some("json".into()),
                message: Some("not json".into()),
                ..base.clone()
            },
            "InvalidParameter",
            "Invalid parameter: Message Structure - JSON message body failed to parse",
        ),
        (
            PublishInput {
                message: Some("x".repeat(MAX_MESSAGE_BYTES + 1)),
                ..base.clone()
            },
            "InvalidParameter",
            "Invalid parameter: Message too long",
        ),
        (
            PublishInput {
                attributes: BTreeMap::from([(
                    "n".to_owned(),
                    MessageAttribute {
                        data_type: "Number".into(),
                        string_value: Some("abc".into()),
                        binary_value: None,
                    },
                )]),
                ..base.clone()
            },
            "ParameterValueInvalid",
            "Could not cast message attribute 'n' value to number.",
        ),
        (
            PublishInput {
                attributes: BTreeMap::from([(
                    "s".to_owned(),
                    MessageAttribute {
                        data_type: "String".into(),
                        string_value: Some(String::new()),
                        binary_value: None,
                    },
                )]),
                ..base.clone()
            },
            "ParameterValueInvalid",
            "The message attribute 's' must contain non-empty message attribute value for message attribute type 'String'.",
        ),
        (
            PublishInput {
                attributes: BTreeMap::from([(
                    "x".to_owned(),
                    MessageAttribute {
                        data_type: "Float".into(),
                        string_value: Some("1".into()),
                        binary_value: None,
                    },
                )]),
                ..base.clone()
            },
            "ParameterValueInvalid",
            "The message attribute 'x' has an invalid message attribute type, the set of supported type prefixes is Binary, Number, and String.",
        ),
        (
            PublishInput {
                message_deduplication_id: Some("d".into()),
                ..base.clone()
            },
            "InvalidParameter",
            "Invalid parameter: MessageDeduplicationId Reason: The request includes MessageDeduplicationId parameter that is not valid for this topic type",
        ),
    ];
    for (input, code, message) in cases {
        let err = t.publish(&s, input, BASE).unwrap_err();
        assert_eq!((err.code(), err.to_string().as_str()), (code, message));
    }
    assert_eq!(t.metrics().messages_published.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn message_structure_picks_the_protocols_text() {
    let t = Topics::in_memory().unwrap();
    let s = scope("111111111111");
    let topic = t
        .create_topic(&s, Some("t"), &attrs(&[]), &[])
        .await
        .unwrap();
    t.subscribe(
        &s,
        Some(&topic),
        Some("lambda"),
        Some(FN),
        &attrs(&[]),
        false,
        BASE,
    )
    .await
    .unwrap();
    let p = t
        .publish(
            &s,
            PublishInput {
                topic_arn: Some(topic),
                message: Some(r#"{"default": "d", "lambda": "for lambda"}"#.into()),
                message_structure: Some("json".into()),
                ..Default::default()
            },
            BASE,
        )
        .unwrap();
    let Delivery::Lambda { event, .. } = &p.deliveries[0] else {
        panic!()
    };
    let ev: Value = serde_json::from_slice(event).unwrap();
    assert_eq!(ev["Records"][0]["Sns"]["Message"], "for lambda");
}

#[tokio::test]
async fn batches_answer_per_entry() {
    let t = Topics::in_memory().unwrap();
    let s = scope("111111111111");
    let topic = t
        .create_topic(&s, Some("t"), &attrs(&[]), &[])
        .await
        .unwrap();
    let entry = |id: &str, msg: &str| BatchEntry {
        id: id.into(),
        message: Some(msg.into()),
        ..Default::default()
    };
    let r = t
        .publish_batch(
            &s,
            Some(&topic),
            vec![entry("a", "1"), entry("b", "")],
            BASE,
        )
        .unwrap();
    assert_eq!(r.successful.len(), 1);
    assert_eq!(r.failed.len(), 1);
    assert_eq!(r.failed[0].id, "b");
    assert_eq!(r.failed[0].code, "InvalidParameter");
    assert!(matches!(
        t.publish_batch(&s, Some(&topic), vec![], BASE),
        Err(SnsError::EmptyBatchRequest)
    ));
    assert!(matches!(
        t.publish_batch(
            &s,
            Some(&topic),
            vec![entry("a", "1"), entry("a", "2")],
            BASE
        ),
        Err(SnsError::BatchEntryIdsNotDistinct)
    ));
    let eleven: Vec<_> = (0..11).map(|i| entry(&format!("e{i}"), "m")).collect();
    assert!(matches!(
        t.publish_batch(&s, Some(&topic), eleven, BASE),
        Err(SnsError::TooManyEntriesInBatchRequest)
    ));
    assert!(matches!(
        t.publish_batch(&s, Some(&topic), vec![entry("bad id!", "1")], BASE),
        Err(SnsError::InvalidBatchEntryId)
    ));
}

#[tokio::test]
async fn fifo_topics_deduplicate_and_need_groups() {
    let t = Topics::in_memory().unwrap();
    let s = scope("111111111111");
    let topic = t
        .create_topic(
            &s,
            Some("o.fifo"),
            &attrs(&[("FifoTopic", "true"), ("ContentBasedDeduplication", "true")]),
            &[],
        )
        .await
        .unwrap();
    let msg = |group: Option<&str>| PublishInput {
        topic_arn: Some(topic.clone()),
        message: Some("same".into()),
        message_group_id: group.map(str::to_owned),
        ..Default::default()
    };
    assert_eq!(
        t.publish(&s, msg(None), BASE).unwrap_err().to_string(),
        "Invalid parameter: The MessageGroupId parameter is required for FIFO topics"
    );
    let a = t.publish(&s, msg(Some("g")), BASE).unwrap();
    let b = t.publish(&s, msg(Some("g")), BASE).unwrap();
    assert_eq!(a.message_id, b.message_id, "content-based deduplication");
    assert!(a.sequence_number.is_some());
    assert_eq!(
        t.subscribe(
            &s,
            Some(&topic),
            Some("lambda"),
            Some(FN),
            &attrs(&[]),
            false,
            BASE
        )
        .await
        .unwrap_err()
        .to_string(),
        "Invalid parameter: Invalid protocol type: lambda"
    );
}

#[tokio::test]
async fn subscription_attribute_errors() {
    let t = Topics::in_memory().unwrap();
    let s = scope("111111111111");
    let topic = t
        .create_topic(&s, Some("t"), &attrs(&[]), &[])
        .await
        .unwrap();
    let e = t
        .subscribe(
            &s,
            Some(&topic),
            Some("lambda"),
            Some(FN),
            &attrs(&[("RawMessageDelivery", "true")]),
            false,
            BASE,
        )
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Invalid parameter: Attributes Reason: Delivery protocol [lambda] does not support raw message delivery."
    );
    let e = t
        .subscribe(
            &s,
            Some(&topic),
            Some("lambda"),
            Some(FN),
            &attrs(&[("FilterPolicy", r#"{"a": {"b": ["c"]}}"#)]),
            false,
            BASE,
        )
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Invalid parameter: Attributes Reason: Filter policy scope MessageAttributes does not support nested filter policy"
    );
    // The same policy is fine in body scope.
    let sub = t
        .subscribe(
            &s,
            Some(&topic),
            Some("lambda"),
            Some(FN),
            &attrs(&[
                ("FilterPolicy", r#"{"a": {"b": ["c"]}}"#),
                ("FilterPolicyScope", "MessageBody"),
            ]),
            false,
            BASE,
        )
        .await
        .unwrap();
    let e = t
        .set_subscription_attribute(
            &s,
            Some(&sub.subscription_arn),
            Some("FilterPolicy"),
            Some(r#"{"a": []}"#),
        )
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Invalid parameter: FilterPolicy: Empty arrays are not allowed"
    );
    let e = t
        .subscribe(
            &s,
            Some(&topic),
            Some("carrier-pigeon"),
            Some("x"),
            &attrs(&[]),
            false,
            BASE,
        )
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Invalid parameter: Amazon SNS does not support this protocol string: carrier-pigeon"
    );
    let e = t
        .subscribe(
            &s,
            Some(&topic),
            Some("http"),
            Some("ftp://x"),
            &attrs(&[]),
            false,
            BASE,
        )
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Invalid parameter: Endpoint must match the specified protocol"
    );
    assert_eq!(
        t.unsubscribe(
            Some(&s),
            Some(&format!("{topic}:00000000-0000-0000-0000-000000000000"))
        )
        .await
        .unwrap_err()
        .code(),
        "NotFound"
    );
}
