"""A `lambent serve` process per test module, and AWS clients pointed at it.

The binary comes from $LAMBENT_BIN (default: target/debug/lambent)."""

import io
import math
import os
import pathlib
import shutil
import subprocess
import tempfile
import time
import urllib.request
import zipfile

import boto3
import botocore.config
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
ACCOUNT_A = "111111111111"
ACCOUNT_B = "222222222222"
KEY_A = ("AKIAPYTESTACCOUNTAAA", "py/secret+a")
KEY_B = ("AKIAPYTESTACCOUNTBBB", "py/secret+b")
ROLE = f"arn:aws:iam::{ACCOUNT_A}:role/lambda-role"


# Multiplies every wait on a condition (a busy machine starts servers and
# environments slowly); scripts/test sets it from the machine's load.
TIMEOUT_SCALE = float(os.environ.get("LAMBENT_TEST_TIMEOUT_SCALE") or 1)


def load_scale():
    """One unit per CPU's worth of the machine's load now, from 1 to 8."""
    try:
        load = float(open("/proc/loadavg").read().split()[0])
    except (OSError, ValueError, IndexError):
        load = 0.0
    return min(max(math.ceil(load / (os.cpu_count() or 1)), 1), 8)


def wait_for(what, predicate, timeout=30.0):
    """Polls `predicate` until it is true; the deadline is `timeout` times
    TIMEOUT_SCALE or, if higher, the machine's load now (re-read while
    waiting, so a wait that begins on a busier machine scales too)."""
    started = time.monotonic()
    scale = max(TIMEOUT_SCALE, load_scale())
    checked = started
    while True:
        value = predicate()
        if value:
            return value
        now = time.monotonic()
        if now - checked >= 1:
            scale, checked = max(scale, load_scale()), now
        if now - started > timeout * scale:
            raise AssertionError(f"timed out after {timeout * scale}s waiting for {what}")
        time.sleep(0.01)


class Server:
    def __init__(self, extra_args=(), env=None, data=None):
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="lambent-e2e-"))
        creds = self.dir / "keys.toml"
        creds.write_text(
            "".join(
                f'[[key]]\naccess_key_id = "{k}"\nsecret_access_key = "{s}"\naccount_id = "{a}"\n'
                for (k, s), a in ((KEY_A, ACCOUNT_A), (KEY_B, ACCOUNT_B))
            )
        )
        # `data`: a data directory elsewhere (a small filesystem, say).
        self.data = pathlib.Path(data) if data else self.dir / "data"
        self.creds = creds
        self.extra_args = tuple(extra_args)
        self.env = env
        self.log_path = self.dir / "server.log"
        self._start()

    def _start(self):
        binary = os.environ.get("LAMBENT_BIN", str(ROOT / "target/debug/lambent"))
        endpoint_file = self.data / "endpoint"
        metrics_file = self.data / "metrics-endpoint"
        for f in (endpoint_file, metrics_file):
            if f.exists():
                f.unlink()
        # Metrics on a port of their own unless a test chooses.
        metrics = () if "--metrics-listen" in self.extra_args else (
            "--metrics-listen", "127.0.0.1:0")
        self.proc = subprocess.Popen(
            [binary, "serve", "--listen", "127.0.0.1:0", *metrics,
             "--data-dir", str(self.data), "--credentials-file", str(self.creds),
             *self.extra_args],
            stdout=subprocess.DEVNULL,
            stderr=open(self.log_path, "ab"),
            env=self.env,
        )
        self.endpoint = wait_for(
            "the endpoint file",
            lambda: endpoint_file.exists() and endpoint_file.read_text().strip(),
        )
        # Prometheus metrics, on their own (loopback) listener.
        self.metrics_endpoint = (metrics_file.exists() and metrics_file.read_text().strip()) or None
        wait_for("the health check", self._healthy)

    def restart(self):
        """Starts the server again on the same data directory (after it
        stopped or was killed)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
        self._start()

    def _healthy(self):
        try:
            with urllib.request.urlopen(self.endpoint + "/lambent/health", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def log(self):
        return self.log_path.read_text(errors="replace")

    def client(self, key=KEY_A, service="lambda", **config):
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=key[0],
            aws_secret_access_key=key[1],
            config=botocore.config.Config(retries={"max_attempts": 0}, **config),
        )

    def cli(self, *args, key=KEY_A, check=True):
        env = dict(os.environ)
        env.update(AWS_ACCESS_KEY_ID=key[0], AWS_SECRET_ACCESS_KEY=key[1],
                   AWS_DEFAULT_REGION="us-east-1", AWS_PAGER="")
        env.pop("AWS_PROFILE", None)
        aws = shutil.which("aws") or str(pathlib.Path(os.sys.executable).parent / "aws")
        proc = subprocess.run([aws, *args, "--endpoint-url", self.endpoint, "--output", "json"],
                              env=env, capture_output=True, text=True, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"aws {' '.join(args)} failed: {proc.stderr}")
        return proc

    def status(self, key=KEY_A):
        """Lambent's own status document (signed GET /lambent/status)."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials
        import json
        req = AWSRequest(method="GET", url=self.endpoint + "/lambent/status")
        SigV4Auth(Credentials(*key), "lambda", "us-east-1").add_auth(req)
        r = urllib.request.Request(req.url, headers=dict(req.headers), method="GET")
        with urllib.request.urlopen(r, timeout=10) as resp:
            return json.loads(resp.read())

    def environments(self, name, version="$LATEST", key=KEY_A):
        """(idle, busy) execution environments of a function version."""
        for f in self.status(key)["Functions"]:
            if f["FunctionName"] == name and f["Version"] == version:
                return f["IdleEnvironments"], f["BusyEnvironments"]
        return 0, 0

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def server():
    s = Server()
    yield s
    s.stop()


