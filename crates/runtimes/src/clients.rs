//! Lambent's own runtime clients for the managed runtimes, shipped inside the
//! binary and written once into the data directory (mounted read-only at
//! `/var/runtime` in every environment), and how each runtime is started.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::{Kind, RuntimeInfo};

const PYTHON_BOOTSTRAP: &str = include_str!("../clients/python/bootstrap.py");
const NODE_BOOTSTRAP: &str = include_str!("../clients/node/bootstrap.js");

/// Writes the runtime clients under `base/<content hash>/` (once per version of
/// this binary) and returns that directory.
pub fn install(base: &Path) -> std::io::Result<PathBuf> {
    let mut h = Sha256::new();
    h.update(PYTHON_BOOTSTRAP);
    h.update(NODE_BOOTSTRAP);
    let dir = base.join(&hex::encode(h.finalize())[..16]);
    if dir.join(".complete").exists() {
        return Ok(dir);
    }
    std::fs::create_dir_all(dir.join("python"))?;
    std::fs::create_dir_all(dir.join("node"))?;
    std::fs::write(dir.join("python/bootstrap.py"), PYTHON_BOOTSTRAP)?;
    std::fs::write(dir.join("node/bootstrap.js"), NODE_BOOTSTRAP)?;
    std::fs::write(dir.join(".complete"), b"")?;
    Ok(dir)
}

/// How to start one runtime inside an environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    /// The program to exec (a path inside the environment).
    pub program: String,
    pub argv: Vec<String>,
    /// Variables the runtime itself needs, besides Lambda's.
    pub env: Vec<(String, String)>,
    /// A host interpreter installation to mount read-only at `/var/lang`
    /// (where Lambda keeps its language runtimes).
    pub lang_dir: Option<PathBuf>,
}

/// The installation prefix of an interpreter found at `<prefix>/bin/<name>`.
fn prefix_of(interpreter: &Path) -> Option<PathBuf> {
    let bin = interpreter.parent()?;
    (bin.file_name()? == "bin").then(|| bin.parent().map(Path::to_path_buf))?
}

/// The command that starts `runtime`. `has_task_bootstrap` says whether the
/// package has an executable `bootstrap` (custom runtimes run it from
/// `/var/task`, else from `/opt`, as Lambda does).
pub fn launch_command(runtime: &RuntimeInfo, has_task_bootstrap: bool) -> Launch {
    match &runtime.kind {
        Kind::Provided => {
            let program = if has_task_bootstrap {
                "/var/task/bootstrap"
            } else {
                "/opt/bootstrap"
            };
            Launch {
                program: program.into(),
                argv: vec![program.into()],
                env: vec![],
                lang_dir: None,
            }
        }
        Kind::Python { interpreter, minor } => {
            // Interpreters outside /usr (pyenv, /opt) appear at /var/lang.
            let lang_dir = prefix_of(interpreter).filter(|p| !p.starts_with("/usr"));
            let inside_prefix = match &lang_dir {
                Some(_) => PathBuf::from("/var/lang"),
                None => prefix_of(interpreter).unwrap_or_else(|| PathBuf::from("/usr")),
            };
            let mut env = Vec::new();
            // The interpreter's own site-packages (where boto3 lives on most
            // hosts) is searched last, after /var/task and the layers.
            let site_rel = format!("lib/python3.{minor}/site-packages");
            let site = match &lang_dir {
                Some(host) => host
                    .join(&site_rel)
                    .is_dir()
                    .then(|| inside_prefix.join(&site_rel)),
                None => {
                    Some(PathBuf::from("/usr/lib/python3/dist-packages")).filter(|p| p.is_dir())
                }
            };
            if let Some(site) = site {
                env.push(("_LAMBENT_PYTHON_SITE".into(), site.display().to_string()));
            }
            let program = match &lang_dir {
                Some(_) => inside_prefix
                    .join("bin")
                    .join(interpreter.file_name().unwrap_or_default()),
                None => interpreter.clone(),
            }
            .display()
            .to_string();
            Launch {
                argv: vec![
                    program.clone(),
                    "-S".into(),
                    "-B".into(),
                    "-u".into(),
                    "/var/runtime/python/bootstrap.py".into(),
                ],
                program,
                env,
                lang_dir,
            }
        }
        Kind::Node { node, major } => {
            let lang_dir = prefix_of(node).filter(|p| !p.starts_with("/usr"));
            let program = match &lang_dir {
                Some(_) => Path::new("/var/lang/bin").join(node.file_name().unwrap_or_default()),
                None => node.clone(),
            }
            .display()
            .to_string();
            Launch {
                argv: vec![program.clone(), "/var/runtime/node/bootstrap.js".into()],
                program,
                env: vec![(
                    "NODE_PATH".into(),
                    format!(
                        "/opt/nodejs/node{major}/node_modules:/opt/nodejs/node_modules:/var/runtime/node_modules"
                    ),
                )],
                lang_dir,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installs_once_per_content() {
        let dir = tempfile::tempdir().unwrap();
        let a = install(dir.path()).unwrap();
        assert!(a.join("python/bootstrap.py").is_file());
        assert!(a.join("node/bootstrap.js").is_file());
        assert_eq!(install(dir.path()).unwrap(), a);
    }

    #[test]
    fn commands() {
        let provided = RuntimeInfo::new("provided.al2023", Kind::Provided);
        assert_eq!(
            launch_command(&provided, true).program,
            "/var/task/bootstrap"
        );
        assert_eq!(launch_command(&provided, false).program, "/opt/bootstrap");
        let py = RuntimeInfo::new(
            "python3.11",
            Kind::Python {
                interpreter: "/opt/py/3.11/bin/python3.11".into(),
                minor: 11,
            },
        );
        let l = launch_command(&py, false);
        assert_eq!(l.program, "/var/lang/bin/python3.11");
        assert_eq!(l.argv.last().unwrap(), "/var/runtime/python/bootstrap.py");
        assert_eq!(l.lang_dir, Some(PathBuf::from("/opt/py/3.11")));
        let system = RuntimeInfo::new(
            "python3.11",
            Kind::Python {
                interpreter: "/usr/bin/python3.11".into(),
                minor: 11,
            },
        );
        let l = launch_command(&system, false);
        assert_eq!(
            (l.program.as_str(), l.lang_dir),
            ("/usr/bin/python3.11", None)
        );
        let node = RuntimeInfo::new(
            "nodejs20.x",
            Kind::Node {
                node: "/usr/bin/node".into(),
                major: 20,
            },
        );
        let l = launch_command(&node, false);
        assert_eq!(l.argv, ["/usr/bin/node", "/var/runtime/node/bootstrap.js"]);
        assert!(l.env[0].1.contains("/opt/nodejs/node_modules"));
    }
}
