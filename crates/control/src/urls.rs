//! Function URL configurations (`CreateFunctionUrlConfig` and friends, API
//! version 2021-10-31): one URL per function or alias, never a version; its
//! id is derived from the account, region, function and qualifier, so a URL
//! deleted and created again answers at the same address.

use api_types as wire;
use model::names::ValidationErrors;
use model::{
    Cors, FunctionName, FunctionRecord, FunctionUrlConfig, InvokeMode, Qualifier, Scope,
    UrlAuthType, UrlBase,
};
use sha2::{Digest, Sha256};

use crate::page::{PageLimit, page};
use crate::{Control, ControlError};

/// `FunctionUrlQualifier`: an alias name (never all digits, never `$LATEST`).
const QUALIFIER_PATTERN: &str = "((?!^\\d+$)^[0-9a-zA-Z-_]+$)";
/// `FunctionUrlFunctionName`.
const NAME_PATTERN: &str = "(arn:(aws[a-zA-Z-]*)?:lambda:)?((eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\\d{1}:)?(\\d{12}:)?(function:)?([a-zA-Z0-9-_]{1,64})(:((?!\\d+$)[0-9a-zA-Z-_]+))?";

const FUNCTION_MISSING: &str = "Function does not exist";
const RESOURCE_MISSING: &str = "The resource you requested does not exist.";

/// The id of a function URL: 32 lower-case letters and digits, a digest of
/// where the URL belongs (stable for a function and qualifier).
pub fn url_id(scope: &Scope, name: &FunctionName, qualifier_key: &str) -> String {
    const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut h = Sha256::new();
    for part in [
        "lambent-function-url",
        scope.account.as_str(),
        scope.region.as_str(),
        name.as_str(),
        qualifier_key,
    ] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    h.finalize()
        .iter()
        .map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char)
        .collect()
}

fn validation(field: &str, value: &str, constraint: &str) -> ControlError {
    let mut v = ValidationErrors::new();
    v.push(field, value, constraint);
    ControlError::Validation(v.into_result().err().unwrap_or_default())
}

/// A URL call's target: the function and the qualifier key (`""` or an
/// alias name).
struct UrlTarget {
    name: FunctionName,
    key: String,
}

impl UrlTarget {
    fn qualifier(&self) -> Option<Qualifier> {
        (!self.key.is_empty()).then(|| Qualifier::Alias(self.key.clone()))
    }
}

fn target(scope: &Scope, raw: &str, qualifier: Option<&str>) -> Result<UrlTarget, ControlError> {
    if let Some(q) = qualifier {
        let ok = !q.is_empty()
            && q.len() <= 128
            && !q.bytes().all(|b| b.is_ascii_digit())
            && q.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(validation(
                "qualifier",
                q,
                &format!("Member must satisfy regular expression pattern: {QUALIFIER_PATTERN}"),
            ));
        }
    }
    let r = model::resolve_ref(scope, raw)?;
    let from_name = match &r.qualifier {
        None => None,
        Some(Qualifier::Alias(a)) => Some(a.clone()),
        Some(_) => {
            return Err(validation(
                "functionName",
                raw,
                &format!("Member must satisfy regular expression pattern: {NAME_PATTERN}"),
            ));
        }
    };
    let key = match (from_name, qualifier) {
        (Some(a), Some(b)) if a != b => return Err(model::RefError::QualifierMismatch.into()),
        (Some(a), _) => a,
        (None, Some(b)) => b.to_owned(),
        (None, None) => String::new(),
    };
    Ok(UrlTarget { name: r.name, key })
}

fn auth_type(raw: &str) -> Result<UrlAuthType, ControlError> {
    UrlAuthType::parse(raw).ok_or_else(|| {
        validation(
            "authType",
            raw,
            "Member must satisfy enum value set: [AWS_IAM, NONE]",
        )
    })
}

fn invoke_mode(raw: &str) -> Result<InvokeMode, ControlError> {
    InvokeMode::parse(raw).ok_or_else(|| {
        validation(
            "invokeMode",
            raw,
            "Member must satisfy enum value set: [RESPONSE_STREAM, BUFFERED]",
        )
    })
}

/// Java's rendering of a list in a validation message: `[a, b]`.
fn list_text(items: &[String]) -> String {
    format!("[{}]", items.join(", "))
}

