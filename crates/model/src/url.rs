//! Function URLs: a URL's configuration as the platform keeps it, and the
//! address it is served on.

use serde::{Deserialize, Serialize};

use crate::names::Region;

/// `AuthType` of a function URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UrlAuthType {
    /// Anyone, when the function's policy grants `lambda:InvokeFunctionUrl`
    /// to `*` with `lambda:FunctionUrlAuthType` `NONE`.
    None,
    /// SigV4-signed callers of the owning account, or those the policy grants.
    AwsIam,
}

impl UrlAuthType {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "NONE" => Some(Self::None),
            "AWS_IAM" => Some(Self::AwsIam),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::AwsIam => "AWS_IAM",
        }
    }
}

/// `InvokeMode` of a function URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum InvokeMode {
    /// The response is sent once the function has returned.
    #[default]
    Buffered,
    /// The response is sent as the function writes it.
    ResponseStream,
}

impl InvokeMode {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "BUFFERED" => Some(Self::Buffered),
            "RESPONSE_STREAM" => Some(Self::ResponseStream),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Buffered => "BUFFERED",
            Self::ResponseStream => "RESPONSE_STREAM",
        }
    }
}

/// A URL's cross-origin settings, as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Cors {
    pub allow_credentials: Option<bool>,
    pub allow_headers: Option<Vec<String>>,
    pub allow_methods: Option<Vec<String>>,
    pub allow_origins: Option<Vec<String>>,
    pub expose_headers: Option<Vec<String>>,
    pub max_age: Option<i64>,
}

/// One function URL: for the unqualified function or one alias.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionUrlConfig {
    /// The first label of the URL's host: 32 lower-case letters and digits,
    /// the same for a function and qualifier every time it is created.
    pub url_id: String,
    pub auth_type: UrlAuthType,
    pub cors: Option<Cors>,
    pub invoke_mode: InvokeMode,
    pub created_ms: i64,
    pub last_modified_ms: i64,
}

/// Where function URLs are served: on this server's listener under
/// `*.localhost`, or under a public domain a reverse proxy answers for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlBase {
    /// `http://<id>.lambda-url.<region>.localhost:<port>/`.
    Local { port: u16 },
    /// `https://<id>.lambda-url.<region>.<domain>/`.
    Public { domain: String },
}

impl UrlBase {
    /// The `FunctionUrl` of a URL id in a region.
    pub fn url(&self, url_id: &str, region: &Region) -> String {
        match self {
            Self::Local { port } => {
                format!("http://{url_id}.lambda-url.{region}.localhost:{port}/")
            }
            Self::Public { domain } => format!("https://{url_id}.lambda-url.{region}.{domain}/"),
        }
    }
}

/// The URL id and region a `Host` header addresses
/// (`<id>.lambda-url.<region>.<anything>[:port]`), if it addresses a
/// function URL at all.
pub fn url_host(host: &str) -> Option<(&str, &str)> {
    let (id, rest) = host.split_once('.')?;
    let rest = rest.strip_prefix("lambda-url.")?;
    let region = rest.split(['.', ':']).next()?;
    if id.is_empty() || region.is_empty() {
        return None;
    }
    Some((id, region))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_urls() {
        let region = Region::parse("eu-west-1").unwrap();
        let id = "abcdefghijklmnopqrstuvwxyz012345";
        let local = UrlBase::Local { port: 9000 }.url(id, &region);
        assert_eq!(
            local,
            format!("http://{id}.lambda-url.eu-west-1.localhost:9000/")
        );
        let public = UrlBase::Public {
            domain: "fn.example.com".into(),
        }
        .url(id, &region);
        assert_eq!(
            public,
            format!("https://{id}.lambda-url.eu-west-1.fn.example.com/")
        );
        assert_eq!(
            url_host(&format!("{id}.lambda-url.eu-west-1.localhost:9000")),
            Some((id, "eu-west-1"))
        );
        assert_eq!(
            url_host(&format!("{id}.lambda-url.eu-west-1.fn.example.com")),
            Some((id, "eu-west-1"))
        );
        assert_eq!(url_host("127.0.0.1:9000"), None);
        assert_eq!(url_host("localhost"), None);
        assert_eq!(url_host("x.lambda.eu-west-1.localhost"), None);
    }
}
