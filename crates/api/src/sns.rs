//! Amazon SNS over the Query protocol (`POST /` with a form body naming the
//! `Action`, XML answers and errors), and the two unsigned links SNS puts in
//! its messages (`GET /?Action=ConfirmSubscription|Unsubscribe`).
//!
//! Topics and subscriptions live in the `sns` crate; this module reads the
//! parameters, writes the XML, and carries out what a publish fans out to:
//! a Lambda subscriber is invoked asynchronously through
//! [`dispatch::Dispatcher::accept`] (retries, destinations and dead letters
//! apply) only when its resource policy lets `sns.amazonaws.com` invoke it
//! for the topic; an HTTP subscriber gets its POST through the durable
//! webhook queue. A publish is answered once every delivery is queued.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use sns::{BatchEntry, Delivery, MessageAttribute, PublishInput, Topics};

use crate::error::Service;
use crate::query::{Params, Xml};
use crate::{ApiError, AppState, Authed, RequestId};

const NAMESPACE: &str = "http://sns.amazonaws.com/doc/2010-03-31/";
/// The principal SNS invokes functions as.
const PRINCIPAL: &str = "sns.amazonaws.com";

/// Whether a request speaks the Query protocol (a form body).
pub(crate) fn is_query(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
}

/// The code Query services give an authentication failure where Lambda's
/// REST-JSON API has its own.
pub(crate) fn auth_error_code(code: &'static str) -> &'static str {
    match code {
        "InvalidSignatureException" => "SignatureDoesNotMatch",
        "UnrecognizedClientException" => "InvalidClientTokenId",
        other => other,
    }
}

fn answer(action: &str, result: Option<String>, request_id: &str) -> Response {
    let mut body = format!(r#"<?xml version="1.0"?><{action}Response xmlns="{NAMESPACE}">"#);
    if let Some(inner) = result {
        body.push_str(&format!("<{action}Result>{inner}</{action}Result>"));
    }
    body.push_str(&format!(
        "<ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></{action}Response>",
        crate::query::escape(request_id)
    ));
    xml_response(body)
}

fn xml_response(body: String) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    r
}

fn base_url(host: &str) -> String {
    format!("http://{host}")
}

/// `POST /` with a form body: one SNS action.
pub(crate) async fn dispatch(state: Arc<AppState>, req: Authed, id: RequestId) -> Response {
    let params = match std::str::from_utf8(&req.body).ok().and_then(Params::parse) {
        Some(p) => p,
        None => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "MalformedQueryString",
                "The request body is not valid form-encoded UTF-8.",
            )
            .response_for(Service::Sns, Some(&id.0));
        }
    };
    let action = params.get("Action").unwrap_or("").to_owned();
    match run(&state, &req, &params, &action).await {
        Ok(result) => answer(&action, result, &id.0),
        Err(e) => e.response_for(Service::Sns, Some(&id.0)),
    }
}

