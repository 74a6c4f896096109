//! The runtimes this host can run.
//!
//! * `provided.al2023` / `provided.al2`: the package's own `bootstrap` executable.
//! * `python3.N`: one per Python interpreter found on the host.
//! * `nodejsN.x`: the host's Node.js, by major version.
//!
//! The Python and Node.js runtimes run Lambent's own runtime clients, which ship
//! inside the binary (see [`clients`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub mod clients;
pub use clients::{Launch, launch_command};

/// How a runtime starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Runs `/var/task/bootstrap` (or `/opt/bootstrap`).
    Provided,
    Python {
        interpreter: PathBuf,
        minor: u32,
    },
    Node {
        node: PathBuf,
        major: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeInfo {
    /// The Lambda runtime identifier, e.g. `python3.11`.
    pub id: String,
    pub kind: Kind,
    /// Identifies the runtime build, for `RuntimeVersionConfig.RuntimeVersionArn`.
    pub version_hash: String,
}

impl RuntimeInfo {
    pub fn new(id: &str, kind: Kind) -> Self {
        let ident = match &kind {
            Kind::Provided => id.to_owned(),
            Kind::Python { interpreter, .. } => format!("{id}:{}", interpreter.display()),
            Kind::Node { node, .. } => format!("{id}:{}", node.display()),
        };
        Self {
            id: id.to_owned(),
            kind,
            version_hash: hex::encode(Sha256::digest(ident.as_bytes())),
        }
    }

    /// `AWS_EXECUTION_ENV` as Lambda sets it (`AWS_Lambda_python3.11`); custom
    /// runtimes get none.
    pub fn execution_env(&self) -> Option<String> {
        match self.kind {
            Kind::Provided => None,
            _ => Some(format!("AWS_Lambda_{}", self.id)),
        }
    }
}

/// Every runtime this host can run, by id.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    runtimes: BTreeMap<String, RuntimeInfo>,
}

/// Python minor versions Lambda knows (`python3.8` ... `python3.15`).
const PYTHON_MINORS: std::ops::RangeInclusive<u32> = 8..=15;
/// Node.js majors Lambda knows.
const NODE_MAJORS: &[u32] = &[16, 18, 20, 22, 24, 26];

