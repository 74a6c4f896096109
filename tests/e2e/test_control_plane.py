"""The control plane through boto3 and the aws CLI."""

import json

import botocore.exceptions
import pytest

from conftest import ACCOUNT_A, KEY_B, ROLE, make_zip

BOOTSTRAP = make_zip({"bootstrap": ("#!/bin/sh\necho hi\n", 0o755)})


def create(client, name, **extra):
    args = dict(FunctionName=name, Runtime="provided.al2023", Role=ROLE,
                Handler="bootstrap", Code={"ZipFile": BOOTSTRAP})
    args.update(extra)
    return client.create_function(**args)


def error_of(excinfo):
    err = excinfo.value.response
    return err["ResponseMetadata"]["HTTPStatusCode"], err["Error"]["Code"], err["Error"]["Message"]


def test_boto3_paginator_walks_every_page(server):
    c = server.client()
    for i in range(12):
        create(c, f"page-{i:02d}")
    pages = list(c.get_paginator("list_functions").paginate(PaginationConfig={"PageSize": 5}))
    assert len(pages) == 3
    names = [f["FunctionName"] for p in pages for f in p["Functions"]]
    assert names == [f"page-{i:02d}" for i in range(12)]
    assert "NextMarker" in pages[0] and "NextMarker" not in pages[-1]


def test_create_get_update_delete_with_boto3(server):
    c = server.client()
    out = create(c, "boto-fn", Timeout=10, MemorySize=256,
                 Environment={"Variables": {"MODE": "test"}}, Tags={"team": "a"})
    assert out["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert out["FunctionArn"] == f"arn:aws:lambda:us-east-1:{ACCOUNT_A}:function:boto-fn"
    assert out["State"] == "Pending"
    got = c.get_function(FunctionName="boto-fn")
    assert got["Configuration"]["State"] == "Active"
    assert got["Configuration"]["Environment"] == {"Variables": {"MODE": "test"}}
    assert got["Tags"] == {"team": "a"}
    assert got["Code"]["RepositoryType"] == "S3"
    upd = c.update_function_configuration(FunctionName="boto-fn", Description="d",
                                          RevisionId=got["Configuration"]["RevisionId"])
    assert upd["Description"] == "d" and upd["LastUpdateStatus"] == "InProgress"
    c.get_waiter("function_updated_v2").wait(FunctionName="boto-fn",
                                             WaiterConfig={"Delay": 1, "MaxAttempts": 5})
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.update_function_configuration(FunctionName="boto-fn", Description="x",
                                        RevisionId=got["Configuration"]["RevisionId"])
    assert error_of(e)[:2] == (412, "PreconditionFailedException")
    assert c.delete_function(FunctionName="boto-fn")["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(c.exceptions.ResourceNotFoundException):
        c.get_function(FunctionName="boto-fn")


@pytest.mark.parametrize("extra,status,code,fragment", [
    ({"MemorySize": 10241}, 400, "ValidationException", "Member must have value less than or equal to 10240"),
    ({"Timeout": 901}, 400, "ValidationException", "at 'timeout'"),
    ({"EphemeralStorage": {"Size": 10241}}, 400, "ValidationException", "at 'ephemeralStorage.size'"),
    ({"Runtime": "python2.7"}, 400, "InvalidParameterValueException", "no longer supported"),
    ({"Environment": {"Variables": {"AWS_REGION": "x"}}}, 400, "InvalidParameterValueException", "reserved keys"),
    ({"Environment": {"Variables": {"BIG": "x" * 4100}}}, 400, "InvalidParameterValueException", "4KB limit"),
    ({"Code": {"ZipFile": b"not a zip"}}, 400, "InvalidParameterValueException", "Could not unzip uploaded file"),
    ({"Code": {"ZipFile": make_zip({"../escape": ("x", 0o644)})}}, 400, "InvalidParameterValueException", "escapes"),
    ({"Role": "not-a-role"}, 400, "ValidationException", "at 'role'"),
])
def test_validation_errors(server, extra, status, code, fragment):
    c = server.client()
    with pytest.raises(botocore.exceptions.ClientError) as e:
        create(c, "invalid-fn", **extra)
    got_status, got_code, message = error_of(e)
    assert (got_status, got_code) == (status, code)
    assert fragment in message
    with pytest.raises(c.exceptions.ResourceNotFoundException):
        c.get_function(FunctionName="invalid-fn")


def test_accounts_do_not_see_each_other(server):
    a, b = server.client(), server.client(KEY_B)
    create(a, "private-fn")
    assert "private-fn" not in [f["FunctionName"] for f in b.list_functions()["Functions"]]
    with pytest.raises(b.exceptions.ResourceNotFoundException):
        b.get_function(FunctionName="private-fn")


def test_malformed_json_is_an_aws_error(server):
    import urllib.request
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    req = AWSRequest(method="POST", url=server.endpoint + "/2015-03-31/functions", data=b"{oops",
                     headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials("AKIAPYTESTACCOUNTAAA", "py/secret+a"), "lambda", "us-east-1").add_auth(req)
    r = urllib.request.Request(req.url, data=req.body, headers=dict(req.headers), method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(r)
    assert e.value.code == 400
    assert e.value.headers["x-amzn-ErrorType"] == "InvalidRequestContentException"
    body = json.loads(e.value.read())
    assert body["message"].startswith("Could not parse request body into json")


def test_aws_cli_round_trip(server, tmp_path):
    pkg = tmp_path / "fn.zip"
    pkg.write_bytes(BOOTSTRAP)
    out = json.loads(server.cli("lambda", "create-function", "--function-name", "cli-fn",
                                "--runtime", "provided.al2023", "--handler", "bootstrap",
                                "--role", ROLE, "--zip-file", f"fileb://{pkg}").stdout)
    assert out["FunctionName"] == "cli-fn"
    got = json.loads(server.cli("lambda", "get-function", "--function-name", "cli-fn").stdout)
    assert got["Configuration"]["CodeSha256"] == out["CodeSha256"]
    listed = json.loads(server.cli("lambda", "list-functions").stdout)
    assert "cli-fn" in [f["FunctionName"] for f in listed["Functions"]]
    pkg.write_bytes(make_zip({"bootstrap": ("#!/bin/sh\necho v2\n", 0o755)}))
    upd = json.loads(server.cli("lambda", "update-function-code", "--function-name", "cli-fn",
                                "--zip-file", f"fileb://{pkg}").stdout)
    assert upd["CodeSha256"] != out["CodeSha256"]
    cfg = json.loads(server.cli("lambda", "update-function-configuration", "--function-name", "cli-fn",
                                "--timeout", "42").stdout)
    assert cfg["Timeout"] == 42
    server.cli("lambda", "delete-function", "--function-name", "cli-fn")
    missing = server.cli("lambda", "get-function", "--function-name", "cli-fn", check=False)
    assert missing.returncode != 0 and "ResourceNotFoundException" in missing.stderr
