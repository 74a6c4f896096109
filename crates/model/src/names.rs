//! Names and identifiers: accounts, regions, function names, qualifiers, and the
//! many ways a caller may name a function (name, partial ARN, full ARN).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a name or identifier was rejected. The `Display` text is the constraint AWS
/// reports in its `ValidationException` message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("Member must have length less than or equal to {max}")]
    TooLong { max: usize },
    #[error("Member must have length greater than or equal to {min}")]
    TooShort { min: usize },
    #[error("Member must satisfy regular expression pattern: {pattern}")]
    Pattern { pattern: &'static str },
}

/// A 12-digit AWS account id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccountId(String);

impl AccountId {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        if is_account_id(s) {
            Ok(Self(s.to_owned()))
        } else {
            Err(NameError::Pattern { pattern: "\\d{12}" })
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AccountId {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, NameError> {
        Self::parse(&s)
    }
}
impl From<AccountId> for String {
    fn from(a: AccountId) -> String {
        a.0
    }
}
impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// A region name. AWS's own (`us-east-1`, `us-gov-west-1`, `cn-north-1`) and
/// any other a client sends (`local`, `mars-north-9`), as SDKs allow them:
/// a DNS label of letters, digits and hyphens (1 to 63, not starting or
/// ending with a hyphen). Each region is its own namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Region(String);

impl Region {
    /// What a region name must look like (the SDKs' host-label rule).
    pub const PATTERN: &'static str = "[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?";
    pub const MAX_LEN: usize = 63;

    pub fn parse(s: &str) -> Result<Self, NameError> {
        if is_region_name(s) {
            Ok(Self(s.to_owned()))
        } else {
            Err(NameError::Pattern {
                pattern: Self::PATTERN,
            })
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The ARN partition of the region, as AWS assigns them: `aws-cn` for
    /// `cn-*`, `aws-us-gov` for `us-gov-*`, the isolated partitions for
    /// theirs, and `aws` for every other name (including made-up ones).
    pub fn partition(&self) -> &'static str {
        let r = self.0.as_str();
        const PARTITIONS: &[(&str, &str)] = &[
            ("cn-", "aws-cn"),
            ("us-gov-", "aws-us-gov"),
            ("us-iso-", "aws-iso"),
            ("us-isob-", "aws-iso-b"),
            ("eu-isoe-", "aws-iso-e"),
            ("us-isof-", "aws-iso-f"),
            ("eusc-", "aws-eusc"),
        ];
        PARTITIONS
            .iter()
            .find(|(prefix, _)| r.starts_with(prefix))
            .map_or("aws", |(_, partition)| partition)
    }
}

impl TryFrom<String> for Region {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, NameError> {
        Self::parse(&s)
    }
}
impl From<Region> for String {
    fn from(r: Region) -> String {
        r.0
    }
}
impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Any region name: a DNS label.
fn is_region_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= Region::MAX_LEN
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        && b.first() != Some(&b'-')
        && b.last() != Some(&b'-')
}

/// A region in AWS's own shape (`[a-z]{2}`, optional `-gov`/`-iso[a-z]?`,
/// `-[a-z]+-\d`): how a bare `region:name` reference is told from `name:alias`.
fn is_aws_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let lower = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase());
    let rest = match parts.split_first() {
        Some((h, r)) if h.len() == 2 && lower(h) => r,
        _ => return false,
    };
    let rest = match rest.first() {
        Some(&p) if p == "gov" || (p.starts_with("iso") && p.len() <= 4 && lower(p)) => &rest[1..],
        _ => rest,
    };
    matches!(rest, [name, digit] if lower(name) && digit.len() == 1 && digit.as_bytes()[0].is_ascii_digit())
}

/// A bare function name: 1 to 64 of `[a-zA-Z0-9-_]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FunctionName(String);

impl FunctionName {
    pub const MAX_LEN: usize = 64;

