"""Response streaming through boto3's invoke_with_response_stream and RESPONSE_STREAM
function URLs (requests, curl): each chunk
arrives as the function writes it, errors and timeouts end the stream with
InvokeComplete, and a caller that leaves mid-stream leaves the server healthy."""

import base64
import json
import pathlib
import subprocess
import time

import botocore.exceptions
import pytest

from conftest import ROLE, Server, make_zip, wait_for

NODE_STREAMING = r'''
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// Invoked directly the event is the input; through a function URL, its body.
const input = (event) => typeof event.body === "string"
  ? JSON.parse(event.isBase64Encoded ? Buffer.from(event.body, "base64").toString() : event.body)
  : event;
exports.handler = awslambda.streamifyResponse(async (raw, responseStream, context) => {
  const event = input(raw);
  console.log("streaming for", context.awsRequestId);
  if (event.contentType) responseStream.setContentType(event.contentType);
  const n = event.chunks ?? 3;
  for (let i = 0; i < n; i++) {
    if (i > 0) await sleep(event.intervalMs || 400);
    responseStream.write(`chunk ${i}\n`);
  }
  if (event.fail) throw new Error("failed after " + n + " chunks");
  if (event.sleepAfterMs) await sleep(event.sleepAfterMs);
  responseStream.end();
});
exports.http = awslambda.streamifyResponse(async (event, responseStream) => {
  const stream = awslambda.HttpResponseStream.from(responseStream, {
    statusCode: 201,
    headers: { "x-custom": "yes", "content-type": "text/plain" },
    cookies: ["a=1"],
  });
  stream.write("hello ");
  await new Promise((r) => setTimeout(r, 50));
  stream.end("world");
});
'''

PYTHON_APP = r'''
def handler(event, context):
    return {"echo": event}
'''


@pytest.fixture(scope="module")
def server():
    s = Server(extra_args=("--keep-alive", "30"))
    yield s
    s.stop()


def create(c, name, files, runtime="nodejs20.x", handler="index.handler", **extra):
    c.create_function(FunctionName=name, Runtime=runtime, Role=ROLE, Handler=handler,
                      Code={"ZipFile": make_zip(files)}, **extra)


@pytest.fixture(scope="module")
def nodefn(server):
    c = server.client()
    create(c, "node-stream", {"index.js": (NODE_STREAMING, 0o644)}, Timeout=10)
    return "node-stream"


def stream(c, name, payload, **kw):
    """Invokes with a response stream; returns (response, [(t, event)])
    with each event's arrival time, from the moment the call was made."""
    start = time.monotonic()
    r = c.invoke_with_response_stream(FunctionName=name, Payload=json.dumps(payload).encode(), **kw)
    events = []
    for ev in r["EventStream"]:
        events.append((time.monotonic() - start, ev))
    return r, events


def chunks_of(events):
    return [ev["PayloadChunk"]["Payload"] for _, ev in events if "PayloadChunk" in ev]


def completion_of(events):
    last = events[-1][1]
    assert "InvokeComplete" in last, events
    assert sum(1 for _, ev in events if "InvokeComplete" in ev) == 1
    return last["InvokeComplete"]


def test_chunks_arrive_while_the_function_still_runs(server, nodefn):
    c = server.client()
    stream(c, nodefn, {"chunks": 1})  # warm: the cold start is not what is measured
    r, events = stream(c, nodefn, {"chunks": 3, "intervalMs": 500, "contentType": "text/plain"})
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert r["ExecutedVersion"] == "$LATEST"
    assert r["ResponseStreamContentType"] == "text/plain"
    assert b"".join(chunks_of(events)) == b"chunk 0\nchunk 1\nchunk 2\n"
    assert completion_of(events) == {}
    times = [t for t, ev in events if "PayloadChunk" in ev]
    done = events[-1][0]
    # The function sleeps 500 ms between writes: a buffered answer would
    # bring every chunk at the end.
    assert done - times[0] >= 0.6, (times, done)
    assert times[1] - times[0] >= 0.3, times


