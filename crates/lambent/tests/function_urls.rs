//! Function URL configurations through AWS's own Rust SDK.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use aws_sdk_lambda::types::{Cors, FunctionUrlAuthType, InvokeMode};
use common::*;

fn port_of(endpoint: &str) -> String {
    endpoint.rsplit(':').next().unwrap().to_owned()
}

#[tokio::test]
async fn url_config_lifecycle_through_the_rust_sdk() {
    let server = Server::start();
    let a = server.client(KEY_A).await;
    create_noop_function(&a, "web").await;
    let port = port_of(&server.endpoint);

    let created = a
        .create_function_url_config()
        .function_name("web")
        .auth_type(FunctionUrlAuthType::None)
        .cors(
            Cors::builder()
                .allow_origins("http://app.localhost:3000")
                .allow_methods("GET")
                .allow_methods("POST")
                .max_age(600)
                .build(),
        )
        .send()
        .await
        .expect("create_function_url_config");
    let url = created.function_url().to_owned();
    let (id, rest) = url
        .strip_prefix("http://")
        .and_then(|u| u.split_once('.'))
        .expect("an http URL");
    assert_eq!(id.len(), 32, "{url}");
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    );
    assert_eq!(rest, format!("lambda-url.us-east-1.localhost:{port}/"));
    assert_eq!(
        created.function_arn(),
        "arn:aws:lambda:us-east-1:111111111111:function:web"
    );
    assert_eq!(created.auth_type(), &FunctionUrlAuthType::None);
    assert_eq!(created.invoke_mode(), None, "echoed only when given");
    assert_eq!(created.cors().unwrap().max_age(), Some(600));
    assert!(created.creation_time().ends_with('Z'));

    let dup = a
        .create_function_url_config()
        .function_name("web")
        .auth_type(FunctionUrlAuthType::None)
        .send()
        .await
        .unwrap_err();
    let (code, msg) = code_and_message(dup.as_service_error().unwrap());
    assert_eq!(code, "ResourceConflictException");
    assert_eq!(
        msg,
        "Failed to create function url config for [functionArn = arn:aws:lambda:us-east-1:111111111111:function:web]. Error message:  FunctionUrlConfig exists for this Lambda function"
    );

    let got = a
        .get_function_url_config()
        .function_name("web")
        .send()
        .await
        .unwrap();
    assert_eq!(got.function_url(), url);
    assert_eq!(got.invoke_mode(), Some(&InvokeMode::Buffered));
    assert_eq!(
        got.cors().unwrap().allow_methods(),
        &["GET".to_owned(), "POST".to_owned()]
    );

    let updated = a
        .update_function_url_config()
        .function_name("web")
        .auth_type(FunctionUrlAuthType::AwsIam)
        .invoke_mode(InvokeMode::ResponseStream)
        .send()
        .await
        .unwrap();
    assert_eq!(updated.auth_type(), &FunctionUrlAuthType::AwsIam);
    assert_eq!(updated.invoke_mode(), Some(&InvokeMode::ResponseStream));
    assert_eq!(updated.function_url(), url);
    // Members not given stay as they were.
    assert_eq!(updated.cors().unwrap().max_age(), Some(600));

    // One URL per alias beside the function's, listed and paged.
    a.publish_version()
        .function_name("web")
        .send()
        .await
        .unwrap();
    a.create_alias()
        .function_name("web")
        .name("live")
        .function_version("1")
        .send()
        .await
        .unwrap();
    let alias_url = a
        .create_function_url_config()
        .function_name("web")
        .qualifier("live")
        .auth_type(FunctionUrlAuthType::AwsIam)
        .send()
        .await
        .unwrap();
    assert_eq!(
        alias_url.function_arn(),
        "arn:aws:lambda:us-east-1:111111111111:function:web:live"
    );
    assert_ne!(alias_url.function_url(), url);
    let first = a
        .list_function_url_configs()
        .function_name("web")
        .max_items(1)
        .send()
        .await
        .unwrap();
    assert_eq!(first.function_url_configs().len(), 1);
    let second = a
        .list_function_url_configs()
        .function_name("web")
        .max_items(1)
        .marker(first.next_marker().expect("a second page"))
        .send()
        .await
        .unwrap();
    assert_eq!(second.function_url_configs().len(), 1);
    assert_eq!(second.next_marker(), None);
    let mut arns: Vec<_> = first
        .function_url_configs()
        .iter()
        .chain(second.function_url_configs())
        .map(|c| c.function_arn().to_owned())
        .collect();
    arns.sort();
    assert_eq!(
        arns,
        [
            "arn:aws:lambda:us-east-1:111111111111:function:web",
            "arn:aws:lambda:us-east-1:111111111111:function:web:live"
        ]
    );

    // Deleting the function's URL leaves the alias's.
    a.delete_function_url_config()
        .function_name("web")
        .send()
        .await
        .unwrap();
    let gone = a
        .get_function_url_config()
        .function_name("web")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code_and_message(gone.as_service_error().unwrap()),
        (
            "ResourceNotFoundException".to_owned(),
            "The resource you requested does not exist.".to_owned()
        )
    );
    a.get_function_url_config()
        .function_name("web")
        .qualifier("live")
        .send()
        .await
        .expect("the alias's URL stays");

    // The same URL comes back for the same function and qualifier.
    let again = a
        .create_function_url_config()
        .function_name("web")
        .auth_type(FunctionUrlAuthType::None)
        .send()
        .await
        .unwrap();
    assert_eq!(again.function_url(), url);

    // An alias's URL goes with the alias.
    a.delete_alias()
        .function_name("web")
        .name("live")
        .send()
        .await
        .unwrap();
    let listed = a
        .list_function_url_configs()
        .function_name("web")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.function_url_configs().len(), 1);

    // And every URL goes with the function.
    a.delete_function()
        .function_name("web")
        .send()
        .await
        .unwrap();
    let err = a
        .list_function_url_configs()
        .function_name("web")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code_and_message(err.as_service_error().unwrap()),
        (
            "ResourceNotFoundException".to_owned(),
            "Function does not exist".to_owned()
        )
    );
}

