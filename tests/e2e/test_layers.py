"""Layers and resource policies through boto3: a layer's module imported by a
Python and a Node function, ordering in /opt, the layer API and its errors,
layer permissions across accounts, and function policies."""

import base64
import hashlib
import json
import re
import urllib.request

import botocore.exceptions
import pytest

from conftest import ACCOUNT_A, ACCOUNT_B, KEY_B, ROLE, Server, make_zip

PY_APP = r'''
import os, shared_mod
def handler(event, context):
    return {"value": shared_mod.VALUE, "tool": os.path.exists("/opt/bin/tool"),
            "ld": os.environ.get("LD_LIBRARY_PATH", "")}
'''

NODE_APP = r'''
const shared = require("shared");
exports.handler = async () => ({ value: shared.value });
'''


@pytest.fixture(scope="module")
def server():
    s = Server()
    yield s
    s.stop()


def layer_zip(value):
    return make_zip({
        "python/shared_mod.py": (f"VALUE = {value!r}\n", 0o644),
        "nodejs/node_modules/shared/index.js": (f"exports.value = {json.dumps(value)};\n", 0o644),
        "bin/tool": ("#!/bin/sh\necho tool\n", 0o755),
        "lib/README": ("libraries go here\n", 0o644),
    })


def error(call, **kw):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call(**kw)
    r = e.value.response
    return r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"], r["Error"]["Message"]


def layer_arn(name, account=ACCOUNT_A):
    return f"arn:aws:lambda:us-east-1:{account}:layer:{name}"


def invoke(c, name):
    r = c.invoke(FunctionName=name, Payload=b"{}")
    body = json.loads(r["Payload"].read())
    assert "FunctionError" not in r, body
    return body


def test_layer_versions_and_their_api(server):
    c = server.client()
    z = layer_zip("one")
    v1 = c.publish_layer_version(LayerName="shared", Content={"ZipFile": z})
    assert v1["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert (v1["Version"], v1["LayerArn"], v1["LayerVersionArn"]) == (
        1, layer_arn("shared"), layer_arn("shared") + ":1")
    assert v1["Description"] == "" and "CompatibleRuntimes" not in v1 and "LicenseInfo" not in v1
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000", v1["CreatedDate"])
    assert v1["Content"]["CodeSha256"] == base64.b64encode(hashlib.sha256(z).digest()).decode()
    assert v1["Content"]["CodeSize"] == len(z)
    with urllib.request.urlopen(v1["Content"]["Location"], timeout=10) as r:
        assert r.read() == z
    v2 = c.publish_layer_version(LayerName="shared", Content={"ZipFile": layer_zip("two")},
                                 Description="second", CompatibleRuntimes=["python3.11", "nodejs20.x"],
                                 CompatibleArchitectures=["x86_64"], LicenseInfo="MIT")
    assert v2["Version"] == 2 and v2["CompatibleRuntimes"] == ["python3.11", "nodejs20.x"]
    assert c.get_layer_version(LayerName="shared", VersionNumber=2)["Description"] == "second"
    assert c.get_layer_version_by_arn(Arn=layer_arn("shared") + ":1")["Version"] == 1
    listed = c.list_layer_versions(LayerName="shared")["LayerVersions"]
    assert [v["Version"] for v in listed] == [2, 1]
    assert "Content" not in listed[0] and "LayerArn" not in listed[0]
    assert [v["Version"] for v in c.list_layer_versions(
        LayerName="shared", CompatibleRuntime="python3.11")["LayerVersions"]] == [2]
    layers = c.list_layers()["Layers"]
    assert [(l["LayerName"], l["LatestMatchingVersion"]["Version"]) for l in layers] == [("shared", 2)]
    assert c.list_layer_versions(LayerName="never-published")["LayerVersions"] == []

    assert error(c.get_layer_version, LayerName="shared", VersionNumber=9) == (
        404, "ResourceNotFoundException", "The resource you requested does not exist.")
    assert error(c.get_layer_version, LayerName="shared", VersionNumber=0)[1:] == (
        "InvalidParameterValueException", "Layer Version Cannot be less than 1")
    assert error(c.publish_layer_version, LayerName="shared", Content={"ZipFile": z},
                 CompatibleRuntimes=["cobol85"])[1] == "ValidationException"
    assert error(c.get_layer_version_by_arn, Arn=layer_arn("shared"))[1] == "ValidationException"

    # Deletion is idempotent; numbers are never reused.
    c.publish_layer_version(LayerName="gone", Content={"ZipFile": z})
    c.delete_layer_version(LayerName="gone", VersionNumber=1)
    c.delete_layer_version(LayerName="gone", VersionNumber=1)
    c.delete_layer_version(LayerName="no-such-layer", VersionNumber=3)
    assert c.publish_layer_version(LayerName="gone", Content={"ZipFile": z})["Version"] == 2