def test_an_error_mid_stream_ends_with_its_code_and_details(server, nodefn):
    c = server.client()
    r, events = stream(c, nodefn, {"chunks": 2, "intervalMs": 10, "fail": True}, LogType="Tail")
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert b"".join(chunks_of(events)) == b"chunk 0\nchunk 1\n"
    done = completion_of(events)
    assert done["ErrorCode"] == "Error", done
    assert done["ErrorDetails"] == "failed after 2 chunks", done
    log = base64.b64decode(done["LogResult"]).decode()
    assert "START RequestId: " in log and "REPORT RequestId: " in log, log
    assert "failed after 2 chunks" in log, log
    # The environment survives a function error.
    _, events = stream(c, nodefn, {"chunks": 1})
    assert chunks_of(events) == [b"chunk 0\n"]


def test_a_timeout_mid_stream_ends_the_stream(server):
    c = server.client()
    create(c, "node-stream-slow", {"index.js": (NODE_STREAMING, 0o644)}, Timeout=1)
    r, events = stream(c, "node-stream-slow", {"chunks": 1, "sleepAfterMs": 5000})
    assert chunks_of(events) == [b"chunk 0\n"]
    done = completion_of(events)
    assert done["ErrorCode"] == "Sandbox.Timedout", done
    assert "Task timed out after 1.00 seconds" in done["ErrorDetails"], done
    # A new environment serves the next call.
    _, events = stream(c, "node-stream-slow", {"chunks": 2, "intervalMs": 10})
    assert b"".join(chunks_of(events)) == b"chunk 0\nchunk 1\n"
    assert completion_of(events) == {}


def test_the_http_integration_prelude_passes_through(server):
    c = server.client()
    create(c, "node-stream-http", {"index.js": (NODE_STREAMING, 0o644)}, handler="index.http")
    r, events = stream(c, "node-stream-http", {})
    assert r["ResponseStreamContentType"] == "application/vnd.awslambda.http-integration-response"
    body = b"".join(chunks_of(events))
    prelude, sep, rest = body.partition(b"\0" * 8)
    assert sep, body
    assert json.loads(prelude) == {"statusCode": 201, "headers": {"x-custom": "yes", "content-type": "text/plain"},
                                   "cookies": ["a=1"]}
    assert rest == b"hello world"


def test_a_buffered_function_answers_in_one_chunk(server):
    c = server.client()
    create(c, "py-buffered", {"app.py": (PYTHON_APP, 0o644)}, runtime="python3.11", handler="app.handler")
    r, events = stream(c, "py-buffered", {"k": 1})
    assert json.loads(b"".join(chunks_of(events))) == {"echo": {"k": 1}}
    assert completion_of(events) == {}


def test_invoke_collects_a_streamed_response(server, nodefn):
    c = server.client()
    r = c.invoke(FunctionName=nodefn, Payload=json.dumps({"chunks": 3, "intervalMs": 10}).encode())
    assert "FunctionError" not in r
    assert r["Payload"].read() == b"chunk 0\nchunk 1\nchunk 2\n"
    r = c.invoke(FunctionName=nodefn, Payload=json.dumps({"chunks": 1, "fail": True}).encode())
    assert r["FunctionError"] == "Unhandled"
    doc = json.loads(r["Payload"].read())
    assert doc["errorType"] == "Error" and doc["errorMessage"] == "failed after 1 chunks", doc


def test_refusals_and_dry_run(server, nodefn):
    c = server.client()
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.invoke_with_response_stream(FunctionName="no-such-function", Payload=b"{}")
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.invoke_with_response_stream(FunctionName=nodefn, Payload=b"{not json")
    assert e.value.response["Error"]["Code"] == "InvalidRequestContentException"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.invoke_with_response_stream(FunctionName=nodefn, InvocationType="Event", Payload=b"{}")
    assert e.value.response["Error"]["Code"] == "ValidationException"
    assert "[RequestResponse, DryRun]" in e.value.response["Error"]["Message"]
    r = c.invoke_with_response_stream(FunctionName=nodefn, InvocationType="DryRun", Payload=b"{}")
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 204


