//! The event a function URL hands its function: API Gateway payload format
//! 2.0, as Lambda builds it for URLs.

use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use base64::Engine as _;
use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::Identity;

/// What one URL request brings to its event.
pub struct Request<'a> {
    pub parts: &'a Parts,
    pub body: &'a [u8],
    pub url_id: &'a str,
    pub request_id: &'a str,
    /// The client's address as the listener saw it.
    pub source_ip: String,
    /// `X-Amzn-Trace-Id`, also handed to the function's environment.
    pub trace_header: &'a str,
    /// The signer, for `AWS_IAM` URLs.
    pub identity: Option<&'a Identity>,
}

/// A fresh `X-Amzn-Trace-Id` root for one request.
pub fn trace_header() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "Root=1-{:08x}-{}",
        model::time_fmt::now_ms() / 1000,
        &id[..24]
    )
}

/// Headers a proxy consumes rather than forwards.
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The event as JSON bytes.
pub fn build(r: &Request<'_>) -> Bytes {
    let now = model::time_fmt::now_ms();
    let uri = &r.parts.uri;
    let raw_path = uri.path();
    let raw_query = uri.query().unwrap_or("");
    let (headers, cookies) = headers(&r.parts.headers, r);
    let host = r
        .parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let domain = host.split(':').next().unwrap_or(host);
    let user_agent = r
        .parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let mut ev = Map::new();
    ev.insert("version".into(), json!("2.0"));
    ev.insert("routeKey".into(), json!("$default"));
    ev.insert("rawPath".into(), json!(raw_path));
    ev.insert("rawQueryString".into(), json!(raw_query));
    if !cookies.is_empty() {
        ev.insert("cookies".into(), json!(cookies));
    }
    ev.insert("headers".into(), Value::Object(headers));
    if !raw_query.is_empty() {
        ev.insert(
            "queryStringParameters".into(),
            Value::Object(query_parameters(raw_query)),
        );
    }
    let mut ctx = Map::new();
    ctx.insert(
        "accountId".into(),
        json!(match r.identity {
            Some(i) => i.account.as_str(),
            None => "anonymous",
        }),
    );
    ctx.insert("apiId".into(), json!(r.url_id));
    if let Some(i) = r.identity {
        let user_arn = format!(
            "arn:{}:iam::{}:root",
            partition_of(r.parts),
            i.account.as_str()
        );
        ctx.insert(
            "authorizer".into(),
            json!({ "iam": {
                "accessKey": i.access_key,
                "accountId": i.account.as_str(),
                "callerId": i.account.as_str(),
                "cognitoIdentity": null,
                "principalOrgId": null,
                "userArn": user_arn,
                "userId": i.account.as_str(),
            }}),
        );
    }
    ctx.insert("domainName".into(), json!(domain));
    ctx.insert("domainPrefix".into(), json!(r.url_id));
    ctx.insert(
        "http".into(),
        json!({
            "method": r.parts.method.as_str(),
            "path": raw_path,
            "protocol": protocol(r.parts),
            "sourceIp": r.source_ip,
            "userAgent": user_agent,
        }),
    );
    ctx.insert("requestId".into(), json!(r.request_id));
    ctx.insert("routeKey".into(), json!("$default"));
    ctx.insert("stage".into(), json!("$default"));
    ctx.insert("time".into(), json!(model::time_fmt::clf(now)));
    ctx.insert("timeEpoch".into(), json!(now));
    ev.insert("requestContext".into(), Value::Object(ctx));
    let content_type = r
        .parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|h| h.to_str().ok());
    let mut encoded = false;
    if !r.body.is_empty() {
        match std::str::from_utf8(r.body) {
            Ok(text) if is_text(content_type) => {
                ev.insert("body".into(), json!(text));
            }
            _ => {
                encoded = true;
                ev.insert(
                    "body".into(),
                    json!(base64::engine::general_purpose::STANDARD.encode(r.body)),
                );
            }
        }
    }
    ev.insert("isBase64Encoded".into(), json!(encoded));
    Bytes::from(serde_json::to_vec(&Value::Object(ev)).unwrap_or_default())
}

fn partition_of(parts: &Parts) -> &'static str {
    let region = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(model::url::url_host)
        .and_then(|(_, r)| model::Region::parse(r).ok());
    region.map(|r| r.partition()).unwrap_or("aws")
}

fn protocol(parts: &Parts) -> &'static str {
    match parts.version {
        axum::http::Version::HTTP_10 => "HTTP/1.0",
        axum::http::Version::HTTP_2 => "HTTP/2.0",
        _ => "HTTP/1.1",
    }
}

