//! A small signed HTTP client for the CLI's own calls to a running server.

use std::path::Path;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "no server endpoint: pass --endpoint-url, set LAMBENT_ENDPOINT, or start `lambent serve` (no {0} found)"
    )]
    NoEndpoint(String),
    #[error("endpoint {0} is not an http://host:port URL")]
    BadEndpoint(String),
    #[error(
        "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or keep the server's credentials.toml in the data directory"
    )]
    NoCredentials,
    #[error("cannot reach {endpoint}: {source}")]
    Connect {
        endpoint: String,
        source: std::io::Error,
    },
    #[error("request failed: {0}")]
    Http(String),
}

pub struct Client {
    host: String,
    access_key: String,
    secret: String,
    region: String,
}

pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Client {
    /// Finds the endpoint and credentials: flags and environment first, then
    /// the data directory of a local server.
    pub fn discover(endpoint: Option<&str>, data_dir: &Path) -> Result<Self, ClientError> {
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
        let region = std::env::var("AWS_REGION")
            .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|_| "us-east-1".into());
        Ok(Self {
            host,
            access_key,
            secret,
            region,
        })
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
        let mut headers = http::HeaderMap::new();
        let host_value = http::HeaderValue::from_str(&self.host)
            .map_err(|e| ClientError::Http(e.to_string()))?;
        headers.insert(http::header::HOST, host_value);
        for (k, v) in extra {
            let name = http::HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| ClientError::Http(e.to_string()))?;
            let value =
                http::HeaderValue::from_str(v).map_err(|e| ClientError::Http(e.to_string()))?;
            headers.insert(name, value);
        }
        let now = model::time_fmt::now_ms() / 1000;
        sigv4::sign_headers(
            method,
            path,
            query,
            &mut headers,
            &body,
            &sigv4::Signer {
                creds: sigv4::Credentials {
                    access_key: &self.access_key,
                    secret: &self.secret,
                    session_token: None,
                },
                region: &self.region,
                service,
                now_s: now,
            },
        );
        let uri = if query.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{query}")
        };
        let mut req = http::Request::builder().method(method).uri(uri);
        for (k, v) in &headers {
            req = req.header(k, v);
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let stream = tokio::net::TcpStream::connect(&self.host)
            .await
            .map_err(|source| ClientError::Connect {
                endpoint: self.host.clone(),
                source,
            })?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| ClientError::Http(e.to_string()))?;
        tokio::spawn(conn);
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?
            .to_bytes();
        Ok(Reply {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        })
    }
}

/// Percent-encodes a path segment (function names may be ARNs with colons).
pub fn encode_segment(s: &str) -> String {
    let mut out = String::new();
    sigv4::uri_encode(&mut out, s.as_bytes(), false);
    out
}