def test_a_caller_leaving_mid_stream_leaves_the_server_healthy(server):
    c = server.client()
    create(c, "node-stream-left", {"index.js": (NODE_STREAMING, 0o644)}, Timeout=10)
    for _ in range(3):
        r = c.invoke_with_response_stream(
            FunctionName="node-stream-left",
            Payload=json.dumps({"chunks": 40, "intervalMs": 20}).encode())
        first = next(iter(r["EventStream"]))
        assert first["PayloadChunk"]["Payload"] == b"chunk 0\n"
        r["EventStream"].close()
    # The functions run to their end; their environments come back idle.
    wait_for("the environments to be idle again",
             lambda: server.environments("node-stream-left")[1] == 0, timeout=30)
    _, events = stream(c, "node-stream-left", {"chunks": 2, "intervalMs": 10})
    assert b"".join(chunks_of(events)) == b"chunk 0\nchunk 1\n"
    assert completion_of(events) == {}
    logs = server.client(service="logs")
    wait_for("END lines for every call", lambda: len([
        e for e in logs.filter_log_events(logGroupName="/aws/lambda/node-stream-left")["events"]
        if e["message"].startswith("END RequestId:")]) == 4)


def test_aws_lambda_ric_streams_unchanged(server):
    """AWS's Node.js runtime interface client (npm aws-lambda-ric), vendored."""
    ric = pathlib.Path(__file__).resolve().parents[1] / "fixtures/node-ric/node_modules/aws-lambda-ric"
    assert (ric / "dist/rapid-client.node").is_file(), "scripts/test builds aws-lambda-ric first"
    files = {"index.mjs": (
        "export const handler = awslambda.streamifyResponse(async (event, responseStream) => {\n"
        "  responseStream.setContentType('text/plain');\n"
        "  responseStream.write('ric first\\n');\n"
        "  await new Promise((r) => setTimeout(r, 600));\n"
        "  if (event.fail) throw new Error('ric failed mid-stream');\n"
        "  responseStream.end('ric last\\n');\n"
        "});\n", 0o644),
        "bootstrap": ("#!/bin/sh\nexec /usr/bin/node /var/task/node_modules/aws-lambda-ric/bin/index.mjs \"$_HANDLER\"\n", 0o755)}
    for p in [ric / "package.json", *(ric / "bin").rglob("*"), *(ric / "dist").rglob("*")]:
        if p.is_file():
            files["node_modules/aws-lambda-ric/" + str(p.relative_to(ric))] = (p.read_bytes(), 0o755)
    c = server.client()
    create(c, "node-ric-stream", files, runtime="provided.al2023", Timeout=10)
    stream(c, "node-ric-stream", {})  # warm
    r, events = stream(c, "node-ric-stream", {})
    assert r["ResponseStreamContentType"] == "text/plain"
    assert b"".join(chunks_of(events)) == b"ric first\nric last\n"
    assert completion_of(events) == {}
    times = [t for t, ev in events if "PayloadChunk" in ev]
    assert events[-1][0] - times[0] >= 0.4, (times, events[-1][0])
    r, events = stream(c, "node-ric-stream", {"fail": True})
    assert b"".join(chunks_of(events)) == b"ric first\n"
    done = completion_of(events)
    assert done["ErrorCode"] == "Error" and "ric failed mid-stream" in done["ErrorDetails"], done


# ---- RESPONSE_STREAM function URLs ----

def _resolve_localhost_too():
    """curl and browsers resolve `*.localhost` to loopback themselves;
    Python asks the system resolver, which may not."""
    import socket
    original = socket.getaddrinfo
    if getattr(original, "_lambent_localhost", False):
        return

    def resolve(host, *args, **kwargs):
        if isinstance(host, str) and host.endswith(".localhost"):
            host = "127.0.0.1"
        return original(host, *args, **kwargs)
    resolve._lambent_localhost = True
    socket.getaddrinfo = resolve


def public_stream_url(server, name, handler):
    c = server.client()
    create(c, name, {"index.js": (NODE_STREAMING, 0o644)}, handler=handler, Timeout=10)
    url = c.create_function_url_config(FunctionName=name, AuthType="NONE",
                                       InvokeMode="RESPONSE_STREAM")["FunctionUrl"]
    c.add_permission(FunctionName=name, StatementId="public-url", Action="lambda:InvokeFunctionUrl",
                     Principal="*", FunctionUrlAuthType="NONE")
    return url


