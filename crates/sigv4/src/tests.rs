use super::*;

const AKID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
/// 20150830T123600Z, the timestamp of AWS's published test suite.
const SUITE_TIME: i64 = 1_440_938_160;

fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            http::HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()).unwrap(),
            http::HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

fn expect(now: i64) -> Expectation<'static> {
    Expectation {
        service: "service",
        region: Some("us-east-1"),
        now_s: now,
        max_skew_s: DEFAULT_SKEW_S,
    }
}

/// A vector from AWS's SigV4 test suite, header-signed form.
struct Vector {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    query: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: &'static str,
    canonical: &'static str,
    signature: &'static str,
}

fn run_vector(v: &Vector) {
    let signed_names: Vec<String> = {
        let mut n: Vec<String> = v
            .headers
            .iter()
            .map(|(k, _)| k.to_ascii_lowercase())
            .collect();
        n.sort();
        n.dedup();
        n
    };
    let mut h = headers(v.headers);
    let auth_value = format!(
        "AWS4-HMAC-SHA256 Credential={AKID}/20150830/us-east-1/service/aws4_request, SignedHeaders={}, Signature={}",
        signed_names.join(";"),
        v.signature
    );
    h.insert(
        http::header::AUTHORIZATION,
        http::HeaderValue::from_str(&auth_value).unwrap(),
    );
    let req = Request {
        method: v.method,
        path: v.path,
        query: v.query,
        headers: &h,
    };
    let auth = parse(&req).unwrap_or_else(|e| panic!("{}: {e}", v.name));
    let canonical = canonical_request(&req, &auth, &sha256_hex(v.body.as_bytes()));
    assert_eq!(canonical, v.canonical, "{}: canonical request", v.name);
    verify(
        &req,
        &auth,
        SECRET,
        &sha256_hex(v.body.as_bytes()),
        &expect(SUITE_TIME),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", v.name));
}

#[test]
fn aws_suite_get_vanilla() {
    run_vector(&Vector {
        name: "get-vanilla",
        method: "GET",
        path: "/",
        query: "",
        headers: &[
            ("Host", "example.amazonaws.com"),
            ("X-Amz-Date", "20150830T123600Z"),
        ],
        body: "",
        canonical: "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
    });
}

#[test]
fn sign_then_verify_round_trip_and_every_mutation_fails() {
    let body = br#"{"hello":"world"}"#;
    let path = "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Af/invocations";
    let query = "Qualifier=live";
    let mut h = headers(&[
        ("host", "127.0.0.1:9000"),
        ("content-type", "application/json"),
        ("x-amz-invocation-type", "RequestResponse"),
    ]);
    let creds = Credentials {
        access_key: AKID,
        secret: SECRET,
        session_token: None,
    };
    sign_headers(
        "POST",
        path,
        query,
        &mut h,
        body,
        &Signer {
            creds,
            region: "us-east-1",
            service: "service",
            now_s: SUITE_TIME,
        },
    );
    let ok = |method: &str, path: &str, query: &str, h: &http::HeaderMap, body: &[u8]| {
        let req = Request {
            method,
            path,
            query,
            headers: h,
        };
        let auth = parse(&req)?;
        verify(&req, &auth, SECRET, &sha256_hex(body), &expect(SUITE_TIME))
    };
    ok("POST", path, query, &h, body).unwrap();

    assert!(matches!(
        ok("PUT", path, query, &h, body),
        Err(SigError::Mismatch { .. })
    ));
    assert!(
        ok(
            "POST",
            "/2015-03-31/functions/g/invocations",
            query,
            &h,
            body
        )
        .is_err()
    );
    assert!(ok("POST", path, "Qualifier=prod", &h, body).is_err());
    assert!(ok("POST", path, query, &h, br#"{"hello":"World"}"#).is_err());
    let mut h2 = h.clone();
    h2.insert(
        "x-amz-invocation-type",
        http::HeaderValue::from_static("Event"),
    );
    assert!(ok("POST", path, query, &h2, body).is_err());
    let req = Request {
        method: "POST",
        path,
        query,
        headers: &h,
    };
    let auth = parse(&req).unwrap();
    assert!(matches!(
        verify(
            &req,
            &auth,
            "wrong-secret",
            &sha256_hex(body),
            &expect(SUITE_TIME)
        ),
        Err(SigError::Mismatch { .. })
    ));
    // An unsigned header added later does not matter.
    let mut h3 = h.clone();
    h3.insert("user-agent", http::HeaderValue::from_static("curl"));
    ok("POST", path, query, &h3, body).unwrap();
}

#[test]
fn clock_skew_window_is_five_minutes_each_way() {
    let mut h = headers(&[("host", "localhost")]);
    let creds = Credentials {
        access_key: AKID,
        secret: SECRET,
        session_token: None,
    };
    sign_headers(
        "GET",
        "/",
        "",
        &mut h,
        b"",
        &Signer {
            creds,
            region: "us-east-1",
            service: "service",
            now_s: SUITE_TIME,
        },
    );
    let req = Request {
        method: "GET",
        path: "/",
        query: "",
        headers: &h,
    };
    let auth = parse(&req).unwrap();
    let at = |now| verify(&req, &auth, SECRET, &sha256_hex(b""), &expect(now));
    at(SUITE_TIME + 299).unwrap();
    at(SUITE_TIME - 299).unwrap();
    let late = at(SUITE_TIME + 301).unwrap_err();
    assert_eq!(
        late.to_string(),
        "Signature expired: 20150830T123600Z is now earlier than 20150830T123601Z (20150830T124101Z - 5 min.)"
    );
    assert_eq!(late.code(), "InvalidSignatureException");
    let early = at(SUITE_TIME - 301).unwrap_err();
    assert!(
        early
            .to_string()
            .starts_with("Signature not yet current: 20150830T123600Z")
    );
}

#[test]
fn scope_checks() {
    let mut h = headers(&[("host", "localhost")]);
    let creds = Credentials {
        access_key: AKID,
        secret: SECRET,
        session_token: None,
    };
    sign_headers(
        "GET",
        "/",
        "",
        &mut h,
        b"",
        &Signer {
            creds,
            region: "eu-west-1",
            service: "lambda",
            now_s: SUITE_TIME,
        },
    );
    let req = Request {
        method: "GET",
        path: "/",
        query: "",
        headers: &h,
    };
    let auth = parse(&req).unwrap();
    let e = verify(&req, &auth, SECRET, &sha256_hex(b""), &expect(SUITE_TIME)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Credential should be scoped to correct service: 'service'. "
    );
    let any_region = Expectation {
        service: "lambda",
        region: None,
        now_s: SUITE_TIME,
        max_skew_s: 300,
    };
    verify(&req, &auth, SECRET, &sha256_hex(b""), &any_region).unwrap();
    let us = Expectation {
        service: "lambda",
        region: Some("us-east-1"),
        now_s: SUITE_TIME,
        max_skew_s: 300,
    };
    assert_eq!(
        verify(&req, &auth, SECRET, &sha256_hex(b""), &us)
            .unwrap_err()
            .to_string(),
        "Credential should be scoped to a valid region. "
    );
}

#[test]
fn host_must_be_signed() {
    let mut h = headers(&[("x-amz-date", "20150830T123600Z"), ("host", "localhost")]);
    let creds = Credentials {
        access_key: AKID,
        secret: SECRET,
        session_token: None,
    };
    sign_headers(
        "GET",
        "/",
        "",
        &mut h,
        b"",
        &Signer {
            creds,
            region: "us-east-1",
            service: "service",
            now_s: SUITE_TIME,
        },
    );
    let value = h
        .get("authorization")
        .unwrap()
        .to_str()
        .unwrap()
        .replace("host;x-amz-date", "x-amz-date");
    h.insert(
        "authorization",
        http::HeaderValue::from_str(&value).unwrap(),
    );
    let req = Request {
        method: "GET",
        path: "/",
        query: "",
        headers: &h,
    };
    let auth = parse(&req).unwrap();
    assert!(matches!(
        verify(&req, &auth, SECRET, &sha256_hex(b""), &expect(SUITE_TIME)),
        Err(SigError::Incomplete(_))
    ));
}

#[test]
fn malformed_headers_are_incomplete_not_panics() {
    for value in [
        "AWS4-HMAC-SHA256",
        "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/service/aws4_request",
        "AWS4-HMAC-SHA256 Credential=AKID, SignedHeaders=host, Signature=00",
        "AWS4-HMAC-SHA256 Credential=a/b/c/d/aws4_request, SignedHeaders=host, Signature=zz",
        "AWS4-HMAC-SHA256 Credential=a/b/c/d/e/f, SignedHeaders=, Signature=",
        "AWS4-HMAC-SHA256 Credential=a/20150830/c/d/aws4_request, Credential=x, SignedHeaders=host, Signature=0",
        "Basic dXNlcjpwYXNz",
        "AWS4-HMAC-SHA256 ,,,===,",
    ] {
        let mut h = headers(&[("host", "localhost"), ("x-amz-date", "20150830T123600Z")]);
        h.insert("authorization", http::HeaderValue::from_str(value).unwrap());
        let req = Request {
            method: "GET",
            path: "/",
            query: "",
            headers: &h,
        };
        let err = parse(&req).unwrap_err();
        assert_ne!(err, SigError::Missing, "{value}");
    }
    let h = headers(&[("host", "localhost")]);
    let req = Request {
        method: "GET",
        path: "/",
        query: "",
        headers: &h,
    };
    assert_eq!(parse(&req).unwrap_err(), SigError::Missing);
    assert_eq!(
        SigError::Missing.code(),
        "MissingAuthenticationTokenException"
    );
}

#[test]
fn canonical_uri_normalises_and_double_encodes() {
    for (raw, want) in [
        ("/", "/"),
        ("", "/"),
        ("/example/..", "/"),
        ("/example/foo/..", "/example"),
        ("//example//", "/example/"),
        ("/./", "/"),
        ("/a/./b/../c", "/a/c"),
        (
            "/functions/arn%3Aaws%3Alambda/x",
            "/functions/arn%253Aaws%253Alambda/x",
        ),
        ("/-._~", "/-._~"),
        ("/a b", "/a%20b"),
    ] {
        assert_eq!(canonical_uri(raw), want, "{raw:?}");
    }
}

#[test]
fn canonical_query_sorts_and_encodes() {
    assert_eq!(canonical_query("", None), "");
    assert_eq!(canonical_query("b=2&a=1&A=0", None), "A=0&a=1&b=2");
    assert_eq!(
        canonical_query("Param1=value2&Param1=Value1", None),
        "Param1=Value1&Param1=value2"
    );
    assert_eq!(canonical_query("k=a%20b&flag", None), "flag=&k=a%20b");
    assert_eq!(canonical_query("x=%7E%2F", None), "x=~%2F");
    assert_eq!(
        canonical_query("x=1&X-Amz-Signature=abc", Some("X-Amz-Signature")),
        "x=1"
    );
}

#[test]
fn amz_dates() {
    assert_eq!(parse_amz_date("20150830T123600Z"), Some(SUITE_TIME));
    assert_eq!(format_amz_date(SUITE_TIME), "20150830T123600Z");
    for bad in [
        "2015-08-30T12:36:00Z",
        "20151330T123600Z",
        "20150830T123600",
        "2015083XT123600Z",
        "",
    ] {
        assert_eq!(parse_amz_date(bad), None, "{bad}");
    }
}

/// Splits a raw signed request into method, path, query, headers and body.
fn parse_raw(raw: &str) -> (String, String, String, http::HeaderMap, Vec<u8>) {
    let (head, body) = raw.split_once("\n\n").unwrap_or((raw, ""));
    let mut lines = head.lines();
    let request_line = lines.next().unwrap();
    let (method, rest) = request_line.split_once(' ').unwrap();
    let target = rest.strip_suffix(" HTTP/1.1").unwrap();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut h = http::HeaderMap::new();
    for line in lines {
        let (k, v) = line.split_once(':').unwrap();
        h.append(
            http::HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()).unwrap(),
            http::HeaderValue::from_str(v).unwrap(),
        );
    }
    (
        method.into(),
        path.into(),
        query.into(),
        h,
        body.as_bytes().to_vec(),
    )
}

#[test]
fn aws_signature_v4_test_suite() {
    let mut checked = 0;
    for (name, style, raw) in crate::suite::SIGNED_REQUESTS {
        let (method, path, query, h, body) = parse_raw(raw);
        let req = Request {
            method: &method,
            path: &path,
            query: &query,
            headers: &h,
        };
        let auth = parse(&req).unwrap_or_else(|e| panic!("{name} ({style}): {e}"));
        assert_eq!(auth.access_key, AKID);
        let at = expect(SUITE_TIME + 60);
        verify(&req, &auth, SECRET, &sha256_hex(&body), &at)
            .unwrap_or_else(|e| panic!("{name} ({style}) must verify: {e}"));
        // Any signed change breaks it: the method, the path, the body, the key.
        let other_method = if method == "GET" { "POST" } else { "GET" };
        let changed = Request {
            method: other_method,
            ..req
        };
        assert!(
            verify(&changed, &auth, SECRET, &sha256_hex(&body), &at).is_err(),
            "{name}: method"
        );
        let changed = Request {
            method: &method,
            path: "/other",
            query: &query,
            headers: &h,
        };
        assert!(
            verify(&changed, &auth, SECRET, &sha256_hex(&body), &at).is_err(),
            "{name}: path"
        );
        assert!(
            verify(
                &req_of(&method, &path, &query, &h),
                &auth,
                SECRET,
                &sha256_hex(b"x"),
                &at
            )
            .is_err(),
            "{name}: body"
        );
        assert!(
            verify(
                &req_of(&method, &path, &query, &h),
                &auth,
                "not-the-secret",
                &sha256_hex(&body),
                &at
            )
            .is_err(),
            "{name}: key"
        );
        checked += 1;
    }
    assert_eq!(checked, 35);
}

fn req_of<'a>(
    method: &'a str,
    path: &'a str,
    query: &'a str,
    headers: &'a http::HeaderMap,
) -> Request<'a> {
    Request {
        method,
        path,
        query,
        headers,
    }
}
