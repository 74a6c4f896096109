"""Versions, aliases with weighted routing, and reserved concurrency, through
boto3 and the aws CLI."""

import concurrent.futures
import json
import math

import botocore.config
import botocore.exceptions
import pytest

from conftest import ACCOUNT_A, ROLE, Server, make_zip, wait_for

APP = r'''
import os, time
VERSION_TAG = "%s"
def handler(event, context):
    if event.get("sleep"):
        time.sleep(event["sleep"])
    return {"tag": VERSION_TAG, "version": context.function_version,
            "arn": context.invoked_function_arn}
'''


def code(tag):
    return make_zip({"app.py": (APP % tag, 0o644)})


@pytest.fixture(scope="module")
def server():
    s = Server()
    yield s
    s.stop()


def arn(name, q=None):
    base = f"arn:aws:lambda:us-east-1:{ACCOUNT_A}:function:{name}"
    return f"{base}:{q}" if q else base


def invoke(c, name, payload=None, **kw):
    r = c.invoke(FunctionName=name, Payload=json.dumps(payload or {}).encode(), **kw)
    return r, json.loads(r["Payload"].read())


def error(call, **kw):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call(**kw)
    err = e.value.response["Error"]
    return e.value.response["ResponseMetadata"]["HTTPStatusCode"], err["Code"], err["Message"]


def raw_client(server):
    """A client that sends what it is given (no client-side validation)."""
    return server.client(parameter_validation=False)


