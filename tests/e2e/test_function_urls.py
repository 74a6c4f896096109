"""Function URLs through the aws CLI, boto3, Python `requests` and curl:
the configuration API, the payload format 2.0 event, result mapping, errors,
and who may call a URL."""

import base64
import json
import re
import socket
import subprocess
import time
import urllib.parse

import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from conftest import ACCOUNT_A, ACCOUNT_B, KEY_A, KEY_B, ROLE, Server, make_zip, wait_for

# curl and browsers resolve every `*.localhost` name to the loopback
# address by themselves; Python asks the system resolver, which may not.
_getaddrinfo = socket.getaddrinfo


def _resolve_localhost(host, *args, **kwargs):
    if isinstance(host, str) and host.endswith(".localhost"):
        host = "127.0.0.1"
    return _getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = _resolve_localhost

APP = r'''
import base64, json, time

def handler(event, context):
    path = event["rawPath"]
    if path.startswith("/echo"):
        return {"statusCode": 200, "headers": {"content-type": "application/json"},
                "body": json.dumps({"event": event, "request_id": context.aws_request_id})}
    if path == "/dict":
        return {"hello": "world", "n": [1, 2]}
    if path == "/string":
        return "hello"
    if path == "/number":
        return 3
    if path == "/made":
        return {"statusCode": 201, "headers": {"X-Custom": "yes", "Content-Type": "text/plain"},
                "cookies": ["a=1; Path=/", "b=2; HttpOnly"], "body": "made"}
    if path == "/binary":
        return {"statusCode": 200, "headers": {"content-type": "application/octet-stream"},
                "body": base64.b64encode(bytes(range(256))).decode(), "isBase64Encoded": True}
    if path == "/fail":
        raise ValueError("boom")
    if path == "/sleep":
        time.sleep(10)
    if path == "/bad-status":
        return {"statusCode": "not a number"}
    return {"statusCode": 404, "body": "no such path"}
'''

FORBIDDEN = ("Forbidden. For troubleshooting Function URL authorization issues, see: "
             "https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html")


@pytest.fixture(scope="module")
def server():
    s = Server(extra_args=("--keep-alive", "30"))
    yield s
    s.stop()


def create_function(c, name, **extra):
    c.create_function(FunctionName=name, Runtime="python3.11", Role=ROLE, Handler="app.handler",
                      Code={"ZipFile": make_zip({"app.py": (APP, 0o644)})}, **extra)


def make_public(server, name, qualifier=None):
    args = ["lambda", "add-permission", "--function-name", name, "--statement-id", "public-url",
            "--action", "lambda:InvokeFunctionUrl", "--principal", "*",
            "--function-url-auth-type", "NONE"]
    if qualifier:
        args += ["--qualifier", qualifier]
    return json.loads(server.cli(*args).stdout)


@pytest.fixture(scope="module")
def public(server):
    """A function with a public (NONE) URL and the permission that opens it."""
    c = server.client()
    create_function(c, "web", Timeout=2)
    url = c.create_function_url_config(FunctionName="web", AuthType="NONE")["FunctionUrl"]
    make_public(server, "web")
    return url


def url_id_of(url):
    return urllib.parse.urlsplit(url).hostname.split(".")[0]


def test_url_config_through_the_cli_and_boto3(server):
    c = server.client()
    create_function(c, "cfg")
    created = json.loads(server.cli(
        "lambda", "create-function-url-config", "--function-name", "cfg",
        "--auth-type", "AWS_IAM", "--cors",
        "AllowOrigins=http://app.localhost:3000,AllowMethods=GET,MaxAge=300").stdout)
    url = created["FunctionUrl"]
    port = server.endpoint.rsplit(":", 1)[1]
    assert re.fullmatch(rf"http://[a-z0-9]{{32}}\.lambda-url\.us-east-1\.localhost:{port}/", url)
    assert created["FunctionArn"] == f"arn:aws:lambda:us-east-1:{ACCOUNT_A}:function:cfg"
    assert created["AuthType"] == "AWS_IAM"
    assert created["Cors"] == {"AllowOrigins": ["http://app.localhost:3000"],
                               "AllowMethods": ["GET"], "MaxAge": 300}
    got = c.get_function_url_config(FunctionName="cfg")
    assert got["FunctionUrl"] == url and got["InvokeMode"] == "BUFFERED"
    assert "LastModifiedTime" in got
    updated = json.loads(server.cli(
        "lambda", "update-function-url-config", "--function-name", "cfg",
        "--auth-type", "NONE", "--invoke-mode", "RESPONSE_STREAM").stdout)
    assert updated["AuthType"] == "NONE" and updated["InvokeMode"] == "RESPONSE_STREAM"
    assert updated["Cors"]["MaxAge"] == 300
    listed = c.list_function_url_configs(FunctionName="cfg")["FunctionUrlConfigs"]
    assert [u["FunctionUrl"] for u in listed] == [url]
    with pytest.raises(c.exceptions.ResourceConflictException):
        c.create_function_url_config(FunctionName="cfg", AuthType="NONE")
    proc = server.cli("lambda", "create-function-url-config", "--function-name", "cfg",
                      "--qualifier", "1", "--auth-type", "NONE", check=False)
    assert proc.returncode != 0 and "ValidationException" in proc.stderr
    server.cli("lambda", "delete-function-url-config", "--function-name", "cfg")
    with pytest.raises(c.exceptions.ResourceNotFoundException):
        c.get_function_url_config(FunctionName="cfg")


