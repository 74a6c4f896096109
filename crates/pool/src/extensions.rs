//! Lambda extensions in an environment: external extensions (executables
//! in `/opt/extensions`, from layers) started before the runtime, and the
//! runtime wrapper of `AWS_LAMBDA_EXEC_WRAPPER` (internal extensions).

use std::os::unix::fs::PermissionsExt;

use crate::FunctionSpec;

/// How long extensions get after `SHUTDOWN` when an environment stops
/// (Lambda's shutdown phase with external extensions).
pub(crate) const SHUTDOWN_EXTERNAL: std::time::Duration = std::time::Duration::from_millis(2000);
/// The shutdown phase when only internal extensions registered.
pub(crate) const SHUTDOWN_INTERNAL: std::time::Duration = std::time::Duration::from_millis(500);

/// The external extensions of `spec`: the names of the executables in its
/// layers' `extensions/` folder, in name order.
pub(crate) fn external(spec: &FunctionSpec) -> Vec<String> {
    let Some(opt) = &spec.opt_dir else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(opt.join("extensions")) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| {
            std::fs::metadata(e.path())
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

/// Starts the runtime through a shell inside the environment that first
/// starts each external extension (each in the background, as its own
/// process) and then runs the runtime, through `AWS_LAMBDA_EXEC_WRAPPER`
/// when the function sets it on a managed runtime. A function with neither
/// keeps its plain command.
pub(crate) fn wrap(spec: &FunctionSpec, command: &mut runtimes::Launch) {
    let external = external(spec);
    let wrapper = match spec.runtime.kind {
        runtimes::Kind::Provided => None,
        _ => spec
            .variables
            .iter()
            .rev()
            .find(|(k, v)| k == "AWS_LAMBDA_EXEC_WRAPPER" && !v.is_empty())
            .map(|(_, v)| v.clone()),
    };
    if external.is_empty() && wrapper.is_none() {
        return;
    }
    let mut script = String::new();
    for name in &external {
        script.push_str(&format!("/opt/extensions/{} &\n", shell_quote(name)));
    }
    match &wrapper {
        Some(w) => script.push_str(&format!("exec {} \"$@\"\n", shell_quote(w))),
        None => script.push_str("exec \"$@\"\n"),
    }
    let mut argv = vec![
        "/bin/sh".to_owned(),
        "-c".to_owned(),
        script,
        command.program.clone(),
        command.program.clone(),
    ];
    argv.extend(command.argv.iter().skip(1).cloned());
    command.program = "/bin/sh".into();
    command.argv = argv;
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::shell_quote;

    #[test]
    fn quotes_for_the_shell() {
        assert_eq!(shell_quote("ext"), "'ext'");
        assert_eq!(shell_quote("a'b"), r"'a'\''b'");
    }
}
