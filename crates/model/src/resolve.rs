//! Resolving a `{FunctionName}` parameter in the caller's scope, and the typed
//! errors the control plane and the invoke path share for it.

use std::fmt;

use crate::arn::Scope;
use crate::names::{FunctionName, FunctionRef, NameError, Qualifier, ValidationErrors};

/// `Function not found: <arn>`: no function (or no such version or alias) by
/// that name in the scope. The name is kept as given, since AWS reports an
/// over-long name this way too.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct FunctionNotFound {
    pub scope: Scope,
    pub name: String,
    pub qualifier: Option<String>,
}

impl FunctionNotFound {
    pub fn new(scope: &Scope, name: &FunctionName, qualifier: Option<&Qualifier>) -> Self {
        Self {
            scope: scope.clone(),
            name: name.to_string(),
            qualifier: qualifier.map(ToString::to_string),
        }
    }

    /// The same error naming `qualifier` when it names none (Invoke reports
    /// unknown unqualified names with `:$LATEST`).
    pub fn or_qualifier(mut self, qualifier: &str) -> Self {
        if self.qualifier.is_none() {
            self.qualifier = Some(qualifier.to_owned());
        }
        self
    }
}

impl fmt::Display for FunctionNotFound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Function not found: arn:{}:lambda:{}:{}:function:{}",
            self.scope.partition(),
            self.scope.region,
            self.scope.account,
            self.name
        )?;
        if let Some(q) = &self.qualifier {
            write!(f, ":{q}")?;
        }
        Ok(())
    }
}

/// Why a `{FunctionName}` parameter names no function the caller can reach.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefError {
    /// Malformed: AWS's `ValidationException` message.
    #[error("{0}")]
    Invalid(String),
    /// Well formed, but no such function can exist (an over-long name).
    #[error(transparent)]
    NotFound(#[from] FunctionNotFound),
    /// A full ARN of another region (`ResourceNotFoundException`).
    #[error("Functions from '{given}' are not reachable in this region ('{scope}')")]
    OtherRegion {
        given: crate::Region,
        scope: crate::Region,
    },
    /// A full or partial ARN of another account (`AccessDeniedException`).
    #[error("User: {} is not authorized to access resource: {raw}", caller.account_root())]
    OtherAccount { caller: Scope, raw: String },
    /// `name:q1` with a `Qualifier` of `q2` (`InvalidParameterValueException`).
    #[error("The derived qualifier from the function name does not match the specified qualifier.")]
    QualifierMismatch,
}

/// AWS's validation message for one malformed member.
pub fn validation_message(field: &str, value: &str, e: NameError) -> String {
    let mut v = ValidationErrors::new();
    v.push(field, value, e);
    v.into_result().err().unwrap_or_default()
}

/// Resolves a `{FunctionName}` parameter (name, partial or full ARN, optionally
/// qualified) to a name in the caller's scope. An ARN must name the caller's
/// account and region.
pub fn resolve_ref(scope: &Scope, raw: &str) -> Result<FunctionRef, RefError> {
    let r = FunctionRef::parse(raw).map_err(|e| match e {
        // AWS answers an over-long (but otherwise well-formed) name with "not found".
        NameError::TooLong { max } if max == FunctionName::MAX_LEN => {
            RefError::NotFound(FunctionNotFound {
                scope: scope.clone(),
                name: raw
                    .rsplit(':')
                    .find(|t| t.len() > FunctionName::MAX_LEN)
                    .unwrap_or(raw)
                    .to_owned(),
                qualifier: None,
            })
        }
        e => RefError::Invalid(validation_message("functionName", raw, e)),
    })?;
    if let Some(region) = &r.region
        && region != &scope.region
    {
        return Err(RefError::OtherRegion {
            given: region.clone(),
            scope: scope.region.clone(),
        });
    }
    if let Some(account) = &r.account
        && account != &scope.account
    {
        return Err(RefError::OtherAccount {
            caller: scope.clone(),
            raw: raw.to_owned(),
        });
    }
    Ok(r)
}

/// The pattern AWS reports for a malformed `Qualifier` parameter.
pub const QUALIFIER_PARAM_PATTERN: &str = "\\$(LATEST(\\.PUBLISHED)?)|[a-zA-Z0-9-_$]+";