def test_a_none_url_is_private_until_the_permission_opens_it(server):
    c = server.client()
    create_function(c, "closed")
    url = c.create_function_url_config(FunctionName="closed", AuthType="NONE")["FunctionUrl"]
    r = requests.get(url + "dict", timeout=30)
    assert r.status_code == 403
    assert r.json() == {"Message": FORBIDDEN}
    assert r.headers["x-amzn-ErrorType"] == "AccessDeniedException"
    # A grant of the Invoke API, or of the URL without the NONE condition,
    # does not make the URL public.
    c.add_permission(FunctionName="closed", StatementId="invoke-only",
                     Action="lambda:InvokeFunction", Principal="*")
    c.add_permission(FunctionName="closed", StatementId="iam-only",
                     Action="lambda:InvokeFunctionUrl", Principal="*",
                     FunctionUrlAuthType="AWS_IAM")
    assert requests.get(url + "dict", timeout=30).status_code == 403
    statement = make_public(server, "closed")["Statement"]
    assert json.loads(statement)["Condition"] == {
        "StringEquals": {"lambda:FunctionUrlAuthType": "NONE"}}
    r = requests.get(url + "dict", timeout=60)
    assert r.status_code == 200, r.text
    assert r.json() == {"hello": "world", "n": [1, 2]}
    c.remove_permission(FunctionName="closed", StatementId="public-url")
    assert requests.get(url + "dict", timeout=30).status_code == 403


def test_the_event_is_payload_format_2(server, public):
    body = "caf\u00e9 and text"
    r = requests.post(public + "echo/a%20b?x=1&x=2&name=J%C3%BCrgen&empty=",
                      data=body.encode(), timeout=60,
                      headers={"Content-Type": "text/plain; charset=utf-8",
                               "User-Agent": "url-test/1.0", "X-Mixed-Case": "Value",
                               "Cookie": "session=abc; theme=dark"})
    assert r.status_code == 200, r.text
    out = r.json()
    ev = out["event"]
    assert ev["version"] == "2.0"
    assert ev["routeKey"] == "$default"
    assert ev["rawPath"] == "/echo/a%20b"
    assert ev["rawQueryString"] == "x=1&x=2&name=J%C3%BCrgen&empty="
    assert ev["queryStringParameters"] == {"x": "1,2", "name": "J\u00fcrgen", "empty": ""}
    assert ev["cookies"] == ["session=abc", "theme=dark"]
    h = ev["headers"]
    assert "cookie" not in h
    assert h["x-mixed-case"] == "Value"
    assert h["user-agent"] == "url-test/1.0"
    assert h["content-type"] == "text/plain; charset=utf-8"
    assert h["host"] == urllib.parse.urlsplit(public).netloc
    assert h["x-forwarded-for"] == "127.0.0.1"
    assert h["x-forwarded-proto"] == "http"
    assert re.fullmatch(r"Root=1-[0-9a-f]{8}-[0-9a-f]{24}", h["x-amzn-trace-id"])
    assert all(k == k.lower() for k in h)
    assert ev["body"] == body and ev["isBase64Encoded"] is False
    ctx = ev["requestContext"]
    url_id = url_id_of(public)
    assert ctx["accountId"] == "anonymous"
    assert ctx["apiId"] == url_id and ctx["domainPrefix"] == url_id
    assert ctx["domainName"] == urllib.parse.urlsplit(public).hostname
    assert ctx["http"] == {"method": "POST", "path": "/echo/a%20b", "protocol": "HTTP/1.1",
                           "sourceIp": "127.0.0.1", "userAgent": "url-test/1.0"}
    assert ctx["routeKey"] == "$default" and ctx["stage"] == "$default"
    assert "authorizer" not in ctx
    # The request id is the invocation's, and the response carries it.
    assert ctx["requestId"] == out["request_id"] == r.headers["x-amzn-RequestId"]
    assert re.fullmatch(r"\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000", ctx["time"])
    assert abs(ctx["timeEpoch"] / 1000 - time.time()) < 120
    # No body, no query string: the members are left out.
    ev = requests.get(public + "echo", timeout=60).json()["event"]
    assert "body" not in ev and "queryStringParameters" not in ev and "cookies" not in ev
    assert ev["rawQueryString"] == "" and ev["isBase64Encoded"] is False


