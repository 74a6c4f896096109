//! Lambda event filtering: an event source mapping's `FilterCriteria`.
//!
//! A record goes to the function when any filter matches it (no filters:
//! every record). The record's payload field (`body` for SQS, `data` for
//! Kinesis and Amazon MQ/RabbitMQ, base64-encoded there) is matched as JSON
//! when it holds a JSON object or array; otherwise as the plain string, so
//! that only string rules on the field itself can match it. A filter with
//! JSON rules for a plain-string payload, or string rules for a JSON
//! payload, drops the record, as AWS documents.

use base64::Engine as _;
use serde_json::Value;

use crate::{Dialect, EventPattern, PatternError};

/// The message of Lambda's `InvalidParameterValueException` for a filter
/// that is not a valid pattern.
pub const INVALID_FILTER_MESSAGE: &str = "Invalid filter pattern definition.";

/// How a record carries its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// As text (SQS `body`).
    Text,
    /// Base64 (Kinesis and Amazon MQ `data`).
    Base64,
}

/// Which field of a record holds the payload that is matched as JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Payload<'a> {
    pub field: &'a str,
    pub encoding: Encoding,
}

impl Payload<'static> {
    /// SQS: the `body` field, text.
    pub const SQS: Payload<'static> = Payload {
        field: "body",
        encoding: Encoding::Text,
    };
    /// Kinesis (`kinesis.data`, matched on the inner object) and Amazon MQ:
    /// the `data` field, base64.
    pub const DATA_BASE64: Payload<'static> = Payload {
        field: "data",
        encoding: Encoding::Base64,
    };
}

/// A mapping's filters, validated.
#[derive(Clone, Debug, Default)]
pub struct FilterCriteria {
    filters: Vec<EventPattern>,
}

impl FilterCriteria {
    /// Validates each filter's `Pattern`. On error the caller answers
    /// `InvalidParameterValueException` with [`INVALID_FILTER_MESSAGE`]; the
    /// error carries the reason for logs.
    pub fn parse<'a>(patterns: impl IntoIterator<Item = &'a str>) -> Result<Self, PatternError> {
        let filters = patterns
            .into_iter()
            .map(|p| EventPattern::parse_as(p, Dialect::Lambda))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(FilterCriteria { filters })
    }

    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    pub fn len(&self) -> usize {
        self.filters.len()
    }

    /// Whether the record goes to the function. `payload` names the field
    /// matched as JSON (`None` for DynamoDB Streams, whose records are JSON
    /// throughout).
    pub fn matches(&self, record: &Value, payload: Option<Payload<'_>>) -> bool {
        if self.filters.is_empty() {
            return true;
        }
        let decoded = payload.and_then(|p| decode(record, p));
        let view = match &decoded {
            Some((field, value)) => {
                let mut copy = record.clone();
                if let Some(object) = copy.as_object_mut() {
                    object.insert((*field).to_owned(), value.clone());
                }
                copy
            }
            None => record.clone(),
        };
        self.filters.iter().any(|f| f.matches(&view))
    }
}

/// The payload as a JSON value: parsed JSON when the text is a JSON object
/// or array, else the (decoded) string; `None` when the record keeps it as
/// is.
fn decode<'a>(record: &Value, payload: Payload<'a>) -> Option<(&'a str, Value)> {
    let raw = record.get(payload.field)?.as_str()?;
    let text = match payload.encoding {
        Encoding::Text => raw.to_owned(),
        Encoding::Base64 => {
            let bytes = base64::engine::general_purpose::STANDARD.decode(raw).ok()?;
            String::from_utf8(bytes).ok()?
        }
    };
    let value = match serde_json::from_str::<Value>(&text) {
        Ok(json @ (Value::Object(_) | Value::Array(_))) => json,
        _ => Value::String(text),
    };
    Some((payload.field, value))
}
