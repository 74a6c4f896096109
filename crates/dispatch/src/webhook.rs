//! The outbound HTTP client for `http://` destinations and dead-letter
//! targets.

use std::time::Duration;

use bytes::Bytes;

/// How long one HTTP delivery may take.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a delivery failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("invalid URL: {0}")]
    Url(String),
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("HTTP exchange failed: {0}")]
    Http(String),
    #[error("the endpoint answered {0}")]
    Status(u16),
    #[error("no answer within {} s", DELIVERY_TIMEOUT.as_secs())]
    Timeout,
}

/// POSTs `body` to an `http://` URL; any 2xx is success.
pub async fn post(
    url: &str,
    headers: &[(String, String)],
    body: Bytes,
) -> Result<(), DeliveryError> {
    tokio::time::timeout(DELIVERY_TIMEOUT, exchange(url, headers, body))
        .await
        .map_err(|_| DeliveryError::Timeout)?
}

async fn exchange(
    url: &str,
    headers: &[(String, String)],
    body: Bytes,
) -> Result<(), DeliveryError> {
    use http_body_util::Full;
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| DeliveryError::Url(format!("{e}")))?;
    let host = uri
        .host()
        .ok_or_else(|| DeliveryError::Url("no host".into()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(DeliveryError::Connect)?;
    let _ = stream.set_nodelay(true);
    let http = |e: hyper::Error| DeliveryError::Http(e.to_string());
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(http)?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    let mut req = hyper::Request::post(path).header(
        hyper::header::HOST,
        uri.authority().map(|a| a.as_str()).unwrap_or(host.as_str()),
    );
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let req = req
        .body(Full::new(body))
        .map_err(|e| DeliveryError::Http(e.to_string()))?;
    let resp = sender.send_request(req).await.map_err(http)?;
    // The status is all that counts; the body is not read (an endpoint could
    // stream without end).
    let status = resp.status();
    drop(resp);
    if status.is_success() {
        Ok(())
    } else {
        Err(DeliveryError::Status(status.as_u16()))
    }
}
