use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::*;

fn unique(prefix: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("test-{prefix}-{}-{n}", std::process::id())
}

/// Waits for `f` to hold, up to `secs` seconds scaled by
/// `LAMBENT_TEST_TIMEOUT_SCALE`.
fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let scale = std::env::var("LAMBENT_TEST_TIMEOUT_SCALE")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(1.0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs).mul_f64(scale);
    while !f() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

struct Env {
    _state: tempfile::TempDir,
    code: tempfile::TempDir,
    launcher: NamespaceLauncher,
}

fn env() -> Env {
    let state = tempfile::tempdir().unwrap();
    let code = tempfile::tempdir().unwrap();
    std::fs::write(code.path().join("hello.txt"), "from the package\n").unwrap();
    let launcher = NamespaceLauncher::new(state.path(), NetworkMode::Isolated).unwrap();
    Env {
        _state: state,
        code,
        launcher,
    }
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: test helper; pipe2 fills two descriptors we then own.
    unsafe {
        assert_eq!(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC), 0);
        (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))
    }
}

/// Runs a shell script in a fresh environment; returns its output and status.
async fn run(e: &Env, script: &str) -> (String, ExitStatus) {
    let (r, w) = pipe();
    let spec = LaunchSpec {
        env_id: unique("run"),
        account: "111111111111".into(),
        init_cpu_burst: true,
        program: "/bin/sh".into(),
        argv: vec!["sh".into(), "-c".into(), script.into()],
        env: vec![("PATH".into(), "/usr/bin:/bin".into())],
        code_dir: e.code.path().to_owned(),
        opt_dir: None,
        runtime_dir: None,
        lang_dir: None,
        tmp_mb: 16,
        memory_mb: 128,
        vpc_subnets: Vec::new(),
        output: w.as_raw_fd(),
    };
    let p = e.launcher.launch(&spec).unwrap().process;
    drop(w);
    let status = p.wait().await.unwrap();
    let mut out = String::new();
    std::fs::File::from(r).read_to_string(&mut out).unwrap();
    (out, status)
}

#[tokio::test]
async fn runs_with_its_own_root_and_pid_namespace() {
    let e = env();
    let (out, status) = run(
        &e,
        "echo pid=$$; cat /var/task/hello.txt; pwd; ls /; hostname; \
         test -e /work && echo HOST-VISIBLE; test -e /root && echo ROOT-VISIBLE; \
         ls /proc | grep -c '^[0-9]'",
    )
    .await;
    assert!(status.success(), "{status}: {out}");
    assert!(
        out.contains("pid=2\n"),
        "the runtime runs under its own init: {out}"
    );
    assert!(out.contains("from the package"), "{out}");
    assert!(out.contains("/var/task\n"), "{out}");
    assert!(out.contains("localhost\n"), "{out}");
    assert!(
        !out.contains("HOST-VISIBLE") && !out.contains("ROOT-VISIBLE"),
        "{out}"
    );
    // Only this environment's processes are visible (init, sh, ls, grep at most).
    let procs: u32 = out.lines().last().unwrap().trim().parse().unwrap();
    assert!(procs <= 4, "{out}");
}

