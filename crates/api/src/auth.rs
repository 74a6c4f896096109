//! Who is calling: SigV4 verification of every request against the keyring.
//!
//! The keyring maps access key ids to their secret and the account they belong
//! to. A verified request carries a [`Caller`] (its account and the region it
//! signed for) in its extensions; handlers act within that scope only.

use std::collections::HashMap;
use std::sync::Mutex;

use model::{AccountId, Region, Scope};
use serde::Deserialize;

use crate::error::ApiError;

/// One access key.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct KeyEntry {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub account_id: AccountId,
    /// Required in `X-Amz-Security-Token` when set (temporary credentials).
    #[serde(default)]
    pub session_token: Option<String>,
}

/// Why a keyring could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("credentials file is not valid TOML of the expected shape: {0}")]
    Parse(String),
    #[error("access key {0} appears twice")]
    Duplicate(String),
    #[error("access key {0} is invalid: {1}")]
    Invalid(String, &'static str),
}

#[derive(Debug, Deserialize)]
struct KeyringFile {
    #[serde(default, rename = "key")]
    keys: Vec<KeyEntry>,
}

/// (access key id, date, region, service): what a derived signing key is for.
type DerivedKeyId = (String, String, String, String);

/// The access keys the server accepts.
#[derive(Debug, Default)]
pub struct Keyring {
    keys: HashMap<String, KeyEntry>,
    /// Signing keys derived per (access key, date, region, service): deriving
    /// one costs four HMACs, and a key is good for a whole day.
    derived: Mutex<HashMap<DerivedKeyId, [u8; 32]>>,
}

impl Keyring {
    pub fn new(entries: Vec<KeyEntry>) -> Result<Self, KeyringError> {
        let mut keys = HashMap::new();
        for e in entries {
            if e.access_key_id.is_empty() || e.access_key_id.contains('/') {
                return Err(KeyringError::Invalid(
                    e.access_key_id,
                    "access key ids are non-empty and contain no '/'",
                ));
            }
            if e.secret_access_key.is_empty() {
                return Err(KeyringError::Invalid(
                    e.access_key_id,
                    "the secret is empty",
                ));
            }
            let id = e.access_key_id.clone();
            if keys.insert(id.clone(), e).is_some() {
                return Err(KeyringError::Duplicate(id));
            }
        }
        Ok(Self {
            keys,
            derived: Mutex::new(HashMap::new()),
        })
    }

    /// Parses a credentials file:
    ///
    /// ```toml
    /// [[key]]
    /// access_key_id = "AKIA..."
    /// secret_access_key = "..."
    /// account_id = "123456789012"
    /// ```
    pub fn from_toml(text: &str) -> Result<Self, KeyringError> {
        let file: KeyringFile =
            toml::from_str(text).map_err(|e| KeyringError::Parse(e.to_string()))?;
        Self::new(file.keys)
    }

    pub fn get(&self, access_key: &str) -> Option<&KeyEntry> {
        self.keys.get(access_key)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    fn signing_key(&self, entry: &KeyEntry, auth: &sigv4::Auth) -> [u8; 32] {
        let k = (
            entry.access_key_id.clone(),
            auth.scope_date.clone(),
            auth.region.clone(),
            auth.service.clone(),
        );
        if let Ok(cache) = self.derived.lock()
            && let Some(key) = cache.get(&k)
        {
            return *key;
        }
        let key = sigv4::signing_key(
            &entry.secret_access_key,
            &auth.scope_date,
            &auth.region,
            &auth.service,
        );
        if let Ok(mut cache) = self.derived.lock() {
            if cache.len() > 10_000 {
                cache.clear();
            }
            cache.insert(k, key);
        }
        key
    }

    /// Verifies a request's signature and says who sent it.
    pub fn authenticate(
        &self,
        req: &sigv4::Request<'_>,
        body: &[u8],
        now_s: i64,
    ) -> Result<Caller, ApiError> {
        let auth = sigv4::parse(req)?;
        let entry = self
            .get(&auth.access_key)
            .ok_or_else(ApiError::unrecognized_client)?;
        if let Some(expected) = &entry.session_token {
            let given = auth.security_token.as_deref().unwrap_or("");
            let signed = auth
                .signed_headers
                .iter()
                .any(|h| h == "x-amz-security-token")
                || matches!(auth.style, sigv4::Style::Query { .. });
            if given.as_bytes() != expected.as_bytes() || !signed {
                return Err(ApiError::unrecognized_client());
            }
        } else if auth.security_token.is_some() {
            return Err(ApiError::unrecognized_client());
        }
        let region = Region::parse(&auth.region).map_err(|_| {
            ApiError::from(sigv4::SigError::BadScope(
                "Credential should be scoped to a valid region. ".into(),
            ))
        })?;
        let expect = sigv4::Expectation {
            service: "lambda",
            region: None,
            now_s,
            max_skew_s: sigv4::DEFAULT_SKEW_S,
        };
        // The Lambda API, and the services served beside it.
        if !matches!(
            auth.service.as_str(),
            "lambda" | "logs" | "sns" | "scheduler"
        ) {
            return Err(sigv4::SigError::BadScope(format!(
                "Credential should be scoped to correct service: '{}'. ",
                expect.service
            ))
            .into());
        }
        sigv4::check_time(&auth, &expect)?;
        if !auth.signed_headers.iter().any(|h| h == "host") {
            return Err(sigv4::SigError::Incomplete(
                "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.".into(),
            )
            .into());
        }
        let key = self.signing_key(entry, &auth);
        sigv4::verify_with_key(req, &auth, &key, &sigv4::sha256_hex(body))?;
        Ok(Caller {
            scope: Scope::new(entry.account_id.clone(), region),
            access_key: entry.access_key_id.clone(),
        })
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub scope: Scope,
    pub access_key: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyring_file() {
        let k = Keyring::from_toml(
            r#"
            [[key]]
            access_key_id = "AKIAONE"
            secret_access_key = "s1"
            account_id = "111111111111"
            [[key]]
            access_key_id = "AKIATWO"
            secret_access_key = "s2"
            account_id = "222222222222"
            session_token = "tok"
            "#,
        )
        .unwrap();
        assert_eq!(
            k.get("AKIATWO").unwrap().account_id.as_str(),
            "222222222222"
        );
        assert!(k.get("AKIATHREE").is_none());
        assert!(
            Keyring::from_toml(
                "[[key]]\naccess_key_id = \"A\"\nsecret_access_key = \"s\"\naccount_id = \"12\"\n"
            )
            .is_err()
        );
        let dup = "[[key]]\naccess_key_id = \"A\"\nsecret_access_key = \"s\"\naccount_id = \"111111111111\"\n";
        assert!(matches!(
            Keyring::from_toml(&format!("{dup}{dup}")),
            Err(KeyringError::Duplicate(_))
        ));
    }
}
