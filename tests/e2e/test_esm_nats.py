"""NATS JetStream event source mappings against the machine's NATS server
(127.0.0.1:4222, JetStream on), driven with nats-py. The aws CLI creates
them through the self-managed event source shape: `nats://` bootstrap
servers, the stream in `--topics`, the durable consumer in
`ConsumerGroupId`.

Covered: the event, acknowledgement after success (the durable consumer
has nothing pending), redelivery after a failure, LATEST, and a SIGKILL
crash test."""

import asyncio
import base64
import collections
import json
import signal
import uuid

import nats
import pytest

from conftest import ROLE, Server, make_zip, wait_for

NATS_URL = "nats://127.0.0.1:4222"

APP = r'''
import base64, json, os, time

def shape(event, context):
    print("EVENT " + json.dumps(event))

def record(event, context):
    for r in event["records"]:
        print("RECORD " + json.dumps({"body": base64.b64decode(r["data"]).decode(),
                                      "deliveries": r["deliveries"]}))

def first_fails(event, context):
    record(event, context)
    if any(r["deliveries"] == 1 for r in event["records"]):
        raise RuntimeError("first delivery fails")

def append(event, context):
    with open(os.environ["OUT"], "a") as f:
        for r in event["records"]:
            f.write(base64.b64decode(r["data"]).decode() + "\n")
        f.flush()
        os.fsync(f.fileno())
    time.sleep(float(os.environ.get("SLEEP", "0")))
'''


def run(coro):
    return asyncio.run(coro)


async def _with_js(f):
    nc = await nats.connect(NATS_URL)
    try:
        return await f(nc.jetstream())
    finally:
        await nc.close()


def new_stream():
    name = "LAMBENT_" + uuid.uuid4().hex[:8].upper()
    subject = name.lower()

    async def make(js):
        await js.add_stream(name=name, subjects=[subject + ".>"])
    run(_with_js(make))
    return name, subject


def delete_stream(name):
    async def rm(js):
        await js.delete_stream(name)
    run(_with_js(rm))


def publish(subject, bodies, headers=None):
    async def pub(js):
        for b in bodies:
            await js.publish(subject + ".new", b.encode(), headers=headers)
    run(_with_js(pub))


def pending(stream, durable):
    """(pending, ack pending) of the durable consumer, or None before it exists."""
    async def info(js):
        try:
            c = await js.consumer_info(stream, durable)
        except nats.js.errors.NotFoundError:
            return None
        return c.num_pending, c.num_ack_pending
    return run(_with_js(info))


@pytest.fixture(scope="module")
def server():
    s = Server()
    yield s
    s.stop()


def create_function(server, name, handler, **extra):
    server.client().create_function(
        FunctionName=name, Runtime="python3.11", Role=ROLE, Handler=handler,
        Code={"ZipFile": make_zip({"app.py": (APP, 0o644)})}, Timeout=10, **extra)


def lines(server, name, tag):
    logs = server.client(service="logs")
    kw = {"logGroupName": f"/aws/lambda/{name}", "filterPattern": tag}
    out = []
    while True:
        try:
            r = logs.filter_log_events(**kw)
        except logs.exceptions.ResourceNotFoundException:
            return []
        out += [e["message"] for e in r["events"]]
        if not r.get("nextToken"):
            break
        kw["nextToken"] = r["nextToken"]
    prefix = tag + " "
    return [json.loads(m[m.index(prefix) + len(prefix):]) for m in out if prefix in m]


def nats_mapping(server, function, stream, durable, *extra):
    out = server.cli(
        "lambda", "create-event-source-mapping", "--function-name", function,
        "--self-managed-event-source", json.dumps({"Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": [NATS_URL]}}),
        "--topics", stream, "--self-managed-kafka-event-source-config",
        f"ConsumerGroupId={durable}", *extra)
    return json.loads(out.stdout)


