"""Amazon MQ (RabbitMQ) event source mappings against the machine's RabbitMQ
(127.0.0.1:5672, guest/guest), driven with pika. The server resolves the
broker ARN and the BASIC_AUTH secret ARN through its brokers file; the aws
CLI creates the mapping exactly as it would for Amazon MQ.

Covered: Lambda's rmqMessagesByQueue event, acknowledgement after success,
a failed batch returned to the queue (and redelivered), filters on the
base64 `data`, the brokers file's refusals, and a SIGKILL crash test."""

import base64
import collections
import json
import signal
import time
import uuid

import pika
import pytest

from conftest import ROLE, Server, make_zip, wait_for

BROKER = "arn:aws:mq:us-east-1:123456789012:broker:local:b-0001"
SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:rabbit"

APP = r'''
import base64, json, os, time

def each(event):
    for key, msgs in event["rmqMessagesByQueue"].items():
        for m in msgs:
            yield key, m

def shape(event, context):
    print("EVENT " + json.dumps(event))

def first_fails(event, context):
    # Fails a batch that holds a message delivered for the first time.
    for key, m in each(event):
        print("RECORD " + json.dumps({"body": base64.b64decode(m["data"]).decode(),
                                      "redelivered": m["redelivered"]}))
    if any(not m["redelivered"] for _, m in each(event)):
        raise RuntimeError("first delivery fails")

def record(event, context):
    for key, m in each(event):
        print("RECORD " + json.dumps({"body": base64.b64decode(m["data"]).decode(),
                                      "redelivered": m["redelivered"]}))

def append(event, context):
    with open(os.environ["OUT"], "a") as f:
        for _, m in each(event):
            f.write(base64.b64decode(m["data"]).decode() + "\n")
        f.flush()
        os.fsync(f.fileno())
    time.sleep(float(os.environ.get("SLEEP", "0")))
'''


def brokers_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("brokers") / "brokers.toml"
    path.write_text(f'[[broker]]\narn = "{BROKER}"\nurl = "amqp://127.0.0.1:5672"\n\n'
                    f'[[secret]]\narn = "{SECRET}"\nusername = "guest"\npassword = "guest"\n')
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(extra_args=("--brokers-file", str(brokers_file(tmp_path_factory))))
    yield s
    s.stop()


def channel():
    conn = pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", 5672, "/", pika.PlainCredentials("guest", "guest")))
    return conn, conn.channel()


def new_queue():
    name = "lambent-test-" + uuid.uuid4().hex[:10]
    conn, ch = channel()
    ch.queue_declare(queue=name, durable=False, auto_delete=False)
    conn.close()
    return name


def publish(queue, bodies, **props):
    conn, ch = channel()
    for b in bodies:
        ch.basic_publish("", queue, b.encode(), pika.BasicProperties(**props))
    conn.close()


def depth(queue):
    """(ready, consumers) of a queue."""
    conn, ch = channel()
    q = ch.queue_declare(queue=queue, passive=True)
    conn.close()
    return q.method.message_count


def delete_queue(queue):
    conn, ch = channel()
    ch.queue_delete(queue=queue)
    conn.close()


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


def mq_mapping(server, function, queue, *extra):
    out = server.cli("lambda", "create-event-source-mapping", "--function-name", function,
                     "--event-source-arn", BROKER, "--queues", queue,
                     "--source-access-configurations",
                     f"Type=BASIC_AUTH,URI={SECRET}", "Type=VIRTUAL_HOST,URI=/", *extra)
    return json.loads(out.stdout)


def test_rmq_event_shape_and_ack_after_success(server):
    q = new_queue()
    create_function(server, "rmq-shape", "app.shape")
    publish(q, ['{"pizza": "margherita"}'], content_type="text/plain", delivery_mode=2,
            priority=3, headers={"h1": "v1", "n": 10}, message_id="m-1", timestamp=2021,
            correlation_id="c-1", app_id="orders")
    m = mq_mapping(server, "rmq-shape", q, "--batch-size", "10")
    assert m["State"] == "Creating"
    assert m["EventSourceArn"] == BROKER
    assert m["Queues"] == [q]
    assert m["LastProcessingResult"] == "No records processed"
    assert {c["Type"] for c in m["SourceAccessConfigurations"]} == {"BASIC_AUTH", "VIRTUAL_HOST"}
    events = wait_for("the RabbitMQ event", lambda: lines(server, "rmq-shape", "EVENT"), timeout=60)
    e = events[0]
    assert e["eventSource"] == "aws:rmq"
    assert e["eventSourceArn"] == BROKER
    assert list(e["rmqMessagesByQueue"]) == [f"{q}::/"]
    [msg] = e["rmqMessagesByQueue"][f"{q}::/"]
    assert base64.b64decode(msg["data"]) == b'{"pizza": "margherita"}'
    assert msg["redelivered"] is False
    p = msg["basicProperties"]
    assert p["contentType"] == "text/plain"
    assert p["deliveryMode"] == 2
    assert p["priority"] == 3
    assert p["headers"] == {"h1": {"bytes": list(b"v1")}, "n": 10}
    assert p["messageId"] == "m-1"
    assert p["correlationId"] == "c-1"
    assert p["appId"] == "orders"
    assert p["timestamp"] == "Jan 1, 1970, 12:33:41 AM"
    assert p["bodySize"] == len(b'{"pizza": "margherita"}')
    for k in ("contentEncoding", "replyTo", "expiration", "type", "userId", "clusterId"):
        assert p[k] is None, k
    wait_for("the queue to empty", lambda: depth(q) == 0, timeout=30)
    wait_for("LastProcessingResult OK", lambda: server.client().get_event_source_mapping(
        UUID=m["UUID"])["LastProcessingResult"] == "OK")
    server.client().delete_event_source_mapping(UUID=m["UUID"])
    # Acknowledged: nothing comes back once the consumer has gone.
    time.sleep(1)
    assert depth(q) == 0
    delete_queue(q)