async fn run(
    state: &Arc<AppState>,
    req: &Authed,
    p: &Params,
    action: &str,
) -> Result<Option<String>, ApiError> {
    let topics = &state.topics;
    let scope = &req.caller.scope;
    let base = base_url(&req.host);
    let mut x = Xml::default();
    match action {
        "CreateTopic" => {
            let arn = topics
                .create_topic(
                    scope,
                    p.get("Name"),
                    &p.string_map("Attributes"),
                    &tag_list(p),
                )
                .await?;
            x.text("TopicArn", &arn);
        }
        "DeleteTopic" => {
            topics.delete_topic(scope, p.get("TopicArn")).await?;
            return Ok(None);
        }
        "ListTopics" => {
            let page = topics.list_topics(scope, p.get("NextToken"))?;
            x.open("Topics");
            for arn in &page.items {
                x.open("member").text("TopicArn", arn).close("member");
            }
            x.close("Topics")
                .optional("NextToken", page.next_token.as_deref());
        }
        "GetTopicAttributes" => {
            let attrs = topics.topic_attributes(scope, p.get("TopicArn"))?;
            x.map(
                "Attributes",
                attrs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            );
        }
        "SetTopicAttributes" => {
            topics
                .set_topic_attribute(
                    scope,
                    p.get("TopicArn"),
                    p.get("AttributeName"),
                    p.get("AttributeValue"),
                )
                .await?;
            return Ok(None);
        }
        "Subscribe" => {
            let subscribed = topics
                .subscribe(
                    scope,
                    p.get("TopicArn"),
                    p.get("Protocol"),
                    p.get("Endpoint"),
                    &p.string_map("Attributes"),
                    p.flag("ReturnSubscriptionArn"),
                    &base,
                )
                .await?;
            if let Some(confirmation) = subscribed.confirmation {
                deliver(state, vec![confirmation]).await?;
            }
            x.text("SubscriptionArn", &subscribed.subscription_arn);
        }
        "ConfirmSubscription" => {
            let arn = topics
                .confirm_subscription(
                    Some(scope),
                    p.get("TopicArn"),
                    p.get("Token"),
                    p.flag("AuthenticateOnUnsubscribe"),
                )
                .await?;
            x.text("SubscriptionArn", &arn);
        }
        "Unsubscribe" => {
            topics
                .unsubscribe(Some(scope), p.get("SubscriptionArn"))
                .await?;
            return Ok(None);
        }
        "ListSubscriptions" | "ListSubscriptionsByTopic" => {
            let topic = if action == "ListSubscriptionsByTopic" {
                Some(p.get("TopicArn").ok_or_else(|| {
                    ApiError::from(sns::SnsError::Validation(
                        "1 validation error detected: Value null at 'topicArn' failed to satisfy constraint: Member must not be null".into(),
                    ))
                })?)
            } else {
                None
            };
            let page = topics.list_subscriptions(scope, topic, p.get("NextToken"))?;
            x.open("Subscriptions");
            for row in &page.items {
                x.open("member");
                for (k, v) in row {
                    x.text(k, v);
                }
                x.close("member");
            }
            x.close("Subscriptions")
                .optional("NextToken", page.next_token.as_deref());
        }
        "GetSubscriptionAttributes" => {
            let attrs = topics.subscription_attributes(scope, p.get("SubscriptionArn"))?;
            x.map(
                "Attributes",
                attrs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            );
        }
        "SetSubscriptionAttributes" => {
            topics
                .set_subscription_attribute(
                    scope,
                    p.get("SubscriptionArn"),
                    p.get("AttributeName"),
                    p.get("AttributeValue"),
                )
                .await?;
            return Ok(None);
        }
        "Publish" => {
            let input = PublishInput {
                topic_arn: p.get("TopicArn").map(str::to_owned),
                target_arn: p.get("TargetArn").map(str::to_owned),
                phone_number: p.get("PhoneNumber").map(str::to_owned),
                message: p.get("Message").map(str::to_owned),
                subject: p.get("Subject").map(str::to_owned),
                message_structure: p.get("MessageStructure").map(str::to_owned),
                attributes: message_attributes(p, "MessageAttributes")?,
                message_group_id: p.get("MessageGroupId").map(str::to_owned),
                message_deduplication_id: p.get("MessageDeduplicationId").map(str::to_owned),
            };
            let published = topics.publish(scope, input, &base)?;
            deliver(state, published.deliveries).await?;
            x.text("MessageId", &published.message_id)
                .optional("SequenceNumber", published.sequence_number.as_deref());
        }
        "PublishBatch" => {
            let mut entries = Vec::new();
            for m in p.members("PublishBatchRequestEntries") {
                let get = |f: &str| p.get(&format!("{m}.{f}")).map(str::to_owned);
                entries.push(BatchEntry {
                    id: get("Id").unwrap_or_default(),
                    message: get("Message"),
                    subject: get("Subject"),
                    message_structure: get("MessageStructure"),
                    attributes: message_attributes(p, &format!("{m}.MessageAttributes"))?,
                    message_group_id: get("MessageGroupId"),
                    message_deduplication_id: get("MessageDeduplicationId"),
                });
            }
            let published = topics.publish_batch(scope, p.get("TopicArn"), entries, &base)?;
            deliver(state, published.deliveries).await?;
            x.open("Successful");
            for s in &published.successful {
                x.open("member")
                    .text("Id", &s.id)
                    .text("MessageId", &s.message_id)
                    .optional("SequenceNumber", s.sequence_number.as_deref())
                    .close("member");
            }
            x.close("Successful").open("Failed");
            for f in &published.failed {
                x.open("member")
                    .text("Id", &f.id)
                    .text("Code", f.code)
                    .text("Message", &f.message)
                    .text("SenderFault", if f.sender_fault { "true" } else { "false" })
                    .close("member");
            }
            x.close("Failed");
        }
        "ListTagsForResource" => {
            let tags = topics.list_tags(scope, p.get("ResourceArn"))?;
            x.open("Tags");
            for (k, v) in &tags {
                x.open("member")
                    .text("Key", k)
                    .text("Value", v)
                    .close("member");
            }
            x.close("Tags");
        }
        "TagResource" => {
            topics
                .tag(scope, p.get("ResourceArn"), &tag_list(p))
                .await?;
        }
        "UntagResource" => {
            let keys: Vec<String> = p
                .members("TagKeys")
                .iter()
                .filter_map(|m| p.get(m).map(str::to_owned))
                .collect();
            topics.untag(scope, p.get("ResourceArn"), &keys).await?;
        }
        "" => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "MissingAction",
                "The request must contain the parameter Action.",
            ));
        }
        other => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "InvalidAction",
                format!("The action {other} is not valid for this web service."),
            ));
        }
    }
    Ok(Some(x.finish()))
}

