#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

#[derive(Default)]
struct Recorder {
    got: Mutex<Vec<(String, String, Value)>>,
}

#[async_trait::async_trait]
impl Deliver for Recorder {
    async fn deliver(
        &self,
        _scope: &Scope,
        function_arn: &str,
        source_arn: &str,
        payload: Bytes,
    ) -> Result<(), DeliveryError> {
        if function_arn.ends_with(":locked") {
            return Err(DeliveryError::NotPermitted("no permission".into()));
        }
        self.got.lock().unwrap().push((
            function_arn.to_owned(),
            source_arn.to_owned(),
            serde_json::from_slice(&payload).unwrap_or(Value::Null),
        ));
        Ok(())
    }
}

fn scope(account: &str) -> Scope {
    Scope::new(
        model::AccountId::parse(account).unwrap(),
        model::Region::parse("us-east-1").unwrap(),
    )
}

const FN: &str = "arn:aws:lambda:us-east-1:111111111111:function:orders";

fn entry(detail: Value) -> Value {
    json!({"Source": "shop", "DetailType": "Order Placed", "Detail": detail.to_string()})
}

#[tokio::test]
async fn matching_events_reach_targets_shaped_as_asked() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Arc::new(Recorder::default());
    let eb = EventBridge::open(&dir.path().join("events.db"), rec.clone()).unwrap();
    let a = scope("111111111111");
    eb.put_rule(
        &a,
        &json!({"Name": "big-orders", "EventPattern": r#"{"source": ["shop"], "detail": {"total": [{"numeric": [">", 100]}]}}"#}),
    )
    .await
    .unwrap();
    eb.put_targets(
        &a,
        &json!({"Rule": "big-orders", "Targets": [
            {"Id": "whole", "Arn": FN},
            {"Id": "path", "Arn": format!("{FN}-path"), "InputPath": "$.detail"},
            {"Id": "const", "Arn": format!("{FN}-const"), "Input": "{\"fixed\": 1}"},
            {"Id": "tmpl", "Arn": format!("{FN}-tmpl"), "InputTransformer": {
                "InputPathsMap": {"total": "$.detail.total", "src": "$.source"},
                "InputTemplate": "{\"msg\": \"<src> order of <total>\", \"total\": <total>, \"rule\": \"<aws.events.rule-arn>\"}"}},
        ]}),
    )
    .await
    .unwrap();
    let out = eb
        .put_events(
            &a,
            &json!({"Entries": [entry(json!({"total": 250})), entry(json!({"total": 5}))]}),
        )
        .await
        .unwrap();
    assert_eq!(out["FailedEntryCount"], 0);
    assert_eq!(out["Entries"].as_array().unwrap().len(), 2);
    let got = rec.got.lock().unwrap().clone();
    assert_eq!(
        got.len(),
        4,
        "only the matching entry is delivered: {got:?}"
    );
    let rule = "arn:aws:events:us-east-1:111111111111:rule/big-orders";
    assert!(got.iter().all(|(_, src, _)| src == rule));
    let whole = &got[0].2;
    assert_eq!(whole["id"], out["Entries"][0]["EventId"]);
    assert_eq!(whole["detail-type"], "Order Placed");
    assert_eq!(whole["account"], "111111111111");
    assert_eq!(whole["version"], "0");
    assert_eq!(whole["resources"], json!([]));
    assert_eq!(got[1].2, json!({"total": 250}));
    assert_eq!(got[2].2, json!({"fixed": 1}));
    assert_eq!(
        got[3].2,
        json!({"msg": "shop order of 250", "total": 250, "rule": rule})
    );
    // Disabled: nothing.
    eb.set_rule_state(&a, &json!({"Name": "big-orders"}), false)
        .await
        .unwrap();
    eb.put_events(&a, &json!({"Entries": [entry(json!({"total": 999}))]}))
        .await
        .unwrap();
    assert_eq!(rec.got.lock().unwrap().len(), 4);
    // Rules survive a restart.
    drop(eb);
    let eb = EventBridge::open(&dir.path().join("events.db"), rec.clone()).unwrap();
    eb.set_rule_state(&a, &json!({"Name": "big-orders"}), true)
        .await
        .unwrap();
    eb.put_events(&a, &json!({"Entries": [entry(json!({"total": 101}))]}))
        .await
        .unwrap();
    assert_eq!(rec.got.lock().unwrap().len(), 8);
    // Another account's events never match this account's rules.
    eb.put_events(
        &scope("222222222222"),
        &json!({"Entries": [entry(json!({"total": 1000}))]}),
    )
    .await
    .unwrap();
    assert_eq!(rec.got.lock().unwrap().len(), 8);
}

#[tokio::test]
async fn bad_entries_fail_alone_and_limits_hold() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Arc::new(Recorder::default());
    let eb = EventBridge::open(&dir.path().join("events.db"), rec.clone()).unwrap();
    let a = scope("111111111111");
    let out = eb
        .put_events(
            &a,
            &json!({"Entries": [
                entry(json!({"ok": true})),
                {"DetailType": "x", "Detail": "{}"},
                {"Source": "s", "DetailType": "x", "Detail": "[1]"},
                {"Source": "s", "DetailType": "x", "Detail": "{}", "EventBusName": "nope"},
            ]}),
        )
        .await
        .unwrap();
    assert_eq!(out["FailedEntryCount"], 3);
    let e = &out["Entries"];
    assert!(e[0]["EventId"].is_string());
    assert_eq!(e[1]["ErrorCode"], "InvalidArgument");
    assert_eq!(
        e[1]["ErrorMessage"],
        "Parameter Source is not valid. Reason: Source is a required argument."
    );
    assert_eq!(e[2]["ErrorCode"], "MalformedDetail");
    assert_eq!(e[3]["ErrorCode"], "ResourceNotFoundException");
    let eleven: Vec<Value> = (0..11).map(|_| entry(json!({}))).collect();
    assert!(matches!(
        eb.put_events(&a, &json!({"Entries": eleven})).await,
        Err(EventsError::Validation(m)) if m.contains("less than or equal to 10")
    ));
    let big = entry(json!({"x": "y".repeat(MAX_PUT_EVENTS_BYTES)}));
    assert!(matches!(
        eb.put_events(&a, &json!({"Entries": [big]})).await,
        Err(EventsError::Validation(m)) if m == "Total size of the entries in the request is over the limit."
    ));
    // Patterns and rules refused with AWS's errors.
    assert!(matches!(
        eb.put_rule(&a, &json!({"Name": "r", "EventPattern": "{\"source\": []}"})).await,
        Err(EventsError::InvalidPattern(m)) if m.starts_with("Event pattern is not valid. Reason: ")
    ));
    assert!(matches!(
        eb.put_rule(&a, &json!({"Name": "r"})).await,
        Err(EventsError::Validation(_))
    ));
    assert!(matches!(
        eb.put_rule(&a, &json!({"Name": "r", "ScheduleExpression": "rate(1 minutes)"})).await,
        Err(EventsError::Validation(m)) if m == "Parameter ScheduleExpression is not valid."
    ));
    assert!(matches!(
        eb.describe_rule(&a, &json!({"Name": "r"})),
        Err(EventsError::NotFound(m)) if m == "Rule r does not exist on EventBus default."
    ));
    // TestEventPattern.
    let event = json!({"id": "1", "account": "111111111111", "source": "shop", "time": "2026-01-01T00:00:00Z",
                       "region": "us-east-1", "detail-type": "t", "detail": {}})
    .to_string();
    assert_eq!(
        eb.test_event_pattern(&json!({"EventPattern": "{\"source\": [\"shop\"]}", "Event": event}))
            .unwrap(),
        json!({"Result": true})
    );
    assert_eq!(
        eb.test_event_pattern(&json!({"EventPattern": "{\"source\": [\"bank\"]}", "Event": event}))
            .unwrap(),
        json!({"Result": false})
    );
}

