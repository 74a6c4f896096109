//! One event source mapping as stored, its source type, and how it is
//! written back in AWS's `EventSourceMappingConfiguration` shape.

use std::collections::BTreeMap;

use model::Scope;
use serde::{Deserialize, Serialize};

use crate::wire::{
    DestinationConfig, FilterCriteria, KafkaConfig, MappingConfiguration, ScalingConfig,
    SelfManagedEventSource, SourceAccessConfiguration,
};

/// What a mapping reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    /// An SQS queue (`arn:aws:sqs:...`); `fifo` when its name ends `.fifo`.
    Sqs { fifo: bool },
    /// A Kinesis data stream.
    Kinesis,
    /// A DynamoDB table's stream.
    DynamoDb,
    /// An Amazon MQ broker: RabbitMQ over AMQP on this server.
    Mq,
    /// `SelfManagedEventSource` with Kafka bootstrap servers.
    Kafka,
    /// `SelfManagedEventSource` with a `nats://` endpoint: NATS JetStream.
    Nats,
}

impl Kind {
    /// Kinesis and DynamoDB Streams: ordered shards, checkpoints, retries.
    pub fn is_stream(self) -> bool {
        matches!(self, Self::Kinesis | Self::DynamoDb)
    }

    /// The batch size Lambda uses when none is given.
    pub fn default_batch_size(self) -> i64 {
        match self {
            Self::Sqs { .. } => 10,
            Self::Kinesis | Self::DynamoDb | Self::Mq | Self::Kafka | Self::Nats => 100,
        }
    }

    /// What `StateTransitionReason` says after a user's change.
    pub fn user_reason(self) -> &'static str {
        match self {
            Self::Sqs { .. } => "USER_INITIATED",
            _ => "User action",
        }
    }

    /// Lambda reports `LastProcessingResult` for every source but SQS.
    fn reports_processing(self) -> bool {
        !matches!(self, Self::Sqs { .. })
    }
}

/// The states of `EventSourceMappingConfiguration.State`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    Creating,
    Enabling,
    Enabled,
    Disabling,
    Disabled,
    Updating,
    Deleting,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Creating => "Creating",
            Self::Enabling => "Enabling",
            Self::Enabled => "Enabled",
            Self::Disabling => "Disabling",
            Self::Disabled => "Disabled",
            Self::Updating => "Updating",
            Self::Deleting => "Deleting",
        }
    }
}

/// `LastProcessingResult` before a source delivered anything.
pub const NO_RECORDS: &str = "No records processed";
/// `LastProcessingResult` after a batch the function took.
pub const PROCESSED_OK: &str = "OK";
/// `LastProcessingResult` after the function failed a batch.
pub const FUNCTION_FAILED: &str = "PROBLEM: Function call failed";

/// One mapping, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mapping {
    pub uuid: String,
    pub scope: Scope,
    pub kind: Kind,
    pub event_source_arn: Option<String>,
    /// The function's ARN, qualified when the mapping names a version or
    /// alias.
    pub function_arn: String,
    pub enabled: bool,
    pub state: State,
    pub state_reason: String,
    pub batch_size: i64,
    pub batching_window_s: Option<i64>,
    pub parallelization_factor: Option<i64>,
    pub starting_position: Option<String>,
    pub starting_position_timestamp: Option<f64>,
    pub filter_criteria: Option<FilterCriteria>,
    pub destination_config: Option<DestinationConfig>,
    pub maximum_record_age_s: Option<i64>,
    pub bisect_on_error: Option<bool>,
    pub maximum_retry_attempts: Option<i64>,
    pub tumbling_window_s: Option<i64>,
    pub topics: Option<Vec<String>>,
    pub queues: Option<Vec<String>>,
    pub source_access: Option<Vec<SourceAccessConfiguration>>,
    pub self_managed: Option<SelfManagedEventSource>,
    pub response_types: Vec<String>,
    pub scaling: Option<ScalingConfig>,
    pub kafka_config: Option<KafkaConfig>,
    pub tags: BTreeMap<String, String>,
    pub last_modified_ms: i64,
    pub last_processing_result: Option<String>,
}

impl Mapping {
    pub fn arn(&self) -> String {
        format!(
            "arn:{}:lambda:{}:{}:event-source-mapping:{}",
            self.scope.partition(),
            self.scope.region,
            self.scope.account,
            self.uuid
        )
    }

    /// `ReportBatchItemFailures` is on.
    pub fn reports_item_failures(&self) -> bool {
        self.response_types
            .iter()
            .any(|t| t == "ReportBatchItemFailures")
    }

    /// The mapping in AWS's answer shape.
    pub fn to_wire(&self) -> MappingConfiguration {
        let stream = self.kind.is_stream();
        let sqs = matches!(self.kind, Kind::Sqs { .. });
        MappingConfiguration {
            uuid: self.uuid.clone(),
            starting_position: self.starting_position.clone(),
            starting_position_timestamp: self.starting_position_timestamp,
            batch_size: self.batch_size,
            maximum_batching_window_in_seconds: Some(self.batching_window_s.unwrap_or(0)),
            parallelization_factor: if stream {
                Some(self.parallelization_factor.unwrap_or(1))
            } else {
                None
            },
            event_source_arn: self.event_source_arn.clone(),
            filter_criteria: self.filter_criteria.clone(),
            function_arn: self.function_arn.clone(),
            last_modified: self.last_modified_ms as f64 / 1000.0,
            last_processing_result: if self.kind.reports_processing() {
                Some(
                    self.last_processing_result
                        .clone()
                        .unwrap_or_else(|| NO_RECORDS.to_owned()),
                )
            } else {
                None
            },
            state: self.state.as_str().to_owned(),
            state_transition_reason: self.state_reason.clone(),
            destination_config: if stream || matches!(self.kind, Kind::Kafka) {
                Some(
                    self.destination_config
                        .clone()
                        .unwrap_or(DestinationConfig {
                            on_success: None,
                            on_failure: Some(Default::default()),
                        }),
                )
            } else {
                None
            },
            topics: self.topics.clone(),
            queues: self.queues.clone(),
            source_access_configurations: self.source_access.clone(),
            self_managed_event_source: self.self_managed.clone(),
            maximum_record_age_in_seconds: stream.then(|| self.maximum_record_age_s.unwrap_or(-1)),
            bisect_batch_on_function_error: stream.then(|| self.bisect_on_error.unwrap_or(false)),
            maximum_retry_attempts: stream.then(|| self.maximum_retry_attempts.unwrap_or(-1)),
            tumbling_window_in_seconds: stream.then(|| self.tumbling_window_s.unwrap_or(0)),
            function_response_types: if stream || sqs {
                Some(self.response_types.clone())
            } else {
                None
            },
            scaling_config: self.scaling.clone(),
            self_managed_kafka_event_source_config: self.kafka_config.clone(),
            event_source_mapping_arn: self.arn(),
        }
    }
}