impl Catalog {
    /// Looks for interpreters on `PATH`, in the usual system directories and in
    /// pyenv's version directories (never through pyenv's shims, which may point
    /// at an interpreter that is not installed).
    pub fn detect() -> Self {
        let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect())
            .unwrap_or_default();
        dirs.extend(["/usr/local/bin", "/usr/bin"].map(PathBuf::from));
        let pyenv_root = std::env::var_os("PYENV_ROOT")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pyenv")));
        if let Some(root) = pyenv_root
            && let Ok(entries) = std::fs::read_dir(root.join("versions"))
        {
            let mut versions: Vec<PathBuf> =
                entries.flatten().map(|e| e.path().join("bin")).collect();
            versions.sort();
            dirs.extend(versions);
        }
        dirs.retain(|d| !d.components().any(|c| c.as_os_str() == "shims"));
        let node = find_in(&dirs, "node").and_then(|n| node_major(&n).map(|m| (n, m)));
        Self::from_parts(&dirs, node)
    }

    fn from_parts(dirs: &[PathBuf], node: Option<(PathBuf, u32)>) -> Self {
        let mut c = Self::default();
        for id in ["provided.al2023", "provided.al2"] {
            c.insert(RuntimeInfo::new(id, Kind::Provided));
        }
        for minor in PYTHON_MINORS {
            if let Some(interpreter) = find_in(dirs, &format!("python3.{minor}")) {
                c.insert(RuntimeInfo::new(
                    &format!("python3.{minor}"),
                    Kind::Python { interpreter, minor },
                ));
            }
        }
        if let Some((node, major)) = node
            && NODE_MAJORS.contains(&major)
        {
            c.insert(RuntimeInfo::new(
                &format!("nodejs{major}.x"),
                Kind::Node { node, major },
            ));
        }
        c
    }

    /// A catalog with exactly these runtimes (tests, and hosts that restrict it).
    pub fn with(runtimes: Vec<RuntimeInfo>) -> Self {
        let mut c = Self::default();
        for r in runtimes {
            c.insert(r);
        }
        c
    }

    fn insert(&mut self, r: RuntimeInfo) {
        self.runtimes.entry(r.id.clone()).or_insert(r);
    }

    pub fn get(&self, id: &str) -> Option<&RuntimeInfo> {
        self.runtimes.get(id)
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.runtimes.keys().map(String::as_str)
    }

    /// One line for the server's start-up log: every runtime offered, and
    /// the interpreter behind each (`python3.11 (/usr/bin/python3.11)`).
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self
            .runtimes
            .values()
            .map(|r| match &r.kind {
                Kind::Provided => r.id.clone(),
                Kind::Python { interpreter, .. } => {
                    format!("{} ({})", r.id, interpreter.display())
                }
                Kind::Node { node, .. } => format!("{} ({})", r.id, node.display()),
            })
            .collect();
        if !self
            .runtimes
            .values()
            .any(|r| matches!(r.kind, Kind::Python { .. }))
        {
            parts.push("no python3.X interpreter found".into());
        }
        if !self
            .runtimes
            .values()
            .any(|r| matches!(r.kind, Kind::Node { .. }))
        {
            parts.push("no supported node found".into());
        }
        parts.join(", ")
    }

    /// For a runtime Lambda offers that this host cannot run: what to
    /// install (a `python3.12` interpreter, Node.js 22), or that Lambent does
    /// not run that language. `None` for runtimes this host runs and for
    /// names that are no runtime at all.
    pub fn missing_hint(&self, id: &str) -> Option<String> {
        if self.get(id).is_some() {
            return None;
        }
        if let Some(minor) = id
            .strip_prefix("python3.")
            .and_then(|m| m.parse::<u32>().ok())
            .filter(|m| PYTHON_MINORS.contains(m))
        {
            return Some(format!(
                "{id} needs /usr/bin/python3.{minor} (or python3.{minor} on the server's PATH) on this host; install it and restart lambent serve"
            ));
        }
        if let Some(major) = id
            .strip_prefix("nodejs")
            .and_then(|m| m.strip_suffix(".x"))
            .and_then(|m| m.parse::<u32>().ok())
            .filter(|m| NODE_MAJORS.contains(m))
        {
            let found = self
                .runtimes
                .values()
                .find_map(|r| match &r.kind {
                    Kind::Node { node, major } => {
                        Some(format!(" (it has Node.js {major} at {})", node.display()))
                    }
                    _ => None,
                })
                .unwrap_or_default();
            return Some(format!(
                "{id} needs Node.js {major} as `node` on the server's PATH on this host{found}; install it and restart lambent serve"
            ));
        }
        let other_language = ["java", "dotnet", "ruby"]
            .iter()
            .any(|lang| id.starts_with(lang));
        other_language.then(|| {
            format!(
                "Lambent does not run {id}; it runs provided.al2023 and provided.al2 (a bootstrap executable), python3.X and nodejsN.x"
            )
        })
    }

    /// A runtime that Lambda retired for new functions.
    pub fn is_deprecated(id: &str) -> bool {
        matches!(
            id,
            "python2.7"
                | "python3.6"
                | "python3.7"
                | "nodejs"
                | "nodejs4.3"
                | "nodejs4.3-edge"
                | "nodejs6.10"
                | "nodejs8.10"
                | "nodejs10.x"
                | "nodejs12.x"
                | "nodejs14.x"
                | "dotnetcore1.0"
                | "dotnetcore2.0"
                | "dotnetcore2.1"
                | "dotnetcore3.1"
                | "go1.x"
                | "ruby2.5"
                | "ruby2.7"
                | "java8"
                | "provided"
        )
    }
}