#[tokio::test]
async fn only_tmp_is_writable_and_it_has_the_configured_size() {
    let e = env();
    let (out, status) = run(
        &e,
        "touch /var/task/x 2>/dev/null && echo TASK-WRITABLE; \
         touch /usr/x 2>/dev/null && echo USR-WRITABLE; \
         touch /x 2>/dev/null && echo ROOT-WRITABLE; \
         touch /etc/x 2>/dev/null && echo ETC-WRITABLE; \
         echo data > /tmp/file && cat /tmp/file && rm /tmp/file; \
         stat -c 'mode %a' /tmp; ls -A /tmp | wc -l; \
         dd if=/dev/zero of=/tmp/fill bs=1M count=16 2>/dev/null && echo FITS; \
         dd if=/dev/zero of=/tmp/more bs=1M count=2 2>&1 | grep -o 'No space left on device' | head -1; \
         grep ' /tmp ' /proc/self/mountinfo",
    )
    .await;
    assert!(status.success(), "{status}: {out}");
    for bad in [
        "TASK-WRITABLE",
        "USR-WRITABLE",
        "ROOT-WRITABLE",
        "ETC-WRITABLE",
    ] {
        assert!(!out.contains(bad), "{bad}: {out}");
    }
    assert!(out.contains("data\n"), "{out}");
    assert!(
        out.contains("mode 1777\n0\n"),
        "sticky, world-writable and empty: {out}"
    );
    assert!(out.contains("FITS\n"), "16 MiB fit in a 16 MiB /tmp: {out}");
    assert!(
        out.contains("No space left on device"),
        "2 MiB more do not: {out}"
    );
    assert!(
        out.contains(" - ext4 /dev/loop"),
        "/tmp is a disk, not memory: {out}"
    );
}

#[tokio::test]
async fn tmp_is_disk_backed_and_private_to_one_environment() {
    // 48 MiB written by a 32 MiB function: the page cache is reclaimable,
    // written back to the environment's disk, so nothing is killed.
    let e = env();
    let (r, w) = pipe();
    let spec = LaunchSpec {
        env_id: unique("disk"),
        account: "111111111111".into(),
        init_cpu_burst: true,
        program: "/bin/sh".into(),
        argv: vec![
            "sh".into(),
            "-c".into(),
            "dd if=/dev/urandom of=/tmp/big bs=1M count=48 2>/dev/null && echo WROTE; \
             echo secret > /tmp/mine; ls /tmp"
                .into(),
        ],
        env: vec![("PATH".into(), "/usr/bin:/bin".into())],
        code_dir: e.code.path().to_owned(),
        opt_dir: None,
        runtime_dir: None,
        lang_dir: None,
        tmp_mb: 64,
        memory_mb: 32,
        vpc_subnets: Vec::new(),
        output: w.as_raw_fd(),
    };
    let p = e.launcher.launch(&spec).unwrap().process;
    drop(w);
    let status = p.wait().await.unwrap();
    let mut out = String::new();
    std::fs::File::from(r).read_to_string(&mut out).unwrap();
    assert!(status.success(), "{status}: {out}");
    assert!(out.contains("WROTE\n"), "{out}");
    assert_eq!(p.oom_kills(), 0);
    drop(p);
    // The next environment starts with an empty /tmp.
    let (out, status) = run(&e, "ls -A /tmp | wc -l; cat /tmp/mine 2>&1; true").await;
    assert!(status.success(), "{status}: {out}");
    assert!(out.starts_with("0\n"), "{out}");
    assert!(out.contains("No such file"), "{out}");
}

#[tokio::test]
async fn exit_statuses_and_signals() {
    let e = env();
    assert_eq!(run(&e, "exit 3").await.1, ExitStatus::Exited(3));
    assert_eq!(
        run(&e, "kill -SEGV $$").await.1,
        ExitStatus::Signaled(libc::SIGSEGV)
    );
    assert_eq!(
        run(&e, "kill -KILL $$").await.1,
        ExitStatus::Signaled(libc::SIGKILL)
    );
    assert_eq!(run(&e, "exit 0").await.1, ExitStatus::Exited(0));
}

#[tokio::test]
async fn missing_program_is_an_exec_error() {
    let e = env();
    let (_r, w) = pipe();
    let spec = LaunchSpec {
        env_id: unique("missing"),
        account: "111111111111".into(),
        init_cpu_burst: true,
        program: "/var/task/nope".into(),
        argv: vec!["nope".into()],
        env: vec![],
        code_dir: e.code.path().to_owned(),
        opt_dir: None,
        runtime_dir: None,
        lang_dir: None,
        tmp_mb: 8,
        memory_mb: 128,
        vpc_subnets: Vec::new(),
        output: w.as_raw_fd(),
    };
    match e.launcher.launch(&spec) {
        Err(LaunchError::Spawn(spawn::SpawnError::Exec { error, .. })) => {
            assert_eq!(error.raw_os_error(), Some(libc::ENOENT));
        }
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("launched a missing program"),
    }
}