def test_jetstream_event_and_ack_after_success(server):
    stream, subject = new_stream()
    try:
        create_function(server, "nats-shape", "app.shape")
        publish(subject, ['{"order": 1}'], headers={"Trace": "t-1"})
        m = nats_mapping(server, "nats-shape", stream, "shape-worker",
                         "--starting-position", "TRIM_HORIZON", "--batch-size", "10")
        assert m["State"] == "Creating"
        assert m["Topics"] == [stream]
        assert m["SelfManagedEventSource"] == {"Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": [NATS_URL]}}
        assert m["SelfManagedKafkaEventSourceConfig"] == {"ConsumerGroupId": "shape-worker"}
        assert m["StartingPosition"] == "TRIM_HORIZON"
        events = wait_for("the NATS event", lambda: lines(server, "nats-shape", "EVENT"), timeout=60)
        e = events[0]
        assert e["eventSource"] == "lambent:nats"
        assert e["stream"] == stream and e["consumer"] == "shape-worker"
        assert e["servers"] == NATS_URL
        [r] = e["records"]
        assert base64.b64decode(r["data"]) == b'{"order": 1}'
        assert r["subject"] == subject + ".new"
        assert r["sequence"] == 1
        assert r["deliveries"] == 1
        assert r["headers"] == {"Trace": ["t-1"]}
        assert r["timestamp"] > 1_600_000_000_000
        wait_for("the consumer to have nothing pending",
                 lambda: pending(stream, "shape-worker") == (0, 0), timeout=30)
    finally:
        delete_stream(stream)


def test_a_failed_batch_is_delivered_again(server):
    stream, subject = new_stream()
    try:
        create_function(server, "nats-fail", "app.first_fails")
        publish(subject, ["one", "two"])
        nats_mapping(server, "nats-fail", stream, "fail-worker", "--starting-position", "TRIM_HORIZON")
        wait_for("the redeliveries", lambda: {
            r["body"] for r in lines(server, "nats-fail", "RECORD") if r["deliveries"] == 2
        } == {"one", "two"}, timeout=60)
        wait_for("nothing pending", lambda: pending(stream, "fail-worker") == (0, 0), timeout=30)
    finally:
        delete_stream(stream)


def test_latest_skips_what_came_before(server):
    stream, subject = new_stream()
    try:
        create_function(server, "nats-latest", "app.record")
        publish(subject, ["old"])
        nats_mapping(server, "nats-latest", stream, "latest-worker", "--starting-position", "LATEST")
        wait_for("the durable consumer", lambda: pending(stream, "latest-worker") is not None)
        publish(subject, ["new"])
        wait_for("the new record", lambda: lines(server, "nats-latest", "RECORD"), timeout=60)
        wait_for("nothing pending", lambda: pending(stream, "latest-worker") == (0, 0), timeout=30)
        assert [r["body"] for r in lines(server, "nats-latest", "RECORD")] == ["new"]
    finally:
        delete_stream(stream)


def test_crash_in_the_middle_of_batches_loses_nothing(tmp_path):
    """SIGKILL while batches are in flight; the durable consumer keeps the
    acknowledged position and redelivers the rest after the restart. The
    function appends to a file (fsynced), so this server runs functions
    unsandboxed."""
    out = tmp_path / "delivered.txt"
    s = Server(extra_args=("--insecure-no-sandbox",))
    stream, subject = new_stream()
    try:
        create_function(s, "nats-crash", "app.append",
                        Environment={"Variables": {"OUT": str(out), "SLEEP": "0.05"}})
        total = 300
        publish(subject, [f"m{j}" for j in range(total)])
        nats_mapping(s, "nats-crash", stream, "crash-worker", "--starting-position",
                     "TRIM_HORIZON", "--batch-size", "10")

        def delivered():
            return out.read_text().split() if out.exists() else []

        wait_for("some batches", lambda: len(delivered()) >= 60, timeout=90)
        s.proc.send_signal(signal.SIGKILL)
        s.proc.wait()
        at_kill = len(delivered())
        assert at_kill < total, "every batch was done before the kill"
        # The unacknowledged batch comes back after the consumer's ack wait;
        # a NAK-free restart must not wait for it: the restarted poller
        # fetches the rest, and the in-flight batch is redelivered later.
        s.restart()
        wait_for("every message", lambda: len(set(delivered())) == total, timeout=180)
        got = collections.Counter(delivered())
        duplicates = sum(n - 1 for n in got.values())
        print(f"\nNATS crash test: {total} sent, {at_kill} delivered before the kill, "
              f"{len(got)} distinct delivered, {duplicates} duplicates")
    finally:
        s.stop()
        delete_stream(stream)