def make_zip(files):
    """files: {name: (bytes or str, mode)}"""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, (data, mode) in files.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    return buf.getvalue()


PEER_SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8080))
s.listen(64)
print("ready", flush=True)
while True:
    c, a = s.accept()
    try:
        c.sendall(f"{sys.argv[1]} {a[0]}".encode())
    except OSError:
        pass
    c.close()
"""


def _ip(*args):
    subprocess.run(["ip", *args], check=True, capture_output=True)


class NetPeer:
    """Another host for functions to reach: a network namespace this test
    creates, behind a veth pair addressed `{net}.1/30` (host side) and
    `{net}.2` (inside), where a TCP server on port 8080 answers each
    connection with `greeting` and the caller's address. `net` is three
    octets; a public-looking one stands in for the internet, a private one
    for the operator's LAN."""

    def __init__(self, tag, net, greeting):
        self.ns = f"lmbtest-{tag}-{os.getpid()}"
        # Not `lmb...`: that prefix is environments' links.
        self.host_if = f"tp{tag[:5]}{os.getpid() % 100000}"
        self.addr = f"{net}.2"
        self.greeting = greeting
        self.server = None
        try:
            _ip("netns", "add", self.ns)
            _ip("link", "add", self.host_if, "type", "veth", "peer", "name", "eth0", "netns", self.ns)
            _ip("addr", "add", f"{net}.1/30", "dev", self.host_if)
            _ip("link", "set", self.host_if, "up")
            _ip("-n", self.ns, "addr", "add", f"{net}.2/30", "dev", "eth0")
            _ip("-n", self.ns, "link", "set", "eth0", "up")
            _ip("-n", self.ns, "link", "set", "lo", "up")
            _ip("-n", self.ns, "route", "add", "default", "via", f"{net}.1")
            self.server = subprocess.Popen(
                ["ip", "netns", "exec", self.ns, os.sys.executable, "-c", PEER_SERVER, greeting],
                stdout=subprocess.PIPE)
            assert self.server.stdout.readline().strip() == b"ready"
        except BaseException:
            self.close()
            raise

    def close(self):
        if self.server is not None and self.server.poll() is None:
            self.server.kill()
            self.server.wait()
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)