    pub fn parse(s: &str) -> Result<Self, NameError> {
        if s.is_empty() {
            return Err(NameError::TooShort { min: 1 });
        }
        if s.len() > Self::MAX_LEN {
            return Err(NameError::TooLong { max: Self::MAX_LEN });
        }
        if !s.bytes().all(is_name_byte) {
            return Err(NameError::Pattern {
                pattern: FunctionRef::PATTERN,
            });
        }
        Ok(Self(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for FunctionName {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, NameError> {
        Self::parse(&s)
    }
}
impl From<FunctionName> for String {
    fn from(n: FunctionName) -> String {
        n.0
    }
}
impl fmt::Display for FunctionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// Which version of a function a call refers to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Qualifier {
    /// `$LATEST`, the unpublished, mutable version.
    Latest,
    /// A published version number (1, 2, ...).
    Version(u64),
    /// An alias name (never all digits).
    Alias(String),
}

impl Qualifier {
    pub const LATEST: &'static str = "$LATEST";
    pub const PATTERN: &'static str = "(|[a-zA-Z0-9$_-]+)";

    pub fn parse(s: &str) -> Result<Self, NameError> {
        if s.is_empty() {
            return Err(NameError::TooShort { min: 1 });
        }
        if s.len() > 128 {
            return Err(NameError::TooLong { max: 128 });
        }
        if s == Self::LATEST {
            return Ok(Self::Latest);
        }
        if s.bytes().all(|b| b.is_ascii_digit()) {
            return s
                .parse::<u64>()
                .map(Self::Version)
                .map_err(|_| NameError::Pattern {
                    pattern: Self::PATTERN,
                });
        }
        if s.bytes().all(is_name_byte) {
            return Ok(Self::Alias(s.to_owned()));
        }
        Err(NameError::Pattern {
            pattern: Self::PATTERN,
        })
    }
}

impl fmt::Display for Qualifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Latest => f.write_str(Self::LATEST),
            Self::Version(v) => write!(f, "{v}"),
            Self::Alias(a) => f.write_str(a),
        }
    }
}

/// A function as a caller named it in `{FunctionName}`: a name, a partial ARN
/// (`123456789012:function:name`) or a full ARN, each optionally qualified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionRef {
    pub name: FunctionName,
    pub account: Option<AccountId>,
    pub region: Option<Region>,
    pub qualifier: Option<Qualifier>,
}

impl FunctionRef {
    /// The pattern AWS reports when a `FunctionName` parameter is malformed.
    pub const PATTERN: &'static str = "(arn:(aws[a-zA-Z-]*)?:lambda:)?((eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\\d{1}:)?(\\d{12}:)?(function:)?([a-zA-Z0-9-_]+)(:(\\$LATEST|[a-zA-Z0-9-_]+))?";
    pub const MAX_LEN: usize = 140;

    /// Parses a `FunctionName` path or body parameter.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        if s.is_empty() {
            return Err(NameError::TooShort { min: 1 });
        }
        if s.len() > Self::MAX_LEN {
            return Err(NameError::TooLong { max: Self::MAX_LEN });
        }
        let pattern = NameError::Pattern {
            pattern: Self::PATTERN,
        };
        let tokens: Vec<&str> = s.split(':').collect();
        let mut i = 0;
        let is_arn = tokens[0] == "arn";
        if is_arn {
            if tokens.len() < 4 || !crate::arn::is_partition(tokens[1]) || tokens[2] != "lambda" {
                return Err(pattern);
            }
            i = 3;
        }
        let remaining = |i: usize| tokens.len() - i;
        let mut region = None;
        // Any region name where a region must stand (before
        // `<account>:function:`); elsewhere only AWS's shape, so that
        // `name:alias` stays a name and a qualifier.
        let region_here = |i: usize| {
            let t = tokens[i];
            let positional = remaining(i) > 2
                && is_account_id(tokens[i + 1])
                && tokens[i + 2] == "function"
                && is_region_name(t);
            positional || (remaining(i) > 1 && is_aws_region(t))
        };
        if region_here(i) {
            region = Some(Region(tokens[i].to_owned()));
            i += 1;
        }
        let mut account = None;
        if remaining(i) > 1 && is_account_id(tokens[i]) {
            account = Some(AccountId(tokens[i].to_owned()));
            i += 1;
        }
        if remaining(i) > 1 && tokens[i] == "function" {
            i += 1;
        } else if is_arn || account.is_some() {
            return Err(pattern);
        }
        if remaining(i) == 0 {
            return Err(pattern);
        }
        let name_token = tokens[i];
        let name = FunctionName::parse(name_token).map_err(|e| match e {
            // A well-formed but over-long name is reported as such (callers
            // answer "not found" or a length error, as AWS does per operation).
            NameError::TooLong { .. } => e,
            _ => pattern.clone(),
        })?;
        i += 1;
        let qualifier = match remaining(i) {
            0 => None,
            1 => Some(Qualifier::parse(tokens[i]).map_err(|_| pattern.clone())?),
            _ => return Err(pattern),
        };
        Ok(Self {
            name,
            account,
            region,
            qualifier,
        })
    }
}