#[tokio::test]
async fn killing_ends_the_whole_environment() {
    let e = env();
    let (r, w) = pipe();
    let spec = LaunchSpec {
        env_id: unique("kill"),
        account: "111111111111".into(),
        init_cpu_burst: true,
        program: "/bin/sh".into(),
        argv: vec![
            "sh".into(),
            "-c".into(),
            "sleep 100 & sleep 100 & echo started; wait".into(),
        ],
        env: vec![("PATH".into(), "/usr/bin:/bin".into())],
        code_dir: e.code.path().to_owned(),
        opt_dir: None,
        runtime_dir: None,
        lang_dir: None,
        tmp_mb: 8,
        memory_mb: 128,
        vpc_subnets: Vec::new(),
        output: w.as_raw_fd(),
    };
    let p = e.launcher.launch(&spec).unwrap().process;
    drop(w);
    let mut f = std::fs::File::from(r);
    let mut buf = [0u8; 8];
    f.read_exact(&mut buf).unwrap();
    let killed = std::time::Instant::now();
    p.kill();
    let status = tokio::time::timeout(std::time::Duration::from_secs(10), p.wait())
        .await
        .expect("the environment's init did not end within 10 s of the kill")
        .unwrap();
    assert_eq!(status, ExitStatus::Signaled(libc::SIGKILL));
    // Every process of the environment is gone: the pipe's write ends (held by
    // the shell and both sleeps) close. A survivor would hold it for 100 s.
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut rest = Vec::new();
        let _ = done_tx.send(f.read_to_end(&mut rest).map(|_| rest));
    });
    let rest = done_rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("processes of the environment outlived its kill by 10 s")
        .unwrap();
    assert!(rest.is_empty(), "{rest:?}");
    assert!(killed.elapsed() < std::time::Duration::from_secs(10));
}

