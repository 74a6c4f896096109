//! `lambent serve`: opens the data directory, wires the stores, the control
//! plane and the API, and serves until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;

use crate::credentials::{self, Source};

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on for the Lambda API.
    #[arg(long, env = "LAMBENT_LISTEN", default_value_t = SocketAddr::from(([127, 0, 0, 1], crate::DEFAULT_PORT)))]
    pub listen: SocketAddr,

    /// Where metadata, packages, logs and keys live.
    #[arg(long, env = "LAMBENT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// A TOML file of access keys (`[[key]]` with access_key_id,
    /// secret_access_key, account_id). Without it, LAMBENT_ACCESS_KEY_ID /
    /// LAMBENT_SECRET_ACCESS_KEY / LAMBENT_ACCOUNT_ID are used, else a key pair
    /// is generated into the data directory.
    #[arg(long, env = "LAMBENT_CREDENTIALS_FILE")]
    pub credentials_file: Option<PathBuf>,

    /// Concurrent executions each account may use (default: 64 per CPU).
    #[arg(long, env = "LAMBENT_ACCOUNT_CONCURRENCY")]
    pub account_concurrency: Option<u32>,

    /// How functions reach the network. `egress` (default, as on Lambda):
    /// their own network namespace with a NAT link out to the public
    /// internet (IPv4); the host, other environments, private, link-local
    /// and metadata addresses and IPv6 are unreachable, except the networks
    /// of the function's VPC subnets (see --vpc-subnet). `isolated`: their
    /// own network namespace and no way out. `host`: share the host's
    /// network, for local development where functions call services on
    /// localhost (weaker isolation).
    #[arg(long, env = "LAMBENT_NETWORK", value_enum, default_value_t = Network::Egress)]
    pub network: Network,

    /// A VPC subnet functions may name in `VpcConfig.SubnetIds`, and the
    /// private IPv4 networks it opens to them:
    /// `[vpc-ID/]subnet-ID=CIDR[,CIDR...]`, e.g.
    /// `vpc-0home/subnet-0lan=192.168.1.0/24`. Repeatable (in the environment
    /// variable, separated by `;`). Functions without VPC settings reach only
    /// the public internet.
    #[arg(
        long = "vpc-subnet",
        env = "LAMBENT_VPC_SUBNETS",
        value_delimiter = ';'
    )]
    pub vpc_subnets: Vec<model::vpc::SubnetMapping>,

    /// Run functions as plain host processes, without any isolation. Only for
    /// hosts where Lambent cannot isolate (it refuses to start there otherwise).
    #[arg(long, env = "LAMBENT_INSECURE_NO_SANDBOX")]
    pub insecure_no_sandbox: bool,

    /// Seconds an idle execution environment stays warm before it is stopped.
    #[arg(long, env = "LAMBENT_KEEP_ALIVE", default_value_t = 300.0)]
    pub keep_alive: f64,

    /// Multiplies the time constants of asynchronous invocation: the retry
    /// delays (Lambda's: 1 and 2 minutes after function errors, 1 s to 5 min
    /// backoff after throttles) and each event's maximum age. 1 keeps
    /// Lambda's schedule; tests use e.g. 0.01.
    #[arg(long, env = "LAMBENT_ASYNC_DELAY_SCALE", default_value_t = 1.0)]
    pub async_delay_scale: f64,

    /// Real time per unit of schedule time for EventBridge Scheduler: 1 runs
    /// schedules on the clock; tests use e.g. 0.01 (a minute of schedule time
    /// passes in 0.6 s, `rate(1 minute)` fires every 0.6 s, `at()` two
    /// minutes ahead fires in 1.2 s). Retry backoff and event ages scale too.
    #[arg(long, env = "LAMBENT_SCHEDULE_TIME_SCALE", default_value_t = 1.0)]
    pub schedule_time_scale: f64,

    /// Asynchronous events that may run at once (default: 32 per CPU, at
    /// most the account concurrency). Events beyond it wait in the queue;
    /// 0 pauses asynchronous dispatch (events are accepted and kept).
    #[arg(long, env = "LAMBENT_ASYNC_CONCURRENCY")]
    pub async_concurrency: Option<u32>,

    /// Memory (MB) all execution environments together may be promised
    /// (their memory sizes) and use (default: nine tenths of the host's
    /// memory, or of the cgroup Lambent runs in).
    #[arg(long, env = "LAMBENT_MEMORY_BUDGET_MB")]
    pub memory_budget_mb: Option<u64>,

    /// Memory (MB) one account's environments together may be promised and
    /// use (default: half the memory budget).
    #[arg(long, env = "LAMBENT_ACCOUNT_MEMORY_MB")]
    pub account_memory_mb: Option<u64>,

    /// Processes and threads all environments together may hold (default:
    /// half of the kernel's pid_max / threads-max).
    #[arg(long, env = "LAMBENT_PROCESS_BUDGET")]
    pub process_budget: Option<u64>,

    /// Processes and threads one account's environments together may hold
    /// (default: half the process budget). Each environment holds at most
    /// 1,024.
    #[arg(long, env = "LAMBENT_ACCOUNT_PROCESSES")]
    pub account_processes: Option<u64>,

    /// CPUs one account's environments together may use (default: all of
    /// the host's CPUs but one, at least one). Accounts share CPU time
    /// equally when they compete.
    #[arg(long, env = "LAMBENT_ACCOUNT_CPUS")]
    pub account_cpus: Option<f64>,

    /// Log output (MB) one invocation may write; the rest is dropped and a
    /// platform line in the log says how much.
    #[arg(long, env = "LAMBENT_INVOCATION_LOG_MB", default_value_t = 4)]
    pub invocation_log_mb: u64,

    /// Log bytes (MB) one log group (a function's) keeps; its oldest events
    /// are removed beyond it.
    #[arg(long, env = "LAMBENT_FUNCTION_LOG_MB", default_value_t = 64)]
    pub function_log_mb: u64,

    /// Packages (MB) one account may store over all its regions: functions,
    /// published versions and layers (GetAccountSettings' TotalCodeSize;
    /// Lambda's default, 75 GB).
    #[arg(long, env = "LAMBENT_CODE_STORAGE_MB", default_value_t = control::TOTAL_CODE_SIZE_LIMIT >> 20)]
    pub code_storage_mb: u64,

    /// Free space (MB) on the data directory's disk below which new work
    /// (packages, asynchronous events, log lines) is refused, so that the
    /// platform's own bookkeeping and a restart still find room (default:
    /// 2 % of the disk, at most 1 GiB).
    #[arg(long, env = "LAMBENT_MIN_FREE_DISK_MB")]
    pub min_free_disk_mb: Option<u64>,
    /// Where Prometheus metrics are served without a signature (`/metrics`):
    /// an address, or `off`. They name every account's functions, so the
    /// default is loopback only (127.0.0.1:9766; if that port is taken, the
    /// server starts without it and says so).
    #[arg(long, env = "LAMBENT_METRICS_LISTEN", value_parser = parse_metrics_listen)]
    pub metrics_listen: Option<MetricsListen>,

    /// Also serve the metrics on the API listener (`/lambent/metrics`).
    #[arg(long, env = "LAMBENT_METRICS_ON_API")]
    pub metrics_on_api: bool,

    /// A file holding a token every metrics scrape must present as
    /// `Authorization: Bearer <token>` (Prometheus: `authorization:
    /// credentials_file`).
    #[arg(long, env = "LAMBENT_METRICS_TOKEN_FILE")]
    pub metrics_token_file: Option<PathBuf>,

    /// The public domain function URLs are reached under, behind a reverse
    /// proxy that terminates TLS and forwards `*.lambda-url.*.<domain>` to
    /// this server: URLs become `https://<id>.lambda-url.<region>.<domain>/`.
    /// Without it they are `http://<id>.lambda-url.<region>.localhost:<port>/`
    /// on the API listener.
    #[arg(long, env = "LAMBENT_URL_DOMAIN", value_parser = parse_url_domain)]
    pub url_domain: Option<String>,
}