def test_repeated_headers_are_joined_and_binary_bodies_base64(server, public):
    out = subprocess.run(
        ["curl", "-s", "-X", "PUT", "-H", "X-Multi: a", "-H", "X-Multi: b",
         "-H", "Content-Type: application/octet-stream", "--data-binary", "@-",
         public + "echo"],
        input=bytes(range(256)), capture_output=True, timeout=60, check=True)
    ev = json.loads(out.stdout)["event"]
    assert ev["headers"]["x-multi"] == "a,b"
    assert ev["requestContext"]["http"]["method"] == "PUT"
    assert ev["isBase64Encoded"] is True
    assert base64.b64decode(ev["body"]) == bytes(range(256))
    # JSON bodies arrive as text.
    ev = requests.post(public + "echo", json={"k": "v"}, timeout=60).json()["event"]
    assert ev["isBase64Encoded"] is False and json.loads(ev["body"]) == {"k": "v"}


def test_results_map_to_http_responses(server, public):
    r = requests.get(public + "dict", timeout=60)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    assert r.content == b'{"hello":"world","n":[1,2]}'
    r = requests.get(public + "string", timeout=60)
    assert r.status_code == 200 and r.content == b"hello"
    assert requests.get(public + "number", timeout=60).content == b"3"
    r = requests.get(public + "made", timeout=60)
    assert r.status_code == 201
    assert r.headers["X-Custom"] == "yes" and r.headers["Content-Type"] == "text/plain"
    assert r.text == "made"
    assert r.raw.headers.getlist("Set-Cookie") == ["a=1; Path=/", "b=2; HttpOnly"]
    assert r.cookies.get("a") == "1"
    r = requests.get(public + "binary", timeout=60)
    assert r.status_code == 200 and r.content == bytes(range(256))
    assert r.headers["Content-Type"] == "application/octet-stream"
    r = requests.get(public + "nowhere", timeout=60)
    assert r.status_code == 404 and r.text == "no such path"
    # curl sees the same.
    out = subprocess.run(["curl", "-s", "-i", public + "made"], capture_output=True,
                         timeout=60, check=True, text=True).stdout
    assert out.startswith("HTTP/1.1 201")
    assert "set-cookie: a=1; path=/" in out.lower()
    assert out.rstrip().endswith("made")


def test_function_errors_timeouts_and_bad_results_are_502(server, public):
    for path in ("fail", "bad-status", "sleep"):
        r = requests.get(public + path, timeout=60)
        assert r.status_code == 502, (path, r.status_code, r.text)
        assert r.text == "Internal Server Error"
    # The URL still answers afterwards.
    assert requests.get(public + "dict", timeout=60).status_code == 200


def test_oversized_requests_and_throttles(server):
    c = server.client()
    create_function(c, "limited")
    url = c.create_function_url_config(FunctionName="limited", AuthType="NONE")["FunctionUrl"]
    make_public(server, "limited")
    r = requests.post(url + "echo", data=b"x" * (6 * 1024 * 1024 + 1), timeout=60,
                      headers={"Content-Type": "text/plain"})
    assert r.status_code == 413
    assert r.json() == {"Message": "Request must be smaller than 6291456 bytes for the InvokeFunction operation"}
    assert r.headers["x-amzn-ErrorType"] == "RequestEntityTooLargeException"
    c.put_function_concurrency(FunctionName="limited", ReservedConcurrentExecutions=0)
    r = requests.get(url + "dict", timeout=60)
    assert r.status_code == 429
    assert r.headers["x-amzn-ErrorType"] == "TooManyRequestsException"
    c.delete_function_concurrency(FunctionName="limited")
    r = wait_for("the URL to answer again",
                 lambda: (lambda r: r if r.status_code == 200 else None)(
                     requests.get(url + "dict", timeout=60)))
    assert r.json()["hello"] == "world"


