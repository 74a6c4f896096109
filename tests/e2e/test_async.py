"""Asynchronous invocation through boto3, the aws CLI and `lambent queue`:
202 after a durable enqueue, Lambda's retries and event age, destination
records, dead letters, the EventInvokeConfig API, and a crash test that kills
the server with SIGKILL while events arrive.

The server runs with --async-delay-scale 0.01, so Lambda's 60 s and 120 s
retry delays become 0.6 s and 1.2 s (and a 60 s maximum event age 0.6 s)."""

import concurrent.futures
import http.server
import json
import os
import random
import re
import signal
import subprocess
import threading
import time
import urllib.request

import botocore.exceptions
import pytest

from conftest import ACCOUNT_A, ROLE, ROOT, Server, make_zip, wait_for

SCALE = 0.01

APP = r'''
import json, os, time
def ok(event, context):
    return {"ok": True, "got": event, "request_id": context.aws_request_id}
def fail(event, context):
    print("attempt", context.aws_request_id)
    raise RuntimeError("boom " + str(event.get("id")))
def slow(event, context):
    time.sleep(event.get("seconds", 1))
    return "slept"
def record(event, context):
    print("RECORD " + json.dumps(event, sort_keys=True))
    return None
def fail_version(event, context):
    raise RuntimeError("version " + os.environ["AWS_LAMBDA_FUNCTION_VERSION"])
'''


class Collector:
    """An HTTP endpoint that keeps every POST it receives."""

    def __init__(self):
        self.lock = threading.Lock()
        self.posts = []
        collector = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("content-length", 0))
                body = self.rfile.read(n)
                with collector.lock:
                    collector.posts.append(
                        {"path": self.path,
                         "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body,
                         "at": time.time()})
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def at(self, path):
        with self.lock:
            return [p for p in self.posts if p["path"] == path]

    def records(self, path):
        return [json.loads(p["body"]) for p in self.at(path)]

    def wait(self, path, n=1, timeout=30):
        return wait_for(f"{n} POST(s) to {path}",
                        lambda: len(self.at(path)) >= n and self.at(path), timeout)

    def close(self):
        self.httpd.shutdown()


@pytest.fixture(scope="module")
def server():
    s = Server(extra_args=("--async-delay-scale", str(SCALE)))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def hooks():
    c = Collector()
    yield c
    c.close()


def create(c, name, handler, **extra):
    c.create_function(FunctionName=name, Runtime="python3.11", Role=ROLE, Handler=handler,
                      Code={"ZipFile": make_zip({"app.py": (APP, 0o644)})}, Timeout=10, **extra)
    return name


def arn(name):
    return f"arn:aws:lambda:us-east-1:{ACCOUNT_A}:function:{name}"


def start_lines(c, name, request_id):
    """Timestamps (ms) of the START lines of one request id."""
    out = []
    kw = {"logGroupName": f"/aws/lambda/{name}", "filterPattern": f'"START RequestId: {request_id}"'}
    logs = c
    while True:
        try:
            r = logs.filter_log_events(**kw)
        except logs.exceptions.ResourceNotFoundException:
            return []  # nothing stored yet
        out += [e["timestamp"] for e in r["events"]]
        if not r.get("nextToken"):
            return sorted(out)
        kw["nextToken"] = r["nextToken"]


