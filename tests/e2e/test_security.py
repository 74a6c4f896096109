"""Hostile functions: every escape or abuse attempt is contained by a named
layer of the sandbox, and the platform keeps serving other functions.
The list and its results are recorded in SECURITY.md."""

import http.client
import json
import os
import pathlib
import statistics
import threading
import time

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from conftest import ACCOUNT_B, KEY_A, KEY_B, ROLE, NetPeer, Server, make_zip, wait_for

HOSTILE = (pathlib.Path(__file__).parent / "hostile_function.py").read_text()
QUIET = "def handler(event, context):\n    return {'ok': True}\n"

# attempt -> the layer that must stop it.
ATTEMPTS = {
    "read_host_files": "mount namespace with a minimal root",
    "list_host_processes": "PID namespace",
    "signal_platform": "PID namespace",
    "write_outside_tmp": "read-only bind mounts",
    "fill_tmp": "/tmp disk size (EphemeralStorage)",
    "open_many_files": "RLIMIT_NOFILE (1,024)",
    "fork_bomb": "pids cgroup (1,024)",
    "spin_every_core": "CPU cgroup quota (1,769 MB = 1 vCPU)",
    "other_runtime_api": "network namespace and host firewall",
    "mount": "seccomp",
    "ptrace": "seccomp",
    "unshare": "seccomp",
    "setns": "seccomp",
    "pivot_root": "seccomp",
    "open_by_handle_at": "seccomp",
    "init_module": "seccomp",
    "finit_module": "seccomp",
    "kexec_load": "seccomp",
    "bpf": "seccomp",
    "perf_event_open": "seccomp",
    "keyctl": "seccomp",
    "userfaultfd": "seccomp",
    "io_uring_setup": "seccomp",
    "setuid_escalation": "nosuid mounts and no_new_privs",
    "raw_socket": "no capabilities",
    "metadata_service": "host firewall (link-local dropped); no IPv6 in environments",
    "inspect_init": "freshly executed init, cgroup namespace, overlays named by descriptor",
}


@pytest.fixture(scope="module")
def server():
    s = Server()
    c = s.client()
    files = {"hostile_function.py": (HOSTILE, 0o644)}
    c.create_function(FunctionName="hostile", Runtime="python3.11", Role=ROLE,
                      Handler="hostile_function.handler", Code={"ZipFile": make_zip(files)}, Timeout=30)
    c.create_function(FunctionName="hostile-big", Runtime="python3.11", Role=ROLE,
                      Handler="hostile_function.handler", Code={"ZipFile": make_zip(files)}, Timeout=60,
                      MemorySize=1536, EphemeralStorage={"Size": 512})
    # A full vCPU (1,769 MB), so that its own CPU share never throttles it.
    c.create_function(FunctionName="quiet", Runtime="python3.11", Role=ROLE, Handler="app.handler",
                      Code={"ZipFile": make_zip({"app.py": (QUIET, 0o644)})}, MemorySize=1769)
    yield s
    s.stop()


def invoke(c, name, event):
    r = c.invoke(FunctionName=name, Payload=json.dumps(event).encode())
    return r, json.loads(r["Payload"].read())


def host_connects(host, port, greeting=None):
    """Whether this host itself can open a TCP connection to (host, port):
    an environment's failure to connect there counts as blocked only then.
    With `greeting`, the service must also send it (a listener of the
    test's, which notes the connection before it answers)."""
    import socket
    try:
        with socket.create_connection((host, port), timeout=5) as c:
            if greeting is not None:
                c.settimeout(5)
                got = b""
                while len(got) < len(greeting):
                    chunk = c.recv(len(greeting) - len(got))
                    if not chunk:
                        break
                    got += chunk
                return got == greeting
        return True
    except OSError:
        return False


def listening_greeting(listening, key):
    """The greeting to expect at `key` when a listener of the test's is there."""
    port = split_target(key)[1]
    ports = [p for _, p in listening.targets] if hasattr(listening, "targets") else [listening.port]
    return b"host-service" if port in ports else None


def split_target(key):
    host, port = key.rsplit(":", 1)
    return host, int(port)


@pytest.fixture(scope="module")
def host_listener():
    listener = HostListener()
    yield listener
    listener.close()


@pytest.fixture(scope="module")
def setuid_helper():
    """A setuid-root copy of `id` on the host's /usr, which environments see
    read-only: it prints `euid=0` when the setuid bit takes effect (shown
    here by running it as `nobody` on the host). Removed afterwards."""
    import shutil
    import subprocess
    path = pathlib.Path(f"/usr/local/bin/lambent-test-setuid-id-{os.getpid()}")
    shutil.copy("/usr/bin/id", path)
    try:
        os.chown(path, 0, 0)
        os.chmod(path, 0o4755)

        def as_nobody():
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)

        on_host = subprocess.run([str(path)], capture_output=True, text=True, preexec_fn=as_nobody)
        assert "uid=65534" in on_host.stdout and "euid=0" in on_host.stdout, on_host
        yield path
    finally:
        path.unlink()


class MetadataListener:
    """The metadata addresses (169.254.169.254 and fd00:ec2::254) on this
    host, on an interface of the test's own, with a TCP service on each
    (port 80 when free): an environment that fails to connect there was
    stopped, not merely facing a port where nothing listens. The interface
    goes with `close`."""

    def __init__(self):
        import socket
        import subprocess
        self.iface = f"tmeta{os.getpid() % 100000}"
        self.listeners = []
        ip = lambda *a: subprocess.run(["ip", *a], check=True, capture_output=True)
        # A veth pair (available where the dummy driver is not); the
        # addresses go on one end, both ends up.
        ip("link", "add", self.iface, "type", "veth", "peer", "name", f"{self.iface}p")
        try:
            ip("addr", "add", "169.254.169.254/32", "dev", self.iface)
            ip("-6", "addr", "add", "fd00:ec2::254/128", "dev", self.iface, "nodad")
            ip("link", "set", f"{self.iface}p", "up")
            ip("link", "set", self.iface, "up")
            self.targets = []
            for family, addr in ((socket.AF_INET, "169.254.169.254"), (socket.AF_INET6, "fd00:ec2::254")):
                listener = HostListener(family, addr, 80)
                self.listeners.append(listener)
                self.targets.append([addr, listener.port])
            for addr, port in self.targets:
                assert wait_for(f"{addr}:{port} from the host",
                                lambda: host_connects(addr, port, b"host-service")), addr
            self.clear()
        except BaseException:
            self.close()
            raise

    def connections(self):
        return [a for listener in self.listeners for a in listener.connections()]

    def clear(self):
        for listener in self.listeners:
            listener.clear()

    def close(self):
        import subprocess
        for listener in self.listeners:
            listener.close()
        subprocess.run(["ip", "link", "del", self.iface], capture_output=True)


@pytest.fixture(scope="module")
def metadata_listener():
    m = MetadataListener()
    yield m
    m.close()