def test_unknown_and_deleted_urls_are_refused(server):
    c = server.client()
    create_function(c, "gone")
    url = c.create_function_url_config(FunctionName="gone", AuthType="NONE")["FunctionUrl"]
    make_public(server, "gone")
    assert requests.get(url + "dict", timeout=60).status_code == 200
    c.delete_function_url_config(FunctionName="gone")
    r = requests.get(url + "dict", timeout=30)
    assert r.status_code == 403 and r.headers["x-amzn-ErrorType"] == "AccessDeniedException"
    bogus = url.replace(url_id_of(url), "0" * 32)
    assert requests.get(bogus, timeout=30).status_code == 403
    # The API itself still answers on the same listener.
    assert requests.get(server.endpoint + "/lambent/health", timeout=10).text == "ok"


def test_an_alias_url_runs_the_alias_version(server):
    c = server.client()
    create_function(c, "aliased")
    c.publish_version(FunctionName="aliased")
    c.create_alias(FunctionName="aliased", Name="live", FunctionVersion="1")
    url = c.create_function_url_config(FunctionName="aliased", Qualifier="live",
                                       AuthType="NONE")["FunctionUrl"]
    # The function's own grant does not open the alias's URL.
    make_public(server, "aliased")
    assert requests.get(url + "dict", timeout=30).status_code == 403
    make_public(server, "aliased", qualifier="live")
    assert requests.get(url + "dict", timeout=60).status_code == 200
    c.delete_alias(FunctionName="aliased", Name="live")
    assert requests.get(url + "dict", timeout=30).status_code == 403


def sigv4_request(method, url, key, body=b"", region="us-east-1", headers=None):
    req = AWSRequest(method=method, url=url, data=body, headers=headers or {})
    SigV4Auth(Credentials(*key), "lambda", region).add_auth(req)
    return requests.request(method, url, data=body, headers=dict(req.headers), timeout=60)