def test_event_returns_202_and_sends_the_success_record(server, hooks):
    c = server.client()
    create(c, "async-ok", "app.ok")
    c.put_function_event_invoke_config(
        FunctionName="async-ok",
        DestinationConfig={"OnSuccess": {"Destination": hooks.url + "/ok"}})
    r = c.invoke(FunctionName="async-ok", InvocationType="Event", Payload=b'{"n": 1}')
    assert r["StatusCode"] == 202
    assert r["Payload"].read() == b""
    assert "ExecutedVersion" not in r and "FunctionError" not in r
    headers = r["ResponseMetadata"]["HTTPHeaders"]
    assert "content-type" not in headers
    request_id = r["ResponseMetadata"]["RequestId"]
    post = hooks.wait("/ok")[0]
    assert post["headers"]["content-type"] == "application/json"
    rec = json.loads(post["body"])
    assert list(rec) == ["version", "timestamp", "requestContext", "requestPayload",
                         "responseContext", "responsePayload"]
    assert rec["version"] == "1.0"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", rec["timestamp"])
    assert rec["requestContext"] == {
        "requestId": request_id, "functionArn": arn("async-ok") + ":$LATEST",
        "condition": "Success", "approximateInvokeCount": 1}
    assert rec["requestPayload"] == {"n": 1}
    assert rec["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST"}
    assert rec["responsePayload"] == {"ok": True, "got": {"n": 1}, "request_id": request_id}


def test_invoke_async_and_the_cli(server, hooks):
    c = server.client()
    create(c, "async-legacy", "app.ok")
    c.put_function_event_invoke_config(
        FunctionName="async-legacy",
        DestinationConfig={"OnSuccess": {"Destination": hooks.url + "/legacy"}})
    r = c.invoke_async(FunctionName="async-legacy", InvokeArgs=b'{"legacy": true}')
    assert r["Status"] == 202
    out = json.loads(server.cli("lambda", "invoke", "--function-name", "async-legacy",
                                "--invocation-type", "Event",
                                "--payload", '{"cli": 1}', "/dev/null").stdout)
    assert out == {"StatusCode": 202}
    hooks.wait("/legacy", 2)
    payloads = sorted(json.dumps(r["requestPayload"]) for r in hooks.records("/legacy"))
    assert payloads == ['{"cli": 1}', '{"legacy": true}']


def test_dry_run_queues_nothing(server, hooks):
    c = server.client()
    create(c, "async-dry", "app.ok")
    c.put_function_event_invoke_config(
        FunctionName="async-dry",
        DestinationConfig={"OnSuccess": {"Destination": hooks.url + "/dry"}})
    r = c.invoke(FunctionName="async-dry", InvocationType="DryRun", Payload=b"{}")
    assert r["StatusCode"] == 204
    time.sleep(0.5)
    assert hooks.at("/dry") == []
    assert server.status()["AsyncQueue"] == []
    logs = server.client(service="logs")
    try:
        streams = logs.describe_log_streams(logGroupName="/aws/lambda/async-dry")["logStreams"]
    except logs.exceptions.ResourceNotFoundException:
        streams = []
    assert streams == [], "the function ran"


def test_function_errors_retry_twice_one_then_two_minutes_apart(hooks):
    """Lambda's schedule: the first retry 60 s after the first attempt, the
    second 120 s after that. A server of its own runs the schedule at a scale
    where the slack each gap is allowed (a late start on a busy machine) is
    less than half the 60 s that tells the gaps apart, so 120 s then 120 s, or
    60 s then 60 s, fails."""
    from conftest import TIMEOUT_SCALE, load_scale
    scale = 0.04 * max(TIMEOUT_SCALE, load_scale())
    s = Server(extra_args=("--async-delay-scale", str(scale)))
    try:
        c = s.client()
        create(c, "async-fail", "app.fail")
        c.put_function_event_invoke_config(
            FunctionName="async-fail",
            DestinationConfig={"OnFailure": {"Destination": hooks.url + "/fail"}})
        r = c.invoke(FunctionName="async-fail", InvocationType="Event", Payload=b'{"id": 7}')
        request_id = r["ResponseMetadata"]["RequestId"]
        rec = json.loads(hooks.wait("/fail", timeout=60 + 180 * scale)[0]["body"])
        assert rec["requestContext"] == {
            "requestId": request_id, "functionArn": arn("async-fail") + ":$LATEST",
            "condition": "RetriesExhausted", "approximateInvokeCount": 3}
        assert rec["requestPayload"] == {"id": 7}
        assert rec["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST",
                                          "functionError": "Unhandled"}
        assert rec["responsePayload"]["errorMessage"] == "boom 7"
        assert rec["responsePayload"]["errorType"] == "RuntimeError"
        # Three attempts with the same request id, 60 s and 120 s apart (scaled).
        logs = s.client(service="logs")
        starts = wait_for("three START lines",
                          lambda: len(start_lines(logs, "async-fail", request_id)) == 3
                          and start_lines(logs, "async-fail", request_id))
        gaps = [(b - a) / 1000 for a, b in zip(starts, starts[1:])]
        print(f"gaps {gaps} at delay scale {scale} (Lambda's 60 s and 120 s: {60 * scale:.2f} s, {120 * scale:.2f} s)")
        # Never early; late by less than half the 60 s between the candidates.
        assert 60 * scale * 0.99 <= gaps[0] < 90 * scale, gaps
        assert 120 * scale * 0.99 <= gaps[1] < 150 * scale, gaps
    finally:
        s.stop()