@pytest.mark.parametrize("attempt", list(ATTEMPTS))
def test_attempt_is_contained(server, attempt, request):
    c = server.client()
    # Attempts that need time or memory to get anywhere run with more of both.
    name = "hostile-big" if attempt == "fork_bomb" else "hostile"
    platform_port = int(server.endpoint.rsplit(":", 1)[1])
    event = {"attempt": attempt,
             "server_strings": [str(server.data), str(server.creds), str(server.dir),
                                server.endpoint.removeprefix("http://"), "serve", "--data-dir", "lambent-"]}
    listening = None
    if attempt == "signal_platform":
        # Both exist on the host: ESRCH from inside means hidden, not gone.
        event["host_pids"] = {"platform": server.proc.pid, "test runner": os.getpid()}
    elif attempt == "setuid_escalation":
        event["setuid_helper"] = str(request.getfixturevalue("setuid_helper"))
    elif attempt == "metadata_service":
        listening = request.getfixturevalue("metadata_listener")
        event["targets"] = listening.targets
    elif attempt == "other_runtime_api":
        listening = request.getfixturevalue("host_listener")
        # The host's loopback services (the platform, a listener of the
        # test's), and that listener on the host's side of the link.
        event["targets"] = [["127.0.0.1", listening.port], ["127.0.0.1", platform_port]]
        event["gateway_ports"] = [listening.port]
    if listening is not None:
        listening.clear()
    r, out = invoke(c, name, event)
    print(f"{attempt}: {out}")
    assert "FunctionError" not in r, out
    assert out["blocked"], f"{attempt} got through ({ATTEMPTS[attempt]}): {out['evidence']}"
    if attempt == "fill_tmp":
        # 128 MB of memory, 512 MB of /tmp: full at 512 MB, not killed earlier.
        assert out["evidence"] in ("ENOSPC after 512 MB", "ENOSPC after 513 MB"), out["evidence"]
    if attempt == "signal_platform":
        assert out["evidence"].count(": ESRCH") == 2, out["evidence"]
    if listening is not None:
        results = out["evidence"]["results"]
        accepted = listening.connections()
        assert accepted == [], f"connections from an environment: {accepted}"
        if attempt == "other_runtime_api":
            assert out["evidence"]["gateway"] and f"{out['evidence']['gateway']}:{listening.port}" in results, out
        assert len(results) == len(event["targets"]) + len(event.get("gateway_ports", [])), results
        # Each refusal counts only where the host itself connects (while the
        # environment, and so its link, still exists).
        unreachable = [k for k in results
                       if not host_connects(*split_target(k), listening_greeting(listening, k))]
        assert unreachable == [], f"nothing answers {unreachable} even from the host: no evidence"
    # The platform is unharmed and keeps serving.
    assert server.proc.poll() is None
    _, ok = invoke(c, "quiet", {})
    assert ok == {"ok": True}


def test_memory_bomb_is_killed_and_reported(server):
    c = server.client()
    r, out = invoke(c, "hostile", {"attempt": "allocate_past_memory"})
    assert r["FunctionError"] == "Unhandled"
    assert out["errorType"] == "Runtime.OutOfMemory", out
    assert out["errorMessage"].endswith("Error: Runtime exited with error: signal: killed")
    assert server.proc.poll() is None
    assert invoke(c, "quiet", {})[1] == {"ok": True}


class RawInvoker:
    """A keep-alive HTTP client replaying one signed request (valid for five
    minutes), so that the client itself adds as little time as possible."""

    def __init__(self, endpoint, name, key=KEY_A):
        self.host = endpoint.removeprefix("http://")
        self.path = f"/2015-03-31/functions/{name}/invocations"
        self.conn = http.client.HTTPConnection(self.host)
        req = AWSRequest(method="POST", url=endpoint + self.path, data=b"{}")
        SigV4Auth(Credentials(*key), "lambda", "us-east-1").add_auth(req)
        self.headers = dict(req.headers)

    def invoke(self):
        started = time.perf_counter()
        self.conn.request("POST", self.path, body=b"{}", headers=self.headers)
        resp = self.conn.getresponse()
        resp.read()
        assert resp.status == 200
        return time.perf_counter() - started


def p99(samples):
    s = sorted(samples)
    return s[int(len(s) * 0.99) - 1]


NEIGHBOUR = """
import json, os, sys, time, boto3, botocore.config
endpoint, key, secret, stop_file, log_file = sys.argv[1:6]
c = boto3.client("lambda", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=key,
                 aws_secret_access_key=secret, config=botocore.config.Config(retries={"max_attempts": 0},
                                                                             read_timeout=120))
with open(log_file, "a") as log:
    while not os.path.exists(stop_file):
        started = time.monotonic()
        r = c.invoke(FunctionName="hostile", Payload=json.dumps({"attempt": "spin_every_core", "seconds": 1.0}).encode())
        out = json.loads(r["Payload"].read())
        log.write(json.dumps({"start": started, "end": time.monotonic(), "error": r.get("FunctionError"),
                              "evidence": out.get("evidence")}) + "\\n")
        log.flush()
"""


def neighbour_spins(log_file):
    """The neighbour's finished invocations: (start, end, CPU seconds it spun)."""
    import re
    spans = []
    for line in pathlib.Path(log_file).read_text().splitlines():
        rec = json.loads(line)
        assert rec["error"] is None, rec
        cpu = float(re.match(r"([0-9.]+) s of CPU", rec["evidence"]).group(1))
        spans.append((rec["start"], rec["end"], cpu))
    return spans


def covered(spans, start, end):
    """How much of [start, end] the spans cover (they do not overlap)."""
    return sum(max(0.0, min(b, end) - max(a, start)) for a, b, _ in spans)


def test_busy_neighbour_does_not_slow_a_quiet_function(server, tmp_path):
    """A neighbour spinning every core (at its 128 MB CPU share) next to a
    quiet function. The two conditions alternate in blocks so that the
    machine's own noise hits both, the quiet function keeps being invoked
    while the neighbour starts (so it is never idle long enough to freeze),
    and the neighbour's client is another process so that it cannot stall
    this one.

    First the evidence that the neighbour was busy: its invocations (each
    one second of spinning) cover the quiet function's measurements beside
    it, and spent CPU. Then the bounds a shared, loaded 2-CPU machine holds
    reliably: the quiet function's median within 1.5x and its p99 within 4x
    of its figures alone. The strict ratio is the benchmark's (BENCHMARKS.md,
    noisy neighbours)."""
    import subprocess
    import sys
    from conftest import TIMEOUT_SCALE
    quiet = RawInvoker(server.endpoint, "quiet")
    for _ in range(100):
        quiet.invoke()
    alone, busy, windows = [], [], []
    log_file = tmp_path / "neighbour.jsonl"
    for i in range(8):
        alone.extend(quiet.invoke() for _ in range(300))
        stop_file = tmp_path / f"stop{i}"
        done_before = len(neighbour_spins(log_file)) if log_file.exists() else 0
        neighbour = subprocess.Popen([sys.executable, "-c", NEIGHBOUR, server.endpoint, *KEY_A,
                                      str(stop_file), str(log_file)])
        # Settled once the neighbour finished a spin (its environment is
        # warm and spinning back to back); the quiet function keeps going.
        settle = time.monotonic() + 60 * TIMEOUT_SCALE
        while not (log_file.exists() and len(neighbour_spins(log_file)) > done_before):
            assert neighbour.poll() is None, f"the neighbour's client exited with {neighbour.returncode}"
            assert time.monotonic() < settle, "the neighbour never finished a spin"
            quiet.invoke()
        started = time.monotonic()
        busy.extend(quiet.invoke() for _ in range(300))
        windows.append((started, time.monotonic()))
        stop_file.write_text("")
        assert neighbour.wait(timeout=120 * TIMEOUT_SCALE) == 0
    spins = neighbour_spins(log_file)
    window_time = sum(b - a for a, b in windows)
    beside = [sp for sp in spins if any(sp[0] < b and sp[1] > a for a, b in windows)]
    cover = sum(covered(spins, a, b) for a, b in windows) / window_time
    spin_time = sum(b - a for a, b, _ in beside)
    cpu = sum(c for _, _, c in beside)
    a, b = p99(alone), p99(busy)
    ma, mb = statistics.median(alone), statistics.median(busy)
    print(f"neighbour: {len(spins)} spins, {cover:.0%} of the busy blocks covered, "
          f"{cpu:.2f} s of CPU in {spin_time:.1f} s beside them ({cpu / spin_time:.3f} CPUs; its share 0.072)")
    print(f"quiet p99 alone {a * 1e3:.3f} ms, beside a busy neighbour {b * 1e3:.3f} ms ({b / a:.2f}x); "
          f"p50 {ma * 1e3:.3f} / {mb * 1e3:.3f} ms ({mb / ma:.2f}x)")
    assert cover >= 0.9, f"the neighbour was idle for {1 - cover:.0%} of the measurements beside it"
    # At least a quarter of its 128 MB share (1/14 of a CPU) while beside.
    assert cpu >= 0.25 * (128 / 1769) * spin_time, f"{cpu:.2f} s of CPU in {spin_time:.1f} s: not busy"
    assert mb <= ma * 1.5, f"median went from {ma * 1e3:.3f} ms to {mb * 1e3:.3f} ms"
    assert b <= a * 4.0, f"p99 went from {a * 1e3:.3f} ms to {b * 1e3:.3f} ms"


