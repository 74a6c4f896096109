//! `lambent deploy`, `lambent delete` and `lambent functions`: SAM stacks
//! and the functions they made, as clients of a running server.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;

use crate::commands::{CommandError, Output, ServerArgs, runtime};

#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error(transparent)]
    Deploy(#[from] deploy::DeployError),
    #[error("--parameter-overrides takes Name=Value pairs; '{0}' has no '='")]
    Override(String),
    #[error(
        "no template given and none found here (template.yaml, template.yml, template.json or .aws-sam/build/template.yaml); pass --template"
    )]
    NoTemplate,
    #[error("cannot print JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl From<crate::client::ClientError> for StackError {
    fn from(e: crate::client::ClientError) -> Self {
        StackError::Command(e.into())
    }
}

#[derive(Args, Debug)]
pub struct DeployArgs {
    /// The SAM (or CloudFormation) template. Default: .aws-sam/build/template.yaml
    /// when `sam build` made one, else template.yaml (or .yml, .json) here.
    #[arg(long, short = 't', value_hint = clap::ValueHint::FilePath)]
    pub template: Option<PathBuf>,
    /// The stack's name: the record of what this template deployed.
    #[arg(long, default_value = "sam-app")]
    pub stack_name: String,
    /// Template parameters, as Name=Value (repeat, or separate with spaces).
    #[arg(long, num_args = 1..)]
    pub parameter_overrides: Vec<String>,
    /// `table` for people, `json` (the resources and outputs) for scripts.
    #[arg(long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Keep running: a change under the template's folder rebuilds and
    /// updates what it touched; errors are shown and the watch goes on.
    #[arg(long)]
    pub watch: bool,
    /// Multiplies DeploymentPreference's minutes: 0.01 makes a
    /// Canary10Percent5Minutes shift take 3 seconds (for tests).
    #[arg(long, default_value_t = 1.0)]
    pub shift_time_scale: f64,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// The stack whose functions to remove.
    #[arg(long, default_value = "sam-app")]
    pub stack_name: String,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Args, Debug)]
pub struct FunctionsArgs {
    /// `table` for people, `json` for scripts.
    #[arg(long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    #[command(flatten)]
    pub server: ServerArgs,
}

fn lambda(server: &ServerArgs) -> Result<deploy::Lambda, StackError> {
    let c = server.client()?;
    Ok(deploy::Lambda::new(
        c.host().to_owned(),
        c.credentials().clone(),
    ))
}

fn find_template() -> Result<PathBuf, StackError> {
    [
        ".aws-sam/build/template.yaml",
        "template.yaml",
        "template.yml",
        "template.json",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
    .ok_or(StackError::NoTemplate)
}

fn overrides(raw: &[String]) -> Result<BTreeMap<String, String>, StackError> {
    let mut out = BTreeMap::new();
    // "A=1 B=2" is two pairs; "Greeting=good morning" is one.
    let items = raw.iter().flat_map(|s| {
        let tokens: Vec<&str> = s.split_whitespace().collect();
        if tokens.iter().all(|t| t.contains('=')) {
            tokens
        } else {
            vec![s.as_str()]
        }
    });
    for item in items {
        // `ParameterKey=K,ParameterValue=V` as `sam deploy` also takes it.
        if let Some(rest) = item.strip_prefix("ParameterKey=")
            && let Some((k, v)) = rest.split_once(",ParameterValue=")
        {
            out.insert(k.to_owned(), v.to_owned());
            continue;
        }
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| StackError::Override(item.to_owned()))?;
        out.insert(k.to_owned(), v.to_owned());
    }
    Ok(out)
}

fn summary_json(s: &deploy::Summary) -> serde_json::Value {
    serde_json::json!({
        "Resources": s.resources.iter().map(|r| serde_json::json!({
            "LogicalResourceId": r.logical_id,
            "PhysicalResourceId": r.physical_id,
            "Kind": r.kind,
            "Action": r.action.to_string(),
        })).collect::<Vec<_>>(),
        "Outputs": s.outputs.iter().map(|(k, v)| serde_json::json!({
            "OutputKey": k, "OutputValue": v,
        })).collect::<Vec<_>>(),
    })
}