/// Headers lower-cased with repeated ones joined by commas, the `Cookie`
/// header split out into `cookies`, and the forwarding headers Lambda's
/// front end adds.
fn headers(h: &HeaderMap, r: &Request<'_>) -> (Map<String, Value>, Vec<String>) {
    let mut out: Map<String, Value> = Map::new();
    let mut cookies = Vec::new();
    for (name, value) in h {
        let name = name.as_str();
        if HOP_BY_HOP.contains(&name) {
            continue;
        }
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if name == "cookie" {
            cookies.extend(
                value
                    .split(';')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned),
            );
            continue;
        }
        match out.get_mut(name) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            _ => {
                out.insert(name.to_owned(), Value::String(value));
            }
        }
    }
    let port = h
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit_once(':'))
        .map(|(_, p)| p.to_owned())
        .unwrap_or_else(|| "80".to_owned());
    out.insert("x-amzn-trace-id".into(), json!(r.trace_header));
    if !r.source_ip.is_empty() {
        let forwarded = match out.get("x-forwarded-for").and_then(Value::as_str) {
            Some(prior) => format!("{prior}, {}", r.source_ip),
            None => r.source_ip.clone(),
        };
        out.insert("x-forwarded-for".into(), json!(forwarded));
    }
    out.entry("x-forwarded-proto").or_insert(json!("http"));
    out.entry("x-forwarded-port").or_insert(json!(port));
    (out, cookies)
}

/// `queryStringParameters`: decoded names and values, repeated names'
/// values joined by commas.
fn query_parameters(raw: &str) -> Map<String, Value> {
    let mut out: Map<String, Value> = Map::new();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (percent_decode(k), percent_decode(v));
        match out.get_mut(&k) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&v);
            }
            _ => {
                out.insert(k, Value::String(v));
            }
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Whether a body of this content type reaches the function as text (the
/// rest is base64-encoded, `isBase64Encoded: true`).
fn is_text(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else {
        return false;
    };
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime.starts_with("text/")
        || mime == "application/json"
        || mime.ends_with("+json")
        || mime == "application/xml"
        || mime.ends_with("+xml")
        || mime == "application/javascript"
        || mime == "application/x-www-form-urlencoded"
        || mime == "application/graphql"
        || mime == "application/yaml"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode_and_join() {
        let q = query_parameters("a=1&a=2&b=x%20y&c&d=%2Fp&&e=caf%C3%A9");
        assert_eq!(
            Value::Object(q),
            json!({"a": "1,2", "b": "x y", "c": "", "d": "/p", "e": "café"})
        );
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = axum::http::Request::builder().method("POST").uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn the_event_has_the_members_lambda_sends() {
        let p = parts(
            "/a/b?x=1&x=2",
            &[
                ("host", "abc.lambda-url.eu-west-1.localhost:9765"),
                ("cookie", "s=1; t=2"),
                ("x-multi", "a"),
                ("x-multi", "b"),
                ("connection", "keep-alive"),
                ("user-agent", "ua"),
                ("content-type", "image/png"),
            ],
        );
        let identity = Identity {
            access_key: "AKIAX".into(),
            account: model::AccountId::parse("222222222222").unwrap(),
        };
        let ev = build(&Request {
            parts: &p,
            body: &[0xff, 0x00],
            url_id: "abc",
            request_id: "rid",
            source_ip: "10.0.0.9".into(),
            trace_header: "Root=1-00000000-000000000000000000000000",
            identity: Some(&identity),
        });
        let ev: Value = serde_json::from_slice(&ev).unwrap();
        let keys: Vec<&str> = ev.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "version",
                "routeKey",
                "rawPath",
                "rawQueryString",
                "cookies",
                "headers",
                "queryStringParameters",
                "requestContext",
                "body",
                "isBase64Encoded"
            ]
        );
        assert_eq!(ev["cookies"], json!(["s=1", "t=2"]));
        assert_eq!(ev["headers"]["x-multi"], "a,b");
        assert!(ev["headers"].get("connection").is_none());
        assert!(ev["headers"].get("cookie").is_none());
        assert_eq!(ev["headers"]["x-forwarded-for"], "10.0.0.9");
        assert_eq!(ev["headers"]["x-forwarded-port"], "9765");
        assert_eq!(ev["queryStringParameters"], json!({"x": "1,2"}));
        assert_eq!(ev["body"], "/wA=");
        assert_eq!(ev["isBase64Encoded"], true);
        let ctx = &ev["requestContext"];
        assert_eq!(ctx["accountId"], "222222222222");
        assert_eq!(ctx["domainName"], "abc.lambda-url.eu-west-1.localhost");
        assert_eq!(
            ctx["authorizer"]["iam"]["userArn"],
            "arn:aws:iam::222222222222:root"
        );
        assert_eq!(ctx["http"]["sourceIp"], "10.0.0.9");
        assert_eq!(ctx["requestId"], "rid");
    }

    #[test]
    fn text_types() {
        assert!(is_text(Some("application/json; charset=utf-8")));
        assert!(is_text(Some("text/plain")));
        assert!(is_text(Some("application/vnd.api+json")));
        assert!(!is_text(Some("application/octet-stream")));
        assert!(!is_text(Some("image/png")));
        assert!(!is_text(Some("multipart/form-data; boundary=x")));
        assert!(!is_text(None));
    }
}