def test_a_failed_batch_goes_back_to_the_queue(server):
    q = new_queue()
    create_function(server, "rmq-fail", "app.first_fails")
    publish(q, ["one", "two", "three"])
    mq_mapping(server, "rmq-fail", q, "--batch-size", "10", "--maximum-batching-window-in-seconds", "1")
    wait_for("the redelivered messages",
             lambda: {r["body"] for r in lines(server, "rmq-fail", "RECORD") if r["redelivered"]}
             == {"one", "two", "three"}, timeout=60)
    first = [r for r in lines(server, "rmq-fail", "RECORD") if not r["redelivered"]]
    assert sorted(r["body"] for r in first) == ["one", "three", "two"]
    wait_for("the queue to empty", lambda: depth(q) == 0, timeout=30)
    delete_queue(q)


def test_filters_match_the_decoded_data(server):
    q = new_queue()
    create_function(server, "rmq-filter", "app.record")
    publish(q, [json.dumps({"size": "large"}), json.dumps({"size": "small"}), "plain"])
    mq_mapping(server, "rmq-filter", q, "--filter-criteria",
               json.dumps({"Filters": [{"Pattern": json.dumps({"data": {"size": ["large"]}})}]}))
    wait_for("the queue to empty", lambda: depth(q) == 0, timeout=60)
    time.sleep(0.5)
    got = [r["body"] for r in lines(server, "rmq-filter", "RECORD")]
    assert got == [json.dumps({"size": "large"})]
    delete_queue(q)


def test_unknown_brokers_and_secrets_are_refused(server):
    create_function(server, "rmq-refused", "app.record")
    bad = server.cli("lambda", "create-event-source-mapping", "--function-name", "rmq-refused",
                     "--event-source-arn", BROKER.replace("b-0001", "b-9999"), "--queues", "q",
                     "--source-access-configurations", f"Type=BASIC_AUTH,URI={SECRET}",
                     check=False)
    assert bad.returncode != 0
    assert "InvalidParameterValueException" in bad.stderr
    assert "is not configured on this server" in bad.stderr
    bad = server.cli("lambda", "create-event-source-mapping", "--function-name", "rmq-refused",
                     "--event-source-arn", BROKER, "--queues", "q",
                     "--source-access-configurations", f"Type=BASIC_AUTH,URI={SECRET}x",
                     check=False)
    assert "secret" in bad.stderr and "is not configured on this server" in bad.stderr
    bad = server.cli("lambda", "create-event-source-mapping", "--function-name", "rmq-refused",
                     "--event-source-arn", BROKER, "--queues", "q", check=False)
    assert "Required 'sourceAccessConfigurations' parameter is missing." in bad.stderr


def test_crash_in_the_middle_of_batches_loses_nothing(tmp_path, tmp_path_factory):
    """SIGKILL while batches are in flight: the broker requeues what was not
    acknowledged, the restarted server consumes it. The function appends to
    a file (fsynced), so this server runs functions unsandboxed."""
    out = tmp_path / "delivered.txt"
    s = Server(extra_args=("--insecure-no-sandbox", "--brokers-file",
                           str(brokers_file(tmp_path_factory))))
    q = new_queue()
    try:
        create_function(s, "rmq-crash", "app.append",
                        Environment={"Variables": {"OUT": str(out), "SLEEP": "0.05"}})
        total = 300
        publish(q, [f"m{j}" for j in range(total)], delivery_mode=2)
        mq_mapping(s, "rmq-crash", q, "--batch-size", "10")

        def delivered():
            return out.read_text().split() if out.exists() else []

        wait_for("some batches", lambda: len(delivered()) >= 60, timeout=90)
        s.proc.send_signal(signal.SIGKILL)
        s.proc.wait()
        at_kill = len(delivered())
        assert at_kill < total, "every batch was done before the kill"
        s.restart()
        wait_for("every message", lambda: len(set(delivered())) == total and depth(q) == 0,
                 timeout=180)
        got = collections.Counter(delivered())
        duplicates = sum(n - 1 for n in got.values())
        print(f"\nRabbitMQ crash test: {total} sent, {at_kill} delivered before the kill, "
              f"{len(got)} distinct delivered, {duplicates} duplicates")
    finally:
        s.stop()
        delete_queue(q)
