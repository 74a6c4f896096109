//! SNS's rules for names, attributes and messages, with its messages.

use serde_json::Value;

use crate::message::Attributes;
use crate::types::{Protocol, SnsError, Subscription, Topic};

pub(crate) const DEFAULT_EFFECTIVE_DELIVERY_POLICY: &str = r#"{"http":{"defaultHealthyRetryPolicy":{"minDelayTarget":20,"maxDelayTarget":20,"numRetries":3,"numMaxDelayRetries":0,"numNoDelayRetries":0,"numMinDelayRetries":0,"backoffFunction":"linear"},"disableSubscriptionOverrides":false,"defaultRequestPolicy":{"headerContentType":"text/plain; charset=UTF-8"}}}"#;

/// Most message attributes on one message.
const MAX_ATTRIBUTES: usize = 10;
pub(crate) const MAX_TAGS: usize = 50;

fn name_chars_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Checks a topic name against its `FifoTopic` attribute; answers whether
/// the topic is FIFO.
pub(crate) fn topic_name(
    name: &str,
    attributes: &std::collections::BTreeMap<String, String>,
) -> Result<bool, SnsError> {
    let fifo_attr = attributes
        .get("FifoTopic")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let fifo_name = name.ends_with(".fifo");
    if fifo_attr {
        let base = name.strip_suffix(".fifo").unwrap_or(name);
        if !fifo_name || name.len() > 256 || !name_chars_ok(base) {
            return Err(SnsError::invalid(
                "Fifo Topic names must end with .fifo and must be made up of only uppercase and lowercase ASCII letters, numbers, underscores, and hyphens, and must be between 1 and 256 characters long.",
            ));
        }
        return Ok(true);
    }
    if !name_chars_ok(name) {
        return Err(SnsError::invalid("Topic Name"));
    }
    Ok(false)
}

fn json_object(name: &str, value: &str) -> Result<(), SnsError> {
    match serde_json::from_str::<Value>(value) {
        Ok(Value::Object(_)) => Ok(()),
        _ => Err(SnsError::invalid(format!(
            "Attributes Reason: {name}: failed to parse JSON"
        ))),
    }
}

fn is_feedback_attribute(name: &str) -> bool {
    ["Application", "Firehose", "HTTP", "Lambda", "SQS"]
        .iter()
        .any(|p| {
            name.strip_prefix(p).is_some_and(|rest| {
                matches!(
                    rest,
                    "SuccessFeedbackRoleArn"
                        | "SuccessFeedbackSampleRate"
                        | "FailureFeedbackRoleArn"
                )
            })
        })
}

/// Validates and applies one topic attribute (an empty value removes it).
pub(crate) fn topic_attribute(
    topic: &mut Topic,
    name: &str,
    value: &str,
    creating: bool,
) -> Result<(), SnsError> {
    let fifo_only = |topic: &Topic| {
        if topic.fifo {
            Ok(())
        } else {
            Err(SnsError::invalid(format!(
                "Attributes Reason: {name} is only valid for FIFO topics"
            )))
        }
    };
    match name {
        "DisplayName" => {
            if value.len() > 100 {
                return Err(SnsError::invalid("DisplayName"));
            }
        }
        "FifoTopic" => {
            if !creating {
                return Err(SnsError::invalid("AttributeName"));
            }
            // Decided by the name (see `topic_name`); not kept as set.
            return Ok(());
        }
        "Policy" | "DeliveryPolicy" | "DataProtectionPolicy" => {
            if !value.is_empty() {
                json_object(name, value)?;
            }
        }
        "ArchivePolicy" => {
            fifo_only(topic)?;
            if !value.is_empty() {
                json_object(name, value)?;
            }
        }
        "ContentBasedDeduplication" => {
            fifo_only(topic)?;
            if value != "true" && value != "false" {
                return Err(SnsError::invalid(
                    "Attributes Reason: ContentBasedDeduplication must be true or false",
                ));
            }
        }
        "FifoThroughputScope" => {
            fifo_only(topic)?;
            if value != "Topic" && value != "MessageGroup" {
                return Err(SnsError::invalid(
                    "Attributes Reason: FifoThroughputScope must be Topic or MessageGroup",
                ));
            }
        }
        "SignatureVersion" => {
            if value != "1" && value != "2" {
                return Err(SnsError::invalid(
                    "Attributes Reason: SignatureVersion must be 1 or 2",
                ));
            }
        }
        "TracingConfig" => {
            if value != "PassThrough" && value != "Active" {
                return Err(SnsError::invalid(
                    "Attributes Reason: TracingConfig must be PassThrough or Active",
                ));
            }
        }
        "KmsMasterKeyId" => {}
        other if is_feedback_attribute(other) => {}
        _ => return Err(SnsError::invalid("AttributeName")),
    }
    if value.is_empty() {
        topic.attributes.remove(name);
    } else {
        topic.attributes.insert(name.to_owned(), value.to_owned());
    }
    Ok(())
}