/// The first executable `name` in `dirs`, with symlinks resolved (a virtualenv's
/// `python3.11` points into the real installation, which is what environments
/// must mount).
fn find_in(dirs: &[PathBuf], name: &str) -> Option<PathBuf> {
    dirs.iter()
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
        .map(|p| std::fs::canonicalize(&p).unwrap_or(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn node_major(node: &Path) -> Option<u32> {
    let out = std::process::Command::new(node)
        .arg("--version")
        .output()
        .ok()?;
    let v = String::from_utf8_lossy(&out.stdout);
    v.trim()
        .trim_start_matches('v')
        .split('.')
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn touch_exec(dir: &Path, name: &str) {
        let p = dir.join(name);
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn finds_pythons_and_node_first_dir_wins() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        touch_exec(a.path(), "python3.11");
        touch_exec(b.path(), "python3.11");
        touch_exec(b.path(), "python3.12");
        std::fs::write(b.path().join("python3.13"), "not executable").unwrap();
        let c = Catalog::from_parts(
            &[a.path().to_owned(), b.path().to_owned()],
            Some((PathBuf::from("/usr/bin/node"), 20)),
        );
        let ids: Vec<&str> = c.ids().collect();
        assert_eq!(
            ids,
            [
                "nodejs20.x",
                "provided.al2",
                "provided.al2023",
                "python3.11",
                "python3.12"
            ]
        );
        assert_eq!(
            c.get("python3.11").unwrap().kind,
            Kind::Python {
                interpreter: a.path().join("python3.11"),
                minor: 11
            }
        );
        assert_eq!(
            c.get("python3.11").unwrap().execution_env().unwrap(),
            "AWS_Lambda_python3.11"
        );
        assert_eq!(c.get("provided.al2023").unwrap().execution_env(), None);
    }

    #[test]
    fn describes_what_it_found_in_one_line() {
        let dir = tempfile::tempdir().unwrap();
        touch_exec(dir.path(), "python3.11");
        let c = Catalog::from_parts(
            &[dir.path().to_owned()],
            Some((PathBuf::from("/usr/bin/node"), 20)),
        );
        let line = c.describe();
        assert_eq!(
            line,
            format!(
                "nodejs20.x (/usr/bin/node), provided.al2, provided.al2023, python3.11 ({})",
                dir.path().join("python3.11").display()
            )
        );
        assert!(!line.contains('\n'));
        assert_eq!(
            Catalog::from_parts(&[], None).describe(),
            "provided.al2, provided.al2023, no python3.X interpreter found, no supported node found"
        );
    }

    #[test]
    fn hints_name_what_to_install() {
        let c = Catalog::from_parts(&[], Some((PathBuf::from("/usr/bin/node"), 20)));
        let py = c.missing_hint("python3.12").unwrap();
        assert!(
            py.starts_with("python3.12 needs /usr/bin/python3.12 "),
            "{py}"
        );
        let node = c.missing_hint("nodejs22.x").unwrap();
        assert!(node.contains("needs Node.js 22"), "{node}");
        assert!(node.contains("Node.js 20 at /usr/bin/node"), "{node}");
        let java = c.missing_hint("java21").unwrap();
        assert!(java.starts_with("Lambent does not run java21"), "{java}");
        assert_eq!(c.missing_hint("nodejs20.x"), None, "it runs that one");
        assert_eq!(c.missing_hint("provided.al2023"), None);
        assert_eq!(c.missing_hint("nodejs99.x"), None, "no such runtime");
        assert_eq!(c.missing_hint("cobol"), None);
    }

    #[test]
    fn unknown_node_major_is_not_offered() {
        let c = Catalog::from_parts(&[], Some((PathBuf::from("/x/node"), 19)));
        assert!(c.ids().all(|id| !id.starts_with("nodejs")));
        assert!(Catalog::is_deprecated("python3.7"));
        assert!(!Catalog::is_deprecated("python3.12"));
    }
}
