//! Lambda's rules for a mapping's parameters: the model's ranges and enums
//! (`ValidationException`), then what each source type takes and how the
//! members depend on one another (`InvalidParameterValueException`).

use model::names::ValidationErrors;

use crate::EsmError;
use crate::mapping::{Kind, Mapping};
use crate::wire::MappingInput;

const STARTING_POSITIONS: &str = "[LATEST, AT_TIMESTAMP, TRIM_HORIZON]";
const SOURCE_ACCESS_TYPES: &[&str] = &[
    "BASIC_AUTH",
    "VPC_SUBNET",
    "VPC_SECURITY_GROUP",
    "SASL_SCRAM_512_AUTH",
    "SASL_SCRAM_256_AUTH",
    "VIRTUAL_HOST",
    "CLIENT_CERTIFICATE_TLS_AUTH",
    "SERVER_ROOT_CA_CERTIFICATE",
    "OAUTHBEARER_AUTH",
    "OAUTHBEARER_SCOPE",
    "OAUTHBEARER_AUDIENCE",
    "OAUTHBEARER_LOGICAL_CLUSTER",
    "OAUTHBEARER_IDENTITY_POOL",
    "IAM_AUTH",
    "IAM_OAUTHBEARER_AUTH",
];

fn range(v: &mut ValidationErrors, field: &str, value: Option<i64>, min: i64, max: i64) {
    if let Some(x) = value {
        if x < min {
            v.push(
                field,
                &x.to_string(),
                format!("Member must have value greater than or equal to {min}"),
            );
        } else if x > max {
            v.push(
                field,
                &x.to_string(),
                format!("Member must have value less than or equal to {max}"),
            );
        }
    }
}

fn list_len(v: &mut ValidationErrors, field: &str, list: Option<&Vec<String>>, max: usize) {
    if let Some(l) = list {
        let shown = format!("[{}]", l.join(", "));
        if l.is_empty() {
            v.push(
                field,
                &shown,
                "Member must have length greater than or equal to 1",
            );
        } else if l.len() > max {
            v.push(
                field,
                &shown,
                format!("Member must have length less than or equal to {max}"),
            );
        }
    }
}

/// The service model's constraints on the input members (ranges, enums,
/// lengths), all reported at once as AWS does.
pub fn check_model(input: &MappingInput, create: bool) -> Result<(), EsmError> {
    let mut v = ValidationErrors::new();
    if create && input.function_name.is_none() {
        v.push_null("functionName", "Member must not be null");
    }
    if let Some(f) = &input.function_name {
        if f.is_empty() {
            v.push(
                "functionName",
                f,
                "Member must have length greater than or equal to 1",
            );
        } else if f.len() > 256 {
            v.push(
                "functionName",
                f,
                "Member must have length less than or equal to 256",
            );
        }
    }
    range(&mut v, "batchSize", input.batch_size, 1, 10_000);
    range(
        &mut v,
        "maximumBatchingWindowInSeconds",
        input.maximum_batching_window_in_seconds,
        0,
        300,
    );
    range(
        &mut v,
        "parallelizationFactor",
        input.parallelization_factor,
        1,
        10,
    );
    range(
        &mut v,
        "maximumRecordAgeInSeconds",
        input.maximum_record_age_in_seconds,
        -1,
        604_800,
    );
    range(
        &mut v,
        "maximumRetryAttempts",
        input.maximum_retry_attempts,
        -1,
        10_000,
    );
    range(
        &mut v,
        "tumblingWindowInSeconds",
        input.tumbling_window_in_seconds,
        0,
        900,
    );
    if let Some(s) = &input.scaling_config {
        range(
            &mut v,
            "scalingConfig.maximumConcurrency",
            s.maximum_concurrency,
            2,
            1000,
        );
    }
    if create
        && let Some(p) = &input.starting_position
        && !matches!(p.as_str(), "TRIM_HORIZON" | "LATEST" | "AT_TIMESTAMP")
    {
        v.push(
            "startingPosition",
            p,
            format!("Member must satisfy enum value set: {STARTING_POSITIONS}"),
        );
    }
    if let Some(types) = &input.function_response_types {
        if types.iter().any(|t| t != "ReportBatchItemFailures") {
            v.push(
                "functionResponseTypes",
                &format!("[{}]", types.join(", ")),
                "Member must satisfy constraint: [Member must satisfy enum value set: [ReportBatchItemFailures]]",
            );
        } else if types.len() > 1 {
            v.push(
                "functionResponseTypes",
                &format!("[{}]", types.join(", ")),
                "Member must have length less than or equal to 1",
            );
        }
    }
    if create {
        list_len(&mut v, "topics", input.topics.as_ref(), 1);
        list_len(&mut v, "queues", input.queues.as_ref(), 1);
    }
    if let Some(sac) = &input.source_access_configurations {
        if sac.len() > 23 {
            v.push(
                "sourceAccessConfigurations",
                &format!("{} items", sac.len()),
                "Member must have length less than or equal to 23",
            );
        }
        for c in sac {
            if let Some(t) = &c.kind
                && !SOURCE_ACCESS_TYPES.contains(&t.as_str())
            {
                v.push(
                    "sourceAccessConfigurations.member.type",
                    t,
                    format!(
                        "Member must satisfy enum value set: [{}]",
                        SOURCE_ACCESS_TYPES.join(", ")
                    ),
                );
            }
        }
    }
    if let Some(arn) = &input.event_source_arn
        && create
        && !arn_shaped(arn)
    {
        v.push(
            "eventSourceArn",
            arn,
            "Member must satisfy regular expression pattern: arn:(aws[a-zA-Z0-9-]*):([a-zA-Z0-9\\-])+:((eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\\d{1})?:(\\d{12})?:(.*)",
        );
    }
    v.into_result().map_err(EsmError::Validation)
}

