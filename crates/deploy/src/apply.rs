//! A deployment: the template's resources in dependency order, each compared
//! with what the server holds and changed only where it differs; functions
//! that left the template removed.
//!
//! The stack record lives on the server, in each function's tags:
//! `lambent:stack` and `lambent:logical-id` say which stack and resource a
//! function is, `lambent:config` and `lambent:settings` hold digests of the
//! configuration and of its alias, concurrency and event invoke settings as
//! last applied. A step that fails leaves its digest behind, so the next
//! deploy redoes exactly what did not finish; any machine that reaches the
//! server can deploy or remove the same stack.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::{Map, Value, json};
use sha2::Digest as _;

use crate::build::{self, BuildError};
use crate::lambda::{Lambda, LambdaError};
use crate::package::{self, Package, PackageError};
use crate::resources::{self, Code, FunctionSpec, LayerSpec};
use crate::template::{Attributes, Env, Pseudo, Template, TemplateError, references};
use crate::triggers;

pub const TAG_STACK: &str = "lambent:stack";
pub const TAG_LOGICAL_ID: &str = "lambent:logical-id";
const TAG_CONFIG: &str = "lambent:config";
const TAG_SETTINGS: &str = "lambent:settings";
const TAG_ALIAS: &str = "lambent:alias";

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Template(#[from] TemplateError),
    #[error("{0}")]
    Build(#[from] BuildError),
    #[error("{0}")]
    Package(#[from] PackageError),
    #[error("{0}")]
    Lambda(#[from] LambdaError),
    #[error(
        "resource {resource}: a function named {name} already exists and is not part of stack {stack}{owner}; delete it, or give the resource another FunctionName"
    )]
    NameTaken {
        resource: String,
        name: String,
        stack: String,
        owner: String,
    },
    #[error("resources refer to one another in a cycle: {0}")]
    Cycle(String),
    #[error(
        "stack name '{0}' is not valid: letters, digits and hyphens, starting with a letter, 128 characters at most"
    )]
    StackName(String),
}