#[tokio::test]
async fn unprivileged_without_capabilities_under_seccomp() {
    let e = env();
    let (out, status) = run(
        &e,
        "id -u; id -g; grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; \
         ulimit -n; grep -c ':/$' /proc/self/cgroup",
    )
    .await;
    assert!(status.success(), "{status}: {out}");
    let mut lines = out.lines();
    let uid: u32 = lines.next().unwrap().parse().unwrap();
    assert!(uid >= UID_BASE, "{out}");
    assert_eq!(lines.next().unwrap().parse::<u32>().unwrap(), uid);
    assert!(out.contains("CapEff:\t0000000000000000"), "{out}");
    assert!(out.contains("CapPrm:\t0000000000000000"), "{out}");
    assert!(out.contains("CapBnd:\t0000000000000000"), "{out}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    assert!(out.contains("Seccomp:\t2"), "{out}");
    assert!(out.contains("\n1024\n"), "open files limited: {out}");
}

#[tokio::test]
async fn runtime_api_is_reachable_inside_only() {
    let e = env();
    let (r, w) = pipe();
    let spec = LaunchSpec {
        env_id: unique("api"),
        account: "111111111111".into(),
        init_cpu_burst: true,
        program: "/usr/bin/python3.11".into(),
        argv: vec![
            "python3".into(),
            "-c".into(),
            "import os, socket; s = socket.create_connection(os.environ['AWS_LAMBDA_RUNTIME_API'].split(':')); print('connected', os.environ['AWS_LAMBDA_RUNTIME_API'])".into(),
        ],
        env: vec![("PATH".into(), "/usr/bin:/bin".into())],
        code_dir: e.code.path().to_owned(),
        opt_dir: None,
        runtime_dir: None,
        lang_dir: None,
        tmp_mb: 8,
        memory_mb: 128,
        vpc_subnets: Vec::new(),
        output: w.as_raw_fd(),
    };
    let launched = e.launcher.launch(&spec).unwrap();
    drop(w);
    assert_eq!(
        launched.runtime_api.local_addr().unwrap().to_string(),
        "127.0.0.1:9001"
    );
    let status = launched.process.wait().await.unwrap();
    let mut out = String::new();
    std::fs::File::from(r).read_to_string(&mut out).unwrap();
    assert!(status.success(), "{status}: {out}");
    assert_eq!(out.trim(), "connected 127.0.0.1:9001");
    // From the host, that address is not the environment's listener.
    if let Ok(s) = std::net::TcpStream::connect("127.0.0.1:9001") {
        let local = s.peer_addr().unwrap();
        panic!(
            "reached something at {local} from the host: it must not be the environment's Runtime API"
        );
    }
}

#[tokio::test]
async fn namespaces_made_ahead_are_entered_once_each_and_refilled() {
    // Two environments started from the reserve at once: each has its own
    // namespace, uid and Runtime API, and the reserve fills up again.
    let mut e = env();
    e.launcher.keep_networks_ready(3).unwrap();
    wait_until("three namespaces ready", 60, || {
        e.launcher.network_counts().is_some_and(|c| c.ready == 3)
    });
    let mut started = Vec::new();
    for i in 0..2 {
        let (r, w) = pipe();
        let spec = LaunchSpec {
            env_id: unique("ahead"),
            account: "111111111111".into(),
            init_cpu_burst: true,
            program: "/usr/bin/python3.11".into(),
            argv: vec![
                "python3".into(),
                "-c".into(),
                "import os, socket, sys, time\n\
                 s = socket.create_connection(os.environ['AWS_LAMBDA_RUNTIME_API'].split(':'))\n\
                 print(os.readlink('/proc/self/ns/net'), os.getuid(), 'connected', flush=True)\n\
                 time.sleep(120)\n"
                    .into(),
            ],
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            code_dir: e.code.path().to_owned(),
            opt_dir: None,
            runtime_dir: None,
            lang_dir: None,
            tmp_mb: 8,
            memory_mb: 128,
            vpc_subnets: Vec::new(),
            output: w.as_raw_fd(),
        };
        let launched = e.launcher.launch(&spec).unwrap();
        drop(w);
        assert_eq!(
            launched.runtime_api.local_addr().unwrap().to_string(),
            "127.0.0.1:9001"
        );
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(std::fs::File::from(r)),
            &mut line,
        )
        .unwrap();
        assert!(line.ends_with(" connected\n"), "environment {i}: {line}");
        // The listener is the one the environment reached.
        assert!(
            launched.runtime_api.accept().is_ok(),
            "environment {i}: its connection waits on the listener handed out with it"
        );
        started.push((line, launched));
    }
    let counts = e.launcher.network_counts().unwrap();
    assert_eq!(counts.from_reserve, 2, "{counts:?}");
    assert_eq!(counts.on_demand, 0, "{counts:?}");
    let (a, b) = (&started[0].0, &started[1].0);
    let words = |l: &str| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    let (a, b) = (words(a), words(b));
    assert_ne!(a[0], b[0], "one namespace each: {a:?} {b:?}");
    assert_ne!(a[1], b[1], "one uid each: {a:?} {b:?}");
    // Neither is the host's namespace.
    let host = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert_ne!(a[0], host.to_string_lossy());
    wait_until("the reserve refilled", 60, || {
        e.launcher.network_counts().is_some_and(|c| c.ready == 3)
    });
    for (_, launched) in &started {
        launched.process.kill();
    }
}

/// A stand-in for another host: a network namespace behind its own veth,
/// addressed `{net}.1` (host side) and `{net}.2` (inside), running a one-shot
/// TCP echo server.
struct Peer {
    ns: String,
    host_if: String,
}

fn ip(args: &str) {
    let ok = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("ip {args}"))
        .status()
        .unwrap()
        .success();
    assert!(ok, "ip {args}");
}

