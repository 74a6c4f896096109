//! Who may invoke a function: the one evaluation of a function's resource
//! policy, shared by the Invoke API (`lambda:InvokeFunction`) and function
//! URLs (`lambda:InvokeFunctionUrl`).
//!
//! The owning account may always invoke its own functions. Anyone else is
//! allowed only by an `Allow` statement whose action, principal and every
//! condition match the request, as IAM evaluates them: a condition on a key
//! the request does not carry does not match. A trigger of this server (an
//! SNS topic, an EventBridge rule) asks as its service principal, with the
//! source it acts for.

use model::{AccountId, FunctionRecord, Policy, Qualifier};
use serde_json::Value;

/// The Lambda actions a resource policy can grant for invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `lambda:InvokeFunction`: the Invoke API.
    InvokeFunction,
    /// `lambda:InvokeFunctionUrl`: a request to a function URL.
    InvokeFunctionUrl,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvokeFunction => "lambda:InvokeFunction",
            Self::InvokeFunctionUrl => "lambda:InvokeFunctionUrl",
        }
    }
}

/// One request to authorise: what is asked, by whom, in which context.
#[derive(Debug, Clone, Copy)]
pub struct AccessRequest<'a> {
    pub action: Action,
    /// The signing account; `None` for an unsigned (anonymous) request.
    pub caller: Option<&'a AccountId>,
    /// The AWS service acting (`sns.amazonaws.com`), when a trigger of this
    /// server invokes; it never comes from a caller's keys.
    pub service: Option<&'a str>,
    /// `AWS:SourceAccount`, when a service acts on behalf of a resource.
    pub source_account: Option<&'a str>,
    /// `AWS:SourceArn`, when a service acts on behalf of a resource.
    pub source_arn: Option<&'a str>,
    /// `lambda:FunctionUrlAuthType`, for requests to a function URL.
    pub url_auth_type: Option<&'a str>,
}

/// The policy that governs a qualifier: the function's own for the
/// unqualified name and `$LATEST`, else the version's or alias's.
pub fn policy_for<'r>(record: &'r FunctionRecord, q: Option<&Qualifier>) -> Option<&'r Policy> {
    let key = match q {
        None | Some(Qualifier::Latest) => String::new(),
        Some(q) => q.to_string(),
    };
    record.policies.get(&key)
}

/// Whether `req` may act on a function of `owner` whose policy (for the
/// qualifier invoked) is `policy`.
pub fn allowed(owner: &AccountId, policy: Option<&Policy>, req: &AccessRequest<'_>) -> bool {
    if req.caller == Some(owner) {
        return true;
    }
    policy.is_some_and(|p| policy_allows(p, req))
}

/// Whether some statement of `policy` allows `req` (the owner's own access
/// aside).
pub fn policy_allows(policy: &Policy, req: &AccessRequest<'_>) -> bool {
    policy
        .statements
        .iter()
        .filter_map(|s| serde_json::from_str::<Value>(&s.json).ok())
        .any(|s| statement_allows(&s, req))
}

/// Whether one policy statement (its JSON document) allows `req`.
pub fn statement_allows(s: &Value, req: &AccessRequest<'_>) -> bool {
    s.get("Effect").and_then(Value::as_str) == Some("Allow")
        && action_matches(s.get("Action"), req.action)
        && principal_matches(s.get("Principal"), req)
        && conditions_match(s.get("Condition"), req)
}

fn strings(v: Option<&Value>) -> Vec<&str> {
    match v {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn action_matches(v: Option<&Value>, action: Action) -> bool {
    strings(v)
        .iter()
        .any(|a| *a == "*" || *a == "lambda:*" || a.eq_ignore_ascii_case(action.as_str()))
}

/// `*` is everyone, signed or not; an account (its root ARN or its id) is
/// any caller signing with that account's keys. Service principals act
/// only through the services themselves, never through a caller's keys.
fn principal_matches(v: Option<&Value>, req: &AccessRequest<'_>) -> bool {
    let caller = req.caller;
    match v {
        Some(Value::String(s)) => s == "*",
        Some(Value::Object(m)) => {
            req.service
                .is_some_and(|svc| strings(m.get("Service")).contains(&svc))
                || strings(m.get("AWS")).iter().any(|p| {
                    *p == "*"
                        || caller.is_some_and(|c| {
                            *p == c.as_str()
                                || p.strip_prefix("arn:")
                                    .and_then(|rest| rest.split(':').nth(3))
                                    .is_some_and(|acct| acct == c.as_str())
                                    && p.ends_with(":root")
                        })
                })
        }
        _ => false,
    }
}

/// The request's value for a condition key (keys are case-insensitive).
fn context<'a>(req: &AccessRequest<'a>, key: &str) -> Option<&'a str> {
    match key.to_ascii_lowercase().as_str() {
        "aws:sourceaccount" => req.source_account,
        "aws:sourcearn" => req.source_arn,
        "lambda:functionurlauthtype" => req.url_auth_type,
        _ => None,
    }
}