def test_maximum_retry_attempts_zero_and_event_age(server, hooks):
    c = server.client()
    create(c, "async-noretry", "app.fail")
    c.put_function_event_invoke_config(
        FunctionName="async-noretry", MaximumRetryAttempts=0,
        DestinationConfig={"OnFailure": {"Destination": hooks.url + "/noretry"}})
    c.invoke(FunctionName="async-noretry", InvocationType="Event", Payload=b'{"id": 1}')
    rec = json.loads(hooks.wait("/noretry")[0]["body"])
    assert rec["requestContext"]["condition"] == "RetriesExhausted"
    assert rec["requestContext"]["approximateInvokeCount"] == 1

    # As on AWS: with a 60 s maximum age, the 60 s retry would come too late,
    # so the first failure ends it; with 90 s, one retry is made.
    create(c, "async-age", "app.fail")
    for age, path, count in ((60, "/age60", 1), (90, "/age90", 2)):
        c.put_function_event_invoke_config(
            FunctionName="async-age", MaximumEventAgeInSeconds=age,
            DestinationConfig={"OnFailure": {"Destination": hooks.url + path}})
        c.invoke(FunctionName="async-age", InvocationType="Event", Payload=b'{"id": 2}')
        rec = json.loads(hooks.wait(path)[0]["body"])
        assert rec["requestContext"]["condition"] == "EventAgeExceeded", rec
        assert rec["requestContext"]["approximateInvokeCount"] == count
        assert rec["responseContext"]["functionError"] == "Unhandled"
        assert rec["responsePayload"]["errorMessage"] == "boom 2"


def test_dead_letters_carry_the_event_and_aws_attributes(server, hooks):
    c = server.client()
    create(c, "async-dlq", "app.fail", DeadLetterConfig={"TargetArn": hooks.url + "/dlq"})
    assert c.get_function_configuration(FunctionName="async-dlq")["DeadLetterConfig"] == {
        "TargetArn": hooks.url + "/dlq"}
    c.put_function_event_invoke_config(FunctionName="async-dlq", MaximumRetryAttempts=1)
    body = b'{"id":  "spaces kept"}'
    r = c.invoke(FunctionName="async-dlq", InvocationType="Event", Payload=body)
    post = hooks.wait("/dlq")[0]
    assert post["body"] == body
    assert post["headers"]["lambda-dlq-requestid"] == r["ResponseMetadata"]["RequestId"]
    assert post["headers"]["lambda-dlq-errorcode"] == "200"
    assert post["headers"]["lambda-dlq-errormessage"] == "boom spaces kept"
    # `{}` changes nothing; an empty TargetArn removes the target.
    c.update_function_configuration(FunctionName="async-dlq", DeadLetterConfig={})
    wait_for("update", lambda: c.get_function_configuration(
        FunctionName="async-dlq")["LastUpdateStatus"] == "Successful")
    assert "DeadLetterConfig" in c.get_function_configuration(FunctionName="async-dlq")
    c.update_function_configuration(FunctionName="async-dlq", DeadLetterConfig={"TargetArn": ""})
    assert "DeadLetterConfig" not in c.get_function_configuration(FunctionName="async-dlq")
    for bad, code in ((arn("no-such-function"), "InvalidParameterValueException"),
                      ("arn:aws:sqs:us-east-1:111111111111:q", "InvalidParameterValueException"),
                      ("not-an-arn", "ValidationException")):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            c.update_function_configuration(FunctionName="async-dlq",
                                            DeadLetterConfig={"TargetArn": bad})
        assert e.value.response["Error"]["Code"] == code, bad


