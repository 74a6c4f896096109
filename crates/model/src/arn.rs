//! ARNs and the (account, region) scope every resource lives in.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::names::{AccountId, FunctionName, Qualifier, Region};

/// The partition every ARN this platform issues uses.
pub const PARTITION: &str = "aws";

/// Where a resource lives: one account in one region. Every stored resource is
/// keyed by its scope, so accounts never see each other's functions.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Scope {
    pub account: AccountId,
    pub region: Region,
}

impl Scope {
    pub fn new(account: AccountId, region: Region) -> Self {
        Self { account, region }
    }

    pub fn function_arn(&self, name: &FunctionName) -> FunctionArn {
        FunctionArn {
            scope: self.clone(),
            name: name.clone(),
            qualifier: None,
        }
    }
}

/// `arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FunctionArn {
    pub scope: Scope,
    pub name: FunctionName,
    pub qualifier: Option<Qualifier>,
}

impl FunctionArn {
    pub fn qualified(mut self, q: Qualifier) -> Self {
        self.qualifier = Some(q);
        self
    }
}

impl fmt::Display for FunctionArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:{PARTITION}:lambda:{}:{}:function:{}",
            self.scope.region, self.scope.account, self.name
        )?;
        if let Some(q) = &self.qualifier {
            write!(f, ":{q}")?;
        }
        Ok(())
    }
}

/// A resource named by an ARN in a tagging call (`/2017-03-31/tags/{ARN}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResourceArn {
    Function(FunctionArn),
}

impl ResourceArn {
    /// Parses an ARN naming a taggable resource. Only functions are taggable
    /// today; the error is the constraint text AWS reports.
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        const PATTERN: &str = "arn:(aws[a-zA-Z-]*):lambda:(eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\\d{1}:\\d{12}:(function:[a-zA-Z0-9-_]+(:(\\$LATEST|[a-zA-Z0-9-_]+))?|code-signing-config:csc-[a-z0-9]{17}|event-source-mapping:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|(capacity-provider|network-connector):[a-zA-Z0-9-_]{1,64})";
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() < 7
            || parts[0] != "arn"
            || !parts[1].starts_with("aws")
            || parts[2] != "lambda"
            || parts[5] != "function"
            || parts.len() > 8
        {
            return Err(PATTERN);
        }
        let region = Region::parse(parts[3]).map_err(|_| PATTERN)?;
        let account = AccountId::parse(parts[4]).map_err(|_| PATTERN)?;
        let name = FunctionName::parse(parts[6]).map_err(|_| PATTERN)?;
        let qualifier = match parts.get(7) {
            Some(q) => Some(Qualifier::parse(q).map_err(|_| PATTERN)?),
            None => None,
        };
        Ok(Self::Function(FunctionArn {
            scope: Scope { account, region },
            name,
            qualifier,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> Scope {
        Scope::new(
            AccountId::parse("123456789012").unwrap(),
            Region::parse("eu-west-1").unwrap(),
        )
    }

    #[test]
    fn formats_function_arns() {
        let name = FunctionName::parse("f").unwrap();
        let arn = scope().function_arn(&name);
        assert_eq!(
            arn.to_string(),
            "arn:aws:lambda:eu-west-1:123456789012:function:f"
        );
        assert_eq!(
            arn.qualified(Qualifier::Latest).to_string(),
            "arn:aws:lambda:eu-west-1:123456789012:function:f:$LATEST"
        );
    }

    #[test]
    fn parses_resource_arns() {
        let ResourceArn::Function(f) =
            ResourceArn::parse("arn:aws:lambda:eu-west-1:123456789012:function:f").unwrap();
        assert_eq!(f.scope, scope());
        assert_eq!(f.name.as_str(), "f");
        for bad in [
            "arn:aws:lambda:eu-west-1:123456789012:layer:f",
            "arn:aws:lambda:eu-west-1:12345:function:f",
            "function:f",
            "arn:aws:lambda:eu-west-1:123456789012:function:f:1:2",
        ] {
            assert!(ResourceArn::parse(bad).is_err(), "{bad}");
        }
    }
}