impl Peer {
    fn start(tag: &str, net: &str, addr_octet: u8) -> Self {
        Self::start_in(tag, net, addr_octet, None)
    }

    /// With `parent`, the host side is in that named network namespace.
    fn start_in(tag: &str, net: &str, addr_octet: u8, parent: Option<&str>) -> Self {
        let ns = format!("lmbtest-{tag}-{}", std::process::id());
        let host_if = format!("tpeer{addr_octet}x{}", std::process::id() % 1000);
        let on_host = parent.map(|p| format!("-n {p} ")).unwrap_or_default();
        ip(&format!("netns add {ns}"));
        ip(&format!(
            "{on_host}link add {host_if} type veth peer name eth0 netns {ns}"
        ));
        ip(&format!("{on_host}addr add {net}.1/30 dev {host_if}"));
        ip(&format!("{on_host}link set {host_if} up"));
        ip(&format!("-n {ns} addr add {net}.2/30 dev eth0"));
        ip(&format!("-n {ns} link set eth0 up"));
        ip(&format!("-n {ns} link set lo up"));
        ip(&format!("-n {ns} route add default via {net}.1"));
        Self { ns, host_if }
    }

    fn serve_once(&self, reply: &str) -> std::process::Child {
        std::process::Command::new("ip")
            .args(["netns", "exec", &self.ns, "python3", "-c"])
            .arg(format!(
                "import socket; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); \
                 s.bind(('0.0.0.0', 8080)); s.listen(); c, a = s.accept(); c.sendall(b'{reply} ' + a[0].encode()); c.close()"
            ))
            .spawn()
            .unwrap()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.host_if])
            .status();
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.ns])
            .status();
    }
}

#[tokio::test]
async fn egress_reaches_out_but_not_the_host() {
    let state = tempfile::tempdir().unwrap();
    let code = tempfile::tempdir().unwrap();
    let launcher = NamespaceLauncher::new(state.path(), NetworkMode::Egress).unwrap();
    let mut e = Env {
        _state: state,
        code,
        launcher,
    };
    // A public address (the internet) and a private one (the operator's LAN).
    let peer = Peer::start("egress", "100.128.7", 7);
    let lan = Peer::start("lan", "10.98.8", 8);
    // First a namespace made at launch, then one made ahead of demand.
    for ahead in [false, true] {
        if ahead {
            e.launcher.keep_networks_ready(2).unwrap();
            wait_until("network namespaces ready", 60, || {
                e.launcher.network_counts().is_some_and(|c| c.ready == 2)
            });
        } else {
            e.launcher.keep_networks_ready(0).unwrap();
        }
        let mut server = peer.serve_once("hello-from-outside");
        let mut lan_server = lan.serve_once("hello-from-the-lan");
        // A host service the environment must not reach.
        let host_service = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        let host_port = host_service.local_addr().unwrap().port();
        let script = format!(
            "import socket, time\n\
         for _ in range(50):\n\
         \x20   try:\n\
         \x20       s = socket.create_connection(('100.128.7.2', 8080), timeout=2); break\n\
         \x20   except OSError: time.sleep(0.1)\n\
         print(s.recv(100).decode())\n\
         gw = open('/proc/net/route').read().split('\\n')[1].split()[2]\n\
         gw = '.'.join(str(int(gw[i:i+2], 16)) for i in (6, 4, 2, 0))\n\
         try:\n\
         \x20   socket.create_connection((gw, {host_port}), timeout=1); print('HOST-REACHED')\n\
         except OSError as e: print('host blocked', type(e).__name__)\n\
         try:\n\
         \x20   socket.create_connection(('10.98.8.2', 8080), timeout=1); print('LAN-REACHED')\n\
         except OSError as e: print('lan blocked', type(e).__name__)\n\
         print('ipv6', open('/proc/net/if_inet6').read().split())\n"
        );
        let (r, w) = pipe();
        let spec = LaunchSpec {
            env_id: unique("egress"),
            account: "111111111111".into(),
            init_cpu_burst: true,
            program: "/usr/bin/python3.11".into(),
            argv: vec!["python3".into(), "-c".into(), script],
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            code_dir: e.code.path().to_owned(),
            opt_dir: None,
            runtime_dir: None,
            lang_dir: None,
            tmp_mb: 8,
            memory_mb: 128,
            vpc_subnets: Vec::new(),
            output: w.as_raw_fd(),
        };
        let launched = e.launcher.launch(&spec).unwrap();
        drop(w);
        let status = launched.process.wait().await.unwrap();
        let mut out = String::new();
        std::fs::File::from(r).read_to_string(&mut out).unwrap();
        if !out.starts_with("hello") {
            let _ = server.kill();
        }
        let _ = server.wait();
        let _ = lan_server.kill();
        let _ = lan_server.wait();
        assert!(status.success(), "{status}: {out}");
        assert!(
            out.starts_with("hello-from-outside 100.128.7.1\n"),
            "reached the outside through NAT: {out}"
        );
        assert!(out.contains("host blocked"), "{out}");
        assert!(!out.contains("HOST-REACHED"), "{out}");
        // Refused at once by the environment's own firewall, not timed out.
        assert!(out.contains("lan blocked OSError"), "{out}");
        // IPv6 only on loopback (::1): no link-local address to reach the host by.
        let v6 = out.lines().find(|l| l.starts_with("ipv6")).unwrap();
        assert!(!v6.contains("eth0"), "{out}");
        if ahead {
            assert_eq!(
                e.launcher.network_counts().map(|c| c.from_reserve),
                Some(1),
                "the namespace made ahead was used"
            );
        }
    }
}