def test_functions_use_layers_in_order(server):
    c = server.client()
    one = c.publish_layer_version(LayerName="lib-a", Content={"ZipFile": layer_zip("from a")})
    two = c.publish_layer_version(LayerName="lib-b", Content={"ZipFile": layer_zip("from b")})
    c.create_function(FunctionName="py-layers", Runtime="python3.11", Role=ROLE,
                      Handler="app.handler", Code={"ZipFile": make_zip({"app.py": (PY_APP, 0o644)})},
                      Layers=[one["LayerVersionArn"]])
    cfg = c.get_function_configuration(FunctionName="py-layers")
    assert cfg["Layers"] == [{"Arn": one["LayerVersionArn"], "CodeSize": one["Content"]["CodeSize"]}]
    body = invoke(c, "py-layers")
    assert body["value"] == "from a" and body["tool"] is True
    assert body["ld"].endswith(":/opt/lib")
    # Later layers win.
    c.update_function_configuration(FunctionName="py-layers",
                                    Layers=[one["LayerVersionArn"], two["LayerVersionArn"]])
    assert invoke(c, "py-layers")["value"] == "from b"
    c.update_function_configuration(FunctionName="py-layers",
                                    Layers=[two["LayerVersionArn"], one["LayerVersionArn"]])
    assert invoke(c, "py-layers")["value"] == "from a"

    c.create_function(FunctionName="node-layers", Runtime="nodejs20.x", Role=ROLE,
                      Handler="index.handler",
                      Code={"ZipFile": make_zip({"index.js": (NODE_APP, 0o644)})},
                      Layers=[two["LayerVersionArn"]])
    assert invoke(c, "node-layers")["value"] == "from b"

    # A deleted layer version stays with the functions that use it.
    c.delete_layer_version(LayerName="lib-b", VersionNumber=1)
    c.update_function_configuration(FunctionName="node-layers", Description="cold again")
    assert invoke(c, "node-layers")["value"] == "from b"
    assert error(c.update_function_configuration, FunctionName="py-layers",
                 Layers=[two["LayerVersionArn"]])[1:] == (
        "InvalidParameterValueException", f"Layer version {two['LayerVersionArn']} does not exist.")

    arn = one["LayerVersionArn"]
    assert error(c.update_function_configuration, FunctionName="py-layers", Layers=[arn] * 6)[2] == (
        "Cannot reference more than 5 layers.")
    a2 = c.publish_layer_version(LayerName="lib-a", Content={"ZipFile": layer_zip("a2")})
    assert error(c.update_function_configuration, FunctionName="py-layers",
                 Layers=[arn, a2["LayerVersionArn"]])[2] == (
        "Two different versions of the same layer are not allowed to be referenced in the same "
        f"function. {arn} and {a2['LayerVersionArn']} are versions of the same layer.")
    assert error(c.update_function_configuration, FunctionName="py-layers",
                 Layers=[layer_arn("lib-a")])[1] == "ValidationException"


def test_layer_permissions_share_across_accounts(server):
    a, b = server.client(), server.client(key=KEY_B)
    v = a.publish_layer_version(LayerName="private", Content={"ZipFile": layer_zip("secret")})
    arn = v["LayerVersionArn"]
    def create_b():
        b.create_function(FunctionName="b-uses-a", Runtime="python3.11",
                          Role=f"arn:aws:iam::{ACCOUNT_B}:role/r", Handler="app.handler",
                          Code={"ZipFile": make_zip({"app.py": (PY_APP, 0o644)})}, Layers=[arn])
    with pytest.raises(botocore.exceptions.ClientError) as e:
        create_b()
    assert e.value.response["Error"]["Code"] == "AccessDeniedException"
    assert error(b.get_layer_version_by_arn, Arn=arn)[1] == "AccessDeniedException"

    assert error(a.get_layer_version_policy, LayerName="private", VersionNumber=1)[2] == (
        "No policy is associated with the given resource.")
    added = a.add_layer_version_permission(LayerName="private", VersionNumber=1, StatementId="b",
                                           Action="lambda:GetLayerVersion", Principal=ACCOUNT_B)
    assert json.loads(added["Statement"]) == {
        "Sid": "b", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_B}:root"},
        "Action": "lambda:GetLayerVersion", "Resource": arn}
    pol = a.get_layer_version_policy(LayerName="private", VersionNumber=1)
    assert pol["RevisionId"] == added["RevisionId"]
    assert json.loads(pol["Policy"])["Statement"][0]["Sid"] == "b"
    assert error(a.add_layer_version_permission, LayerName="private", VersionNumber=1,
                 StatementId="b", Action="lambda:GetLayerVersion", Principal="*")[:2] == (
        409, "ResourceConflictException")
    create_b()
    assert invoke(b, "b-uses-a")["value"] == "secret"
    a.remove_layer_version_permission(LayerName="private", VersionNumber=1, StatementId="b")
    assert error(a.get_layer_version_policy, LayerName="private", VersionNumber=1)[0] == 404


