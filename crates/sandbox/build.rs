//! Builds the environment's init (`init/main.rs`): a small static program the
//! sandbox embeds and executes as pid 1 of every environment.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    println!("cargo:rerun-if-changed=init/main.rs");
    let (Some(out), Ok(target)) = (std::env::var_os("OUT_DIR"), std::env::var("TARGET")) else {
        eprintln!("OUT_DIR and TARGET must be set (run through cargo)");
        return ExitCode::FAILURE;
    };
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let exe = PathBuf::from(out).join("lambent-init");
    let status = Command::new(rustc)
        .args(["--edition", "2024", "--crate-type", "bin"])
        .args(["--crate-name", "lambent_init", "--target", &target])
        .args([
            "-C",
            "opt-level=s",
            "-C",
            "panic=abort",
            "-C",
            "debuginfo=0",
        ])
        .args(["-C", "strip=symbols", "-C", "target-feature=+crt-static"])
        .arg("-o")
        .arg(&exe)
        .arg("init/main.rs")
        .status();
    match status {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(s) => {
            eprintln!("building the environment's init (init/main.rs) failed: {s}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("cannot run rustc for the environment's init: {e}");
            ExitCode::FAILURE
        }
    }
}