#[tokio::test]
async fn init_is_fresh_and_no_host_path_shows() {
    let e = env();
    let state = e._state.path().to_string_lossy().into_owned();
    let code = e.code.path().to_string_lossy().into_owned();
    let (out, status) = run(
        &e,
        "echo cmdline=$(tr '\\0' ' ' < /proc/1/cmdline); \
         echo environ=$(cat /proc/1/environ 2>&1 | tr '\\0' ' '); \
         echo maps=$(cat /proc/1/maps 2>&1 | head -3); \
         grep -E '^(VmRSS|Uid):' /proc/1/status; \
         echo ---; cat /proc/self/mountinfo; echo ---; cat /proc/self/cgroup /proc/1/cgroup",
    )
    .await;
    assert!(status.success(), "{status}: {out}");
    // The init that stays is a fresh program: no server command line or memory.
    assert!(out.lines().any(|l| l == "cmdline=/init"), "{out}");
    for line in out.lines() {
        if let Some(rest) = line
            .strip_prefix("environ=")
            .or_else(|| line.strip_prefix("maps="))
        {
            assert!(
                rest.is_empty() || rest.contains("Permission denied"),
                "init's environment and memory map are not the function's to read: {line}"
            );
        }
    }
    let rss_kb: u64 = out
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    assert!(
        rss_kb < 1500,
        "init holds {rss_kb} kB: a copy of the platform?"
    );
    let mut parts = out.split("---\n");
    let (_, mounts, cgroups) = (parts.next(), parts.next().unwrap(), parts.next().unwrap());
    for path in [&state, &code] {
        assert!(
            !mounts.contains(path.as_str()),
            "{path} shows in the mount table:\n{mounts}"
        );
    }
    assert!(mounts.contains(" /var/task ro,"), "{mounts}");
    for line in cgroups.lines() {
        assert!(
            line.ends_with(":/"),
            "the cgroup namespace hides the host's groups: {line}"
        );
    }
}

/// A named network namespace standing in for a whole host; deleted on drop.
struct SimHost(String);

impl Drop for SimHost {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .status();
    }
}

