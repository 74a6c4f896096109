//! Resource-based policies: function permissions (`AddPermission`,
//! `GetPolicy`, `RemovePermission`) and the statement logic layer version
//! permissions share. Policies are stored and returned in AWS's document
//! format; this server does not enforce them yet.

use api_types as wire;
use model::names::ValidationErrors;
use model::{FunctionName, FunctionRecord, Policy, PolicyStatement, Qualifier, Scope};
use serde_json::{Map, Value, json};

use crate::{Control, ControlError, function_not_found};

/// A permission statement to add, validated.
#[derive(Debug, Clone)]
pub(crate) struct StatementInput {
    pub sid: String,
    pub action: String,
    pub principal: Value,
    pub condition: Option<Value>,
}

fn validation(field: &str, value: &str, constraint: &str) -> ControlError {
    let mut v = ValidationErrors::new();
    v.push(field, value, constraint);
    ControlError::Validation(v.into_result().err().unwrap_or_default())
}

fn required<'a>(v: &mut ValidationErrors, field: &str, value: &'a Option<String>) -> &'a str {
    if value.is_none() {
        v.push_null(field, "Member must not be null");
    }
    value.as_deref().unwrap_or_default()
}

fn sid_ok(s: &str, dots: bool) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || (dots && b == b'.'))
}

