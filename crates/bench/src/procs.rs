//! The processes a benchmark run starts: `lambent serve` with a fresh data
//! directory, and the baseline echo server on the same HTTP stack.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::client::{ACCESS_KEY, ACCESS_KEY_B, ACCOUNT, ACCOUNT_B, BoxError, SECRET, SECRET_B};

pub struct Proc {
    pub child: Child,
    pub addr: String,
    pub dir: Option<PathBuf>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        // SIGTERM first so that the platform stops its environments.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

fn wait_for_file(path: &Path, timeout: Duration) -> Result<String, BoxError> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(s) = std::fs::read_to_string(path)
            && !s.trim().is_empty()
        {
            return Ok(s.trim().to_owned());
        }
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for {}", path.display()).into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Starts `lambent serve` on a fresh data directory named after `name`.
pub fn start_lambent(
    binary: &Path,
    work: &Path,
    name: &str,
    extra: &[&str],
) -> Result<Proc, BoxError> {
    let dir = work.join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let keys = dir.join("keys.toml");
    std::fs::write(
        &keys,
        format!(
            "[[key]]\naccess_key_id = \"{ACCESS_KEY}\"\nsecret_access_key = \"{SECRET}\"\naccount_id = \"{ACCOUNT}\"\n\
             [[key]]\naccess_key_id = \"{ACCESS_KEY_B}\"\nsecret_access_key = \"{SECRET_B}\"\naccount_id = \"{ACCOUNT_B}\"\n"
        ),
    )?;
    let data = dir.join("data");
    let log = std::fs::File::create(dir.join("server.log"))?;
    let child = Command::new(binary)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "off",
            "--data-dir",
        ])
        .arg(&data)
        .arg("--credentials-file")
        .arg(&keys)
        .args(extra)
        .env("LAMBENT_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()?;
    let endpoint = wait_for_file(&data.join("endpoint"), Duration::from_secs(60))?;
    let addr = endpoint.trim_start_matches("http://").to_owned();
    Ok(Proc {
        child,
        addr,
        dir: Some(dir),
    })
}

/// Starts the baseline echo server (this binary, `echo-server`).
pub fn start_echo(work: &Path) -> Result<Proc, BoxError> {
    let file = work.join(format!("echo-{}.addr", std::process::id()));
    let _ = std::fs::remove_file(&file);
    let child = Command::new(std::env::current_exe()?)
        .arg("echo-server")
        .arg(&file)
        .stdout(Stdio::null())
        .spawn()?;
    let addr = wait_for_file(&file, Duration::from_secs(30))?;
    let _ = std::fs::remove_file(&file);
    Ok(Proc {
        child,
        addr,
        dir: None,
    })
}

/// The echo server: the same axum/hyper stack and tokio runtime shape as
/// `lambent serve`, answering every POST with its body.
pub fn run_echo_server(addr_file: &Path) -> Result<(), BoxError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let app = axum::Router::new().fallback(axum::routing::post(
            |body: bytes::Bytes| async move { body },
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        std::fs::write(addr_file, listener.local_addr()?.to_string())?;
        use axum::serve::ListenerExt as _;
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, app).await?;
        Ok::<(), BoxError>(())
    })
}