/// What a deploy did to one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Created,
    Updated(Vec<&'static str>),
    Unchanged,
    Deleted,
    /// Accepted without effect (IAM, which Lambent does not model).
    NoEffect,
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Created => f.write_str("created"),
            Action::Updated(what) => write!(f, "updated ({})", what.join(", ")),
            Action::Unchanged => f.write_str("unchanged"),
            Action::Deleted => f.write_str("deleted"),
            Action::NoEffect => f.write_str("accepted without effect (no IAM here)"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ResourceResult {
    pub logical_id: String,
    pub kind: String,
    pub physical_id: String,
    pub action: Action,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Summary {
    pub resources: Vec<ResourceResult>,
    pub outputs: Vec<(String, String)>,
}

/// How progress shows: a line per resource, a bar per upload.
pub trait Progress {
    fn line(&self, text: &str);
    /// Starts an upload of `bytes`; the answer is told how far it got.
    fn upload(&self, label: &str) -> Box<dyn Upload>;
}

pub trait Upload {
    fn set(&self, done: u64, total: u64);
    fn finish(&self, text: &str);
}

/// Progress on the terminal (indicatif bars, hidden when stderr is not one).
pub struct Terminal;

impl Progress for Terminal {
    fn line(&self, text: &str) {
        eprintln!("{text}");
    }
    fn upload(&self, label: &str) -> Box<dyn Upload> {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "  {prefix} [{bar:30}] {bytes}/{total_bytes} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix(label.to_owned());
        Box::new(TerminalUpload(bar))
    }
}

struct TerminalUpload(indicatif::ProgressBar);

impl Upload for TerminalUpload {
    fn set(&self, done: u64, total: u64) {
        self.0.set_length(total);
        self.0.set_position(done);
    }
    fn finish(&self, text: &str) {
        self.0.finish_with_message(text.to_owned());
    }
}

/// What to deploy.
pub struct Options {
    pub template: PathBuf,
    pub stack_name: String,
    pub overrides: BTreeMap<String, String>,
    /// Multiplies DeploymentPreference's minutes (1 = as written; tests
    /// shorten them).
    pub shift_time_scale: f64,
}

pub fn check_stack_name(s: &str) -> Result<(), DeployError> {
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(DeployError::StackName(s.to_owned()))
    }
}

/// A function of the stack as the server holds it.
#[derive(Debug, Clone)]
pub struct Deployed {
    pub name: String,
    pub arn: String,
    pub tags: Map<String, Value>,
}

/// The stack's functions on the server, by logical id.
pub async fn stack_functions(
    lambda: &mut Lambda,
    stack: &str,
) -> Result<BTreeMap<String, Deployed>, DeployError> {
    let mut out = BTreeMap::new();
    for f in lambda.list_functions().await? {
        let (Some(name), Some(arn)) = (f["FunctionName"].as_str(), f["FunctionArn"].as_str())
        else {
            continue;
        };
        let tags = match lambda.list_tags(arn).await {
            Ok(Value::Object(t)) => t,
            Ok(_) => Map::new(),
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e.into()),
        };
        if tags.get(TAG_STACK).and_then(Value::as_str) != Some(stack) {
            continue;
        }
        if let Some(id) = tags.get(TAG_LOGICAL_ID).and_then(Value::as_str) {
            out.insert(
                id.to_owned(),
                Deployed {
                    name: name.to_owned(),
                    arn: arn.to_owned(),
                    tags: tags.clone(),
                },
            );
        }
    }
    Ok(out)
}

/// Removes every function of `stack`.
pub async fn destroy(
    lambda: &mut Lambda,
    stack: &str,
    progress: &dyn Progress,
) -> Result<Summary, DeployError> {
    check_stack_name(stack)?;
    let mut summary = Summary::default();
    for (id, d) in stack_functions(lambda, stack).await? {
        delete_function(lambda, &d).await?;
        progress.line(&format!("  {id:<32} {:<28} deleted", d.name));
        summary.resources.push(ResourceResult {
            logical_id: id,
            kind: "function".into(),
            physical_id: d.name,
            action: Action::Deleted,
        });
    }
    Ok(summary)
}

/// Removes a stack function and the triggers it records.
async fn delete_function(lambda: &mut Lambda, d: &Deployed) -> Result<(), DeployError> {
    let alias = d.tags.get(TAG_ALIAS).and_then(Value::as_str);
    let target = match alias {
        Some(a) => format!("{}:{a}", d.arn),
        None => d.arn.clone(),
    };
    for (k, v) in &d.tags {
        if k != triggers::TAG_URL && !k.starts_with(triggers::TAG_PREFIX) {
            continue;
        }
        if let Some((_, kind, id)) = v.as_str().and_then(triggers::parse_record) {
            triggers::delete(lambda, &d.arn, &target, k, kind, id).await?;
        }
    }
    lambda.delete_function(&d.name).await?;
    Ok(())
}

/// The template's order of deployment: what a resource refers to first.
fn order(t: &Template) -> Result<Vec<usize>, DeployError> {
    let ids: HashMap<&str, usize> = t
        .resources
        .iter()
        .enumerate()
        .map(|(i, r)| (r.logical_id.as_str(), i))
        .collect();
    let deps: Vec<BTreeSet<usize>> = t
        .resources
        .iter()
        .map(|r| {
            let mut names = BTreeSet::new();
            references(&Value::Object(r.properties.clone()), &mut names);
            names.extend(r.depends_on.iter().cloned());
            names
                .iter()
                .filter_map(|n| {
                    ids.get(n.as_str())
                        .or_else(|| n.strip_suffix("Role").and_then(|f| ids.get(f)))
                        .copied()
                })
                .collect()
        })
        .collect();
    let mut done = vec![false; deps.len()];
    let mut out = Vec::new();
    while out.len() < deps.len() {
        let before = out.len();
        for i in 0..deps.len() {
            if !done[i] && deps[i].iter().all(|d| done[*d] || *d == i) {
                done[i] = true;
                out.push(i);
            }
        }
        if out.len() == before {
            let stuck: Vec<_> = (0..deps.len())
                .filter(|i| !done[*i])
                .map(|i| t.resources[i].logical_id.clone())
                .collect();
            return Err(DeployError::Cycle(stuck.join(", ")));
        }
    }
    Ok(out)
}

fn digest(v: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let b: BTreeMap<_, _> = m.iter().map(|(k, v)| (k.clone(), sorted(v))).collect();
                Value::Object(b.into_iter().collect())
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            o => o.clone(),
        }
    }
    let h = sha2::Sha256::digest(sorted(v).to_string().as_bytes());
    h.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

