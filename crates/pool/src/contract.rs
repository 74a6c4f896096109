//! Lambda's environment contract: the variables a runtime finds, the library
//! path, and the texts of exec failures as Lambda (in Go) words them.

use crate::FunctionSpec;

/// An errno as Go's `syscall.Errno` prints it (Lambda's messages use Go's).
pub(crate) fn go_errno_text(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(2) => "no such file or directory".into(),
        Some(13) => "permission denied".into(),
        Some(8) => "exec format error".into(),
        Some(20) => "not a directory".into(),
        _ => e.to_string().to_lowercase(),
    }
}

/// Lambda's `LD_LIBRARY_PATH`, without the directories this environment does
/// not have: the dynamic loader probes a dozen subdirectories of every entry
/// for every library, so absent entries cost a cold start time and nothing else.
fn library_path(spec: &FunctionSpec, lang_dir: Option<&std::path::Path>) -> String {
    let exists = |inside: &str| -> bool {
        match inside {
            "/var/lang/lib" => lang_dir.is_some_and(|d| d.join("lib").is_dir()),
            "/var/task" => true,
            "/var/task/lib" => spec.code_dir.join("lib").is_dir(),
            "/opt/lib" => spec
                .opt_dir
                .as_ref()
                .is_some_and(|d| d.join("lib").is_dir()),
            "/var/runtime" | "/var/runtime/lib" => false,
            host => std::path::Path::new(host).is_dir(),
        }
    };
    [
        "/var/lang/lib",
        "/lib64",
        "/usr/lib64",
        "/var/runtime",
        "/var/runtime/lib",
        "/var/task",
        "/var/task/lib",
        "/opt/lib",
    ]
    .into_iter()
    .filter(|d| exists(d))
    .collect::<Vec<_>>()
    .join(":")
}

/// Lambda's environment variables for one environment.
pub(crate) fn lambda_env(
    spec: &FunctionSpec,
    lang_dir: Option<&std::path::Path>,
    stream: &str,
    extra: &[(String, String)],
    provisioned: bool,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = spec.variables.clone();
    let mut set = |k: &str, v: String| env.push((k.to_owned(), v));
    set("_HANDLER", spec.handler.clone());
    set("LAMBDA_TASK_ROOT", "/var/task".into());
    set("LAMBDA_RUNTIME_DIR", "/var/runtime".into());
    set("AWS_LAMBDA_FUNCTION_NAME", spec.name.to_string());
    set("AWS_LAMBDA_FUNCTION_VERSION", spec.version.clone());
    set(
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        spec.memory_mb.to_string(),
    );
    set("AWS_LAMBDA_LOG_GROUP_NAME", spec.log_group.to_string());
    set("AWS_LAMBDA_LOG_STREAM_NAME", stream.to_owned());
    set(
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        if provisioned {
            "provisioned-concurrency"
        } else {
            "on-demand"
        }
        .into(),
    );
    set("AWS_REGION", spec.scope.region.to_string());
    set("AWS_DEFAULT_REGION", spec.scope.region.to_string());
    if let Some(e) = spec.runtime.execution_env() {
        set("AWS_EXECUTION_ENV", e);
    }
    set("TZ", ":UTC".into());
    set("LANG", "en_US.UTF-8".into());
    set(
        "PATH",
        "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin".into(),
    );
    set("LD_LIBRARY_PATH", library_path(spec, lang_dir));
    for (k, v) in extra {
        set(k, v.clone());
    }
    env
}
