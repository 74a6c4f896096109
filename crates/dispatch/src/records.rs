//! What a finished event leaves behind: AWS's destination records and dead
//! letters, as queued work for their targets.

use bytes::Bytes;
use invoke::Response;
use model::{Destination, Scope};
use queue::{Claimed, NewWork, Recipient};
use serde_json::{Value, json};

use crate::decide::Condition;

/// The dead-letter attributes, as HTTP headers on a webhook delivery.
pub(crate) const DLQ_HEADER_REQUEST_ID: &str = "Lambda-DLQ-RequestID";
const DLQ_HEADER_ERROR_CODE: &str = "Lambda-DLQ-ErrorCode";
const DLQ_HEADER_ERROR_MESSAGE: &str = "Lambda-DLQ-ErrorMessage";
/// Dead-letter error messages are cut to this many bytes, as AWS does.
const DLQ_MESSAGE_MAX: usize = 1024;

/// What records of one event need to know of its function.
pub(crate) struct Origin<'a> {
    /// The ARN records name: qualified (`...:function:f:$LATEST`).
    pub function_arn: &'a str,
}

/// `responseContext` and `responsePayload` of one attempt, as a record has
/// them.
pub(crate) fn response_context(r: &Response) -> Value {
    let mut ctx = json!({
        "statusCode": 200,
        "executedVersion": r.executed_version,
    });
    if let Some(fe) = r.function_error {
        ctx["functionError"] = json!(fe);
    }
    json!({
        "responseContext": ctx,
        "responsePayload": payload_value(&r.payload),
    })
}

/// A payload as it appears inside a record: its JSON, or a string when it is
/// not JSON.
fn payload_value(p: &Bytes) -> Value {
    if p.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(p)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(p).into_owned()))
}

/// AWS's destination record. `last` is the response context of the last
/// attempt (see [`response_context`]), when there was one.
pub(crate) fn record(
    c: &Claimed,
    origin: &Origin<'_>,
    condition: Condition,
    invoke_count: u32,
    last: Option<&Value>,
    now_ms: i64,
) -> Value {
    let mut rec = json!({
        "version": "1.0",
        "timestamp": model::time_fmt::iso_millis_z(now_ms),
        "requestContext": {
            "requestId": c.request_id,
            "functionArn": origin.function_arn,
            "condition": condition.as_str(),
            "approximateInvokeCount": invoke_count,
        },
        "requestPayload": if c.payload.is_empty() { json!({}) } else { payload_value(&c.payload) },
    });
    if let Some(last) = last {
        for key in ["responseContext", "responsePayload"] {
            if let Some(v) = last.get(key) {
                rec[key] = v.clone();
            }
        }
    }
    rec
}

/// The queued work that delivers `record` to a destination.
pub(crate) fn destination_work(
    source: &Scope,
    dest: &str,
    record: Value,
    now_ms: i64,
) -> Option<NewWork> {
    let payload = Bytes::from(serde_json::to_vec(&record).ok()?);
    // Records nest the event and the response; a chain of destinations
    // (A's failures to B, B's to A) grows them each hop. Stop at Lambda's
    // response limit.
    if payload.len() > model::limits::SYNC_RESPONSE_MAX_BYTES {
        tracing::warn!(destination = %dest, bytes = payload.len(), "destination record too large; dropped");
        return None;
    }
    work_for(source, dest, payload, Vec::new(), now_ms)
}

/// The dead letter's error code and message: the last attempt's, or the
/// condition's when no attempt was made.
pub(crate) fn dead_letter_error(last: Option<&Value>, condition: Condition) -> (u64, String) {
    match last {
        Some(l) => (
            l.pointer("/responseContext/statusCode")
                .and_then(Value::as_u64)
                .unwrap_or(200),
            l.pointer("/responsePayload/errorMessage")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| condition.as_str().to_owned()),
        ),
        None => (429, condition.as_str().to_owned()),
    }
}

/// The queued work that delivers the original event to a dead-letter target.
pub(crate) fn dead_letter_work(
    source: &Scope,
    target: &str,
    c: &Claimed,
    code: u64,
    message: &str,
    now_ms: i64,
) -> Option<NewWork> {
    let mut message = message.to_owned();
    if message.len() > DLQ_MESSAGE_MAX {
        let mut cut = DLQ_MESSAGE_MAX;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
    }
    let headers = vec![
        (DLQ_HEADER_REQUEST_ID.to_owned(), c.request_id.clone()),
        (DLQ_HEADER_ERROR_CODE.to_owned(), code.to_string()),
        (DLQ_HEADER_ERROR_MESSAGE.to_owned(), header_safe(&message)),
    ];
    work_for(source, target, c.payload.clone(), headers, now_ms)
}

/// Text as an HTTP header value can carry it: visible ASCII and spaces;
/// control characters become spaces and other characters `\u{..}` escapes.
fn header_safe(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            ' '..='~' => out.push(ch),
            c if c.is_control() => out.push(' '),
            c => out.extend(c.escape_unicode()),
        }
    }
    out
}