/// `Tags.member.N.Key` / `.Value`.
fn tag_list(p: &Params) -> Vec<(String, String)> {
    p.members("Tags")
        .iter()
        .filter_map(|m| {
            Some((
                p.get(&format!("{m}.Key"))?.to_owned(),
                p.get(&format!("{m}.Value")).unwrap_or("").to_owned(),
            ))
        })
        .collect()
}

/// `Name.entry.N.Name`, `.Value.DataType`, `.Value.StringValue`,
/// `.Value.BinaryValue` (base64).
fn message_attributes(
    p: &Params,
    name: &str,
) -> Result<BTreeMap<String, MessageAttribute>, ApiError> {
    let mut out = BTreeMap::new();
    for e in p.entries(name) {
        let Some(attr_name) = p.get(&format!("{e}.Name")) else {
            continue;
        };
        let Some(data_type) = p.get(&format!("{e}.Value.DataType")) else {
            return Err(ApiError::from(sns::SnsError::Validation(format!(
                "1 validation error detected: Value null at 'messageAttributes.{attr_name}.member.dataType' failed to satisfy constraint: Member must not be null"
            ))));
        };
        let binary_value = match p.get(&format!("{e}.Value.BinaryValue")) {
            Some(b) => Some(
                base64::engine::general_purpose::STANDARD
                    .decode(b)
                    .map_err(|_| {
                        ApiError::from(sns::SnsError::InvalidParameterValue(format!(
                            "The message attribute '{attr_name}' contains an invalid Base64 Encoded String as a binary value"
                        )))
                    })?,
            ),
            None => None,
        };
        out.insert(
            attr_name.to_owned(),
            MessageAttribute {
                data_type: data_type.to_owned(),
                string_value: p.get(&format!("{e}.Value.StringValue")).map(str::to_owned),
                binary_value,
            },
        );
    }
    Ok(out)
}