/// `Cors` against the model's limits: list lengths, member lengths, MaxAge.
fn cors(c: &wire::Cors) -> Result<Cors, ControlError> {
    let mut v = ValidationErrors::new();
    let mut list =
        |field: &str, items: &Option<Vec<String>>, max_items: usize, min: usize, max: usize| {
            let Some(items) = items else { return };
            if items.len() > max_items {
                v.push(
                    field,
                    &list_text(items),
                    format!("Member must have length less than or equal to {max_items}"),
                );
            }
            let mut member = Vec::new();
            if items.iter().any(|i| i.len() > max) {
                member.push(format!(
                    "Member must have length less than or equal to {max}"
                ));
            }
            if items.iter().any(|i| i.len() < min) {
                member.push(format!(
                    "Member must have length greater than or equal to {min}"
                ));
            }
            if !member.is_empty() {
                v.push(
                    field,
                    &list_text(items),
                    format!("Member must satisfy constraint: [{}]", member.join(", ")),
                );
            }
        };
    list("cors.allowHeaders", &c.allow_headers, 100, 0, 1024);
    list("cors.allowMethods", &c.allow_methods, 6, 0, 6);
    list("cors.allowOrigins", &c.allow_origins, 100, 1, 253);
    list("cors.exposeHeaders", &c.expose_headers, 100, 0, 1024);
    if let Some(age) = c.max_age {
        if age > 86_400 {
            v.push(
                "cors.maxAge",
                &age.to_string(),
                "Member must have value less than or equal to 86400",
            );
        } else if age < 0 {
            v.push(
                "cors.maxAge",
                &age.to_string(),
                "Member must have value greater than or equal to 0",
            );
        }
    }
    v.into_result().map_err(ControlError::Validation)?;
    Ok(Cors {
        allow_credentials: c.allow_credentials,
        allow_headers: c.allow_headers.clone(),
        allow_methods: c.allow_methods.clone(),
        allow_origins: c.allow_origins.clone(),
        expose_headers: c.expose_headers.clone(),
        max_age: c.max_age,
    })
}

fn cors_view(c: &Cors) -> wire::Cors {
    wire::Cors {
        allow_credentials: c.allow_credentials,
        allow_headers: c.allow_headers.clone(),
        allow_methods: c.allow_methods.clone(),
        allow_origins: c.allow_origins.clone(),
        expose_headers: c.expose_headers.clone(),
        max_age: c.max_age,
    }
}

/// A URL configuration in the API's shape.
pub fn url_view(
    scope: &Scope,
    name: &FunctionName,
    key: &str,
    c: &FunctionUrlConfig,
    base: &UrlBase,
) -> wire::FunctionUrlConfig {
    let mut arn = scope.function_arn(name);
    if !key.is_empty() {
        arn.qualifier = Some(Qualifier::Alias(key.to_owned()));
    }
    wire::FunctionUrlConfig {
        function_url: base.url(&c.url_id, &scope.region),
        function_arn: arn.to_string(),
        auth_type: c.auth_type.as_str().to_owned(),
        cors: c.cors.as_ref().map(cors_view),
        creation_time: model::time_fmt::iso_micros_z(c.created_ms),
        last_modified_time: Some(model::time_fmt::iso_micros_z(c.last_modified_ms)),
        invoke_mode: Some(c.invoke_mode.as_str().to_owned()),
    }
}

fn has_alias(rec: &FunctionRecord, key: &str) -> bool {
    key.is_empty() || rec.aliases.contains_key(key)
}