/// `lambent deploy`.
pub fn deploy(args: DeployArgs) -> Result<(), StackError> {
    let template = match args.template {
        Some(t) => t,
        None => find_template()?,
    };
    let opts = deploy::Options {
        template,
        stack_name: args.stack_name,
        overrides: overrides(&args.parameter_overrides)?,
        shift_time_scale: args.shift_time_scale,
    };
    let mut lambda = lambda(&args.server)?;
    if args.watch {
        runtime()?.block_on(deploy::watch(&mut lambda, &opts, &deploy::Terminal))?;
        return Ok(());
    }
    let summary = runtime()?.block_on(deploy::deploy(&mut lambda, &opts, &deploy::Terminal))?;
    if args.output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&summary_json(&summary))?);
    }
    Ok(())
}

/// `lambent delete`.
pub fn delete(args: DeleteArgs) -> Result<(), StackError> {
    let mut lambda = lambda(&args.server)?;
    let summary = runtime()?.block_on(deploy::destroy(
        &mut lambda,
        &args.stack_name,
        &deploy::Terminal,
    ))?;
    if summary.resources.is_empty() {
        eprintln!("stack {} has no functions on this server", args.stack_name);
    }
    Ok(())
}

/// `lambent functions`: the caller's functions in a table (or JSON).
pub fn functions(args: FunctionsArgs) -> Result<(), StackError> {
    let mut lambda = lambda(&args.server)?;
    let rt = runtime()?;
    let functions = rt
        .block_on(lambda.list_functions())
        .map_err(deploy::DeployError::from)?;
    let mut rows = Vec::new();
    for f in &functions {
        let arn = f["FunctionArn"].as_str().unwrap_or_default();
        let tags = rt
            .block_on(lambda.list_tags(arn))
            .unwrap_or(serde_json::Value::Null);
        rows.push(serde_json::json!({
            "FunctionName": f["FunctionName"],
            "Runtime": f["Runtime"],
            "Handler": f["Handler"],
            "MemorySize": f["MemorySize"],
            "Timeout": f["Timeout"],
            "CodeSize": f["CodeSize"],
            "LastModified": f["LastModified"],
            "Stack": tags.get(deploy::apply::TAG_STACK),
            "FunctionArn": f["FunctionArn"],
        }));
    }
    if args.output == Output::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "Functions": rows }))?
        );
        return Ok(());
    }
    let cell = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".into(),
        other => other.to_string(),
    };
    let header = [
        "NAME", "RUNTIME", "HANDLER", "MEMORY", "TIMEOUT", "CODE", "STACK",
    ];
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                cell(&r["FunctionName"]),
                cell(&r["Runtime"]),
                cell(&r["Handler"]),
                format!("{} MB", cell(&r["MemorySize"])),
                format!("{} s", cell(&r["Timeout"])),
                human_bytes(r["CodeSize"].as_u64().unwrap_or(0)),
                cell(&r["Stack"]),
            ]
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &table {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let print = |cells: Vec<String>| {
        let line: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    };
    print(header.iter().map(|h| h.to_string()).collect());
    for row in table {
        print(row);
    }
    if rows.is_empty() {
        println!(
            "(no functions: create one with `lambent deploy` or `aws lambda create-function`)"
        );
    }
    Ok(())
}

fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_take_both_forms() {
        let o = overrides(&[
            "Stage=prod Size=3".into(),
            "ParameterKey=Name,ParameterValue=a=b".into(),
            "Greeting=good morning".into(),
        ])
        .unwrap();
        assert_eq!(
            o,
            BTreeMap::from([
                ("Stage".into(), "prod".into()),
                ("Size".into(), "3".into()),
                ("Name".into(), "a=b".into()),
                ("Greeting".into(), "good morning".into())
            ])
        );
        assert_eq!(
            overrides(&["Stage".into()]).unwrap_err().to_string(),
            "--parameter-overrides takes Name=Value pairs; 'Stage' has no '='"
        );
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_bytes(900), "900 B");
        assert_eq!(human_bytes(2048), "2.0 KiB");
        assert_eq!(human_bytes(3 << 20), "3.0 MiB");
    }
}