def test_the_version_that_ran_decides_where_its_dead_letter_goes(server, hooks):
    """Behind a weighted alias each attempt resolves once: the dead letter
    goes to the target of the version that ran, never of another one."""
    c = server.client()
    name = "async-canary"
    create(c, name, "app.fail_version", DeadLetterConfig={"TargetArn": hooks.url + "/dlq-v1"})
    assert c.publish_version(FunctionName=name)["Version"] == "1"
    c.update_function_configuration(FunctionName=name,
                                    DeadLetterConfig={"TargetArn": hooks.url + "/dlq-v2"})
    wait_for("update", lambda: c.get_function_configuration(
        FunctionName=name)["LastUpdateStatus"] == "Successful")
    assert c.publish_version(FunctionName=name)["Version"] == "2"
    c.create_alias(FunctionName=name, Name="live", FunctionVersion="1",
                   RoutingConfig={"AdditionalVersionWeights": {"2": 0.5}})
    c.put_function_event_invoke_config(FunctionName=name, Qualifier="live",
                                       MaximumRetryAttempts=0)
    events = 24
    for i in range(events):
        c.invoke(FunctionName=name, Qualifier="live", InvocationType="Event",
                 Payload=json.dumps({"i": i}).encode())
    wait_for(f"{events} dead letters",
             lambda: len(hooks.at("/dlq-v1")) + len(hooks.at("/dlq-v2")) >= events, 60)
    for version in ("1", "2"):
        posts = hooks.at(f"/dlq-v{version}")
        # Both versions ran (each event picks version 2 with probability 0.5).
        assert posts, f"no event ran version {version}"
        for p in posts:
            assert p["headers"]["lambda-dlq-errormessage"] == f"version {version}", (
                f"a dead letter of version {p['headers']['lambda-dlq-errormessage']} "
                f"went to version {version}'s target")


def test_a_function_destination_receives_the_record_as_its_event(server):
    c = server.client()
    create(c, "async-src", "app.ok")
    create(c, "async-sink", "app.record")
    c.put_function_event_invoke_config(
        FunctionName="async-src",
        DestinationConfig={"OnSuccess": {"Destination": arn("async-sink")}})
    r = c.invoke(FunctionName="async-src", InvocationType="Event", Payload=b'{"to": "sink"}')
    request_id = r["ResponseMetadata"]["RequestId"]
    logs = server.client(service="logs")

    def record():
        try:
            ev = logs.filter_log_events(logGroupName="/aws/lambda/async-sink",
                                        filterPattern="RECORD")["events"]
        except logs.exceptions.ResourceNotFoundException:
            return None
        return ev and json.loads(ev[0]["message"].split("RECORD ", 1)[1])

    rec = wait_for("the sink's record", record)
    assert rec["requestContext"]["requestId"] == request_id
    assert rec["requestContext"]["condition"] == "Success"
    assert rec["requestPayload"] == {"to": "sink"}


