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


# --- The functions' network -------------------------------------------------

def host_addresses():
    """Every address of this host, (family, address), from `ip`."""
    import subprocess
    out = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True, check=True).stdout
    addrs = []
    for line in out.splitlines():
        words = line.split()
        iface, family, cidr = words[1], words[2], words[3]
        if iface.startswith("lmb"):
            continue
        addr = cidr.split("/")[0]
        if family == "inet6" and addr.startswith("fe80"):
            addr = f"{addr}%eth0"  # from inside, over the environment's own link
        addrs.append((family, addr))
    return addrs


class HostListener:
    """A TCP service on every address of the host, both families."""

    def __init__(self):
        import socket
        self.sock = socket.socket(socket.AF_INET6)
        self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        self.sock.bind(("::", 0))
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
            c.sendall(b"host-service")
            c.close()

    def close(self):
        self.sock.close()


def test_host_other_environments_and_metadata_are_unreachable_over_both_families(server):
    """The host (every address it has, IPv4 and IPv6, including the
    link-local address of the environment's own link, found from the
    gateway's MAC), a neighbouring environment (on both families) and the
    metadata addresses (169.254.169.254, fd00:ec2::254) are all out of
    reach; environments have no IPv6 address but loopback's."""
    c = server.client()
    if "neighbour" not in [f["FunctionName"] for f in c.list_functions()["Functions"]]:
        c.create_function(FunctionName="neighbour", Runtime="python3.11", Role=ROLE,
                          Handler="hostile_function.handler",
                          Code={"ZipFile": make_zip({"hostile_function.py": (HOSTILE, 0o644)})})
    _, n = invoke(c, "neighbour", {"attempt": "listen"})
    neighbour = n["evidence"]
    listener = HostListener()
    try:
        targets = [[addr.split("%")[0] if fam == "inet" else addr, listener.port]
                   for fam, addr in host_addresses()]
        targets.append([neighbour["ipv4"], 8080])
        r, out = invoke(c, "hostile", {"attempt": "reach", "targets": targets, "gateway": True,
                                       "gateway_ports": [listener.port, int(server.endpoint.rsplit(":", 1)[1])]})
    finally:
        listener.close()
    results = out["evidence"]["results"]
    print(json.dumps(out["evidence"], indent=1))
    assert out["blocked"], results
    assert listener.accepted == [], listener.accepted
    tried = " ".join(results)
    for must in ["169.254.169.254:80", "fd00:ec2::254:80", "%eth0", neighbour["ipv4"]]:
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
