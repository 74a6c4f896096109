//! The rules of the repository, held by tests: which crate may depend on
//! which (ARCHITECTURE.md's "dependencies point down"), `unsafe` only in
//! `sandbox`, and a code map that names every crate.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each workspace crate and the workspace crates it may use (normal
/// dependencies). `lambent` wires everything and may use any of them.
const ALLOWED: &[(&str, &[&str])] = &[
    ("model", &[]),
    ("api-types", &[]),
    ("sigv4", &[]),
    ("runtime-api", &[]),
    ("runtimes", &[]),
    ("sandbox", &[]),
    ("disk", &[]),
    ("schedule", &[]),
    ("scheduler", &["model", "schedule"]),
    ("event-pattern", &[]),
    ("sns", &["model", "event-pattern"]),
    ("eventbridge", &["model", "event-pattern", "schedule"]),
    ("store", &["model"]),
    ("store-sqlite", &["model", "store"]),
    ("blobs", &["model", "disk"]),
    ("logs", &["model", "disk"]),
    ("queue", &["model", "disk"]),
    (
        "control",
        &["model", "api-types", "store", "blobs", "runtimes"],
    ),
    (
        "pool",
        &["model", "sandbox", "runtime-api", "runtimes", "logs"],
    ),
    (
        "invoke",
        &["model", "store", "blobs", "runtimes", "pool", "runtime-api"],
    ),
    ("dispatch", &["model", "invoke", "queue"]),
    ("esm", &["model", "invoke", "event-pattern"]),
    (
        "api",
        &[
            "model",
            "api-types",
            "sigv4",
            "control",
            "invoke",
            "dispatch",
            "esm",
            "logs",
            "sns",
            "scheduler",
        ],
    ),
    ("signed-client", &["sigv4"]),
    ("bench", &["signed-client"]),
    ("deploy", &["signed-client"]),
    ("fixture-rust-function", &[]),
];

struct Package {
    manifest: PathBuf,
    deps: BTreeSet<String>,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The workspace's packages and their normal dependencies on each other,
/// as `cargo metadata` reports them.
fn workspace() -> BTreeMap<String, Package> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(root())
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let packages = meta["packages"].as_array().unwrap();
    let names: BTreeSet<String> = packages
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    packages
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].is_null())
                .map(|d| d["name"].as_str().unwrap().to_owned())
                .filter(|n| names.contains(n))
                .collect();
            (
                p["name"].as_str().unwrap().to_owned(),
                Package {
                    manifest: PathBuf::from(p["manifest_path"].as_str().unwrap()),
                    deps,
                },
            )
        })
        .collect()
}

#[test]
fn dependencies_point_down() {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut wrong = Vec::new();
    for (name, pkg) in workspace() {
        if name == "lambent" {
            continue;
        }
        let Some(may) = allowed.get(name.as_str()) else {
            wrong.push(format!(
                "{name} is not in this test's table: decide where it sits"
            ));
            continue;
        };
        for dep in &pkg.deps {
            if !may.contains(&dep.as_str()) {
                wrong.push(format!("{name} depends on {dep}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "dependencies the architecture does not allow:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn only_sandbox_may_hold_unsafe() {
    let workspace_manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    assert!(
        workspace_manifest.contains("[workspace.lints.rust]\nunsafe_code = \"forbid\""),
        "the workspace forbids unsafe code"
    );
    for (name, pkg) in workspace() {
        let manifest = std::fs::read_to_string(&pkg.manifest).unwrap();
        if name == "sandbox" {
            assert!(
                manifest.contains("unsafe_code = \"allow\""),
                "sandbox declares its exception"
            );
        } else {
            assert!(
                manifest.contains("[lints]\nworkspace = true"),
                "{name} must inherit the workspace lints ({})",
                pkg.manifest.display()
            );
        }
    }
}

#[test]
fn the_code_map_names_every_crate() {
    let map = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let crates: Vec<String> = std::fs::read_dir(root().join("crates"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for name in &crates {
        assert!(
            map.contains(&format!("\n- `{name}` — ")),
            "ARCHITECTURE.md's code map does not describe `{name}`"
        );
    }
    // ... and describes no crate that does not exist.
    for line in map.lines() {
        if let Some(rest) = line.strip_prefix("- `")
            && let Some((name, _)) = rest.split_once("` — ")
        {
            assert!(
                crates.iter().any(|c| c == name),
                "ARCHITECTURE.md describes `{name}`, which is not a crate"
            );
        }
    }
}