def test_destinations_and_dead_letters_stay_within_the_account(server):
    """Another account's function is refused as a destination or a dead
    letter target, in the same words as a function that does not exist (the
    other account's functions are not revealed), and nothing is stored."""
    from conftest import ACCOUNT_B, KEY_B
    a, b = server.client(), server.client(key=KEY_B)
    b.create_function(FunctionName="b-sink", Runtime="python3.11", Role=f"arn:aws:iam::{ACCOUNT_B}:role/r",
                      Handler="app.record", Code={"ZipFile": make_zip({"app.py": (APP, 0o644)})})
    theirs = f"arn:aws:lambda:us-east-1:{ACCOUNT_B}:function:b-sink"
    create(a, "a-source", "app.fail")
    for kind in ("OnSuccess", "OnFailure"):
        with pytest.raises(a.exceptions.InvalidParameterValueException) as e:
            a.put_function_event_invoke_config(FunctionName="a-source",
                                               DestinationConfig={kind: {"Destination": theirs}})
        assert e.value.response["Error"]["Message"] == f"The destination ARN {theirs} is invalid.", kind
    with pytest.raises(a.exceptions.ResourceNotFoundException):
        a.get_function_event_invoke_config(FunctionName="a-source")
    with pytest.raises(a.exceptions.InvalidParameterValueException) as e:
        a.update_function_configuration(FunctionName="a-source", DeadLetterConfig={"TargetArn": theirs})
    assert e.value.response["Error"]["Message"].startswith(
        f"The provided dead letter target {theirs} is invalid"), e.value.response
    assert "DeadLetterConfig" not in a.get_function_configuration(FunctionName="a-source")
    with pytest.raises(a.exceptions.InvalidParameterValueException):
        create(a, "a-with-dlq", "app.fail", DeadLetterConfig={"TargetArn": theirs})
    with pytest.raises(a.exceptions.ResourceNotFoundException):
        a.get_function(FunctionName="a-with-dlq")
    # A function of its own account is a valid target.
    create(a, "a-sink", "app.record")
    put = a.put_function_event_invoke_config(FunctionName="a-source",
                                             DestinationConfig={"OnFailure": {"Destination": arn("a-sink")}})
    assert put["DestinationConfig"]["OnFailure"] == {"Destination": arn("a-sink")}


def test_event_invoke_config_api(server, hooks):
    c = server.client()
    create(c, "cfg-fn", "app.ok")
    E = botocore.exceptions.ClientError

    def err(call, **kw):
        with pytest.raises(E) as e:
            call(**kw)
        return e.value.response["Error"]["Code"], e.value.response["Error"]["Message"]

    assert err(c.get_function_event_invoke_config, FunctionName="cfg-fn") == (
        "ResourceNotFoundException",
        f"The function {arn('cfg-fn')}:$LATEST doesn't have an EventInvokeConfig")
    assert err(c.put_function_event_invoke_config, FunctionName="nope", MaximumRetryAttempts=1) == (
        "ResourceNotFoundException", "The function doesn't exist.")
    assert err(c.put_function_event_invoke_config, FunctionName="cfg-fn") == (
        "InvalidParameterValueException",
        "You must specify at least one of error handling or destination setting.")
    assert err(c.update_function_event_invoke_config, FunctionName="cfg-fn",
               MaximumRetryAttempts=1)[0] == "ResourceNotFoundException"
    assert err(c.put_function_event_invoke_config, FunctionName="cfg-fn",
               DestinationConfig={"OnFailure": {"Destination": arn("nope")}}) == (
        "InvalidParameterValueException", f"The destination ARN {arn('nope')} is invalid.")
    assert err(c.put_function_event_invoke_config, FunctionName="cfg-fn",
               DestinationConfig={"OnSuccess": {"Destination": arn("cfg-fn")}}) == (
        "InvalidParameterValueException",
        "You can't specify the function as a destination for itself.")
    code, msg = err(c.put_function_event_invoke_config, FunctionName="cfg-fn",
                    DestinationConfig={"OnFailure": {"Destination": "arn:aws:_-/!lambda:x"}})
    assert code == "ValidationException" and "destinationConfig.onFailure.destination" in msg
    assert err(c.put_function_event_invoke_config, FunctionName="cfg-fn", Qualifier="7",
               MaximumRetryAttempts=1) == ("ResourceNotFoundException", "The function doesn't exist.")

    put = c.put_function_event_invoke_config(FunctionName="cfg-fn", MaximumRetryAttempts=2,
                                             MaximumEventAgeInSeconds=120)
    assert put["FunctionArn"] == arn("cfg-fn") + ":$LATEST"
    assert put["DestinationConfig"] == {"OnSuccess": {}, "OnFailure": {}}
    assert abs(put["LastModified"].timestamp() - time.time()) < 60
    # Put replaces; update merges.
    put = c.put_function_event_invoke_config(FunctionName="cfg-fn", MaximumRetryAttempts=0)
    assert "MaximumEventAgeInSeconds" not in put
    upd = c.update_function_event_invoke_config(
        FunctionName="cfg-fn", MaximumEventAgeInSeconds=3600,
        DestinationConfig={"OnFailure": {"Destination": hooks.url + "/never"}})
    assert (upd["MaximumRetryAttempts"], upd["MaximumEventAgeInSeconds"]) == (0, 3600)
    assert upd["DestinationConfig"]["OnFailure"] == {"Destination": hooks.url + "/never"}
    got = c.get_function_event_invoke_config(FunctionName=arn("cfg-fn"), Qualifier="$LATEST")
    assert got["MaximumEventAgeInSeconds"] == 3600
    listed = c.list_function_event_invoke_configs(FunctionName="cfg-fn")
    assert [x["FunctionArn"] for x in listed["FunctionEventInvokeConfigs"]] == [
        arn("cfg-fn") + ":$LATEST"]
    cli = json.loads(server.cli("lambda", "get-function-event-invoke-config",
                                "--function-name", "cfg-fn").stdout)
    assert cli["MaximumRetryAttempts"] == 0
    assert c.delete_function_event_invoke_config(FunctionName="cfg-fn")[
        "ResponseMetadata"]["HTTPStatusCode"] == 204
    assert err(c.delete_function_event_invoke_config, FunctionName="cfg-fn")[0] == \
        "ResourceNotFoundException"
    assert c.list_function_event_invoke_configs(FunctionName="cfg-fn")[
        "FunctionEventInvokeConfigs"] == []