#[tokio::test]
async fn url_config_errors_in_aws_shapes() {
    let server = Server::start();
    let a = server.client(KEY_A).await;
    create_noop_function(&a, "f").await;
    a.publish_version().function_name("f").send().await.unwrap();

    let qualifier_error = |q: &str| {
        format!(
            "1 validation error detected: Value '{q}' at 'qualifier' failed to satisfy constraint: Member must satisfy regular expression pattern: ((?!^\\d+$)^[0-9a-zA-Z-_]+$)"
        )
    };
    for q in ["1", "$LATEST"] {
        let e = a
            .create_function_url_config()
            .function_name("f")
            .qualifier(q)
            .auth_type(FunctionUrlAuthType::None)
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            code_and_message(e.as_service_error().unwrap()),
            ("ValidationException".to_owned(), qualifier_error(q))
        );
        let e = a
            .get_function_url_config()
            .function_name("f")
            .qualifier(q)
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            code_and_message(e.as_service_error().unwrap()).0,
            "ValidationException"
        );
    }
    let e = a
        .create_function_url_config()
        .function_name("nope")
        .auth_type(FunctionUrlAuthType::None)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code_and_message(e.as_service_error().unwrap()),
        (
            "ResourceNotFoundException".to_owned(),
            "Function does not exist".to_owned()
        )
    );
    let e = a
        .create_function_url_config()
        .function_name("f")
        .qualifier("missing-alias")
        .auth_type(FunctionUrlAuthType::None)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code_and_message(e.as_service_error().unwrap()),
        (
            "ResourceNotFoundException".to_owned(),
            "Function does not exist".to_owned()
        )
    );
    let e = a
        .create_function_url_config()
        .function_name("f:other")
        .qualifier("live")
        .auth_type(FunctionUrlAuthType::None)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code_and_message(e.as_service_error().unwrap()),
        (
            "InvalidParameterValueException".to_owned(),
            "The derived qualifier from the function name does not match the specified qualifier."
                .to_owned()
        )
    );
    let e = a
        .create_function_url_config()
        .function_name("f")
        .auth_type(FunctionUrlAuthType::from("PUBLIC"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code_and_message(e.as_service_error().unwrap()),
        (
            "ValidationException".to_owned(),
            "1 validation error detected: Value 'PUBLIC' at 'authType' failed to satisfy constraint: Member must satisfy enum value set: [AWS_IAM, NONE]".to_owned()
        )
    );
    let e = a
        .create_function_url_config()
        .function_name("f")
        .auth_type(FunctionUrlAuthType::None)
        .invoke_mode(InvokeMode::from("UNKNOWN"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code_and_message(e.as_service_error().unwrap()),
        (
            "ValidationException".to_owned(),
            "1 validation error detected: Value 'UNKNOWN' at 'invokeMode' failed to satisfy constraint: Member must satisfy enum value set: [RESPONSE_STREAM, BUFFERED]".to_owned()
        )
    );
    let mut methods = Cors::builder();
    for m in ["GET", "PUT", "POST", "DELETE", "HEAD", "PATCH", "*"] {
        methods = methods.allow_methods(m);
    }
    let e = a
        .create_function_url_config()
        .function_name("f")
        .auth_type(FunctionUrlAuthType::None)
        .cors(methods.max_age(86_401).build())
        .send()
        .await
        .unwrap_err();
    let (code, msg) = code_and_message(e.as_service_error().unwrap());
    assert_eq!(code, "ValidationException");
    assert!(msg.starts_with("2 validation errors detected: "), "{msg}");
    assert!(msg.contains("'cors.allowMethods'"), "{msg}");
    assert!(msg.contains("Value '86401' at 'cors.maxAge'"), "{msg}");
    // Nothing of the refused requests was kept.
    let listed = a
        .list_function_url_configs()
        .function_name("f")
        .send()
        .await
        .unwrap();
    assert!(listed.function_url_configs().is_empty());
    for e in [
        a.get_function_url_config()
            .function_name("f")
            .send()
            .await
            .map(drop)
            .unwrap_err()
            .into_service_error()
            .meta()
            .clone(),
        a.delete_function_url_config()
            .function_name("f")
            .send()
            .await
            .map(drop)
            .unwrap_err()
            .into_service_error()
            .meta()
            .clone(),
        a.update_function_url_config()
            .function_name("f")
            .auth_type(FunctionUrlAuthType::AwsIam)
            .send()
            .await
            .map(drop)
            .unwrap_err()
            .into_service_error()
            .meta()
            .clone(),
    ] {
        assert_eq!(e.code(), Some("ResourceNotFoundException"));
        assert_eq!(
            e.message(),
            Some("The resource you requested does not exist.")
        );
    }
    // Another account sees nothing of this function.
    let b = server.client(KEY_B).await;
    let e = b
        .get_function_url_config()
        .function_name("f")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code_and_message(e.as_service_error().unwrap()).0,
        "ResourceNotFoundException"
    );
}

#[tokio::test]
async fn a_public_domain_names_the_urls() {
    let server = Server::start_with(&["--url-domain", "fn.example.com"]);
    let a = server.client(KEY_A).await;
    create_noop_function(&a, "pub").await;
    let created = a
        .create_function_url_config()
        .function_name("pub")
        .auth_type(FunctionUrlAuthType::AwsIam)
        .send()
        .await
        .unwrap();
    let url = created.function_url();
    assert!(url.starts_with("https://"), "{url}");
    assert!(
        url.ends_with(".lambda-url.us-east-1.fn.example.com/"),
        "{url}"
    );
}