struct Run<'a> {
    lambda: &'a mut Lambda,
    progress: &'a dyn Progress,
    stack: String,
    pseudo: Pseudo,
    base: PathBuf,
    build_root: PathBuf,
    prebuilt: bool,
    shift_time_scale: f64,
}

/// Deploys `opts.template` as stack `opts.stack_name`.
pub async fn deploy(
    lambda: &mut Lambda,
    opts: &Options,
    progress: &dyn Progress,
) -> Result<Summary, DeployError> {
    check_stack_name(&opts.stack_name)?;
    let text = std::fs::read_to_string(&opts.template).map_err(|source| DeployError::Read {
        path: opts.template.clone(),
        source,
    })?;
    let base = opts
        .template
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let base = if base.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        base
    };
    // Builds run in other directories: every path starts from an absolute one.
    let base = std::path::absolute(&base).map_err(|source| DeployError::Read {
        path: base.clone(),
        source,
    })?;
    let account = lambda.account().await?;
    let pseudo = Pseudo {
        stack_name: opts.stack_name.clone(),
        region: lambda.region().to_owned(),
        account,
    };
    let t = Template::load(&text, &opts.overrides, &pseudo, base.clone())?;
    resources::check(&t)?;
    let order = order(&t)?;
    // A template `sam build` wrote holds built artifacts.
    let prebuilt = base.components().any(|c| c.as_os_str() == ".aws-sam");
    let mut run = Run {
        lambda,
        progress,
        stack: opts.stack_name.clone(),
        pseudo,
        build_root: base.join(".aws-sam").join("lambent"),
        base,
        prebuilt,
        shift_time_scale: opts.shift_time_scale,
    };
    let existing = stack_functions(run.lambda, &run.stack).await?;
    progress.line(&format!(
        "Deploying stack {} ({} resources) to {}",
        run.stack,
        t.resources.len(),
        run.pseudo.region
    ));
    let mut deployed: HashMap<String, Attributes> = HashMap::new();
    let mut summary = Summary::default();
    for i in order {
        let r = &t.resources[i];
        let env = Env {
            t: &t,
            ctx: &run.pseudo,
            deployed: &deployed,
        };
        let props = match env.eval(&Value::Object(r.properties.clone()), &r.logical_id)? {
            Value::Object(p) => p,
            _ => Map::new(),
        };
        let (result, attrs, extra) = match r.kind.as_str() {
            resources::SERVERLESS_FUNCTION | resources::LAMBDA_FUNCTION => {
                let role = format!(
                    "arn:{}:iam::{}:role/{}-{}Role",
                    run.pseudo.partition(),
                    run.pseudo.account,
                    run.stack,
                    r.logical_id
                );
                let spec = resources::function(r, &props, &run.stack, &run.base, &role)?;
                let prior = existing.get(&r.logical_id);
                run.function(&spec, prior).await?
            }
            resources::SERVERLESS_LAYER | resources::LAMBDA_LAYER => {
                let spec = resources::layer(r, &props, &run.base)?;
                run.layer(&spec).await?
            }
            _ => run.iam(r, &props),
        };
        progress.line(&format!(
            "  {:<32} {:<28} {}",
            r.logical_id, r.kind, result.action
        ));
        summary.resources.push(result);
        deployed.insert(r.logical_id.clone(), attrs);
        for (id, a) in extra {
            deployed.insert(id, a);
        }
    }
    let in_template: BTreeSet<&str> = t.resources.iter().map(|r| r.logical_id.as_str()).collect();
    for (id, d) in &existing {
        if in_template.contains(id.as_str()) {
            continue;
        }
        delete_function(run.lambda, d).await?;
        progress.line(&format!("  {id:<32} {:<28} deleted", "function"));
        summary.resources.push(ResourceResult {
            logical_id: id.clone(),
            kind: "function".into(),
            physical_id: d.name.clone(),
            action: Action::Deleted,
        });
    }
    let env = Env {
        t: &t,
        ctx: &run.pseudo,
        deployed: &deployed,
    };
    for (name, v) in &t.outputs {
        let v = env.eval(v, &format!("Outputs.{name}"))?;
        let text = match v {
            Value::String(s) => s,
            other => other.to_string(),
        };
        summary.outputs.push((name.clone(), text));
    }
    if !summary.outputs.is_empty() {
        progress.line("Outputs:");
        for (k, v) in &summary.outputs {
            progress.line(&format!("  {k} = {v}"));
        }
    }
    Ok(summary)
}

