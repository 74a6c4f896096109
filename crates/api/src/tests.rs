use std::io::Write as _;

use axum::http::{Method, Request as HttpRequest};
use tower::ServiceExt as _;

use super::*;

const AKID: &str = "AKIATESTKEY000000001";
const SECRET: &str = "secret-one";

struct Fixture {
    _dir: tempfile::TempDir,
    router: Router,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(store_sqlite::SqliteStore::open_in_memory().unwrap());
    let blobs = blobs::BlobStore::open(dir.path()).unwrap();
    let catalog = runtimes::Catalog::with(vec![runtimes::RuntimeInfo {
        id: "provided.al2023".into(),
        kind: runtimes::Kind::Provided,
        version_hash: "ab".into(),
    }]);
    let (sink, logs) = ::logs::open_store(&dir.path().join("logs.db")).unwrap();
    // Handler tests need no isolation (and no root): functions, if any ran,
    // would be plain host processes.
    let launcher = Arc::new(sandbox::DirectLauncher::new().unwrap());
    let pool = pool::Pool::new(
        launcher,
        dir.path().join("runtimes"),
        sink,
        pool::PoolSettings {
            keep_alive: std::time::Duration::from_secs(60),
        },
    );
    let catalog = Arc::new(catalog);
    let invoker = Arc::new(::invoke::Invoker::new(
        store.clone(),
        blobs.clone(),
        catalog.clone(),
        pool,
        10,
    ));
    let control = Control::new(
        store,
        blobs,
        catalog,
        control::Settings {
            account_concurrency: 10,
        },
        Arc::new(DataPlane(invoker.clone())),
        control::CodeUrlSigner::new([3; 32]),
    );
    let keyring = Keyring::new(vec![
        KeyEntry {
            access_key_id: AKID.into(),
            secret_access_key: SECRET.into(),
            account_id: model::AccountId::parse("111111111111").unwrap(),
            session_token: None,
        },
        KeyEntry {
            access_key_id: "AKIATESTKEY000000002".into(),
            secret_access_key: "secret-two".into(),
            account_id: model::AccountId::parse("222222222222").unwrap(),
            session_token: None,
        },
    ])
    .unwrap();
    let queue = queue::Queue::open(&dir.path().join("queue.db")).unwrap();
    let dispatcher = dispatch::Dispatcher::new(
        invoker.clone(),
        queue,
        dispatch::DispatchSettings::default(),
    );
    let state = Arc::new(AppState {
        control: Arc::new(control),
        invoker,
        dispatcher,
        logs,
        keyring: Arc::new(keyring),
    });
    Fixture {
        _dir: dir,
        router: router(state),
    }
}

fn now() -> i64 {
    model::time_fmt::now_ms() / 1000
}

fn signed(
    method: Method,
    path_and_query: &str,
    body: &[u8],
    key: (&str, &str),
    at: i64,
) -> HttpRequest<Body> {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let mut headers = axum::http::HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("localhost:9000"));
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    sigv4::sign_headers(
        method.as_str(),
        path,
        query,
        &mut headers,
        body,
        &sigv4::Signer {
            creds: sigv4::Credentials {
                access_key: key.0,
                secret: key.1,
                session_token: None,
            },
            region: "us-east-1",
            service: "lambda",
            now_s: at,
        },
    );
    let mut req = HttpRequest::builder().method(method).uri(path_and_query);
    for (k, v) in &headers {
        req = req.header(k, v);
    }
    req.body(Body::from(body.to_vec())).unwrap()
}

async fn send(
    f: &Fixture,
    req: HttpRequest<Body>,
) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
    let resp = f.router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let json = if body.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::String(
            String::from_utf8_lossy(&body).into(),
        ))
    };
    (status, headers, json)
}

fn error_type(h: &axum::http::HeaderMap) -> &str {
    h.get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn zip_b64() -> String {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    w.start_file(
        "bootstrap",
        zip::write::SimpleFileOptions::default().unix_permissions(0o755),
    )
    .unwrap();
    w.write_all(b"#!/bin/sh\n").unwrap();
    let bytes = w.finish().unwrap().into_inner();
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn create_body(name: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "FunctionName": name,
        "Runtime": "provided.al2023",
        "Role": "arn:aws:iam::111111111111:role/r",
        "Handler": "bootstrap",
        "Code": {"ZipFile": zip_b64()},
    }))
    .unwrap()
}