def zip_of(entries):
    """A zip from (name, data, unix mode) entries; mode 0o120777 makes a link."""
    import io
    import zipfile
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data, mode in entries:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            z.writestr(info, data)
    return buf.getvalue()


LINK = 0o120777


@pytest.mark.parametrize("case", ["deep_entry", "link_chain", "long_component"])
def test_hostile_packages_get_a_client_error(server, case):
    """A package the unpacker refuses is the caller's mistake (400 with the
    reason), never a server error, and leaves no function behind."""
    entries = {
        "deep_entry": [("d/" * 3000 + "f", b"x", 0o100644)],
        # Each link alone stays inside; followed through each other, x is the host's /etc/passwd.
        "link_chain": [("l0", b".", LINK)] + [(f"l{n}", f"l{n - 1}/..".encode(), LINK) for n in range(1, 7)]
                      + [("x", b"l6/etc/passwd", LINK)],
        "long_component": [("n" * 300, b"x", 0o100644)],
    }[case]
    c = server.client()
    name = f"refused-{case.replace('_', '-')}"
    with pytest.raises(c.exceptions.InvalidParameterValueException) as e:
        c.create_function(FunctionName=name, Runtime="python3.11", Role=ROLE, Handler="x.handler",
                          Code={"ZipFile": zip_of(entries)})
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    msg = e.value.response["Error"]["Message"]
    assert msg.startswith("Could not unzip uploaded file: the entry '"), msg
    assert len(msg) < 400, msg
    with pytest.raises(c.exceptions.ResourceNotFoundException):
        c.get_function(FunctionName=name)


def test_tmp_is_a_disk_of_its_own(server):
    """A 128 MB function writes 300 MB to its 512 MB /tmp (page cache, not
    memory it is killed for); a second environment running at the same time
    sees none of it; after the environment is replaced, /tmp is empty."""
    c = server.client()
    c.create_function(FunctionName="tmp-user", Runtime="python3.11", Role=ROLE,
                      Handler="hostile_function.handler", Timeout=60, MemorySize=128,
                      Code={"ZipFile": make_zip({"hostile_function.py": (HOSTILE, 0o644)})})
    r, out = invoke(c, "tmp-user", {"attempt": "write_tmp", "file": "big", "mb": 300})
    assert "FunctionError" not in r, out
    assert out["evidence"] == "wrote 300 MB; /tmp has ['big']", out
    # Warm: the same environment keeps its /tmp, as on Lambda.
    assert invoke(c, "tmp-user", {"attempt": "list_tmp"})[1]["evidence"] == "big"
    # A second, concurrent environment starts with an empty /tmp.
    results = {}

    def hold():
        results["first"] = invoke(c, "tmp-user", {"attempt": "write_tmp", "file": "mine", "mb": 1, "hold": 3})

    t = threading.Thread(target=hold)
    t.start()
    wait_for_busy = time.monotonic() + 30
    while server.environments("tmp-user")[1] < 1 and time.monotonic() < wait_for_busy:
        time.sleep(0.02)
    _, other = invoke(c, "tmp-user", {"attempt": "list_tmp"})
    t.join()
    assert other["evidence"] == "", f"another environment's files: {other}"
    assert "'mine'" in results["first"][1]["evidence"], results
    # A configuration change replaces the environments: their files go with them.
    c.update_function_configuration(FunctionName="tmp-user", Environment={"Variables": {"VERSION": "2"}})
    from conftest import wait_for
    wait_for("the update", lambda: c.get_function_configuration(FunctionName="tmp-user")["LastUpdateStatus"]
             == "Successful")
    _, after = invoke(c, "tmp-user", {"attempt": "list_tmp"})
    assert after["evidence"] == "", after


def loop_devices_of(data_dir):
    """Loop devices whose backing file lives under `data_dir`."""
    found = []
    for d in pathlib.Path("/sys/block").glob("loop*"):
        try:
            backing = (d / "loop" / "backing_file").read_text().strip()
        except OSError:
            continue
        if backing.startswith(str(data_dir)):
            found.append(f"{d.name}: {backing}")
    return found


def test_kill_9_leaves_no_tmp_disk_behind():
    """Each environment's /tmp is a loop device over an unlinked file, and the
    platform keeps a few such disks ready ahead of demand: after the platform
    is killed with SIGKILL, its environments end (at once, or when the next
    start sweeps the frozen ones), and with them and its ready disks every
    device and image. The restarted server makes ready disks of its own."""
    from conftest import wait_for
    s = Server()
    try:
        c = s.client()
        c.create_function(FunctionName="disk-user", Runtime="python3.11", Role=ROLE,
                          Handler="hostile_function.handler", Timeout=30,
                          Code={"ZipFile": make_zip({"hostile_function.py": (HOSTILE, 0o644)})})
        _, out = invoke(c, "disk-user", {"attempt": "write_tmp", "file": "f", "mb": 8})
        assert out["evidence"].startswith("wrote 8 MB"), out
        work = s.data / "sandbox" / "tmp-disks" / "work"
        wait_for("disks ready ahead of demand", lambda: len(loop_devices_of(s.data)) >= 2, timeout=60)
        before = {line.split(": ", 1)[1] for line in loop_devices_of(s.data)}
        assert all(b.endswith("(deleted)") for b in before), before
        assert list(work.iterdir()) == [], "images are unlinked once attached"
        s.proc.kill()
        s.proc.wait()
        s.restart()

        def old_ones():
            return [d for d in loop_devices_of(s.data) if d.split(": ", 1)[1] in before]
        wait_for("the killed server's loop devices to be released", lambda: not old_ones(), timeout=60)
        assert [p for p in work.iterdir() if not p.name.startswith("ready-")] == []
    finally:
        s.stop()


# --- The functions' network -------------------------------------------------

