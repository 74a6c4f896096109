//! `lambent invoke` and `lambent logs`: clients of a running server.

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use clap::Args;

use crate::client::{Client, ClientError, encode_segment};

#[derive(Args, Debug)]
pub struct ServerArgs {
    /// The server's URL (default: LAMBENT_ENDPOINT, else the local server's).
    #[arg(long, env = "LAMBENT_ENDPOINT")]
    pub endpoint_url: Option<String>,
    /// The local server's data directory (for its endpoint and keys).
    #[arg(long, env = "LAMBENT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The region (each region is its own namespace). Default: the region
    /// of a full function ARN, else AWS_REGION, AWS_DEFAULT_REGION, us-east-1.
    #[arg(long)]
    pub region: Option<String>,
}

impl ServerArgs {
    pub(crate) fn client(&self) -> Result<Client, ClientError> {
        self.client_in(None)
    }

    /// A client for the region of `function` when it is a full ARN (an
    /// explicit --region must agree with it).
    fn client_for(&self, function: &model::FunctionRef) -> Result<Client, CommandError> {
        if let (Some(given), Some(arn_region)) = (&self.region, &function.region)
            && given != arn_region.as_str()
        {
            return Err(CommandError::RegionMismatch {
                arn: arn_region.to_string(),
                given: given.clone(),
            });
        }
        Ok(self.client_in(function.region.as_ref().map(|r| r.as_str()))?)
    }

    fn client_in(&self, arn_region: Option<&str>) -> Result<Client, ClientError> {
        let dir = self
            .data_dir
            .clone()
            .unwrap_or_else(crate::default_data_dir);
        let region = self.region.as_deref().or(arn_region);
        Client::discover(self.endpoint_url.as_deref(), &dir, region)
    }
}

/// The function argument of `invoke` and `logs`: a name, or a partial or
/// full ARN (whose region the request then goes to).
fn function_ref(raw: &str) -> Result<model::FunctionRef, CommandError> {
    model::FunctionRef::parse(raw).map_err(|e| CommandError::Function {
        given: raw.to_owned(),
        reason: e.to_string(),
    })
}

#[derive(Args, Debug)]
pub struct InvokeArgs {
    /// Function name or ARN.
    pub function: String,
    /// The event: JSON text, or @path to read it from a file.
    #[arg(long, default_value = "")]
    pub payload: String,
    /// Version or alias.
    #[arg(long)]
    pub qualifier: Option<String>,
    /// Print the invocation's log (the last 4 KB) to stderr.
    #[arg(long)]
    pub log: bool,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Function name or ARN (its log group is /aws/lambda/<name>).
    pub function: String,
    /// Keep printing new lines as they arrive.
    #[arg(long, short)]
    pub follow: bool,
    /// How far back to start: 30s, 10m, 2h, 1d.
    #[arg(long, default_value = "1h")]
    pub since: String,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("cannot read the payload file {path}: {source}")]
    Payload {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Api(String),
    #[error("function {0} does not exist, so it has no logs (see `aws lambda list-functions`)")]
    NoFunction(String),
    #[error("the function failed ({0})")]
    FunctionFailed(String),
    #[error("--since takes a number and a unit (s, m, h, d), like 10m")]
    Since,
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("'{given}' is not a function name or ARN: {reason}")]
    Function { given: String, reason: String },
    #[error("the function ARN is in region {arn} but --region says {given}")]
    RegionMismatch { arn: String, given: String },
}

fn error_code(reply: &crate::client::Reply) -> &str {
    reply
        .headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("Error")
}

fn api_error(reply: &crate::client::Reply) -> CommandError {
    let code = error_code(reply);
    let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap_or_default();
    let msg = body
        .get("message")
        .or_else(|| body.get("Message"))
        .and_then(|m| m.as_str())
        .unwrap_or("");
    CommandError::Api(format!("{code} ({}): {msg}", reply.status))
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, CommandError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CommandError::Runtime)
}

