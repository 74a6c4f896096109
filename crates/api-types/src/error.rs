//! AWS's REST-JSON error body. The error code travels in the
//! `x-amzn-ErrorType` header; the body carries `Type` and the message, whose key
//! is `Message` for some codes and `message` for others (as recorded against AWS).

use serde_json::{Map, Value};

/// An error body ready to serialize.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorBody<'a> {
    pub code: &'a str,
    pub message: &'a str,
    /// `User` for caller errors, `Service` for the platform's own failures.
    pub fault: &'static str,
    /// Extra members such as `Reason` on `TooManyRequestsException`.
    pub extra: Vec<(&'static str, Value)>,
}

impl ErrorBody<'_> {
    /// Codes whose body spells the message member `Message` (from the service
    /// model); every other code, modeled or not, uses `message`.
    fn capital_message(code: &str) -> bool {
        matches!(
            code,
            "ResourceNotFoundException"
                | "ServiceException"
                | "CodeSigningConfigNotFoundException"
                | "CodeVerificationFailedException"
                | "InvalidCodeSignatureException"
                | "InvalidRuntimeException"
                | "InvalidZipFileException"
                | "NoPublishedVersionException"
                | "PublicPolicyException"
                | "RecursiveInvocationException"
                | "ResourceInUseException"
                | "ServiceQuotaExceededException"
                | "SubnetIPAddressLimitReachedException"
                | "DurableExecutionAlreadyStartedException"
                | "CallbackTimeoutException"
        ) || [
            "EC2",
            "EFS",
            "ENI",
            "KMS",
            "S3Files",
            "SnapStart",
            "InvalidSecurityGroup",
            "InvalidSubnet",
        ]
        .iter()
        .any(|p| code.starts_with(p))
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut m = Map::new();
        for (k, v) in &self.extra {
            m.insert((*k).to_owned(), v.clone());
        }
        m.insert("Type".into(), Value::String(self.fault.into()));
        let key = if Self::capital_message(self.code) {
            "Message"
        } else {
            "message"
        };
        m.insert(key.into(), Value::String(self.message.into()));
        serde_json::to_vec(&Value::Object(m)).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let nf = ErrorBody {
            code: "ResourceNotFoundException",
            message: "Function not found: x",
            fault: "User",
            extra: vec![],
        };
        assert_eq!(
            String::from_utf8(nf.to_json()).unwrap(),
            r#"{"Type":"User","Message":"Function not found: x"}"#
        );
        let throttle = ErrorBody {
            code: "TooManyRequestsException",
            message: "Rate Exceeded.",
            fault: "User",
            extra: vec![(
                "Reason",
                Value::String("ConcurrentInvocationLimitExceeded".into()),
            )],
        };
        assert_eq!(
            String::from_utf8(throttle.to_json()).unwrap(),
            r#"{"Reason":"ConcurrentInvocationLimitExceeded","Type":"User","message":"Rate Exceeded."}"#
        );
    }
}
