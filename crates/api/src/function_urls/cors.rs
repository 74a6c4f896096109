//! Cross-origin requests to a function URL, from the URL's `Cors`
//! configuration: preflights are answered here without invoking the
//! function, and the configured headers go on every other response (beside
//! any the function sets itself, as Lambda does).

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use model::Cors;

/// The `Access-Control-Allow-Origin` value for a request's origin, if the
/// configuration allows that origin.
fn allow_origin(c: &Cors, origin: &str) -> Option<String> {
    let origins = c.allow_origins.as_deref().unwrap_or_default();
    if origins.iter().any(|o| o.eq_ignore_ascii_case(origin)) {
        return Some(origin.to_owned());
    }
    if origins.iter().any(|o| o == "*") {
        // A credentialed request needs its own origin echoed, never `*`.
        return Some(if c.allow_credentials == Some(true) {
            origin.to_owned()
        } else {
            "*".to_owned()
        });
    }
    None
}

fn set(h: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}

fn joined(list: &Option<Vec<String>>) -> Option<String> {
    list.as_ref().filter(|l| !l.is_empty()).map(|l| l.join(","))
}

/// The answer to an `OPTIONS` preflight: 200, with the configured headers
/// when the origin is allowed (without them the browser refuses).
pub fn preflight(c: &Cors, origin: Option<&str>, request_id: &str) -> Response {
    let mut resp = StatusCode::OK.into_response();
    let h = resp.headers_mut();
    set(h, "x-amzn-requestid", request_id);
    set(h, "vary", "Origin");
    let Some(allowed) = origin.and_then(|o| allow_origin(c, o)) else {
        return resp;
    };
    set(h, "access-control-allow-origin", &allowed);
    if let Some(m) = joined(&c.allow_methods) {
        set(h, "access-control-allow-methods", &m);
    }
    if let Some(hd) = joined(&c.allow_headers) {
        set(h, "access-control-allow-headers", &hd);
    }
    if let Some(age) = c.max_age {
        set(h, "access-control-max-age", &age.to_string());
    }
    if c.allow_credentials == Some(true) {
        set(h, "access-control-allow-credentials", "true");
    }
    resp
}

/// Adds the configured CORS headers to a response to an allowed origin.
pub fn decorate(c: &Cors, origin: Option<&str>, h: &mut HeaderMap) {
    let Some(allowed) = origin.and_then(|o| allow_origin(c, o)) else {
        return;
    };
    set(h, "access-control-allow-origin", &allowed);
    if let Some(e) = joined(&c.expose_headers) {
        set(h, "access-control-expose-headers", &e);
    }
    if c.allow_credentials == Some(true) {
        set(h, "access-control-allow-credentials", "true");
    }
    h.append("vary", HeaderValue::from_static("Origin"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors() -> Cors {
        Cors {
            allow_origins: Some(vec!["http://a.localhost:8080".into()]),
            allow_methods: Some(vec!["GET".into(), "POST".into()]),
            allow_headers: Some(vec!["x-custom".into()]),
            expose_headers: Some(vec!["x-out".into()]),
            max_age: Some(600),
            allow_credentials: None,
        }
    }

    #[test]
    fn preflight_for_allowed_and_other_origins() {
        let r = preflight(&cors(), Some("http://a.localhost:8080"), "id");
        let h = r.headers();
        assert_eq!(h["access-control-allow-origin"], "http://a.localhost:8080");
        assert_eq!(h["access-control-allow-methods"], "GET,POST");
        assert_eq!(h["access-control-allow-headers"], "x-custom");
        assert_eq!(h["access-control-max-age"], "600");
        let r = preflight(&cors(), Some("http://evil.localhost"), "id");
        assert!(!r.headers().contains_key("access-control-allow-origin"));
    }

    #[test]
    fn wildcard_and_credentials() {
        let mut c = cors();
        c.allow_origins = Some(vec!["*".into()]);
        let mut h = HeaderMap::new();
        decorate(&c, Some("http://x"), &mut h);
        assert_eq!(h["access-control-allow-origin"], "*");
        assert_eq!(h["access-control-expose-headers"], "x-out");
        c.allow_credentials = Some(true);
        let mut h = HeaderMap::new();
        decorate(&c, Some("http://x"), &mut h);
        assert_eq!(h["access-control-allow-origin"], "http://x");
        assert_eq!(h["access-control-allow-credentials"], "true");
        let mut h = HeaderMap::new();
        decorate(&c, None, &mut h);
        assert!(h.is_empty());
    }
}
