use std::io::Write as _;

use axum::http::{Method, Request as HttpRequest};
use tower::ServiceExt as _;

use super::*;

const AKID: &str = "AKIATESTKEY000000001";
const SECRET: &str = "secret-one";

struct Fixture {
    dir: tempfile::TempDir,
    router: Router,
    sink: ::logs::LogSink,
    state: Arc<AppState>,
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
        sink.clone(),
        pool::PoolSettings::with_keep_alive(std::time::Duration::from_secs(60)),
    );
    let catalog = Arc::new(catalog);
    let invoker = Arc::new(::invoke::Invoker::new(
        store.clone(),
        blobs.clone(),
        catalog.clone(),
        pool,
        10,
    ));
    let urls = Arc::new(crate::function_urls::UrlIndex::default());
    let control = Control::new(
        store,
        blobs,
        catalog,
        control::Settings {
            account_concurrency: 10,
            vpc_subnets: Default::default(),
            code_storage_bytes: control::TOTAL_CODE_SIZE_LIMIT,
        },
        Arc::new(DataPlane(invoker.clone(), urls.clone())),
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
    let scheduler = ::scheduler::Scheduler::open(
        &dir.path().join("scheduler.db"),
        Arc::new(crate::schedules::QueueDelivery(dispatcher.clone())),
        ::scheduler::SchedulerSettings::default(),
    )
    .unwrap();
    let esm = ::esm::Esm::open(dir.path(), invoker.clone()).unwrap();
    let state = Arc::new(AppState {
        control: Arc::new(control),
        invoker,
        dispatcher,
        esm,
        logs,
        keyring: Arc::new(keyring),
        urls,
        url_base: model::UrlBase::Local { port: 9000 },
        topics: Arc::new(::sns::Topics::in_memory().unwrap()),
        scheduler,
    });
    Fixture {
        dir,
        router: router(state.clone()),
        sink,
        state,
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

/// A CloudWatch Logs call (JSON 1.1), signed by account 111111111111.
fn logs_call(op: &str, body: serde_json::Value) -> HttpRequest<Body> {
    let body = body.to_string().into_bytes();
    let mut headers = axum::http::HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("localhost:9000"));
    headers.insert(
        "content-type",
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    headers.insert(
        "x-amz-target",
        HeaderValue::from_str(&format!("Logs_20140328.{op}")).unwrap(),
    );
    sigv4::sign_headers(
        "POST",
        "/",
        "",
        &mut headers,
        &body,
        &sigv4::Signer {
            creds: sigv4::Credentials {
                access_key: AKID,
                secret: SECRET,
                session_token: None,
            },
            region: "us-east-1",
            service: "logs",
            now_s: now(),
        },
    );
    let mut req = HttpRequest::builder().method(Method::POST).uri("/");
    for (k, v) in &headers {
        req = req.header(k, v);
    }
    req.body(Body::from(body)).unwrap()
}

/// Writes `n` lines to stream `s1` of `/aws/lambda/f` and waits until they
/// can be read.
async fn log_lines(f: &Fixture, n: usize) {
    let scope = Arc::new(model::Scope::new(
        model::AccountId::parse("111111111111").unwrap(),
        model::Region::parse("us-east-1").unwrap(),
    ));
    for i in 0..n {
        f.sink.push(::logs::LogEvent {
            scope: scope.clone(),
            group: "/aws/lambda/f".into(),
            stream: "s1".into(),
            timestamp_ms: 1_000 + i as i64,
            message: format!("line {i}"),
        });
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (st, _, body) = send(
            f,
            logs_call(
                "FilterLogEvents",
                serde_json::json!({"logGroupName": "/aws/lambda/f"}),
            ),
        )
        .await;
        if st == StatusCode::OK && body["events"].as_array().map(Vec::len) == Some(n) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "log lines never arrived"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn logs_of_missing_groups_and_streams_are_resource_not_found() {
    let f = fixture();
    let missing = serde_json::json!({"logGroupName": "/aws/lambda/nope", "logStreamName": "s1"});
    for op in ["FilterLogEvents", "GetLogEvents", "DescribeLogStreams"] {
        let (st, h, body) = send(&f, logs_call(op, missing.clone())).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{op}");
        assert_eq!(
            h.get("content-type").unwrap(),
            "application/x-amz-json-1.1",
            "{op}"
        );
        assert_eq!(
            body,
            serde_json::json!({"__type": "ResourceNotFoundException",
                               "message": "The specified log group does not exist."}),
            "{op}"
        );
    }
    log_lines(&f, 1).await;
    let (st, _, body) = send(
        &f,
        logs_call(
            "GetLogEvents",
            serde_json::json!({"logGroupName": "/aws/lambda/f", "logStreamName": "s9"}),
        ),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        serde_json::json!({"__type": "ResourceNotFoundException",
                           "message": "The specified log stream does not exist."})
    );
    // By ARN, as `logGroupIdentifier`, the group is found.
    let (st, _, body) = send(
        &f,
        logs_call(
            "DescribeLogStreams",
            serde_json::json!({"logGroupIdentifier":
                "arn:aws:logs:us-east-1:111111111111:log-group:/aws/lambda/f:*"}),
        ),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(body["logStreams"][0]["logStreamName"], "s1");
}

#[tokio::test]
async fn get_log_events_reads_the_newest_unless_told_to_start_from_the_head() {
    let f = fixture();
    log_lines(&f, 5).await;
    let get = |extra: serde_json::Value| {
        let mut body =
            serde_json::json!({"logGroupName": "/aws/lambda/f", "logStreamName": "s1", "limit": 2});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        logs_call("GetLogEvents", body)
    };
    let messages = |body: &serde_json::Value| -> Vec<String> {
        body["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["message"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, _, tail) = send(&f, get(serde_json::json!({}))).await;
    assert_eq!(messages(&tail), ["line 3", "line 4"]);
    let (_, _, back) = send(
        &f,
        get(serde_json::json!({"nextToken": tail["nextBackwardToken"]})),
    )
    .await;
    assert_eq!(messages(&back), ["line 1", "line 2"]);
    let (_, _, head) = send(&f, get(serde_json::json!({"startFromHead": true}))).await;
    assert_eq!(messages(&head), ["line 0", "line 1"]);
    let (_, _, end) = send(
        &f,
        get(serde_json::json!({"startFromHead": true, "nextToken": tail["nextForwardToken"]})),
    )
    .await;
    assert_eq!(messages(&end), Vec::<String>::new());
    assert_eq!(
        end["nextForwardToken"], tail["nextForwardToken"],
        "the end of the stream gives back the token"
    );
    let (st, _, bad) = send(&f, get(serde_json::json!({"nextToken": "nonsense"}))).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(bad["__type"], "InvalidParameterException");
}

/// Collects what the server logs, for the test's thread.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn store_failures_are_logged_with_the_request_id_and_never_sent() {
    let f = fixture();
    log_lines(&f, 1).await;
    // Break the log store under the server.
    let db = rusqlite::Connection::open(f.dir.path().join("logs.db")).unwrap();
    db.execute_batch("DROP TABLE events").unwrap();
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let (st, h, body) = send(
        &f,
        logs_call(
            "FilterLogEvents",
            serde_json::json!({"logGroupName": "/aws/lambda/f"}),
        ),
    )
    .await;
    assert_eq!(st, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        body,
        serde_json::json!({"__type": "ServiceUnavailableException",
                           "message": "The service cannot complete the request."})
    );
    let request_id = h.get("x-amzn-requestid").unwrap().to_str().unwrap();
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("internal error"))
        .unwrap_or_else(|| panic!("no internal error logged: {log}"));
    assert!(line.contains(&format!("request_id={request_id}")), "{line}");
    assert!(line.contains("no such table: events"), "{line}");
}

async fn get_text(router: &Router, path: &str, auth: Option<&str>) -> (StatusCode, String) {
    let mut req = HttpRequest::builder().method(Method::GET).uri(path);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = router
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn metrics_are_not_on_the_api_router() {
    let f = fixture();
    let (st, body) = get_text(&f.router, "/lambent/metrics", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{body}");
    assert!(!body.contains("lambent_async_queue_depth"), "{body}");
}

#[tokio::test]
async fn metrics_router_serves_scrapes_unsigned() {
    let f = fixture();
    let m = metrics_router(f.state.clone(), MetricsAccess::default());
    for path in ["/metrics", "/lambent/metrics"] {
        let (st, body) = get_text(&m, path, None).await;
        assert_eq!(st, StatusCode::OK, "{path}: {body}");
        assert!(
            body.contains("# TYPE lambent_async_queue_depth gauge"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn metrics_router_requires_its_bearer_token() {
    let f = fixture();
    let m = metrics_router(
        f.state.clone(),
        MetricsAccess {
            bearer_token: Some("s3cret-token".into()),
        },
    );
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("s3cret-token"),
        Some("Basic s3cret-token"),
    ] {
        let (st, body) = get_text(&m, "/metrics", auth).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{auth:?}: {body}");
        assert!(!body.contains("lambent_"), "{body}");
    }
    let (st, body) = get_text(&m, "/metrics", Some("Bearer s3cret-token")).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert!(
        body.contains("lambent_async_pending_deliveries 0"),
        "{body}"
    );
}

#[tokio::test]
async fn metrics_on_the_api_router_only_when_asked() {
    let f = fixture();
    let r = router_with_metrics(
        f.state.clone(),
        MetricsAccess {
            bearer_token: Some("t0ken".into()),
        },
    );
    let (st, _) = get_text(&r, "/lambent/metrics", None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, body) = get_text(&r, "/lambent/metrics", Some("Bearer t0ken")).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert!(
        body.contains("lambent_async_events_received_total"),
        "{body}"
    );
    // The Lambda API itself is unchanged beside it.
    let (st, body) = get_text(&r, "/lambent/health", None).await;
    assert_eq!((st, body.as_str()), (StatusCode::OK, "ok"));
}
