//! Where asynchronous outcomes and dead letters go.

use crate::{FunctionName, FunctionRef, Qualifier, Scope};

/// A destination or dead-letter target this platform can deliver to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A function, invoked asynchronously with the record (or the dead
    /// letter) as its event.
    Function {
        scope: Scope,
        name: FunctionName,
        qualifier: Option<Qualifier>,
    },
    /// An `http://` endpoint, sent the record (or the dead letter) by POST.
    Http(String),
}

/// Why a target string is not a destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestinationError {
    /// Neither an ARN nor an http:// URL.
    Malformed,
    /// An ARN of a service this platform does not run (SQS, SNS, ...).
    UnsupportedService(String),
}

impl Destination {
    /// A Lambda function ARN (`arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]`)
    /// or an `http://host[:port][/path]` URL.
    pub fn parse(s: &str) -> Result<Self, DestinationError> {
        if let Some(rest) = s.strip_prefix("http://") {
            let authority = rest.split(['/', '?']).next().unwrap_or_default();
            let ok = !authority.is_empty()
                && s.len() <= 2048
                && s.bytes().all(|b| b.is_ascii_graphic())
                && authority
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._:[]".contains(&b));
            return if ok {
                Ok(Self::Http(s.to_owned()))
            } else {
                Err(DestinationError::Malformed)
            };
        }
        let mut parts = s.splitn(6, ':');
        let (Some("arn"), Some(partition), Some(service)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(DestinationError::Malformed);
        };
        // AWS's pattern: arn:(aws[a-zA-Z0-9-]*):([a-zA-Z0-9\-])+:(<region>)?:(\d{12})?:(.*)
        let (Some(region), Some(account), Some(_resource)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(DestinationError::Malformed);
        };
        let word = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !partition.starts_with("aws")
            || !word(partition)
            || service.is_empty()
            || !word(service)
            || !(region.is_empty() || crate::Region::parse(region).is_ok())
            || !(account.is_empty()
                || (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())))
        {
            return Err(DestinationError::Malformed);
        }
        if service != "lambda" {
            return Err(DestinationError::UnsupportedService(service.to_owned()));
        }
        let r = FunctionRef::parse(s).map_err(|_| DestinationError::Malformed)?;
        match (r.account, r.region) {
            (Some(account), Some(region)) => Ok(Self::Function {
                scope: Scope::new(account, region),
                name: r.name,
                qualifier: r.qualifier,
            }),
            _ => Err(DestinationError::Malformed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_arns_and_http_urls() {
        let d = Destination::parse("arn:aws:lambda:us-east-1:123456789012:function:dest").unwrap();
        assert!(
            matches!(d, Destination::Function { ref name, qualifier: None, .. } if name.as_str() == "dest")
        );
        let d = Destination::parse("arn:aws:lambda:us-east-1:123456789012:function:dest:$LATEST")
            .unwrap();
        assert!(matches!(
            d,
            Destination::Function {
                qualifier: Some(Qualifier::Latest),
                ..
            }
        ));
        assert_eq!(
            Destination::parse("http://127.0.0.1:8080/hook?x=1"),
            Ok(Destination::Http("http://127.0.0.1:8080/hook?x=1".into()))
        );
        let d =
            Destination::parse("arn:aws-cn:lambda:cn-north-1:123456789012:function:dest").unwrap();
        assert!(
            matches!(d, Destination::Function { ref scope, .. } if scope.region.as_str() == "cn-north-1")
        );
        assert_eq!(
            Destination::parse("arn:aws:sqs:us-east-1:123456789012:q"),
            Err(DestinationError::UnsupportedService("sqs".into()))
        );
        for bad in [
            "dest",
            "http://",
            "http:///x",
            "http://a b/",
            "https://example.com/x",
            "arn:aws:lambda:us-east-1:123456789012:function:",
            "arn:aws:lambda:function:dest",
            "arn:aws:_-/!lambda:us-east-1:123456789012:function:x",
            "arn:aws:sqs:us-east-1:12345:q",
        ] {
            assert_eq!(
                Destination::parse(bad),
                Err(DestinationError::Malformed),
                "{bad}"
            );
        }
    }
}
