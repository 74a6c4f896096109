//! The CLI's calls to a running server: where it is and which key signs,
//! over the shared signed client.

use std::path::Path;

pub use signed_client::{Reply, encode_segment};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "no server found ({0} does not exist): is `lambent serve` running? Start it, or point at it with --data-dir, --endpoint-url or LAMBENT_ENDPOINT"
    )]
    NoEndpoint(String),
    #[error("region '{0}' is not a region name (letters, digits and hyphens)")]
    BadRegion(String),
    #[error("cannot reach {endpoint} ({source}); is `lambent serve` running?")]
    Unreachable {
        endpoint: String,
        source: std::io::Error,
    },
    #[error("endpoint {0} is not an http://host:port URL")]
    BadEndpoint(String),
    #[error(
        "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or keep the server's credentials.toml in the data directory"
    )]
    NoCredentials,
    #[error(transparent)]
    Send(#[from] signed_client::ClientError),
}

pub struct Client {
    host: String,
    creds: signed_client::Credentials,
}

impl Client {
    /// Finds the endpoint and credentials: flags and environment first, then
    /// the data directory of a local server. The region is `region` if
    /// given, else `AWS_REGION`, `AWS_DEFAULT_REGION`, `us-east-1`.
    pub fn discover(
        endpoint: Option<&str>,
        data_dir: &Path,
        region: Option<&str>,
    ) -> Result<Self, ClientError> {
        let endpoint = match endpoint {
            Some(e) => e.to_owned(),
            None => match std::env::var("LAMBENT_ENDPOINT") {
                Ok(e) => e,
                Err(_) => {
                    let f = data_dir.join("endpoint");
                    std::fs::read_to_string(&f)
                        .map_err(|_| ClientError::NoEndpoint(f.display().to_string()))?
                        .trim()
                        .to_owned()
                }
            },
        };
        let host = endpoint
            .strip_prefix("http://")
            .map(|h| h.trim_end_matches('/').to_owned())
            .filter(|h| !h.is_empty() && !h.contains('/'))
            .ok_or_else(|| ClientError::BadEndpoint(endpoint.clone()))?;
        let (access_key, secret) = match (
            std::env::var("AWS_ACCESS_KEY_ID"),
            std::env::var("AWS_SECRET_ACCESS_KEY"),
        ) {
            (Ok(a), Ok(s)) => (a, s),
            _ => crate::credentials::first_key(&data_dir.join("credentials.toml"))
                .ok_or(ClientError::NoCredentials)?,
        };
        let region = match region {
            Some(r) => r.to_owned(),
            None => std::env::var("AWS_REGION")
                .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
                .unwrap_or_else(|_| "us-east-1".into()),
        };
        model::Region::parse(&region).map_err(|_| ClientError::BadRegion(region.clone()))?;
        Ok(Self {
            host,
            creds: signed_client::Credentials {
                access_key,
                secret,
                region,
            },
        })
    }

    /// The server's `host:port`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The key that signs, and the region.
    pub fn credentials(&self) -> &signed_client::Credentials {
        &self.creds
    }

    /// Sends one signed request and reads the whole answer.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        query: &str,
        service: &str,
        extra: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Reply, ClientError> {
        let uri = if query.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{query}")
        };
        let mut conn = signed_client::Conn::open(&self.host, self.creds.clone())
            .await
            .map_err(|e| match e {
                // Nothing listens there: most likely no server runs.
                signed_client::ClientError::Connect { endpoint, source } => {
                    ClientError::Unreachable { endpoint, source }
                }
                other => ClientError::Send(other),
            })?;
        Ok(conn.send(method, &uri, service, extra, body.into()).await?)
    }
}