fn is_account(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// A layer version permission: `lambda:GetLayerVersion` for an account,
/// everyone, or an organisation.
pub(crate) fn layer_statement_input(
    req: &wire::AddPermissionRequest,
    partition: &str,
) -> Result<StatementInput, ControlError> {
    let mut v = ValidationErrors::new();
    let sid = required(&mut v, "statementId", &req.statement_id);
    let action = required(&mut v, "action", &req.action);
    let principal = required(&mut v, "principal", &req.principal);
    v.into_result().map_err(ControlError::Validation)?;
    if !sid_ok(sid, false) {
        return Err(validation(
            "statementId",
            sid,
            "Member must satisfy regular expression pattern: ([a-zA-Z0-9-_]+)",
        ));
    }
    if action != "lambda:GetLayerVersion" {
        return Err(validation(
            "action",
            action,
            "Member must satisfy regular expression pattern: lambda:GetLayerVersion",
        ));
    }
    let principal_json = if principal == "*" {
        json!("*")
    } else if is_account(principal) {
        json!({ "AWS": format!("arn:{partition}:iam::{principal}:root") })
    } else if principal.starts_with("arn:aws") && principal.ends_with(":root") {
        json!({ "AWS": principal })
    } else {
        return Err(validation(
            "principal",
            principal,
            r"Member must satisfy regular expression pattern: \d{12}|\*|arn:(aws[a-zA-Z-]*):iam::\d{12}:root",
        ));
    };
    let condition = req
        .organization_id
        .as_ref()
        .map(|o| json!({ "StringEquals": { "aws:PrincipalOrgID": o } }));
    Ok(StatementInput {
        sid: sid.to_owned(),
        action: action.to_owned(),
        principal: principal_json,
        condition,
    })
}

/// A function permission: who may call which Lambda action, under which
/// conditions.
pub(crate) fn function_statement_input(
    req: &wire::AddPermissionRequest,
    partition: &str,
) -> Result<StatementInput, ControlError> {
    let mut v = ValidationErrors::new();
    let sid = required(&mut v, "statementId", &req.statement_id);
    let action = required(&mut v, "action", &req.action);
    let principal = required(&mut v, "principal", &req.principal);
    v.into_result().map_err(ControlError::Validation)?;
    if !sid_ok(sid, false) {
        return Err(validation(
            "statementId",
            sid,
            "Member must satisfy regular expression pattern: ([a-zA-Z0-9-_]+)",
        ));
    }
    let action_ok = action == "*"
        || action == "lambda:*"
        || action
            .strip_prefix("lambda:")
            .is_some_and(|a| !a.is_empty() && a.bytes().all(|b| b.is_ascii_alphabetic()));
    if !action_ok {
        return Err(validation(
            "action",
            action,
            "Member must satisfy regular expression pattern: (lambda:[*]|lambda:[a-zA-Z]+|[*])",
        ));
    }
    let principal_json = if principal == "*" {
        json!("*")
    } else if is_account(principal) {
        json!({ "AWS": format!("arn:{partition}:iam::{principal}:root") })
    } else if principal.starts_with("arn:") {
        if !principal.starts_with("arn:aws")
            || principal.split(':').nth(4).is_none_or(|a| !is_account(a))
        {
            return Err(ControlError::InvalidParameter(format!(
                "The provided input'{principal}'was invalid. Member must satisfy expression: [\\w+=,.@-]* Please check your input and try again."
            )));
        }
        json!({ "AWS": principal })
    } else if principal.ends_with(".amazonaws.com") || principal.ends_with(".amazonaws.com.cn") {
        json!({ "Service": principal })
    } else {
        return Err(ControlError::InvalidParameter(
            "The provided principal was invalid. Please check the principal and try again.".into(),
        ));
    };
    if let Some(a) = &req.source_account
        && !is_account(a)
    {
        return Err(validation(
            "sourceAccount",
            a,
            r"Member must satisfy regular expression pattern: \d{12}",
        ));
    }
    if let Some(t) = &req.function_url_auth_type
        && t != "NONE"
        && t != "AWS_IAM"
    {
        return Err(validation(
            "functionUrlAuthType",
            t,
            "Member must satisfy enum value set: [NONE, AWS_IAM]",
        ));
    }
    let mut equals = Map::new();
    if let Some(a) = &req.source_account {
        equals.insert("AWS:SourceAccount".into(), json!(a));
    }
    if let Some(t) = &req.function_url_auth_type {
        equals.insert("lambda:FunctionUrlAuthType".into(), json!(t));
    }
    if let Some(o) = &req.principal_org_id {
        equals.insert("aws:PrincipalOrgID".into(), json!(o));
    }
    if let Some(t) = &req.event_source_token {
        equals.insert("lambda:EventSourceToken".into(), json!(t));
    }
    let mut condition = Map::new();
    if !equals.is_empty() {
        condition.insert("StringEquals".into(), Value::Object(equals));
    }
    if let Some(a) = &req.source_arn {
        condition.insert("ArnLike".into(), json!({ "AWS:SourceArn": a }));
    }
    Ok(StatementInput {
        sid: sid.to_owned(),
        action: action.to_owned(),
        principal: principal_json,
        condition: (!condition.is_empty()).then_some(Value::Object(condition)),
    })
}

fn precondition(api: &str) -> ControlError {
    ControlError::PreconditionFailed(format!(
        "The Revision Id provided does not match the latest Revision Id. Call the {api} API to retrieve the latest Revision Id"
    ))
}

/// Adds a statement; returns it as JSON text. `fallback_revision` is what a
/// given RevisionId must match while the policy is still empty.
pub(crate) fn add(
    policy: &mut Policy,
    input: &StatementInput,
    resource: &str,
    revision_id: Option<&str>,
    api: &str,
    fallback_revision: Option<&str>,
) -> Result<String, ControlError> {
    if policy.statements.iter().any(|s| s.sid == input.sid) {
        return Err(ControlError::Conflict(format!(
            "The statement id ({}) provided already exists. Please provide a new statement id, or remove the existing statement.",
            input.sid
        )));
    }
    if let Some(r) = revision_id {
        let current = if policy.statements.is_empty() {
            fallback_revision.unwrap_or(policy.revision_id.as_str())
        } else {
            policy.revision_id.as_str()
        };
        if r != current {
            return Err(precondition(api));
        }
    }
    let mut st = json!({
        "Sid": input.sid,
        "Effect": "Allow",
        "Principal": input.principal,
        "Action": input.action,
        "Resource": resource,
    });
    if let Some(c) = &input.condition {
        st["Condition"] = c.clone();
    }
    let text =
        serde_json::to_string(&st).map_err(|e| ControlError::InvalidParameter(e.to_string()))?;
    policy.statements.push(PolicyStatement {
        sid: input.sid.clone(),
        json: text.clone(),
    });
    policy.revision_id = uuid::Uuid::new_v4().to_string();
    Ok(text)
}

/// Removes a statement by id.
pub(crate) fn remove(
    policy: &mut Policy,
    sid: &str,
    revision_id: Option<&str>,
    api: &str,
) -> Result<(), ControlError> {
    if policy.statements.is_empty() {
        return Err(ControlError::NotFound(
            "No policy is associated with the given resource.".into(),
        ));
    }
    if let Some(r) = revision_id
        && r != policy.revision_id
    {
        return Err(precondition(api));
    }
    let before = policy.statements.len();
    policy.statements.retain(|s| s.sid != sid);
    if policy.statements.len() == before {
        return Err(ControlError::NotFound(format!(
            "Statement {sid} is not found in resource policy."
        )));
    }
    policy.revision_id = uuid::Uuid::new_v4().to_string();
    Ok(())
}

/// The policy document as AWS returns it (compact JSON text).
pub(crate) fn document(policy: &Policy) -> String {
    let statements: Vec<Value> = policy
        .statements
        .iter()
        .filter_map(|s| serde_json::from_str(&s.json).ok())
        .collect();
    serde_json::to_string(&json!({
        "Version": "2012-10-17",
        "Id": "default",
        "Statement": statements,
    }))
    .unwrap_or_default()
}

/// The key a qualifier's policy is stored under (`""`: the function).
fn key(q: Option<&Qualifier>) -> String {
    q.map(ToString::to_string).unwrap_or_default()
}

impl Control {
    /// Checks that a qualifier for a policy call exists.
    fn policy_qualifier(
        &self,
        scope: &Scope,
        name: &FunctionName,
        rec: &FunctionRecord,
        q: Option<&Qualifier>,
    ) -> Result<(), ControlError> {
        if rec.has_qualifier(q) {
            return Ok(());
        }
        let mut arn = scope.function_arn(name);
        arn.qualifier = q.cloned();
        Err(match q {
            Some(Qualifier::Alias(_)) => {
                ControlError::NotFound(format!("Cannot find alias arn: {arn}"))
            }
            _ => function_not_found(scope, name, q),
        })
    }

    /// `AddPermission` (201).
    pub async fn add_permission(
        &self,
        scope: &Scope,
        raw: &str,
        qualifier: Option<&str>,
        req: wire::AddPermissionRequest,
    ) -> Result<wire::AddPermissionResponse, ControlError> {
        let t = self.qualified(scope, raw, qualifier)?;
        if t.qualifier == Some(Qualifier::Latest) {
            return Err(ControlError::InvalidParameter(
                "We currently do not support adding policies for $LATEST.".into(),
            ));
        }
        let input = function_statement_input(&req, scope.partition())?;
        let q = t.qualifier.clone();
        let k = key(q.as_ref());
        let mut arn = scope.function_arn(&t.name);
        arn.qualifier = q.clone();
        let resource = arn.to_string();
        let mut statement = String::new();
        self.modify(scope, &t.name, None, |rec| {
            self.policy_qualifier(scope, &t.name, rec, q.as_ref())?;
            let fallback = match &q {
                Some(Qualifier::Alias(a)) => rec.aliases.get(a).map(|a| a.revision_id.clone()),
                Some(Qualifier::Version(n)) => rec.versions.get(n).map(|v| v.revision_id.clone()),
                _ => Some(rec.latest.revision_id.clone()),
            };
            let policy = rec.policies.entry(k.clone()).or_default();
            statement = add(
                policy,
                &input,
                &resource,
                req.revision_id.as_deref(),
                "GetPolicy",
                fallback.as_deref(),
            )?;
            Ok(())
        })
        .await?;
        Ok(wire::AddPermissionResponse {
            statement,
            revision_id: None,
        })
    }

    /// `GetPolicy`.
    pub async fn get_policy(
        &self,
        scope: &Scope,
        raw: &str,
        qualifier: Option<&str>,
    ) -> Result<wire::GetPolicyResponse, ControlError> {
        let missing =
            || ControlError::NotFound("The resource you requested does not exist.".into());
        let t = self.qualified(scope, raw, qualifier)?;
        let rec = self
            .store
            .get_function(scope, &t.name)
            .await?
            .ok_or_else(missing)?
            .value;
        let policy = rec
            .policies
            .get(&key(t.qualifier.as_ref()))
            .filter(|p| !p.statements.is_empty())
            .ok_or_else(missing)?;
        Ok(wire::GetPolicyResponse {
            policy: document(policy),
            revision_id: policy.revision_id.clone(),
        })
    }

    /// `RemovePermission` (204).
    pub async fn remove_permission(
        &self,
        scope: &Scope,
        raw: &str,
        sid: &str,
        qualifier: Option<&str>,
        revision_id: Option<&str>,
    ) -> Result<(), ControlError> {
        let t = self.qualified(scope, raw, qualifier)?;
        if self.store.get_function(scope, &t.name).await?.is_none() {
            return Err(ControlError::NotFound(format!(
                "No policy found for: {}",
                scope.function_arn(&t.name)
            )));
        }
        let q = t.qualifier.clone();
        let k = key(q.as_ref());
        self.modify(scope, &t.name, None, |rec| {
            self.policy_qualifier(scope, &t.name, rec, q.as_ref())?;
            let policy = rec.policies.entry(k.clone()).or_default();
            remove(policy, sid, revision_id, "GetPolicy")?;
            if policy.statements.is_empty() {
                rec.policies.remove(&k);
            }
            Ok(())
        })
        .await
        .map(drop)
    }
}

impl Control {
    /// Whether the resource policy of the function `function_arn` names
    /// (the policy of its qualifier when it has one) lets the AWS service
    /// `principal` (`sns.amazonaws.com`, `events.amazonaws.com`) invoke it
    /// for `source_arn`, as AWS requires of triggers. A function that does
    /// not exist is `FunctionNotFound`.
    pub async fn service_may_invoke(
        &self,
        function_arn: &str,
        principal: &str,
        source_arn: &str,
        source_account: &str,
    ) -> Result<bool, ControlError> {
        let model::arn::ResourceArn::Function(arn) = model::arn::ResourceArn::parse(function_arn)
            .map_err(|_| {
            ControlError::InvalidParameter(format!("{function_arn} is not a function ARN"))
        })?;
        let rec = self
            .store
            .get_function(&arn.scope, &arn.name)
            .await?
            .ok_or_else(|| function_not_found(&arn.scope, &arn.name, arn.qualifier.as_ref()))?
            .value;
        let Some(policy) = rec.policies.get(&key(arn.qualifier.as_ref())) else {
            return Ok(false);
        };
        Ok(crate::access::policy_allows(
            policy,
            &service_request(principal, source_arn, source_account),
        ))
    }
}

/// What a trigger of this server asks when it invokes a function.
fn service_request<'a>(
    principal: &'a str,
    source_arn: &'a str,
    source_account: &'a str,
) -> crate::access::AccessRequest<'a> {
    crate::access::AccessRequest {
        action: crate::access::Action::InvokeFunction,
        caller: None,
        service: Some(principal),
        source_account: Some(source_account),
        source_arn: Some(source_arn),
        url_auth_type: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statement_allows_service(
        st: &Value,
        principal: &str,
        source_arn: &str,
        source_account: &str,
    ) -> bool {
        crate::access::statement_allows(st, &service_request(principal, source_arn, source_account))
    }

    fn req(principal: &str) -> wire::AddPermissionRequest {
        wire::AddPermissionRequest {
            statement_id: Some("s3".into()),
            action: Some("lambda:InvokeFunction".into()),
            principal: Some(principal.into()),
            ..Default::default()
        }
    }

    #[test]
    fn statements_have_aws_shape_and_order() {
        let mut r = req("s3.amazonaws.com");
        r.source_arn = Some("arn:aws:s3:::b".into());
        r.source_account = Some("111111111111".into());
        let input = function_statement_input(&r, "aws").unwrap();
        let mut p = Policy::default();
        let text = add(
            &mut p,
            &input,
            "arn:aws:lambda:us-east-1:111111111111:function:f",
            None,
            "GetPolicy",
            None,
        )
        .unwrap();
        assert_eq!(
            text,
            r#"{"Sid":"s3","Effect":"Allow","Principal":{"Service":"s3.amazonaws.com"},"Action":"lambda:InvokeFunction","Resource":"arn:aws:lambda:us-east-1:111111111111:function:f","Condition":{"StringEquals":{"AWS:SourceAccount":"111111111111"},"ArnLike":{"AWS:SourceArn":"arn:aws:s3:::b"}}}"#
        );
        let first_rev = p.revision_id.clone();
        let dup = add(&mut p, &input, "x", None, "GetPolicy", None).unwrap_err();
        assert!(matches!(dup, ControlError::Conflict(_)));
        assert!(
            document(&p)
                .starts_with(r#"{"Version":"2012-10-17","Id":"default","Statement":[{"Sid":"s3""#)
        );
        assert!(matches!(
            remove(&mut p, "s3", Some("stale"), "GetPolicy"),
            Err(ControlError::PreconditionFailed(_))
        ));
        assert!(matches!(
            remove(&mut p, "nope", None, "GetPolicy"),
            Err(ControlError::NotFound(_))
        ));
        remove(&mut p, "s3", Some(&first_rev), "GetPolicy").unwrap();
        assert!(p.statements.is_empty());
    }

    #[test]
    fn principals() {
        let p = |s: &str| function_statement_input(&req(s), "aws").map(|i| i.principal);
        assert_eq!(p("*").unwrap(), json!("*"));
        assert_eq!(
            p("123456789012").unwrap(),
            json!({"AWS": "arn:aws:iam::123456789012:root"})
        );
        assert_eq!(
            p("arn:aws:iam::123456789012:role/r").unwrap(),
            json!({"AWS": "arn:aws:iam::123456789012:role/r"})
        );
        assert!(matches!(
            p("invalid.nonaws.com"),
            Err(ControlError::InvalidParameter(_))
        ));
        // An account id becomes the root principal of the caller's partition.
        assert_eq!(
            function_statement_input(&req("123456789012"), "aws-cn")
                .unwrap()
                .principal,
            json!({"AWS": "arn:aws-cn:iam::123456789012:root"})
        );
    }

    #[test]
    fn service_statements_allow_only_their_principal_and_source() {
        let topic = "arn:aws:sns:us-east-1:111111111111:orders";
        let mut r = req("sns.amazonaws.com");
        r.source_arn = Some(topic.into());
        let input = function_statement_input(&r, "aws").unwrap();
        let mut p = Policy::default();
        let text = add(
            &mut p,
            &input,
            "arn:aws:lambda:us-east-1:111111111111:function:f",
            None,
            "GetPolicy",
            None,
        )
        .unwrap();
        let st: Value = serde_json::from_str(&text).unwrap();
        assert!(statement_allows_service(
            &st,
            "sns.amazonaws.com",
            topic,
            "111111111111"
        ));
        assert!(!statement_allows_service(
            &st,
            "events.amazonaws.com",
            topic,
            "111111111111"
        ));
        assert!(!statement_allows_service(
            &st,
            "sns.amazonaws.com",
            "arn:aws:sns:us-east-1:111111111111:other",
            "111111111111"
        ));
        let wildcard = json!({"Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"},
            "Action": "lambda:InvokeFunction", "Condition": {"ArnLike": {"AWS:SourceArn": "arn:aws:sns:us-east-1:111111111111:ord?rs*"}}});
        assert!(statement_allows_service(
            &wildcard,
            "sns.amazonaws.com",
            topic,
            "111111111111"
        ));
        let no_condition = json!({"Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"}, "Action": "lambda:InvokeFunction"});
        assert!(statement_allows_service(
            &no_condition,
            "sns.amazonaws.com",
            topic,
            "111111111111"
        ));
        let other_action = json!({"Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"}, "Action": "lambda:GetFunction"});
        assert!(!statement_allows_service(
            &other_action,
            "sns.amazonaws.com",
            topic,
            "111111111111"
        ));
        let account = json!({"Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"}, "Action": "lambda:InvokeFunction",
            "Condition": {"StringEquals": {"AWS:SourceAccount": "222222222222"}}});
        assert!(!statement_allows_service(
            &account,
            "sns.amazonaws.com",
            topic,
            "111111111111"
        ));
    }
}