pub(crate) fn tags(tags: &[(String, String)]) -> Result<(), SnsError> {
    if tags.len() > MAX_TAGS {
        return Err(SnsError::TagLimitExceeded);
    }
    for (k, v) in tags {
        if k.is_empty() || k.len() > 128 || v.len() > 256 {
            return Err(SnsError::invalid("Tags"));
        }
    }
    Ok(())
}

/// The policy a topic has until one is set: its owner may do everything.
pub(crate) fn default_topic_policy(topic: &Topic) -> String {
    serde_json::json!({
        "Version": "2008-10-17",
        "Id": "__default_policy_ID",
        "Statement": [{
            "Sid": "__default_statement_ID",
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Action": [
                "SNS:GetTopicAttributes", "SNS:SetTopicAttributes", "SNS:AddPermission",
                "SNS:RemovePermission", "SNS:DeleteTopic", "SNS:Subscribe",
                "SNS:ListSubscriptionsByTopic", "SNS:Publish"
            ],
            "Resource": topic.arn,
            "Condition": {"StringEquals": {"AWS:SourceOwner": topic.scope.account.to_string()}}
        }]
    })
    .to_string()
}

const AWS_PROTOCOLS: &[&str] = &[
    "http",
    "https",
    "email",
    "email-json",
    "sms",
    "sqs",
    "application",
    "lambda",
    "firehose",
];

pub(crate) fn protocol(text: &str, fifo: bool) -> Result<Protocol, SnsError> {
    let p = match text {
        "lambda" => Protocol::Lambda,
        "http" => Protocol::Http,
        // https needs a TLS client this server's delivery layer does not
        // have: refused rather than left pending for ever.
        other if AWS_PROTOCOLS.contains(&other) => {
            return Err(SnsError::invalid(format!(
                "Protocol Reason: {other} subscriptions are not supported by this server (lambda and http are)"
            )));
        }
        other => {
            return Err(SnsError::invalid(format!(
                "Amazon SNS does not support this protocol string: {other}"
            )));
        }
    };
    if fifo {
        return Err(SnsError::invalid(format!(
            "Invalid protocol type: {}",
            p.as_str()
        )));
    }
    Ok(p)
}

pub(crate) fn endpoint(protocol: Protocol, endpoint: Option<&str>) -> Result<String, SnsError> {
    let endpoint = endpoint.unwrap_or("");
    match protocol {
        Protocol::Lambda => match model::arn::ResourceArn::parse(endpoint) {
            Ok(_) => Ok(endpoint.to_owned()),
            Err(_) => Err(SnsError::invalid("Lambda endpoint ARN")),
        },
        Protocol::Http | Protocol::Https => {
            let prefix = format!("{}://", protocol.as_str());
            let rest = endpoint.strip_prefix(prefix.as_str()).unwrap_or("");
            let host = rest.split(['/', '?']).next().unwrap_or("");
            if host.is_empty() || endpoint.chars().any(char::is_whitespace) {
                return Err(SnsError::invalid(
                    "Endpoint must match the specified protocol",
                ));
            }
            Ok(endpoint.to_owned())
        }
    }
}

