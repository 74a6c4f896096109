//! What subscribers receive: the Lambda event (`Records[].Sns`), the HTTP
//! notification and subscription confirmation with SNS's `x-amz-sns-*`
//! headers, and their signatures.

use std::collections::BTreeMap;

use base64::Engine as _;
use hmac::{Hmac, KeyInit as _, Mac as _};
use serde_json::{Map, Value, json};
use sha2::Sha256;

/// A message attribute as published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageAttribute {
    pub data_type: String,
    /// `StringValue` (String, Number, String.Array and their custom types).
    pub string_value: Option<String>,
    /// `BinaryValue`, as the raw bytes.
    pub binary_value: Option<Vec<u8>>,
}

impl MessageAttribute {
    /// The value as notifications carry it: the string, or base64 for binary.
    pub fn wire_value(&self) -> String {
        match (&self.string_value, &self.binary_value) {
            (Some(s), _) => s.clone(),
            (None, Some(b)) => base64::engine::general_purpose::STANDARD.encode(b),
            (None, None) => String::new(),
        }
    }

    /// The type notifications carry: the base type (`String`, `Number`,
    /// `Binary`), `String.Array` kept whole.
    pub fn wire_type(&self) -> &str {
        if self.data_type == "String.Array" {
            return "String.Array";
        }
        self.data_type.split('.').next().unwrap_or("String")
    }
}

pub type Attributes = BTreeMap<String, MessageAttribute>;

/// One message as subscribers see it.
pub struct Notification<'a> {
    pub message_id: &'a str,
    pub topic_arn: &'a str,
    pub subject: Option<&'a str>,
    pub message: &'a str,
    pub timestamp: &'a str,
    pub attributes: &'a Attributes,
    pub unsubscribe_url: &'a str,
}

/// Signs notifications. Each server keeps its own key; the signature covers
/// SNS's canonical string of the message's fields.
#[derive(Clone)]
pub struct Signer {
    key: [u8; 32],
}

impl Signer {
    pub fn new(key: [u8; 32]) -> Self {
        Signer { key }
    }

    fn sign(&self, fields: &[(&str, Option<&str>)]) -> String {
        let mut text = String::new();
        for (name, value) in fields {
            if let Some(v) = value {
                text.push_str(name);
                text.push('\n');
                text.push_str(v);
                text.push('\n');
            }
        }
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.key) {
            Ok(m) => m,
            Err(_) => return String::new(),
        };
        mac.update(text.as_bytes());
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    }

    fn notification_signature(&self, n: &Notification<'_>) -> String {
        self.sign(&[
            ("Message", Some(n.message)),
            ("MessageId", Some(n.message_id)),
            ("Subject", n.subject),
            ("Timestamp", Some(n.timestamp)),
            ("TopicArn", Some(n.topic_arn)),
            ("Type", Some("Notification")),
        ])
    }
}

/// Where a server's signing key is described (`SigningCertURL`).
pub fn signing_cert_url(base_url: &str) -> String {
    format!("{base_url}/lambent/sns/signing-key")
}

fn attributes_json(attributes: &Attributes) -> Value {
    let mut m = Map::new();
    for (name, a) in attributes {
        m.insert(
            name.clone(),
            json!({"Type": a.wire_type(), "Value": a.wire_value()}),
        );
    }
    Value::Object(m)
}

/// The event a Lambda subscriber receives.
pub fn lambda_event(
    signer: &Signer,
    signature_version: &str,
    base_url: &str,
    subscription_arn: &str,
    n: &Notification<'_>,
) -> Value {
    json!({
        "Records": [{
            "EventSource": "aws:sns",
            "EventVersion": "1.0",
            "EventSubscriptionArn": subscription_arn,
            "Sns": {
                "Type": "Notification",
                "MessageId": n.message_id,
                "TopicArn": n.topic_arn,
                "Subject": n.subject,
                "Message": n.message,
                "Timestamp": n.timestamp,
                "SignatureVersion": signature_version,
                "Signature": signer.notification_signature(n),
                "SigningCertUrl": signing_cert_url(base_url),
                "UnsubscribeUrl": n.unsubscribe_url,
                "MessageAttributes": attributes_json(n.attributes),
            }
        }]
    })
}

