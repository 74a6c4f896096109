"""A hostile Lambda function: each event names an escape or abuse attempt; the
handler tries it and reports what happened. The tests assert every attempt is
contained, and which layer of the sandbox stopped it."""

import ctypes
import errno
import os
import signal
import socket
import subprocess
import threading
import time

libc = ctypes.CDLL(None, use_errno=True)
# x86_64 system call numbers.
SYS = {"mount": 165, "ptrace": 101, "unshare": 272, "open_by_handle_at": 304, "init_module": 175,
       "finit_module": 313, "kexec_load": 246, "bpf": 321, "perf_event_open": 298, "keyctl": 250,
       "setns": 308, "pivot_root": 155, "userfaultfd": 323, "io_uring_setup": 425}


def syscall(name, *args):
    libc.syscall.restype = ctypes.c_long
    r = libc.syscall(SYS[name], *[ctypes.c_long(a) if isinstance(a, int) else a for a in args])
    return r, ctypes.get_errno()


def err(e):
    return errno.errorcode.get(e, str(e))


def attempt(name, event):
    if name == "read_host_files":
        seen = []
        for path in ["/etc/shadow", "/root", "/home", "/work", "/var/lib/postgresql", "/sys/kernel",
                     "/proc/1/root/etc/shadow", "/dev/mem", "/dev/kvm", "/dev/sda"]:
            try:
                if os.path.isdir(path):
                    seen.append(f"{path}: listed {os.listdir(path)[:3]}")
                else:
                    with open(path, "rb") as f:
                        seen.append(f"{path}: read {len(f.read(10))} bytes")
            except OSError as e:
                seen.append(f"{path}: {err(e.errno)}")
        blocked = all(("ENOENT" in s or "EACCES" in s) for s in seen)
        return blocked, "; ".join(seen)
    if name == "list_host_processes":
        pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
        comms = []
        for p in pids:
            try:
                comms.append(open(f"/proc/{p}/comm").read().strip())
            except OSError:
                pass
        return len(pids) <= 4 and "lambent" not in comms, f"pids {pids} {comms}"
    if name == "signal_platform":
        # SIGKILL to processes of the host (the platform, the process that
        # started it): a PID namespace hides them, so the kernel answers
        # ESRCH. EPERM would mean they are visible and only the uid stopped
        # the signal. Signalling this process itself shows kill works at all.
        results, hidden = [], True
        for what, pid in event["host_pids"].items():
            try:
                os.kill(pid, signal.SIGKILL)
                results.append(f"kill({what} {pid}) returned")
                hidden = False
            except OSError as e:
                results.append(f"kill({what} {pid}): {err(e.errno)}")
                hidden = hidden and e.errno == errno.ESRCH
        try:
            os.kill(os.getpid(), 0)
            results.append(f"kill(self {os.getpid()}, 0) returned")
            works = True
        except OSError as e:
            results.append(f"kill(self, 0): {err(e.errno)}")
            works = False
        return hidden and works, "; ".join(results)
    if name == "write_outside_tmp":
        out = []
        for path in ["/var/task/x", "/etc/x", "/x", "/opt/x", "/var/runtime/x", "/usr/x", "/proc/sys/kernel/core_pattern"]:
            try:
                with open(path, "w") as f:
                    f.write("pwned")
                out.append(f"{path}: WRITTEN")
            except OSError as e:
                out.append(f"{path}: {err(e.errno)}")
        return not any("WRITTEN" in o for o in out), "; ".join(out)
    if name == "fill_tmp":
        for leftover in os.listdir("/tmp"):
            os.unlink(f"/tmp/{leftover}")
        written = 0
        chunk = b"x" * (1 << 20)
        try:
            with open("/tmp/fill", "wb") as f:
                while written < (4 << 30):
                    f.write(chunk)
                    written += len(chunk)
                    f.flush()
        except OSError as e:
            os.unlink("/tmp/fill")
            return True, f"{err(e.errno)} after {written >> 20} MB"
        return False, f"wrote {written >> 20} MB"
    if name == "inspect_init":
        # What the environment shows of the process that started it and of
        # the host: none of the server's command line, data directory or
        # credentials path may appear.
        secrets = event["server_strings"]
        seen = {}
        for path in ["/proc/1/cmdline", "/proc/1/environ", "/proc/1/maps", "/proc/1/status",
                     "/proc/self/mountinfo", "/proc/self/cgroup", "/proc/1/cgroup", "/proc/1/mountinfo"]:
            try:
                with open(path, "rb") as f:
                    seen[path] = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError as e:
                seen[path] = err(e.errno)
        leaks = [f"{p} shows {s!r}" for p, text in seen.items() for s in secrets if s in text]
        evidence = "; ".join(leaks) or f"cmdline {seen['/proc/1/cmdline']!r}, environ {seen['/proc/1/environ']}, " \
            f"maps {seen['/proc/1/maps'][:40]!r}, cgroup {seen['/proc/self/cgroup'].split()}"
        return not leaks and seen["/proc/1/cmdline"].strip() == "/init", evidence
    if name == "write_tmp":
        # Writes `mb` MB to /tmp/<file> (page cache beyond the function's memory).
        written = 0
        chunk = os.urandom(1 << 20)
        with open(f"/tmp/{event['file']}", "wb") as f:
            while written < event["mb"] << 20:
                f.write(chunk)
                written += len(chunk)
        time.sleep(event.get("hold", 0))
        return True, f"wrote {written >> 20} MB; /tmp has {sorted(os.listdir('/tmp'))}"
    if name == "list_tmp":
        return True, " ".join(sorted(os.listdir("/tmp")))
    if name == "allocate_past_memory":
        hog = []
        while True:
            hog.append(bytearray(64 << 20))
            hog[-1][::4096] = b"\x01" * len(hog[-1][::4096])
    if name == "fork_bomb":
        threads = []
        stop = threading.Event()
        try:
            for _ in range(5000):
                t = threading.Thread(target=stop.wait)
                t.start()
                threads.append(t)
        except RuntimeError as e:
            n = len(threads)
            stop.set()
            for t in threads:
                t.join()
            children = 0
            try:
                for _ in range(5000):
                    pid = os.fork()
                    if pid == 0:
                        time.sleep(2)
                        os._exit(0)
                    children += 1
            except OSError as fe:
                return n < 1100 and children < 1100, f"threads stopped at {n} ({e}); forks stopped at {children} ({err(fe.errno)})"
            return False, f"{children} forks"
        return False, f"{len(threads)} threads"
    if name == "open_many_files":
        files = []
        try:
            for _ in range(10_000):
                files.append(open("/dev/null"))
        except OSError as e:
            n = len(files)
            for f in files:
                f.close()
            return n < 1100, f"{err(e.errno)} after {n} files"
        return False, "opened 10,000 files"
    if name == "spin_every_core":
        stop = time.monotonic() + event.get("seconds", 1.0)
        def spin():
            while time.monotonic() < stop:
                pass
        ts = [threading.Thread(target=spin) for _ in range(os.cpu_count() or 2)]
        t0 = os.times()
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        t1 = os.times()
        cpu = (t1.user - t0.user) + (t1.system - t0.system)
        wall = event.get("seconds", 1.0)
        return cpu < 0.5 * wall, f"{cpu:.2f} s of CPU in {wall:.2f} s of wall time with {len(ts)} spinning threads"
    if name == "other_runtime_api":
        # Services of the host, at the addresses the test names (where it
        # listens, and checks it can connect itself) on this environment's
        # loopback and on the host's side of its link (the gateway).
        gw = gateway_v4()
        targets = [(h, p) for h, p in event["targets"]] + [(gw, p) for p in event.get("gateway_ports", []) if gw]
        results = {}
        for host, port in targets:
            try:
                socket.create_connection((host, port), timeout=2).close()
                results[f"{host}:{port}"] = "CONNECTED"
            except OSError as e:
                results[f"{host}:{port}"] = type(e).__name__
        # Our own Runtime API refuses invocation ids that are not ours.
        import http.client
        h, p = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
        c = http.client.HTTPConnection(h, int(p), timeout=2)
        c.request("POST", "/2018-06-01/runtime/invocation/someone-elses-id/response", b"{}")
        status = c.getresponse().status
        return not any(r == "CONNECTED" for r in results.values()) and status == 400, \
            {"results": results, "gateway": gw, "foreign_request_id": status}
    if name in ("mount", "ptrace", "unshare", "open_by_handle_at", "init_module", "finit_module",
                "kexec_load", "bpf", "perf_event_open", "keyctl", "setns", "pivot_root", "userfaultfd",
                "io_uring_setup"):
        args = {
            "mount": (b"none", b"/tmp", b"tmpfs", 0, None),
            "ptrace": (16, 1, 0, 0),  # PTRACE_ATTACH to init
            "unshare": (0x10000000,),  # CLONE_NEWUSER
            "open_by_handle_at": (-100, None, 0),
            "init_module": (None, 0, b""),
            "finit_module": (0, b"", 0),
            "kexec_load": (0, 0, None, 0),
            "bpf": (0, None, 0),
            "perf_event_open": (None, 0, -1, -1, 0),
            "keyctl": (0, 0),
            "setns": (0, 0),
            "pivot_root": (b"/tmp", b"/tmp"),
            "userfaultfd": (0,),
            "io_uring_setup": (1, ctypes.create_string_buffer(120)),
        }[name]
        r, e = syscall(name, *args)
        return r == -1 and e == errno.EPERM, f"{name} returned {r}, errno {err(e)}"
    if name == "setuid_escalation":
        # A setuid-root copy of `id` the test placed on the host's /usr: `id`
        # prints `euid=0` when the setuid bit took effect. The environment's
        # mounts must all be nosuid and the process must have no_new_privs.
        helper = event["setuid_helper"]
        st = os.stat(helper)
        armed = bool(st.st_mode & 0o4000) and st.st_uid == 0
        p = subprocess.run([helper], capture_output=True, text=True)
        ran = p.returncode == 0 and p.stdout.startswith("uid=")
        mounts = [line.split() for line in open("/proc/self/mountinfo").read().splitlines()]
        suid_mounts = [m[4] for m in mounts if "nosuid" not in m[5].split(",")]
        nnp = [line.split()[1] for line in open("/proc/self/status") if line.startswith("NoNewPrivs:")]
        euid = os.geteuid()
        blocked = armed and ran and "euid=" not in p.stdout and euid != 0 and not suid_mounts and nnp == ["1"]
        return blocked, (f"helper {helper} mode {st.st_mode & 0o7777:o} owner {st.st_uid}; "
                         f"it reported {p.stdout.strip()!r} (exit {p.returncode}{', ' + p.stderr.strip()[:80] if p.stderr else ''}); "
                         f"mounts without nosuid {suid_mounts}; NoNewPrivs {nnp}; euid {euid}")
    if name == "raw_socket":
        try:
            socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
            return False, "raw socket opened"
        except OSError as e:
            return e.errno == errno.EPERM, err(e.errno)
    if name == "metadata_service":
        # The test listens on these addresses on the host (and checks that it
        # can connect there itself).
        results = {}
        for host, port in event["targets"]:
            try:
                socket.create_connection((host, port), timeout=2).close()
                results[f"{host}:{port}"] = "CONNECTED"
            except OSError as e:
                results[f"{host}:{port}"] = type(e).__name__
        return not any(r == "CONNECTED" for r in results.values()), {"results": results}
    if name == "reach":
        # Tries every target (host, port) plus, with `gateway`, the host's
        # side of this environment's link over IPv4 and over IPv6 link-local
        # (derived from the gateway's MAC, EUI-64), and the metadata addresses.
        targets = [tuple(t) for t in event.get("targets", [])]
        if event.get("gateway"):
            gw = gateway_v4()
            if gw:
                targets += [(gw, p) for p in event.get("gateway_ports", [])]
                mac = mac_of(gw)
                if mac:
                    targets += [(f"{eui64_link_local(mac)}%eth0", p) for p in event.get("gateway_ports", [])]
            targets += [tuple(t) for t in event.get("metadata", [])]
        results = {}
        for host, port in targets:
            started = time.monotonic()
            try:
                with socket.create_connection((host, port), timeout=2) as c:
                    c.settimeout(2)
                    try:
                        data = c.recv(200).decode(errors="replace")
                    except OSError:
                        data = ""
                results[f"{host}:{port}"] = f"CONNECTED {data}".strip()
            except OSError as e:
                results[f"{host}:{port}"] = f"{type(e).__name__} after {time.monotonic() - started:.1f} s"
        return not any(r.startswith("CONNECTED") for r in results.values()), \
            {"results": results, "ipv6": own_ipv6(), "uid": os.getuid()}
    if name == "listen":
        # A neighbour: a server on every address of this environment, kept
        # for as long as the environment lives; reports its addresses.
        global NEIGHBOUR
        if NEIGHBOUR is None:
            NEIGHBOUR = []
            for family, addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
                try:
                    s = socket.socket(family)
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    s.bind((addr, 8080))
                    s.listen(64)
                    NEIGHBOUR.append(s)
                except OSError:
                    pass
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.connect(("192.0.2.1", 9))  # no packet: only picks the source address
        return True, {"ipv4": probe.getsockname()[0], "ipv6": own_ipv6()}
    if name == "steal_runtime_api":
        # Another environment's Runtime API (host mode shares the loopback):
        # take its next invocation and answer it with a forged result.
        import http.client
        host, port = event["api"].rsplit(":", 1)
        try:
            c = http.client.HTTPConnection(host, int(port), timeout=event.get("wait", 8))
            c.request("GET", "/2018-06-01/runtime/invocation/next")
            r = c.getresponse()
            payload = r.read().decode(errors="replace")
            request_id = r.getheader("lambda-runtime-aws-request-id")
            c.request("POST", f"/2018-06-01/runtime/invocation/{request_id}/response", b'{"forged": true}')
            posted = c.getresponse().status
            return False, f"took {request_id} ({payload[:100]}); forged answer got {posted}"
        except (OSError, http.client.HTTPException) as e:
            return True, f"{type(e).__name__}: {e}"
    if name == "leave_children":
        # Forks up to `count` children that outlive the invocation (they sleep
        # on, frozen with the idle environment), holding the invocation open
        # for `hold` seconds so that concurrent calls get environments of
        # their own.
        forked, why = 0, "none"
        for _ in range(event.get("count", 200)):
            try:
                pid = os.fork()
            except OSError as e:
                why = err(e.errno)
                break
            if pid == 0:
                time.sleep(event.get("linger", 600))
                os._exit(0)
            forked += 1
        time.sleep(event.get("hold", 0))
        return True, {"forked": forked, "stopped_by": why}
    if name == "flood_log":
        # Prints `mb` megabytes in 1 KB lines.
        line = "y" * 1023
        for _ in range(event.get("mb", 8) * 1024):
            print(line)
        return True, f"printed {event.get('mb', 8)} MB"
    if name == "burn":
        # Every core, from processes (threads share one interpreter lock).
        stop = time.monotonic() + event.get("seconds", 1.0)
        kids = []
        for _ in range(os.cpu_count() or 2):
            pid = os.fork()
            if pid == 0:
                while time.monotonic() < stop:
                    pass
                os._exit(0)
            kids.append(pid)
        for pid in kids:
            os.waitpid(pid, 0)
        return True, f"burned {len(kids)} processes"
    if name == "fork_bomb_spin":
        # Forks until the pids limit, every child spinning, then waits.
        stop = time.monotonic() + event.get("seconds", 1.0)
        kids = []
        while time.monotonic() < stop:
            try:
                pid = os.fork()
            except OSError:
                break
            if pid == 0:
                while time.monotonic() < stop:
                    pass
                os._exit(0)
            kids.append(pid)
        for pid in kids:
            os.waitpid(pid, 0)
        return True, f"{len(kids)} children"
    raise ValueError(f"unknown attempt {name}")