pub fn invoke(args: InvokeArgs) -> Result<(), CommandError> {
    let client = args.server.client_for(&function_ref(&args.function)?)?;
    let payload = match args.payload.strip_prefix('@') {
        Some(path) => std::fs::read(path).map_err(|source| CommandError::Payload {
            path: path.to_owned(),
            source,
        })?,
        None => args.payload.into_bytes(),
    };
    let path = format!(
        "/2015-03-31/functions/{}/invocations",
        encode_segment(&args.function)
    );
    let query = args
        .qualifier
        .as_deref()
        .map(|q| format!("Qualifier={}", encode_segment(q)))
        .unwrap_or_default();
    let mut headers = vec![("content-type", "application/json")];
    if args.log {
        headers.push(("x-amz-log-type", "Tail"));
    }
    let reply =
        runtime()?.block_on(client.send("POST", &path, &query, "lambda", &headers, payload))?;
    if reply.status >= 300 {
        return Err(api_error(&reply));
    }
    if args.log
        && let Some(log) = reply
            .headers
            .get("x-amz-log-result")
            .and_then(|v| v.to_str().ok())
        && let Ok(text) = base64::engine::general_purpose::STANDARD.decode(log)
    {
        eprint!("{}", String::from_utf8_lossy(&text));
    }
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(&reply.body);
    let _ = out.write_all(b"\n");
    match reply
        .headers
        .get("x-amz-function-error")
        .and_then(|v| v.to_str().ok())
    {
        Some(kind) => Err(CommandError::FunctionFailed(kind.to_owned())),
        None => Ok(()),
    }
}

fn parse_since(s: &str) -> Result<Duration, CommandError> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().map_err(|_| CommandError::Since)?;
    let secs = match unit {
        "s" | "" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(CommandError::Since),
    };
    Ok(Duration::from_secs(secs))
}