/// Builds AWS's `ValidationException` message from one or more failed constraints,
/// e.g. `1 validation error detected: Value 'x' at 'functionName' failed to satisfy
/// constraint: Member must ...`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ValidationErrors(Vec<String>);

impl ValidationErrors {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `value` at `field` (AWS's camelCase member path) failed `constraint`.
    pub fn push(&mut self, field: &str, value: &str, constraint: impl fmt::Display) {
        self.0.push(format!(
            "Value '{value}' at '{field}' failed to satisfy constraint: {constraint}"
        ));
    }

    /// Records a value that is shown as `null` in the message (AWS prints null for
    /// missing required members).
    pub fn push_null(&mut self, field: &str, constraint: impl fmt::Display) {
        self.0.push(format!(
            "Value null at '{field}' failed to satisfy constraint: {constraint}"
        ));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(())` when nothing failed, else the full message.
    pub fn into_result(self) -> Result<(), String> {
        if self.0.is_empty() {
            return Ok(());
        }
        let n = self.0.len();
        let noun = if n == 1 { "error" } else { "errors" };
        Err(format!(
            "{n} validation {noun} detected: {}",
            self.0.join("; ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(
        input: &str,
        name: &str,
        account: Option<&str>,
        region: Option<&str>,
        q: Option<&str>,
    ) {
        let r = FunctionRef::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(r.name.as_str(), name, "{input}");
        assert_eq!(r.account.as_ref().map(|a| a.as_str()), account, "{input}");
        assert_eq!(r.region.as_ref().map(|a| a.as_str()), region, "{input}");
        assert_eq!(r.qualifier.map(|q| q.to_string()).as_deref(), q, "{input}");
    }

    #[test]
    fn function_ref_forms() {
        check("my-function", "my-function", None, None, None);
        check("my_function:prod", "my_function", None, None, Some("prod"));
        check("f:$LATEST", "f", None, None, Some("$LATEST"));
        check("f:7", "f", None, None, Some("7"));
        check(
            "123456789012:function:f",
            "f",
            Some("123456789012"),
            None,
            None,
        );
        check(
            "123456789012:function:f:3",
            "f",
            Some("123456789012"),
            None,
            Some("3"),
        );
        check(
            "arn:aws:lambda:us-west-2:123456789012:function:my-function",
            "my-function",
            Some("123456789012"),
            Some("us-west-2"),
            None,
        );
        check(
            "arn:aws:lambda:us-gov-west-1:123456789012:function:f:live",
            "f",
            Some("123456789012"),
            Some("us-gov-west-1"),
            Some("live"),
        );
    }

    #[test]
    fn function_ref_rejects() {
        for bad in [
            "",
            "has space",
            "a:b:c:d:e",
            "arn:aws:lambda:us-east-1:123456789012:function:",
            "arn:aws:s3:us-east-1:123456789012:function:f",
            "arn:aws:lambda:us-east-1:123456789012:layer:f",
            "f:bad/qual",
            "123456789012:f",
            &"a".repeat(141),
        ] {
            assert!(FunctionRef::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            FunctionRef::parse(&"a".repeat(141)),
            Err(NameError::TooLong { max: 140 })
        );
        assert_eq!(
            FunctionRef::parse(&"a".repeat(65)),
            Err(NameError::TooLong { max: 64 })
        );
    }

    #[test]
    fn names_and_qualifiers() {
        assert!(FunctionName::parse(&"a".repeat(64)).is_ok());
        assert_eq!(
            FunctionName::parse(&"a".repeat(65)),
            Err(NameError::TooLong { max: 64 })
        );
        assert_eq!(Qualifier::parse("$LATEST"), Ok(Qualifier::Latest));
        assert_eq!(Qualifier::parse("12"), Ok(Qualifier::Version(12)));
        assert_eq!(
            Qualifier::parse("live"),
            Ok(Qualifier::Alias("live".into()))
        );
        assert!(Qualifier::parse("a b").is_err());
        assert!(Qualifier::parse("$PREV").is_err());
    }

    #[test]
    fn regions_and_accounts() {
        for ok in [
            "us-east-1",
            "eu-west-3",
            "us-gov-west-1",
            "us-isob-east-1",
            "ap-southeast-2",
        ] {
            assert!(Region::parse(ok).is_ok(), "{ok}");
        }
        // Names other tools make up are regions too.
        for ok in [
            "local",
            "mars-north-9",
            "us-east",
            "useast1",
            "x",
            "eu-west-12",
        ] {
            assert!(Region::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-east-1",
            "east-1-",
            "us_east_1",
            "us:east",
            "us/east",
            "us east",
            &"a".repeat(64),
        ] {
            assert!(Region::parse(bad).is_err(), "{bad}");
        }
        assert!(Region::parse(&"a".repeat(63)).is_ok());
        assert!(AccountId::parse("000000000000").is_ok());
        assert!(AccountId::parse("12345678901").is_err());
        assert!(AccountId::parse("12345678901a").is_err());
    }

    #[test]
    fn partitions_follow_the_region() {
        let p = |r: &str| Region::parse(r).unwrap().partition();
        assert_eq!(p("us-east-1"), "aws");
        assert_eq!(p("cn-north-1"), "aws-cn");
        assert_eq!(p("cn-northwest-1"), "aws-cn");
        assert_eq!(p("us-gov-west-1"), "aws-us-gov");
        assert_eq!(p("us-iso-east-1"), "aws-iso");
        assert_eq!(p("us-isob-east-1"), "aws-iso-b");
        assert_eq!(p("local"), "aws");
        assert_eq!(p("mars-north-9"), "aws");
    }

    #[test]
    fn any_region_in_a_full_arn_but_only_aws_shaped_ones_bare() {
        let r = FunctionRef::parse("arn:aws:lambda:local:123456789012:function:f:live").unwrap();
        assert_eq!(r.region.unwrap().as_str(), "local");
        assert_eq!(r.account.unwrap().as_str(), "123456789012");
        assert_eq!(r.name.as_str(), "f");
        assert_eq!(r.qualifier, Some(Qualifier::Alias("live".into())));
        let r = FunctionRef::parse("arn:aws-cn:lambda:cn-north-1:123456789012:function:f").unwrap();
        assert_eq!(r.region.unwrap().as_str(), "cn-north-1");
        let r = FunctionRef::parse("mars-north-9:123456789012:function:f").unwrap();
        assert_eq!(r.region.unwrap().as_str(), "mars-north-9");
        // Without an account after it, a made-up name is the function's.
        let r = FunctionRef::parse("local:prod").unwrap();
        assert_eq!((r.name.as_str(), r.region), ("local", None));
        assert_eq!(r.qualifier, Some(Qualifier::Alias("prod".into())));
        let r = FunctionRef::parse("us-east-1:f").unwrap();
        assert_eq!(r.region.unwrap().as_str(), "us-east-1");
        assert!(FunctionRef::parse("arn:aws:lambda:bad_region:123456789012:function:f").is_err());
    }

    #[test]
    fn validation_message() {
        let mut v = ValidationErrors::new();
        v.push(
            "memorySize",
            "64",
            "Member must have value greater than or equal to 128",
        );
        assert_eq!(
            v.clone().into_result().unwrap_err(),
            "1 validation error detected: Value '64' at 'memorySize' failed to satisfy constraint: Member must have value greater than or equal to 128"
        );
        v.push(
            "timeout",
            "0",
            "Member must have value greater than or equal to 1",
        );
        assert!(
            v.into_result()
                .unwrap_err()
                .starts_with("2 validation errors detected: ")
        );
        assert_eq!(ValidationErrors::new().into_result(), Ok(()));
    }
}