fn parse_url_domain(s: &str) -> Result<String, String> {
    let d = s.trim().trim_end_matches('.').to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if d.is_empty() || d.len() > 200 || !d.split('.').all(label_ok) {
        return Err(format!(
            "'{s}' is not a domain name (letters, digits and hyphens in dot-separated labels)"
        ));
    }
    Ok(d)
}

/// The default metrics port, beside the API's.
pub const DEFAULT_METRICS_PORT: u16 = 9766;

/// `--metrics-listen`: an address, or no metrics listener at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsListen {
    Off,
    At(SocketAddr),
}

fn parse_metrics_listen(s: &str) -> Result<MetricsListen, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(MetricsListen::Off);
    }
    s.parse()
        .map(MetricsListen::At)
        .map_err(|_| format!("'{s}' is neither an address (127.0.0.1:9766) nor `off`"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Network {
    Egress,
    Isolated,
    Host,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Credentials(#[from] credentials::CredentialsError),
    #[error("cannot open the metadata store: {0}")]
    Store(#[from] store::StoreError),
    #[error("cannot open the package store: {0}")]
    Blobs(#[from] blobs::PackageError),
    #[error("cannot open the log store: {0}")]
    Logs(#[from] logs::LogError),
    #[error(transparent)]
    Queue(#[from] queue::QueueError),
    #[error("cannot open the SNS topic store: {0}")]
    Topics(#[from] sns::SnsError),
    #[error("cannot open the schedule store: {0}")]
    Scheduler(#[from] scheduler::SchedulerError),
    #[error("cannot open the event source mappings: {0}")]
    EventSourceMappings(#[from] esm::DbError),
    #[error(transparent)]
    DataDirInUse(#[from] crate::datadir::LockError),
    #[error("cannot read the metrics token file {path}: {reason}")]
    MetricsToken { path: PathBuf, reason: String },
    #[error("cannot prepare execution environments: {0}")]
    Sandbox(#[from] sandbox::LaunchError),
    #[error(
        "refusing to start: {0}.\nLambent isolates every function; run it as root, or pass --insecure-no-sandbox to run functions as plain processes with no isolation at all"
    )]
    CannotIsolate(String),
    #[error("cannot install the runtime clients into {path}: {source}")]
    Runtimes {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("server failed: {0}")]
    Serve(std::io::Error),
}

/// What new work must leave free on the data directory's disk.
fn disk_guard(args: &ServeArgs, data_dir: &Path) -> Result<disk::DiskGuard, ServeError> {
    let at = |source| ServeError::DataDir {
        path: data_dir.to_owned(),
        source,
    };
    let mut guard = disk::DiskGuard::new(data_dir, None).map_err(at)?;
    if let Some(mb) = args.min_free_disk_mb {
        let reserve = disk::Reserve {
            bytes: mb << 20,
            ..guard.reserve()
        };
        guard = disk::DiskGuard::new(data_dir, Some(reserve)).map_err(at)?;
    }
    let space = guard.space().map_err(at)?;
    let reserve = guard.reserve();
    tracing::info!(
        free_mb = space.free_bytes >> 20,
        reserve_mb = reserve.bytes >> 20,
        reserve_inodes = reserve.inodes,
        "data directory disk"
    );
    if let Err(full) = guard.check(0) {
        tracing::warn!(reason = %full, "starting with a full disk: new packages, asynchronous events and log lines are refused until space is freed");
    }
    Ok(guard)
}

/// Every few seconds: gives the ballast back when the disk runs out (free
/// space below half the reserve), takes it again once there is room.
fn watch_disk(guard: disk::DiskGuard, ballast: disk::Ballast) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let (guard, ballast) = (guard.clone(), ballast.clone());
            let step = tokio::task::spawn_blocking(move || {
                let low = guard
                    .space()
                    .is_ok_and(|s| s.free_bytes < guard.reserve().bytes / 2);
                if low {
                    if ballast.release() {
                        tracing::warn!(
                            bytes = ballast.bytes(),
                            "the disk is nearly full: gave back the ballast"
                        );
                    }
                } else if let Err(e) = ballast.take(&guard) {
                    tracing::warn!(error = %e, "cannot set the disk ballast aside");
                }
            });
            let _ = step.await;
        }
    });
}

/// The host's defaults, with what the operator set.
fn capacity_limits(args: &ServeArgs) -> sandbox::Limits {
    let mut l = sandbox::Limits::for_host(&sandbox::HostResources::detect());
    if let Some(mb) = args.memory_budget_mb {
        l.platform_memory_bytes = mb.max(1) << 20;
        l.account_memory_bytes = l.platform_memory_bytes / 2;
    }
    if let Some(n) = args.process_budget {
        l.platform_pids = n.max(1);
        l.account_pids = (n / 2).max(1);
    }
    if let Some(mb) = args.account_memory_mb {
        l.account_memory_bytes = (mb.max(1) << 20).min(l.platform_memory_bytes);
    }
    if let Some(n) = args.account_processes {
        l.account_pids = n.clamp(1, l.platform_pids);
    }
    if let Some(cpus) = args.account_cpus {
        l.account_millicpus = ((cpus * 1000.0) as u64).max(10);
    }
    l
}

fn server_key(data_dir: &Path) -> Result<[u8; 32], ServeError> {
    let path = data_dir.join("server.key");
    if let Ok(bytes) = std::fs::read(&path)
        && let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice())
    {
        return Ok(key);
    }
    let key = credentials::random_bytes::<32>()?;
    credentials::write_private(&path, &key)?;
    Ok(key)
}

pub fn run(args: ServeArgs) -> Result<(), ServeError> {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_env("LAMBENT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only for a person at a terminal: piped or redirected logs stay
    // plain text (and NO_COLOR turns it off everywhere).
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .init();

    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(crate::default_data_dir);
    std::fs::create_dir_all(&data_dir).map_err(|source| ServeError::DataDir {
        path: data_dir.clone(),
        source,
    })?;

    // Before anything else touches the directory (cgroups named after it,
    // its queue, its stores, its endpoint file): one server per directory.
    let lock = crate::datadir::DataDirLock::acquire(&data_dir)?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    let result = rt.block_on(serve(args, data_dir));
    // Environments stop and their cgroups go with the runtime's tasks;
    // only then is the directory free for another server.
    drop(rt);
    drop(lock);
    result
}

async fn serve(args: ServeArgs, data_dir: PathBuf) -> Result<(), ServeError> {
    let metrics_token = match &args.metrics_token_file {
        Some(path) => Some(read_token(path)?),
        None => None,
    };
    let (keyring, source) = credentials::load(args.credentials_file.as_deref(), &data_dir)?;
    let store = Arc::new(store_sqlite::SqliteStore::open(&data_dir.join("meta.db"))?);
    let disk = disk_guard(&args, &data_dir)?;
    // A full disk gives back the ballast first, so that starting (and the
    // bookkeeping that frees space) finds room.
    let ballast = disk::Ballast::for_guard(&data_dir.join("disk-ballast"), &disk);
    if disk.check(0).is_err() && ballast.release() {
        tracing::warn!(
            bytes = ballast.bytes(),
            "the disk is full: gave back the ballast kept for this"
        );
    }
    watch_disk(disk.clone(), ballast);
    let blobs = blobs::BlobStore::open(&data_dir)?.with_disk_guard(disk.clone());
    let catalog = Arc::new(runtimes::Catalog::detect());
    tracing::info!("runtimes on this host: {}", catalog.describe());
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1);
    let account_concurrency = args.account_concurrency.unwrap_or(64 * cpus);
    let settings = control::Settings {
        account_concurrency,
        vpc_subnets: args
            .vpc_subnets
            .iter()
            .map(|m| (m.subnet_id.clone(), m.vpc_id.clone()))
            .collect(),
        code_storage_bytes: args.code_storage_mb << 20,
    };
    let (log_sink, log_store) = logs::open_store_with(
        &data_dir.join("logs.db"),
        logs::Retention {
            group_bytes: args.function_log_mb.max(1) << 20,
        },
        disk.clone(),
    )?;
    let limits = capacity_limits(&args);
    tracing::info!(
        memory_budget_mb = limits.platform_memory_bytes >> 20,
        account_memory_mb = limits.account_memory_bytes >> 20,
        process_budget = limits.platform_pids,
        account_processes = limits.account_pids,
        account_cpus = limits.account_millicpus as f64 / 1000.0,
        "capacity"
    );
    let launcher: Arc<dyn sandbox::Launcher> = if args.insecure_no_sandbox {
        tracing::warn!(
            "--insecure-no-sandbox: functions run as plain host processes without isolation"
        );
        Arc::new(sandbox::DirectLauncher::new()?)
    } else {
        if let Some(why) = sandbox::cannot_isolate() {
            return Err(ServeError::CannotIsolate(why));
        }
        let network = match args.network {
            Network::Egress => sandbox::NetworkMode::Egress,
            Network::Isolated => sandbox::NetworkMode::Isolated,
            Network::Host => sandbox::NetworkMode::Host,
        };
        Arc::new(
            sandbox::NamespaceLauncher::with_limits(&data_dir.join("sandbox"), network, limits)?
                .with_subnets(
                    args.vpc_subnets
                        .iter()
                        .map(|m| (m.subnet_id.clone(), m.networks.clone())),
                ),
        )
    };
    tracing::info!(isolation = launcher.isolation(), "execution environments");
    let runtime_base = data_dir.join("runtimes");
    let runtime_dir =
        runtimes::clients::install(&runtime_base).map_err(|source| ServeError::Runtimes {
            path: runtime_base.clone(),
            source,
        })?;
    let pool = pool::Pool::new(
        launcher,
        runtime_dir,
        log_sink,
        pool::PoolSettings {
            keep_alive: std::time::Duration::from_secs_f64(args.keep_alive.max(0.0)),
            capacity: pool::Capacity::from_limits(&limits),
            invocation_log_bytes: args.invocation_log_mb.max(1) << 20,
        },
    );
    let queue = queue::Queue::open_with(&data_dir.join("queue.db"), disk.clone())?;
    if !queue.is_empty() {
        tracing::info!(
            items = queue.len(),
            "resuming queued asynchronous events and deliveries"
        );
    }
    let invoker = Arc::new(invoke::Invoker::new(
        store.clone(),
        blobs.clone(),
        catalog.clone(),
        pool.clone(),
        account_concurrency,
    ));
    if let Err(e) = invoker.restore_provisioned().await {
        tracing::error!(error = %e, "cannot restore provisioned concurrency");
    }
    let dispatcher = dispatch::Dispatcher::new(
        invoker.clone(),
        queue,
        dispatch::DispatchSettings {
            delay_scale: args.async_delay_scale.max(0.0),
            max_concurrent: args
                .async_concurrency
                .unwrap_or((32 * cpus).min(account_concurrency))
                as usize,
        },
    );
    dispatcher.spawn();
    let urls = Arc::new(api::function_urls::UrlIndex::default());
    let scheduler = scheduler::Scheduler::open(
        &data_dir.join("scheduler.db"),
        Arc::new(api::schedules::QueueDelivery(dispatcher.clone())),
        scheduler::SchedulerSettings {
            time_scale: args.schedule_time_scale,
        },
    )?;
    scheduler.spawn();
    let control = Arc::new(control::Control::new(
        store,
        blobs,
        catalog.clone(),
        settings,
        Arc::new(api::DataPlane(invoker.clone(), urls.clone())),
        control::CodeUrlSigner::new(server_key(&data_dir)?),
    ));
    urls.load(&control).await.map_err(|e| match e {
        control::ControlError::Store(s) => ServeError::Store(s),
        other => ServeError::Store(store::StoreError::Backend {
            op: "loading function URLs",
            detail: other.to_string(),
        }),
    })?;
    let topics = Arc::new(sns::Topics::open(&data_dir.join("sns.db"))?);
    let esm = esm::Esm::open(&data_dir, invoker.clone())?;
    esm.resume().await;
    let pollers = esm.clone();
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| ServeError::Listen {
            addr: args.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Listen {
        addr: args.listen,
        source,
    })?;
    let url_base = match &args.url_domain {
        Some(domain) => model::UrlBase::Public {
            domain: domain.clone(),
        },
        None => model::UrlBase::Local { port: addr.port() },
    };
    let state = Arc::new(api::AppState {
        control,
        invoker,
        dispatcher,
        logs: log_store,
        keyring: Arc::new(keyring),
        urls,
        url_base,
        topics,
        scheduler,
        esm,
    });
    let endpoint = format!("http://{addr}");
    let access = api::MetricsAccess {
        bearer_token: metrics_token,
    };
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let metrics_server = match args.metrics_listen {
        Some(MetricsListen::Off) => None,
        Some(MetricsListen::At(at)) => Some(
            bind_metrics(at)
                .await
                .map_err(|source| ServeError::Listen { addr: at, source })?,
        ),
        None => {
            let at = SocketAddr::from(([127, 0, 0, 1], DEFAULT_METRICS_PORT));
            match bind_metrics(at).await {
                Ok(l) => Some(l),
                Err(e) => {
                    tracing::warn!(error = %e, "metrics are not served: cannot listen on {at}; pass --metrics-listen");
                    None
                }
            }
        }
    };
    let metrics_task = match metrics_server {
        Some((listener, metrics_addr)) => {
            let metrics_endpoint = format!("http://{metrics_addr}");
            let _ = std::fs::write(
                data_dir.join(crate::datadir::METRICS_ENDPOINT_FILE),
                &metrics_endpoint,
            );
            tracing::info!(
                endpoint = %metrics_endpoint,
                token = access.bearer_token.is_some(),
                "Prometheus metrics at {metrics_endpoint}/metrics"
            );
            let router = api::metrics_router(state.clone(), access.clone());
            let mut rx = shutdown_rx.clone();
            Some(tokio::spawn(async move {
                let stop = async move {
                    let _ = rx.wait_for(|stop| *stop).await;
                };
                if let Err(e) = api::run(listener, router, stop).await {
                    tracing::error!(error = %e, "metrics listener failed");
                }
            }))
        }
        None => None,
    };
    // Tools (and tests) find a running server through this file; it is
    // removed when the server stops.
    if let Err(e) = std::fs::write(data_dir.join(crate::datadir::ENDPOINT_FILE), &endpoint) {
        tracing::warn!(error = %e, "cannot write the endpoint file");
    }

    tracing::info!(%endpoint, data_dir = %data_dir.display(), "lambent is serving");
    match &source {
        Source::Generated(path) | Source::File(path) => {
            if let Some((id, secret)) = credentials::first_key(path) {
                let verb = if matches!(source, Source::Generated(_)) {
                    "created"
                } else {
                    "using"
                };
                eprintln!(
                    "\nLambent is listening on {endpoint} ({verb} access keys in {}).\nPoint the aws CLI or an SDK at it:\n\n  export AWS_ENDPOINT_URL={endpoint}\n  export AWS_ACCESS_KEY_ID={id}\n  export AWS_SECRET_ACCESS_KEY={secret}\n  export AWS_DEFAULT_REGION=us-east-1\n  aws lambda list-functions\n",
                    path.display()
                );
            }
        }
        Source::Environment => {
            eprintln!("\nLambent is listening on {endpoint} (access key from the environment).\n")
        }
    }

    let router = if args.metrics_on_api {
        api::router_with_metrics(state, access)
    } else {
        api::router(state)
    };
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = shutdown_tx.send(true);
    });
    let mut rx = shutdown_rx;
    let stop = async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let served = api::run(listener, router, stop).await;
    // Pollers finish their in-flight batches before the server goes.
    pollers.shutdown().await;
    if let Some(task) = metrics_task {
        let _ = task.await;
    }
    served.map_err(ServeError::Serve)?;
    tracing::info!("lambent stopped");
    Ok(())
}

async fn bind_metrics(at: SocketAddr) -> std::io::Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(at).await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// The metrics bearer token: the file's first line, which must not be empty.
fn read_token(path: &Path) -> Result<Arc<str>, ServeError> {
    let err = |reason: String| ServeError::MetricsToken {
        path: path.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let token = text.lines().next().unwrap_or("").trim();
    if token.is_empty() {
        return Err(err("it is empty".into()));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(err(
            "a token is printable ASCII without spaces (it travels in an HTTP header)".into(),
        ));
    }
    Ok(token.into())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
