//! ARNs and the (account, region) scope every resource lives in.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::names::{AccountId, FunctionName, Qualifier, Region};

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

    /// The ARN partition of the scope's region (`aws`, `aws-cn`, `aws-us-gov`...).
    pub fn partition(&self) -> &'static str {
        self.region.partition()
    }

    /// `arn:<partition>:iam::<account>:root`: the account as a principal.
    pub fn account_root(&self) -> String {
        format!("arn:{}:iam::{}:root", self.partition(), self.account)
    }

    pub fn function_arn(&self, name: &FunctionName) -> FunctionArn {
        FunctionArn {
            scope: self.clone(),
            name: name.clone(),
            qualifier: None,
        }
    }
}

/// `arn:<partition>:lambda:<region>:<account>:function:<name>[:<qualifier>]`.
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
            "arn:{}:lambda:{}:{}:function:{}",
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
            || !is_partition(parts[1])
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

/// An ARN's partition field as AWS's patterns allow it (`aws[a-zA-Z-]*`):
/// `aws`, `aws-cn`, `aws-us-gov`, `aws-iso-b`...
pub fn is_partition(s: &str) -> bool {
    s.strip_prefix("aws")
        .is_some_and(|rest| rest.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-'))
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
    fn arns_carry_the_partition_of_their_region() {
        let name = FunctionName::parse("f").unwrap();
        let account = AccountId::parse("123456789012").unwrap();
        let arn = |region: &str| {
            Scope::new(account.clone(), Region::parse(region).unwrap())
                .function_arn(&name)
                .to_string()
        };
        assert_eq!(
            arn("cn-north-1"),
            "arn:aws-cn:lambda:cn-north-1:123456789012:function:f"
        );
        assert_eq!(
            arn("us-gov-east-1"),
            "arn:aws-us-gov:lambda:us-gov-east-1:123456789012:function:f"
        );
        assert_eq!(
            arn("mars-north-9"),
            "arn:aws:lambda:mars-north-9:123456789012:function:f"
        );
        let cn = Scope::new(account.clone(), Region::parse("cn-north-1").unwrap());
        assert_eq!(cn.account_root(), "arn:aws-cn:iam::123456789012:root");
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
        for (arn, partition, region) in [
            (
                "arn:aws-cn:lambda:cn-north-1:123456789012:function:f",
                "aws-cn",
                "cn-north-1",
            ),
            (
                "arn:aws-us-gov:lambda:us-gov-west-1:123456789012:function:f",
                "aws-us-gov",
                "us-gov-west-1",
            ),
            (
                "arn:aws:lambda:local:123456789012:function:f",
                "aws",
                "local",
            ),
        ] {
            let ResourceArn::Function(f) = ResourceArn::parse(arn).unwrap();
            assert_eq!(f.scope.region.as_str(), region);
            assert_eq!(f.scope.partition(), partition);
            assert_eq!(f.to_string(), arn, "formats back as it was given");
        }
        for bad in [
            "arn:aws_cn:lambda:eu-west-1:123456789012:function:f",
            "arn:gcp:lambda:eu-west-1:123456789012:function:f",
            "arn:aws:lambda:eu-west-1:123456789012:layer:f",
            "arn:aws:lambda:eu-west-1:12345:function:f",
            "function:f",
            "arn:aws:lambda:eu-west-1:123456789012:function:f:1:2",
        ] {
            assert!(ResourceArn::parse(bad).is_err(), "{bad}");
        }
    }
}