/// Validates and applies one subscription attribute. `Subscribe` words its
/// errors "Attributes Reason: ...", `SetSubscriptionAttributes` does not.
pub(crate) fn subscription_attribute(
    sub: &mut Subscription,
    name: &str,
    value: &str,
    on_subscribe: bool,
) -> Result<(), SnsError> {
    let reason = |text: String| {
        if on_subscribe {
            SnsError::invalid(format!("Attributes Reason: {text}"))
        } else {
            SnsError::invalid(text)
        }
    };
    let optional = |v: &str| (!v.is_empty()).then(|| v.to_owned());
    match name {
        "RawMessageDelivery" => {
            let on = match value.to_ascii_lowercase().as_str() {
                "true" => true,
                "false" => false,
                _ => {
                    return Err(reason(format!(
                        "RawMessageDelivery: Invalid value [{value}]. Must be true or false."
                    )));
                }
            };
            if on && sub.protocol == Protocol::Lambda {
                return Err(reason(format!(
                    "Delivery protocol [{}] does not support raw message delivery.",
                    sub.protocol.as_str()
                )));
            }
            sub.raw_message_delivery = on;
        }
        "FilterPolicy" => sub.filter_policy = optional(value),
        "FilterPolicyScope" => {
            if value != "MessageAttributes" && value != "MessageBody" {
                return Err(reason(format!(
                    "FilterPolicyScope: Invalid value [{value}]. Please use either MessageBody or MessageAttributes"
                )));
            }
            sub.filter_policy_scope = Some(value.to_owned());
        }
        "DeliveryPolicy" => {
            if !value.is_empty()
                && !matches!(serde_json::from_str::<Value>(value), Ok(Value::Object(_)))
            {
                return Err(reason("DeliveryPolicy: failed to parse JSON".into()));
            }
            sub.delivery_policy = optional(value);
        }
        "RedrivePolicy" => {
            if !value.is_empty() {
                let target = serde_json::from_str::<Value>(value).ok().and_then(|v| {
                    v.get("deadLetterTargetArn")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                });
                if target.is_none() {
                    return Err(reason(
                        "RedrivePolicy: deadLetterTargetArn is missing".into(),
                    ));
                }
            }
            sub.redrive_policy = optional(value);
        }
        "SubscriptionRoleArn" => sub.subscription_role_arn = optional(value),
        _ => return Err(SnsError::invalid("AttributeName")),
    }
    Ok(())
}

/// A validated message: the text for every protocol, or one per protocol
/// (`MessageStructure: json`).
pub(crate) struct Message {
    pub default: String,
    per_protocol: Option<serde_json::Map<String, Value>>,
}

impl Message {
    pub fn for_protocol(&self, p: Protocol) -> &str {
        self.per_protocol
            .as_ref()
            .and_then(|m| m.get(p.as_str()))
            .and_then(Value::as_str)
            .unwrap_or(&self.default)
    }
}

pub(crate) fn attributes_size(attributes: &Attributes) -> usize {
    attributes
        .iter()
        .map(|(k, a)| {
            k.len()
                + a.data_type.len()
                + a.string_value.as_deref().map_or(0, str::len)
                + a.binary_value.as_deref().map_or(0, <[u8]>::len)
        })
        .sum()
}

fn attribute_name(name: &str) -> Result<(), SnsError> {
    let bad = |m: &str| Err(SnsError::InvalidParameterValue(m.to_owned()));
    if name.len() > 256 {
        return bad("Length of message attribute name must be less than 256 bytes.");
    }
    if name.starts_with('.') {
        return bad("Invalid message attribute name starting with character '.' was found.");
    }
    if name.ends_with('.') {
        return bad("Invalid message attribute name ending with character '.' was found.");
    }
    for c in name.chars() {
        if !(c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.') {
            return Err(SnsError::InvalidParameterValue(format!(
                "Invalid non-alphanumeric character '#x{:X}' was found in the message attribute name. Can only include alphanumeric characters, hyphens, underscores, or dots.",
                c as u32
            )));
        }
    }
    if name.contains("..") {
        return bad("Message attribute name can not have successive '.' character.");
    }
    Ok(())
}

