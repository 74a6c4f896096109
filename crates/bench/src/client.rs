//! A keep-alive HTTP/1.1 client that signs every request with SigV4, used for
//! the platform and for the echo baseline alike (so both pay the same client
//! cost).

use std::time::{Duration, Instant};

use bytes::Bytes;

pub const ACCESS_KEY: &str = "AKIABENCHMARKKEY0001";
pub const SECRET: &str = "benchmark/secret/key";
pub const ACCOUNT: &str = "123456789012";
/// A second account (noisy-neighbour figures).
pub const ACCESS_KEY_B: &str = "AKIABENCHMARKKEY0002";
pub const SECRET_B: &str = "benchmark/secret/key/b";
pub const ACCOUNT_B: &str = "210987654321";

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A signed keep-alive connection (the shared client), with the
/// benchmark's key and the calls the scenarios make.
pub struct Conn(signed_client::Conn);

/// Plain requests go straight to the shared client.
impl std::ops::Deref for Conn {
    type Target = signed_client::Conn;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Conn {
    pub async fn open(host: &str) -> Result<Self, BoxError> {
        let creds = signed_client::Credentials {
            access_key: ACCESS_KEY.into(),
            secret: SECRET.into(),
            region: "us-east-1".into(),
        };
        Ok(Self(signed_client::Conn::open(host, creds).await?))
    }

    /// A connection signing as the second account.
    pub async fn open_as_b(host: &str) -> Result<Self, BoxError> {
        let creds = signed_client::Credentials {
            access_key: ACCESS_KEY_B.into(),
            secret: SECRET_B.into(),
            region: "us-east-1".into(),
        };
        Ok(Self(signed_client::Conn::open(host, creds).await?))
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

    /// A request to a function URL (`host`: the URL's host) on this
    /// connection, signed for `lambda` as an `AWS_IAM` URL takes it; returns
    /// the client-observed latency.
    pub async fn invoke_url(
        &mut self,
        host: &str,
        payload: &'static [u8],
    ) -> Result<Duration, BoxError> {
        let started = Instant::now();
        let r = self
            .send(
                "POST",
                "/",
                "lambda",
                &[("host", host), ("content-type", "application/json")],
                Bytes::from_static(payload),
            )
            .await?;
        let took = started.elapsed();
        if r.status != 200 {
            return Err(format!(
                "function URL answered {}: {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            )
            .into());
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
