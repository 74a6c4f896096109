//! `lambent-bench`: starts `lambent serve` on a fresh data directory, creates
//! its functions through the API, and measures each figure beside its physical
//! baseline in the same run, writing BENCHMARKS.md.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Parser;

mod client;
mod neighbours;
mod procs;
mod scenarios;
mod stats;
mod streaming;

use client::BoxError;

/// The profile-based account of what bounds each figure, written by hand
/// (labelled and dated in the file), kept beside the harness and appended
/// to full runs.
const BOUNDS: &str = include_str!("../bounds.md");

#[derive(Parser, Debug, Clone)]
#[command(
    name = "lambent-bench",
    about = "Measure Lambent against its physical baselines"
)]
pub struct Args {
    /// Where to write the report.
    #[arg(long, default_value = "BENCHMARKS.md")]
    pub out: PathBuf,
    /// The `lambent` binary to measure (default: next to this one).
    #[arg(long)]
    pub lambent: Option<PathBuf>,
    /// Tiny counts: checks that every scenario runs, in seconds (for CI).
    #[arg(long)]
    pub smoke: bool,
    /// A scratch directory for data directories and packages.
    #[arg(long, default_value = "/tmp/lambent-bench")]
    pub work: PathBuf,
    /// Run only the scenarios whose names contain this.
    #[arg(long)]
    pub only: Option<String>,
}

/// The counts a run uses.
#[derive(Debug, Clone, Copy)]
pub struct Counts {
    pub warm_samples: usize,
    pub warmup: usize,
    pub throughput_secs: f64,
    pub cold_provided: usize,
    pub cold_python: usize,
    pub cold_node: usize,
    pub env_counts: [usize; 2],
    pub list_functions: usize,
    /// Noisy neighbours: blocks per condition, invocations per block.
    pub neighbour_blocks: usize,
    pub neighbour_samples: usize,
    /// Streamed invocations measured, after their warm-up.
    pub stream_samples: usize,
    pub stream_warmup: usize,
}

impl Counts {
    fn for_args(a: &Args) -> Self {
        if a.smoke {
            Self {
                warm_samples: 200,
                warmup: 50,
                throughput_secs: 0.5,
                cold_provided: 3,
                cold_python: 2,
                cold_node: 1,
                env_counts: [5, 10],
                list_functions: 60,
                neighbour_blocks: 1,
                neighbour_samples: 50,
                stream_samples: 20,
                stream_warmup: 5,
            }
        } else {
            Self {
                warm_samples: 10_000,
                warmup: 1_000,
                throughput_secs: 5.0,
                cold_provided: 40,
                cold_python: 25,
                cold_node: 12,
                env_counts: [100, 1000],
                list_functions: 10_000,
                neighbour_blocks: 8,
                neighbour_samples: 500,
                stream_samples: 1_000,
                stream_warmup: 50,
            }
        }
    }
}

/// One section of the report.
pub struct Section {
    pub title: String,
    pub body: String,
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines().next().map(|l| {
                l.split_whitespace()
                    .nth(1)
                    .unwrap_or("0")
                    .parse::<u64>()
                    .unwrap_or(0)
            })
        })
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("PRETTY_NAME=")).map(|l| {
                l.trim_start_matches("PRETTY_NAME=")
                    .trim_matches('"')
                    .to_owned()
            })
        })
        .unwrap_or_default();
    format!(
        "{cpus} x {cpu}, {:.1} GiB RAM, {os}, Linux {}; load average at start: {}",
        mem as f64 / 1024.0 / 1024.0,
        kernel.trim(),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )
}

fn git_commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn main() {
    let mut argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("echo-server") {
        let file = argv.pop().unwrap_or_default();
        if let Err(e) = procs::run_echo_server(Path::new(&file)) {
            eprintln!("echo server: {e}");
            std::process::exit(1);
        }
        return;
    }
    let args = Args::parse();
    if let Err(e) = run(args) {
        eprintln!("lambent-bench: {e}");
        std::process::exit(1);
    }
}

/// Whether the hand-written account follows the tables: full runs of every
/// scenario only (a smoke run's tiny counts, or a partial run, would sit
/// beside figures they do not match).
fn appends_bounds(args: &Args) -> bool {
    args.only.is_none() && !args.smoke
}

fn run(args: Args) -> Result<(), BoxError> {
    let lambent = match &args.lambent {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("lambent"),
    };
    if !lambent.is_file() {
        return Err(format!(
            "{} not found (build it, or pass --lambent)",
            lambent.display()
        )
        .into());
    }
    std::fs::create_dir_all(&args.work)?;
    let counts = Counts::for_args(&args);
    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let sections = rt.block_on(scenarios::all(&args, &counts, &lambent))?;
    let elapsed = started.elapsed();
    let mut md = String::new();
    let _ = writeln!(md, "# Benchmarks\n");
    let _ = writeln!(
        md,
        "Produced by `scripts/bench` (`lambent-bench`{}), commit `{}`, in {:.0} s.\n",
        if args.smoke { " --smoke" } else { "" },
        git_commit(),
        elapsed.as_secs_f64()
    );
    let _ = writeln!(md, "Machine: {}.\n", machine());
    let _ = writeln!(
        md,
        "Every figure sits beside its physical baseline measured in the same run on the same machine; \
         ratios are ours / baseline. The machine is shared and noisy: medians are steadier than tails.\n"
    );
    for s in &sections {
        let _ = writeln!(md, "## {}\n\n{}", s.title, s.body);
    }
    if appends_bounds(&args) {
        md.push_str(BOUNDS);
    }
    std::fs::write(&args.out, md)?;
    println!(
        "wrote {} in {:.0} s",
        args.out.display(),
        elapsed.as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hand_written_account_is_labelled_dated_and_only_in_full_runs() {
        let heading = BOUNDS.lines().next().unwrap_or_default();
        assert!(
            heading.starts_with("## What bounds each figure"),
            "{heading}"
        );
        let label = BOUNDS.lines().nth(2).unwrap_or_default();
        assert!(
            label.contains("Written by hand") && label.contains("not this run's"),
            "{label}"
        );
        assert!(
            label.contains("2026-11-27") && label.contains("2026-11-30"),
            "{label}"
        );
        let args = |extra: &[&str]| {
            Args::parse_from(std::iter::once("lambent-bench").chain(extra.iter().copied()))
        };
        assert!(appends_bounds(&args(&[])));
        assert!(!appends_bounds(&args(&["--smoke"])));
        assert!(!appends_bounds(&args(&["--only", "cold"])));
    }
}