pub fn logs(args: LogsArgs) -> Result<(), CommandError> {
    let function = function_ref(&args.function)?;
    let client = args.server.client_for(&function)?;
    let since = parse_since(&args.since)?;
    let group = format!("/aws/lambda/{}", function.name);
    let start = model::time_fmt::now_ms() - since.as_millis() as i64;
    runtime()?.block_on(async {
        let mut token: Option<String> = None;
        loop {
            let mut req = serde_json::json!({ "logGroupName": group, "startTime": start });
            if let Some(t) = &token {
                req["nextToken"] = serde_json::json!(t);
            }
            let reply = client
                .send(
                    "POST",
                    "/",
                    "",
                    "logs",
                    &[
                        ("content-type", "application/x-amz-json-1.1"),
                        ("x-amz-target", "Logs_20140328.FilterLogEvents"),
                    ],
                    req.to_string().into_bytes(),
                )
                .await?;
            if reply.status >= 300 {
                if error_code(&reply) != "ResourceNotFoundException" {
                    return Err(api_error(&reply));
                }
                // No log group: a function that does not exist, or one that
                // has not written a line yet.
                if !function_exists(&client, &args.function).await? {
                    return Err(CommandError::NoFunction(args.function.clone()));
                }
                if !args.follow {
                    eprintln!("{} has not logged anything yet", args.function);
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            let v: serde_json::Value = serde_json::from_slice(&reply.body).unwrap_or_default();
            let events = v["events"].as_array().cloned().unwrap_or_default();
            for e in &events {
                let ts = model::time_fmt::iso_millis_z(e["timestamp"].as_i64().unwrap_or(0));
                let msg = e["message"].as_str().unwrap_or("").replace('\r', "\n");
                println!("{ts} {} {msg}", e["logStreamName"].as_str().unwrap_or(""));
            }
            // Resume after the last line seen, whether or not the page was full.
            if let Some(last) = events.last().and_then(|e| e["eventId"].as_str()) {
                token = Some(format!("e{last}"));
            }
            if v.get("nextToken").is_some() {
                continue;
            }
            if !args.follow {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
}

/// `GetFunction`: whether the function exists in the caller's account.
async fn function_exists(client: &Client, function: &str) -> Result<bool, CommandError> {
    let path = format!("/2015-03-31/functions/{}", encode_segment(function));
    let reply = client
        .send("GET", &path, "", "lambda", &[], Vec::new())
        .await?;
    match reply.status {
        200 => Ok(true),
        404 => Ok(false),
        _ => Err(api_error(&reply)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since() {
        assert_eq!(parse_since("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_since("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_since("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_since("1d").unwrap(), Duration::from_secs(86_400));
        assert!(parse_since("ten").is_err());
        assert!(parse_since("5y").is_err());
    }
}

#[derive(Args, Debug)]
pub struct QueueArgs {
    /// `table` for people, `json` for scripts.
    #[arg(long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// How listing commands print.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Table,
    Json,
}

/// `lambent queue`: asynchronous events waiting per function.
pub fn queue(args: QueueArgs) -> Result<(), CommandError> {
    let client = args.server.client()?;
    let reply = runtime()?.block_on(client.send(
        "GET",
        "/lambent/status",
        "",
        "lambda",
        &[],
        Vec::new(),
    ))?;
    if reply.status >= 300 {
        return Err(api_error(&reply));
    }
    let status: serde_json::Value = serde_json::from_slice(&reply.body).unwrap_or_default();
    let rows = status
        .get("AsyncQueue")
        .and_then(|q| q.as_array())
        .cloned()
        .unwrap_or_default();
    if args.output == Output::Json {
        let out = serde_json::json!({
            "AsyncQueue": rows,
            "PendingDeliveries": status.get("PendingDeliveries").cloned().unwrap_or_default(),
        });
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        return Ok(());
    }
    println!(
        "{:<40} {:>8} {:>18}",
        "FUNCTION", "DEPTH", "OLDEST EVENT AGE"
    );
    for r in &rows {
        println!(
            "{:<40} {:>8} {:>17.1}s",
            r.get("FunctionName")
                .and_then(|v| v.as_str())
                .unwrap_or("?"),
            r.get("Depth").and_then(|v| v.as_u64()).unwrap_or(0),
            r.get("OldestEventAgeSeconds")
                .and_then(|v| v.as_f64())
                .unwrap_or(0.0)
        );
    }
    if rows.is_empty() {
        println!("(no queued events)");
    }
    let deliveries = status
        .get("PendingDeliveries")
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    if deliveries > 0 {
        println!(
            "{deliveries} destination record(s) or dead letter(s) waiting for an HTTP endpoint"
        );
    }
    Ok(())
}

/// `lambent mappings`: each event source mapping's state, backlog and
/// counts.
pub fn mappings(args: QueueArgs) -> Result<(), CommandError> {
    let client = args.server.client()?;
    let reply = runtime()?.block_on(client.send(
        "GET",
        "/lambent/status",
        "",
        "lambda",
        &[],
        Vec::new(),
    ))?;
    if reply.status >= 300 {
        return Err(api_error(&reply));
    }
    let status: serde_json::Value = serde_json::from_slice(&reply.body).unwrap_or_default();
    let rows = status
        .get("EventSourceMappings")
        .and_then(|q| q.as_array())
        .cloned()
        .unwrap_or_default();
    if args.output == Output::Json {
        let out = serde_json::json!({ "EventSourceMappings": rows });
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        return Ok(());
    }
    println!(
        "{:<36} {:<9} {:>8} {:>9} {:>8} {:>8}  {:<30} SOURCE",
        "UUID", "STATE", "LAG", "INVOKED", "FAILED", "FILTERED", "FUNCTION"
    );
    let text = |r: &serde_json::Value, k: &str| {
        r.get(k).and_then(|v| v.as_str()).unwrap_or("?").to_owned()
    };
    let num = |r: &serde_json::Value, k: &str| r.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
    for r in &rows {
        let lag = r
            .get("Backlog")
            .and_then(|v| v.as_u64())
            .map_or_else(|| "-".to_owned(), |n| n.to_string());
        let function = text(r, "FunctionArn");
        let function = function.split(":function:").nth(1).unwrap_or(&function);
        println!(
            "{:<36} {:<9} {:>8} {:>9} {:>8} {:>8}  {:<30} {}",
            text(r, "UUID"),
            text(r, "State"),
            lag,
            num(r, "InvokedEventCount"),
            num(r, "FailedInvokeEventCount"),
            num(r, "FilteredOutEventCount"),
            function,
            text(r, "Source"),
        );
    }
    if rows.is_empty() {
        println!("(no event source mappings)");
    }
    Ok(())
}
