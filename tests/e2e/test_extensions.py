"""Lambda extensions through boto3: an external extension written from AWS's
documentation, shipped in a layer as `extensions/<name>`, registers, receives
INVOKE events inside each invocation and SHUTDOWN when the environment is
retired; a slow extension extends the invocation's Duration; an extension
that reports an init error fails the function's init with
Extension.InitError; AWS_LAMBDA_EXEC_WRAPPER wraps the runtime."""

import json
import re

import pytest

from conftest import ROLE, Server, make_zip, wait_for

# An external extension as AWS's documentation describes one: register for
# INVOKE and SHUTDOWN, then loop on event/next; it prints what it sees, so
# the function's log shows it.
EXTENSION = r'''#!/usr/bin/env python3
import json, os, sys, time, urllib.request
from pathlib import Path

NAME = Path(__file__).name
API = os.environ["AWS_LAMBDA_RUNTIME_API"]
MODE = os.environ.get("EXT_MODE", "")


def call(method, path, body=None, headers=None):
    req = urllib.request.Request(f"http://{API}/2020-01-01/extension/{path}",
                                 data=body, headers=headers or {}, method=method)
    return urllib.request.urlopen(req)


print(f"[{NAME}] launching", flush=True)
resp = call("POST", "register", json.dumps({"events": ["INVOKE", "SHUTDOWN"]}).encode(),
            {"Lambda-Extension-Name": NAME})
ext_id = resp.headers["Lambda-Extension-Identifier"]
print(f"[{NAME}] registered {resp.read().decode()}", flush=True)
if MODE == "fail-init":
    call("POST", "init/error",
         json.dumps({"errorMessage": "collector unreachable", "errorType": "Extension.Config"}).encode(),
         {"Lambda-Extension-Identifier": ext_id,
          "Lambda-Extension-Function-Error-Type": "Extension.Config"})
    sys.exit(1)
while True:
    event = json.loads(call("GET", "event/next",
                            headers={"Lambda-Extension-Identifier": ext_id}).read())
    print(f"[{NAME}] event {json.dumps(event)}", flush=True)
    if event["eventType"] == "INVOKE" and MODE == "slow":
        time.sleep(1.5)
        print(f"[{NAME}] flushed {event['requestId']}", flush=True)
    if event["eventType"] == "SHUTDOWN":
        print(f"[{NAME}] shutting down", flush=True)
        sys.exit(0)
'''

# The handler prints nothing: the runtime and the extensions share one
# output pipe, so a line the runtime writes in pieces at the moment an
# extension writes its own could be interleaved with it.
APP = '''
def handler(event, context):
    return {"id": context.aws_request_id}
'''

WRAPPER = '''#!/bin/sh
echo "wrapper saw: $@"
export WRAPPED=yes
exec "$@"
'''

WRAPPED_APP = '''
import os
def handler(event, context):
    return {"wrapped": os.environ.get("WRAPPED")}
'''


@pytest.fixture(scope="module")
def server():
    s = Server()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def layer(server):
    lam = server.client()
    out = lam.publish_layer_version(
        LayerName="audit-extension",
        Content={"ZipFile": make_zip({"extensions/audit-extension": (EXTENSION, 0o755)})},
    )
    return out["LayerVersionArn"]


def create(lam, name, layer, mode=""):
    lam.create_function(FunctionName=name, Runtime="python3.11", Role=ROLE,
                        Handler="app.handler", Timeout=30, Layers=[layer],
                        Environment={"Variables": {"EXT_MODE": mode}},
                        Code={"ZipFile": make_zip({"app.py": (APP, 0o644)})})


def messages(server, name):
    logs = server.client(service="logs")
    events, token = [], None
    while True:
        kw = {"logGroupName": f"/aws/lambda/{name}"}
        if token:
            kw["nextToken"] = token
        try:
            page = logs.filter_log_events(**kw)
        except logs.exceptions.ResourceNotFoundException:
            return []
        events += page["events"]
        token = page.get("nextToken")
        if not token:
            return [e["message"].rstrip("\n") for e in events]