fn attributes(attributes: &Attributes) -> Result<(), SnsError> {
    if attributes.len() > MAX_ATTRIBUTES {
        return Err(SnsError::InvalidParameterValue(format!(
            "Number of message attributes [{}] exceeds the allowed maximum [{MAX_ATTRIBUTES}].",
            attributes.len()
        )));
    }
    for (name, a) in attributes {
        attribute_name(name)?;
        let base = a.data_type.split('.').next().unwrap_or("");
        if !matches!(base, "String" | "Number" | "Binary") {
            return Err(SnsError::InvalidParameterValue(format!(
                "The message attribute '{name}' has an invalid message attribute type, the set of supported type prefixes is Binary, Number, and String."
            )));
        }
        let field = if base == "Binary" { "Binary" } else { "String" };
        let present = if base == "Binary" {
            a.binary_value.as_ref().map(Vec::is_empty)
        } else {
            a.string_value.as_ref().map(String::is_empty)
        };
        match present {
            None => {
                return Err(SnsError::InvalidParameterValue(format!(
                    "The message attribute '{name}' with type '{}' must use field '{field}'.",
                    a.data_type
                )));
            }
            Some(true) => {
                return Err(SnsError::InvalidParameterValue(format!(
                    "The message attribute '{name}' must contain non-empty message attribute value for message attribute type '{}'.",
                    a.data_type
                )));
            }
            Some(false) => {}
        }
        if base == "Number"
            && let Some(v) = &a.string_value
            && v.trim().parse::<f64>().map_or(true, |n| !n.is_finite())
        {
            return Err(SnsError::InvalidParameterValue(format!(
                "Could not cast message attribute '{name}' value to number."
            )));
        }
        if a.data_type == "String.Array"
            && let Some(v) = &a.string_value
            && !matches!(serde_json::from_str::<Value>(v), Ok(Value::Array(_)))
        {
            return Err(SnsError::InvalidParameterValue(format!(
                "The message attribute '{name}' with type 'String.Array' must hold a JSON array."
            )));
        }
    }
    Ok(())
}

fn subject_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() < 100
        && s.chars().all(|c| c.is_ascii() && !c.is_ascii_control())
        && s.chars().next().is_some_and(|c| !c.is_whitespace())
}

/// Validates a message to publish.
pub(crate) fn message(
    message: Option<&str>,
    subject: Option<&str>,
    structure: Option<&str>,
    attrs: &Attributes,
) -> Result<Message, SnsError> {
    let text = message.ok_or_else(|| {
        SnsError::Validation(
            "1 validation error detected: Value null at 'message' failed to satisfy constraint: Member must not be null".into(),
        )
    })?;
    if text.is_empty() {
        return Err(SnsError::invalid("Empty message"));
    }
    if let Some(s) = subject
        && !subject_ok(s)
    {
        return Err(SnsError::invalid("Subject"));
    }
    attributes(attrs)?;
    if text.len() + attributes_size(attrs) > crate::MAX_MESSAGE_BYTES {
        return Err(SnsError::invalid("Message too long"));
    }
    match structure {
        None => Ok(Message {
            default: text.to_owned(),
            per_protocol: None,
        }),
        Some("json") => {
            let Ok(Value::Object(map)) = serde_json::from_str::<Value>(text) else {
                return Err(SnsError::invalid(
                    "Message Structure - JSON message body failed to parse",
                ));
            };
            let Some(default) = map.get("default").and_then(Value::as_str) else {
                return Err(SnsError::invalid(
                    "Message Structure - No default entry in JSON message body",
                ));
            };
            Ok(Message {
                default: default.to_owned(),
                per_protocol: Some(map),
            })
        }
        Some(_) => Err(SnsError::invalid("MessageStructure")),
    }
}

/// FIFO topics need a message group and a deduplication id (or content-based
/// deduplication); standard topics take no deduplication id.
pub(crate) fn fifo_fields(
    topic: &Topic,
    group: Option<&str>,
    dedup: Option<&str>,
) -> Result<(), SnsError> {
    if topic.fifo {
        if group.is_none_or(str::is_empty) {
            return Err(SnsError::invalid(
                "The MessageGroupId parameter is required for FIFO topics",
            ));
        }
        let content_based = topic
            .attributes
            .get("ContentBasedDeduplication")
            .is_some_and(|v| v == "true");
        if dedup.is_none() && !content_based {
            return Err(SnsError::invalid(
                "The topic should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly",
            ));
        }
    } else if dedup.is_some() {
        return Err(SnsError::invalid(
            "MessageDeduplicationId Reason: The request includes MessageDeduplicationId parameter that is not valid for this topic type",
        ));
    }
    Ok(())
}
