//! The JSON shapes of the event source mapping operations (REST-JSON,
//! PascalCase), as the Lambda service model defines them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `CreateEventSourceMapping` and `UpdateEventSourceMapping` input. Update
/// takes a subset; the members it does not take are refused by the checks,
/// not by the parser, so that the message names them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MappingInput {
    pub event_source_arn: Option<String>,
    pub function_name: Option<String>,
    pub enabled: Option<bool>,
    pub batch_size: Option<i64>,
    pub filter_criteria: Option<FilterCriteria>,
    #[serde(rename = "KMSKeyArn")]
    pub kms_key_arn: Option<String>,
    pub scaling_config: Option<ScalingConfig>,
    pub maximum_batching_window_in_seconds: Option<i64>,
    pub parallelization_factor: Option<i64>,
    pub starting_position: Option<String>,
    pub starting_position_timestamp: Option<f64>,
    pub destination_config: Option<DestinationConfig>,
    pub maximum_record_age_in_seconds: Option<i64>,
    pub bisect_batch_on_function_error: Option<bool>,
    pub maximum_retry_attempts: Option<i64>,
    pub tags: Option<BTreeMap<String, String>>,
    pub tumbling_window_in_seconds: Option<i64>,
    pub topics: Option<Vec<String>>,
    pub queues: Option<Vec<String>>,
    pub source_access_configurations: Option<Vec<SourceAccessConfiguration>>,
    pub self_managed_event_source: Option<SelfManagedEventSource>,
    pub function_response_types: Option<Vec<String>>,
    pub self_managed_kafka_event_source_config: Option<KafkaConfig>,
    pub amazon_managed_kafka_event_source_config: Option<KafkaConfig>,
    #[serde(rename = "DocumentDBEventSourceConfig")]
    pub document_db_event_source_config: Option<serde_json::Value>,
    pub provisioned_poller_config: Option<serde_json::Value>,
    pub metrics_config: Option<serde_json::Value>,
    pub logging_config: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FilterCriteria {
    #[serde(default)]
    pub filters: Vec<Filter>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Filter {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ScalingConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum_concurrency: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DestinationConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_success: Option<OnTarget>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<OnTarget>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OnTarget {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SourceAccessConfiguration {
    #[serde(rename = "Type")]
    pub kind: Option<String>,
    #[serde(rename = "URI")]
    pub uri: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SelfManagedEventSource {
    #[serde(default)]
    pub endpoints: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KafkaConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumer_group_id: Option<String>,
}

/// `EventSourceMappingConfiguration`: what every operation answers. Members
/// a source type does not have are left out, as Lambda leaves them out.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct MappingConfiguration {
    #[serde(rename = "UUID")]
    pub uuid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starting_position: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starting_position_timestamp: Option<f64>,
    pub batch_size: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum_batching_window_in_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallelization_factor: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_source_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter_criteria: Option<FilterCriteria>,
    pub function_arn: String,
    /// Epoch seconds, as REST-JSON writes a timestamp.
    pub last_modified: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_processing_result: Option<String>,
    pub state: String,
    pub state_transition_reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_config: Option<DestinationConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topics: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queues: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_access_configurations: Option<Vec<SourceAccessConfiguration>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub self_managed_event_source: Option<SelfManagedEventSource>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum_record_age_in_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bisect_batch_on_function_error: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum_retry_attempts: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tumbling_window_in_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function_response_types: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scaling_config: Option<ScalingConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub self_managed_kafka_event_source_config: Option<KafkaConfig>,
    pub event_source_mapping_arn: String,
}

/// `ListEventSourceMappings` output.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct MappingList {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
    pub event_source_mappings: Vec<MappingConfiguration>,
}
