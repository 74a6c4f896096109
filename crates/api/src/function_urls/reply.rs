//! A function's result as the URL's HTTP response, and the ways a URL
//! request fails ([`UrlError`], written in `crate::error`).

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::Value;

/// Why a URL request got no answer from its function.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    /// No URL has this id (in this region).
    #[error("no function URL answers at this address")]
    NoSuchUrl,
    /// The signature, the auth type or the resource policy refused the
    /// caller.
    #[error("the caller may not invoke this function URL")]
    Forbidden,
    /// The body (or the event built from it) is over Lambda's payload limit.
    #[error("the request is too large for the function")]
    TooLarge,
    /// The body could not be read.
    #[error("the request body could not be read")]
    BadRequest,
    /// The function failed, timed out, or answered with something that is
    /// not a valid response.
    #[error("the function did not produce a valid response")]
    FunctionFailed,
    /// The invocation was refused or could not run.
    #[error(transparent)]
    Invoke(invoke::InvokeError),
}

/// The function's buffered result as the HTTP response.
pub fn buffered(out: invoke::Response) -> Result<Response, UrlError> {
    if out.function_error.is_some() {
        return Err(UrlError::FunctionFailed);
    }
    let result: Value =
        serde_json::from_slice(&out.payload).map_err(|_| UrlError::FunctionFailed)?;
    match result {
        Value::Object(ref m) if m.contains_key("statusCode") => structured(m),
        // A string is the body as it is; anything else without a status
        // code is the body as JSON.
        Value::String(s) => Ok(json_body(s.into_bytes())),
        other => Ok(json_body(
            serde_json::to_vec(&other).map_err(|_| UrlError::FunctionFailed)?,
        )),
    }
}

fn json_body(body: Vec<u8>) -> Response {
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// `{statusCode, headers, cookies, body, isBase64Encoded}`.
fn structured(m: &serde_json::Map<String, Value>) -> Result<Response, UrlError> {
    let status = m
        .get("statusCode")
        .and_then(|s| match s {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        })
        .and_then(|n| u16::try_from(n).ok())
        .and_then(|n| StatusCode::from_u16(n).ok())
        .ok_or(UrlError::FunctionFailed)?;
    let encoded = matches!(m.get("isBase64Encoded"), Some(Value::Bool(true)));
    let body: Vec<u8> = match m.get("body") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) if encoded => base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(|_| UrlError::FunctionFailed)?,
        Some(Value::String(s)) => s.clone().into_bytes(),
        Some(other) => serde_json::to_vec(other).map_err(|_| UrlError::FunctionFailed)?,
    };
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    if let Some(Value::Object(headers)) = m.get("headers") {
        for (k, v) in headers {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Number(_) | Value::Bool(_) => v.to_string(),
                _ => continue,
            };
            let name =
                HeaderName::from_bytes(k.as_bytes()).map_err(|_| UrlError::FunctionFailed)?;
            let value = HeaderValue::from_str(&text).map_err(|_| UrlError::FunctionFailed)?;
            h.insert(name, value);
        }
    }
    if let Some(Value::Array(cookies)) = m.get("cookies") {
        for c in cookies.iter().filter_map(Value::as_str) {
            let value = HeaderValue::from_str(c).map_err(|_| UrlError::FunctionFailed)?;
            h.append(header::SET_COOKIE, value);
        }
    }
    if !h.contains_key(header::CONTENT_TYPE) {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::BodyExt as _;

    fn out(payload: &str, error: Option<&'static str>) -> invoke::Response {
        invoke::Response {
            request_id: "r".into(),
            executed_version: "$LATEST".into(),
            payload: Bytes::from(payload.to_owned()),
            function_error: error,
            log_result: None,
        }
    }

    async fn body(r: Response) -> String {
        String::from_utf8(r.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn plain_results_are_200_json() {
        for (payload, expected) in [
            (r#"{"hello": "world"}"#, r#"{"hello":"world"}"#),
            (r#""hello""#, "hello"),
            ("3", "3"),
            ("3.1", "3.1"),
            ("true", "true"),
            (r#"["hello", 3, true]"#, r#"["hello",3,true]"#),
            (r#"{"body": "no status"}"#, r#"{"body":"no status"}"#),
        ] {
            let r = buffered(out(payload, None)).unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(r.headers()["content-type"], "application/json");
            assert_eq!(body(r).await, expected, "{payload}");
        }
    }

    #[tokio::test]
    async fn structured_results() {
        let r = buffered(out(
            r#"{"statusCode": 201, "headers": {"Content-Type": "text/plain", "X-N": 3}, "cookies": ["a=1; Path=/", "b=2"], "body": "aGk=", "isBase64Encoded": true}"#,
            None,
        ))
        .unwrap();
        assert_eq!(r.status(), 201);
        assert_eq!(r.headers()["content-type"], "text/plain");
        assert_eq!(r.headers()["x-n"], "3");
        let cookies: Vec<_> = r.headers().get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1; Path=/", "b=2"]);
        assert_eq!(body(r).await, "hi");
        let r = buffered(out(r#"{"statusCode": 204}"#, None)).unwrap();
        assert_eq!(r.status(), 204);
    }

    #[test]
    fn failures() {
        assert!(matches!(
            buffered(out(r#"{"errorMessage":"x"}"#, Some("Unhandled"))),
            Err(UrlError::FunctionFailed)
        ));
        assert!(matches!(
            buffered(out(r#"{"statusCode": "abc"}"#, None)),
            Err(UrlError::FunctionFailed)
        ));
        assert!(matches!(
            buffered(out(
                r#"{"statusCode": 200, "body": "%%", "isBase64Encoded": true}"#,
                None
            )),
            Err(UrlError::FunctionFailed)
        ));
    }
}