def test_aws_iam_urls_take_the_owner_and_granted_accounts(server):
    c = server.client()
    create_function(c, "iam")
    url = c.create_function_url_config(FunctionName="iam", AuthType="AWS_IAM")["FunctionUrl"]
    # Unsigned, or signed with a key the server does not know: refused.
    assert requests.get(url + "dict", timeout=30).status_code == 403
    assert sigv4_request("GET", url + "dict", ("AKIAUNKNOWN000000000", "x")).status_code == 403
    # The owner's signature passes, and the event names the signer.
    r = sigv4_request("POST", url + "echo?q=1", KEY_A, body=b'{"a": 1}',
                      headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    iam = r.json()["event"]["requestContext"]["authorizer"]["iam"]
    assert iam["accessKey"] == KEY_A[0] and iam["accountId"] == ACCOUNT_A
    assert iam["userArn"] == f"arn:aws:iam::{ACCOUNT_A}:root"
    assert r.json()["event"]["requestContext"]["accountId"] == ACCOUNT_A
    # A tampered body breaks the signature.
    req = AWSRequest(method="POST", url=url + "echo", data=b"signed")
    SigV4Auth(Credentials(*KEY_A), "lambda", "us-east-1").add_auth(req)
    r = requests.post(url + "echo", data=b"tampered", headers=dict(req.headers), timeout=30)
    assert r.status_code == 403
    # Signed for another region, or for another service: refused.
    assert sigv4_request("GET", url + "dict", KEY_A, region="eu-west-1").status_code == 403
    req = AWSRequest(method="GET", url=url + "dict")
    SigV4Auth(Credentials(*KEY_A), "logs", "us-east-1").add_auth(req)
    assert requests.get(url + "dict", headers=dict(req.headers), timeout=30).status_code == 403
    # Another account: only with a grant of lambda:InvokeFunctionUrl.
    r = sigv4_request("GET", url + "dict", KEY_B)
    assert r.status_code == 403 and r.json() == {"Message": FORBIDDEN}
    c.add_permission(FunctionName="iam", StatementId="b-invoke", Action="lambda:InvokeFunction",
                     Principal=ACCOUNT_B)
    assert sigv4_request("GET", url + "dict", KEY_B).status_code == 403
    c.add_permission(FunctionName="iam", StatementId="b-url", Action="lambda:InvokeFunctionUrl",
                     Principal=ACCOUNT_B, FunctionUrlAuthType="AWS_IAM")
    r = sigv4_request("GET", url + "echo", KEY_B)
    assert r.status_code == 200, r.text
    assert r.json()["event"]["requestContext"]["authorizer"]["iam"]["accountId"] == ACCOUNT_B
    # A public grant does not open an AWS_IAM URL to unsigned callers.
    make_public(server, "iam")
    assert requests.get(url + "dict", timeout=30).status_code == 403


def test_the_invoke_api_honours_resource_policies(server):
    a, b = server.client(), server.client(KEY_B)
    create_function(a, "shared")
    a.publish_version(FunctionName="shared")
    a.create_alias(FunctionName="shared", Name="live", FunctionVersion="1")
    arn = f"arn:aws:lambda:us-east-1:{ACCOUNT_A}:function:shared"
    payload = json.dumps({"rawPath": "/dict"}).encode()

    def denied(function_name, **kw):
        with pytest.raises(b.exceptions.ClientError) as e:
            b.invoke(FunctionName=function_name, Payload=payload, **kw)
        err = e.value.response["Error"]
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        assert err["Code"] == "AccessDeniedException", err
        return err["Message"]

    msg = denied(arn)
    assert msg == (f"User: arn:aws:iam::{ACCOUNT_B}:root is not authorized to perform: "
                   f"lambda:InvokeFunction on resource: {arn} because no resource-based policy "
                   "allows the lambda:InvokeFunction action")
    # A function that does not exist is refused the same way.
    assert "because no resource-based policy" in denied(arn.replace("shared", "nothing-here"))
    # Conditions on the calling resource never hold for a direct call.
    a.add_permission(FunctionName="shared", StatementId="via-source",
                     Action="lambda:InvokeFunction", Principal=ACCOUNT_B, SourceAccount=ACCOUNT_B)
    denied(arn)
    # A URL grant is not an Invoke API grant.
    a.add_permission(FunctionName="shared", StatementId="url-only",
                     Action="lambda:InvokeFunctionUrl", Principal=ACCOUNT_B,
                     FunctionUrlAuthType="AWS_IAM")
    denied(arn)
    a.add_permission(FunctionName="shared", StatementId="b-invokes",
                     Action="lambda:InvokeFunction", Principal=ACCOUNT_B)
    r = b.invoke(FunctionName=arn, Payload=payload)
    assert r["StatusCode"] == 200 and "FunctionError" not in r
    assert json.loads(r["Payload"].read()) == {"hello": "world", "n": [1, 2]}
    assert b.invoke(FunctionName=arn, Payload=payload, InvocationType="Event")["StatusCode"] == 202
    assert b.invoke(FunctionName=arn, Payload=payload, InvocationType="DryRun")["StatusCode"] == 204
    # The grant is the unqualified function's: the alias has its own policy.
    denied(arn + ":live")
    denied(arn, Qualifier="live")
    a.add_permission(FunctionName="shared", Qualifier="live", StatementId="b-live",
                     Action="lambda:InvokeFunction", Principal=f"arn:aws:iam::{ACCOUNT_B}:root")
    assert b.invoke(FunctionName=arn + ":live", Payload=payload)["StatusCode"] == 200
    # The control plane stays private.
    with pytest.raises(b.exceptions.ClientError) as e:
        b.get_function(FunctionName=arn)
    assert e.value.response["Error"]["Code"] == "AccessDeniedException"
    # Taking the grant back closes the function again.
    a.remove_permission(FunctionName="shared", StatementId="b-invokes")
    denied(arn)


def test_url_invocations_are_logged_and_counted(server):
    c = server.client()
    create_function(c, "counted")
    url = c.create_function_url_config(FunctionName="counted", AuthType="NONE")["FunctionUrl"]
    assert requests.get(url + "dict", timeout=30).status_code == 403
    make_public(server, "counted")
    ok = requests.get(url + "dict", timeout=60)
    assert ok.status_code == 200
    assert requests.get(url + "fail", timeout=60).status_code == 502
    request_id = ok.headers["x-amzn-RequestId"]
    logs = server.client(service="logs")

    def lines():
        try:
            events = logs.filter_log_events(logGroupName="/aws/lambda/counted",
                                            filterPattern=f'"{request_id}"')["events"]
        except logs.exceptions.ResourceNotFoundException:
            return None
        found = [e["message"].split(" ")[0] for e in events]
        return found if "REPORT" in found else None

    assert wait_for("START, END and REPORT of the URL invocation", lines) == [
        "START", "END", "REPORT"]
    text = requests.get(server.metrics_endpoint + "/metrics", timeout=10).text
    labels = f'account="{ACCOUNT_A}",region="us-east-1",function="counted",qualifier=""'
    assert f"lambent_url_requests_total{{{labels}}} 3" in text, text
    assert f"lambent_url_4xx_total{{{labels}}} 1" in text
    assert f"lambent_url_5xx_total{{{labels}}} 1" in text
