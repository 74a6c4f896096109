"""The CloudWatch Logs subset through boto3, the aws CLI and `lambent logs`:
missing groups and streams are errors, GetLogEvents reads from the tail or
the head and pages both ways."""

import json
import os
import subprocess

import pytest

from conftest import ROLE, ROOT, make_zip, wait_for

APP = r'''
def handler(event, context):
    for i in range(event.get("lines", 0)):
        print(f"line {i}")
    return "ok"
'''


def create(c, name):
    c.create_function(FunctionName=name, Runtime="python3.11", Role=ROLE, Handler="app.handler",
                      Code={"ZipFile": make_zip({"app.py": (APP, 0o644)})}, Timeout=10)


def lambent(server, *args):
    binary = os.environ.get("LAMBENT_BIN", str(ROOT / "target/debug/lambent"))
    env = dict(os.environ, AWS_ACCESS_KEY_ID="AKIAPYTESTACCOUNTAAA",
               AWS_SECRET_ACCESS_KEY="py/secret+a", AWS_DEFAULT_REGION="us-east-1")
    return subprocess.run([binary, *args, "--endpoint-url", server.endpoint], env=env,
                          capture_output=True, text=True, timeout=60)


def test_missing_groups_and_streams_are_resource_not_found(server):
    logs = server.client(service="logs")
    group = "/aws/lambda/never-existed"
    for call in (lambda: logs.filter_log_events(logGroupName=group),
                 lambda: logs.get_log_events(logGroupName=group, logStreamName="s"),
                 lambda: logs.describe_log_streams(logGroupName=group)):
        with pytest.raises(logs.exceptions.ResourceNotFoundException) as e:
            call()
        assert e.value.response["Error"]["Message"] == "The specified log group does not exist."
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    out = server.cli("logs", "filter-log-events", "--log-group-name", group, check=False)
    assert out.returncode != 0
    assert "ResourceNotFoundException" in out.stderr, out.stderr
    assert "The specified log group does not exist." in out.stderr, out.stderr

    c = server.client()
    create(c, "logs-stream")
    c.invoke(FunctionName="logs-stream", Payload=b"{}")
    wait_for("the log group", lambda: any(
        g["logGroupName"] == "/aws/lambda/logs-stream"
        for g in logs.describe_log_groups(logGroupNamePrefix="/aws/lambda/logs-stream")["logGroups"]))
    with pytest.raises(logs.exceptions.ResourceNotFoundException) as e:
        logs.get_log_events(logGroupName="/aws/lambda/logs-stream", logStreamName="no-such-stream")
    assert e.value.response["Error"]["Message"] == "The specified log stream does not exist."
    out = server.cli("logs", "get-log-events", "--log-group-name", "/aws/lambda/logs-stream",
                     "--log-stream-name", "no-such-stream", check=False)
    assert out.returncode != 0 and "The specified log stream does not exist." in out.stderr, out.stderr


def test_lambent_logs_names_a_missing_function_and_a_silent_one(server):
    out = lambent(server, "logs", "no-such-function")
    assert out.returncode != 0
    assert "function no-such-function does not exist" in out.stderr, out.stderr
    create(server.client(), "logs-silent")
    out = lambent(server, "logs", "logs-silent")
    assert out.returncode == 0, out.stderr
    assert "logs-silent has not logged anything yet" in out.stderr, out.stderr


def test_get_log_events_reads_the_tail_by_default_and_pages_both_ways(server):
    c = server.client()
    create(c, "logs-paged")
    c.invoke(FunctionName="logs-paged", Payload=json.dumps({"lines": 30}).encode())
    logs = server.client(service="logs")
    group = "/aws/lambda/logs-paged"

    def report_written():
        try:
            streams = logs.describe_log_streams(logGroupName=group)["logStreams"]
            events = logs.filter_log_events(logGroupName=group, filterPattern="REPORT")["events"]
        except logs.exceptions.ResourceNotFoundException:
            return None
        return streams if events else None

    stream = wait_for("the REPORT line", report_written)[0]["logStreamName"]
    everything = [e["message"] for e in logs.get_log_events(
        logGroupName=group, logStreamName=stream, startFromHead=True)["events"]]
    assert everything[0].startswith(("INIT_START", "START")), everything[:2]
    assert everything[-1].startswith("REPORT"), everything[-2:]
    assert sum(m.startswith("line ") for m in everything) == 30

    tail = logs.get_log_events(logGroupName=group, logStreamName=stream, limit=5)
    assert [e["message"] for e in tail["events"]] == everything[-5:], "the newest, oldest first"
    head = logs.get_log_events(logGroupName=group, logStreamName=stream, limit=5, startFromHead=True)
    assert [e["message"] for e in head["events"]] == everything[:5]

    # Backwards from the tail until the token comes back unchanged.
    pages, token = [tail["events"]], tail["nextBackwardToken"]
    while True:
        r = logs.get_log_events(logGroupName=group, logStreamName=stream, limit=5, nextToken=token)
        if r["nextBackwardToken"] == token:
            assert r["events"] == []
            break
        pages.insert(0, r["events"])
        token = r["nextBackwardToken"]
    assert [e["message"] for p in pages for e in p] == everything

    # Forwards from the head until the token comes back unchanged.
    forward, token = [], None
    while True:
        kw = {"nextToken": token} if token else {}
        r = logs.get_log_events(logGroupName=group, logStreamName=stream, limit=7, startFromHead=True, **kw)
        forward += [e["message"] for e in r["events"]]
        if r["nextForwardToken"] == token:
            break
        token = r["nextForwardToken"]
    assert forward == everything