NEIGHBOUR = None


def own_ipv6():
    """This environment's IPv6 addresses, by interface."""
    try:
        rows = open("/proc/net/if_inet6").read().split("\n")
    except OSError:
        return []
    return sorted(f"{r.split()[5]}:{r.split()[0]}" for r in rows if r.strip())


def gateway_v4():
    try:
        route = open("/proc/net/route").read().split("\n")[1].split()[2]
        return ".".join(str(int(route[i:i + 2], 16)) for i in (6, 4, 2, 0))
    except (OSError, IndexError, ValueError):
        return None


def mac_of(ip):
    """The MAC of a neighbour, from the ARP table (resolved by a datagram first)."""
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.sendto(b"x", (ip, 9))
    except OSError:
        pass
    for _ in range(50):
        for row in open("/proc/net/arp").read().split("\n")[1:]:
            cols = row.split()
            if cols and cols[0] == ip and cols[3] != "00:00:00:00:00:00":
                return cols[3]
        time.sleep(0.02)
    return None


def eui64_link_local(mac):
    b = [int(x, 16) for x in mac.split(":")]
    b[0] ^= 2
    words = [(b[0] << 8) | b[1], (b[2] << 8) | 0xFF, 0xFE00 | b[3], (b[4] << 8) | b[5]]
    return "fe80::" + ":".join(f"{w:x}" for w in words)


def handler(event, context):
    blocked, evidence = attempt(event["attempt"], event)
    return {"attempt": event["attempt"], "blocked": blocked, "evidence": evidence}
