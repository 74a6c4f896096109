//! EventBridge (JSON 1.1, `X-Amz-Target: AWSEvents.<Operation>`, signing
//! name `events`): event buses, rules, targets, PutEvents and
//! TestEventPattern. Each operation is one call into the `eventbridge`
//! crate; errors are written by [`crate::error`].

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use model::Scope;
use serde_json::Value;

use crate::error::Service;
use crate::{ApiError, AppState, Authed};

pub const TARGET_PREFIX: &str = "AWSEvents.";

/// `POST /` with `X-Amz-Target: AWSEvents.*`.
pub async fn dispatch(s: Arc<AppState>, req: Authed, headers: HeaderMap) -> Response {
    let op = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.strip_prefix(TARGET_PREFIX))
        .unwrap_or("");
    let eb = &s.events;
    let scope = &req.caller.scope;
    let answer = async {
        let body: Value = req.json()?;
        let r = match op {
            "PutRule" => eb.put_rule(scope, &body).await,
            "DescribeRule" => eb.describe_rule(scope, &body),
            "ListRules" => eb.list_rules(scope, &body),
            "DeleteRule" => eb.delete_rule(scope, &body).await,
            "EnableRule" => eb.set_rule_state(scope, &body, true).await,
            "DisableRule" => eb.set_rule_state(scope, &body, false).await,
            "PutTargets" => eb.put_targets(scope, &body).await,
            "RemoveTargets" => eb.remove_targets(scope, &body).await,
            "ListTargetsByRule" => eb.list_targets(scope, &body),
            "PutEvents" => eb.put_events(scope, &body).await,
            "TestEventPattern" => eb.test_event_pattern(&body),
            "CreateEventBus" => eb.create_event_bus(scope, &body).await,
            "DescribeEventBus" => eb.describe_event_bus(scope, &body),
            "ListEventBuses" => eb.list_event_buses(scope, &body),
            "DeleteEventBus" => eb.delete_event_bus(scope, &body).await,
            other => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "UnknownOperationException",
                    format!("{other} is not available on this server"),
                ));
            }
        };
        r.map_err(ApiError::from)
    };
    match answer.await {
        Ok(v) => {
            let mut r = (StatusCode::OK, v.to_string()).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(Service::Events.protocol().content_type()),
            );
            r
        }
        Err(e) => e.response(Service::Events),
    }
}

/// Rule targets go to the function's asynchronous queue, and only if the
/// function's resource policy lets `events.amazonaws.com` invoke it for
/// the rule (`aws lambda add-permission --principal events.amazonaws.com
/// --source-arn <rule ARN>`), as on AWS.
pub struct RuleDelivery {
    pub dispatcher: Arc<dispatch::Dispatcher>,
    pub control: Arc<control::Control>,
}

#[async_trait::async_trait]
impl eventbridge::Deliver for RuleDelivery {
    async fn deliver(
        &self,
        scope: &Scope,
        function_arn: &str,
        source_arn: &str,
        payload: Bytes,
    ) -> Result<(), eventbridge::DeliveryError> {
        use eventbridge::DeliveryError as E;
        match self
            .control
            .service_may_invoke(
                function_arn,
                "events.amazonaws.com",
                source_arn,
                scope.account.as_str(),
            )
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                return Err(E::NotPermitted(format!(
                    "the resource policy of {function_arn} does not let events.amazonaws.com invoke it for {source_arn}"
                )));
            }
            Err(e) => return Err(E::Failed(e.to_string())),
        }
        let req = invoke::InvokeRequest {
            function: function_arn.to_owned(),
            qualifier: None,
            payload,
            tail: false,
            client_context: None,
            trace_header: None,
        };
        self.dispatcher
            .accept(scope, req)
            .await
            .map(|_| ())
            .map_err(|e| E::Failed(e.to_string()))
    }
}
