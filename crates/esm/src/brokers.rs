//! Where the brokers a mapping names live on this server.
//!
//! An Amazon MQ mapping names its broker by ARN and its credentials by a
//! Secrets Manager secret ARN (`SourceAccessConfigurations` `BASIC_AUTH`).
//! The operator maps both in a brokers file (TOML):
//!
//! ```toml
//! [[broker]]
//! arn = "arn:aws:mq:us-east-1:123456789012:broker:orders:b-0001"
//! url = "amqp://127.0.0.1:5672"
//!
//! [[secret]]
//! arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:rabbit"
//! username = "guest"
//! password = "guest"
//! ```
//!
//! The mapping's `VIRTUAL_HOST` (default `/`) selects the virtual host.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum BrokersError {
    #[error("cannot read the brokers file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the brokers file {path} is not valid: {reason}")]
    Invalid { path: String, reason: String },
}

#[derive(Debug, Clone, Deserialize)]
struct BrokerEntry {
    arn: String,
    url: String,
}

#[derive(Debug, Clone, Deserialize)]
struct SecretEntry {
    arn: String,
    username: String,
    password: String,
}

#[derive(Debug, Default, Deserialize)]
struct File {
    #[serde(default)]
    broker: Vec<BrokerEntry>,
    #[serde(default)]
    secret: Vec<SecretEntry>,
}

/// Credentials a secret ARN stands for.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The brokers and secrets this server knows.
#[derive(Debug, Clone, Default)]
pub struct Brokers {
    urls: HashMap<String, String>,
    secrets: HashMap<String, Credentials>,
}

impl Brokers {
    pub fn parse(text: &str, path: &str) -> Result<Self, BrokersError> {
        let file: File = toml::from_str(text).map_err(|e| BrokersError::Invalid {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        let mut out = Self::default();
        for b in file.broker {
            if !(b.url.starts_with("amqp://") || b.url.starts_with("amqps://")) {
                return Err(BrokersError::Invalid {
                    path: path.to_owned(),
                    reason: format!("broker {}: the url must be amqp:// or amqps://", b.arn),
                });
            }
            out.urls
                .insert(b.arn, b.url.trim_end_matches('/').to_owned());
        }
        for s in file.secret {
            out.secrets.insert(
                s.arn,
                Credentials {
                    username: s.username,
                    password: s.password,
                },
            );
        }
        Ok(out)
    }

    pub fn load(path: &Path) -> Result<Self, BrokersError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| BrokersError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text, &shown)
    }

    pub fn url(&self, broker_arn: &str) -> Option<&str> {
        self.urls.get(broker_arn).map(String::as_str)
    }

    pub fn secret(&self, arn: &str) -> Option<&Credentials> {
        self.secrets.get(arn)
    }

    /// The AMQP address of a broker, with credentials and virtual host.
    pub fn amqp_address(&self, broker_arn: &str, secret_arn: &str, vhost: &str) -> Option<String> {
        let url = self.url(broker_arn)?;
        let creds = self.secret(secret_arn)?;
        let (scheme, rest) = url.split_once("://")?;
        // Credentials in the broker's url give way to the secret's.
        let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
        let host = host.split('/').next().unwrap_or(host);
        Some(format!(
            "{scheme}://{}:{}@{host}/{}",
            encode(&creds.username),
            encode(&creds.password),
            encode(vhost)
        ))
    }
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_carry_encoded_credentials_and_vhost() {
        let b = Brokers::parse(
            r#"
[[broker]]
arn = "arn:aws:mq:us-east-1:123456789012:broker:b:b-1"
url = "amqp://ignored:x@127.0.0.1:5672/"
[[secret]]
arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:s"
username = "guest"
password = "p@ss/word"
"#,
            "test",
        )
        .unwrap();
        assert_eq!(
            b.amqp_address(
                "arn:aws:mq:us-east-1:123456789012:broker:b:b-1",
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:s",
                "/"
            )
            .unwrap(),
            "amqp://guest:p%40ss%2Fword@127.0.0.1:5672/%2F"
        );
        assert!(Brokers::parse("[[broker]]\narn = \"a\"\nurl = \"http://x\"\n", "t").is_err());
    }
}