/// The JSON document an HTTP subscriber receives (unless raw delivery).
pub fn http_notification(
    signer: &Signer,
    signature_version: &str,
    base_url: &str,
    n: &Notification<'_>,
) -> Value {
    let mut doc = Map::new();
    doc.insert("Type".into(), json!("Notification"));
    doc.insert("MessageId".into(), json!(n.message_id));
    doc.insert("TopicArn".into(), json!(n.topic_arn));
    if let Some(s) = n.subject {
        doc.insert("Subject".into(), json!(s));
    }
    doc.insert("Message".into(), json!(n.message));
    doc.insert("Timestamp".into(), json!(n.timestamp));
    doc.insert("SignatureVersion".into(), json!(signature_version));
    doc.insert("Signature".into(), json!(signer.notification_signature(n)));
    doc.insert("SigningCertURL".into(), json!(signing_cert_url(base_url)));
    doc.insert("UnsubscribeURL".into(), json!(n.unsubscribe_url));
    if !n.attributes.is_empty() {
        doc.insert("MessageAttributes".into(), attributes_json(n.attributes));
    }
    Value::Object(doc)
}

/// The `SubscriptionConfirmation` an HTTP subscriber receives.
pub fn confirmation(
    signer: &Signer,
    signature_version: &str,
    base_url: &str,
    message_id: &str,
    topic_arn: &str,
    token: &str,
    timestamp: &str,
) -> Value {
    let subscribe_url = format!(
        "{base_url}/?Action=ConfirmSubscription&TopicArn={}&Token={}",
        encode(topic_arn),
        encode(token)
    );
    let message = format!(
        "You have chosen to subscribe to the topic {topic_arn}.\nTo confirm the subscription, visit the SubscribeURL included in this message."
    );
    let signature = signer.sign(&[
        ("Message", Some(&message)),
        ("MessageId", Some(message_id)),
        ("SubscribeURL", Some(&subscribe_url)),
        ("Timestamp", Some(timestamp)),
        ("Token", Some(token)),
        ("TopicArn", Some(topic_arn)),
        ("Type", Some("SubscriptionConfirmation")),
    ]);
    json!({
        "Type": "SubscriptionConfirmation",
        "MessageId": message_id,
        "Token": token,
        "TopicArn": topic_arn,
        "Message": message,
        "SubscribeURL": subscribe_url,
        "Timestamp": timestamp,
        "SignatureVersion": signature_version,
        "Signature": signature,
        "SigningCertURL": signing_cert_url(base_url),
    })
}

/// The `UnsubscribeURL` of a subscription.
pub fn unsubscribe_url(base_url: &str, subscription_arn: &str) -> String {
    format!(
        "{base_url}/?Action=Unsubscribe&SubscriptionArn={}",
        encode(subscription_arn)
    )
}

/// The headers SNS sends with every HTTP delivery.
pub fn http_headers(
    kind: &str,
    message_id: &str,
    topic_arn: &str,
    subscription_arn: Option<&str>,
    raw: bool,
) -> Vec<(String, String)> {
    let mut h = vec![
        ("x-amz-sns-message-type".to_owned(), kind.to_owned()),
        ("x-amz-sns-message-id".to_owned(), message_id.to_owned()),
        ("x-amz-sns-topic-arn".to_owned(), topic_arn.to_owned()),
    ];
    if let Some(s) = subscription_arn {
        h.push(("x-amz-sns-subscription-arn".to_owned(), s.to_owned()));
    }
    if raw {
        h.push(("x-amz-sns-rawdelivery".to_owned(), "true".to_owned()));
    }
    h.push((
        "content-type".to_owned(),
        "text/plain; charset=UTF-8".to_owned(),
    ));
    h.push((
        "user-agent".to_owned(),
        "Amazon Simple Notification Service Agent".to_owned(),
    ));
    h
}

/// Percent-encodes a query value (RFC 3986 unreserved characters kept).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
