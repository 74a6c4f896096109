"""Invocation through boto3 and the aws CLI: Lambda's exact results, errors and logs."""

import base64
import concurrent.futures
import json
import pathlib
import shutil
import time

import botocore.exceptions
import pytest

from conftest import ROLE, Server, make_zip, wait_for

PYTHON_APP = r'''
import json, os, signal, sys, time
COUNT = 0
print("init ran")
def handler(event, context):
    global COUNT
    COUNT += 1
    action = event.get("action")
    print(f"handling {action}")
    if action == "fail":
        raise ValueError("bad input: " + str(event.get("why")))
    if action == "sleep":
        time.sleep(event["seconds"])
    if action == "exit0":
        sys.exit(0)
    if action == "exit":
        os._exit(event["code"])
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if action == "big":
        return "x" * (7 * 1024 * 1024)
    if action == "echo":
        return event
    with open("/tmp/visits", "a") as f:
        f.write(".")
    cc = context.client_context
    return {
        "count": COUNT,
        "tmp": len(open("/tmp/visits").read()),
        "function_name": context.function_name,
        "function_version": context.function_version,
        "memory": context.memory_limit_in_mb,
        "arn": context.invoked_function_arn,
        "request_id": context.aws_request_id,
        "log_group": context.log_group_name,
        "log_stream": context.log_stream_name,
        "remaining": context.get_remaining_time_in_millis(),
        "custom": cc.custom if cc else None,
        "env": {k: os.environ.get(k) for k in ("MODE", "AWS_REGION", "AWS_LAMBDA_FUNCTION_NAME",
                "AWS_EXECUTION_ENV", "LAMBDA_TASK_ROOT", "_HANDLER", "TZ", "AWS_LAMBDA_INITIALIZATION_TYPE")},
        "cwd": os.getcwd(),
        "task_writable": os.access("/var/task", os.W_OK),
    }
'''

NODE_APP = r'''
let count = 0;
console.log("init ran");
exports.handler = async (event, context) => {
  count += 1;
  console.log("handling", event.action);
  if (event.action === "fail") throw new TypeError("node says no");
  if (event.action === "reject") return Promise.reject(new Error("rejected"));
  return { count, name: context.functionName, remaining: context.getRemainingTimeInMillis(),
           requestId: context.awsRequestId, arn: context.invokedFunctionArn };
};
exports.callback = (event, context, callback) => {
  setTimeout(() => callback(null, { via: "callback", event }), 5);
};
exports.callbackError = (event, context, callback) => callback(new Error("callback failed"));
'''


@pytest.fixture(scope="module")
def server():
    s = Server(extra_args=("--keep-alive", "2"))
    yield s
    s.stop()


def create(c, name, files, runtime="python3.11", handler="app.handler", **extra):
    c.create_function(FunctionName=name, Runtime=runtime, Role=ROLE, Handler=handler,
                      Code={"ZipFile": make_zip(files)}, **extra)


def invoke(c, name, payload=None, **kw):
    args = {"FunctionName": name}
    if payload is not None:
        args["Payload"] = json.dumps(payload).encode()
    args.update(kw)
    r = c.invoke(**args)
    body = r["Payload"].read()
    return r, body


def log_of(r):
    return base64.b64decode(r["LogResult"]).decode()


@pytest.fixture(scope="module")
def pyfn(server):
    c = server.client()
    create(c, "py", {"app.py": (PYTHON_APP, 0o644)}, Timeout=3, MemorySize=256,
           Environment={"Variables": {"MODE": "test"}})
    return "py"