/// `arn:<partition>:<service>:<region>?:<account>?:<resource>`, as the
/// model's pattern has it.
fn arn_shaped(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [prefix, partition, service, region, account, _rest] = parts.as_slice() else {
        return false;
    };
    *prefix == "arn"
        && partition.starts_with("aws")
        && partition
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !service.is_empty()
        && service
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
        && (region.is_empty() || model::Region::parse(region).is_ok())
        && (account.is_empty()
            || (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())))
}

/// The source type of a new mapping, from its `EventSourceArn` or its
/// `SelfManagedEventSource`.
pub fn classify(input: &MappingInput) -> Result<Kind, EsmError> {
    if let Some(arn) = &input.event_source_arn {
        if input.self_managed_event_source.is_some() {
            return Err(EsmError::InvalidParameter(
                "Unsupported SelfManagedEventSource parameter for given event source mapping type."
                    .into(),
            ));
        }
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let service = parts.get(2).copied().unwrap_or_default();
        let resource = parts.get(5).copied().unwrap_or_default();
        return match service {
            "sqs" => Ok(Kind::Sqs {
                fifo: resource.ends_with(".fifo"),
            }),
            "kinesis" if resource.starts_with("stream/") => Ok(Kind::Kinesis),
            "dynamodb" if resource.contains("/stream/") => Ok(Kind::DynamoDb),
            "mq" if resource.starts_with("broker:") => Ok(Kind::Mq),
            _ => Err(EsmError::InvalidParameter(
                "Unrecognized event source.".into(),
            )),
        };
    }
    let Some(sm) = &input.self_managed_event_source else {
        return Err(EsmError::InvalidParameter(
            "Unrecognized event source.".into(),
        ));
    };
    let servers = sm
        .endpoints
        .get("KAFKA_BOOTSTRAP_SERVERS")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            EsmError::InvalidParameter(
                "Required 'KAFKA_BOOTSTRAP_SERVERS' endpoint is missing in 'SelfManagedEventSource'."
                    .into(),
            )
        })?;
    if let Some(other) = sm
        .endpoints
        .keys()
        .find(|k| *k != "KAFKA_BOOTSTRAP_SERVERS")
    {
        return Err(EsmError::InvalidParameter(format!(
            "Unsupported endpoint type '{other}' in 'SelfManagedEventSource'."
        )));
    }
    let nats = servers.iter().filter(|s| s.starts_with("nats://")).count();
    if nats == servers.len() {
        Ok(Kind::Nats)
    } else if nats == 0 {
        Ok(Kind::Kafka)
    } else {
        Err(EsmError::InvalidParameter(
            "The bootstrap servers of 'SelfManagedEventSource' must all be nats:// URLs or all Kafka brokers."
                .into(),
        ))
    }
}