#[tokio::test]
async fn custom_buses_keep_their_own_rules() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Arc::new(Recorder::default());
    let eb = EventBridge::open(&dir.path().join("events.db"), rec.clone()).unwrap();
    let a = scope("111111111111");
    let out = eb
        .create_event_bus(&a, &json!({"Name": "orders"}))
        .await
        .unwrap();
    assert_eq!(
        out["EventBusArn"],
        "arn:aws:events:us-east-1:111111111111:event-bus/orders"
    );
    assert!(matches!(
        eb.create_event_bus(&a, &json!({"Name": "orders"})).await,
        Err(EventsError::AlreadyExists(_))
    ));
    let r = eb
        .put_rule(
            &a,
            &json!({"Name": "all", "EventBusName": "orders", "EventPattern": "{\"source\": [\"shop\"]}"}),
        )
        .await
        .unwrap();
    assert_eq!(
        r["RuleArn"],
        "arn:aws:events:us-east-1:111111111111:rule/orders/all"
    );
    eb.put_targets(
        &a,
        &json!({"Rule": "all", "EventBusName": "orders", "Targets": [{"Id": "1", "Arn": FN}, {"Id": "2", "Arn": "arn:aws:lambda:us-east-1:111111111111:function:locked"}]}),
    )
    .await
    .unwrap();
    // On the default bus: no rule matches.
    eb.put_events(&a, &json!({"Entries": [entry(json!({}))]}))
        .await
        .unwrap();
    assert!(rec.got.lock().unwrap().is_empty());
    let mut e = entry(json!({}));
    e["EventBusName"] = json!("arn:aws:events:us-east-1:111111111111:event-bus/orders");
    eb.put_events(&a, &json!({"Entries": [e]})).await.unwrap();
    // The target without permission is refused; the other gets the event.
    assert_eq!(rec.got.lock().unwrap().len(), 1);
    assert_eq!(eb.metrics().refused.load(Ordering::Relaxed), 1);
    assert!(matches!(
        eb.delete_rule(&a, &json!({"Name": "all", "EventBusName": "orders"})).await,
        Err(EventsError::Validation(m)) if m == "Rule can't be deleted since it has targets."
    ));
    let listed = eb
        .list_targets(&a, &json!({"Rule": "all", "EventBusName": "orders"}))
        .unwrap();
    assert_eq!(listed["Targets"].as_array().unwrap().len(), 2);
    eb.remove_targets(
        &a,
        &json!({"Rule": "all", "EventBusName": "orders", "Ids": ["1", "2"]}),
    )
    .await
    .unwrap();
    eb.delete_rule(&a, &json!({"Name": "all", "EventBusName": "orders"}))
        .await
        .unwrap();
    let buses = eb.list_event_buses(&a, &json!({})).unwrap();
    assert_eq!(buses["EventBuses"].as_array().unwrap().len(), 2);
    eb.delete_event_bus(&a, &json!({"Name": "orders"}))
        .await
        .unwrap();
    assert!(matches!(
        eb.describe_event_bus(&a, &json!({"Name": "orders"})),
        Err(EventsError::NotFound(_))
    ));
}