def test_a_streaming_url_sends_each_chunk_as_it_is_written(server):
    import requests
    _resolve_localhost_too()
    url = public_stream_url(server, "url-stream", "index.handler")
    requests.post(url, json={"chunks": 1}, timeout=30).raise_for_status()  # warm
    start = time.monotonic()
    with requests.post(url, json={"chunks": 3, "intervalMs": 500, "contentType": "text/plain"},
                       stream=True, timeout=30) as r:
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/plain"
        assert "x-amzn-requestid" in r.headers
        arrivals = []
        for piece in r.iter_content(chunk_size=None):
            arrivals.append((time.monotonic() - start, piece))
    assert b"".join(p for _, p in arrivals) == b"chunk 0\nchunk 1\nchunk 2\n"
    first = next(t for t, p in arrivals if b"chunk 0" in p)
    last = next(t for t, p in arrivals if b"chunk 2" in p)
    assert last - first >= 0.6, arrivals


def test_a_streaming_url_takes_status_and_headers_from_the_prelude(server):
    _resolve_localhost_too()
    url = public_stream_url(server, "url-stream-http", "index.http")
    out = subprocess.run(["curl", "-sS", "-i", "--no-buffer", "-X", "POST", url],
                         capture_output=True, timeout=60)
    head, _, body = out.stdout.decode().partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 201"), out.stdout
    headers = head.lower()
    assert "x-custom: yes" in headers and "content-type: text/plain" in headers, head
    assert "set-cookie: a=1" in headers, head
    assert body == "hello world", body


def test_a_client_leaving_a_streaming_url_leaves_the_server_healthy(server):
    import requests
    _resolve_localhost_too()
    url = public_stream_url(server, "url-stream-left", "index.handler")
    for _ in range(3):
        with requests.post(url, json={"chunks": 40, "intervalMs": 20}, stream=True, timeout=30) as r:
            assert next(r.iter_content(chunk_size=None)).startswith(b"chunk 0")
        # Leaving the block closes the connection mid-stream.
    wait_for("the environments to be idle again",
             lambda: server.environments("url-stream-left")[1] == 0, timeout=30)
    r = requests.post(url, json={"chunks": 2, "intervalMs": 10}, timeout=30)
    assert r.status_code == 200 and r.content == b"chunk 0\nchunk 1\n"
    logs = server.client(service="logs")
    wait_for("START, END and REPORT for every URL call", lambda: all(
        len([e for e in logs.filter_log_events(logGroupName="/aws/lambda/url-stream-left")["events"]
             if e["message"].startswith(kind)]) == 4 for kind in ("START", "END", "REPORT")))


def test_a_streaming_url_function_that_fails_at_once_is_a_502(server):
    import requests
    _resolve_localhost_too()
    url = public_stream_url(server, "url-stream-fail", "index.handler")
    r = requests.post(url, json={"chunks": 0, "fail": True}, timeout=30)
    assert r.status_code == 502, (r.status_code, r.text)


def test_the_javascript_sdk_receives_each_chunk_as_it_is_written(server, nodefn):
    """AWS's SDK for JavaScript v3 (@aws-sdk/client-lambda), installed by scripts/test."""
    sdk = pathlib.Path(__file__).resolve().parents[1] / "fixtures/node-sdk"
    assert (sdk / "node_modules/@aws-sdk/client-lambda").is_dir(), "scripts/test installs it first"
    from conftest import KEY_A
    import os
    env = dict(os.environ, AWS_ACCESS_KEY_ID=KEY_A[0], AWS_SECRET_ACCESS_KEY=KEY_A[1])

    def run(payload):
        out = subprocess.run(["node", str(sdk / "stream.mjs"), server.endpoint, nodefn, json.dumps(payload)],
                             capture_output=True, text=True, timeout=120, env=env, cwd=sdk)
        assert out.returncode == 0, out.stderr
        return [json.loads(line) for line in out.stdout.splitlines()]

    run({"chunks": 1})  # warm
    lines = run({"chunks": 3, "intervalMs": 500, "contentType": "text/plain"})
    assert lines[0]["head"] == {"status": 200, "version": "$LATEST", "contentType": "text/plain"}
    chunks = [line for line in lines if "chunk" in line]
    assert "".join(c["chunk"] for c in chunks) == "chunk 0\nchunk 1\nchunk 2\n"
    assert lines[-1]["complete"] == {}
    # Two 500 ms pauses follow the first chunk: a buffered answer would bring
    # every chunk at the end.
    assert lines[-1]["t"] - chunks[0]["t"] >= 600, lines
    lines = run({"chunks": 1, "fail": True})
    assert lines[-1]["complete"]["ErrorCode"] == "Error", lines
    assert lines[-1]["complete"]["ErrorDetails"] == "failed after 1 chunks", lines