fn work_for(
    source: &Scope,
    target: &str,
    payload: Bytes,
    extra_headers: Vec<(String, String)>,
    now_ms: i64,
) -> Option<NewWork> {
    let recipient = match Destination::parse(target).ok()? {
        // Configuration refuses other accounts' functions; never deliver to
        // one either.
        Destination::Function { scope, .. } if scope.account != source.account => {
            tracing::warn!(target = %target, "not delivering to a function of another account");
            return None;
        }
        Destination::Function {
            scope,
            name,
            qualifier,
        } => Recipient::Function {
            scope,
            name: name.to_string(),
            qualifier: qualifier.map(|q| q.to_string()),
            client_context: None,
        },
        Destination::Http(url) => {
            let mut headers = vec![("Content-Type".to_owned(), "application/json".to_owned())];
            headers.extend(extra_headers);
            Recipient::Http { url, headers }
        }
    };
    Some(NewWork {
        request_id: invoke::random_uuid().to_string(),
        recipient,
        payload,
        enqueued_ms: now_ms,
        due_ms: now_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(account: &str) -> Scope {
        Scope::new(
            model::AccountId::parse(account).unwrap(),
            model::Region::parse("us-east-1").unwrap(),
        )
    }

    fn claimed(payload: &'static [u8]) -> Claimed {
        Claimed {
            id: 1,
            request_id: "r".into(),
            recipient: Recipient::Http {
                url: "http://127.0.0.1/".into(),
                headers: vec![],
            },
            payload: Bytes::from_static(payload),
            enqueued_ms: 0,
            attempts: 3,
            throttles: 0,
            last_result: None,
        }
    }

    #[test]
    fn dead_letter_messages_are_cut_to_one_kilobyte_on_a_character_boundary() {
        let c = claimed(b"{\"a\":1}");
        // 'é' is two bytes: 1,024 bytes end inside the 513th character when
        // the message starts with one byte.
        let msg = format!("x{}", "é".repeat(600));
        let w = dead_letter_work(
            &scope("123456789012"),
            "http://127.0.0.1:1/dlq",
            &c,
            200,
            &msg,
            0,
        )
        .unwrap();
        let Recipient::Http { headers, .. } = w.recipient else {
            panic!("not http")
        };
        let m = &headers
            .iter()
            .find(|(k, _)| k == DLQ_HEADER_ERROR_MESSAGE)
            .unwrap()
            .1;
        // 1 + 511 * 2 = 1,023 bytes kept: the cut moved back off the middle
        // of a character.
        assert!(m.starts_with('x'));
        assert_eq!(m.matches("\\u{e9}").count(), 511);
        assert_eq!(m.len(), 1 + 511 * "\\u{e9}".len());
        assert_eq!(header_safe("a\x1b[31mred\tb"), "a [31mred b");
        assert_eq!(&w.payload[..], b"{\"a\":1}");
    }

    #[test]
    fn records_are_never_delivered_to_another_accounts_function() {
        let rec = json!({"version": "1.0"});
        let own = "arn:aws:lambda:us-east-1:123456789012:function:dest";
        let other = "arn:aws:lambda:us-east-1:210987654321:function:dest";
        let source = scope("123456789012");
        assert!(destination_work(&source, own, rec.clone(), 0).is_some());
        assert!(destination_work(&source, other, rec.clone(), 0).is_none());
        assert!(dead_letter_work(&source, other, &claimed(b"{}"), 200, "m", 0).is_none());
    }

    #[test]
    fn a_destination_chain_stops_at_the_response_limit() {
        let source = scope("123456789012");
        let own = "arn:aws:lambda:us-east-1:123456789012:function:dest";
        let big = "x".repeat(model::limits::SYNC_RESPONSE_MAX_BYTES);
        assert!(destination_work(&source, own, json!({ "requestPayload": big }), 0).is_none());
        let fits = "x".repeat(model::limits::SYNC_RESPONSE_MAX_BYTES - 100);
        assert!(destination_work(&source, own, json!({ "requestPayload": fits }), 0).is_some());
    }

    #[test]
    fn records_carry_the_last_response() {
        let c = claimed(b"{\"k\":1}");
        let origin = Origin {
            function_arn: "arn:aws:lambda:us-east-1:123456789012:function:f:$LATEST",
        };
        let last = response_context(&Response {
            request_id: "r".into(),
            executed_version: "3".into(),
            payload: Bytes::from_static(b"{\"errorMessage\":\"boom\"}"),
            function_error: Some("Unhandled"),
            log_result: None,
        });
        let rec = record(&c, &origin, Condition::RetriesExhausted, 3, Some(&last), 0);
        assert_eq!(rec["requestContext"]["condition"], "RetriesExhausted");
        assert_eq!(rec["requestContext"]["approximateInvokeCount"], 3);
        assert_eq!(rec["requestPayload"], json!({"k": 1}));
        assert_eq!(rec["responseContext"]["executedVersion"], "3");
        assert_eq!(rec["responseContext"]["functionError"], "Unhandled");
        assert_eq!(rec["timestamp"], "1970-01-01T00:00:00.000Z");
        assert_eq!(
            dead_letter_error(Some(&last), Condition::RetriesExhausted),
            (200, "boom".to_owned())
        );
        assert_eq!(
            dead_letter_error(None, Condition::EventAgeExceeded),
            (429, "EventAgeExceeded".to_owned())
        );
    }
}
