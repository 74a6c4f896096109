//! Table tests: each row is an example from AWS's documentation (EventBridge
//! "Content filtering in event patterns" and its operator table, "Arrays in
//! event patterns", "Matching null values and empty strings"; Lambda "Control
//! which events Lambda sends to your function" and its per-source pages; SNS
//! "Subscription filter policies"), plus the validation reasons of AWS's
//! event-ruler.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};

use crate::lambda::{FilterCriteria, Payload};
use crate::sns::{Attribute, FilterPolicy, Scope};
use crate::{Dialect, EventPattern};

fn check(rows: &[(&str, Value, bool)]) {
    for (i, (pattern, event, expected)) in rows.iter().enumerate() {
        let compiled = EventPattern::parse(pattern)
            .unwrap_or_else(|e| panic!("row {i}: pattern {pattern} refused: {e}"));
        assert_eq!(
            compiled.matches(event),
            *expected,
            "row {i}: pattern {pattern} against {event}"
        );
    }
}

/// The EC2 state-change event the EventBridge guide uses throughout.
fn ec2_event(state: &str) -> Value {
    json!({
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "EC2 Instance State-change Notification",
        "source": "aws.ec2",
        "account": "111122223333",
        "time": "2017-12-22T18:43:48Z",
        "region": "us-west-1",
        "resources": ["arn:aws:ec2:us-west-1:123456789012:instance/i-1234567890abcdef0"],
        "detail": {"instance-id": "i-1234567890abcdef0", "state": state}
    })
}