/// A mapping's filters, compiled with Lambda's rules.
pub fn compile_filters(
    fc: &crate::wire::FilterCriteria,
) -> Result<event_pattern::lambda::FilterCriteria, EsmError> {
    let patterns: Option<Vec<&str>> = fc.filters.iter().map(|f| f.pattern.as_deref()).collect();
    patterns
        .and_then(|p| event_pattern::lambda::FilterCriteria::parse(p).ok())
        .ok_or_else(|| {
            EsmError::InvalidParameter(event_pattern::lambda::INVALID_FILTER_MESSAGE.into())
        })
}

fn unsupported(param: &str) -> EsmError {
    EsmError::InvalidParameter(format!(
        "Unsupported {param} parameter for given event source mapping type."
    ))
}

fn missing(param: &str) -> EsmError {
    EsmError::InvalidParameter(format!("Required '{param}' parameter is missing."))
}

/// The members a source type does not take, refused by name.
pub fn check_members(kind: Kind, input: &MappingInput, create: bool) -> Result<(), EsmError> {
    let stream = kind.is_stream();
    let sqs = matches!(kind, Kind::Sqs { .. });
    let mq = matches!(kind, Kind::Mq);
    let self_managed = matches!(kind, Kind::Kafka | Kind::Nats);
    let present = [
        (
            "StartingPosition",
            create && input.starting_position.is_some(),
            stream || self_managed,
        ),
        (
            "StartingPositionTimestamp",
            create && input.starting_position_timestamp.is_some(),
            stream || self_managed,
        ),
        (
            "ParallelizationFactor",
            input.parallelization_factor.is_some(),
            stream,
        ),
        (
            "MaximumRecordAgeInSeconds",
            input.maximum_record_age_in_seconds.is_some(),
            stream,
        ),
        (
            "BisectBatchOnFunctionError",
            input.bisect_batch_on_function_error.is_some(),
            stream,
        ),
        (
            "MaximumRetryAttempts",
            input.maximum_retry_attempts.is_some(),
            stream,
        ),
        (
            "TumblingWindowInSeconds",
            input.tumbling_window_in_seconds.is_some(),
            stream,
        ),
        (
            "DestinationConfig",
            input.destination_config.is_some(),
            stream || matches!(kind, Kind::Kafka),
        ),
        (
            "FunctionResponseTypes",
            input
                .function_response_types
                .as_ref()
                .is_some_and(|t| !t.is_empty()),
            stream || sqs,
        ),
        ("ScalingConfig", input.scaling_config.is_some(), sqs),
        ("Topics", create && input.topics.is_some(), self_managed),
        ("Queues", create && input.queues.is_some(), mq),
        (
            "SourceAccessConfigurations",
            input.source_access_configurations.is_some(),
            mq || self_managed,
        ),
        (
            "SelfManagedKafkaEventSourceConfig",
            input.self_managed_kafka_event_source_config.is_some(),
            self_managed,
        ),
        (
            "AmazonManagedKafkaEventSourceConfig",
            input.amazon_managed_kafka_event_source_config.is_some(),
            false,
        ),
        (
            "DocumentDBEventSourceConfig",
            input.document_db_event_source_config.is_some(),
            false,
        ),
    ];
    for (name, given, allowed) in present {
        if given && !allowed {
            return Err(unsupported(name));
        }
    }
    if let Some(d) = &input.destination_config
        && d.on_success.is_some()
    {
        return Err(unsupported("DestinationConfig"));
    }
    Ok(())
}

