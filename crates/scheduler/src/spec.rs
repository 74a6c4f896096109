//! A schedule as stored ([`Spec`]), read from CreateSchedule's and
//! UpdateSchedule's input with AWS's validation, and written back in
//! GetSchedule's shape.

use model::names::ValidationErrors;
use schedule::{Dialect, Expression};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::SchedulerError;

/// The default RetryPolicy (the model's maxima, as AWS reports them).
pub const DEFAULT_MAX_EVENT_AGE_S: u32 = 86_400;
pub const DEFAULT_MAX_RETRIES: u32 = 185;

/// CreateSchedule's and UpdateSchedule's body.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ScheduleInput {
    pub group_name: Option<String>,
    pub schedule_expression: Option<String>,
    pub start_date: Option<f64>,
    pub end_date: Option<f64>,
    pub description: Option<String>,
    pub schedule_expression_timezone: Option<String>,
    pub state: Option<String>,
    pub kms_key_arn: Option<String>,
    pub target: Option<TargetInput>,
    pub flexible_time_window: Option<FlexibleTimeWindow>,
    pub client_token: Option<String>,
    pub action_after_completion: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TargetInput {
    pub arn: Option<String>,
    pub role_arn: Option<String>,
    pub dead_letter_config: Option<DeadLetterConfig>,
    pub retry_policy: Option<RetryPolicy>,
    pub input: Option<String>,
    /// The parameters of other templated targets (ECS, SQS, Kinesis ...).
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DeadLetterConfig {
    pub arn: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RetryPolicy {
    pub maximum_event_age_in_seconds: Option<i64>,
    pub maximum_retry_attempts: Option<i64>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct FlexibleTimeWindow {
    pub mode: Option<String>,
    pub maximum_window_in_minutes: Option<i64>,
}

/// The target of a schedule: a Lambda function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetSpec {
    pub arn: String,
    pub role_arn: String,
    pub input: Option<String>,
    pub dead_letter_arn: Option<String>,
    pub max_event_age_s: u32,
    pub max_retries: u32,
}

/// A schedule's definition, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spec {
    pub expression: String,
    pub timezone: String,
    pub start_date_ms: Option<i64>,
    pub end_date_ms: Option<i64>,
    pub description: Option<String>,
    pub enabled: bool,
    pub kms_key_arn: Option<String>,
    pub target: TargetSpec,
    /// `FLEXIBLE` with this many minutes; `None` is `OFF`.
    pub flexible_window_min: Option<u32>,
    /// ActionAfterCompletion `DELETE`.
    pub delete_after_completion: bool,
    pub created_ms: i64,
    pub modified_ms: i64,
}

impl Spec {
    pub fn expression(&self) -> Result<Expression, schedule::ExprError> {
        Expression::parse(&self.expression, Dialect::Scheduler)
    }

    /// Where a rate counts from: its StartDate, else when the schedule was
    /// last set.
    pub fn anchor_ms(&self) -> i64 {
        self.start_date_ms.unwrap_or(self.modified_ms)
    }

    /// GetSchedule's answer.
    pub fn to_json(&self, arn: &str, group: &str, name: &str) -> Value {
        let mut target = json!({
            "Arn": self.target.arn,
            "RoleArn": self.target.role_arn,
            "RetryPolicy": {
                "MaximumEventAgeInSeconds": self.target.max_event_age_s,
                "MaximumRetryAttempts": self.target.max_retries,
            },
        });
        if let Some(input) = &self.target.input {
            target["Input"] = json!(input);
        }
        if let Some(dlq) = &self.target.dead_letter_arn {
            target["DeadLetterConfig"] = json!({ "Arn": dlq });
        }
        let window = match self.flexible_window_min {
            Some(w) => json!({"Mode": "FLEXIBLE", "MaximumWindowInMinutes": w}),
            None => json!({"Mode": "OFF"}),
        };
        let mut out = json!({
            "Arn": arn,
            "Name": name,
            "GroupName": group,
            "ScheduleExpression": self.expression,
            "ScheduleExpressionTimezone": self.timezone,
            "State": self.state(),
            "Target": target,
            "FlexibleTimeWindow": window,
            "ActionAfterCompletion": if self.delete_after_completion { "DELETE" } else { "NONE" },
            "CreationDate": seconds(self.created_ms),
            "LastModificationDate": seconds(self.modified_ms),
        });
        for (key, value) in [
            ("Description", self.description.as_ref().map(|d| json!(d))),
            ("KmsKeyArn", self.kms_key_arn.as_ref().map(|k| json!(k))),
            ("StartDate", self.start_date_ms.map(seconds)),
            ("EndDate", self.end_date_ms.map(seconds)),
        ] {
            if let Some(v) = value {
                out[key] = v;
            }
        }
        out
    }

    pub fn state(&self) -> &'static str {
        if self.enabled { "ENABLED" } else { "DISABLED" }
    }
}