fn conditions_match(v: Option<&Value>, req: &AccessRequest<'_>) -> bool {
    let Some(v) = v else { return true };
    let Some(ops) = v.as_object() else {
        return false;
    };
    ops.iter().all(|(op, keys)| {
        let Some(keys) = keys.as_object() else {
            return false;
        };
        keys.iter().all(|(key, expected)| {
            let Some(actual) = context(req, key) else {
                return false;
            };
            let expected = strings(Some(expected));
            match op.as_str() {
                "StringEquals" | "ArnEquals" => expected.contains(&actual),
                "StringEqualsIgnoreCase" => expected.iter().any(|e| e.eq_ignore_ascii_case(actual)),
                "StringLike" | "ArnLike" => expected.iter().any(|e| glob(e, actual)),
                _ => false,
            }
        })
    })
}

/// IAM's `*` (any run) and `?` (any one character) wildcards.
fn glob(pattern: &str, s: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = s.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::PolicyStatement;

    fn policy(statements: &[&str]) -> Policy {
        Policy {
            statements: statements
                .iter()
                .enumerate()
                .map(|(i, j)| PolicyStatement {
                    sid: i.to_string(),
                    json: (*j).to_owned(),
                })
                .collect(),
            revision_id: "r".into(),
        }
    }

    fn acct(s: &str) -> AccountId {
        AccountId::parse(s).unwrap()
    }

    fn req<'a>(action: Action, caller: Option<&'a AccountId>) -> AccessRequest<'a> {
        AccessRequest {
            action,
            caller,
            service: None,
            source_account: None,
            source_arn: None,
            url_auth_type: None,
        }
    }

    #[test]
    fn owner_always_others_by_grant() {
        let owner = acct("111111111111");
        let other = acct("222222222222");
        let third = acct("333333333333");
        assert!(allowed(
            &owner,
            None,
            &req(Action::InvokeFunction, Some(&owner))
        ));
        assert!(!allowed(
            &owner,
            None,
            &req(Action::InvokeFunction, Some(&other))
        ));
        let p = policy(&[
            r#"{"Sid":"x","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::222222222222:root"},"Action":"lambda:InvokeFunction","Resource":"r"}"#,
        ]);
        assert!(allowed(
            &owner,
            Some(&p),
            &req(Action::InvokeFunction, Some(&other))
        ));
        assert!(!allowed(
            &owner,
            Some(&p),
            &req(Action::InvokeFunction, Some(&third))
        ));
        assert!(!allowed(
            &owner,
            Some(&p),
            &req(Action::InvokeFunctionUrl, Some(&other))
        ));
        assert!(!allowed(
            &owner,
            Some(&p),
            &req(Action::InvokeFunction, None)
        ));
    }

    #[test]
    fn public_url_needs_the_none_condition() {
        let owner = acct("111111111111");
        let public = policy(&[
            r#"{"Sid":"u","Effect":"Allow","Principal":"*","Action":"lambda:InvokeFunctionUrl","Resource":"r","Condition":{"StringEquals":{"lambda:FunctionUrlAuthType":"NONE"}}}"#,
        ]);
        let mut r = req(Action::InvokeFunctionUrl, None);
        assert!(
            !allowed(&owner, Some(&public), &r),
            "no auth type in context"
        );
        r.url_auth_type = Some("NONE");
        assert!(allowed(&owner, Some(&public), &r));
        r.url_auth_type = Some("AWS_IAM");
        assert!(!allowed(&owner, Some(&public), &r));
        // The Invoke API is not opened by a URL grant.
        assert!(!allowed(
            &owner,
            Some(&public),
            &req(Action::InvokeFunction, None)
        ));
    }

    #[test]
    fn source_conditions_as_iam_evaluates_them() {
        let owner = acct("111111111111");
        let other = acct("222222222222");
        let p = policy(&[
            r#"{"Sid":"s","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::222222222222:root"},"Action":"lambda:InvokeFunction","Resource":"r","Condition":{"StringEquals":{"AWS:SourceAccount":"222222222222"},"ArnLike":{"AWS:SourceArn":"arn:aws:sns:*:222222222222:topic-*"}}}"#,
        ]);
        let mut r = req(Action::InvokeFunction, Some(&other));
        assert!(
            !allowed(&owner, Some(&p), &r),
            "a direct call carries no source"
        );
        r.source_account = Some("222222222222");
        assert!(!allowed(&owner, Some(&p), &r), "both conditions must hold");
        r.source_arn = Some("arn:aws:sns:us-east-1:222222222222:topic-a");
        assert!(allowed(&owner, Some(&p), &r));
        r.source_arn = Some("arn:aws:sns:us-east-1:222222222222:other");
        assert!(!allowed(&owner, Some(&p), &r));
    }

    #[test]
    fn wildcards() {
        assert!(glob("arn:aws:s3:::b*", "arn:aws:s3:::bucket"));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "abbc"));
        assert!(glob("*", ""));
        assert!(!glob("abc", "abcd"));
    }
}