def invoke(lam, name):
    out = lam.invoke(FunctionName=name, Payload=b"{}")
    body = json.loads(out["Payload"].read())
    assert "FunctionError" not in out, body
    return out["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]


def index(lines, predicate, what):
    for i, line in enumerate(lines):
        if predicate(line):
            return i
    raise AssertionError(f"no log line for {what} in {lines}")


def test_registration_invoke_and_shutdown_events_in_order(server, layer):
    lam = server.client()
    create(lam, "ext-events", layer)
    arn = lam.get_function(FunctionName="ext-events")["Configuration"]["FunctionArn"]
    ids = [invoke(lam, "ext-events"), invoke(lam, "ext-events")]
    # A configuration change retires the idle environment: its shutdown
    # phase sends SHUTDOWN.
    lam.update_function_configuration(FunctionName="ext-events", Description="retire")
    lines = wait_for("the SHUTDOWN event in the log",
                     lambda: (lambda m: m if any("shutting down" in x for x in m) else None)(
                         messages(server, "ext-events")),
                     timeout=60)

    registered = index(lines, lambda x: "[audit-extension] registered" in x, "registration")
    info = json.loads(lines[registered].split("registered ", 1)[1])
    assert info == {"functionName": "ext-events", "functionVersion": "$LATEST",
                    "handler": "app.handler"}
    events = [json.loads(x.split("event ", 1)[1]) for x in lines
              if x.startswith("[audit-extension] event ")]
    assert [e["eventType"] for e in events] == ["INVOKE", "INVOKE", "SHUTDOWN"], lines
    for event, rid in zip(events, ids):
        assert event["requestId"] == rid
        assert event["invokedFunctionArn"] == arn
        assert event["tracing"]["type"] == "X-Amzn-Trace-Id"
        assert event["tracing"]["value"].startswith("Root=1-")
        assert isinstance(event["deadlineMs"], int)
        # Each INVOKE arrives inside its invocation: after START, before END.
        start = index(lines, lambda x, r=rid: x.startswith(f"START RequestId: {r}"), "START")
        end = index(lines, lambda x, r=rid: x == f"END RequestId: {r}", "END")
        seen = index(lines, lambda x, r=rid: f'"requestId": "{r}"' in x, "INVOKE")
        assert registered < start < seen < end, lines
    shutdown = events[2]
    assert shutdown["shutdownReason"] == "spindown"
    assert isinstance(shutdown["deadlineMs"], int)
    last_report = max(i for i, x in enumerate(lines) if x.startswith("REPORT RequestId:"))
    assert index(lines, lambda x: '"eventType": "SHUTDOWN"' in x, "SHUTDOWN") > last_report


def test_a_slow_extension_extends_the_invocation(server, layer):
    lam = server.client()
    create(lam, "ext-slow", layer, mode="slow")
    rid = invoke(lam, "ext-slow")
    lines = wait_for("the REPORT line",
                     lambda: (lambda m: m if any(x.startswith(f"REPORT RequestId: {rid}")
                                                 for x in m) else None)(
                         messages(server, "ext-slow")))
    flushed = index(lines, lambda x: x == f"[audit-extension] flushed {rid}", "the flush")
    end = index(lines, lambda x: x == f"END RequestId: {rid}", "END")
    assert flushed < end, "the invocation ends only once the extension asks for its next event"
    report = next(x for x in lines if x.startswith(f"REPORT RequestId: {rid}"))
    duration = float(re.search(r"\tDuration: ([0-9.]+) ms", report).group(1))
    assert duration >= 1500, report
    # The environment is reused: the extension finished its event.
    second = invoke(lam, "ext-slow")
    assert second != rid
    assert server.environments("ext-slow") == (1, 0)


def test_an_extension_init_error_fails_the_function_init(server, layer):
    lam = server.client()
    create(lam, "ext-broken", layer, mode="fail-init")
    out = lam.invoke(FunctionName="ext-broken", Payload=b"{}")
    assert out["FunctionError"] == "Unhandled"
    body = json.loads(out["Payload"].read())
    assert body["errorType"] == "Extension.InitError"
    assert "audit-extension" in body["errorMessage"]
    assert "Extension.Config" in body["errorMessage"]
    lines = wait_for("the REPORT line",
                     lambda: (lambda m: m if any(x.startswith("REPORT RequestId:") for x in m)
                              else None)(messages(server, "ext-broken")))
    report = next(x for x in lines if x.startswith("REPORT RequestId:"))
    assert "Status: error\tError Type: Extension.InitError" in report


def test_exec_wrapper_runs_the_runtime(server):
    lam = server.client()
    lam.create_function(FunctionName="wrapped", Runtime="python3.11", Role=ROLE,
                        Handler="app.handler", Timeout=30,
                        Environment={"Variables": {"AWS_LAMBDA_EXEC_WRAPPER": "/var/task/wrap"}},
                        Code={"ZipFile": make_zip({"app.py": (WRAPPED_APP, 0o644),
                                                   "wrap": (WRAPPER, 0o755)})})
    out = lam.invoke(FunctionName="wrapped", Payload=b"{}")
    assert json.loads(out["Payload"].read()) == {"wrapped": "yes"}
    lines = wait_for("the wrapper's line",
                     lambda: (lambda m: m if any(x.startswith("wrapper saw: ") for x in m)
                              else None)(messages(server, "wrapped")))
    said = next(x for x in lines if x.startswith("wrapper saw: "))
    assert "/var/runtime/python/bootstrap.py" in said, said


def test_the_timeout_covers_the_extensions_work(server, layer):
    # The function's timeout bounds the whole invoke phase, the extensions'
    # share included: a 1.5 s flush in a 1 s function times it out.
    lam = server.client()
    create(lam, "ext-late", layer, mode="slow")
    lam.update_function_configuration(FunctionName="ext-late", Timeout=1)
    wait_for("the update", lambda: lam.get_function_configuration(
        FunctionName="ext-late")["LastUpdateStatus"] == "Successful")
    out = lam.invoke(FunctionName="ext-late", Payload=b"{}")
    assert out["FunctionError"] == "Unhandled"
    body = json.loads(out["Payload"].read())
    assert "Task timed out after 1.00 seconds" in body["errorMessage"], body
