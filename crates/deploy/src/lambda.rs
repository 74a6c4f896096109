//! The Lambda API calls a deployment makes, over one signed keep-alive
//! connection.

use serde_json::{Value, json};
use signed_client::{Conn, Credentials, encode_segment};

#[derive(Debug, thiserror::Error)]
pub enum LambdaError {
    #[error(
        "cannot reach the server at {endpoint} ({source}): is `lambent serve` running? Point at it with --endpoint-url or LAMBENT_ENDPOINT"
    )]
    Unreachable {
        endpoint: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Client(signed_client::ClientError),
    #[error("{operation} {target}: {code}: {message}")]
    Api {
        operation: &'static str,
        target: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("{operation} {target}: the server's answer is not JSON")]
    Answer {
        operation: &'static str,
        target: String,
    },
}

impl From<signed_client::ClientError> for LambdaError {
    fn from(e: signed_client::ClientError) -> Self {
        match e {
            signed_client::ClientError::Connect { endpoint, source } => {
                LambdaError::Unreachable { endpoint, source }
            }
            other => LambdaError::Client(other),
        }
    }
}

impl LambdaError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, LambdaError::Api { status: 404, .. })
    }
}

pub struct Lambda {
    host: String,
    creds: Credentials,
    conn: Option<Conn>,
}

impl Lambda {
    pub fn new(host: String, creds: Credentials) -> Self {
        Self {
            host,
            creds,
            conn: None,
        }
    }

    pub fn region(&self) -> &str {
        &self.creds.region
    }

