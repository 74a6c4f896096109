//! A `lambent serve` process for end-to-end tests, and clients for it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ACCOUNT_A: &str = "111111111111";
pub const ACCOUNT_B: &str = "222222222222";
pub const KEY_A: (&str, &str) = ("AKIAE2EACCOUNTAAAAAA", "secret/for+account/a");
pub const KEY_B: (&str, &str) = ("AKIAE2EACCOUNTBBBBBB", "secret/for+account/b");

pub struct Server {
    child: Child,
    pub endpoint: String,
    pub dir: tempfile::TempDir,
}

/// The factor for every wait on a condition: `LAMBENT_TEST_TIMEOUT_SCALE`
/// (default 1), or the machine's load now if that is higher (one unit per
/// CPU's worth of load, 1 to 8, as scripts/test computes it when it starts).
/// The load is read when asked, so a wait that begins after the machine got
/// busier (the suite's own tests in parallel, other builds) scales too: a
/// server start that took over 30 s under a load that arrived after
/// scripts/test set the factor failed `errors_in_aws_shapes`.
pub fn timeout_scale() -> f64 {
    let set = std::env::var("LAMBENT_TEST_TIMEOUT_SCALE")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(1.0);
    set.max(load_scale())
}

/// One unit per CPU's worth of the 1-minute load average, from 1 to 8.
fn load_scale() -> f64 {
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    (load / cpus).ceil().clamp(1.0, 8.0)
}

/// Polls `f` until it yields a value or `deadline` (scaled by
/// [`timeout_scale`], re-read while waiting) passes.
pub fn wait_for<T>(what: &str, deadline: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    let mut scale = timeout_scale();
    let mut checked = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if checked.elapsed() >= Duration::from_secs(1) {
            scale = scale.max(timeout_scale());
            checked = Instant::now();
        }
        let limit = deadline.mul_f64(scale);
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Server {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    pub fn start_with(extra_args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let creds = dir.path().join("keys.toml");
        std::fs::write(
            &creds,
            format!(
                "[[key]]\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\naccount_id = \"{ACCOUNT_A}\"\n\
                 [[key]]\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\naccount_id = \"{ACCOUNT_B}\"\n",
                KEY_A.0, KEY_A.1, KEY_B.0, KEY_B.1
            ),
        )
        .expect("write keys");
        let child = spawn_serve(&dir, extra_args);
        let mut server = Self {
            child,
            endpoint: String::new(),
            dir,
        };
        server.wait_until_serving();
        server
    }

    /// Starts the server again on the same data directory, after it
    /// stopped or was killed.
    pub fn restart(&mut self, extra_args: &[&str]) {
        // A killed server leaves its endpoint file: not an answer to wait for.
        let _ = std::fs::remove_file(self.data_dir().join("endpoint"));
        self.child = spawn_serve(&self.dir, extra_args);
        self.wait_until_serving();
    }

    fn wait_until_serving(&mut self) {
        let endpoint_file = self.data_dir().join("endpoint");
        let child = &mut self.child;
        self.endpoint = wait_for(
            "the server's endpoint file",
            Duration::from_secs(30),
            || {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("the server exited ({status}) before serving");
                }
                std::fs::read_to_string(&endpoint_file)
                    .ok()
                    .filter(|s| !s.is_empty())
            },
        );
        wait_for("the server to answer", Duration::from_secs(30), || {
            http_get(&format!("{}/lambent/health", self.endpoint))
                .ok()
                .filter(|(s, _)| *s == 200)
        });
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn credentials_file(&self) -> PathBuf {
        self.dir.path().join("keys.toml")
    }

    /// Ends the server with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for a clean exit (the data directory stays).
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let child = &mut self.child;
        wait_for("the server to exit", Duration::from_secs(20), || {
            child.try_wait().ok().flatten()
        })
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    pub async fn client(&self, key: (&str, &str)) -> aws_sdk_lambda::Client {
        let http = aws_smithy_http_client::Builder::new().build_http();
        let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_sdk_lambda::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_lambda::config::Credentials::new(
                key.0, key.1, None, None, "e2e",
            ))
            .endpoint_url(&self.endpoint)
            .http_client(http)
            .load()
            .await;
        aws_sdk_lambda::Client::new(&conf)
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        self.terminate()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `lambent serve` on `<dir>/data` with the keys in `<dir>/keys.toml`, its
/// log appended to `<dir>/server.log`.
fn spawn_serve(dir: &tempfile::TempDir, extra_args: &[&str]) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join("server.log"))
        .expect("log file");
    Command::new(env!("CARGO_BIN_EXE_lambent"))
        .arg("serve")
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--metrics-listen")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--credentials-file")
        .arg(dir.path().join("keys.toml"))
        .args(extra_args)
        .env("LAMBENT_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn lambent")
}

/// A plain HTTP/1.0 GET (for links that need no signature).
pub fn http_get(url: &str) -> std::io::Result<(u16, Vec<u8>)> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| std::io::Error::other("not http"))?;
    let (host, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap_or((rest, "/".into()));
    let mut s = std::net::TcpStream::connect(host)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n")?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, buf[split + 4..].to_vec()))
}

/// A zip of (name, contents, mode) entries.
pub fn zip_of(files: &[(&str, &[u8], u32)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data, mode) in files {
        w.start_file(
            *name,
            zip::write::SimpleFileOptions::default().unix_permissions(*mode),
        )
        .expect("zip entry");
        w.write_all(data).expect("zip write");
    }
    w.finish().expect("zip finish").into_inner()
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The execution role the tests' functions name (Lambent takes it as given).
pub const ROLE: &str = "arn:aws:iam::111111111111:role/lambda-role";

/// Creates a `provided.al2023` function whose bootstrap does nothing, for
/// tests of the control plane around it; answers its ARN.
pub async fn create_noop_function(client: &aws_sdk_lambda::Client, name: &str) -> String {
    use aws_sdk_lambda::primitives::Blob;
    use aws_sdk_lambda::types::{FunctionCode, Runtime};
    client
        .create_function()
        .function_name(name)
        .runtime(Runtime::Providedal2023)
        .role(ROLE)
        .handler("bootstrap")
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(zip_of(&[("bootstrap", b"#!/bin/sh\n", 0o755)])))
                .build(),
        )
        .send()
        .await
        .expect("create_function")
        .function_arn()
        .expect("FunctionArn")
        .to_owned()
}

/// An SDK error's AWS code and message.
pub fn code_and_message<E: aws_sdk_lambda::error::ProvideErrorMetadata>(e: &E) -> (String, String) {
    (
        e.code().unwrap_or("").to_owned(),
        e.message().unwrap_or("").to_owned(),
    )
}
