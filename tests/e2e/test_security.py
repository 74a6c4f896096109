"""Hostile functions: every escape or abuse attempt is contained by a named
layer of the sandbox, and the platform keeps serving other functions.
The list and its results are recorded in SECURITY.md."""

import http.client
import json
import pathlib
import statistics
import threading
import time

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from conftest import KEY_A, ROLE, Server, make_zip

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
    "metadata_service": "host firewall (link-local dropped)",
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


def platform_pid(server):
    return server.proc.pid


@pytest.mark.parametrize("attempt", list(ATTEMPTS))
def test_attempt_is_contained(server, attempt):
    c = server.client()
    # Attempts that need time or memory to get anywhere run with more of both.
    name = "hostile-big" if attempt == "fork_bomb" else "hostile"
    event = {"attempt": attempt, "platform_pid": platform_pid(server),
             "platform_port": int(server.endpoint.rsplit(":", 1)[1]),
             "server_strings": [str(server.data), str(server.creds), str(server.dir),
                                server.endpoint.removeprefix("http://"), "serve", "--data-dir", "lambent-"]}
    r, out = invoke(c, name, event)
    assert "FunctionError" not in r, out
    assert out["blocked"], f"{attempt} got through ({ATTEMPTS[attempt]}): {out['evidence']}"
    if attempt == "fill_tmp":
        # 128 MB of memory, 512 MB of /tmp: full at 512 MB, not killed earlier.
        assert out["evidence"] in ("ENOSPC after 512 MB", "ENOSPC after 513 MB"), out["evidence"]
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

    def __init__(self, endpoint, name):
        self.host = endpoint.removeprefix("http://")
        self.path = f"/2015-03-31/functions/{name}/invocations"
        self.conn = http.client.HTTPConnection(self.host)
        req = AWSRequest(method="POST", url=endpoint + self.path, data=b"{}")
        SigV4Auth(Credentials(*KEY_A), "lambda", "us-east-1").add_auth(req)
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
import json, sys, boto3, botocore.config
endpoint, key, secret, stop_file = sys.argv[1:5]
c = boto3.client("lambda", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=key,
                 aws_secret_access_key=secret, config=botocore.config.Config(retries={"max_attempts": 0}))
import os
while not os.path.exists(stop_file):
    c.invoke(FunctionName="hostile", Payload=json.dumps({"attempt": "spin_every_core", "seconds": 1.0}).encode())
"""


def test_busy_neighbour_does_not_slow_a_quiet_function(server, tmp_path):
    """A neighbour spinning every core (at its 128 MB CPU share) next to a
    quiet function. The two conditions alternate in blocks so that the
    machine's own noise hits both, the quiet function keeps being invoked
    while the neighbour starts (so it is never idle long enough to freeze),
    and the neighbour's client is another process so that it cannot stall
    this one. The quiet function's median stays within 20 %; its p99 is
    reported and bounded at 2x (on this 2-vCPU machine the CFS bandwidth
    throttling of the neighbour still costs the quiet function's tail about
    a scheduler slice; see SECURITY.md)."""
    import subprocess
    import sys
    quiet = RawInvoker(server.endpoint, "quiet")
    for _ in range(100):
        quiet.invoke()
    alone, busy = [], []
    for i in range(8):
        alone.extend(quiet.invoke() for _ in range(300))
        stop_file = tmp_path / f"stop{i}"
        neighbour = subprocess.Popen([sys.executable, "-c", NEIGHBOUR, server.endpoint, *KEY_A, str(stop_file)])
        settle = time.monotonic() + 1.0
        while time.monotonic() < settle:
            quiet.invoke()
        busy.extend(quiet.invoke() for _ in range(300))
        stop_file.write_text("")
        neighbour.wait(timeout=30)
    a, b = p99(alone), p99(busy)
    ma, mb = statistics.median(alone), statistics.median(busy)
    print(f"quiet p99 alone {a * 1e3:.3f} ms, beside a busy neighbour {b * 1e3:.3f} ms ({b / a:.2f}x); "
          f"p50 {ma * 1e3:.3f} / {mb * 1e3:.3f} ms ({mb / ma:.2f}x)")
    assert mb <= ma * 1.2, f"median went from {ma * 1e3:.3f} ms to {mb * 1e3:.3f} ms"
    assert b <= a * 2.0, f"p99 went from {a * 1e3:.3f} ms to {b * 1e3:.3f} ms"


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
    """Each environment's /tmp is a loop device over an unlinked file: after
    the platform is killed with SIGKILL, its environments end (at once, or when
    the next start sweeps the frozen ones), and with them every device and image."""
    from conftest import wait_for
    s = Server()
    try:
        c = s.client()
        c.create_function(FunctionName="disk-user", Runtime="python3.11", Role=ROLE,
                          Handler="hostile_function.handler", Timeout=30,
                          Code={"ZipFile": make_zip({"hostile_function.py": (HOSTILE, 0o644)})})
        _, out = invoke(c, "disk-user", {"attempt": "write_tmp", "file": "f", "mb": 8})
        assert out["evidence"].startswith("wrote 8 MB"), out
        assert loop_devices_of(s.data), "the environment's /tmp is a loop device backed under the data directory"
        work = s.data / "sandbox" / "tmp-disks" / "work"
        assert list(work.iterdir()) == [], "images are unlinked once attached"
        s.proc.kill()
        s.proc.wait()
        s.restart()
        wait_for("loop devices to be released", lambda: not loop_devices_of(s.data), timeout=60)
        assert list(work.iterdir()) == []
    finally:
        s.stop()