    /// One signed request to any of the server's services; the status and
    /// the body.
    pub async fn request(
        &mut self,
        service: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<signed_client::Reply, LambdaError> {
        let mut tries = 0;
        loop {
            if self.conn.is_none() {
                self.conn = Some(Conn::open(&self.host, self.creds.clone()).await?);
            }
            let Some(conn) = self.conn.as_mut() else {
                continue;
            };
            match conn
                .send(method, path, service, headers, body.clone().into())
                .await
            {
                Ok(r) => return Ok(r),
                // A kept-alive connection the server closed: open another once.
                Err(_) if tries == 0 => {
                    tries += 1;
                    self.conn = None;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// A REST-JSON call (Lambda, Scheduler); errors with AWS's code.
    pub async fn json_call(
        &mut self,
        service: &str,
        operation: &'static str,
        target: &str,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, LambdaError> {
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let reply = self
            .request(
                service,
                method,
                path,
                &[("content-type", "application/json")],
                bytes,
            )
            .await?;
        let parsed: Value = if reply.body.is_empty() {
            Value::Null
        } else {
            match serde_json::from_slice(&reply.body) {
                Ok(v) => v,
                Err(_) if reply.status >= 300 => Value::Null,
                Err(_) => {
                    return Err(LambdaError::Answer {
                        operation,
                        target: target.to_owned(),
                    });
                }
            }
        };
        if reply.status >= 300 {
            let code = reply
                .headers
                .get("x-amzn-errortype")
                .and_then(|v| v.to_str().ok())
                .map(|s| s.split(':').next().unwrap_or(s).to_owned())
                .or_else(|| {
                    parsed
                        .get("Type")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
                .unwrap_or_else(|| format!("HTTP {}", reply.status));
            let message = parsed
                .get("Message")
                .or_else(|| parsed.get("message"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            return Err(LambdaError::Api {
                operation,
                target: target.to_owned(),
                status: reply.status,
                code,
                message,
            });
        }
        Ok(parsed)
    }

    async fn call(
        &mut self,
        operation: &'static str,
        target: &str,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, LambdaError> {
        self.json_call("lambda", operation, target, method, path, body)
            .await
    }

    fn fpath(name: &str) -> String {
        format!("/2015-03-31/functions/{}", encode_segment(name))
    }

    pub async fn get_function(&mut self, name: &str) -> Result<Option<Value>, LambdaError> {
        match self
            .call("GetFunction", name, "GET", &Self::fpath(name), None)
            .await
        {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The caller's account, read from the ARN a `GetFunction` names.
    pub async fn account(&mut self) -> Result<String, LambdaError> {
        let probe = "lambent-deploy-account-probe";
        let err = match self
            .call("GetFunction", probe, "GET", &Self::fpath(probe), None)
            .await
        {
            Ok(v) => {
                return Ok(account_of(
                    v["Configuration"]["FunctionArn"]
                        .as_str()
                        .unwrap_or_default(),
                ));
            }
            Err(e) => e,
        };
        match &err {
            LambdaError::Api { message, .. } if err.is_not_found() => {
                let arn = message.split_whitespace().last().unwrap_or_default();
                let a = account_of(arn);
                if a.is_empty() { Err(err) } else { Ok(a) }
            }
            _ => Err(err),
        }
    }

    pub async fn create_function(&mut self, body: &Value) -> Result<Value, LambdaError> {
        let name = body["FunctionName"].as_str().unwrap_or_default().to_owned();
        self.call(
            "CreateFunction",
            &name,
            "POST",
            "/2015-03-31/functions",
            Some(body),
        )
        .await
    }

    /// UpdateFunctionCode (where a function's architecture changes too).
    pub async fn update_code(
        &mut self,
        name: &str,
        zip_b64: String,
        architectures: &Value,
    ) -> Result<Value, LambdaError> {
        let body = json!({"ZipFile": zip_b64, "Architectures": architectures});
        self.call(
            "UpdateFunctionCode",
            name,
            "PUT",
            &format!("{}/code", Self::fpath(name)),
            Some(&body),
        )
        .await
    }

    pub async fn update_configuration(
        &mut self,
        name: &str,
        body: &Value,
    ) -> Result<Value, LambdaError> {
        self.call(
            "UpdateFunctionConfiguration",
            name,
            "PUT",
            &format!("{}/configuration", Self::fpath(name)),
            Some(body),
        )
        .await
    }

    pub async fn delete_function(&mut self, name: &str) -> Result<(), LambdaError> {
        match self
            .call("DeleteFunction", name, "DELETE", &Self::fpath(name), None)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub async fn publish_version(
        &mut self,
        name: &str,
        body: &Value,
    ) -> Result<Value, LambdaError> {
        self.call(
            "PublishVersion",
            name,
            "POST",
            &format!("{}/versions", Self::fpath(name)),
            Some(body),
        )
        .await
    }

    pub async fn put_alias(
        &mut self,
        name: &str,
        alias: &str,
        body: &Value,
    ) -> Result<Value, LambdaError> {
        let path = format!("{}/aliases/{}", Self::fpath(name), encode_segment(alias));
        let target = format!("{name}:{alias}");
        match self
            .call("UpdateAlias", &target, "PUT", &path, Some(body))
            .await
        {
            Err(e) if e.is_not_found() => {
                let mut b = body.clone();
                b["Name"] = json!(alias);
                self.call(
                    "CreateAlias",
                    &target,
                    "POST",
                    &format!("{}/aliases", Self::fpath(name)),
                    Some(&b),
                )
                .await
            }
            other => other,
        }
    }

    pub async fn list_aliases(&mut self, name: &str) -> Result<Vec<Value>, LambdaError> {
        let v = self
            .call(
                "ListAliases",
                name,
                "GET",
                &format!("{}/aliases", Self::fpath(name)),
                None,
            )
            .await?;
        Ok(v["Aliases"].as_array().cloned().unwrap_or_default())
    }

    pub async fn delete_alias(&mut self, name: &str, alias: &str) -> Result<(), LambdaError> {
        let path = format!("{}/aliases/{}", Self::fpath(name), encode_segment(alias));
        match self.call("DeleteAlias", name, "DELETE", &path, None).await {
            Err(e) if !e.is_not_found() => Err(e),
            _ => Ok(()),
        }
    }

    pub async fn put_concurrency(&mut self, name: &str, n: Option<i64>) -> Result<(), LambdaError> {
        let path = format!("/2017-10-31/functions/{}/concurrency", encode_segment(name));
        match n {
            Some(n) => {
                self.call(
                    "PutFunctionConcurrency",
                    name,
                    "PUT",
                    &path,
                    Some(&json!({"ReservedConcurrentExecutions": n})),
                )
                .await?;
            }
            None => {
                let path = format!("/2017-10-31/functions/{}/concurrency", encode_segment(name));
                match self
                    .call("DeleteFunctionConcurrency", name, "DELETE", &path, None)
                    .await
                {
                    Err(e) if !e.is_not_found() => return Err(e),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    pub async fn put_provisioned(
        &mut self,
        name: &str,
        qualifier: &str,
        n: Option<i64>,
    ) -> Result<(), LambdaError> {
        let path = format!(
            "/2019-09-30/functions/{}/provisioned-concurrency?Qualifier={}",
            encode_segment(name),
            encode_segment(qualifier)
        );
        let target = format!("{name}:{qualifier}");
        match n {
            Some(n) => {
                self.call(
                    "PutProvisionedConcurrencyConfig",
                    &target,
                    "PUT",
                    &path,
                    Some(&json!({"ProvisionedConcurrentExecutions": n})),
                )
                .await?;
            }
            None => match self
                .call(
                    "DeleteProvisionedConcurrencyConfig",
                    &target,
                    "DELETE",
                    &path,
                    None,
                )
                .await
            {
                Err(e) if !e.is_not_found() => return Err(e),
                _ => {}
            },
        }
        Ok(())
    }

    pub async fn put_event_invoke_config(
        &mut self,
        name: &str,
        qualifier: &str,
        body: Option<&Value>,
    ) -> Result<(), LambdaError> {
        let path = format!(
            "/2019-09-25/functions/{}/event-invoke-config?Qualifier={}",
            encode_segment(name),
            encode_segment(qualifier)
        );
        let target = format!("{name}:{qualifier}");
        match body {
            Some(b) => {
                self.call(
                    "PutFunctionEventInvokeConfig",
                    &target,
                    "PUT",
                    &path,
                    Some(b),
                )
                .await?;
            }
            None => match self
                .call(
                    "DeleteFunctionEventInvokeConfig",
                    &target,
                    "DELETE",
                    &path,
                    None,
                )
                .await
            {
                Err(e) if !e.is_not_found() => return Err(e),
                _ => {}
            },
        }
        Ok(())
    }

    pub async fn tag(&mut self, arn: &str, tags: &Value) -> Result<(), LambdaError> {
        self.call(
            "TagResource",
            arn,
            "POST",
            &format!("/2017-03-31/tags/{}", encode_segment(arn)),
            Some(&json!({"Tags": tags})),
        )
        .await?;
        Ok(())
    }

    pub async fn untag(&mut self, arn: &str, keys: &[String]) -> Result<(), LambdaError> {
        if keys.is_empty() {
            return Ok(());
        }
        let q: Vec<String> = keys
            .iter()
            .map(|k| format!("tagKeys={}", encode_segment(k)))
            .collect();
        self.call(
            "UntagResource",
            arn,
            "DELETE",
            &format!("/2017-03-31/tags/{}?{}", encode_segment(arn), q.join("&")),
            None,
        )
        .await?;
        Ok(())
    }

    pub async fn list_tags(&mut self, arn: &str) -> Result<Value, LambdaError> {
        let v = self
            .call(
                "ListTags",
                arn,
                "GET",
                &format!("/2017-03-31/tags/{}", encode_segment(arn)),
                None,
            )
            .await?;
        Ok(v["Tags"].clone())
    }

    /// Every function of the caller (all pages).
    pub async fn list_functions(&mut self) -> Result<Vec<Value>, LambdaError> {
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let path = match &marker {
                None => "/2015-03-31/functions?MaxItems=50".to_owned(),
                Some(m) => format!(
                    "/2015-03-31/functions?MaxItems=50&Marker={}",
                    encode_segment(m)
                ),
            };
            let v = self.call("ListFunctions", "", "GET", &path, None).await?;
            out.extend(v["Functions"].as_array().cloned().unwrap_or_default());
            match v["NextMarker"].as_str() {
                Some(m) if !m.is_empty() => marker = Some(m.to_owned()),
                _ => return Ok(out),
            }
        }
    }

    /// The newest version of a layer, if any.
    pub async fn latest_layer_version(&mut self, name: &str) -> Result<Option<Value>, LambdaError> {
        let path = format!(
            "/2018-10-31/layers/{}/versions?MaxItems=50",
            encode_segment(name)
        );
        let v = match self
            .call("ListLayerVersions", name, "GET", &path, None)
            .await
        {
            Ok(v) => v,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let newest = v["LayerVersions"]
            .as_array()
            .and_then(|a| a.iter().max_by_key(|l| l["Version"].as_i64().unwrap_or(0)))
            .and_then(|l| l["Version"].as_i64());
        let Some(n) = newest else { return Ok(None) };
        let path = format!("/2018-10-31/layers/{}/versions/{n}", encode_segment(name));
        Ok(Some(
            self.call("GetLayerVersion", name, "GET", &path, None)
                .await?,
        ))
    }

    pub async fn publish_layer_version(
        &mut self,
        name: &str,
        body: &Value,
    ) -> Result<Value, LambdaError> {
        let path = format!("/2018-10-31/layers/{}/versions", encode_segment(name));
        self.call("PublishLayerVersion", name, "POST", &path, Some(body))
            .await
    }
}

/// The account field of an ARN (`arn:partition:service:region:account:...`).
pub fn account_of(arn: &str) -> String {
    arn.split(':').nth(4).unwrap_or_default().to_owned()
}
