"""SQS event source mappings end to end: a moto server is the SQS endpoint
(`AWS_ENDPOINT_URL_SQS` in the server's environment, credentials from the
standard chain), boto3 sends and inspects messages, the aws CLI and boto3
create the mappings, and the functions print what they received, which the
tests read back through CloudWatch Logs.

Covered: Lambda's SQS event field for field, delete on success, nothing
deleted on failure (the redrive policy moves the message to its dead-letter
queue), ReportBatchItemFailures, batch size and window, FIFO order per
message group, ScalingConfig.MaximumConcurrency, throttles retried without
loss, and a crash test (SIGKILL in the middle of batches, restart, count)."""

import base64
import collections
import hashlib
import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import boto3
import pytest

from conftest import ROLE, ROOT, Server, make_zip, wait_for

MOTO_ACCOUNT = "123456789012"
REGION = "us-east-1"

APP = r'''
import json, os, time

def emit(tag, event, context, **extra):
    for r in event["Records"]:
        print(tag + " " + json.dumps(dict(
            id=r["messageId"], body=r["body"], n=len(event["Records"]),
            req=context.aws_request_id,
            receives=r["attributes"].get("ApproximateReceiveCount"),
            group=r["attributes"].get("MessageGroupId"), **extra)))

def shape(event, context):
    print("EVENT " + json.dumps(event))

def record(event, context):
    emit("RECORD", event, context)

def fail(event, context):
    emit("RECORD", event, context)
    raise RuntimeError("failed on purpose")

def partial(event, context):
    # Fails the messages whose body asks for it, on their first delivery.
    emit("RECORD", event, context)
    failures = [{"itemIdentifier": r["messageId"]} for r in event["Records"]
                if "fail" in r["body"] and r["attributes"]["ApproximateReceiveCount"] == "1"]
    return {"batchItemFailures": failures}

def append(event, context):
    # Outside the sandbox only (the crash test): a file the test reads.
    with open(os.environ["OUT"], "a") as f:
        for r in event["Records"]:
            f.write(r["body"] + "\n")
        f.flush()
        os.fsync(f.fileno())
    time.sleep(float(os.environ.get("SLEEP", "0")))

def slow(event, context):
    start = time.time()
    time.sleep(float(os.environ.get("SLEEP", "0.5")))
    emit("RECORD", event, context, start=start, end=time.time())
'''


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def moto():
    port = free_port()
    exe = pathlib.Path(sys.executable).parent / "moto_server"
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def answers():
        try:
            with urllib.request.urlopen(url + "/moto-api/", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    wait_for("the moto server", answers, timeout=60)
    yield url
    proc.terminate()
    proc.wait(timeout=20)


def moto_env(moto):
    env = dict(os.environ)
    env.update(AWS_ENDPOINT_URL_SQS=moto, AWS_ACCESS_KEY_ID="testing",
               AWS_SECRET_ACCESS_KEY="testing", AWS_REGION=REGION)
    env.pop("AWS_PROFILE", None)
    return env


@pytest.fixture(scope="module")
def server(moto):
    s = Server(env=moto_env(moto))
    yield s
    s.stop()


def sqs(moto):
    return boto3.client("sqs", endpoint_url=moto, region_name=REGION,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def queue(moto, name, **attributes):
    c = sqs(moto)
    url = c.create_queue(QueueName=name, Attributes={k: str(v) for k, v in attributes.items()})["QueueUrl"]
    arn = c.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def counts(moto, url):
    a = sqs(moto).get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages",
                                      "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(a["ApproximateNumberOfMessages"]), int(a["ApproximateNumberOfMessagesNotVisible"])


def create_function(server, name, handler, timeout=10, **extra):
    server.client().create_function(
        FunctionName=name, Runtime="python3.11", Role=ROLE, Handler=handler,
        Code={"ZipFile": make_zip({"app.py": (APP, 0o644)})}, Timeout=timeout, **extra)


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


def records(server, name):
    return lines(server, name, "RECORD")


def test_sqs_event_shape_field_for_field_and_delete_on_success(server, moto):
    url, arn = queue(moto, "shape")
    create_function(server, "sqs-shape", "app.shape")
    sent = sqs(moto).send_message(
        QueueUrl=url, MessageBody='{"hello": "world"}',
        MessageAttributes={
            "Color": {"DataType": "String", "StringValue": "blue"},
            "Count": {"DataType": "Number", "StringValue": "3"},
            "Raw": {"DataType": "Binary", "BinaryValue": b"\x00\x01binary"},
        })
    out = server.cli("lambda", "create-event-source-mapping", "--function-name", "sqs-shape",
                     "--event-source-arn", arn, "--batch-size", "10")
    mapping = json.loads(out.stdout)
    assert mapping["State"] == "Creating"
    assert mapping["EventSourceArn"] == arn
    assert mapping["BatchSize"] == 10

    events = wait_for("the SQS event", lambda: lines(server, "sqs-shape", "EVENT"), timeout=60)
    [record] = events[0]["Records"]
    assert set(record) == {"messageId", "receiptHandle", "body", "attributes", "messageAttributes",
                           "md5OfBody", "md5OfMessageAttributes", "eventSource", "eventSourceARN",
                           "awsRegion"}
    assert record["messageId"] == sent["MessageId"]
    assert record["receiptHandle"]
    assert record["body"] == '{"hello": "world"}'
    assert record["md5OfBody"] == hashlib.md5(b'{"hello": "world"}').hexdigest()
    assert record["md5OfMessageAttributes"] == sent["MD5OfMessageAttributes"]
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == arn
    assert record["awsRegion"] == REGION
    attrs = record["attributes"]
    assert attrs["ApproximateReceiveCount"] == "1"
    for key in ("SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"):
        assert attrs[key], key
    assert int(attrs["SentTimestamp"]) <= int(attrs["ApproximateFirstReceiveTimestamp"])
    assert record["messageAttributes"] == {
        "Color": {"stringValue": "blue", "stringListValues": [], "binaryListValues": [],
                  "dataType": "String"},
        "Count": {"stringValue": "3", "stringListValues": [], "binaryListValues": [],
                  "dataType": "Number"},
        "Raw": {"binaryValue": base64.b64encode(b"\x00\x01binary").decode(),
                "stringListValues": [], "binaryListValues": [], "dataType": "Binary"},
    }
    # Deleted after the function succeeded.
    wait_for("the queue to empty", lambda: counts(moto, url) == (0, 0), timeout=30)
    got = server.client().get_event_source_mapping(UUID=mapping["UUID"])
    assert got["State"] == "Enabled"


def test_a_failed_batch_deletes_nothing_and_the_redrive_policy_applies(server, moto):
    dlq_url, dlq_arn = queue(moto, "fail-dlq")
    url, arn = queue(moto, "fail-src", VisibilityTimeout=1,
                     RedrivePolicy=json.dumps({"deadLetterTargetArn": dlq_arn,
                                               "maxReceiveCount": "2"}))
    create_function(server, "sqs-fail", "app.fail")
    sent = sqs(moto).send_message(QueueUrl=url, MessageBody="doomed")["MessageId"]
    server.client().create_event_source_mapping(FunctionName="sqs-fail", EventSourceArn=arn)
    # Two receives fail; the third receive moves the message to the DLQ.
    wait_for("the message in the dead-letter queue", lambda: counts(moto, dlq_url)[0] == 1,
             timeout=90)
    seen = [r for r in records(server, "sqs-fail") if r["id"] == sent]
    assert [r["receives"] for r in seen] == ["1", "2"]
    assert counts(moto, url) == (0, 0)


def test_report_batch_item_failures_deletes_only_what_succeeded(server, moto):
    url, arn = queue(moto, "partial", VisibilityTimeout=2)
    create_function(server, "sqs-partial", "app.partial")
    c = sqs(moto)
    bodies = ["ok-1", "fail-2", "ok-3", "fail-4", "ok-5"]
    ids = {c.send_message(QueueUrl=url, MessageBody=b)["MessageId"]: b for b in bodies}
    server.client().create_event_source_mapping(
        FunctionName="sqs-partial", EventSourceArn=arn, BatchSize=10,
        MaximumBatchingWindowInSeconds=1, FunctionResponseTypes=["ReportBatchItemFailures"])
    wait_for("the queue to empty", lambda: counts(moto, url) == (0, 0), timeout=60)
    seen = collections.Counter(r["body"] for r in records(server, "sqs-partial"))
    # The reported failures came back once; what succeeded was deleted.
    assert seen == {"ok-1": 1, "ok-3": 1, "ok-5": 1, "fail-2": 2, "fail-4": 2}, seen
    assert set(ids.values()) == set(seen)


def test_batch_size_and_window(server, moto):
    url, arn = queue(moto, "batches")
    create_function(server, "sqs-batches", "app.record")
    c = sqs(moto)
    for i in range(0, 45, 10):
        c.send_message_batch(QueueUrl=url, Entries=[
            {"Id": str(j), "MessageBody": f"m{j}"} for j in range(i, min(i + 10, 45))])
    server.client().create_event_source_mapping(
        FunctionName="sqs-batches", EventSourceArn=arn, BatchSize=20,
        MaximumBatchingWindowInSeconds=2)
    wait_for("45 records", lambda: len(records(server, "sqs-batches")) >= 45, timeout=60)
    got = records(server, "sqs-batches")
    assert sorted(r["body"] for r in got) == sorted(f"m{j}" for j in range(45))
    sizes = {r["req"]: r["n"] for r in got}
    assert max(sizes.values()) <= 20
    # With the backlog there from the start, the window fills whole batches.
    assert max(sizes.values()) == 20, sizes


def test_fifo_queue_keeps_the_order_within_each_group(server, moto):
    url, arn = queue(moto, "ordered.fifo", FifoQueue="true", ContentBasedDeduplication="true")
    create_function(server, "sqs-fifo", "app.record")
    c = sqs(moto)
    for i in range(12):
        for g in ("a", "b", "c"):
            c.send_message(QueueUrl=url, MessageBody=f"{g}-{i}", MessageGroupId=g)
    server.client().create_event_source_mapping(
        FunctionName="sqs-fifo", EventSourceArn=arn, BatchSize=5)
    wait_for("36 records", lambda: len(records(server, "sqs-fifo")) >= 36, timeout=60)
    got = records(server, "sqs-fifo")
    for g in ("a", "b", "c"):
        order = [int(r["body"].split("-")[1]) for r in got if r["group"] == g]
        assert order == list(range(12)), (g, order)


def test_maximum_concurrency_bounds_the_batches_in_flight(server, moto):
    url, arn = queue(moto, "bounded", VisibilityTimeout=30)
    create_function(server, "sqs-bounded", "app.slow", Environment={"Variables": {"SLEEP": "0.4"}})
    c = sqs(moto)
    for i in range(0, 24, 10):
        c.send_message_batch(QueueUrl=url, Entries=[
            {"Id": str(j), "MessageBody": f"m{j}"} for j in range(i, min(i + 10, 24))])
    server.client().create_event_source_mapping(
        FunctionName="sqs-bounded", EventSourceArn=arn, BatchSize=1,
        ScalingConfig={"MaximumConcurrency": 2})
    wait_for("24 records", lambda: len(records(server, "sqs-bounded")) >= 24, timeout=120)
    got = records(server, "sqs-bounded")
    assert sorted(r["body"] for r in got) == sorted(f"m{j}" for j in range(24))
    spans = sorted((r["start"], r["end"]) for r in got)
    most = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert most == 2, f"{most} batches ran at once"


def test_throttled_invocations_are_retried_without_losing_records(server, moto):
    url, arn = queue(moto, "throttled", VisibilityTimeout=60)
    create_function(server, "sqs-throttled", "app.slow", Environment={"Variables": {"SLEEP": "0.2"}})
    server.client().put_function_concurrency(FunctionName="sqs-throttled",
                                             ReservedConcurrentExecutions=1)
    c = sqs(moto)
    for i in range(0, 30, 10):
        c.send_message_batch(QueueUrl=url, Entries=[
            {"Id": str(j), "MessageBody": f"m{j}"} for j in range(i, i + 10)])
    server.client().create_event_source_mapping(
        FunctionName="sqs-throttled", EventSourceArn=arn, BatchSize=1,
        ScalingConfig={"MaximumConcurrency": 6})
    wait_for("the queue to empty", lambda: counts(moto, url) == (0, 0), timeout=120)
    got = collections.Counter(r["body"] for r in records(server, "sqs-throttled"))
    assert got == {f"m{j}": 1 for j in range(30)}, got


def test_disabling_stops_the_poller_and_enabling_resumes_it(server, moto):
    url, arn = queue(moto, "toggle", VisibilityTimeout=5)
    create_function(server, "sqs-toggle", "app.record")
    lam = server.client()
    m = lam.create_event_source_mapping(FunctionName="sqs-toggle", EventSourceArn=arn)
    c = sqs(moto)
    c.send_message(QueueUrl=url, MessageBody="first")
    wait_for("the first record", lambda: records(server, "sqs-toggle"), timeout=60)
    r = lam.update_event_source_mapping(UUID=m["UUID"], Enabled=False)
    assert r["State"] == "Disabling"
    wait_for("Disabled", lambda: lam.get_event_source_mapping(UUID=m["UUID"])["State"] == "Disabled")
    c.send_message(QueueUrl=url, MessageBody="second")
    # The message stays in the queue while the mapping is disabled.
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        assert [x["body"] for x in records(server, "sqs-toggle")] == ["first"]
        time.sleep(0.2)
    # Still in the queue (a long poll cut short by the stop may hold it
    # invisible until its visibility timeout ends: it is not deleted).
    assert sum(counts(moto, url)) == 1
    lam.update_event_source_mapping(UUID=m["UUID"], Enabled=True)
    wait_for("the second record", lambda: len(records(server, "sqs-toggle")) == 2, timeout=60)


def test_crash_in_the_middle_of_batches_loses_nothing(moto, tmp_path):
    """SIGKILL while batches are in flight; after a restart on the same data
    directory every message is delivered (duplicates only as at-least-once
    allows: batches in flight at the kill come back after the visibility
    timeout). The function appends what it receives to a file, fsynced
    before it returns, so the count does not depend on the server's own
    log surviving the kill: this server runs functions unsandboxed."""
    out = tmp_path / "delivered.txt"
    s = Server(extra_args=("--insecure-no-sandbox",), env=moto_env(moto))
    try:
        url, arn = queue(moto, "crash", VisibilityTimeout=3)
        create_function(s, "sqs-crash", "app.append",
                        Environment={"Variables": {"OUT": str(out), "SLEEP": "0.05"}})
        c = sqs(moto)
        total = 300
        for i in range(0, total, 10):
            c.send_message_batch(QueueUrl=url, Entries=[
                {"Id": str(j), "MessageBody": f"m{j}"} for j in range(i, i + 10)])
        s.client().create_event_source_mapping(
            FunctionName="sqs-crash", EventSourceArn=arn, BatchSize=10,
            ScalingConfig={"MaximumConcurrency": 4})

        def delivered():
            return out.read_text().split() if out.exists() else []

        wait_for("some batches", lambda: len(delivered()) >= 60, timeout=90)
        s.proc.send_signal(signal.SIGKILL)
        s.proc.wait()
        at_kill = len(delivered())
        assert at_kill < total, "every batch was done before the kill"
        s.restart()
        wait_for("the queue to empty", lambda: counts(moto, url) == (0, 0), timeout=180)
        got = collections.Counter(delivered())
        missing = {f"m{j}" for j in range(total)} - set(got)
        assert not missing, f"lost {len(missing)}: {sorted(missing)[:10]}"
        duplicates = sum(n - 1 for n in got.values())
        print(f"\nSQS crash test: {total} sent, {at_kill} delivered before the kill, "
              f"{len(got)} distinct delivered, {duplicates} duplicates")
    finally:
        s.stop()


def test_filter_criteria_drop_and_delete_what_no_filter_matches(server, moto):
    url, arn = queue(moto, "filtered")
    create_function(server, "sqs-filtered", "app.record")
    c = sqs(moto)
    bodies = [json.dumps({"kind": "keep", "n": 1}), json.dumps({"kind": "drop", "n": 2}),
              "text-keep", "other text", json.dumps({"kind": "keep", "n": 3, "size": 12})]
    for b in bodies:
        c.send_message(QueueUrl=url, MessageBody=b)
    out = server.cli(
        "lambda", "create-event-source-mapping", "--function-name", "sqs-filtered",
        "--event-source-arn", arn, "--filter-criteria",
        json.dumps({"Filters": [{"Pattern": json.dumps({"body": {"kind": ["keep"]}})},
                                {"Pattern": json.dumps({"body": [{"prefix": "text-"}]})}]}))
    mapping = json.loads(out.stdout)
    assert len(mapping["FilterCriteria"]["Filters"]) == 2
    wait_for("the queue to empty", lambda: counts(moto, url) == (0, 0), timeout=60)
    got = sorted(r["body"] for r in records(server, "sqs-filtered"))
    assert got == sorted([bodies[0], bodies[2], bodies[4]])

    # Lambda's ESM metrics, and `lambent mappings`.
    uuid = mapping["UUID"]

    def metric(name):
        with urllib.request.urlopen(server.metrics_endpoint + "/metrics", timeout=10) as r:
            text = r.read().decode()
        m = re.search(name + r'\{[^}]*uuid="' + uuid + r'"[^}]*\} (\d+)', text)
        return int(m.group(1)) if m else None

    assert metric("lambent_esm_polled_events_total") == 5
    assert metric("lambent_esm_filtered_out_events_total") == 2
    assert metric("lambent_esm_invoked_events_total") == 3
    assert metric("lambent_esm_failed_invoke_events_total") == 0
    wait_for("the backlog gauge at 0", lambda: metric("lambent_esm_backlog") == 0, timeout=30)
    binary = os.environ.get("LAMBENT_BIN", str(ROOT / "target/debug/lambent"))
    env = dict(os.environ, AWS_ACCESS_KEY_ID="AKIAPYTESTACCOUNTAAA",
               AWS_SECRET_ACCESS_KEY="py/secret+a", AWS_DEFAULT_REGION="us-east-1")
    shown = subprocess.run([binary, "mappings", "--endpoint-url", server.endpoint], env=env,
                           capture_output=True, text=True, timeout=30)
    assert shown.returncode == 0, shown.stderr
    [row] = [line.split() for line in shown.stdout.splitlines() if line.startswith(uuid)]
    assert row[1:6] == ["Enabled", "0", "3", "0", "2"], shown.stdout
    assert row[6] == "sqs-filtered" and row[7] == arn
    bad = server.cli("lambda", "create-event-source-mapping", "--function-name", "sqs-filtered",
                     "--event-source-arn", arn.replace("filtered", "other"), "--filter-criteria",
                     json.dumps({"Filters": [{"Pattern": json.dumps({"body": {"kind": []}})}]}),
                     check=False)
    assert bad.returncode != 0
    assert "InvalidParameterValueException" in bad.stderr
    assert "Invalid filter pattern definition." in bad.stderr