/// A timestamp as REST-JSON writes it: epoch seconds.
pub fn seconds(ms: i64) -> Value {
    json!(ms as f64 / 1000.0)
}

fn validation(message: impl Into<String>) -> SchedulerError {
    SchedulerError::Validation(message.into())
}

/// Checks a name against the model's `[0-9a-zA-Z-_.]+`, 1 to 64.
pub fn check_name(errors: &mut ValidationErrors, field: &str, value: &str) {
    if value.is_empty() || value.len() > 64 {
        errors.push(
            field,
            value,
            "Member must have length less than or equal to 64",
        );
    } else if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        errors.push(
            field,
            value,
            "Member must satisfy regular expression pattern: [0-9a-zA-Z-_.]+",
        );
    }
}

fn is_role_arn(s: &str) -> bool {
    // arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@\/-]+
    let parts: Vec<&str> = s.splitn(6, ':').collect();
    let [arn, partition, iam, region, account, resource] = parts[..] else {
        return false;
    };
    arn == "arn"
        && partition.starts_with("aws")
        && partition[3..]
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'-')
        && iam == "iam"
        && region.is_empty()
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && resource.strip_prefix("role/").is_some_and(|r| {
            !r.is_empty()
                && r.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@/-".contains(&b))
        })
}

fn is_sqs_arn(s: &str) -> bool {
    // arn:aws[a-z-]*:sqs:[a-z0-9\-]+:\d{12}:[a-zA-Z0-9\-_]+
    let parts: Vec<&str> = s.split(':').collect();
    let [arn, partition, sqs, region, account, name] = parts[..] else {
        return false;
    };
    arn == "arn"
        && partition.starts_with("aws")
        && sqs == "sqs"
        && !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn millis(seconds: f64) -> i64 {
    (seconds * 1000.0).round() as i64
}

/// Reads and validates a schedule's definition. `created_ms` is kept from
/// the schedule being updated (or `now_ms` for a new one).
pub fn validate(
    input: &ScheduleInput,
    now_ms: i64,
    created_ms: i64,
) -> Result<Spec, SchedulerError> {
    let mut errors = ValidationErrors::new();
    let expression = input.schedule_expression.clone().unwrap_or_default();
    if input.schedule_expression.is_none() {
        errors.push_null("scheduleExpression", "Member must not be null");
    } else if expression.is_empty() || expression.len() > 256 {
        errors.push(
            "scheduleExpression",
            &expression,
            "Member must have length less than or equal to 256",
        );
    }
    let Some(target) = &input.target else {
        errors.push_null("target", "Member must not be null");
        return Err(validation(errors.into_result().err().unwrap_or_default()));
    };
    let Some(window) = &input.flexible_time_window else {
        errors.push_null("flexibleTimeWindow", "Member must not be null");
        return Err(validation(errors.into_result().err().unwrap_or_default()));
    };
    if let Some(d) = &input.description
        && d.chars().count() > 512
    {
        errors.push(
            "description",
            d,
            "Member must have length less than or equal to 512",
        );
    }
    let arn = target.arn.clone().unwrap_or_default();
    if target.arn.is_none() {
        errors.push_null("target.arn", "Member must not be null");
    }
    let role_arn = target.role_arn.clone().unwrap_or_default();
    match &target.role_arn {
        None => errors.push_null("target.roleArn", "Member must not be null"),
        Some(r) if !is_role_arn(r) => errors.push(
            "target.roleArn",
            r,
            "Member must satisfy regular expression pattern: arn:aws[a-z-]*:iam::\\d{12}:role\\/[\\w+=,.@\\/-]+",
        ),
        Some(_) => {}
    }
    let retry = target.retry_policy.clone().unwrap_or_default();
    let max_age = retry
        .maximum_event_age_in_seconds
        .unwrap_or(i64::from(DEFAULT_MAX_EVENT_AGE_S));
    if !(60..=86_400).contains(&max_age) {
        let c = if max_age < 60 {
            "Member must have value greater than or equal to 60"
        } else {
            "Member must have value less than or equal to 86400"
        };
        errors.push(
            "target.retryPolicy.maximumEventAgeInSeconds",
            &max_age.to_string(),
            c,
        );
    }
    let max_retries = retry
        .maximum_retry_attempts
        .unwrap_or(i64::from(DEFAULT_MAX_RETRIES));
    if !(0..=185).contains(&max_retries) {
        let c = if max_retries < 0 {
            "Member must have value greater than or equal to 0"
        } else {
            "Member must have value less than or equal to 185"
        };
        errors.push(
            "target.retryPolicy.maximumRetryAttempts",
            &max_retries.to_string(),
            c,
        );
    }
    let dead_letter_arn = target
        .dead_letter_config
        .as_ref()
        .and_then(|d| d.arn.clone());
    if let Some(d) = &dead_letter_arn
        && !is_sqs_arn(d)
    {
        errors.push(
            "target.deadLetterConfig.arn",
            d,
            "Member must satisfy regular expression pattern: arn:aws[a-z-]*:sqs:[a-z0-9\\-]+:\\d{12}:[a-zA-Z0-9\\-_]+",
        );
    }
    if let Some(i) = &target.input
        && i.is_empty()
    {
        errors.push(
            "target.input",
            i,
            "Member must have length greater than or equal to 1",
        );
    }
    let mode = window.mode.clone().unwrap_or_default();
    let window_min = window.maximum_window_in_minutes;
    match window.mode.as_deref() {
        None => errors.push_null("flexibleTimeWindow.mode", "Member must not be null"),
        Some("OFF" | "FLEXIBLE") => {}
        Some(m) => errors.push(
            "flexibleTimeWindow.mode",
            m,
            "Member must satisfy enum value set: [OFF, FLEXIBLE]",
        ),
    }
    if let Some(w) = window_min
        && !(1..=1440).contains(&w)
    {
        let c = if w < 1 {
            "Member must have value greater than or equal to 1"
        } else {
            "Member must have value less than or equal to 1440"
        };
        errors.push(
            "flexibleTimeWindow.maximumWindowInMinutes",
            &w.to_string(),
            c,
        );
    }
    let enabled = match input.state.as_deref() {
        None | Some("ENABLED") => true,
        Some("DISABLED") => false,
        Some(s) => {
            errors.push(
                "state",
                s,
                "Member must satisfy enum value set: [ENABLED, DISABLED]",
            );
            true
        }
    };
    let delete_after_completion = match input.action_after_completion.as_deref() {
        None | Some("NONE") => false,
        Some("DELETE") => true,
        Some(a) => {
            errors.push(
                "actionAfterCompletion",
                a,
                "Member must satisfy enum value set: [NONE, DELETE]",
            );
            false
        }
    };
    if let Some(t) = &input.schedule_expression_timezone
        && (t.is_empty() || t.len() > 50)
    {
        errors.push(
            "scheduleExpressionTimezone",
            t,
            "Member must have length less than or equal to 50",
        );
    }
    errors.into_result().map_err(validation)?;

    // The service's own checks, after the model's constraints.
    let expr = Expression::parse(&expression, Dialect::Scheduler)
        .map_err(|_| validation(format!("Invalid Schedule Expression {expression}.")))?;
    let timezone = input
        .schedule_expression_timezone
        .clone()
        .unwrap_or_else(|| "UTC".into());
    schedule::time_zone(&timezone)
        .map_err(|_| validation(format!("Invalid Schedule Expression Timezone {timezone}.")))?;
    let flexible_window_min = match (mode.as_str(), window_min) {
        ("FLEXIBLE", Some(w)) => Some(w as u32),
        ("FLEXIBLE", None) => {
            return Err(validation(
                "MaximumWindowInMinutes must be provided when FlexibleTimeWindow is set to FLEXIBLE.",
            ));
        }
        (_, Some(_)) => {
            return Err(validation(
                "MaximumWindowInMinutes is not allowed when FlexibleTimeWindow is set to OFF.",
            ));
        }
        _ => None,
    };
    if !target.other.is_empty() || !is_lambda_function_arn(&arn) {
        return Err(validation(format!(
            "Target Arn {arn} is not supported on this server: targets are Lambda functions (arn:aws:lambda:<region>:<account>:function:<name>)."
        )));
    }
    if let Some(i) = &target.input
        && serde_json::from_str::<Value>(i).is_err()
    {
        return Err(validation(
            "Invalid Input for target: a Lambda target's Input must be well-formed JSON.",
        ));
    }
    let start_date_ms = input.start_date.map(millis);
    let end_date_ms = input.end_date.map(millis);
    if !expr.is_one_time() {
        if let Some(start) = start_date_ms
            && start < now_ms - 5 * 60_000
        {
            return Err(validation(
                "The StartDate you specify cannot be earlier than 5 minutes ago.",
            ));
        }
        if let Some(end) = end_date_ms {
            if end <= now_ms {
                return Err(validation(
                    "The EndDate you specify cannot be earlier than now.",
                ));
            }
            if start_date_ms.is_some_and(|s| end <= s) {
                return Err(validation(
                    "The EndDate you specify must be after the StartDate.",
                ));
            }
        }
    }
    Ok(Spec {
        expression,
        timezone,
        start_date_ms,
        end_date_ms,
        description: input.description.clone(),
        enabled,
        kms_key_arn: input.kms_key_arn.clone(),
        target: TargetSpec {
            arn,
            role_arn,
            input: target.input.clone(),
            dead_letter_arn,
            max_event_age_s: max_age as u32,
            max_retries: max_retries as u32,
        },
        flexible_window_min,
        delete_after_completion,
        created_ms,
        modified_ms: now_ms,
    })
}

/// `arn:<partition>:lambda:<region>:<account>:function:<name>[:<qualifier>]`.
fn is_lambda_function_arn(arn: &str) -> bool {
    model::FunctionRef::parse(arn).is_ok_and(|r| r.account.is_some() && r.region.is_some())
        && arn.starts_with("arn:")
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_780_000_000_000;

    fn input(v: Value) -> ScheduleInput {
        serde_json::from_value(v).unwrap()
    }

    fn base() -> Value {
        json!({
            "ScheduleExpression": "rate(5 minutes)",
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "Target": {
                "Arn": "arn:aws:lambda:us-east-1:123456789012:function:f",
                "RoleArn": "arn:aws:iam::123456789012:role/scheduler",
                "Input": "{\"a\": 1}"
            }
        })
    }

    fn refused(mut v: Value, path: &[&str], value: Value) -> String {
        let mut at = &mut v;
        for p in &path[..path.len() - 1] {
            at = &mut at[*p];
        }
        at[path[path.len() - 1]] = value;
        match validate(&input(v), NOW, NOW) {
            Err(SchedulerError::Validation(m)) => m,
            other => panic!("{path:?}: {other:?}"),
        }
    }

    #[test]
    fn defaults_as_aws_reports_them() {
        let s = validate(&input(base()), NOW, NOW).unwrap();
        let j = s.to_json("arn", "default", "n");
        assert_eq!(j["ScheduleExpressionTimezone"], "UTC");
        assert_eq!(j["State"], "ENABLED");
        assert_eq!(j["ActionAfterCompletion"], "NONE");
        assert_eq!(
            j["Target"]["RetryPolicy"],
            json!({"MaximumEventAgeInSeconds": 86400, "MaximumRetryAttempts": 185})
        );
        assert_eq!(j["FlexibleTimeWindow"], json!({"Mode": "OFF"}));
        assert_eq!(j["Target"]["Input"], "{\"a\": 1}");
        assert!(j.get("StartDate").is_none());
    }

    #[test]
    fn bad_input_is_refused_with_aws_messages() {
        assert_eq!(
            refused(base(), &["ScheduleExpression"], json!("rate(10 seconds)")),
            "Invalid Schedule Expression rate(10 seconds)."
        );
        assert!(
            refused(base(), &["Target", "RoleArn"], json!("role")).starts_with(
                "1 validation error detected: Value 'role' at 'target.roleArn' failed to satisfy constraint"
            )
        );
        assert!(
            refused(
                base(),
                &["Target", "RetryPolicy"],
                json!({"MaximumRetryAttempts": 186})
            )
            .contains("Member must have value less than or equal to 185")
        );
        assert!(
            refused(base(), &["FlexibleTimeWindow", "Mode"], json!("SOMETIMES"))
                .contains("[OFF, FLEXIBLE]")
        );
        assert_eq!(
            refused(base(), &["FlexibleTimeWindow", "Mode"], json!("FLEXIBLE")),
            "MaximumWindowInMinutes must be provided when FlexibleTimeWindow is set to FLEXIBLE."
        );
        assert!(
            refused(base(), &["ScheduleExpressionTimezone"], json!("Mars/Base"))
                .starts_with("Invalid Schedule Expression Timezone")
        );
        assert_eq!(
            refused(
                base(),
                &["StartDate"],
                json!((NOW - 600_000) as f64 / 1000.0)
            ),
            "The StartDate you specify cannot be earlier than 5 minutes ago."
        );
        assert!(
            refused(base(), &["Target", "Input"], json!("not json")).contains("well-formed JSON")
        );
        assert!(
            refused(
                base(),
                &["Target", "Arn"],
                json!("arn:aws:sqs:us-east-1:123456789012:q")
            )
            .contains("not supported")
        );
        assert!(
            refused(
                base(),
                &["Target", "DeadLetterConfig"],
                json!({"Arn": "arn:aws:sns:us-east-1:123456789012:t"})
            )
            .contains("target.deadLetterConfig.arn")
        );
        assert!(refused(base(), &["State"], json!("PAUSED")).contains("[ENABLED, DISABLED]"));
        let mut v = base();
        v.as_object_mut().unwrap().remove("FlexibleTimeWindow");
        assert!(matches!(
            validate(&input(v), NOW, NOW),
            Err(SchedulerError::Validation(m)) if m.contains("'flexibleTimeWindow' failed to satisfy constraint: Member must not be null")
        ));
    }
}
