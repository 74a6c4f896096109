//! A keep-alive HTTP/1.1 client that signs every request with SigV4, used for
//! the platform and for the echo baseline alike (so both pay the same client
//! cost).

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

pub const ACCESS_KEY: &str = "AKIABENCHMARKKEY0001";
pub const SECRET: &str = "benchmark/secret/key";
pub const ACCOUNT: &str = "123456789012";

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub struct Conn {
    host: String,
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Conn {
    pub async fn open(host: &str) -> Result<Self, BoxError> {
        let stream = tokio::net::TcpStream::connect(host).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok(Self {
            host: host.to_owned(),
            sender,
        })
    }

    /// One signed request.
    pub async fn send(
        &mut self,
        method: &str,
        path_and_query: &str,
        service: &str,
        extra: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Reply, BoxError> {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::HOST, http::HeaderValue::from_str(&self.host)?);
        for (k, v) in extra {
            headers.insert(
                http::HeaderName::from_bytes(k.as_bytes())?,
                http::HeaderValue::from_str(v)?,
            );
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs() as i64;
        sigv4::sign_headers(
            method,
            path,
            query,
            &mut headers,
            &body,
            &sigv4::Signer {
                creds: sigv4::Credentials {
                    access_key: ACCESS_KEY,
                    secret: SECRET,
                    session_token: None,
                },
                region: "us-east-1",
                service,
                now_s: now,
            },
        );
        let mut req = http::Request::builder().method(method).uri(path_and_query);
        for (k, v) in &headers {
            req = req.header(k, v);
        }
        self.sender.ready().await?;
        let resp = self.sender.send_request(req.body(Full::new(body))?).await?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Reply {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        })
    }

    /// Invokes a function (or, against the echo server, the same path) and
    /// returns the client-observed latency.
    pub async fn invoke(
        &mut self,
        function: &str,
        payload: &'static [u8],
    ) -> Result<Duration, BoxError> {
        let path = format!("/2015-03-31/functions/{function}/invocations");
        let started = Instant::now();
        let r = self
            .send("POST", &path, "lambda", &[], Bytes::from_static(payload))
            .await?;
        let took = started.elapsed();
        if r.status != 200 {
            return Err(format!(
                "invoke answered {}: {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            )
            .into());
        }
        if r.headers.contains_key("x-amz-function-error") {
            return Err(format!("function error: {}", String::from_utf8_lossy(&r.body)).into());
        }
        Ok(took)
    }

    /// An `Event` invocation; returns the time to the 202 (the durable
    /// acknowledgement).
    pub async fn invoke_event(
        &mut self,
        function: &str,
        payload: &'static [u8],
    ) -> Result<Duration, BoxError> {
        let path = format!("/2015-03-31/functions/{function}/invocations");
        let started = Instant::now();
        let r = self
            .send(
                "POST",
                &path,
                "lambda",
                &[("x-amz-invocation-type", "Event")],
                Bytes::from_static(payload),
            )
            .await?;
        let took = started.elapsed();
        if r.status != 202 {
            return Err(format!(
                "event invoke answered {}: {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            )
            .into());
        }
        Ok(took)
    }

    pub async fn json(
        &mut self,
        method: &str,
        path: &str,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, BoxError> {
        let data = if body.is_null() {
            Bytes::new()
        } else {
            Bytes::from(body.to_string())
        };
        let r = self
            .send(
                method,
                path,
                "lambda",
                &[("content-type", "application/json")],
                data,
            )
            .await?;
        if r.status >= 300 {
            return Err(format!(
                "{method} {path} answered {}: {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            )
            .into());
        }
        if r.body.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        Ok(serde_json::from_slice(&r.body)?)
    }
}