impl Control {
    /// Every function of every account and region, for indexes the data
    /// plane builds when the server starts.
    pub async fn function_records(&self) -> Result<Vec<(Scope, FunctionRecord)>, ControlError> {
        let mut out = Vec::new();
        for scope in self.store.scopes().await? {
            let mut after: Option<String> = None;
            loop {
                let page = self
                    .store
                    .list_functions(&scope, after.as_deref(), 1000)
                    .await?;
                out.extend(page.items.into_iter().map(|r| (scope.clone(), r)));
                match page.next {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
        }
        Ok(out)
    }

    /// `CreateFunctionUrlConfig` (201).
    pub async fn create_function_url_config(
        &self,
        scope: &Scope,
        raw: &str,
        qualifier: Option<&str>,
        req: wire::FunctionUrlConfigRequest,
        base: &UrlBase,
    ) -> Result<wire::FunctionUrlConfig, ControlError> {
        let t = target(scope, raw, qualifier)?;
        let Some(auth) = req.auth_type.as_deref() else {
            let mut v = ValidationErrors::new();
            v.push_null("authType", "Member must not be null");
            return Err(ControlError::Validation(
                v.into_result().err().unwrap_or_default(),
            ));
        };
        let auth = auth_type(auth)?;
        let mode = req.invoke_mode.as_deref().map(invoke_mode).transpose()?;
        let cors = req.cors.as_ref().map(cors).transpose()?;
        let missing = || ControlError::NotFound(FUNCTION_MISSING.into());
        if self.store.get_function(scope, &t.name).await?.is_none() {
            return Err(missing());
        }
        let now = model::time_fmt::now_ms();
        let config = FunctionUrlConfig {
            url_id: url_id(scope, &t.name, &t.key),
            auth_type: auth,
            cors,
            invoke_mode: mode.unwrap_or_default(),
            created_ms: now,
            last_modified_ms: now,
        };
        let arn = {
            let mut a = scope.function_arn(&t.name);
            a.qualifier = t.qualifier();
            a
        };
        self.modify(scope, &t.name, None, |rec| {
            if !has_alias(rec, &t.key) {
                return Err(missing());
            }
            if rec.urls.contains_key(&t.key) {
                return Err(ControlError::Conflict(format!(
                    "Failed to create function url config for [functionArn = {arn}]. Error message:  FunctionUrlConfig exists for this Lambda function"
                )));
            }
            rec.urls.insert(t.key.clone(), config.clone());
            Ok(())
        })
        .await
        .map_err(|e| match e {
            ControlError::FunctionNotFound(_) => missing(),
            e => e,
        })?;
        let mut view = url_view(scope, &t.name, &t.key, &config, base);
        view.last_modified_time = None;
        view.invoke_mode = mode.map(|m| m.as_str().to_owned());
        Ok(view)
    }

    /// `GetFunctionUrlConfig`.
    pub async fn get_function_url_config(
        &self,
        scope: &Scope,
        raw: &str,
        qualifier: Option<&str>,
        base: &UrlBase,
    ) -> Result<wire::FunctionUrlConfig, ControlError> {
        let t = target(scope, raw, qualifier)?;
        let missing = || ControlError::NotFound(RESOURCE_MISSING.into());
        let rec = self
            .store
            .get_function(scope, &t.name)
            .await?
            .ok_or_else(missing)?
            .value;
        let c = rec.urls.get(&t.key).ok_or_else(missing)?;
        Ok(url_view(scope, &t.name, &t.key, c, base))
    }

    /// `UpdateFunctionUrlConfig`: the members given replace the stored ones.
    pub async fn update_function_url_config(
        &self,
        scope: &Scope,
        raw: &str,
        qualifier: Option<&str>,
        req: wire::FunctionUrlConfigRequest,
        base: &UrlBase,
    ) -> Result<wire::FunctionUrlConfig, ControlError> {
        let t = target(scope, raw, qualifier)?;
        let auth = req.auth_type.as_deref().map(auth_type).transpose()?;
        let mode = req.invoke_mode.as_deref().map(invoke_mode).transpose()?;
        let cors = req.cors.as_ref().map(cors).transpose()?;
        let missing = || ControlError::NotFound(RESOURCE_MISSING.into());
        if self.store.get_function(scope, &t.name).await?.is_none() {
            return Err(missing());
        }
        let now = model::time_fmt::now_ms();
        let mut updated = None;
        self.modify(scope, &t.name, None, |rec| {
            let c = rec.urls.get_mut(&t.key).ok_or_else(missing)?;
            if let Some(a) = auth {
                c.auth_type = a;
            }
            if let Some(m) = mode {
                c.invoke_mode = m;
            }
            if let Some(cors) = &cors {
                c.cors = Some(cors.clone());
            }
            c.last_modified_ms = now;
            updated = Some(c.clone());
            Ok(())
        })
        .await
        .map_err(|e| match e {
            ControlError::FunctionNotFound(_) => missing(),
            e => e,
        })?;
        let c = updated.ok_or_else(missing)?;
        Ok(url_view(scope, &t.name, &t.key, &c, base))
    }

    /// `DeleteFunctionUrlConfig` (204).
    pub async fn delete_function_url_config(
        &self,
        scope: &Scope,
        raw: &str,
        qualifier: Option<&str>,
    ) -> Result<(), ControlError> {
        let t = target(scope, raw, qualifier)?;
        let missing = || ControlError::NotFound(RESOURCE_MISSING.into());
        let rec = self
            .store
            .get_function(scope, &t.name)
            .await?
            .ok_or_else(missing)?
            .value;
        if !rec.urls.contains_key(&t.key) {
            return Err(missing());
        }
        self.modify(scope, &t.name, None, |rec| {
            rec.urls.remove(&t.key).ok_or_else(missing)?;
            Ok(())
        })
        .await
        .map_err(|e| match e {
            ControlError::FunctionNotFound(_) => missing(),
            e => e,
        })
        .map(drop)
    }

    /// `ListFunctionUrlConfigs`: the function's URL first, then its
    /// aliases' by name.
    pub async fn list_function_url_configs(
        &self,
        scope: &Scope,
        raw: &str,
        marker: Option<&str>,
        max_items: Option<&str>,
        base: &UrlBase,
    ) -> Result<wire::ListFunctionUrlConfigsResponse, ControlError> {
        let r = model::resolve_ref(scope, raw)?;
        if r.qualifier.is_some() {
            return Err(validation(
                "functionName",
                raw,
                &format!("Member must satisfy regular expression pattern: {NAME_PATTERN}"),
            ));
        }
        let size = PageLimit::FIFTY.size(max_items)?;
        let rec = self
            .store
            .get_function(scope, &r.name)
            .await?
            .ok_or_else(|| ControlError::NotFound(FUNCTION_MISSING.into()))?
            .value;
        // Markers are `u:<qualifier key>` so that the function's own URL
        // (key "") has one too.
        let after = marker.and_then(|m| m.strip_prefix("u:"));
        let items = rec
            .urls
            .iter()
            .filter(|(k, _)| after.is_none_or(|a| k.as_str() > a));
        let p = page(items, size, |(k, _)| format!("u:{k}"));
        Ok(wire::ListFunctionUrlConfigsResponse {
            function_url_configs: p
                .items
                .into_iter()
                .map(|(k, c)| url_view(scope, &r.name, k, c, base))
                .collect(),
            next_marker: p.next,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> Scope {
        Scope::new(
            model::AccountId::parse("123456789012").unwrap(),
            model::Region::parse("us-east-1").unwrap(),
        )
    }

    #[test]
    fn url_ids_are_stable_and_distinct() {
        let s = scope();
        let f = FunctionName::parse("f").unwrap();
        let a = url_id(&s, &f, "");
        assert_eq!(a.len(), 32);
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        );
        assert_eq!(a, url_id(&s, &f, ""));
        assert_ne!(a, url_id(&s, &f, "live"));
        let other = Scope::new(
            model::AccountId::parse("210987654321").unwrap(),
            model::Region::parse("us-east-1").unwrap(),
        );
        assert_ne!(a, url_id(&other, &f, ""));
    }

    #[test]
    fn qualifiers_are_aliases_only() {
        let s = scope();
        let msg = |r: Result<UrlTarget, ControlError>| match r {
            Err(ControlError::Validation(m)) => m,
            Err(e) => panic!("expected a validation error, got {e:?}"),
            Ok(_) => panic!("expected a validation error"),
        };
        assert_eq!(
            msg(target(&s, "f", Some("1"))),
            "1 validation error detected: Value '1' at 'qualifier' failed to satisfy constraint: Member must satisfy regular expression pattern: ((?!^\\d+$)^[0-9a-zA-Z-_]+$)"
        );
        assert!(msg(target(&s, "f", Some("$LATEST"))).contains("Value '$LATEST' at 'qualifier'"));
        assert!(msg(target(&s, "f:3", None)).contains("at 'functionName'"));
        assert_eq!(
            target(&s, "f", Some("live")).ok().map(|t| t.key),
            Some("live".into())
        );
        assert_eq!(
            target(&s, "f:live", None).ok().map(|t| t.key),
            Some("live".into())
        );
        assert!(matches!(
            target(&s, "f:live", Some("other")),
            Err(ControlError::InvalidParameter(m)) if m == "The derived qualifier from the function name does not match the specified qualifier."
        ));
    }

    #[test]
    fn cors_limits() {
        let too_many = wire::Cors {
            allow_methods: Some(
                ["GET", "PUT", "POST", "DELETE", "HEAD", "PATCH", "*"]
                    .map(String::from)
                    .to_vec(),
            ),
            max_age: Some(86_401),
            ..Default::default()
        };
        match cors(&too_many) {
            Err(ControlError::Validation(m)) => {
                assert!(m.starts_with("2 validation errors detected: "), "{m}");
                assert!(m.contains("at 'cors.allowMethods' failed to satisfy constraint: Member must have length less than or equal to 6"), "{m}");
                assert!(m.contains("Value '86401' at 'cors.maxAge' failed to satisfy constraint: Member must have value less than or equal to 86400"), "{m}");
            }
            other => panic!("expected a validation error, got {other:?}"),
        }
        let empty_origin = wire::Cors {
            allow_origins: Some(vec![String::new()]),
            ..Default::default()
        };
        assert!(matches!(
            cors(&empty_origin),
            Err(ControlError::Validation(_))
        ));
        let ok = wire::Cors {
            allow_origins: Some(vec!["https://example.com".into()]),
            max_age: Some(86_400),
            ..Default::default()
        };
        assert_eq!(cors(&ok).unwrap().max_age, Some(86_400));
    }
}