#[tokio::test]
async fn authentication_failures_are_aws_403s() {
    let f = fixture();
    let unsigned = HttpRequest::get("/2015-03-31/functions")
        .body(Body::empty())
        .unwrap();
    let (st, h, body) = send(&f, unsigned).await;
    assert_eq!(
        (st, error_type(&h)),
        (StatusCode::FORBIDDEN, "MissingAuthenticationTokenException")
    );
    assert_eq!(body["message"], "Missing Authentication Token");

    let (st, h, body) = send(
        &f,
        signed(
            Method::GET,
            "/2015-03-31/functions",
            b"",
            (AKID, "wrong"),
            now(),
        ),
    )
    .await;
    assert_eq!(
        (st, error_type(&h)),
        (StatusCode::FORBIDDEN, "InvalidSignatureException")
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("The request signature we calculated does not match")
    );

    let (st, h, body) = send(
        &f,
        signed(
            Method::GET,
            "/2015-03-31/functions",
            b"",
            ("AKIANOBODY", "x"),
            now(),
        ),
    )
    .await;
    assert_eq!(
        (st, error_type(&h)),
        (StatusCode::FORBIDDEN, "UnrecognizedClientException")
    );
    assert_eq!(
        body["message"],
        "The security token included in the request is invalid."
    );

    let (st, h, body) = send(
        &f,
        signed(
            Method::GET,
            "/2015-03-31/functions",
            b"",
            (AKID, SECRET),
            now() - 400,
        ),
    )
    .await;
    assert_eq!(
        (st, error_type(&h)),
        (StatusCode::FORBIDDEN, "InvalidSignatureException")
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("Signature expired: ")
    );

    // A body changed after signing.
    let mut req = signed(
        Method::POST,
        "/2015-03-31/functions",
        &create_body("f"),
        (AKID, SECRET),
        now(),
    );
    *req.body_mut() = Body::from(create_body("g"));
    let (st, h, _) = send(&f, req).await;
    assert_eq!(
        (st, error_type(&h)),
        (StatusCode::FORBIDDEN, "InvalidSignatureException")
    );

    let (st, h, _) = send(
        &f,
        signed(
            Method::GET,
            "/2015-03-31/functions",
            b"",
            (AKID, SECRET),
            now(),
        ),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert!(h.contains_key("x-amzn-requestid"));
}

#[tokio::test]
async fn create_get_and_errors_over_http() {
    let f = fixture();
    let me = (AKID, SECRET);
    let (st, _, body) = send(
        &f,
        signed(
            Method::POST,
            "/2015-03-31/functions",
            &create_body("f"),
            me,
            now(),
        ),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    assert_eq!(
        body["FunctionArn"],
        "arn:aws:lambda:us-east-1:111111111111:function:f"
    );
    assert_eq!(body["LoggingConfig"]["LogGroup"], "/aws/lambda/f");

    let (st, h, body) = send(
        &f,
        signed(
            Method::POST,
            "/2015-03-31/functions",
            &create_body("f"),
            me,
            now(),
        ),
    )
    .await;
    assert_eq!(
        (st, error_type(&h)),
        (StatusCode::CONFLICT, "ResourceConflictException")
    );
    assert_eq!(
        body,
        serde_json::json!({"Type": "User", "message": "Function already exist: f"})
    );

    let (st, h, body) = send(
        &f,
        signed(
            Method::POST,
            "/2015-03-31/functions",
            b"{not json",
            me,
            now(),
        ),
    )
    .await;
    assert_eq!(
        (st, error_type(&h)),
        (StatusCode::BAD_REQUEST, "InvalidRequestContentException")
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("Could not parse request body into json: ")
    );
    assert_eq!(h.get("content-type").unwrap(), "application/json");

    let arn_path =
        "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A111111111111%3Afunction%3Af";
    let (st, _, body) = send(&f, signed(Method::GET, arn_path, b"", me, now())).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["Configuration"]["State"], "Active");
    let location = body["Code"]["Location"].as_str().unwrap().to_owned();
    let location = location
        .strip_prefix("http://localhost:9000")
        .unwrap_or_else(|| panic!("absolute link to this server: {location}"))
        .to_owned();
    let dl = HttpRequest::get(location.as_str())
        .body(Body::empty())
        .unwrap();
    let resp = f.router.clone().oneshot(dl).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let tampered = HttpRequest::get(location.replace("Expires=", "Expires=9"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        f.router.clone().oneshot(tampered).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );

    // The other account does not see it.
    let other = ("AKIATESTKEY000000002", "secret-two");
    let (st, h, body) = send(
        &f,
        signed(Method::GET, "/2015-03-31/functions/f", b"", other, now()),
    )
    .await;
    assert_eq!(
        (st, error_type(&h)),
        (StatusCode::NOT_FOUND, "ResourceNotFoundException")
    );
    assert_eq!(
        body["Message"],
        "Function not found: arn:aws:lambda:us-east-1:222222222222:function:f"
    );
    let (_, _, body) = send(
        &f,
        signed(Method::GET, "/2015-03-31/functions", b"", other, now()),
    )
    .await;
    assert_eq!(body["Functions"], serde_json::json!([]));

    let (st, _, _) = send(
        &f,
        signed(Method::DELETE, "/2015-03-31/functions/f", b"", me, now()),
    )
    .await;
    assert_eq!(st, StatusCode::NO_CONTENT);

    let (st, h, _) = send(
        &f,
        signed(Method::GET, "/2015-03-31/nothing-here", b"", me, now()),
    )
    .await;
    assert_eq!(
        (st, error_type(&h)),
        (StatusCode::NOT_FOUND, "UnknownOperationException")
    );
}

#[tokio::test]
async fn tags_over_http() {
    let f = fixture();
    let me = (AKID, SECRET);
    send(
        &f,
        signed(
            Method::POST,
            "/2015-03-31/functions",
            &create_body("f"),
            me,
            now(),
        ),
    )
    .await;
    let path = "/2017-03-31/tags/arn%3Aaws%3Alambda%3Aus-east-1%3A111111111111%3Afunction%3Af";
    let (st, _, _) = send(
        &f,
        signed(
            Method::POST,
            path,
            br#"{"Tags":{"a":"1","b":"2"}}"#,
            me,
            now(),
        ),
    )
    .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _, _) = send(
        &f,
        signed(
            Method::DELETE,
            &format!("{path}?tagKeys=a&tagKeys=zz"),
            b"",
            me,
            now(),
        ),
    )
    .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (_, _, body) = send(&f, signed(Method::GET, path, b"", me, now())).await;
    assert_eq!(body, serde_json::json!({"Tags": {"b": "2"}}));
}