/// The rules that tie members together, on the mapping as it would be
/// stored (after an update is merged in).
pub fn check_combined(m: &Mapping) -> Result<(), EsmError> {
    let window = m.batching_window_s.unwrap_or(0);
    match m.kind {
        Kind::Sqs { fifo } => {
            if fifo && m.batch_size > 10 {
                return Err(EsmError::InvalidParameter(
                    "Batch size cannot be greater than 10 for an SQS FIFO queue.".into(),
                ));
            }
            if fifo && window > 0 {
                return Err(EsmError::InvalidParameter(
                    "Batching window is not supported for FIFO queues.".into(),
                ));
            }
            if m.batch_size > 10 && window == 0 {
                return Err(EsmError::InvalidParameter(
                    "Maximum batch window in seconds must be greater than 0 if maximum batch size is greater than 10"
                        .into(),
                ));
            }
        }
        Kind::Kinesis | Kind::DynamoDb => {
            match m.starting_position.as_deref() {
                None => {
                    return Err(EsmError::InvalidParameter(
                        "1 validation error detected: Value null at 'startingPosition' failed to satisfy constraint: Member must not be null."
                            .into(),
                    ));
                }
                Some("AT_TIMESTAMP") if m.kind == Kind::DynamoDb => {
                    return Err(EsmError::InvalidParameter(format!(
                        "Unsupported starting position for arn type: {}",
                        m.event_source_arn.as_deref().unwrap_or_default()
                    )));
                }
                Some("AT_TIMESTAMP") if m.starting_position_timestamp.is_none() => {
                    return Err(missing("StartingPositionTimestamp"));
                }
                Some(p) if p != "AT_TIMESTAMP" && m.starting_position_timestamp.is_some() => {
                    return Err(unsupported("StartingPositionTimestamp"));
                }
                _ => {}
            }
            if let Some(age) = m.maximum_record_age_s
                && age != -1
                && age < 60
            {
                return Err(EsmError::InvalidParameter(
                    "MaximumRecordAgeInSeconds must be -1 (unlimited) or at least 60.".into(),
                ));
            }
        }
        Kind::Mq => {
            if m.queues.is_none() {
                return Err(missing("queues"));
            }
            let sac = m.source_access.as_deref().unwrap_or_default();
            if !sac
                .iter()
                .any(|c| c.kind.as_deref() == Some("BASIC_AUTH") && c.uri.is_some())
            {
                return Err(missing("sourceAccessConfigurations"));
            }
            if let Some(c) = sac
                .iter()
                .find(|c| !matches!(c.kind.as_deref(), Some("BASIC_AUTH" | "VIRTUAL_HOST")))
            {
                return Err(EsmError::InvalidParameter(format!(
                    "Unsupported source access configuration type {} for an Amazon MQ event source.",
                    c.kind.as_deref().unwrap_or("null")
                )));
            }
        }
        Kind::Kafka | Kind::Nats => {
            if m.topics.is_none() {
                return Err(missing("topics"));
            }
            if let Some(p) = m.starting_position.as_deref()
                && p == "AT_TIMESTAMP"
                && m.starting_position_timestamp.is_none()
            {
                return Err(missing("StartingPositionTimestamp"));
            }
        }
    }
    if let Some(fc) = &m.filter_criteria {
        compile_filters(fc)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(json: serde_json::Value) -> MappingInput {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn model_ranges_are_reported_together() {
        let e = check_model(
            &input(serde_json::json!({"FunctionName": "f", "BatchSize": 0, "MaximumBatchingWindowInSeconds": 301})),
            true,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "2 validation errors detected: Value '0' at 'batchSize' failed to satisfy constraint: Member must have value greater than or equal to 1; Value '301' at 'maximumBatchingWindowInSeconds' failed to satisfy constraint: Member must have value less than or equal to 300"
        );
    }

    #[test]
    fn sources_are_told_apart() {
        let k = |arn: &str| classify(&input(serde_json::json!({"EventSourceArn": arn})));
        assert_eq!(
            k("arn:aws:sqs:us-east-1:123456789012:q").unwrap(),
            Kind::Sqs { fifo: false }
        );
        assert_eq!(
            k("arn:aws:sqs:us-east-1:123456789012:q.fifo").unwrap(),
            Kind::Sqs { fifo: true }
        );
        assert_eq!(
            k("arn:aws:kinesis:us-east-1:123456789012:stream/s").unwrap(),
            Kind::Kinesis
        );
        assert_eq!(
            k("arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2024-01-01T00:00:00.000")
                .unwrap(),
            Kind::DynamoDb
        );
        assert_eq!(
            k("arn:aws:mq:us-east-1:123456789012:broker:b:b-1234").unwrap(),
            Kind::Mq
        );
        assert!(k("arn:aws:s3:::bucket").is_err());
        let nats = classify(&input(serde_json::json!({
            "SelfManagedEventSource": {"Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": ["nats://127.0.0.1:4222"]}}
        })))
        .unwrap();
        assert_eq!(nats, Kind::Nats);
    }

    #[test]
    fn sqs_refuses_stream_members() {
        let e = check_members(
            Kind::Sqs { fifo: false },
            &input(serde_json::json!({"StartingPosition": "LATEST"})),
            true,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Unsupported StartingPosition parameter for given event source mapping type."
        );
        assert!(
            check_members(
                Kind::Kinesis,
                &input(serde_json::json!({"ScalingConfig": {"MaximumConcurrency": 2}})),
                true
            )
            .is_err()
        );
    }
}
