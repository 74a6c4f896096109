//! Event patterns, the one matching language behind three AWS features:
//!
//! - EventBridge rules ([`EventPattern`]): which events a rule sends to its
//!   targets, and `TestEventPattern`;
//! - Lambda event filtering ([`lambda::FilterCriteria`]): which records of a
//!   queue or stream an event source mapping hands to its function, with a
//!   `body`/`data` field that holds JSON matched as JSON;
//! - SNS subscription filter policies ([`sns::FilterPolicy`]): which messages
//!   a subscription receives, by message attributes or by message body.
//!
//! A pattern is a JSON object shaped like the events it matches. A field's
//! value is either an object (a nested pattern) or an array of rules, any of
//! which may match: exact values (strings, numbers, `true`, `false`, `null`),
//! `prefix`, `suffix` (each optionally `equals-ignore-case`),
//! `equals-ignore-case`, `anything-but` (values, `prefix`, `suffix`,
//! `equals-ignore-case`, `wildcard`), `numeric` ranges, `exists`, `wildcard`
//! and `cidr`. `$or` takes two or more alternative patterns. An event field
//! holding an array matches when any of its elements does; nested patterns
//! under an array of objects must match within one element.
//!
//! Validation follows AWS's event-ruler: the reasons in [`PatternError`] are
//! the texts AWS puts after "Event pattern is not valid. Reason: " (or after
//! SNS's "Invalid parameter: FilterPolicy: ").

mod cidr;
mod compile;
pub mod lambda;
mod matcher;
pub mod sns;
mod wildcard;

#[cfg(test)]
mod tests;

use std::fmt;

use serde_json::Value;

pub(crate) use compile::Node;

/// Which service reads the pattern: the operators each allows differ a
/// little (SNS has no `wildcard`, and `anything-but` there takes only
/// values, `prefix` and `suffix`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    EventBridge,
    Lambda,
    Sns,
}

/// A pattern that is not valid, with AWS's reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatternError {
    reason: String,
}

impl PatternError {
    pub(crate) fn new(reason: impl Into<String>) -> Self {
        PatternError {
            reason: reason.into(),
        }
    }

    /// The reason alone, as event-ruler words it ("Empty arrays are not
    /// allowed").
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The message of EventBridge's `InvalidEventPatternException`.
    pub fn event_bridge_message(&self) -> String {
        format!("Event pattern is not valid. Reason: {}", self.reason)
    }
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for PatternError {}

/// An EventBridge event pattern, validated.
#[derive(Clone, Debug)]
pub struct EventPattern {
    root: Node,
}

impl EventPattern {
    /// Parses and validates a pattern as EventBridge does (`PutRule`,
    /// `TestEventPattern`).
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        Self::parse_as(text, Dialect::EventBridge)
    }

    pub(crate) fn parse_as(text: &str, dialect: Dialect) -> Result<Self, PatternError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| PatternError::new(e.to_string()))?;
        Self::from_value_as(&value, dialect)
    }

    /// Validates a pattern already parsed as JSON.
    pub fn from_value(value: &Value) -> Result<Self, PatternError> {
        Self::from_value_as(value, Dialect::EventBridge)
    }

    pub(crate) fn from_value_as(value: &Value, dialect: Dialect) -> Result<Self, PatternError> {
        let Value::Object(map) = value else {
            return Err(PatternError::new("Filter is not an object"));
        };
        Ok(EventPattern {
            root: compile::object(map, dialect, false)?,
        })
    }

    /// Whether `event` matches.
    pub fn matches(&self, event: &Value) -> bool {
        matcher::node(&self.root, Some(event))
    }

    /// Whether the event in `text` matches; `None` when `text` is not JSON.
    pub fn matches_json(&self, text: &str) -> Option<bool> {
        let event: Value = serde_json::from_str(text).ok()?;
        Some(self.matches(&event))
    }
}
