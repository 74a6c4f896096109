//! A keep-alive HTTP/1.1 client that signs every request with SigV4: the one
//! Lambent's own tools use to talk to a server (the `lambent` CLI and
//! `lambent-bench`, which needs its per-request cost to be only the signing).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

/// The key that signs, and where it is valid.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub access_key: String,
    pub secret: String,
    pub region: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach {endpoint}: {source}")]
    Connect {
        endpoint: String,
        source: std::io::Error,
    },
    #[error("header {0} cannot be sent")]
    Header(String),
    #[error("request failed: {0}")]
    Http(#[from] hyper::Error),
    #[error("the request cannot be built: {0}")]
    Request(#[from] http::Error),
}

/// A whole answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

/// One connection to a server (`host:port`), reused request after request.
pub struct Conn {
    host: String,
    creds: Credentials,
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl Conn {
    pub async fn open(host: &str, creds: Credentials) -> Result<Self, ClientError> {
        let connect = |source| ClientError::Connect {
            endpoint: host.to_owned(),
            source,
        };
        let stream = tokio::net::TcpStream::connect(host)
            .await
            .map_err(connect)?;
        // Requests are small and latency matters: no Nagle delays.
        stream.set_nodelay(true).map_err(connect)?;
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok(Self {
            host: host.to_owned(),
            creds,
            sender,
        })
    }

    /// Sends one request signed for `service` and reads the whole answer.
    /// `path_and_query` is already encoded; `extra` are headers to send (and
    /// sign) besides `host` and the signature's own.
    pub async fn send(
        &mut self,
        method: &str,
        path_and_query: &str,
        service: &str,
        extra: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Reply, ClientError> {
        let resp = self
            .send_streaming(method, path_and_query, service, extra, body)
            .await?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Reply {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        })
    }

    /// Like [`Conn::send`], but answers as soon as the headers arrive: the
    /// body is read as it comes. It must be read to its end before the
    /// connection's next request.
    pub async fn send_streaming(
        &mut self,
        method: &str,
        path_and_query: &str,
        service: &str,
        extra: &[(&str, &str)],
        body: Bytes,
    ) -> Result<http::Response<hyper::body::Incoming>, ClientError> {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let mut headers = http::HeaderMap::new();
        let header = |s: &str| ClientError::Header(s.to_owned());
        headers.insert(
            http::header::HOST,
            http::HeaderValue::from_str(&self.host).map_err(|_| header("host"))?,
        );
        for (k, v) in extra {
            headers.insert(
                http::HeaderName::from_bytes(k.as_bytes()).map_err(|_| header(k))?,
                http::HeaderValue::from_str(v).map_err(|_| header(k))?,
            );
        }
        let now_s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default();
        sigv4::sign_headers(
            method,
            path,
            query,
            &mut headers,
            &body,
            &sigv4::Signer {
                creds: sigv4::Credentials {
                    access_key: &self.creds.access_key,
                    secret: &self.creds.secret,
                    session_token: None,
                },
                region: &self.creds.region,
                service,
                now_s,
            },
        );
        let mut req = http::Request::builder().method(method).uri(path_and_query);
        if let Some(h) = req.headers_mut() {
            *h = headers;
        }
        let req = req.body(Full::new(body))?;
        self.sender.ready().await?;
        Ok(self.sender.send_request(req).await?)
    }
}

/// Percent-encodes a path segment (function names may be ARNs with colons).
pub fn encode_segment(s: &str) -> String {
    let mut out = String::new();
    sigv4::uri_encode(&mut out, s.as_bytes(), false);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use axum::http::{HeaderMap, StatusCode, Uri};

    /// A server that checks each request's signature with the same key and
    /// echoes what it saw.
    async fn verifying_server() -> String {
        let app = axum::Router::new().fallback(
            |method: axum::http::Method, uri: Uri, headers: HeaderMap, body: Bytes| async move {
                let req = sigv4::Request {
                    method: method.as_str(),
                    path: uri.path(),
                    query: uri.query().unwrap_or(""),
                    headers: &headers,
                };
                let now_s = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs() as i64;
                let expect = sigv4::Expectation {
                    service: "lambda",
                    region: None,
                    now_s,
                    max_skew_s: sigv4::DEFAULT_SKEW_S,
                };
                let checked = sigv4::parse(&req).and_then(|auth| {
                    let secret = if auth.access_key == KEY { SECRET } else { "" };
                    sigv4::verify(&req, &auth, secret, &sigv4::sha256_hex(&body), &expect)
                });
                match checked {
                    Ok(()) => (StatusCode::OK, format!("{method} {uri} {}", body.len())),
                    Err(e) => (StatusCode::FORBIDDEN, e.to_string()),
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    const KEY: &str = "AKIACLIENTTEST000001";
    const SECRET: &str = "client/secret";

    fn creds() -> Credentials {
        Credentials {
            access_key: KEY.into(),
            secret: SECRET.into(),
            region: "us-east-1".into(),
        }
    }

    #[tokio::test]
    async fn signed_requests_verify_and_reuse_the_connection() {
        let addr = verifying_server().await;
        let mut c = Conn::open(&addr, creds()).await.unwrap();
        for i in 0..3 {
            let r = c
                .send(
                    "POST",
                    "/2015-03-31/functions/f%3A1/invocations?Qualifier=live",
                    "lambda",
                    &[("content-type", "application/json")],
                    Bytes::from(vec![b'x'; i]),
                )
                .await
                .unwrap();
            assert_eq!(
                (r.status, String::from_utf8_lossy(&r.body).into_owned()),
                (
                    200,
                    format!("POST /2015-03-31/functions/f%3A1/invocations?Qualifier=live {i}")
                )
            );
        }
        let mut wrong = creds();
        wrong.secret = "another".into();
        let mut c = Conn::open(&addr, wrong).await.unwrap();
        let r = c
            .send("GET", "/", "lambda", &[], Bytes::new())
            .await
            .unwrap();
        assert_eq!(r.status, 403);
    }

    #[tokio::test]
    async fn unreachable_servers_say_where() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        drop(l);
        let e = Conn::open(&addr, creds()).await.err().unwrap();
        assert!(e.to_string().starts_with(&format!("cannot reach {addr}")));
    }
}
