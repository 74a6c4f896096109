//! Topics, subscriptions, the errors SNS answers, and SNS ARNs.

use std::collections::BTreeMap;

use model::Scope;
use serde::{Deserialize, Serialize};

/// What SNS refuses, each with the code and message SNS answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnsError {
    /// `InvalidParameter`; the message includes "Invalid parameter: ".
    #[error("{0}")]
    InvalidParameter(String),
    /// `ParameterValueInvalid` (message attributes).
    #[error("{0}")]
    InvalidParameterValue(String),
    /// `ValidationError`: a required member is missing.
    #[error("{0}")]
    Validation(String),
    /// `NotFound`.
    #[error("{0}")]
    NotFound(String),
    /// `ResourceNotFound` (the tagging calls).
    #[error("Resource does not exist")]
    ResourceNotFound,
    #[error("Could not complete request: tag quota of per resource exceeded")]
    TagLimitExceeded,
    #[error("The batch request doesn't contain any entries.")]
    EmptyBatchRequest,
    #[error("The batch request contains more entries than permissible.")]
    TooManyEntriesInBatchRequest,
    #[error("Two or more batch entries in the request have the same Id.")]
    BatchEntryIdsNotDistinct,
    #[error(
        "A batch entry id can only contain alphanumeric characters, hyphens and underscores. It can be at most 80 letters long."
    )]
    InvalidBatchEntryId,
    #[error("The length of all the batch messages put together is more than the limit.")]
    BatchRequestTooLong,
    /// The topic store failed: the server's fault.
    #[error("topic store: {0}")]
    Store(String),
}

impl SnsError {
    pub fn invalid(what: impl std::fmt::Display) -> Self {
        SnsError::InvalidParameter(format!("Invalid parameter: {what}"))
    }

    pub fn topic_not_found() -> Self {
        SnsError::NotFound("Topic does not exist".into())
    }

    pub fn subscription_not_found() -> Self {
        SnsError::NotFound("Subscription does not exist".into())
    }

    /// SNS's error code.
    pub fn code(&self) -> &'static str {
        match self {
            SnsError::InvalidParameter(_) => "InvalidParameter",
            SnsError::InvalidParameterValue(_) => "ParameterValueInvalid",
            SnsError::Validation(_) => "ValidationError",
            SnsError::NotFound(_) => "NotFound",
            SnsError::ResourceNotFound => "ResourceNotFound",
            SnsError::TagLimitExceeded => "TagLimitExceeded",
            SnsError::EmptyBatchRequest => "EmptyBatchRequest",
            SnsError::TooManyEntriesInBatchRequest => "TooManyEntriesInBatchRequest",
            SnsError::BatchEntryIdsNotDistinct => "BatchEntryIdsNotDistinct",
            SnsError::InvalidBatchEntryId => "InvalidBatchEntryId",
            SnsError::BatchRequestTooLong => "BatchRequestTooLong",
            SnsError::Store(_) => "InternalError",
        }
    }

    /// The HTTP status SNS answers with.
    pub fn status(&self) -> u16 {
        match self {
            SnsError::NotFound(_) | SnsError::ResourceNotFound => 404,
            SnsError::Store(_) => 500,
            _ => 400,
        }
    }
}

/// The delivery protocols this server delivers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Lambda,
    Http,
    Https,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Lambda => "lambda",
            Protocol::Http => "http",
            Protocol::Https => "https",
        }
    }
}

/// A topic as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topic {
    pub arn: String,
    pub scope: Scope,
    pub name: String,
    pub fifo: bool,
    /// The attributes set on it (DisplayName, Policy, DeliveryPolicy, ...).
    pub attributes: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    pub created_ms: i64,
    #[serde(default)]
    pub subscriptions_deleted: u64,
}

/// A subscription as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub arn: String,
    pub topic_arn: String,
    /// The account that subscribed.
    pub owner: String,
    pub protocol: Protocol,
    pub endpoint: String,
    pub raw_message_delivery: bool,
    pub filter_policy: Option<String>,
    pub filter_policy_scope: Option<String>,
    pub delivery_policy: Option<String>,
    pub redrive_policy: Option<String>,
    pub subscription_role_arn: Option<String>,
    pub confirmed: bool,
    /// The confirmation token of an HTTP subscription.
    pub token: String,
    pub confirmation_was_authenticated: bool,
    /// `http://host` of this server as the subscriber's client reached it:
    /// the base of its `SubscribeURL` and `UnsubscribeURL`.
    pub base_url: String,
    pub created_ms: i64,
}

/// `arn:<partition>:sns:<region>:<account>:<name>`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicArn {
    pub region: String,
    pub account: String,
    pub name: String,
}

impl TopicArn {
    pub fn parse(s: &str) -> Option<TopicArn> {
        let mut parts = s.splitn(6, ':');
        let (Some("arn"), Some(partition), Some("sns"), Some(region), Some(account), Some(name)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        if !model::arn::is_partition(partition)
            || region.is_empty()
            || account.len() != 12
            || !account.bytes().all(|b| b.is_ascii_digit())
            || name.is_empty()
            || name.contains(':')
        {
            return None;
        }
        Some(TopicArn {
            region: region.to_owned(),
            account: account.to_owned(),
            name: name.to_owned(),
        })
    }

    /// Whether the topic lives in `scope`.
    pub fn in_scope(&self, scope: &Scope) -> bool {
        self.account == scope.account.as_str() && self.region == scope.region.as_str()
    }
}

pub fn topic_arn(scope: &Scope, name: &str) -> String {
    format!(
        "arn:{}:sns:{}:{}:{}",
        scope.partition(),
        scope.region,
        scope.account,
        name
    )
}

/// The topic ARN a subscription ARN belongs to (`<topic arn>:<id>`).
pub fn topic_of_subscription(arn: &str) -> Option<&str> {
    let (topic, id) = arn.rsplit_once(':')?;
    (!id.is_empty() && TopicArn::parse(topic).is_some()).then_some(topic)
}