/// Parses a `Qualifier` parameter. `$latest` and friends are well formed but
/// name no version (they resolve to an alias that does not exist).
pub fn parse_qualifier_param(raw: &str) -> Result<Qualifier, RefError> {
    let bad = || {
        let e = if raw.len() > 128 {
            NameError::TooLong { max: 128 }
        } else {
            NameError::Pattern {
                pattern: QUALIFIER_PARAM_PATTERN,
            }
        };
        RefError::Invalid(validation_message("qualifier", raw, e))
    };
    if raw.is_empty() || raw.len() > 128 {
        return Err(bad());
    }
    if raw.starts_with('$') && raw != Qualifier::LATEST {
        return Ok(Qualifier::Alias(raw.to_owned()));
    }
    Qualifier::parse(raw).map_err(|_| bad())
}

/// Combines the qualifier a reference carries (`name:prod`) with a separate
/// `Qualifier` parameter; they must agree when both are given.
pub fn qualifier_of(r: &FunctionRef, param: Option<&str>) -> Result<Option<Qualifier>, RefError> {
    let param = param.map(parse_qualifier_param).transpose()?;
    match (&r.qualifier, param) {
        (Some(a), Some(b)) if *a != b => Err(RefError::QualifierMismatch),
        (a, b) => Ok(a.clone().or(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AccountId, Region};

    fn scope() -> Scope {
        Scope::new(
            AccountId::parse("123456789012").unwrap(),
            Region::parse("us-east-1").unwrap(),
        )
    }

    #[test]
    fn references_resolve_in_the_callers_scope_only() {
        let s = scope();
        assert_eq!(resolve_ref(&s, "f").unwrap().name.as_str(), "f");
        let full =
            resolve_ref(&s, "arn:aws:lambda:us-east-1:123456789012:function:f:prod").unwrap();
        assert_eq!(full.qualifier, Some(Qualifier::Alias("prod".into())));
        assert!(matches!(
            resolve_ref(&s, "arn:aws:lambda:eu-west-1:123456789012:function:f"),
            Err(RefError::OtherRegion { .. })
        ));
        let other = resolve_ref(&s, "210987654321:function:f").unwrap_err();
        assert_eq!(
            other.to_string(),
            "User: arn:aws:iam::123456789012:root is not authorized to access resource: 210987654321:function:f"
        );
        assert!(matches!(resolve_ref(&s, "a b"), Err(RefError::Invalid(_))));
    }

    #[test]
    fn errors_name_the_partition_of_the_callers_region() {
        let cn = Scope::new(
            AccountId::parse("123456789012").unwrap(),
            Region::parse("cn-north-1").unwrap(),
        );
        let ok = resolve_ref(&cn, "arn:aws-cn:lambda:cn-north-1:123456789012:function:f").unwrap();
        assert_eq!(ok.name.as_str(), "f");
        assert_eq!(
            resolve_ref(&cn, "210987654321:function:f")
                .unwrap_err()
                .to_string(),
            "User: arn:aws-cn:iam::123456789012:root is not authorized to access resource: 210987654321:function:f"
        );
        let nf = FunctionNotFound::new(&cn, &FunctionName::parse("f").unwrap(), None);
        assert_eq!(
            nf.to_string(),
            "Function not found: arn:aws-cn:lambda:cn-north-1:123456789012:function:f"
        );
    }

    #[test]
    fn an_over_long_name_is_not_found_and_invoke_names_latest() {
        let long = "x".repeat(65);
        let Err(RefError::NotFound(nf)) = resolve_ref(&scope(), &long) else {
            panic!("expected not found");
        };
        assert_eq!(
            nf.clone().or_qualifier("$LATEST").to_string(),
            format!(
                "Function not found: arn:aws:lambda:us-east-1:123456789012:function:{long}:$LATEST"
            )
        );
        assert!(!nf.to_string().ends_with(":$LATEST"));
    }

    #[test]
    fn qualifiers_from_the_name_and_the_parameter_must_agree() {
        let r = resolve_ref(&scope(), "f:1").unwrap();
        assert_eq!(
            qualifier_of(&r, Some("1")).unwrap(),
            Some(Qualifier::Version(1))
        );
        assert_eq!(
            qualifier_of(&r, Some("2")),
            Err(RefError::QualifierMismatch)
        );
        let bare = resolve_ref(&scope(), "f").unwrap();
        assert_eq!(qualifier_of(&bare, None).unwrap(), None);
        assert!(matches!(
            qualifier_of(&bare, Some("a b")),
            Err(RefError::Invalid(_))
        ));
        assert!(matches!(
            qualifier_of(&bare, Some("")),
            Err(RefError::Invalid(_))
        ));
        assert_eq!(
            qualifier_of(&bare, Some("$latest")).unwrap(),
            Some(Qualifier::Alias("$latest".into()))
        );
    }
}