/// Counts the rules of `ip filter FORWARD` that Lambent marked as its own.
fn own_forward_rules() -> usize {
    let sock = crate::netlink::Socket::open(12).unwrap();
    let mut m = crate::netlink::Msg::with_flags((10 << 8) | 7, 1 | 0x300);
    m.bytes(&[nft::NFPROTO_IPV4, 0, 0, 0]);
    m.attr(1, b"filter\0");
    m.attr(2, b"FORWARD\0");
    sock.send(m.finish(1)).unwrap();
    let mut n = 0;
    let mut buf = vec![0u8; 65536];
    loop {
        let done = sock
            .receive(&mut buf, |r| {
                if r.ty == 3 || r.ty == 2 {
                    return Some(());
                }
                if r.payload.windows(10).any(|w| w == b"\x00\x08lambent\x00") {
                    n += 1;
                }
                None
            })
            .unwrap();
        if done.is_some() {
            return n;
        }
    }
}

/// A host whose iptables FORWARD chain drops by default (as docker leaves
/// it): environments still get out, and a restart replaces Lambent's rules
/// in that chain instead of adding more.
#[tokio::test]
async fn egress_passes_a_forward_chain_that_drops_by_default() {
    let sim = SimHost(format!("lmbtest-sim-{}", std::process::id()));
    ip(&format!("netns add {}", sim.0));
    ip(&format!("-n {} link set lo up", sim.0));
    let peer = Peer::start_in("dock", "100.128.9", 9, Some(&sim.0));
    let mut server = peer.serve_once("hello-past-the-policy");
    let state = tempfile::tempdir().unwrap();
    let path = state.path().to_owned();
    let ns_path = format!("/run/netns/{}", sim.0);
    let (launcher, own_rules) = std::thread::spawn(move || {
        let ns = std::fs::File::open(&ns_path).unwrap();
        // SAFETY: moves this test thread (and the launcher thread it starts,
        // which inherits it) into the simulated host's network namespace.
        assert_eq!(
            unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) },
            0
        );
        nft::Table {
            family: nft::NFPROTO_IPV4,
            name: "filter",
            chains: vec![nft::Chain {
                name: "FORWARD",
                kind: "filter",
                hook: nft::HOOK_FORWARD,
                priority: 0,
                policy: nft::NF_DROP,
                rules: vec![],
            }],
        }
        .install(false)
        .unwrap();
        drop(NamespaceLauncher::new(&path, NetworkMode::Egress).unwrap());
        let launcher = NamespaceLauncher::new(&path, NetworkMode::Egress).unwrap();
        (launcher, own_forward_rules())
    })
    .join()
    .unwrap();
    assert_eq!(own_rules, 2, "one -i lmb+ and one -o lmb+ accept, once");
    let code = tempfile::tempdir().unwrap();
    let (r, w) = pipe();
    let spec = LaunchSpec {
        env_id: unique("docker"),
        program: "/usr/bin/python3.11".into(),
        argv: vec![
            "python3".into(),
            "-c".into(),
            "import socket, time\n\
             for _ in range(50):\n\
             \x20   try:\n\
             \x20       s = socket.create_connection(('100.128.9.2', 8080), timeout=2); break\n\
             \x20   except OSError as e: err = e; time.sleep(0.1)\n\
             else: raise err\n\
             print(s.recv(100).decode())\n"
                .into(),
        ],
        env: vec![("PATH".into(), "/usr/bin:/bin".into())],
        code_dir: code.path().to_owned(),
        opt_dir: None,
        runtime_dir: None,
        lang_dir: None,
        tmp_mb: 8,
        memory_mb: 128,
        account: "111111111111".into(),
        init_cpu_burst: true,
        vpc_subnets: Vec::new(),
        output: w.as_raw_fd(),
    };
    let launched = launcher.launch(&spec).unwrap();
    drop(w);
    let status = launched.process.wait().await.unwrap();
    let mut out = String::new();
    std::fs::File::from(r).read_to_string(&mut out).unwrap();
    if !out.starts_with("hello") {
        let _ = server.kill();
    }
    let _ = server.wait();
    assert!(status.success(), "{status}: {out}");
    assert!(
        out.starts_with("hello-past-the-policy 100.128.9.1"),
        "{out}"
    );
}