def host_addresses():
    """Every address of this host, (family, address), from `ip`."""
    import subprocess
    out = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True, check=True).stdout
    addrs = []
    for line in out.splitlines():
        words = line.split()
        iface, family, cidr = words[1], words[2], words[3]
        if iface.startswith(("lmb", "tmeta")):
            continue
        addr = cidr.split("/")[0]
        if family == "inet6" and addr.startswith("fe80"):
            addr = f"{addr}%eth0"  # from inside, over the environment's own link
        addrs.append((family, addr))
    return addrs


class HostListener:
    """A TCP service on the host: by default on every address, both
    families; else on one address, at `port` if it is free."""

    def __init__(self, family=None, address="::", port=0):
        import socket
        family = family or socket.AF_INET6
        self.sock = socket.socket(family)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and address == "::":
            self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        try:
            self.sock.bind((address, port))
        except OSError:
            self.sock.bind((address, 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, a = self.sock.accept()
            except OSError:
                return
            self.accepted.append(a[0])
            try:
                c.sendall(b"host-service")
            except OSError:
                pass
            c.close()

    def connections(self):
        return list(self.accepted)

    def clear(self):
        self.accepted.clear()

    def close(self):
        import socket
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def test_host_other_environments_and_metadata_are_unreachable_over_both_families(server, metadata_listener):
    """The host (every address it has, IPv4 and IPv6, including the
    link-local address of the environment's own link, found from the
    gateway's MAC), a neighbouring environment (on both families) and the
    metadata addresses (169.254.169.254, fd00:ec2::254) are all out of
    reach; environments have no IPv6 address but loopback's. Something
    listens at every target, and each refusal counts only where the host
    itself connects."""
    c = server.client()
    if "neighbour" not in [f["FunctionName"] for f in c.list_functions()["Functions"]]:
        c.create_function(FunctionName="neighbour", Runtime="python3.11", Role=ROLE,
                          Handler="hostile_function.handler",
                          Code={"ZipFile": make_zip({"hostile_function.py": (HOSTILE, 0o644)})})
    _, n = invoke(c, "neighbour", {"attempt": "listen"})
    neighbour = n["evidence"]
    listener = HostListener()
    metadata_listener.clear()
    try:
        targets = [[addr.split("%")[0] if fam == "inet" else addr, listener.port]
                   for fam, addr in host_addresses()]
        targets.append([neighbour["ipv4"], 8080])
        r, out = invoke(c, "hostile", {"attempt": "reach", "targets": targets, "gateway": True,
                                       "gateway_ports": [listener.port], "metadata": metadata_listener.targets})
        results = out["evidence"]["results"]
        print(json.dumps(out["evidence"], indent=1))
        assert out["blocked"], results
        assert listener.connections() == [], listener.connections()
        assert metadata_listener.connections() == [], metadata_listener.connections()
        # Link-local IPv6 targets (`%eth0`) are left out: the environment has
        # no IPv6 address to use them from (asserted below).
        neighbour_key = f"{neighbour['ipv4']}:8080"
        unverified = [k for k in results if "%" not in k and k != neighbour_key and not host_connects(
            *split_target(k), b"host-service" if split_target(k)[1] == listener.port else None)]
        assert unverified == [], f"nothing answers {unverified} even from the host: no evidence"
        # The neighbour's service answers at that address inside its own
        # environment (the host cannot open connections to environments).
        _, own = invoke(c, "neighbour", {"attempt": "reach", "targets": [[neighbour["ipv4"], 8080]]})
        assert own["evidence"]["results"][neighbour_key].startswith("CONNECTED"), own
    finally:
        listener.close()
    tried = " ".join(results)
    for must in [f"{a}:{p}" for a, p in metadata_listener.targets] + ["%eth0", neighbour["ipv4"]]:
        assert must in tried, (must, results)
    assert any(fam == "inet6" for fam, _ in host_addresses()), "this host has IPv6 addresses to try"
    assert not [a for a in out["evidence"]["ipv6"] if not a.startswith("lo:")], out["evidence"]
    assert not [a for a in neighbour["ipv6"] if not a.startswith("lo:")], neighbour


PROBE = "def handler(event, context):\n    import hostile_function\n    return hostile_function.handler(event, context)\n"


@pytest.fixture(scope="module")
def lan():
    """The operator's LAN (a private address) and the internet (a public one)."""
    tag = os.getpid() % 200 + 20
    lan = NetPeer("lan", f"10.98.{tag}", "hello-from-the-lan")
    internet = NetPeer("inet", f"100.128.{tag}", "hello-from-the-internet")
    yield lan, internet
    lan.close()
    internet.close()


@pytest.fixture(scope="module")
def vpc_server(lan):
    lan_peer, _ = lan
    net = lan_peer.addr.rsplit(".", 1)[0]
    s = Server(["--vpc-subnet", f"vpc-0e2e/subnet-0lan={net}.0/30",
                "--vpc-subnet", "subnet-0empty=192.168.254.0/24"])
    yield s
    s.stop()


def test_private_networks_are_reachable_only_through_a_mapped_vpc_subnet(vpc_server, lan):
    lan_peer, internet = lan
    c = vpc_server.client()
    zipped = make_zip({"hostile_function.py": (HOSTILE, 0o644)})
    c.create_function(FunctionName="no-vpc", Runtime="python3.11", Role=ROLE,
                      Handler="hostile_function.handler", Code={"ZipFile": zipped})
    created = c.create_function(FunctionName="in-vpc", Runtime="python3.11", Role=ROLE,
                                Handler="hostile_function.handler", Code={"ZipFile": zipped},
                                VpcConfig={"SubnetIds": ["subnet-0lan"], "SecurityGroupIds": ["sg-0e2e"]})
    assert created["VpcConfig"] == {"SubnetIds": ["subnet-0lan"], "SecurityGroupIds": ["sg-0e2e"],
                                    "VpcId": "vpc-0e2e", "Ipv6AllowedForDualStack": False}
    event = {"attempt": "reach", "targets": [[lan_peer.addr, 8080], [internet.addr, 8080]]}
    lan_key, inet_key = f"{lan_peer.addr}:8080", f"{internet.addr}:8080"

    _, out = invoke(c, "no-vpc", event)
    results = out["evidence"]["results"]
    assert results[inet_key].startswith("CONNECTED hello-from-the-internet"), results
    # Refused at once by the environment's firewall, not left to time out.
    assert results[lan_key].startswith("OSError after 0."), results

    _, out = invoke(c, "in-vpc", event)
    results = out["evidence"]["results"]
    assert results[lan_key].startswith("CONNECTED hello-from-the-lan"), results
    assert results[inet_key].startswith("CONNECTED hello-from-the-internet"), results

    # Moving the function to a subnet that opens other networks closes the LAN again.
    c.update_function_configuration(FunctionName="in-vpc", VpcConfig={"SubnetIds": ["subnet-0empty"]})
    wait_for("the update", lambda: c.get_function_configuration(FunctionName="in-vpc")["LastUpdateStatus"] == "Successful")
    _, out = invoke(c, "in-vpc", event)
    assert out["evidence"]["results"][lan_key].startswith("OSError"), out

    # A subnet the operator did not map is refused, as AWS refuses an unknown one.
    with pytest.raises(c.exceptions.InvalidParameterValueException) as e:
        c.create_function(FunctionName="elsewhere", Runtime="python3.11", Role=ROLE,
                          Handler="hostile_function.handler", Code={"ZipFile": zipped},
                          VpcConfig={"SubnetIds": ["subnet-0nowhere"], "SecurityGroupIds": ["sg-1"]})
    assert "The subnet ID 'subnet-0nowhere' does not exist" in str(e.value)
    proc = vpc_server.cli("lambda", "update-function-configuration", "--function-name", "in-vpc",
                          "--vpc-config", "SubnetIds=subnet-0nowhere,SecurityGroupIds=sg-1", check=False)
    assert proc.returncode != 0 and "InvalidParameterValueException" in proc.stderr, proc.stderr
    assert c.get_function_configuration(FunctionName="in-vpc")["VpcConfig"]["SubnetIds"] == ["subnet-0empty"]

    # After a restart without that subnet's mapping, its functions cannot
    # start: Lambda's InvalidSubnetIDException (502), and nothing else breaks.
    vpc_server.extra_args = ("--vpc-subnet", f"subnet-0lan={lan_peer.addr.rsplit('.', 1)[0]}.0/30")
    vpc_server.restart()
    c = vpc_server.client()
    with pytest.raises(c.exceptions.InvalidSubnetIDException) as e:
        c.invoke(FunctionName="in-vpc", Payload=json.dumps(event).encode())
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 502
    assert "subnet-0empty" in str(e.value)
    _, out = invoke(c, "no-vpc", event)
    assert out["evidence"]["results"][inet_key].startswith("CONNECTED"), out


def test_in_host_mode_a_runtime_api_serves_only_its_own_environment():
    """Host mode shares the host's loopback: a function of another account
    knows (here: is told) the port of a neighbour's Runtime API and tries to
    take its next invocation and answer it. The Runtime API closes every
    connection not made by its own environment's uid."""
    s = Server(["--network", "host"])
    try:
        a, b = s.client(), s.client(key=KEY_B)
        zipped = make_zip({"hostile_function.py": (HOSTILE, 0o644)})
        a.create_function(FunctionName="victim", Runtime="python3.11", Role=ROLE, Handler="app.handler",
                          Code={"ZipFile": make_zip({"app.py": (
                              "import os\ndef handler(event, context):\n"
                              "    return {'api': os.environ['AWS_LAMBDA_RUNTIME_API'], 'echo': event}\n", 0o644)})})
        b.create_function(FunctionName="thief", Runtime="python3.11",
                          Role=f"arn:aws:iam::{ACCOUNT_B}:role/lambda-role",
                          Handler="hostile_function.handler", Code={"ZipFile": zipped}, Timeout=30)
        _, first = invoke(a, "victim", {"secret": 0})
        api = first["api"]
        thief = {}

        def steal():
            thief["r"], thief["out"] = invoke(b, "thief", {"attempt": "steal_runtime_api", "api": api, "wait": 10})

        t = threading.Thread(target=steal)
        t.start()
        answers = []
        # Keep the victim busy for as long as the thief tries (bounded).
        for i in range(1, 400):
            if not t.is_alive():
                break
            _, out = invoke(a, "victim", {"secret": i})
            answers.append((i, out))
        t.join(timeout=60)
        assert thief["out"]["blocked"], thief["out"]
        for i, out in answers:
            assert out == {"api": api, "echo": {"secret": i}}, (i, out)
        assert "refused a Runtime API connection from another identity" in s.log()
    finally:
        s.stop()


def test_egress_needs_no_firewall_tool(lan, tmp_path):
    """The default network mode programs its firewall itself: a server whose
    PATH holds no program at all (no iptables, no nft) starts, and its
    functions reach the internet and are refused the LAN."""
    lan_peer, internet = lan
    empty = tmp_path / "empty-path"
    empty.mkdir()
    s = Server(env={**os.environ, "PATH": str(empty)})
    try:
        bootstrap = ("#!/usr/bin/python3.11\n"
                     "import sys\n"
                     "sys.path.insert(0, '/var/task')\n"
                     "import http.client, json, os, hostile_function\n"
                     "host, port = os.environ['AWS_LAMBDA_RUNTIME_API'].split(':')\n"
                     "c = http.client.HTTPConnection(host, int(port))\n"
                     "while True:\n"
                     "    c.request('GET', '/2018-06-01/runtime/invocation/next')\n"
                     "    r = c.getresponse()\n"
                     "    event = json.loads(r.read())\n"
                     "    rid = r.getheader('Lambda-Runtime-Aws-Request-Id')\n"
                     "    out = hostile_function.handler(event, None)\n"
                     "    c.request('POST', f'/2018-06-01/runtime/invocation/{rid}/response', json.dumps(out))\n"
                     "    c.getresponse().read()\n")
        c = s.client()
        c.create_function(FunctionName="tool-free", Runtime="provided.al2023", Role=ROLE, Handler="x",
                          Code={"ZipFile": make_zip({"bootstrap": (bootstrap, 0o755),
                                                     "hostile_function.py": (HOSTILE, 0o644)})})
        _, out = invoke(c, "tool-free", {"attempt": "reach",
                                         "targets": [[internet.addr, 8080], [lan_peer.addr, 8080]]})
        results = out["evidence"]["results"]
        assert results[f"{internet.addr}:8080"].startswith("CONNECTED hello-from-the-internet"), results
        assert results[f"{lan_peer.addr}:8080"].startswith("OSError"), results
    finally:
        s.stop()


def test_two_servers_on_one_host_lease_distinct_identities_and_both_reach_out(lan):
    """Two platform instances (different data directories) with environments
    alive at once: every environment has its own uid and link, and all of
    them reach the internet."""
    _, internet = lan
    servers = [Server(), Server()]
    try:
        code = ("import os, socket, time\n"
                "def handler(event, context):\n"
                "    time.sleep(0.5)\n"
                "    with socket.create_connection((event['host'], 8080), timeout=5) as c:\n"
                "        greeting = c.recv(100).decode()\n"
                "    return {'uid': os.getuid(), 'greeting': greeting}\n")
        for s in servers:
            s.client().create_function(FunctionName="who", Runtime="python3.11", Role=ROLE, Handler="app.handler",
                                       Code={"ZipFile": make_zip({"app.py": (code, 0o644)})})
        results = []

        def call(s):
            results.append(invoke(s.client(), "who", {"host": internet.addr})[1])

        threads = [threading.Thread(target=call, args=(s,)) for s in servers for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert len(results) == 6, results
        for r in results:
            assert r["greeting"].startswith("hello-from-the-internet"), r
        uids = [r["uid"] for r in results]
        assert len(set(uids)) == 6, f"environments share an identity: {uids}"
        # All six are still alive (warm), three per server.
        for s in servers:
            idle, busy = s.environments("who")
            assert idle + busy == 3, (idle, busy)
    finally:
        for s in servers:
            s.stop()


# --- Capacity and disk: what one tenant can take from the host -------------

ACCOUNT_B_ROLE = "arn:aws:iam::222222222222:role/lambda-role"
SLEEPY = "import time\ndef handler(event, context):\n    time.sleep(event.get('seconds', 0))\n    return {'ok': True}\n"


def hostile_zip():
    return make_zip({"hostile_function.py": (HOSTILE, 0o644)})


def create(c, name, code, handler="app.handler", **kw):
    kw.setdefault("Role", ROLE)
    c.create_function(FunctionName=name, Runtime="python3.11", Handler=handler,
                      Code={"ZipFile": code}, **kw)


def call(c, name, event):
    """(status, error code or None, parsed body or error response) of one invocation."""
    try:
        r = c.invoke(FunctionName=name, Payload=json.dumps(event).encode())
    except c.exceptions.TooManyRequestsException as e:
        return 429, "TooManyRequestsException", e.response
    return r["StatusCode"], r.get("FunctionError"), json.loads(r["Payload"].read())


def instance_name(state_dir):
    """The cgroup name of a platform instance (FNV-1a of its state directory)."""
    h = 0xCBF29CE484222325
    for b in os.path.realpath(state_dir).encode():
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"lambent-{h:016x}"


def platform_group(server, controller):
    """The platform's cgroup directory for one controller (v1) or the unified tree (v2)."""
    name = instance_name(server.data / "sandbox")
    own = open(f"/proc/{server.proc.pid}/cgroup").read().splitlines()
    mounts = [line.split(" - ") for line in open("/proc/self/mountinfo").read().splitlines()]
    for line in own:
        _, ctrls, path = line.split(":", 2)
        if controller in ctrls.split(","):
            for left, right in mounts:
                fstype, _, opts = right.split()[:3]
                if fstype == "cgroup" and controller in opts.split(","):
                    return pathlib.Path(left.split()[4]) / path.lstrip("/") / name
    for line in own:
        if line.startswith("0::"):
            for left, right in mounts:
                if right.split()[0] == "cgroup2":
                    group = pathlib.Path(left.split()[4]) / line[3:].lstrip("/")
                    if group.name == "lambent-supervisor":
                        group = group.parent
                    return group / name
    raise AssertionError("no cgroup hierarchy found")


def test_leftover_fork_bombs_stay_within_the_accounts_processes():
    """Environments keep the processes a function leaves behind while they
    are idle; one account's environments together hold at most the account's
    processes (its cgroup), and a cold start that needs room stops idle
    environments (oldest first) instead of failing. Before the account
    groups, four environments held 200 leftovers each."""
    s = Server(extra_args=["--account-processes", "400", "--keep-alive", "600"])
    try:
        c = s.client()
        create(c, "bomber", hostile_zip(), handler="hostile_function.handler", Timeout=30, MemorySize=512)
        create(c, "quiet-a", make_zip({"app.py": (QUIET, 0o644)}))
        from concurrent.futures import ThreadPoolExecutor
        event = {"attempt": "leave_children", "count": 200, "hold": 3}
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda _: call(s.client(), "bomber", event), range(4)))
        forked = [body["evidence"]["forked"] for status, fe, body in results if status == 200 and not fe]
        refused = [body for status, _, body in results if status == 429]
        assert len(forked) + len(refused) == 4, results
        for r in refused:
            assert r["Reason"] == "ConcurrentInvocationLimitExceeded", r
            assert "processes" in r["Error"]["Message"], r
        print(f"children left behind per environment: {forked}; throttled: {len(refused)}")
        assert sum(forked) <= 400, f"{sum(forked)} processes left behind by one account"
        held = int((platform_group(s, "pids") / "acct-111111111111" / "pids.current").read_text())
        print(f"the account's environments hold {held} processes (limit 400)")
        assert held <= 400, held
        idle_before, _ = s.environments("bomber")
        assert idle_before >= 1
        # A cold start in the same account needs room: the oldest idle
        # bomber environments are stopped, and it runs.
        status, fe, body = call(c, "quiet-a", {})
        assert (status, fe, body) == (200, None, {"ok": True}), body
        assert s.environments("bomber")[0] < idle_before
        assert s.proc.poll() is None
    finally:
        s.stop()


def test_memory_budget_throttles_busy_and_evicts_idle_environments():
    """An account may be promised 640 MB: two 256 MB environments fit; a
    third cold start while both are busy gets AWS's 429 with a Reason; once
    they are idle, another function's cold start stops the oldest of them."""
    s = Server(extra_args=["--account-memory-mb", "640", "--keep-alive", "600"])
    try:
        c = s.client()
        sleepy = make_zip({"app.py": (SLEEPY, 0o644)})
        create(c, "slow", sleepy, MemorySize=256, Timeout=30)
        create(c, "other", sleepy, MemorySize=256)
        # Another account's budget is its own.
        create(s.client(KEY_B), "slow", sleepy, MemorySize=256, Role=ACCOUNT_B_ROLE)
        import threading
        done = []
        busy = [threading.Thread(target=lambda: done.append(call(s.client(), "slow", {"seconds": 4})))
                for _ in range(2)]
        for t in busy:
            t.start()
        wait_for("two busy environments", lambda: s.environments("slow")[1] == 2)
        status, code, resp = call(c, "slow", {"seconds": 0})
        assert (status, code) == (429, "TooManyRequestsException"), resp
        assert resp["Reason"] == "ConcurrentInvocationLimitExceeded", resp
        assert "512 of the 640 MB" in resp["Error"]["Message"], resp
        assert resp["ResponseMetadata"]["HTTPHeaders"].get("retry-after") == "1"
        assert call(s.client(KEY_B), "slow", {})[0] == 200, "another account is not throttled"
        for t in busy:
            t.join()
        assert [d[0] for d in done] == [200, 200], done
        assert s.environments("slow") == (2, 0)
        assert call(c, "other", {})[:2] == (200, None)
        assert s.environments("slow") == (1, 0), "the oldest idle environment made room"
        assert s.environments("other") == (1, 0)
    finally:
        s.stop()


INIT_SPIN = """
import os, time
def spin(seconds):
    # Forked children: threads would share one interpreter lock.
    stop = time.monotonic() + seconds
    started, t0 = time.monotonic(), os.times()
    kids = []
    for _ in range(max(os.cpu_count() or 2, 2)):
        pid = os.fork()
        if pid == 0:
            while time.monotonic() < stop:
                pass
            os._exit(0)
        kids.append(pid)
    for pid in kids:
        os.waitpid(pid, 0)
    t1 = os.times()
    return (t1.children_user - t0.children_user + t1.children_system - t0.children_system) / (time.monotonic() - started)
INIT_CPUS = spin(2.0)
def handler(event, context):
    if event.get("crash"):
        os._exit(3)
    return {"init_cpus": INIT_CPUS}
"""


def env_cpu_limits(server):
    """The CPU limit (in CPUs; None for none) of every environment of the
    server, by cgroup directory."""
    base = platform_group(server, "cpu")
    limits = {}
    for group in [*base.glob("*/*/"), *base.glob("*/")]:
        if group.name.startswith("acct-"):
            continue
        v1, v2 = group / "cpu.cfs_quota_us", group / "cpu.max"
        if v1.exists():
            quota, period = int(v1.read_text()), int((group / "cpu.cfs_period_us").read_text())
        elif v2.exists():
            q, p = v2.read_text().split()
            quota, period = (-1 if q == "max" else int(q)), int(p)
        else:
            continue
        limits[group] = None if quota < 0 else quota / period
    return limits


def test_init_cpu_is_bounded_and_crashing_does_not_buy_more(server):
    """Init may use more than the function's CPU share (Lambda boosts it), up
    to one vCPU; once an environment of the function ended abnormally, the
    next init runs at the share of its memory size (128 MB: 1/14 vCPU). The
    limits are read from the environments' cgroups while init runs, and the
    CPU the init's spinning children got is printed beside."""
    import threading
    c = server.client()
    create(c, "init-spinner", make_zip({"app.py": (INIT_SPIN, 0o644)}), Timeout=30)

    def init_limits(event):
        """Invokes with `event` (a cold start), noting the CPU limits of the
        environments that appear meanwhile (this one's) during its init."""
        seen, out = [], []
        others = set(env_cpu_limits(server))
        t = threading.Thread(target=lambda: out.append(call(c, "init-spinner", event)))
        t.start()
        while t.is_alive():
            seen.extend(v for g, v in env_cpu_limits(server).items() if g not in others)
            time.sleep(0.05)
        t.join()
        return seen, out[0]

    during_first, (status, fe, first) = init_limits({})
    assert (status, fe) == (200, None), first
    status, fe, crashed = call(c, "init-spinner", {"crash": True})
    assert fe == "Unhandled" and crashed["errorType"] == "Runtime.ExitError", crashed
    during_again, (status, fe, again) = init_limits({})
    assert (status, fe) == (200, None), again
    print(f"init: limits seen {sorted(set(during_first), key=str)} then {sorted(set(during_again), key=str)}; "
          f"CPUs used {first['init_cpus']:.2f} then {again['init_cpus']:.2f}")
    assert during_first and None not in during_first, f"init ran without a CPU limit: {during_first}"
    assert max(during_first) <= 1.0, during_first
    assert first["init_cpus"] <= 1.25, f"init used {first['init_cpus']:.2f} CPUs"
    assert during_again and max(during_again) <= 128 / 1769 + 0.01, during_again
    assert again["init_cpus"] <= 0.3, f"init after a crash used {again['init_cpus']:.2f} CPUs"


def test_log_output_is_bounded_per_invocation_and_per_function():
    """One invocation printing 8 MB keeps 1 MB and says so in a platform
    line; the function's log group keeps at most 2 MB, newest first; the log
    store grows by about that, not by what was printed."""
    s = Server(extra_args=["--invocation-log-mb", "1", "--function-log-mb", "2"])
    try:
        c = s.client()
        create(c, "chatty", hostile_zip(), handler="hostile_function.handler", Timeout=60)
        r = c.invoke(FunctionName="chatty", Payload=json.dumps({"attempt": "flood_log", "mb": 8}).encode(),
                     LogType="Tail")
        assert "FunctionError" not in r
        import base64
        tail = base64.b64decode(r["LogResult"]).decode()
        assert "log output reached the limit of 1048576 bytes" in tail, tail[-600:]
        assert "REPORT RequestId" in tail
        for _ in range(3):
            assert call(c, "chatty", {"attempt": "flood_log", "mb": 8})[:2] == (200, None)
        logs = s.client(service="logs")

        def stored():
            groups = logs.describe_log_groups(logGroupNamePrefix="/aws/lambda/chatty")["logGroups"]
            return groups[0]["storedBytes"] if groups else 0

        def truncations():
            return logs.filter_log_events(logGroupName="/aws/lambda/chatty",
                                          filterPattern='"log output reached the limit"')["events"]

        wait_for("the last invocation's lines", lambda: len(truncations()) >= 1)
        size = stored()
        print(f"printed 32 MB; the group stores {size} bytes")
        assert 0 < size <= 2 * 1024 * 1024, size
        files = [p for p in s.data.iterdir() if p.name.startswith("logs.db")]
        on_disk = sum(p.stat().st_size for p in files)
        print(f"logs.db and its WAL: {on_disk} bytes")
        assert on_disk < 12 * 1024 * 1024, on_disk
        # The newest invocation's truncation line is kept.
        assert truncations()[-1]["message"].startswith("RequestId: ")
    finally:
        s.stop()


def incompressible_zip(kb):
    return make_zip({"app.py": (QUIET, 0o644), "blob.bin": (os.urandom(kb * 1024), 0o644)})


def test_code_storage_quota_per_account():
    """An account stores at most its quota of packages (functions, versions,
    layers, in every region); beyond it AWS's CodeStorageExceededException,
    and nothing is stored. GetAccountSettings reports the quota and usage."""
    s = Server(extra_args=["--code-storage-mb", "1"])
    try:
        c = s.client()
        first = incompressible_zip(600)
        create(c, "big-1", first)
        settings = c.get_account_settings()
        assert settings["AccountLimit"]["TotalCodeSize"] == 1024 * 1024
        assert settings["AccountUsage"]["TotalCodeSize"] == len(first)
        west = boto3_client(s, "us-west-2")
        with pytest.raises(west.exceptions.CodeStorageExceededException) as e:
            create(west, "big-2", incompressible_zip(600))
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert e.value.response["Error"]["Message"] == "Code storage limit exceeded."
        with pytest.raises(c.exceptions.ResourceNotFoundException):
            west.get_function(FunctionName="big-2")
        # Publishing keeps the package once more: over the quota too.
        with pytest.raises(c.exceptions.CodeStorageExceededException):
            c.publish_version(FunctionName="big-1")
        with pytest.raises(c.exceptions.CodeStorageExceededException):
            c.publish_layer_version(LayerName="lib", Content={"ZipFile": incompressible_zip(600)})
        assert c.get_account_settings()["AccountUsage"]["TotalCodeSize"] == len(first)
        # Another account has its own quota.
        create(s.client(KEY_B), "big-1", incompressible_zip(600), Role=ACCOUNT_B_ROLE)
        # The aws CLI shows AWS's error.
        out = s.cli("lambda", "update-function-code", "--function-name", "big-1", "--zip-file",
                    f"fileb://{write_temp(incompressible_zip(1100))}", check=False)
        assert out.returncode != 0 and "CodeStorageExceededException" in out.stderr, out.stderr
        # Replacing $LATEST's package by a smaller one fits; deleting frees room.
        c.update_function_code(FunctionName="big-1", ZipFile=incompressible_zip(300))
        c.delete_function(FunctionName="big-1")
        create(west, "big-2", incompressible_zip(600))
    finally:
        s.stop()


def boto3_client(server, region, key=KEY_A):
    import boto3
    import botocore.config
    return boto3.client("lambda", endpoint_url=server.endpoint, region_name=region,
                        aws_access_key_id=key[0], aws_secret_access_key=key[1],
                        config=botocore.config.Config(retries={"max_attempts": 0}))


def write_temp(data):
    import tempfile
    f = tempfile.NamedTemporaryFile(delete=False, suffix=".zip")
    f.write(data)
    f.close()
    return f.name


@pytest.fixture
def small_disk():
    """A 64 MB tmpfs the test owns: the data directory of a server whose disk
    can be filled without touching the host's."""
    import subprocess
    import tempfile
    mount = pathlib.Path(tempfile.mkdtemp(prefix="lambent-small-disk-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m,mode=700", "lambent-test", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
        mount.rmdir()


def fill(path):
    """Writes until the filesystem is full; returns the filler file."""
    filler = path / "filler"
    chunk = b"\0" * (1 << 20)
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError:
            pass
        for size in (65536, 4096, 512, 1):
            try:
                while True:
                    f.write(chunk[:size])
            except OSError:
                pass
    return filler


def test_a_full_disk_refuses_new_work_clearly_and_keeps_serving(small_disk):
    """With the data directory's disk full (something else filled it): new
    packages get CodeStorageExceededException and asynchronous events a 429,
    both saying the disk is full; warm invocations and reads go on; the
    server restarts; once space is freed, everything works again."""
    s = Server(extra_args=["--min-free-disk-mb", "8", "--network", "isolated"], data=small_disk / "data")
    try:
        c = s.client()
        create(c, "steady", make_zip({"app.py": (QUIET, 0o644)}))
        assert call(c, "steady", {})[:2] == (200, None)
        # The server sets space aside for a full disk (half the reserve).
        ballast = small_disk / "data" / "disk-ballast"
        wait_for("the disk ballast", lambda: ballast.exists() and ballast.stat().st_size == 4 << 20)
        filler = fill(small_disk)
        assert call(c, "steady", {})[:2] == (200, None), "a warm invocation needs no disk"
        assert c.get_function(FunctionName="steady")["Configuration"]["FunctionName"] == "steady"
        assert [f["FunctionName"] for f in c.list_functions()["Functions"]] == ["steady"]
        with pytest.raises(c.exceptions.CodeStorageExceededException) as e:
            create(c, "new", make_zip({"app.py": (QUIET, 0o644)}))
        assert "the platform's disk is full" in e.value.response["Error"]["Message"], e.value.response
        with pytest.raises(c.exceptions.TooManyRequestsException) as e:
            c.invoke(FunctionName="steady", InvocationType="Event", Payload=b"{}")
        assert "disk is full" in e.value.response["Error"]["Message"], e.value.response
        assert s.proc.poll() is None
        s.restart()
        c = s.client()
        assert [f["FunctionName"] for f in c.list_functions()["Functions"]] == ["steady"]
        with pytest.raises(c.exceptions.CodeStorageExceededException):
            create(c, "new", make_zip({"app.py": (QUIET, 0o644)}))
        filler.unlink()
        create(c, "new", make_zip({"app.py": (QUIET, 0o644)}))
        assert c.invoke(FunctionName="new", InvocationType="Event", Payload=b"{}")["StatusCode"] == 202
        assert call(c, "steady", {})[:2] == (200, None)
    finally:
        s.stop()


NOISY = """
import json, os, sys, time, boto3, botocore.config
endpoint, key, secret, stop_file, name, event, log_file = sys.argv[1:8]
c = boto3.client("lambda", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=key,
                 aws_secret_access_key=secret, config=botocore.config.Config(retries={"max_attempts": 0},
                                                                             read_timeout=120))
with open(log_file, "a") as log:
    while not os.path.exists(stop_file):
        started = time.monotonic()
        r = c.invoke(FunctionName=name, Payload=event.encode())
        out = json.loads(r["Payload"].read())
        log.write(json.dumps({"start": started, "end": time.monotonic(), "error": r.get("FunctionError"),
                              "evidence": out.get("evidence")}) + "\\n")
        log.flush()
"""


def noisy_runs(log_file):
    """The noisy neighbour's finished invocations: (start, end); each must
    have done its work (no function error)."""
    runs = []
    if not pathlib.Path(log_file).exists():
        return runs
    for line in pathlib.Path(log_file).read_text().splitlines():
        rec = json.loads(line)
        assert rec["error"] is None, rec
        runs.append((rec["start"], rec["end"]))
    return runs

# neighbour -> (function, memory size, event): a fork bomb at 128 MB whose
# children all spin, and a 3,008 MB function burning every core.
NOISES = {
    "fork_bomb": ("noisy-bomb", 128, {"attempt": "fork_bomb_spin", "seconds": 1.0}),
    "cpu_burn": ("noisy-burn", 3008, {"attempt": "burn", "seconds": 1.0}),
}


@pytest.mark.parametrize("noise", list(NOISES))
def test_another_accounts_quiet_function_beside_a_noisy_neighbour(server, tmp_path, noise):
    """A quiet function of one account (a full vCPU) against a noisy
    neighbour of another: accounts share CPU equally, one account may use at
    most three quarters of the CPUs, and init is bounded, so the quiet
    function keeps most of its latency. Blocks alone and beside alternate so
    that the machine's own noise hits both; the factors are printed, and
    SECURITY.md records them.

    First the evidence that the neighbour was noisy: its runs (recorded by
    its client, another process, each without a function error) cover the
    measurements beside it. The bounds are what a loaded 2-CPU machine holds
    run after run: the noisy account may hold one CPU of two, so when other
    work saturates the machine, what is left for everyone else, the quiet
    function included, halves, and its median can double from that alone
    (2.5x and 4.1x were measured at load averages of 23 and above). So the
    median within 5x and p99 within 10x: what is bounded here is starvation;
    BENCHMARKS.md holds the strict figure."""
    import subprocess
    import sys
    from conftest import TIMEOUT_SCALE
    name, memory, event = NOISES[noise]
    a, b = server.client(), server.client(KEY_B)
    try:
        a.get_function(FunctionName=name)
    except a.exceptions.ResourceNotFoundException:
        create(a, name, hostile_zip(), handler="hostile_function.handler", MemorySize=memory, Timeout=60)
    try:
        b.get_function(FunctionName="quiet-b")
    except b.exceptions.ResourceNotFoundException:
        create(b, "quiet-b", make_zip({"app.py": (QUIET, 0o644)}), MemorySize=1769, Role=ACCOUNT_B_ROLE)
    quiet = RawInvoker(server.endpoint, "quiet-b", key=KEY_B)
    for _ in range(100):
        quiet.invoke()
    alone, noisy, windows = [], [], []
    log_file = tmp_path / f"{noise}.jsonl"
    for i in range(6):
        alone.extend(quiet.invoke() for _ in range(300))
        stop_file = tmp_path / f"stop-{noise}-{i}"
        done_before = len(noisy_runs(log_file))
        neighbour = subprocess.Popen([sys.executable, "-c", NOISY, server.endpoint, *KEY_A, str(stop_file),
                                      name, json.dumps(event), str(log_file)])
        # Settled once the neighbour finished a run (warm, running back to
        # back); the quiet function keeps going meanwhile.
        settle = time.monotonic() + 60 * TIMEOUT_SCALE
        while len(noisy_runs(log_file)) <= done_before:
            assert neighbour.poll() is None, f"the neighbour's client exited with {neighbour.returncode}"
            assert time.monotonic() < settle, "the neighbour never finished a run"
            quiet.invoke()
        started = time.monotonic()
        noisy.extend(quiet.invoke() for _ in range(300))
        windows.append((started, time.monotonic()))
        stop_file.write_text("")
        assert neighbour.wait(timeout=120 * TIMEOUT_SCALE) == 0
    runs = [(a, b, 0.0) for a, b in noisy_runs(log_file)]
    cover = sum(covered(runs, a, b) for a, b in windows) / sum(b - a for a, b in windows)
    pa, pn = p99(alone), p99(noisy)
    ma, mn = statistics.median(alone), statistics.median(noisy)
    print(f"{noise}: {len(runs)} runs covering {cover:.0%} of the blocks beside; "
          f"quiet p50 alone {ma * 1e3:.3f} ms, beside {mn * 1e3:.3f} ms ({mn / ma:.2f}x); "
          f"p99 alone {pa * 1e3:.3f} ms, beside {pn * 1e3:.3f} ms ({pn / pa:.2f}x)")
    assert cover >= 0.9, f"the neighbour was idle for {1 - cover:.0%} of the measurements beside it"
    assert server.proc.poll() is None
    assert mn <= ma * 5.0, f"median went from {ma * 1e3:.3f} ms to {mn * 1e3:.3f} ms"
    assert pn <= pa * 10.0, f"p99 went from {pa * 1e3:.3f} ms to {pn * 1e3:.3f} ms"
