//! Builds like `sam build`: Python (`requirements.txt` installed into the
//! package with pip for the function's Python), Node.js (`package.json`'s
//! dependencies without dev dependencies), Rust (`provided.*` with a Cargo
//! project: a release build whose binary becomes `bootstrap`), and
//! `BuildMethod: makefile` (`make build-<LogicalId>` with `ARTIFACTS_DIR`).
//! A build whose inputs did not change is reused, so an unchanged function
//! keeps its `CodeSha256`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Map, Value};
use sha2::Digest as _;

use crate::package;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Package(#[from] package::PackageError),
    #[error("{resource}: {tool} is needed to build it ({hint})")]
    ToolMissing {
        resource: String,
        tool: String,
        hint: String,
    },
    #[error("{resource}: `{command}` failed ({status}):\n{output}")]
    Failed {
        resource: String,
        command: String,
        status: String,
        output: String,
    },
    #[error("{resource}: {reason}")]
    Invalid { resource: String, reason: String },
}

/// How a function's or layer's folder is built.
#[derive(Debug, Clone, PartialEq)]
pub enum Method {
    /// Taken as it is.
    AsIs,
    Pip {
        python: String,
    },
    Npm,
    Cargo {
        binary: Option<String>,
    },
    Makefile,
}

/// The build a folder needs, from the runtime, SAM's `Metadata.BuildMethod`
/// and the files it holds.
pub fn method(dir: &Path, runtime: Option<&str>, metadata: &Map<String, Value>) -> Method {
    let build_method = metadata.get("BuildMethod").and_then(Value::as_str);
    let binary = metadata
        .get("BuildProperties")
        .and_then(|p| p.get("Binary"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    // A layer's BuildMethod names a runtime (python3.12, nodejs22.x).
    let runtime = match build_method {
        Some(m) if m.starts_with("python") || m.starts_with("nodejs") => Some(m),
        _ => runtime,
    };
    match build_method {
        Some("makefile") => return Method::Makefile,
        Some("rust-cargolambda") => return Method::Cargo { binary },
        _ => {}
    }
    if !dir.is_dir() {
        return Method::AsIs;
    }
    match runtime {
        Some(r) if r.starts_with("python") && dir.join("requirements.txt").is_file() => {
            Method::Pip {
                python: r.to_owned(),
            }
        }
        Some(r) if r.starts_with("nodejs") && dir.join("package.json").is_file() => Method::Npm,
        Some(r) if r.starts_with("provided") && dir.join("Cargo.toml").is_file() => {
            Method::Cargo { binary }
        }
        _ => Method::AsIs,
    }
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BuildError {
    let what = what.into();
    move |source| BuildError::Io { what, source }
}

/// The fingerprint of a build's inputs: every file's path, mode and
/// contents (build outputs and dependency folders left out).
fn fingerprint(dir: &Path, method: &Method) -> Result<String, BuildError> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut h = sha2::Sha256::new();
    h.update(format!("{method:?}\n").as_bytes());
    for (rel, p) in package::files(dir)? {
        if rel.starts_with("target/")
            || rel.starts_with("node_modules/")
            || rel.starts_with(".aws-sam/")
            || rel.contains("__pycache__/")
        {
            continue;
        }
        let m = std::fs::metadata(&p).map_err(io(p.display().to_string()))?;
        h.update(format!("{rel}\0{:o}\0", m.permissions().mode() & 0o111).as_bytes());
        h.update(std::fs::read(&p).map_err(io(p.display().to_string()))?);
    }
    Ok(hex(&h.finalize()))
}

/// Whether a file is source code (what changes between builds without
/// changing the dependencies).
fn is_source(rel: &str) -> bool {
    [".py", ".js", ".mjs", ".cjs", ".ts", ".json", ".md", ".txt"]
        .iter()
        .any(|e| rel.ends_with(e))
        && !matches!(
            rel,
            "requirements.txt" | "package.json" | "package-lock.json"
        )
}

/// The dependencies of a Python or Node.js build, installed by `install`
/// into a folder of their own and reused while their inputs (requirements,
/// package manifests, the local archives they name) are unchanged, so a
/// change to the code alone rebuilds in the time a copy takes.
fn dependencies(
    resource: &str,
    src: &Path,
    out: &Path,
    method: &Method,
    log: &mut dyn FnMut(&str),
    install: impl FnOnce(&Path) -> Result<(), BuildError>,
) -> Result<PathBuf, BuildError> {
    let deps = out.with_extension("deps");
    let stamp = out.with_extension("deps-inputs");
    let mut h = sha2::Sha256::new();
    h.update(format!("{method:?}\n").as_bytes());
    for (rel, p) in package::files(src)? {
        if is_source(&rel)
            || rel.starts_with("node_modules/")
            || rel.starts_with(".aws-sam/")
            || rel.contains("__pycache__/")
        {
            continue;
        }
        h.update(format!("{rel}\0").as_bytes());
        h.update(std::fs::read(&p).map_err(io(p.display().to_string()))?);
    }
    let print = hex(&h.finalize());
    if deps.is_dir() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(print.as_str()) {
        return Ok(deps);
    }
    log(&format!("{resource}: installing dependencies"));
    let _ = std::fs::remove_file(&stamp);
    if deps.exists() {
        std::fs::remove_dir_all(&deps).map_err(io(deps.display().to_string()))?;
    }
    std::fs::create_dir_all(&deps).map_err(io(deps.display().to_string()))?;
    install(&deps)?;
    std::fs::write(&stamp, print).map_err(io(stamp.display().to_string()))?;
    Ok(deps)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Builds `src` into `out` (a fresh folder) unless the last build there had
/// the same inputs; answers the folder to package.
pub fn build(
    resource: &str,
    src: &Path,
    method: &Method,
    out: &Path,
    log: &mut dyn FnMut(&str),
) -> Result<PathBuf, BuildError> {
    if *method == Method::AsIs {
        return Ok(src.to_owned());
    }
    let stamp = out.with_extension("inputs");
    let print = fingerprint(src, method)?;
    if out.is_dir() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(print.as_str()) {
        log(&format!("{resource}: build is up to date"));
        return Ok(out.to_owned());
    }
    let _ = std::fs::remove_file(&stamp);
    if out.exists() {
        std::fs::remove_dir_all(out).map_err(io(out.display().to_string()))?;
    }
    std::fs::create_dir_all(out).map_err(io(out.display().to_string()))?;
    log(&format!("{resource}: building ({})", describe(method)));
    let had_lock = src.join("Cargo.lock").exists();
    match method {
        Method::AsIs => {}
        Method::Pip { python } => {
            // python3.12 -> the `python3.12` interpreter on PATH.
            let interpreter = python.clone();
            if !on_path(&interpreter) {
                return Err(BuildError::ToolMissing {
                    resource: resource.into(),
                    tool: interpreter.clone(),
                    hint: format!(
                        "install {interpreter} with pip, or build with `sam build --use-container` and deploy .aws-sam/build/template.yaml"
                    ),
                });
            }
            let deps = dependencies(resource, src, out, method, log, |deps| {
                let mut c = Command::new(&interpreter);
                c.args([
                    "-m",
                    "pip",
                    "install",
                    "--no-compile",
                    "--disable-pip-version-check",
                    "-q",
                    "-r",
                ])
                .arg(src.join("requirements.txt"))
                .arg("-t")
                .arg(deps)
                // Paths in requirements.txt are relative to the function's folder.
                .current_dir(src);
                run(resource, c).map(|_| ())
            })?;
            copy_tree(&deps, out, &[])?;
            copy_tree(src, out, &["__pycache__", ".aws-sam"])?;
        }
        Method::Npm => {
            if !on_path("npm") {
                return Err(BuildError::ToolMissing {
                    resource: resource.into(),
                    tool: "npm".into(),
                    hint: "install Node.js with npm".into(),
                });
            }
            let deps = dependencies(resource, src, out, method, log, |deps| {
                // package.json, its lock and what they point at (local
                // tarballs), without the sources.
                for (rel, p) in package::files(src)? {
                    if is_source(&rel) && !rel.ends_with(".json") {
                        continue;
                    }
                    if rel.starts_with("node_modules/") || rel.starts_with(".aws-sam/") {
                        continue;
                    }
                    let to = deps.join(&rel);
                    if let Some(parent) = to.parent() {
                        std::fs::create_dir_all(parent)
                            .map_err(io(parent.display().to_string()))?;
                    }
                    std::fs::copy(&p, &to).map_err(io(p.display().to_string()))?;
                }
                let mut c = Command::new("npm");
                let sub = if src.join("package-lock.json").is_file() {
                    "ci"
                } else {
                    "install"
                };
                c.args([
                    sub,
                    "--omit=dev",
                    "--no-audit",
                    "--no-fund",
                    "--loglevel=error",
                ])
                .current_dir(deps);
                run(resource, c).map(|_| ())
            })?;
            copy_tree(src, out, &["node_modules", ".aws-sam"])?;
            if deps.join("node_modules").is_dir() {
                copy_tree(&deps.join("node_modules"), &out.join("node_modules"), &[])?;
            }
        }
        Method::Cargo { binary } => {
            if !on_path("cargo") {
                return Err(BuildError::ToolMissing {
                    resource: resource.into(),
                    tool: "cargo".into(),
                    hint: "install Rust from https://rustup.rs".into(),
                });
            }
            let target = out.with_extension("target");
            let mut c = Command::new("cargo");
            c.args([
                "build",
                "--release",
                "--message-format=json-render-diagnostics",
                "--target-dir",
            ])
            .arg(&target)
            .arg("--manifest-path")
            .arg(src.join("Cargo.toml"));
            if let Some(b) = binary {
                c.args(["--bin", b]);
            }
            let stdout = run(resource, c)?;
            let mut executables = Vec::new();
            for line in stdout.lines() {
                let Ok(v) = serde_json::from_str::<Value>(line) else {
                    continue;
                };
                if v["reason"] == "compiler-artifact"
                    && let Some(exe) = v["executable"].as_str()
                {
                    executables.push((
                        v["target"]["name"].as_str().unwrap_or("").to_owned(),
                        PathBuf::from(exe),
                    ));
                }
            }
            let exe = match (binary, executables.as_slice()) {
                (Some(b), list) => list.iter().find(|(n, _)| n == b).map(|(_, p)| p.clone()),
                (None, [(_, p)]) => Some(p.clone()),
                (None, []) => None,
                (None, _) => {
                    return Err(BuildError::Invalid {
                        resource: resource.into(),
                        reason: format!(
                            "the Cargo project builds {} binaries: name one with Metadata.BuildProperties.Binary",
                            executables.len()
                        ),
                    });
                }
            };
            let exe = exe.ok_or_else(|| BuildError::Invalid {
                resource: resource.into(),
                reason: "the Cargo project builds no binary".into(),
            })?;
            std::fs::copy(&exe, out.join("bootstrap")).map_err(io(exe.display().to_string()))?;
        }
        Method::Makefile => {
            if !src.join("Makefile").is_file() {
                return Err(BuildError::Invalid {
                    resource: resource.into(),
                    reason: format!(
                        "BuildMethod makefile needs {}",
                        src.join("Makefile").display()
                    ),
                });
            }
            let mut c = Command::new("make");
            c.arg(format!("build-{resource}"))
                .env("ARTIFACTS_DIR", out)
                .current_dir(src);
            run(resource, c)?;
        }
    }
    // cargo writes Cargo.lock into the sources on a first build: the next
    // build compares with the sources as that one left them.
    let print = if matches!(method, Method::Cargo { .. }) && !had_lock {
        fingerprint(src, method)?
    } else {
        print
    };
    std::fs::write(&stamp, print).map_err(io(stamp.display().to_string()))?;
    Ok(out.to_owned())
}

fn describe(m: &Method) -> &'static str {
    match m {
        Method::AsIs => "as is",
        Method::Pip { .. } => "pip install -r requirements.txt",
        Method::Npm => "npm install --omit=dev",
        Method::Cargo { .. } => "cargo build --release",
        Method::Makefile => "make",
    }
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

fn run(resource: &str, mut c: Command) -> Result<String, BuildError> {
    let command = format!("{c:?}");
    let out = c.output().map_err(io(command.clone()))?;
    if !out.status.success() {
        let mut output = String::from_utf8_lossy(&out.stderr).into_owned();
        if output.trim().is_empty() {
            output = String::from_utf8_lossy(&out.stdout).into_owned();
        }
        return Err(BuildError::Failed {
            resource: resource.into(),
            command,
            status: out.status.to_string(),
            output: output.trim_end().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Copies `src` into `dst`, leaving out folders named in `skip`.
fn copy_tree(src: &Path, dst: &Path, skip: &[&str]) -> Result<(), BuildError> {
    for (rel, p) in package::files(src)? {
        if rel.split('/').any(|part| skip.contains(&part)) {
            continue;
        }
        let to = dst.join(&rel);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent.display().to_string()))?;
        }
        std::fs::copy(&p, &to).map_err(io(p.display().to_string()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_method_follows_runtime_metadata_and_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        let none = Map::new();
        assert_eq!(method(p, Some("python3.12"), &none), Method::AsIs);
        std::fs::write(p.join("requirements.txt"), "").unwrap();
        assert_eq!(
            method(p, Some("python3.12"), &none),
            Method::Pip {
                python: "python3.12".into()
            }
        );
        std::fs::write(p.join("package.json"), "{}").unwrap();
        assert_eq!(method(p, Some("nodejs22.x"), &none), Method::Npm);
        std::fs::write(p.join("Cargo.toml"), "").unwrap();
        assert_eq!(
            method(p, Some("provided.al2023"), &none),
            Method::Cargo { binary: None }
        );
        let m = json!({"BuildMethod": "makefile"});
        assert_eq!(
            method(p, Some("python3.12"), m.as_object().unwrap()),
            Method::Makefile
        );
        let m = json!({"BuildMethod": "python3.11"});
        assert_eq!(
            method(p, None, m.as_object().unwrap()),
            Method::Pip {
                python: "python3.11".into()
            }
        );
    }

    #[test]
    fn makefile_builds_run_once_per_change_and_failures_show_output() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        std::fs::create_dir(&src).unwrap();
        std::fs::write(
            src.join("Makefile"),
            "build-Fn:\n\techo built >> $(ARTIFACTS_DIR)/out.txt\n\tdate +%N >> $(ARTIFACTS_DIR)/out.txt\n",
        )
        .unwrap();
        let out = d.path().join("build/Fn");
        let mut lines = Vec::new();
        let a = build("Fn", &src, &Method::Makefile, &out, &mut |l| {
            lines.push(l.to_owned())
        })
        .unwrap();
        let first = std::fs::read_to_string(a.join("out.txt")).unwrap();
        assert!(first.starts_with("built\n"));
        build("Fn", &src, &Method::Makefile, &out, &mut |l| {
            lines.push(l.to_owned())
        })
        .unwrap();
        assert_eq!(std::fs::read_to_string(out.join("out.txt")).unwrap(), first);
        assert_eq!(lines, ["Fn: building (make)", "Fn: build is up to date"]);
        std::fs::write(
            src.join("Makefile"),
            "build-Fn:\n\t@echo nope >&2; exit 3\n",
        )
        .unwrap();
        let e = build("Fn", &src, &Method::Makefile, &out, &mut |_| {}).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with("Fn: `")
                && msg.contains("failed (exit status: 2):\n")
                && msg.contains("nope"),
            "{msg}"
        );
    }
}