def test_success_result_headers_context_and_tail(server, pyfn):
    c = server.client()
    cc = base64.b64encode(json.dumps({"custom": {"k": "v"}}).encode()).decode()
    r, body = invoke(c, pyfn, {"action": "info"}, LogType="Tail", ClientContext=cc)
    assert r["StatusCode"] == 200
    assert r["ExecutedVersion"] == "$LATEST"
    assert "FunctionError" not in r
    out = json.loads(body)
    request_id = r["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    assert out["request_id"] == request_id
    assert out["function_name"] == "py" and out["function_version"] == "$LATEST"
    assert out["memory"] == "256"
    assert out["arn"].endswith(":function:py")
    assert out["log_group"] == "/aws/lambda/py"
    assert out["log_stream"].startswith(time.strftime("%Y/%m/%d/", time.gmtime()) + "[$LATEST]")
    assert 2000 < out["remaining"] <= 3000
    assert out["custom"] == {"k": "v"}
    assert out["env"]["MODE"] == "test" and out["env"]["AWS_REGION"] == "us-east-1"
    assert out["env"]["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.11"
    assert out["env"]["LAMBDA_TASK_ROOT"] == "/var/task" and out["env"]["_HANDLER"] == "app.handler"
    assert out["env"]["TZ"] == ":UTC" and out["env"]["AWS_LAMBDA_INITIALIZATION_TYPE"] == "on-demand"
    assert out["cwd"] == "/var/task" and out["task_writable"] is False
    log = log_of(r)
    assert f"START RequestId: {request_id} Version: $LATEST\n" in log
    assert "handling info\n" in log
    assert f"END RequestId: {request_id}\n" in log
    report = [l for l in log.splitlines() if l.startswith("REPORT")][0]
    fields = dict(f.split(": ", 1) for f in report.split("\t")[1:])
    assert fields["Memory Size"] == "256 MB"
    assert fields["Duration"].endswith(" ms") and fields["Billed Duration"].endswith(" ms")
    assert int(fields["Max Memory Used"].split()[0]) > 1


def test_payload_bytes_come_back_unchanged(server, pyfn):
    c = server.client()
    event = {"action": "echo", "unicode": "héllo ✓", "n": [1, 2.5, None], "nested": {"a": {"b": True}}}
    _, body = invoke(c, pyfn, event)
    assert json.loads(body) == event


def test_warm_reuse_keeps_globals_and_tmp(server, pyfn):
    c = server.client()
    _, first = invoke(c, pyfn, {"action": "count"})
    _, second = invoke(c, pyfn, {"action": "count"})
    a, b = json.loads(first), json.loads(second)
    assert b["count"] == a["count"] + 1
    assert b["tmp"] == a["tmp"] + 1
    assert a["log_stream"] == b["log_stream"]


def test_handler_exception_is_unhandled_error_document(server, pyfn):
    c = server.client()
    r, body = invoke(c, pyfn, {"action": "fail", "why": 42}, LogType="Tail")
    assert r["StatusCode"] == 200
    assert r["FunctionError"] == "Unhandled"
    doc = json.loads(body)
    assert doc["errorType"] == "ValueError"
    assert doc["errorMessage"] == "bad input: 42"
    assert doc["requestId"] == r["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    assert any('File "/var/task/app.py"' in line and "in handler" in line for line in doc["stackTrace"])
    assert "[ERROR] ValueError: bad input: 42" in log_of(r)


@pytest.mark.parametrize("files,handler,error_type,message", [
    ({"app.py": ("def handler(e, c): return 1\n", 0o644)}, "missing.handler",
     "Runtime.ImportModuleError", "Unable to import module 'missing': No module named 'missing'"),
    ({"app.py": ("def handler(e, c): return 1\n", 0o644)}, "app.nope",
     "Runtime.HandlerNotFound", "Handler 'nope' missing on module 'app'"),
    ({"app.py": ("def handler(e, c) return 1\n", 0o644)}, "app.handler",
     "Runtime.UserCodeSyntaxError", "Syntax error in module 'app'"),
    ({"app.py": ("raise RuntimeError('init exploded')\n", 0o644)}, "app.handler",
     "RuntimeError", "init exploded"),
])
def test_init_errors_come_back_at_once(server, files, handler, error_type, message):
    c = server.client()
    name = "init-" + error_type.replace(".", "-").lower()
    create(c, name, files, handler=handler, Timeout=30)
    started = time.monotonic()
    r, body = invoke(c, name, {})
    assert time.monotonic() - started < 10, "an init error is not a timeout"
    assert r["FunctionError"] == "Unhandled"
    doc = json.loads(body)
    assert doc["errorType"] == error_type
    assert doc["errorMessage"].startswith(message), doc


def test_timeout_kills_and_the_next_invoke_works(server):
    c = server.client()
    create(c, "slow", {"app.py": (PYTHON_APP, 0o644)}, Timeout=1)
    started = time.monotonic()
    r, body = invoke(c, "slow", {"action": "sleep", "seconds": 30}, LogType="Tail")
    assert time.monotonic() - started < 5
    assert r["FunctionError"] == "Unhandled"
    doc = json.loads(body)
    request_id = r["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    assert doc == {"errorType": "Sandbox.Timedout",
                   "errorMessage": f"RequestId: {request_id} Error: Task timed out after 1.00 seconds"}
    assert f"{request_id} Task timed out after 1.00 seconds" in log_of(r)
    r, body = invoke(c, "slow", {"action": "count"}, LogType="Tail")
    assert "FunctionError" not in r
    assert json.loads(body)["count"] == 1, "a fresh environment replaced the killed one"
    assert "Init Duration" in log_of(r)


@pytest.mark.parametrize("event,message", [
    ({"action": "exit0"}, "Runtime exited without providing a reason"),
    ({"action": "exit", "code": 3}, "Runtime exited with error: exit status 3"),
    ({"action": "kill"}, "Runtime exited with error: signal: killed"),
])
def test_runtime_exit_errors(server, pyfn, event, message):
    c = server.client()
    r, body = invoke(c, pyfn, event)
    request_id = r["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    assert r["FunctionError"] == "Unhandled"
    assert json.loads(body) == {"errorType": "Runtime.ExitError",
                                "errorMessage": f"RequestId: {request_id} Error: {message}"}
    r, body = invoke(c, pyfn, {"action": "count"})
    assert "FunctionError" not in r, "the platform replaced the environment"


def test_size_limits(server, pyfn):
    c = server.client()
    r, body = invoke(c, pyfn, {"action": "big"})
    assert r["FunctionError"] == "Unhandled"
    assert json.loads(body) == {
        "errorType": "Function.ResponseSizeTooLarge",
        "errorMessage": "Response payload size exceeded maximum allowed payload size (6291556 bytes)."}
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.invoke(FunctionName=pyfn, Payload=json.dumps({"pad": "x" * (6 * 1024 * 1024)}).encode())
    err = e.value.response
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert err["Error"]["Code"] == "RequestEntityTooLargeException"
    assert err["Error"]["Message"] == "Request must be smaller than 6291456 bytes for the InvokeFunction operation"


def test_not_json_dry_run_and_missing_function(server, pyfn):
    c = server.client()
    with pytest.raises(c.exceptions.InvalidRequestContentException) as e:
        c.invoke(FunctionName=pyfn, Payload=b"{not json")
    assert e.value.response["Error"]["Message"].startswith(
        "Could not parse request body into json: Could not parse payload into json:")
    r = c.invoke(FunctionName=pyfn, InvocationType="DryRun")
    assert r["StatusCode"] == 204
    with pytest.raises(c.exceptions.ResourceNotFoundException) as e:
        c.invoke(FunctionName="does-not-exist")
    assert e.value.response["Error"]["Message"].endswith(":function:does-not-exist:$LATEST")


def test_parallel_invokes_scale_out(server):
    c = server.client(max_pool_connections=10)
    create(c, "wide", {"app.py": (PYTHON_APP, 0o644)}, Timeout=10)
    def one(_):
        _, body = invoke(c, "wide", {"action": "sleep", "seconds": 0.5})
        return body
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(4)))
    logs = server.client(service="logs")

    def streams_of_wide():
        try:
            s = logs.describe_log_streams(logGroupName="/aws/lambda/wide")["logStreams"]
        except logs.exceptions.ResourceNotFoundException:
            return None
        return s if len(s) >= 4 else None
    streams = wait_for("four log streams", streams_of_wide)
    assert len(streams) == 4, "one environment per concurrent invocation"


def test_keep_alive_reaps_idle_environments(server):
    c = server.client()
    create(c, "reaped", {"app.py": (PYTHON_APP, 0o644)})
    r, _ = invoke(c, "reaped", {}, LogType="Tail")
    assert "Init Duration" in log_of(r)
    r, _ = invoke(c, "reaped", {}, LogType="Tail")
    assert "Init Duration" not in log_of(r), "warm while within the keep-alive"
    assert server.environments("reaped") == (1, 0)
    # The server runs with --keep-alive 2: the idle environment is stopped.
    wait_for("the idle environment to be reaped", lambda: server.environments("reaped") == (0, 0), timeout=20)
    r, _ = invoke(c, "reaped", {}, LogType="Tail")
    assert "Init Duration" in log_of(r), "a cold start after the keep-alive"


def test_update_retires_old_environments(server):
    c = server.client()
    create(c, "updated", {"app.py": (PYTHON_APP, 0o644)}, Environment={"Variables": {"MODE": "one"}})
    _, body = invoke(c, "updated", {})
    assert json.loads(body)["env"]["MODE"] == "one"
    c.update_function_configuration(FunctionName="updated", Environment={"Variables": {"MODE": "two"}})
    r, body = invoke(c, "updated", {}, LogType="Tail")
    assert json.loads(body)["env"]["MODE"] == "two"
    assert "Init Duration" in log_of(r)
    c.update_function_code(FunctionName="updated", ZipFile=make_zip(
        {"app.py": ("def handler(e, c):\n    return 'new code'\n", 0o644)}))
    _, body = invoke(c, "updated", {})
    assert json.loads(body) == "new code"


def test_logs_are_stored_per_group_and_stream(server, pyfn):
    c = server.client()
    r, _ = invoke(c, pyfn, {"action": "logged"})
    request_id = r["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    logs = server.client(service="logs")
    def found():
        try:
            ev = logs.filter_log_events(logGroupName="/aws/lambda/py", filterPattern=request_id)["events"]
        except logs.exceptions.ResourceNotFoundException:
            return None  # the first line is not stored yet
        return ev if any(e["message"].startswith("REPORT") for e in ev) else None
    events = wait_for("the REPORT line in the log store", found)
    messages = [e["message"] for e in events]
    assert messages[0].startswith(f"START RequestId: {request_id}")
    assert messages[-1].startswith(f"REPORT RequestId: {request_id}")
    groups = logs.describe_log_groups(logGroupNamePrefix="/aws/lambda/")["logGroups"]
    assert "/aws/lambda/py" in [g["logGroupName"] for g in groups]


def test_node_runtime(server):
    c = server.client()
    create(c, "node", {"index.js": (NODE_APP, 0o644)}, runtime="nodejs20.x", handler="index.handler")
    r, body = invoke(c, "node", {"action": "hi"}, LogType="Tail")
    out = json.loads(body)
    assert out["count"] == 1 and out["name"] == "node"
    assert out["requestId"] == r["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    assert 0 < out["remaining"] <= 3000
    log = log_of(r)
    assert f"\t{out['requestId']}\tINFO\thandling hi\n" in log
    r, body = invoke(c, "node", {"action": "fail"})
    assert r["FunctionError"] == "Unhandled"
    doc = json.loads(body)
    assert doc["errorType"] == "TypeError" and doc["errorMessage"] == "node says no"
    assert doc["trace"][0] == "TypeError: node says no"
    _, body = invoke(c, "node", {"action": "again"})
    assert json.loads(body)["count"] == 3, "warm after a function error"

    create(c, "node-cb", {"index.js": (NODE_APP, 0o644)}, runtime="nodejs20.x", handler="index.callback")
    _, body = invoke(c, "node-cb", {"a": 1})
    assert json.loads(body) == {"via": "callback", "event": {"a": 1}}
    create(c, "node-cberr", {"index.js": (NODE_APP, 0o644)}, runtime="nodejs20.x", handler="index.callbackError")
    r, body = invoke(c, "node-cberr", {})
    assert r["FunctionError"] == "Unhandled" and json.loads(body)["errorMessage"] == "callback failed"
    create(c, "node-missing", {"index.js": (NODE_APP, 0o644)}, runtime="nodejs20.x", handler="nope.handler")
    r, body = invoke(c, "node-missing", {})
    assert json.loads(body)["errorType"] == "Runtime.ImportModuleError"
    create(c, "node-nohandler", {"index.js": (NODE_APP, 0o644)}, runtime="nodejs20.x", handler="index.nope")
    r, body = invoke(c, "node-nohandler", {})
    doc = json.loads(body)
    assert doc == {**doc, "errorType": "Runtime.HandlerNotFound", "errorMessage": "index.nope is undefined or not exported"}
    create(c, "node-esm", {"index.mjs": ("export const handler = async (e) => ({esm: true, e});\n", 0o644)},
           runtime="nodejs20.x", handler="index.handler")
    _, body = invoke(c, "node-esm", {"x": 1})
    assert json.loads(body) == {"esm": True, "e": {"x": 1}}


def test_provided_runtime_with_a_shell_bootstrap_and_wrong_request_id(server):
    """A custom runtime speaking the Runtime API by hand: answering another
    request id is refused with 400, the right one is accepted."""
    bootstrap = r'''#!/usr/bin/python3.11
import http.client, json, os
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
conn = http.client.HTTPConnection(host, int(port))
while True:
    conn.request("GET", "/2018-06-01/runtime/invocation/next")
    r = conn.getresponse()
    event = json.loads(r.read())
    rid = r.getheader("Lambda-Runtime-Aws-Request-Id")
    deadline = int(r.getheader("Lambda-Runtime-Deadline-Ms"))
    conn.request("POST", "/2018-06-01/runtime/invocation/not-" + rid + "/response", b"{}")
    wrong = conn.getresponse(); wrong.read()
    body = json.dumps({"event": event, "wrong_id_status": wrong.status, "deadline": deadline,
                       "arn": r.getheader("Lambda-Runtime-Invoked-Function-Arn"),
                       "trace": r.getheader("Lambda-Runtime-Trace-Id")}).encode()
    conn.request("POST", f"/2018-06-01/runtime/invocation/{rid}/response", body)
    ok = conn.getresponse(); ok.read()
'''
    c = server.client()
    create(c, "custom", {"bootstrap": (bootstrap, 0o755)}, runtime="provided.al2023", handler="x")
    before = int(time.time() * 1000)
    r, body = invoke(c, "custom", {"k": "v"}, Qualifier="$LATEST")
    out = json.loads(body)
    assert out.get("event") == {"k": "v"}, (r.get("FunctionError"), out)
    assert out["wrong_id_status"] == 400
    assert before + 2000 < out["deadline"] < before + 3000 + 10_000, "an absolute epoch-ms deadline"
    assert out["arn"].endswith(":function:custom:$LATEST"), "the ARN the caller used, qualified"
    assert out["trace"].startswith("Root=1-")


def test_awslambdaric_runs_unchanged(server, tmp_path):
    """AWS's own Python runtime interface client, vendored into a provided package."""
    import awslambdaric
    site = pathlib.Path(awslambdaric.__file__).parent.parent
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    for entry in site.iterdir():
        if entry.name.startswith(("awslambdaric", "runtime_client", "simplejson", "snapshot_restore_py")) \
                and not entry.name.endswith(".dist-info"):
            (shutil.copytree if entry.is_dir() else shutil.copy2)(entry, pkg / entry.name)
    (pkg / "app.py").write_text(
        "def handler(event, context):\n"
        "    if event.get('fail'):\n"
        "        raise KeyError('ric failure')\n"
        "    return {'ric': True, 'event': event, 'fn': context.function_name,\n"
        "            'left': context.get_remaining_time_in_millis() > 0}\n")
    (pkg / "bootstrap").write_text("#!/bin/sh\nexec /usr/bin/python3.11 -m awslambdaric \"$_HANDLER\"\n")
    files = {}
    for p in pkg.rglob("*"):
        if p.is_file():
            mode = 0o755 if p.name in ("bootstrap",) or p.suffix == ".so" else 0o644
            files[str(p.relative_to(pkg))] = (p.read_bytes(), mode)
    c = server.client()
    create(c, "ric", files, runtime="provided.al2023", handler="app.handler")
    r, body = invoke(c, "ric", {"x": 1})
    assert "FunctionError" not in r, body
    assert json.loads(body) == {"ric": True, "event": {"x": 1}, "fn": "ric", "left": True}
    r, body = invoke(c, "ric", {"fail": True})
    assert r["FunctionError"] == "Unhandled"
    doc = json.loads(body)
    assert doc["errorType"] == "KeyError" and "ric failure" in doc["errorMessage"]


def test_aws_cli_invoke_with_tail(server, pyfn, tmp_path):
    out = tmp_path / "out.json"
    res = json.loads(server.cli("lambda", "invoke", "--function-name", pyfn, "--payload",
                                json.dumps({"action": "echo", "via": "cli"}), "--log-type", "Tail",
                                str(out)).stdout)
    assert res["StatusCode"] == 200 and res["ExecutedVersion"] == "$LATEST"
    assert "START RequestId:" in base64.b64decode(res["LogResult"]).decode()
    assert json.loads(out.read_text()) == {"action": "echo", "via": "cli"}
    res = server.cli("lambda", "invoke", "--function-name", pyfn, "--payload",
                     json.dumps({"action": "fail", "why": "cli"}), str(out))
    assert json.loads(res.stdout)["FunctionError"] == "Unhandled"
    assert json.loads(out.read_text())["errorMessage"] == "bad input: cli"


def test_aws_lambda_ric_for_node_runs_unchanged(server):
    """AWS's Node.js runtime interface client (npm aws-lambda-ric), vendored."""
    ric = pathlib.Path(__file__).resolve().parents[1] / "fixtures/node-ric/node_modules/aws-lambda-ric"
    assert (ric / "dist/rapid-client.node").is_file(), "scripts/test builds aws-lambda-ric first"
    files = {"index.mjs": ("export const handler = async (event, context) => "
                           "({ric: 'node', event, name: context.functionName});\n", 0o644),
             "bootstrap": ("#!/bin/sh\nexec /usr/bin/node /var/task/node_modules/aws-lambda-ric/bin/index.mjs \"$_HANDLER\"\n", 0o755)}
    for p in [ric / "package.json", *(ric / "bin").rglob("*"), *(ric / "dist").rglob("*")]:
        if p.is_file():
            files["node_modules/aws-lambda-ric/" + str(p.relative_to(ric))] = (p.read_bytes(), 0o755)
    c = server.client()
    create(c, "node-ric", files, runtime="provided.al2023", handler="index.handler")
    r, body = invoke(c, "node-ric", {"y": 2})
    assert "FunctionError" not in r, body
    assert json.loads(body) == {"ric": "node", "event": {"y": 2}, "name": "node-ric"}