#[test]
fn eventbridge_basic_and_nested() {
    check(&[
        (
            r#"{"source": ["aws.ec2"], "detail-type": ["EC2 Instance State-change Notification"]}"#,
            ec2_event("terminated"),
            true,
        ),
        (
            r#"{"source": ["aws.ec2"], "detail-type": ["EC2 Instance State-change Notification"], "detail": {"state": ["terminated"]}}"#,
            ec2_event("terminated"),
            true,
        ),
        (
            r#"{"source": ["aws.ec2"], "detail": {"state": ["running", "stopped"]}}"#,
            ec2_event("terminated"),
            false,
        ),
        (r#"{"source": ["aws.s3"]}"#, ec2_event("running"), false),
        // A field the event lacks never matches a value.
        (
            r#"{"detail": {"missing": ["x"]}}"#,
            ec2_event("running"),
            false,
        ),
        // Matching is case-sensitive.
        (r#"{"source": ["AWS.EC2"]}"#, ec2_event("running"), false),
    ]);
}

#[test]
fn eventbridge_arrays() {
    let event = json!({"resources": [
        "arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:eb56d16b-bbf0-401d-b893-d5978ed4a025:autoScalingGroupName/ASGTerminate",
        "arn:aws:ec2:us-east-1:123456789012:instance/i-b188560f"
    ]});
    check(&[
        (
            r#"{"resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-b188560f", "arn:aws:ec2:us-east-1:111122223333:instance/i-b188560f", "arn:aws:ec2:us-east-1:444455556666:instance/i-b188560f"]}"#,
            event.clone(),
            true,
        ),
        (
            r#"{"resources": ["arn:aws:ec2:us-east-1:111122223333:instance/i-b188560f"]}"#,
            event,
            false,
        ),
        // Nested patterns under an array of objects match within one element.
        (
            r#"{"detail": {"items": {"name": ["a"], "size": [2]}}}"#,
            json!({"detail": {"items": [{"name": "a", "size": 1}, {"name": "b", "size": 2}]}}),
            false,
        ),
        (
            r#"{"detail": {"items": {"name": ["b"], "size": [2]}}}"#,
            json!({"detail": {"items": [{"name": "a", "size": 1}, {"name": "b", "size": 2}]}}),
            true,
        ),
    ]);
}

#[test]
fn eventbridge_null_and_empty() {
    let event = json!({
        "version": "0",
        "id": "3e3c153a-8339-4e30-8c35-687ebef853fe",
        "detail-type": "EC2 Instance Launch Successful",
        "source": "aws.autoscaling",
        "account": "123456789012",
        "time": "2015-11-11T21:31:47Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {"eventVersion": "", "responseElements": null}
    });
    check(&[
        (r#"{"detail": {"eventVersion": [""]}}"#, event.clone(), true),
        (
            r#"{"detail": {"responseElements": [null]}}"#,
            event.clone(),
            true,
        ),
        // Null and empty string are not interchangeable.
        (
            r#"{"detail": {"eventVersion": [null]}}"#,
            event.clone(),
            false,
        ),
        (r#"{"detail": {"responseElements": [""]}}"#, event, false),
    ]);
}

#[test]
fn eventbridge_prefix_suffix_ignore_case() {
    check(&[
        (
            r#"{"time": [{"prefix": "2017-10-02"}]}"#,
            json!({"time": "2017-10-02T18:43:48Z"}),
            true,
        ),
        (
            r#"{"time": [{"prefix": "2017-10-02"}]}"#,
            json!({"time": "2017-10-03T18:43:48Z"}),
            false,
        ),
        (
            r#"{"Region": [{"prefix": "us-"}]}"#,
            json!({"Region": "us-east-1"}),
            true,
        ),
        (
            r#"{"Region": [{"prefix": "us-"}]}"#,
            json!({"Region": "eu-west-1"}),
            false,
        ),
        (
            r#"{"service": [{"prefix": {"equals-ignore-case": "eventb"}}]}"#,
            json!({"service": "EventBridge"}),
            true,
        ),
        (
            r#"{"FileName": [{"suffix": ".png"}]}"#,
            json!({"FileName": "image.png"}),
            true,
        ),
        (
            r#"{"FileName": [{"suffix": ".png"}]}"#,
            json!({"FileName": "image.PNG"}),
            false,
        ),
        (
            r#"{"FileName": [{"suffix": {"equals-ignore-case": ".png"}}]}"#,
            json!({"FileName": "image.PNG"}),
            true,
        ),
        (
            r#"{"service": [{"suffix": {"equals-ignore-case": "tBridge"}}]}"#,
            json!({"service": "EVENTBRIDGE"}),
            true,
        ),
        (
            r#"{"Name": [{"equals-ignore-case": "alice"}]}"#,
            json!({"Name": "ALICE"}),
            true,
        ),
        (
            r#"{"Name": [{"equals-ignore-case": "alice"}]}"#,
            json!({"Name": "Bob"}),
            false,
        ),
        (r#"{"Name": ["Alice"]}"#, json!({"Name": "Alice"}), true),
        (r#"{"LastName": [""]}"#, json!({"LastName": ""}), true),
        // Prefix matches strings only.
        (r#"{"n": [{"prefix": "1"}]}"#, json!({"n": 12}), false),
    ]);
}

#[test]
fn eventbridge_anything_but() {
    check(&[
        (
            r#"{"detail": {"state": [{"anything-but": "initializing"}]}}"#,
            ec2_event("running"),
            true,
        ),
        (
            r#"{"detail": {"state": [{"anything-but": "initializing"}]}}"#,
            ec2_event("initializing"),
            false,
        ),
        (
            r#"{"detail": {"x-limit": [{"anything-but": 123}]}}"#,
            json!({"detail": {"x-limit": 124}}),
            true,
        ),
        (
            r#"{"detail": {"x-limit": [{"anything-but": 123}]}}"#,
            json!({"detail": {"x-limit": 123}}),
            false,
        ),
        (
            r#"{"detail": {"state": [{"anything-but": ["stopped", "overloaded"]}]}}"#,
            ec2_event("running"),
            true,
        ),
        (
            r#"{"detail": {"state": [{"anything-but": ["stopped", "overloaded"]}]}}"#,
            ec2_event("stopped"),
            false,
        ),
        (
            r#"{"detail": {"x-limit": [{"anything-but": [100, 200, 300]}]}}"#,
            json!({"detail": {"x-limit": 200.0}}),
            false,
        ),
        (
            r#"{"detail": {"x-limit": [{"anything-but": [100, 200, 300]}]}}"#,
            json!({"detail": {"x-limit": 250}}),
            true,
        ),
        (
            r#"{"detail": {"state": [{"anything-but": {"prefix": "init"}}]}}"#,
            ec2_event("initializing"),
            false,
        ),
        (
            r#"{"detail": {"state": [{"anything-but": {"prefix": "init"}}]}}"#,
            ec2_event("running"),
            true,
        ),
        (
            r#"{"FileName": [{"anything-but": {"suffix": ".png"}}]}"#,
            json!({"FileName": "a.png"}),
            false,
        ),
        (
            r#"{"FileName": [{"anything-but": {"suffix": ".png"}}]}"#,
            json!({"FileName": "a.txt"}),
            true,
        ),
        (
            r#"{"state": [{"anything-but": {"equals-ignore-case": "initializing"}}]}"#,
            json!({"state": "INITIALIZING"}),
            false,
        ),
        (
            r#"{"state": [{"anything-but": {"equals-ignore-case": ["initializing", "stopped"]}}]}"#,
            json!({"state": "Stopped"}),
            false,
        ),
        (
            r#"{"state": [{"anything-but": {"equals-ignore-case": ["initializing", "stopped"]}}]}"#,
            json!({"state": "running"}),
            true,
        ),
        (
            r#"{"FilePath": [{"anything-but": {"wildcard": "*/lib/*"}}]}"#,
            json!({"FilePath": "/usr/lib/x.so"}),
            false,
        ),
        (
            r#"{"FilePath": [{"anything-but": {"wildcard": ["*/lib/*", "*/bin/*"]}}]}"#,
            json!({"FilePath": "/usr/share/x"}),
            true,
        ),
        // anything-but needs the field: a missing field does not match.
        (
            r#"{"detail": {"state": [{"anything-but": "initializing"}]}}"#,
            json!({"detail": {}}),
            false,
        ),
    ]);
}

#[test]
fn eventbridge_numeric() {
    let pattern = r#"{"detail": {"c-count": [{"numeric": [">", 0, "<=", 5]}], "d-count": [{"numeric": ["<", 10]}], "x-limit": [{"numeric": ["=", 3.018e2]}]}}"#;
    check(&[
        (
            pattern,
            json!({"detail": {"c-count": 5, "d-count": 9.5, "x-limit": 301.8}}),
            true,
        ),
        (
            pattern,
            json!({"detail": {"c-count": 0, "d-count": 9.5, "x-limit": 301.8}}),
            false,
        ),
        (
            pattern,
            json!({"detail": {"c-count": 3, "d-count": 10, "x-limit": 301.8}}),
            false,
        ),
        (
            pattern,
            json!({"detail": {"c-count": 3, "d-count": 1, "x-limit": 301}}),
            false,
        ),
        // Numeric matching works on JSON numbers only.
        (
            r#"{"d-count": [{"numeric": ["<", 10]}]}"#,
            json!({"d-count": "5"}),
            false,
        ),
        (
            r#"{"Price": [{"numeric": ["=", 100]}]}"#,
            json!({"Price": 100.0}),
            true,
        ),
        (
            r#"{"Price": [{"numeric": [">", 10, "<=", 20]}]}"#,
            json!({"Price": 20}),
            true,
        ),
        (
            r#"{"Price": [{"numeric": [">", 10, "<=", 20]}]}"#,
            json!({"Price": 10}),
            false,
        ),
        (
            r#"{"Price": [{"numeric": [">=", 10]}]}"#,
            json!({"Price": 10}),
            true,
        ),
        // A number in a pattern matches equal numbers whatever their notation.
        (r#"{"x": [301.8]}"#, json!({"x": 3.018e2}), true),
        (r#"{"x": [5]}"#, json!({"x": "5"}), false),
    ]);
}

#[test]
fn eventbridge_exists() {
    let event = json!({
        "detail-type": ["EC2 Instance State-change Notification"],
        "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-02ebd4584a2ebd341"],
        "detail": {"state": ["initializing", "running"]}
    });
    let intermediate = json!({
        "detail": {"state": ["initializing", "running"], "c-count": {"c1": 100}}
    });
    check(&[
        (
            r#"{"detail": {"c-count": [{"exists": false}]}}"#,
            event.clone(),
            true,
        ),
        // Exists applies to leaves only: an object there does not count.
        (
            r#"{"detail": {"c-count": [{"exists": false}]}}"#,
            intermediate.clone(),
            true,
        ),
        (
            r#"{"detail": {"c-count": [{"exists": true}]}}"#,
            intermediate,
            false,
        ),
        (
            r#"{"detail": {"state": [{"exists": true}]}}"#,
            event.clone(),
            true,
        ),
        (
            r#"{"detail": {"state": [{"exists": false}]}}"#,
            event,
            false,
        ),
        (
            r#"{"ProductName": [{"exists": true}]}"#,
            json!({"ProductName": "x"}),
            true,
        ),
        (
            r#"{"ProductName": [{"exists": false}]}"#,
            json!({"Other": 1}),
            true,
        ),
        (
            r#"{"detail": {"c-count": [{"exists": false}]}}"#,
            json!({"source": "no detail at all"}),
            true,
        ),
    ]);
}

#[test]
fn eventbridge_wildcard() {
    check(&[
        (
            r#"{"EventBusArn": [{"wildcard": "arn:aws:events:us-east-1:*:event-bus/*"}]}"#,
            json!({"EventBusArn": "arn:aws:events:us-east-1:123456789012:event-bus/orders"}),
            true,
        ),
        (
            r#"{"EventBusArn": [{"wildcard": "arn:aws:events:us-east-1:*:event-bus/*"}]}"#,
            json!({"EventBusArn": "arn:aws:events:us-west-2:123456789012:event-bus/orders"}),
            false,
        ),
        (
            r#"{"location": [{"wildcard": "dir/*.png"}]}"#,
            json!({"location": "dir/image.png"}),
            true,
        ),
        (
            r#"{"location": [{"wildcard": "dir/*.png"}]}"#,
            json!({"location": "dir/image.jpg"}),
            false,
        ),
        (
            r#"{"s": [{"wildcard": "a*b*a"}]}"#,
            json!({"s": "aba"}),
            true,
        ),
        (
            r#"{"s": [{"wildcard": "a*b*a"}]}"#,
            json!({"s": "ab"}),
            false,
        ),
        (r#"{"s": [{"wildcard": "a*a"}]}"#, json!({"s": "a"}), false),
        (r#"{"s": [{"wildcard": "*"}]}"#, json!({"s": ""}), true),
        (
            r#"{"s": [{"wildcard": "a\\*b"}]}"#,
            json!({"s": "a*b"}),
            true,
        ),
        (
            r#"{"s": [{"wildcard": "a\\*b"}]}"#,
            json!({"s": "axb"}),
            false,
        ),
    ]);
}

#[test]
fn eventbridge_cidr() {
    check(&[
        (
            r#"{"detail": {"sourceIPAddress": [{"cidr": "10.0.0.0/24"}]}}"#,
            json!({"detail": {"sourceIPAddress": "10.0.0.255"}}),
            true,
        ),
        (
            r#"{"detail": {"sourceIPAddress": [{"cidr": "10.0.0.0/24"}]}}"#,
            json!({"detail": {"sourceIPAddress": "10.0.1.1"}}),
            false,
        ),
        (
            r#"{"sourceIPAddress": [{"cidr": "2001:db8::/32"}]}"#,
            json!({"sourceIPAddress": "2001:db8:1::1"}),
            true,
        ),
        (
            r#"{"sourceIPAddress": [{"cidr": "2001:db8::/32"}]}"#,
            json!({"sourceIPAddress": "2001:db9::1"}),
            false,
        ),
        (
            r#"{"sourceIPAddress": [{"cidr": "0.0.0.0/0"}]}"#,
            json!({"sourceIPAddress": "192.168.1.1"}),
            true,
        ),
        (
            r#"{"sourceIPAddress": [{"cidr": "10.0.0.0/24"}]}"#,
            json!({"sourceIPAddress": "not an address"}),
            false,
        ),
    ]);
}

#[test]
fn eventbridge_or() {
    let top = r#"{"$or": [{"c-count": [{"numeric": [">", 0, "<=", 5]}]}, {"d-count": [{"numeric": ["<", 10]}]}, {"x-limit": [{"numeric": ["=", 3.018e2]}]}]}"#;
    let nested = r#"{"detail": {"$or": [{"c-count": [{"numeric": [">", 0, "<=", 5]}]}, {"d-count": [{"numeric": ["<", 10]}]}, {"x-limit": [{"numeric": ["=", 3.018e2]}]}]}}"#;
    let mixed = r#"{"source": ["aws.ec2"], "$or": [{"detail-type": ["EC2 Instance State-change Notification"]}, {"detail": {"state": ["stopped"]}}]}"#;
    check(&[
        (top, json!({"c-count": 3}), true),
        (top, json!({"d-count": 3}), true),
        (top, json!({"x-limit": 301.8}), true),
        (top, json!({"c-count": 9, "d-count": 11}), false),
        (nested, json!({"detail": {"d-count": 1}}), true),
        (nested, json!({"d-count": 1}), false),
        (mixed, ec2_event("running"), true),
        (
            mixed,
            json!({"source": "aws.ec2", "detail-type": "other", "detail": {"state": "stopped"}}),
            true,
        ),
        (
            mixed,
            json!({"source": "aws.s3", "detail-type": "EC2 Instance State-change Notification"}),
            false,
        ),
        (
            r#"{"Location": ["New York"], "Day": ["Monday"]}"#,
            json!({"Location": "New York", "Day": "Tuesday"}),
            false,
        ),
        (
            r#"{"$or": [{"Location": ["New York"]}, {"Day": ["Monday"]}]}"#,
            json!({"Location": "Boston", "Day": "Monday"}),
            true,
        ),
    ]);
}

#[test]
fn eventbridge_complex_example() {
    let pattern = r#"{"time": [{"prefix": "2017-10-02"}], "detail": {"state": [{"anything-but": "initializing"}], "c-count": [{"numeric": [">", 0, "<=", 5]}], "d-count": [{"numeric": ["<", 10]}], "x-limit": [{"anything-but": [100, 200, 300]}]}}"#;
    check(&[
        (
            pattern,
            json!({"time": "2017-10-02T18:43:48Z", "detail": {"state": "running", "c-count": 2, "d-count": 4, "x-limit": 150}}),
            true,
        ),
        (
            pattern,
            json!({"time": "2017-10-02T18:43:48Z", "detail": {"state": "running", "c-count": 2, "d-count": 4, "x-limit": 300}}),
            false,
        ),
    ]);
}

#[test]
fn eventbridge_refusals_carry_event_ruler_reasons() {
    let rows: &[(&str, &str)] = &[
        (r#"["a"]"#, "Filter is not an object"),
        (r#"{}"#, "Empty objects are not allowed"),
        (
            r#"{"source": "aws.ec2"}"#,
            "\"source\" must be an object or an array",
        ),
        (r#"{"source": []}"#, "Empty arrays are not allowed"),
        (
            r#"{"source": [["a"]]}"#,
            "Match value must be String, number, true, false, or null",
        ),
        (
            r#"{"a": [{"bogus": "x"}]}"#,
            "Unrecognized match type bogus",
        ),
        (
            r#"{"a": [{"prefix": "x", "suffix": "y"}]}"#,
            "Only one key allowed in match expression",
        ),
        (
            r#"{"a": [{"prefix": 1}]}"#,
            "prefix match pattern must be a string",
        ),
        (
            r#"{"a": [{"suffix": true}]}"#,
            "suffix match pattern must be a string",
        ),
        (
            r#"{"a": [{"equals-ignore-case": 1}]}"#,
            "equals-ignore-case match pattern must be a string",
        ),
        (
            r#"{"a": [{"exists": "yes"}]}"#,
            "exists match pattern must be either true or false.",
        ),
        (
            r#"{"a": [{"numeric": 5}]}"#,
            "Value of numeric must be an array.",
        ),
        (
            r#"{"a": [{"numeric": []}]}"#,
            "Invalid member in numeric match: ]",
        ),
        (
            r#"{"a": [{"numeric": [5]}]}"#,
            "Invalid member in numeric match: 5",
        ),
        (
            r#"{"a": [{"numeric": ["!", 5]}]}"#,
            "Unrecognized numeric range operator: !",
        ),
        (
            r#"{"a": [{"numeric": ["=", "5"]}]}"#,
            "Value of equals must be numeric",
        ),
        (
            r#"{"a": [{"numeric": ["<", "5"]}]}"#,
            "Value of < must be numeric",
        ),
        (
            r#"{"a": [{"numeric": ["<", 5, ">", 1]}]}"#,
            "Too many elements in numeric expression",
        ),
        (
            r#"{"a": [{"numeric": [">", 5, ">", 1]}]}"#,
            "Bad numeric range operator: >",
        ),
        (
            r#"{"a": [{"numeric": [">", 5, 6]}]}"#,
            "Bad value in numeric range: 6",
        ),
        (
            r#"{"a": [{"numeric": [">", 5, "<", 1]}]}"#,
            "Bottom must be less than top",
        ),
        (
            r#"{"a": [{"numeric": [">", 0, "<", 1, "<", 2]}]}"#,
            "Too many terms in numeric range expression",
        ),
        (
            r#"{"a": [{"anything-but": ["a", 1]}]}"#,
            "Inside anything but list, either all values are number or string, mixed type is not supported",
        ),
        (
            r#"{"a": [{"anything-but": [null]}]}"#,
            "Inside anything but list, start|null|boolean is not supported.",
        ),
        (
            r#"{"a": [{"anything-but": true}]}"#,
            "Value of anything-but must be an array or single string/number value.",
        ),
        (
            r#"{"a": [{"anything-but": {"numeric": [">", 1]}}]}"#,
            "Unsupported anything-but pattern: numeric",
        ),
        (
            r#"{"a": [{"anything-but": {"prefix": ""}}]}"#,
            "Null prefix/suffix not allowed",
        ),
        (
            r#"{"a": [{"anything-but": {"prefix": 1}}]}"#,
            "prefix/suffix match pattern must be a string",
        ),
        (
            r#"{"a": [{"wildcard": "abc**def"}]}"#,
            "Consecutive wildcard characters at pos 4",
        ),
        (
            r#"{"a": [{"wildcard": 5}]}"#,
            "wildcard match pattern must be a string",
        ),
        (
            r#"{"a": [{"cidr": "10.0.0.0"}]}"#,
            "Malformed CIDR, one '/' required",
        ),
        (
            r#"{"a": [{"cidr": "10.0.0.0/x"}]}"#,
            "Malformed CIDR, mask bits must be an integer",
        ),
        (
            r#"{"a": [{"cidr": "10.0.0/8"}]}"#,
            "Nonstandard IP address: 10.0.0",
        ),
        (
            r#"{"$or": {"a": ["b"]}}"#,
            "It must be an Array followed with $or.",
        ),
        (
            r#"{"$or": [{"a": ["b"]}]}"#,
            "There must have at least 2 Objects in $or relationship.",
        ),
        (
            r#"{"$or": [{"a": ["b"]}, "c"]}"#,
            "Only JSON object is allowed in array of $or relationship.",
        ),
        (
            r#"{"$or": [{"numeric": ["b"]}, {"c": ["d"]}]}"#,
            "numeric is Ruler reserved fieldName which cannot be used inside $or.",
        ),
    ];
    for (pattern, reason) in rows {
        let err = EventPattern::parse(pattern).expect_err(pattern);
        assert_eq!(err.reason(), *reason, "pattern {pattern}");
        assert_eq!(
            err.event_bridge_message(),
            format!("Event pattern is not valid. Reason: {reason}")
        );
    }
    assert!(EventPattern::parse("{not json").is_err());
}

// ---- Lambda FilterCriteria ------------------------------------------------

fn sqs_record(body: &str) -> Value {
    json!({
        "messageId": "059f36b4-87a3-44ab-83d2-661975830a7d",
        "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a...",
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1545082649183",
            "SenderId": "AIDAIENQZJOLO23YVJ4VO",
            "ApproximateFirstReceiveTimestamp": "1545082649185"
        },
        "messageAttributes": {},
        "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-west-2:123456789012:my-queue",
        "awsRegion": "us-west-2"
    })
}

fn lambda(patterns: &[&str]) -> FilterCriteria {
    FilterCriteria::parse(patterns.iter().copied()).unwrap()
}

#[test]
fn lambda_sqs_body_json_and_plain() {
    let json_body = "{\n \"RecordNumber\": 1234,\n \"TimeStamp\": \"yyyy-mm-ddThh:mm:ss\",\n \"RequestCode\": \"AAAA\"\n}";
    let rows: &[(&[&str], &str, bool)] = &[
        (
            &[r#"{"body": {"RequestCode": ["BBBB"]}}"#],
            json_body,
            false,
        ),
        (&[r#"{"body": {"RequestCode": ["AAAA"]}}"#], json_body, true),
        (
            &[r#"{"body": {"RecordNumber": [{"numeric": [">", 1000]}]}}"#],
            json_body,
            true,
        ),
        // Any filter may match.
        (
            &[
                r#"{"body": {"RequestCode": ["BBBB"]}}"#,
                r#"{"body": {"RequestCode": ["AAAA"]}}"#,
            ],
            json_body,
            true,
        ),
        // Plain string body, plain string pattern: filtered on the string.
        (&[r#"{"body": [{"prefix": "ABC"}]}"#], "ABC:AAAA", true),
        (&[r#"{"body": [{"prefix": "XYZ"}]}"#], "ABC:AAAA", false),
        (&[r#"{"body": ["ABC:AAAA"]}"#], "ABC:AAAA", true),
        // JSON pattern on a plain body, plain pattern on a JSON body: dropped.
        (
            &[r#"{"body": {"RequestCode": ["AAAA"]}}"#],
            "ABC:AAAA",
            false,
        ),
        (&[r#"{"body": [{"prefix": "{"}]}"#], json_body, false),
        // Patterns on other record fields still apply.
        (&[r#"{"awsRegion": ["us-west-2"]}"#], "ABC:AAAA", true),
    ];
    for (patterns, body, expected) in rows {
        let criteria = lambda(patterns);
        assert_eq!(
            criteria.matches(&sqs_record(body), Some(Payload::SQS)),
            *expected,
            "{patterns:?} on {body}"
        );
    }
}

#[test]
fn lambda_rule_syntax_table() {
    let rows: &[(&str, Value, bool)] = &[
        (r#"{"UserID": [null]}"#, json!({"UserID": null}), true),
        (r#"{"UserID": [null]}"#, json!({"UserID": "u"}), false),
        (r#"{"LastName": [""]}"#, json!({"LastName": ""}), true),
        (r#"{"Name": ["Alice"]}"#, json!({"Name": "Alice"}), true),
        (
            r#"{"Name": [{"equals-ignore-case": "alice"}]}"#,
            json!({"Name": "Alice"}),
            true,
        ),
        (
            r#"{"Location": ["New York"], "Day": ["Monday"]}"#,
            json!({"Location": "New York", "Day": "Monday"}),
            true,
        ),
        (
            r#"{"PaymentType": ["Credit", "Debit"]}"#,
            json!({"PaymentType": "Debit"}),
            true,
        ),
        (
            r#"{"PaymentType": ["Credit", "Debit"]}"#,
            json!({"PaymentType": "Cash"}),
            false,
        ),
        (
            r#"{"$or": [{"Location": ["New York"]}, {"Day": ["Monday"]}]}"#,
            json!({"Day": "Monday"}),
            true,
        ),
        (
            r#"{"Weather": [{"anything-but": ["Raining"]}]}"#,
            json!({"Weather": "Sunny"}),
            true,
        ),
        (
            r#"{"Weather": [{"anything-but": ["Raining"]}]}"#,
            json!({"Weather": "Raining"}),
            false,
        ),
        (
            r#"{"Price": [{"numeric": ["=", 100]}]}"#,
            json!({"Price": 100}),
            true,
        ),
        (
            r#"{"Price": [{"numeric": [">", 10, "<=", 20]}]}"#,
            json!({"Price": 15}),
            true,
        ),
        (
            r#"{"ProductName": [{"exists": true}]}"#,
            json!({"ProductName": "p"}),
            true,
        ),
        (
            r#"{"ProductName": [{"exists": false}]}"#,
            json!({"ProductName": "p"}),
            false,
        ),
        (
            r#"{"Region": [{"prefix": "us-"}]}"#,
            json!({"Region": "us-east-2"}),
            true,
        ),
        (
            r#"{"FileName": [{"suffix": ".png"}]}"#,
            json!({"FileName": "cat.png"}),
            true,
        ),
    ];
    for (pattern, record, expected) in rows {
        assert_eq!(
            lambda(&[pattern]).matches(record, None),
            *expected,
            "{pattern} on {record}"
        );
    }
}

#[test]
fn lambda_base64_data_kinesis_and_mq() {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let kinesis = json!({
        "kinesisSchemaVersion": "1.0",
        "partitionKey": "1",
        "sequenceNumber": "49590338271490256608559692538361571095921575989136588898",
        "data": b64(r#"{"RecordNumber": 1234, "TimeStamp": "yyyy-mm-ddThh:mm:ss", "RequestCode": "AAAA"}"#),
        "approximateArrivalTimestamp": 1545084650.987
    });
    assert!(
        lambda(&[r#"{"data": {"RequestCode": ["AAAA"]}}"#])
            .matches(&kinesis, Some(Payload::DATA_BASE64))
    );
    assert!(
        !lambda(&[r#"{"data": {"RequestCode": ["BBBB"]}}"#])
            .matches(&kinesis, Some(Payload::DATA_BASE64))
    );
    assert!(lambda(&[r#"{"partitionKey": ["1"]}"#]).matches(&kinesis, Some(Payload::DATA_BASE64)));
    // Amazon MQ: "QUJDOkFBQUE=" is "ABC:AAAA", a plain string.
    let mq = json!({"messageID": "ID:1", "data": "QUJDOkFBQUE=", "timestamp": 1598827811958_u64});
    assert!(lambda(&[r#"{"data": [{"prefix": "ABC"}]}"#]).matches(&mq, Some(Payload::DATA_BASE64)));
    assert!(
        !lambda(&[r#"{"data": [{"prefix": "XYZ"}]}"#]).matches(&mq, Some(Payload::DATA_BASE64))
    );
}

#[test]
fn lambda_dynamodb_and_empty_criteria() {
    let record = json!({
        "eventName": "INSERT",
        "dynamodb": {"Keys": {"CustomerName": {"S": "AnyCompany Industries"}}, "NewImage": {"AccountManager": {"S": "Pat Candella"}}}
    });
    assert!(
        lambda(&[r#"{"dynamodb": {"Keys": {"CustomerName": {"S": ["AnyCompany Industries"]}}}}"#])
            .matches(&record, None)
    );
    assert!(lambda(&[r#"{"eventName": ["INSERT"]}"#]).matches(&record, None));
    assert!(!lambda(&[r#"{"eventName": ["REMOVE"]}"#]).matches(&record, None));
    assert!(FilterCriteria::default().matches(&record, None));
    let err = FilterCriteria::parse([r#"{"eventName": "INSERT"}"#]).unwrap_err();
    assert_eq!(err.reason(), "\"eventName\" must be an object or an array");
    assert_eq!(
        crate::lambda::INVALID_FILTER_MESSAGE,
        "Invalid filter pattern definition."
    );
}

// ---- SNS filter policies ---------------------------------------------------

fn doc_attributes() -> Vec<(&'static str, Attribute<'static>)> {
    vec![
        (
            "customer_interests",
            Attribute {
                data_type: "String.Array",
                value: Some(r#"["soccer", "rugby", "hockey"]"#),
            },
        ),
        (
            "store",
            Attribute {
                data_type: "String",
                value: Some("example_corp"),
            },
        ),
        (
            "event",
            Attribute {
                data_type: "String",
                value: Some("order_placed"),
            },
        ),
        (
            "price_usd",
            Attribute {
                data_type: "Number",
                value: Some("210.75"),
            },
        ),
    ]
}

fn sns(policy: &str) -> FilterPolicy {
    FilterPolicy::parse(policy, Scope::MessageAttributes)
        .unwrap_or_else(|e| panic!("{policy}: {}", e.message(false)))
}

fn attr<'a>(data_type: &'a str, value: &'a str) -> Vec<(&'a str, Attribute<'a>)> {
    vec![(
        "a",
        Attribute {
            data_type,
            value: Some(value),
        },
    )]
}

#[test]
fn sns_documented_accept_and_reject() {
    let accept = r#"{"store": ["example_corp"], "event": [{"anything-but": "order_cancelled"}], "customer_interests": ["rugby", "football", "baseball"], "price_usd": [{"numeric": [">=", 100]}]}"#;
    assert!(sns(accept).matches(doc_attributes(), "message-body-with-transaction-details"));
    let reject = r#"{"store": ["example_corp"], "event": ["order_cancelled"], "encrypted": [false], "customer_interests": ["basketball", "baseball"]}"#;
    assert!(!sns(reject).matches(doc_attributes(), ""));
    assert!(sns("{}").matches(doc_attributes(), ""));
}

#[test]
fn sns_attribute_operators() {
    let rows: &[(&str, &str, &str, bool)] = &[
        (r#"{"a": ["rugby", "tennis"]}"#, "String", "rugby", true),
        (r#"{"a": ["rugby", "tennis"]}"#, "String", "baseball", false),
        (
            r#"{"a": [{"anything-but": ["rugby", "tennis"]}]}"#,
            "String",
            "football",
            true,
        ),
        (
            r#"{"a": [{"anything-but": ["rugby", "tennis"]}]}"#,
            "String.Array",
            r#"["rugby", "baseball"]"#,
            true,
        ),
        (
            r#"{"a": [{"anything-but": ["rugby", "tennis"]}]}"#,
            "String",
            "rugby",
            false,
        ),
        (
            r#"{"a": [{"prefix": "bas"}]}"#,
            "String",
            "basketball",
            true,
        ),
        (r#"{"a": [{"prefix": "bas"}]}"#, "String", "rugby", false),
        (r#"{"a": [{"suffix": "ball"}]}"#, "String", "baseball", true),
        (
            r#"{"a": [{"equals-ignore-case": "RUGBY"}]}"#,
            "String",
            "rugby",
            true,
        ),
        (
            r#"{"a": [{"anything-but": {"prefix": "order-"}}]}"#,
            "String",
            "order-cancelled",
            false,
        ),
        (
            r#"{"a": [{"numeric": ["=", 301.5]}]}"#,
            "Number",
            "301.5",
            true,
        ),
        (
            r#"{"a": [{"numeric": ["=", 301.5]}]}"#,
            "Number",
            "3.015e2",
            true,
        ),
        (
            r#"{"a": [{"anything-but": [100, 500]}]}"#,
            "Number",
            "101",
            true,
        ),
        (
            r#"{"a": [{"anything-but": [100, 500]}]}"#,
            "Number",
            "100.1",
            true,
        ),
        (
            r#"{"a": [{"anything-but": [100, 500]}]}"#,
            "Number",
            "100",
            false,
        ),
        (r#"{"a": [{"numeric": ["<", 0]}]}"#, "Number", "-1", true),
        (r#"{"a": [{"numeric": ["<", 0]}]}"#, "Number", "1", false),
        (
            r#"{"a": [{"numeric": [">", 0, "<=", 150]}]}"#,
            "Number",
            "150",
            true,
        ),
        (
            r#"{"a": [{"numeric": [">", 0, "<=", 150]}]}"#,
            "Number",
            "150.5",
            false,
        ),
        // Strings are compared as strings, not as numbers.
        (r#"{"a": [{"numeric": [">", 0]}]}"#, "String", "5", false),
        (
            r#"{"a": [{"cidr": "10.0.0.0/24"}]}"#,
            "String",
            "10.0.0.7",
            true,
        ),
        (r#"{"a": [{"exists": true}]}"#, "String", "fans", true),
        (r#"{"a": [{"exists": false}]}"#, "String", "fans", false),
        // Binary attributes are ignored.
        (r#"{"a": [{"exists": true}]}"#, "Binary", "AAEC", false),
        // Custom type suffixes keep the base type.
        (
            r#"{"a": [{"numeric": [">", 1]}]}"#,
            "Number.float",
            "2.5",
            true,
        ),
    ];
    for (policy, data_type, value, expected) in rows {
        assert_eq!(
            sns(policy).matches(attr(data_type, value), ""),
            *expected,
            "{policy} on {data_type} {value}"
        );
    }
    // A missing attribute fails every rule but `exists: false`.
    assert!(!sns(r#"{"store": ["x"]}"#).matches(Vec::new(), ""));
    assert!(sns(r#"{"store": [{"exists": false}]}"#).matches(Vec::new(), ""));
    // AND across names, OR within a list, and $or.
    let and = sns(r#"{"customer_interests": ["rugby"], "price_usd": [{"numeric": [">", 100]}]}"#);
    assert!(and.matches(doc_attributes(), ""));
    let or = sns(r#"{"$or": [{"store": ["nope"]}, {"event": ["order_placed"]}]}"#);
    assert!(or.matches(doc_attributes(), ""));
}

#[test]
fn sns_message_body_scope() {
    let policy = FilterPolicy::parse(
        r#"{"store": ["example_corp"], "detail": {"price": [{"numeric": [">", 100]}]}}"#,
        Scope::MessageBody,
    )
    .unwrap();
    assert!(policy.matches(
        Vec::new(),
        r#"{"store": "example_corp", "detail": {"price": 150}}"#
    ));
    assert!(!policy.matches(
        Vec::new(),
        r#"{"store": "example_corp", "detail": {"price": 50}}"#
    ));
    // A body that is not a JSON object never matches.
    assert!(!policy.matches(Vec::new(), "plain text"));
    assert!(!policy.matches(doc_attributes(), "[1, 2]"));
}

#[test]
fn sns_refusals() {
    let rows: &[(&str, Scope, &str)] = &[
        (
            r#"{"a": ["1"], "b": ["1"], "c": ["1"], "d": ["1"], "e": ["1"], "f": ["1"]}"#,
            Scope::MessageAttributes,
            "FilterPolicy: Filter policy can not have more than 5 keys",
        ),
        (
            r#"{"a": {"b": ["1"]}}"#,
            Scope::MessageAttributes,
            "Filter policy scope MessageAttributes does not support nested filter policy",
        ),
        (
            r#"{"a": []}"#,
            Scope::MessageAttributes,
            "FilterPolicy: Empty arrays are not allowed",
        ),
        (
            r#"{"a": [{"wildcard": "x*"}]}"#,
            Scope::MessageAttributes,
            "FilterPolicy: Unrecognized match type wildcard",
        ),
        (
            r#"{"a": [{"anything-but": {"equals-ignore-case": "x"}}]}"#,
            Scope::MessageAttributes,
            "FilterPolicy: Unsupported anything-but pattern: equals-ignore-case",
        ),
        (
            r#"{"a": [{"numeric": [">", 1, "<", 0]}]}"#,
            Scope::MessageAttributes,
            "FilterPolicy: Bottom must be less than top",
        ),
        (
            r#"{"a": [{"exists": 1}]}"#,
            Scope::MessageBody,
            "FilterPolicy: exists match pattern must be either true or false.",
        ),
        (
            r#"{"a": "b"}"#,
            Scope::MessageBody,
            "FilterPolicy: \"a\" must be an object or an array",
        ),
    ];
    for (policy, scope, detail) in rows {
        let err = FilterPolicy::parse(policy, *scope).unwrap_err();
        assert_eq!(err.detail(), *detail, "{policy}");
        assert_eq!(err.message(false), format!("Invalid parameter: {detail}"));
        assert_eq!(
            err.message(true),
            format!("Invalid parameter: Attributes Reason: {detail}")
        );
    }
}

#[test]
fn sns_combinations_as_documented() {
    // 3 x 1 x 2 = 6: accepted.
    sns(
        r#"{"key_a": ["value_one", "value_two", "value_three"], "key_b": ["value_one"], "key_c": ["value_one", "value_two"]}"#,
    );
    // Nested (body scope): 3 x 4 x 2 x 3 = 72, accepted.
    FilterPolicy::parse(
        r#"{"key_a": {"key_b": {"key_c": ["value_one", "value_two", "value_three", "value_four"]}}, "key_d": {"key_e": ["value_one", "value_two", "value_three"]}}"#,
        Scope::MessageBody,
    )
    .unwrap();
    // 151 values in one array: too complex.
    let values: Vec<String> = (0..151).map(|i| format!("\"v{i}\"")).collect();
    let policy = format!("{{\"a\": [{}]}}", values.join(","));
    let err = FilterPolicy::parse(&policy, Scope::MessageAttributes).unwrap_err();
    assert_eq!(err.detail(), "FilterPolicy: Filter policy is too complex");
    // 13 x 12 = 156 across keys: too complex as well.
    let a: Vec<String> = (0..13).map(|i| format!("\"a{i}\"")).collect();
    let b: Vec<String> = (0..12).map(|i| format!("\"b{i}\"")).collect();
    let policy = format!("{{\"a\": [{}], \"b\": [{}]}}", a.join(","), b.join(","));
    assert!(FilterPolicy::parse(&policy, Scope::MessageAttributes).is_err());
}

#[test]
fn dialects_differ_only_where_documented() {
    let wildcard = json!({"a": [{"wildcard": "x*"}]});
    assert!(EventPattern::from_value_as(&wildcard, Dialect::EventBridge).is_ok());
    assert!(EventPattern::from_value_as(&wildcard, Dialect::Lambda).is_ok());
    assert!(EventPattern::from_value_as(&wildcard, Dialect::Sns).is_err());
    assert_eq!(
        EventPattern::parse(r#"{"a": ["b"]}"#)
            .unwrap()
            .matches_json(r#"{"a": "b"}"#),
        Some(true)
    );
    assert_eq!(
        EventPattern::parse(r#"{"a": ["b"]}"#)
            .unwrap()
            .matches_json("nope"),
        None
    );
}