/// What `--watch` compares: every file's path, size and modification time
/// under `dir` (builds, dependencies and version control left out).
fn snapshot(dir: &Path) -> Vec<(PathBuf, u64, std::time::SystemTime)> {
    const SKIP: &[&str] = &[".aws-sam", "node_modules", "target", ".git", "__pycache__"];
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(m) = std::fs::metadata(&p) else {
                continue;
            };
            if m.is_dir() {
                if !SKIP.iter().any(|s| e.file_name() == *s) {
                    stack.push(p);
                }
            } else {
                out.push((p, m.len(), m.modified().unwrap_or(std::time::UNIX_EPOCH)));
            }
        }
    }
    out.sort();
    out
}

/// `lambent deploy --watch`: deploys, then deploys again whenever a file
/// under the template's folder changes (only what changed is updated, so a
/// code edit updates that one function). A failed build or deploy is shown
/// and the watch goes on.
pub async fn watch(
    lambda: &mut Lambda,
    opts: &Options,
    progress: &dyn Progress,
) -> Result<(), DeployError> {
    let dir = opts
        .template
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let dir = std::path::absolute(&dir).map_err(|source| DeployError::Read {
        path: dir.clone(),
        source,
    })?;
    let mut last = snapshot(&dir);
    if let Err(e) = deploy(lambda, opts, progress).await {
        progress.line(&format!("error: {e}"));
    }
    progress.line(&format!(
        "Watching {} for changes (Ctrl-C stops)",
        dir.display()
    ));
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let now = snapshot(&dir);
        if now == last {
            continue;
        }
        // Let an editor's burst of writes land before building.
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        last = snapshot(&dir);
        let started = std::time::Instant::now();
        match deploy(lambda, opts, progress).await {
            Ok(_) => progress.line(&format!(
                "Redeployed in {} ms; watching",
                started.elapsed().as_millis()
            )),
            Err(e) => progress.line(&format!(
                "error: {e}\nStill watching; fix it and save again"
            )),
        }
    }
}

type Deployment = (ResourceResult, Attributes, Vec<(String, Attributes)>);