/// Hands every delivery to the asynchronous layer, all at once; answers
/// once each is queued. A delivery SNS would fail (no permission, no such
/// function) is counted and logged; a queue that cannot take work fails the
/// request, so that nothing acknowledged is lost.
async fn deliver(state: &Arc<AppState>, deliveries: Vec<Delivery>) -> Result<(), ApiError> {
    if deliveries.is_empty() {
        return Ok(());
    }
    let mut set = tokio::task::JoinSet::new();
    for d in deliveries {
        let s = state.clone();
        set.spawn(async move { deliver_one(&s, d).await });
    }
    let mut first_error = None;
    while let Some(joined) = set.join_next().await {
        let result = joined.unwrap_or_else(|e| Err(ApiError::internal(e)));
        if let Err(e) = result {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

async fn deliver_one(state: &AppState, d: Delivery) -> Result<(), ApiError> {
    let metrics = state.topics.metrics();
    match d {
        Delivery::Lambda {
            subscription_arn,
            topic_arn,
            topic_account,
            function_arn,
            event,
        } => {
            let allowed = match state
                .control
                .service_may_invoke(&function_arn, PRINCIPAL, &topic_arn, &topic_account)
                .await
            {
                Ok(allowed) => allowed,
                Err(
                    control::ControlError::FunctionNotFound(_)
                    | control::ControlError::NotFound(_)
                    | control::ControlError::InvalidParameter(_),
                ) => false,
                Err(e) => return Err(e.into()),
            };
            if !allowed {
                tracing::warn!(subscription = %subscription_arn, function = %function_arn,
                    "SNS delivery refused: the function does not exist or its resource policy does not let sns.amazonaws.com invoke it for this topic");
                metrics.notifications_failed.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            let Ok(model::arn::ResourceArn::Function(arn)) =
                model::arn::ResourceArn::parse(&function_arn)
            else {
                metrics.notifications_failed.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            };
            let req = invoke::InvokeRequest {
                function: function_arn.clone(),
                qualifier: None,
                payload: event.into(),
                tail: false,
                client_context: None,
                trace_header: None,
            };
            match state.dispatcher.accept(&arn.scope, req).await {
                Ok(_) => {
                    metrics
                        .notifications_delivered
                        .fetch_add(1, Ordering::Relaxed);
                    Ok(())
                }
                Err(
                    e @ (invoke::InvokeError::DiskFull(_)
                    | invoke::InvokeError::Queue(_)
                    | invoke::InvokeError::Store(_)),
                ) => Err(e.into()),
                Err(e) => {
                    tracing::warn!(subscription = %subscription_arn, function = %function_arn, error = %e,
                        "SNS delivery to a function failed");
                    metrics.notifications_failed.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                }
            }
        }
        Delivery::Http {
            subscription_arn,
            url,
            headers,
            body,
        } => {
            state
                .dispatcher
                .accept_http(url, headers, body.into())
                .await?;
            if subscription_arn.is_some() {
                metrics
                    .notifications_delivered
                    .fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        }
    }
}

/// `GET /?Action=ConfirmSubscription&TopicArn=..&Token=..` and
/// `GET /?Action=Unsubscribe&SubscriptionArn=..`: the links in SNS's
/// messages, which subscribers follow without signing. The token (or the
/// subscription's unguessable id) is the credential.
pub(crate) async fn unsigned(
    State(state): State<Arc<AppState>>,
    uri: Uri,
    id: RequestId,
) -> Response {
    let Some(p) = Params::parse(uri.query().unwrap_or("")) else {
        return ApiError::unknown_operation().into_response();
    };
    let topics: &Topics = &state.topics;
    let action = p.get("Action").unwrap_or("").to_owned();
    let result = match action.as_str() {
        "ConfirmSubscription" => topics
            .confirm_subscription(None, p.get("TopicArn"), p.get("Token"), false)
            .await
            .map(|arn| {
                let mut x = Xml::default();
                x.text("SubscriptionArn", &arn);
                Some(x.finish())
            }),
        "Unsubscribe" => topics
            .unsubscribe(None, p.get("SubscriptionArn"))
            .await
            .map(|()| None),
        _ => return ApiError::unknown_operation().into_response(),
    };
    match result {
        Ok(r) => answer(&action, r, &id.0),
        Err(e) => ApiError::from(e).response_for(Service::Sns, Some(&id.0)),
    }
}

/// What `SigningCertURL` points at: how this server signs messages. There is
/// no certificate: signatures are HMAC-SHA256 with a key the server keeps.
pub(crate) async fn signing_key_note() -> Response {
    let mut r = (
        StatusCode::OK,
        "Messages from this server are signed with HMAC-SHA256 over SNS's canonical \
         string of the message's fields, with a key the server keeps. There is no \
         certificate: AWS's certificate-based signature validators cannot verify them.\n",
    )
        .into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