def test_publish_versions_and_invoke_each(server):
    c = server.client()
    created = c.create_function(FunctionName="ver", Runtime="python3.11", Role=ROLE,
                                Handler="app.handler", Code={"ZipFile": code("one")}, Publish=True)
    assert created["Version"] == "1" and created["FunctionArn"] == arn("ver")
    assert error(c.publish_version, FunctionName="ver", CodeSha256="nope")[1:] == (
        "InvalidParameterValueException",
        f"CodeSHA256 (nope) is different from current CodeSHA256 in $LATEST "
        f"({created['CodeSha256']}). Please try again with the CodeSHA256 in $LATEST.")
    assert error(c.publish_version, FunctionName="ver", RevisionId="stale")[:2] == (
        412, "PreconditionFailedException")
    # Unchanged since version 1: publishing returns it again.
    again = c.publish_version(FunctionName="ver", Description="ignored")
    assert again["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert again["Version"] == "1" and again["FunctionArn"] == arn("ver", 1)

    updated = c.update_function_code(FunctionName="ver", ZipFile=code("two"), Publish=True)
    assert updated["Version"] == "2" and updated["FunctionArn"] == arn("ver", 2)
    c.update_function_code(FunctionName="ver", ZipFile=code("three"))
    v3 = c.publish_version(FunctionName="ver", Description="third")
    assert (v3["Version"], v3["Description"], v3["State"]) == ("3", "third", "Active")

    versions = c.list_versions_by_function(FunctionName="ver")["Versions"]
    assert [v["Version"] for v in versions] == ["$LATEST", "1", "2", "3"]
    assert [v["FunctionArn"] for v in versions] == [arn("ver", "$LATEST")] + [
        arn("ver", n) for n in (1, 2, 3)]
    pages = list(c.get_paginator("list_versions_by_function").paginate(
        FunctionName="ver", PaginationConfig={"PageSize": 1}))
    assert [p["Versions"][0]["Version"] for p in pages] == ["$LATEST", "1", "2", "3"]

    for q, tag in (("1", "one"), ("2", "two"), ("3", "three"), ("$LATEST", "three")):
        r, body = invoke(c, "ver", Qualifier=q)
        assert (r["ExecutedVersion"], body["tag"], body["version"]) == (q, tag, q)
        assert body["arn"] == arn("ver", q)
    r, body = invoke(c, arn("ver", 2))
    assert (r["ExecutedVersion"], body["tag"]) == ("2", "two")

    got = c.get_function(FunctionName="ver", Qualifier="1")
    assert got["Configuration"]["FunctionArn"] == arn("ver", 1)
    assert got["Configuration"]["Version"] == "1" and got["Code"]["Location"]
    assert error(c.get_function_configuration, FunctionName="ver", Qualifier="99")[1:] == (
        "ResourceNotFoundException", f"Function not found: {arn('ver', 99)}")
    assert error(c.invoke, FunctionName="ver", Qualifier="99")[1] == "ResourceNotFoundException"

    # Deleting a version keeps the others; numbers are never reused.
    c.delete_function(FunctionName="ver", Qualifier="1")
    c.delete_function(FunctionName="ver", Qualifier="1")  # already gone: no error
    assert error(c.delete_function, FunctionName="ver", Qualifier="$LATEST")[2] == (
        "$LATEST version cannot be deleted without deleting the function.")
    c.update_function_configuration(FunctionName="ver", Description="changed")
    assert c.publish_version(FunctionName="ver")["Version"] == "4"
    assert [v["Version"] for v in c.list_versions_by_function(FunctionName="ver")["Versions"]] == [
        "$LATEST", "2", "3", "4"]
    out = json.loads(server.cli("lambda", "list-versions-by-function",
                                "--function-name", "ver").stdout)
    assert len(out["Versions"]) == 4


def test_aliases_and_their_errors(server):
    c = server.client()
    raw = raw_client(server)
    c.create_function(FunctionName="al", Runtime="python3.11", Role=ROLE,
                      Handler="app.handler", Code={"ZipFile": code("a")}, Publish=True)
    c.update_function_code(FunctionName="al", ZipFile=code("b"), Publish=True)
    live = c.create_alias(FunctionName="al", Name="live", FunctionVersion="1", Description="prod")
    assert live["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert live["AliasArn"] == arn("al", "live")
    assert "RoutingConfig" not in live
    assert error(c.create_alias, FunctionName="al", Name="live", FunctionVersion="1") == (
        409, "ResourceConflictException", f"Alias already exists: {arn('al', 'live')}")
    assert error(c.get_alias, FunctionName="al", Name="nope")[1:] == (
        "ResourceNotFoundException", f"Cannot find alias arn: {arn('al', 'nope')}")
    assert error(c.update_alias, FunctionName="al", Name="nope", FunctionVersion="1")[2] == (
        f"Alias not found: {arn('al', 'nope')}")
    assert error(c.create_alias, FunctionName="al", Name="x", FunctionVersion="9")[1:] == (
        "ResourceNotFoundException", f"Function not found: {arn('al', 9)}")
    assert error(raw.create_alias, FunctionName="al", Name="2024", FunctionVersion="1")[1] == (
        "ValidationException")
    assert error(raw.create_alias, FunctionName="al", Name="x", FunctionVersion="1",
                 RoutingConfig={"AdditionalVersionWeights": {"1": 0.8, "2": 0.2}})[2] == (
        "Number of items in AdditionalVersionWeights cannot be greater than 1")
    assert error(raw.create_alias, FunctionName="al", Name="x", FunctionVersion="1",
                 RoutingConfig={"AdditionalVersionWeights": {"1": 0.5}})[2] == (
        "Invalid function version 1. Function version 1 is already included in routing configuration.")
    assert error(raw.create_alias, FunctionName="al", Name="x", FunctionVersion="$LATEST",
                 RoutingConfig={"AdditionalVersionWeights": {"1": 0.5}})[2] == (
        "$LATEST is not supported for an alias pointing to more than 1 version")
    msg = error(raw.create_alias, FunctionName="al", Name="x", FunctionVersion="1",
                RoutingConfig={"AdditionalVersionWeights": {"2": 2}})[2]
    assert msg.startswith("1 validation error detected: Value '{2=2.0}' at "
                          "'routingConfig.additionalVersionWeights'"), msg

    r, body = invoke(c, "al", Qualifier="live")
    assert (r["ExecutedVersion"], body["tag"], body["arn"]) == ("1", "a", arn("al", "live"))
    got = c.get_function_configuration(FunctionName=arn("al", "live"))
    assert (got["FunctionArn"], got["Version"]) == (arn("al", "live"), "1")
    # A version an alias routes to cannot be deleted.
    assert error(c.delete_function, FunctionName="al", Qualifier="1")[:2] == (
        409, "ResourceConflictException")
    assert error(c.delete_function, FunctionName="al", Qualifier="live")[2] == (
        "Deletion of aliases is not currently supported.")

    rev = c.get_alias(FunctionName="al", Name="live")["RevisionId"]
    assert error(c.update_alias, FunctionName="al", Name="live", RevisionId="stale")[0] == 412
    moved = c.update_alias(FunctionName="al", Name="live", FunctionVersion="2", RevisionId=rev)
    assert moved["FunctionVersion"] == "2" and moved["Description"] == "prod"
    assert moved["RevisionId"] != rev
    assert invoke(c, "al", Qualifier="live")[0]["ExecutedVersion"] == "2"
    c.create_alias(FunctionName="al", Name="beta", FunctionVersion="$LATEST")
    names = [a["Name"] for a in c.list_aliases(FunctionName="al")["Aliases"]]
    assert names == ["beta", "live"]
    assert [a["Name"] for a in c.list_aliases(FunctionName="al", FunctionVersion="2")["Aliases"]] == [
        "live"]
    c.delete_alias(FunctionName="al", Name="beta")
    c.delete_alias(FunctionName="al", Name="beta")  # already gone: 204
    assert [a["Name"] for a in c.list_aliases(FunctionName="al")["Aliases"]] == ["live"]


def test_weighted_alias_routes_within_binomial_bounds(server):
    """90/10 over 1,000 invocations: the count on the 10 % version must fall
    within 6 standard deviations of 100 (a chance of about 2e-9 to fail by
    bad luck; a router that ignores weights lands at 0 or 500)."""
    c = server.client()
    c.create_function(FunctionName="canary", Runtime="python3.11", Role=ROLE,
                      Handler="app.handler", Code={"ZipFile": code("stable")}, Publish=True)
    c.update_function_code(FunctionName="canary", ZipFile=code("new"), Publish=True)
    c.create_alias(FunctionName="canary", Name="prod", FunctionVersion="1",
                   RoutingConfig={"AdditionalVersionWeights": {"2": 0.1}})
    n, p = 1000, 0.1
    seen = {"1": 0, "2": 0}

    def one(_):
        r, body = invoke(c, "canary", Qualifier="prod")
        assert body["tag"] == {"1": "stable", "2": "new"}[r["ExecutedVersion"]]
        return r["ExecutedVersion"]

    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        for v in ex.map(one, range(n)):
            seen[v] += 1
    mean, sd = n * p, math.sqrt(n * p * (1 - p))
    assert abs(seen["2"] - mean) <= 6 * sd, seen
    assert seen["1"] + seen["2"] == n


def test_reserved_concurrency_throttles_exactly(server):
    c = server.client()
    c.create_function(FunctionName="reserved", Runtime="python3.11", Role=ROLE,
                      Handler="app.handler", Code={"ZipFile": code("r")}, Timeout=10)
    before = c.get_account_settings()["AccountLimit"]
    assert c.get_function_concurrency(FunctionName="reserved").get(
        "ReservedConcurrentExecutions") is None
    put = c.put_function_concurrency(FunctionName="reserved", ReservedConcurrentExecutions=1)
    assert put["ReservedConcurrentExecutions"] == 1
    assert c.get_function(FunctionName="reserved")["Concurrency"] == {
        "ReservedConcurrentExecutions": 1}
    after = c.get_account_settings()["AccountLimit"]
    assert after["UnreservedConcurrentExecutions"] == before["UnreservedConcurrentExecutions"] - 1
    assert error(c.put_function_concurrency, FunctionName=arn("reserved", "1"),
                 ReservedConcurrentExecutions=1)[1] == "InvalidParameterValueException"
    limit = after["ConcurrentExecutions"]
    code_, kind, msg = error(c.put_function_concurrency, FunctionName="reserved",
                             ReservedConcurrentExecutions=limit)
    assert kind == "InvalidParameterValueException" and "below its minimum value of" in msg

    def slow(_):
        try:
            r, _ = invoke(c, "reserved", {"sleep": 1.5})
            return r["StatusCode"]
        except botocore.exceptions.ClientError as e:
            assert e.response["Error"]["Code"] == "TooManyRequestsException"
            assert e.response["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
            return 429

    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        results = sorted(ex.map(slow, range(2)))
    assert results == [200, 429]

    c.put_function_concurrency(FunctionName="reserved", ReservedConcurrentExecutions=0)
    e = error(c.invoke, FunctionName="reserved")
    assert e[:2] == (429, "TooManyRequestsException")
    c.delete_function_concurrency(FunctionName="reserved")
    assert invoke(c, "reserved")[0]["StatusCode"] == 200
    assert "Concurrency" not in c.get_function(FunctionName="reserved")


PROVISIONED_APP = r'''
import os, time
def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return os.environ["AWS_LAMBDA_INITIALIZATION_TYPE"]
'''


def test_provisioned_concurrency_absorbs_a_burst_without_cold_starts(server):
    import base64
    c = server.client()
    c.create_function(FunctionName="prov", Runtime="python3.11", Role=ROLE, Handler="app.handler",
                      Code={"ZipFile": make_zip({"app.py": (PROVISIONED_APP, 0o644)})},
                      Publish=True, Timeout=10)
    assert error(c.put_provisioned_concurrency_config, FunctionName="prov", Qualifier="$LATEST",
                 ProvisionedConcurrentExecutions=1)[2] == (
        "Provisioned Concurrency Configs cannot be applied to unpublished function versions.")
    assert error(c.get_provisioned_concurrency_config, FunctionName="prov", Qualifier="$LATEST")[2] == (
        "The function resource provided must be an alias or a published version.")
    assert error(c.get_provisioned_concurrency_config, FunctionName="prov", Qualifier="1")[1] == (
        "ProvisionedConcurrencyConfigNotFoundException")
    assert error(c.put_provisioned_concurrency_config, FunctionName="prov", Qualifier="nope",
                 ProvisionedConcurrentExecutions=1)[2] == f"Cannot find alias arn: {arn('prov', 'nope')}"
    put = c.put_provisioned_concurrency_config(FunctionName="prov", Qualifier="1",
                                               ProvisionedConcurrentExecutions=3)
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert (put["Status"], put["RequestedProvisionedConcurrentExecutions"],
            put["AllocatedProvisionedConcurrentExecutions"]) == ("IN_PROGRESS", 3, 0)
    ready = wait_for("READY", lambda: (lambda g: g["Status"] == "READY" and g)(
        c.get_provisioned_concurrency_config(FunctionName="prov", Qualifier="1")), timeout=60)
    assert ready["AllocatedProvisionedConcurrentExecutions"] == 3
    assert ready["AvailableProvisionedConcurrentExecutions"] == 3
    listed = c.list_provisioned_concurrency_configs(FunctionName="prov")["ProvisionedConcurrencyConfigs"]
    assert [x["FunctionArn"] for x in listed] == [arn("prov", 1)]
    assert server.environments("prov", "1") == (3, 0)

    def burst(_):
        r = c.invoke(FunctionName="prov", Qualifier="1", LogType="Tail",
                     Payload=json.dumps({"sleep": 0.5}).encode())
        return json.loads(r["Payload"].read()), base64.b64decode(r["LogResult"]).decode()

    with concurrent.futures.ThreadPoolExecutor(3) as ex:
        results = list(ex.map(burst, range(3)))
    for kind, log in results:
        assert kind == "provisioned-concurrency"
        report = [l for l in log.splitlines() if l.startswith("REPORT")]
        assert report and "Init Duration" not in report[0], log
    # Beyond the provisioned environments, invocations spill over on demand.
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        kinds = sorted(k for k, _ in ex.map(burst, range(4)))
    assert kinds.count("provisioned-concurrency") >= 1 and "on-demand" in kinds, kinds
    # Provisioned environments are kept: not reaped, replaced when lost.
    c.delete_provisioned_concurrency_config(FunctionName="prov", Qualifier="1")
    c.delete_provisioned_concurrency_config(FunctionName="prov", Qualifier="1")
    assert c.list_provisioned_concurrency_configs(FunctionName="prov")[
        "ProvisionedConcurrencyConfigs"] == []


def test_an_alias_to_latest_cannot_be_provisioned(server):
    """$LATEST is unpublished, so is an alias that points at it; once the
    alias points at a version, it can be provisioned."""
    c = server.client()
    c.create_function(FunctionName="prov-head", Runtime="python3.11", Role=ROLE, Handler="app.handler",
                      Code={"ZipFile": make_zip({"app.py": (PROVISIONED_APP, 0o644)})}, Publish=True)
    c.create_alias(FunctionName="prov-head", Name="head", FunctionVersion="$LATEST")
    assert error(c.put_provisioned_concurrency_config, FunctionName="prov-head", Qualifier="head",
                 ProvisionedConcurrentExecutions=1) == (
        400, "InvalidParameterValueException",
        "Provisioned Concurrency Configs cannot be applied to unpublished function versions.")
    assert c.list_provisioned_concurrency_configs(FunctionName="prov-head")[
        "ProvisionedConcurrencyConfigs"] == []
    assert server.environments("prov-head") == (0, 0)
    c.update_alias(FunctionName="prov-head", Name="head", FunctionVersion="1")
    put = c.put_provisioned_concurrency_config(FunctionName="prov-head", Qualifier="head",
                                               ProvisionedConcurrentExecutions=1)
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 202
    c.delete_provisioned_concurrency_config(FunctionName="prov-head", Qualifier="head")


def test_version_pages_and_markers_this_server_did_not_issue(server):
    """ListVersionsByFunction walks $LATEST, 1, 2, 3 in pages; a marker the
    server never issued lists nothing (starting over could loop a client)."""
    c = server.client()
    c.create_function(FunctionName="paged", Runtime="python3.11", Role=ROLE, Handler="app.handler",
                      Code={"ZipFile": code("v0")})
    for tag in ("v1", "v2", "v3"):
        c.update_function_code(FunctionName="paged", ZipFile=code(tag))
        wait_for("the update", lambda: c.get_function_configuration(FunctionName="paged")[
            "LastUpdateStatus"] == "Successful")
        c.publish_version(FunctionName="paged")
    versions, pages, marker = [], 0, None
    while True:
        kw = {"Marker": marker} if marker else {}
        page = c.list_versions_by_function(FunctionName="paged", MaxItems=3, **kw)
        pages += 1
        versions += [v["Version"] for v in page["Versions"]]
        marker = page.get("NextMarker")
        if not marker:
            break
    assert (versions, pages) == (["$LATEST", "1", "2", "3"], 2)
    for unknown in ("not-a-marker", "99"):
        page = c.list_versions_by_function(FunctionName="paged", Marker=unknown)
        assert page["Versions"] == [] and "NextMarker" not in page, (unknown, page)
    # The paginator, given a marker of its own, stops too.
    pages = c.get_paginator("list_versions_by_function").paginate(
        FunctionName="paged", PaginationConfig={"StartingToken": "not-a-marker"})
    assert [v for p in pages for v in p["Versions"]] == []


def test_provisioned_environments_outlive_the_keep_alive_and_a_restart():
    """With a one-second keep-alive, a provisioned environment stays (an
    on-demand one beside it goes); after the server restarts, the
    configuration is READY again with its environment initialised ahead of
    demand."""
    s = Server(extra_args=["--keep-alive", "1"])
    try:
        c = s.client()
        c.create_function(FunctionName="kept", Runtime="python3.11", Role=ROLE, Handler="app.handler",
                          Code={"ZipFile": make_zip({"app.py": (PROVISIONED_APP, 0o644)})},
                          Publish=True, Timeout=10)
        c.put_provisioned_concurrency_config(FunctionName="kept", Qualifier="1",
                                             ProvisionedConcurrentExecutions=1)
        ready = lambda: (lambda g: g["Status"] == "READY" and g)(
            c.get_provisioned_concurrency_config(FunctionName="kept", Qualifier="1"))
        wait_for("READY", ready, timeout=60)
        wait_for("the provisioned environment", lambda: s.environments("kept", "1") == (1, 0))
        # An on-demand environment of $LATEST, idle from now on like the provisioned one.
        assert invoke(c, "kept")[1] == "on-demand"
        assert s.environments("kept") == (1, 0)
        wait_for("the keep-alive to stop the on-demand environment",
                 lambda: s.environments("kept") == (0, 0))
        assert s.environments("kept", "1") == (1, 0)
        r, kind = invoke(c, "kept", Qualifier="1", LogType="Tail")
        assert kind == "provisioned-concurrency"
        s.restart()
        c = s.client()
        got = wait_for("READY after the restart", ready, timeout=60)
        assert got["AvailableProvisionedConcurrentExecutions"] == 1
        wait_for("the provisioned environment after the restart", lambda: s.environments("kept", "1") == (1, 0))
        import base64
        r, kind = invoke(c, "kept", Qualifier="1", LogType="Tail")
        report = [line for line in base64.b64decode(r["LogResult"]).decode().splitlines()
                  if line.startswith("REPORT")]
        assert kind == "provisioned-concurrency" and report and "Init Duration" not in report[0], report
    finally:
        s.stop()


def test_provisioned_concurrency_reports_init_failure(server):
    c = server.client()
    c.create_function(FunctionName="prov-broken", Runtime="python3.11", Role=ROLE,
                      Handler="app.handler",
                      Code={"ZipFile": make_zip({"app.py": ("raise RuntimeError('no')\n", 0o644)})},
                      Publish=True)
    c.create_alias(FunctionName="prov-broken", Name="live", FunctionVersion="1")
    c.put_provisioned_concurrency_config(FunctionName="prov-broken", Qualifier="live",
                                         ProvisionedConcurrentExecutions=1)
    failed = wait_for("FAILED", lambda: (lambda g: g["Status"] == "FAILED" and g)(
        c.get_provisioned_concurrency_config(FunctionName="prov-broken", Qualifier="live")),
        timeout=60)
    assert failed["StatusReason"] == "FUNCTION_ERROR_INIT_FAILURE"
    assert error(c.put_provisioned_concurrency_config, FunctionName="prov-broken", Qualifier="1",
                 ProvisionedConcurrentExecutions=1)[:2] == (409, "ResourceConflictException")


def test_canary_rollout_and_capacity_with_the_aws_cli(server, tmp_path):
    """Publish, alias, shift weights, cap concurrency: all through the aws CLI."""
    zip1, zip2 = tmp_path / "v1.zip", tmp_path / "v2.zip"
    zip1.write_bytes(code("blue"))
    zip2.write_bytes(code("green"))
    cli = lambda *a: json.loads(server.cli("lambda", *a).stdout or "{}")
    cli("create-function", "--function-name", "rollout", "--runtime", "python3.11",
        "--role", ROLE, "--handler", "app.handler", "--zip-file", f"fileb://{zip1}", "--publish")
    cli("create-alias", "--function-name", "rollout", "--name", "prod", "--function-version", "1")
    cli("update-function-code", "--function-name", "rollout", "--zip-file", f"fileb://{zip2}")
    assert cli("publish-version", "--function-name", "rollout")["Version"] == "2"
    shifted = cli("update-alias", "--function-name", "rollout", "--name", "prod",
                  "--routing-config", "AdditionalVersionWeights={2=0.5}")
    assert shifted["RoutingConfig"]["AdditionalVersionWeights"] == {"2": 0.5}
    seen = set()
    for _ in range(40):
        out = tmp_path / "out.json"
        meta = cli("invoke", "--function-name", "rollout", "--qualifier", "prod", str(out))
        seen.add((meta["ExecutedVersion"], json.loads(out.read_text())["tag"]))
        if len(seen) == 2:
            break
    assert seen == {("1", "blue"), ("2", "green")}
    done = cli("update-alias", "--function-name", "rollout", "--name", "prod",
               "--function-version", "2", "--routing-config", "AdditionalVersionWeights={}")
    assert done["FunctionVersion"] == "2" and "RoutingConfig" not in done
    assert cli("put-function-concurrency", "--function-name", "rollout",
               "--reserved-concurrent-executions", "5") == {"ReservedConcurrentExecutions": 5}
    assert cli("get-function-concurrency", "--function-name", "rollout") == {
        "ReservedConcurrentExecutions": 5}
    aliases = cli("list-aliases", "--function-name", "rollout")["Aliases"]
    assert [(a["Name"], a["FunctionVersion"]) for a in aliases] == [("prod", "2")]