impl Run<'_> {
    /// Builds (when needed) and zips a function's or layer's code.
    fn package(
        &self,
        logical_id: &str,
        code: &Code,
        runtime: Option<&str>,
        metadata: &Map<String, Value>,
        layer: bool,
    ) -> Result<Package, DeployError> {
        let dir = match code {
            Code::Inline { file, text } => return Ok(package::inline(file, text)?),
            Code::Path(p) => p.clone(),
        };
        // SAM builds a layer only when its Metadata names a BuildMethod.
        let method = if self.prebuilt || (layer && !metadata.contains_key("BuildMethod")) {
            build::Method::AsIs
        } else {
            build::method(&dir, runtime, metadata)
        };
        let out = self.build_root.join(logical_id);
        let progress = self.progress;
        let built = build::build(logical_id, &dir, &method, &out, &mut |l| {
            progress.line(&format!("  {l}"))
        })?;
        let bar = self.progress.upload(logical_id);
        // A layer's built dependencies go where the runtime looks in /opt.
        let prefix = match (layer, &method) {
            (true, build::Method::Pip { .. }) => "python/",
            (true, build::Method::Npm) => "nodejs/",
            _ => "",
        };
        let pkg = package::from_path_under(&built, prefix, &|done, total| bar.set(done, total))?;
        bar.finish(&format!("{} KiB zipped", pkg.zip.len().div_ceil(1024)));
        Ok(pkg)
    }

    async fn function(
        &mut self,
        spec: &FunctionSpec,
        prior: Option<&Deployed>,
    ) -> Result<Deployment, DeployError> {
        let runtime = spec.config.get("Runtime").and_then(Value::as_str);
        let pkg = self.package(&spec.logical_id, &spec.code, runtime, &spec.metadata, false)?;
        let config_digest = digest(&Value::Object(spec.config.clone()));
        let settings = json!({
            "alias": spec.alias, "reserved": spec.reserved,
            "provisioned": spec.provisioned, "eic": spec.event_invoke,
        });
        let settings_digest = digest(&settings);
        let mut tags = spec.tags.clone();
        tags.insert(TAG_STACK.into(), json!(self.stack));
        tags.insert(TAG_LOGICAL_ID.into(), json!(spec.logical_id));
        // A function renamed in the template is a new function; the old one goes.
        if let Some(p) = prior
            && p.name != spec.name
        {
            self.lambda.delete_function(&p.name).await?;
        }
        let current = self.lambda.get_function(&spec.name).await?;
        let mut changed: Vec<&'static str> = Vec::new();
        let (arn, prior_tags) = match current {
            None => {
                let mut body = spec.config.clone();
                body.insert("FunctionName".into(), json!(spec.name));
                body.insert(
                    "Code".into(),
                    json!({"ZipFile": base64::engine::general_purpose::STANDARD.encode(&pkg.zip)}),
                );
                let mut create_tags = tags.clone();
                create_tags.insert(TAG_CONFIG.into(), json!(config_digest));
                body.insert("Tags".into(), Value::Object(create_tags));
                let v = self.lambda.create_function(&Value::Object(body)).await?;
                changed.push("created");
                (
                    v["FunctionArn"].as_str().unwrap_or_default().to_owned(),
                    Map::new(),
                )
            }
            Some(cur) => {
                let arn = cur["Configuration"]["FunctionArn"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let cur_tags = cur["Tags"].as_object().cloned().unwrap_or_default();
                let owner = cur_tags.get(TAG_STACK).and_then(Value::as_str);
                if owner != Some(self.stack.as_str()) {
                    return Err(DeployError::NameTaken {
                        resource: spec.logical_id.clone(),
                        name: spec.name.clone(),
                        stack: self.stack.clone(),
                        owner: owner
                            .map(|o| format!(" (it is in stack {o})"))
                            .unwrap_or_default(),
                    });
                }
                // The architecture changes with the code (UpdateFunctionCode).
                let arch = spec
                    .config
                    .get("Architectures")
                    .cloned()
                    .unwrap_or_else(|| json!(["x86_64"]));
                let arch_changed = cur["Configuration"]["Architectures"] != arch;
                if cur["Configuration"]["CodeSha256"].as_str() != Some(pkg.sha256_b64.as_str())
                    || arch_changed
                {
                    self.lambda
                        .update_code(
                            &spec.name,
                            base64::engine::general_purpose::STANDARD.encode(&pkg.zip),
                            &arch,
                        )
                        .await?;
                    changed.push("code");
                }
                if cur_tags.get(TAG_CONFIG).and_then(Value::as_str) != Some(config_digest.as_str())
                {
                    let mut body = spec.config.clone();
                    // Fields the template dropped go back to Lambda's defaults.
                    for (k, reset) in [
                        ("Environment", json!({"Variables": {}})),
                        ("Layers", json!([])),
                        ("Description", json!("")),
                        ("MemorySize", json!(128)),
                        ("Timeout", json!(3)),
                        ("EphemeralStorage", json!({"Size": 512})),
                        ("DeadLetterConfig", json!({"TargetArn": ""})),
                        ("TracingConfig", json!({"Mode": "PassThrough"})),
                    ] {
                        body.entry(k).or_insert(reset);
                    }
                    body.remove("Architectures");
                    self.lambda
                        .update_configuration(&spec.name, &Value::Object(body))
                        .await?;
                    changed.push("configuration");
                }
                (arn, cur_tags)
            }
        };
        // Tags: the template's, the stack record's; others the template dropped go.
        let mut want = tags.clone();
        want.insert(TAG_CONFIG.into(), json!(config_digest));
        if let Some(p) = prior_tags.get(TAG_SETTINGS) {
            want.insert(TAG_SETTINGS.into(), p.clone());
        }
        for (k, v) in &prior_tags {
            if k == TAG_ALIAS || k == triggers::TAG_URL || k.starts_with(triggers::TAG_PREFIX) {
                want.insert(k.clone(), v.clone());
            }
        }
        if !prior_tags.is_empty() && prior_tags != want {
            let gone: Vec<String> = prior_tags
                .keys()
                .filter(|k| !want.contains_key(*k))
                .cloned()
                .collect();
            self.lambda.untag(&arn, &gone).await?;
            self.lambda.tag(&arn, &Value::Object(want.clone())).await?;
            if !changed.contains(&"configuration") && !changed.contains(&"created") {
                changed.push("tags");
            }
        }
        // Versions, alias and the settings that hang on them.
        let mut attrs = Attributes {
            reference: spec.name.clone(),
            attrs: BTreeMap::from([("Arn".to_owned(), arn.clone())]),
        };
        let qualifier = match &spec.alias {
            Some(alias) => {
                let mut body = json!({"CodeSha256": pkg.sha256_b64});
                if let Some(d) = &spec.version_description {
                    body["Description"] = json!(d);
                }
                let v = self.lambda.publish_version(&spec.name, &body).await?;
                let version = v["Version"].as_str().unwrap_or_default().to_owned();
                let current_alias = self
                    .lambda
                    .list_aliases(&spec.name)
                    .await?
                    .into_iter()
                    .find(|a| a["Name"].as_str() == Some(alias.as_str()));
                let points = current_alias
                    .as_ref()
                    .and_then(|a| a["FunctionVersion"].as_str())
                    .map(str::to_owned);
                let weighted = current_alias.as_ref().is_some_and(|a| {
                    a["RoutingConfig"]["AdditionalVersionWeights"]
                        .as_object()
                        .is_some_and(|w| !w.is_empty())
                });
                // DeploymentPreference: the new version takes its share of the
                // alias's traffic step by step (an interrupted shift is
                // completed at once by the next deploy).
                if let (Some(shift), Some(old)) = (spec.shift, points.as_deref())
                    && old != version
                    && !weighted
                {
                    for w in shift.steps() {
                        self.lambda
                            .put_alias(
                                &spec.name,
                                alias,
                                &json!({"FunctionVersion": old,
                                        "RoutingConfig": {"AdditionalVersionWeights": {version.clone(): f64::from(w) / 100.0}}}),
                            )
                            .await?;
                        self.progress.line(&format!(
                            "  {}: alias {alias}: {w}% to version {version}, {}% on {old}; next step in {} min",
                            spec.logical_id,
                            100 - w,
                            shift.minutes
                        ));
                        let secs = f64::from(shift.minutes) * 60.0 * self.shift_time_scale;
                        tokio::time::sleep(std::time::Duration::from_secs_f64(secs.max(0.0))).await;
                    }
                }
                if points.as_deref() != Some(version.as_str()) || weighted {
                    self.lambda
                        .put_alias(
                            &spec.name,
                            alias,
                            &json!({"FunctionVersion": version, "RoutingConfig": {"AdditionalVersionWeights": {}}}),
                        )
                        .await?;
                    if !changed.contains(&"created") {
                        changed.push("alias");
                    }
                }
                attrs.attrs.insert("Alias".into(), format!("{arn}:{alias}"));
                attrs
                    .attrs
                    .insert("Version".into(), format!("{arn}:{version}"));
                alias.clone()
            }
            None => "$LATEST".to_owned(),
        };
        if prior_tags.get(TAG_SETTINGS).and_then(Value::as_str) != Some(settings_digest.as_str()) {
            let old_alias = prior_tags.get(TAG_ALIAS).and_then(Value::as_str);
            if let Some(old) = old_alias
                && Some(old) != spec.alias.as_deref()
            {
                self.lambda.put_provisioned(&spec.name, old, None).await?;
                self.lambda
                    .put_event_invoke_config(&spec.name, old, None)
                    .await?;
                self.lambda.delete_alias(&spec.name, old).await?;
            }
            if spec.alias.is_none() || old_alias.is_none() {
                // The event invoke config moves between $LATEST and the alias.
                let other = if spec.alias.is_some() { "$LATEST" } else { "" };
                if !other.is_empty() {
                    self.lambda
                        .put_event_invoke_config(&spec.name, other, None)
                        .await?;
                }
            }
            self.lambda
                .put_concurrency(&spec.name, spec.reserved)
                .await?;
            if spec.alias.is_some() {
                self.lambda
                    .put_provisioned(&spec.name, &qualifier, spec.provisioned)
                    .await?;
            }
            self.lambda
                .put_event_invoke_config(&spec.name, &qualifier, spec.event_invoke.as_ref())
                .await?;
            let mut record = Map::new();
            record.insert(TAG_SETTINGS.into(), json!(settings_digest));
            if let Some(a) = &spec.alias {
                record.insert(TAG_ALIAS.into(), json!(a));
            } else if prior_tags.contains_key(TAG_ALIAS) {
                self.lambda.untag(&arn, &[TAG_ALIAS.to_owned()]).await?;
            }
            self.lambda.tag(&arn, &Value::Object(record)).await?;
            if !changed.contains(&"created") && !prior_tags.is_empty() {
                changed.push("settings");
            }
        }
        // Triggers: created, replaced when their definition changed, removed
        // when they left the template.
        let role = spec
            .config
            .get("Role")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let target = match &spec.alias {
            Some(a) => format!("{arn}:{a}"),
            None => arn.clone(),
        };
        let wants = triggers::wanted(
            &self.stack,
            &spec.logical_id,
            &spec.events,
            spec.url.as_ref(),
            &target,
            role,
            digest,
        )?;
        let mut trigger_changed = false;
        for w in &wants {
            let prior = prior_tags
                .get(&w.tag)
                .and_then(Value::as_str)
                .and_then(triggers::parse_record);
            let mut id = None;
            if let Some((d, kind, old)) = prior {
                if d == w.digest {
                    continue;
                }
                // A mapping of the same source changes in place.
                if kind == "esm" && w.kind == "esm" {
                    match triggers::update_esm(self.lambda, old, &w.body).await {
                        Ok(true) => id = Some(old.to_owned()),
                        Ok(false) => {}
                        Err(e) if e.is_not_found() => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                if id.is_none() {
                    triggers::delete(self.lambda, &arn, &target, &w.tag, kind, old).await?;
                }
            }
            let id = match id {
                Some(id) => id,
                None => triggers::create(self.lambda, w).await?.0,
            };
            self.lambda
                .tag(
                    &arn,
                    &json!({ w.tag.clone(): format!("{}|{}|{id}", w.digest, w.kind) }),
                )
                .await?;
            trigger_changed = true;
        }
        for (k, v) in &prior_tags {
            let is_trigger = k == triggers::TAG_URL || k.starts_with(triggers::TAG_PREFIX);
            if !is_trigger || wants.iter().any(|w| &w.tag == k) {
                continue;
            }
            if let Some((_, kind, id)) = v.as_str().and_then(triggers::parse_record) {
                triggers::delete(self.lambda, &arn, &target, k, kind, id).await?;
            }
            self.lambda.untag(&arn, std::slice::from_ref(k)).await?;
            trigger_changed = true;
        }
        if trigger_changed && !changed.contains(&"created") {
            changed.push("triggers");
        }
        let mut extra = Vec::new();
        if spec.url.is_some() {
            let (function, qualifier) = (&spec.name, spec.alias.as_deref());
            let mut path = format!(
                "/2021-10-31/functions/{}/url",
                signed_client::encode_segment(function)
            );
            if let Some(q) = qualifier {
                path.push_str(&format!("?Qualifier={}", signed_client::encode_segment(q)));
            }
            let v = self
                .lambda
                .json_call(
                    "lambda",
                    "GetFunctionUrlConfig",
                    function,
                    "GET",
                    &path,
                    None,
                )
                .await?;
            let url = v["FunctionUrl"].as_str().unwrap_or_default().to_owned();
            attrs.attrs.insert("FunctionUrl".into(), url.clone());
            extra.push((
                format!("{}Url", spec.logical_id),
                Attributes {
                    reference: url.clone(),
                    attrs: BTreeMap::from([
                        ("FunctionUrl".to_owned(), url),
                        ("FunctionArn".to_owned(), target.clone()),
                    ]),
                },
            ));
        }
        let action = if changed.contains(&"created") {
            Action::Created
        } else if changed.is_empty() {
            Action::Unchanged
        } else {
            Action::Updated(changed)
        };
        if spec.implicit_role {
            extra.push((
                format!("{}Role", spec.logical_id),
                Attributes {
                    reference: role.rsplit('/').next().unwrap_or_default().to_owned(),
                    attrs: BTreeMap::from([("Arn".to_owned(), role.to_owned())]),
                },
            ));
        }
        Ok((
            ResourceResult {
                logical_id: spec.logical_id.clone(),
                kind: "function".into(),
                physical_id: spec.name.clone(),
                action,
            },
            attrs,
            extra,
        ))
    }

    /// IAM resources change nothing here; a role gets the ARN it would have.
    fn iam(&self, r: &crate::template::Resource, props: &Map<String, Value>) -> Deployment {
        let name = props
            .get("RoleName")
            .or_else(|| props.get("PolicyName"))
            .or_else(|| props.get("ManagedPolicyName"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{}-{}", self.stack, r.logical_id));
        let kind = if r.kind == resources::IAM_ROLE {
            "role"
        } else {
            "policy"
        };
        let arn = format!(
            "arn:{}:iam::{}:{kind}/{name}",
            self.pseudo.partition(),
            self.pseudo.account
        );
        let reference = if r.kind == "AWS::IAM::ManagedPolicy" {
            arn.clone()
        } else {
            name.clone()
        };
        (
            ResourceResult {
                logical_id: r.logical_id.clone(),
                kind: "iam".into(),
                physical_id: name,
                action: Action::NoEffect,
            },
            Attributes {
                reference,
                attrs: BTreeMap::from([("Arn".to_owned(), arn)]),
            },
            Vec::new(),
        )
    }

    async fn layer(&mut self, spec: &LayerSpec) -> Result<Deployment, DeployError> {
        let runtime = spec
            .fields
            .get("CompatibleRuntimes")
            .and_then(|r| r.get(0))
            .and_then(Value::as_str);
        let pkg = self.package(&spec.logical_id, &spec.code, runtime, &spec.metadata, true)?;
        let latest = self.lambda.latest_layer_version(&spec.name).await?;
        let same = latest.as_ref().is_some_and(|l| {
            l["Content"]["CodeSha256"].as_str() == Some(pkg.sha256_b64.as_str())
                && spec.fields.iter().all(|(k, v)| &l[k] == v)
        });
        let (arn, action) = match latest {
            Some(l) if same => (
                l["LayerVersionArn"].as_str().unwrap_or_default().to_owned(),
                Action::Unchanged,
            ),
            _ => {
                let mut body = spec.fields.clone();
                body.insert(
                    "Content".into(),
                    json!({"ZipFile": base64::engine::general_purpose::STANDARD.encode(&pkg.zip)}),
                );
                let v = self
                    .lambda
                    .publish_layer_version(&spec.name, &Value::Object(body))
                    .await?;
                (
                    v["LayerVersionArn"].as_str().unwrap_or_default().to_owned(),
                    Action::Created,
                )
            }
        };
        Ok((
            ResourceResult {
                logical_id: spec.logical_id.clone(),
                kind: "layer".into(),
                physical_id: arn.clone(),
                action,
            },
            Attributes {
                reference: arn.clone(),
                attrs: BTreeMap::from([("LayerVersionArn".to_owned(), arn)]),
            },
            Vec::new(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_deploy_after_what_they_refer_to() {
        let p = Pseudo {
            stack_name: "s".into(),
            region: "us-east-1".into(),
            account: "123456789012".into(),
        };
        let t = Template::load(
            "Transform: AWS::Serverless-2016-10-31\nResources:\n  A:\n    Type: AWS::Serverless::Function\n    Properties: {Layers: [!Ref L], Environment: {Variables: {B: !GetAtt B.Arn}}}\n  B:\n    Type: AWS::Serverless::Function\n    Properties: {Description: !Sub '${L}'}\n  L:\n    Type: AWS::Serverless::LayerVersion\n",
            &BTreeMap::new(),
            &p,
            ".".into(),
        )
        .unwrap();
        let o: Vec<_> = order(&t)
            .unwrap()
            .into_iter()
            .map(|i| t.resources[i].logical_id.as_str())
            .collect();
        assert_eq!(o, ["L", "B", "A"]);
        let t = Template::load(
            "Resources:\n  A: {Type: AWS::Lambda::Function, Properties: {Role: !GetAtt B.Arn}}\n  B: {Type: AWS::Lambda::Function, Properties: {Role: !GetAtt A.Arn}}\n",
            &BTreeMap::new(),
            &p,
            ".".into(),
        )
        .unwrap();
        assert!(matches!(order(&t), Err(DeployError::Cycle(c)) if c == "A, B"));
    }

    #[test]
    fn digests_ignore_key_order() {
        assert_eq!(
            digest(&json!({"a": 1, "b": {"c": 2, "d": 3}})),
            digest(&json!({"b": {"d": 3, "c": 2}, "a": 1}))
        );
        assert_ne!(digest(&json!({"a": 1})), digest(&json!({"a": 2})));
    }

    #[test]
    fn stack_names_are_checked() {
        check_stack_name("sam-app-1").unwrap();
        for bad in ["", "1app", "a_b", &"a".repeat(129)] {
            assert!(check_stack_name(bad).is_err(), "{bad}");
        }
    }
}