def test_event_payload_limit_and_missing_function(server):
    c = server.client()
    create(c, "async-big", "app.ok")
    big = b'"' + b"x" * (1024 * 1024) + b'"'
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.invoke(FunctionName="async-big", InvocationType="Event", Payload=big)
    assert e.value.response["Error"]["Code"] == "RequestEntityTooLargeException"
    assert e.value.response["Error"]["Message"] == (
        f"{len(big)} byte payload is too large for the Event invocation type (limit 1048576 bytes)")
    with pytest.raises(c.exceptions.ResourceNotFoundException):
        c.invoke(FunctionName="async-nope", InvocationType="Event", Payload=b"{}")


def test_queue_depth_shows_in_the_cli_and_metrics(server, hooks):
    c = server.client()
    create(c, "async-queued", "app.fail")
    c.put_function_event_invoke_config(
        FunctionName="async-queued",
        DestinationConfig={"OnFailure": {"Destination": hooks.url + "/queued"}})
    c.invoke(FunctionName="async-queued", InvocationType="Event", Payload=b'{"id": 3}')
    binary = os.environ.get("LAMBENT_BIN", str(ROOT / "target/debug/lambent"))
    env = dict(os.environ, AWS_ACCESS_KEY_ID="AKIAPYTESTACCOUNTAAA",
               AWS_SECRET_ACCESS_KEY="py/secret+a", AWS_DEFAULT_REGION="us-east-1")
    out = subprocess.run([binary, "queue", "--endpoint-url", server.endpoint], env=env,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    row = [l for l in out.stdout.splitlines() if l.startswith("async-queued")]
    assert row and row[0].split()[1] == "1", out.stdout
    with urllib.request.urlopen(server.metrics_endpoint + "/metrics", timeout=10) as r:
        metrics = r.read().decode()
    assert re.search(r'lambent_async_queue_depth\{account="111111111111",region="us-east-1",'
                     r'function="async-queued"\} 1', metrics), metrics
    assert "lambent_async_events_received_total" in metrics
    hooks.wait("/queued")
    wait_for("the queue to drain", lambda: all(
        q["FunctionName"] != "async-queued" for q in server.status()["AsyncQueue"]))


def test_throttled_events_wait_and_do_not_spend_attempts(hooks):
    s = Server(extra_args=("--async-delay-scale", str(SCALE), "--account-concurrency", "1"))
    try:
        c = s.client()
        create(c, "busy", "app.slow")
        create(c, "queued", "app.ok")
        c.put_function_event_invoke_config(
            FunctionName="queued", MaximumRetryAttempts=0,
            DestinationConfig={"OnSuccess": {"Destination": hooks.url + "/throttled"}})
        with concurrent.futures.ThreadPoolExecutor(1) as ex:
            busy = ex.submit(c.invoke, FunctionName="busy", Payload=b'{"seconds": 2}')
            wait_for("the busy invocation", lambda: s.environments("busy")[1] == 1)
            t0 = time.time()
            c.invoke(FunctionName="queued", InvocationType="Event", Payload=b"{}")
            assert busy.result()["StatusCode"] == 200
        post = hooks.wait("/throttled", timeout=30)[0]
        rec = json.loads(post["body"])
        assert rec["requestContext"]["condition"] == "Success"
        assert rec["requestContext"]["approximateInvokeCount"] == 1
        assert post["at"] - t0 >= 1.0, "ran while the account's only slot was taken"
    finally:
        s.stop()


def test_acknowledged_events_survive_sigkill(hooks):
    """Enqueue events from several clients while the server is killed with
    SIGKILL three times and restarted; every acknowledged event must reach
    the success destination (at least once)."""
    s = Server(extra_args=("--async-delay-scale", str(SCALE)))
    try:
        c = s.client()
        create(c, "crash-ok", "app.ok")
        c.put_function_event_invoke_config(
            FunctionName="crash-ok",
            DestinationConfig={"OnSuccess": {"Destination": hooks.url + "/crash"}})
        acked, lock, stop = set(), threading.Lock(), threading.Event()
        sent = [0]

        def producer(worker):
            n = 0
            while not stop.is_set():
                n += 1
                event_id = f"{worker}-{n}"
                try:
                    cl = s.client()
                    r = cl.invoke(FunctionName="crash-ok", InvocationType="Event",
                                  Payload=json.dumps({"id": event_id}).encode())
                    if r["StatusCode"] == 202:
                        with lock:
                            acked.add(event_id)
                except Exception:
                    time.sleep(0.05)  # the server is down: try the next one
                with lock:
                    sent[0] += 1

        with concurrent.futures.ThreadPoolExecutor(4) as ex:
            workers = [ex.submit(producer, w) for w in range(4)]
            try:
                # Each kill lands while events are being acknowledged: at
                # least 15 in each life of the server (a fixed pause gave too
                # few on a loaded machine), then a random moment.
                for kill in range(3):
                    base = len(acked)
                    wait_for(f"15 acknowledgements before kill {kill + 1}",
                             lambda: len(acked) >= base + 15, timeout=60)
                    time.sleep(random.uniform(0, 0.4))
                    os.kill(s.proc.pid, signal.SIGKILL)
                    s.proc.wait()
                    s.restart()
                base = len(acked)
                wait_for("acknowledgements after the last restart", lambda: len(acked) >= base + 5, timeout=60)
            finally:
                stop.set()
                for w in workers:
                    w.result()
        assert len(acked) >= 50, f"only {len(acked)} events acknowledged"

        def delivered():
            seen = {}
            for rec in hooks.records("/crash"):
                i = rec["requestPayload"]["id"]
                seen[i] = seen.get(i, 0) + 1
            return seen

        wait_for("every acknowledged event", lambda: acked <= set(delivered()), timeout=90)
        seen = delivered()
        lost = acked - set(seen)
        duplicated = sum(n - 1 for n in seen.values() if n > 1)
        print(f"\ncrash test: {sent[0]} attempted, {len(acked)} acknowledged, "
              f"lost-count={len(lost)}, duplicated-count={duplicated}")
        assert not lost
    finally:
        s.stop()