def test_function_policies(server):
    c = server.client()
    c.create_function(FunctionName="guarded", Runtime="python3.11", Role=ROLE,
                      Handler="app.handler", Code={"ZipFile": make_zip({"app.py": (PY_APP, 0o644)})},
                      Publish=True)
    c.create_alias(FunctionName="guarded", Name="live", FunctionVersion="1")
    fn_arn = f"arn:aws:lambda:us-east-1:{ACCOUNT_A}:function:guarded"
    assert error(c.get_policy, FunctionName="guarded")[2] == "The resource you requested does not exist."
    st = c.add_permission(FunctionName="guarded", StatementId="s3", Action="lambda:InvokeFunction",
                          Principal="s3.amazonaws.com", SourceArn="arn:aws:s3:::bucket",
                          SourceAccount=ACCOUNT_A)
    assert st["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert st["Statement"] == (
        '{"Sid":"s3","Effect":"Allow","Principal":{"Service":"s3.amazonaws.com"},'
        f'"Action":"lambda:InvokeFunction","Resource":"{fn_arn}","Condition":'
        f'{{"StringEquals":{{"AWS:SourceAccount":"{ACCOUNT_A}"}},"ArnLike":{{"AWS:SourceArn":"arn:aws:s3:::bucket"}}}}}}')
    policy = c.get_policy(FunctionName="guarded")
    doc = json.loads(policy["Policy"])
    assert (doc["Version"], doc["Id"], len(doc["Statement"])) == ("2012-10-17", "default", 1)
    assert error(c.add_permission, FunctionName="guarded", StatementId="s3",
                 Action="lambda:InvokeFunction", Principal="*")[2] == (
        "The statement id (s3) provided already exists. Please provide a new statement id, "
        "or remove the existing statement.")
    assert error(c.add_permission, FunctionName="guarded", StatementId="x",
                 Action="lambda:InvokeFunction", Principal="invalid.nonaws.com")[1] == (
        "InvalidParameterValueException")
    assert error(c.add_permission, FunctionName="guarded", Qualifier="$LATEST", StatementId="x",
                 Action="lambda:InvokeFunction", Principal="*")[2] == (
        "We currently do not support adding policies for $LATEST.")
    assert error(c.add_permission, FunctionName="guarded", Qualifier="nope", StatementId="x",
                 Action="lambda:InvokeFunction", Principal="*")[2] == (
        f"Cannot find alias arn: {fn_arn}:nope")
    # Per qualifier: the alias has its own policy.
    alias_st = json.loads(c.add_permission(FunctionName="guarded", Qualifier="live", StatementId="s3",
                                           Action="lambda:InvokeFunction", Principal="*")["Statement"])
    assert alias_st["Resource"] == f"{fn_arn}:live"
    assert error(c.add_permission, FunctionName="guarded", StatementId="new",
                 Action="lambda:InvokeFunction", Principal="*", RevisionId="stale")[0] == 412
    c.remove_permission(FunctionName="guarded", StatementId="s3", RevisionId=policy["RevisionId"])
    assert error(c.get_policy, FunctionName="guarded")[0] == 404
    assert error(c.remove_permission, FunctionName="guarded", StatementId="s3")[2] == (
        "No policy is associated with the given resource.")
    assert json.loads(c.get_policy(FunctionName="guarded", Qualifier="live")["Policy"])[
        "Statement"][0]["Resource"] == f"{fn_arn}:live"
    out = json.loads(server.cli("lambda", "get-policy", "--function-name", "guarded",
                                "--qualifier", "live").stdout)
    assert json.loads(out["Policy"])["Statement"][0]["Sid"] == "s3"


def test_a_conditional_layer_grant_shares_with_nobody(server):
    """A grant limited to an organisation cannot be evaluated here (accounts
    belong to no organisation): it shares the layer with nobody, not with
    everyone its principal names. The same grant without the condition
    shares it."""
    a, b = server.client(), server.client(key=KEY_B)
    v = a.publish_layer_version(LayerName="org-only", Content={"ZipFile": layer_zip("org")})
    arn = v["LayerVersionArn"]
    added = a.add_layer_version_permission(LayerName="org-only", VersionNumber=1, StatementId="org",
                                           Action="lambda:GetLayerVersion", Principal="*",
                                           OrganizationId="o-a1b2c3d4e5")
    assert json.loads(added["Statement"])["Condition"] == {
        "StringEquals": {"aws:PrincipalOrgID": "o-a1b2c3d4e5"}}
    assert error(b.get_layer_version_by_arn, Arn=arn)[:2] == (403, "AccessDeniedException")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        b.create_function(FunctionName="b-uses-org-layer", Runtime="python3.11",
                          Role=f"arn:aws:iam::{ACCOUNT_B}:role/r", Handler="app.handler",
                          Code={"ZipFile": make_zip({"app.py": (PY_APP, 0o644)})}, Layers=[arn])
    assert e.value.response["Error"]["Code"] == "AccessDeniedException"
    assert error(b.get_function, FunctionName="b-uses-org-layer")[1] == "ResourceNotFoundException"
    # The owner still uses it; an unconditional grant shares it.
    assert a.get_layer_version_by_arn(Arn=arn)["Version"] == 1
    a.add_layer_version_permission(LayerName="org-only", VersionNumber=1, StatementId="all",
                                   Action="lambda:GetLayerVersion", Principal="*")
    assert b.get_layer_version_by_arn(Arn=arn)["LayerVersionArn"] == arn
