"""`lambent deploy` end to end: sample SAM applications (in tests/e2e/sam/,
written as SAM's documentation writes them and each checked with AWS's own
SAM transform, aws-sam-translator) deployed with one command, called,
redeployed unchanged (nothing changes: same CodeSha256, same versions),
changed, and removed; unsupported parts refused by name with nothing
changed."""

import io
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
import zipfile

import boto3
import pytest
from samtranslator.translator.transform import transform as sam_transform
from samtranslator.yaml_helper import yaml_parse

from conftest import ACCOUNT_A, KEY_A, ROOT, Server, wait_for

SAM = pathlib.Path(__file__).parent / "sam"
BINARY = os.environ.get("LAMBENT_BIN", str(ROOT / "target/debug/lambent"))
REGION = "us-east-1"

_getaddrinfo = socket.getaddrinfo


def _resolve_localhost(host, *args, **kwargs):
    # curl resolves *.localhost to the loopback address by itself.
    if isinstance(host, str) and host.endswith(".localhost"):
        host = "127.0.0.1"
    return _getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = _resolve_localhost


class _Managed:
    """Enough of IAM's managed-policy lookup for the transform (offline)."""

    def load(self):
        return {"AWSLambdaBasicExecutionRole":
                "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"}


def sam_translate(template_path, parameters=None):
    """AWS's SAM transform of the template: raises if it is not valid SAM."""
    template = yaml_parse(pathlib.Path(template_path).read_text())
    # As `sam validate` does: local code paths stand for the S3 objects
    # `sam package` would upload them to.
    for r in template.get("Resources", {}).values():
        props = r.get("Properties") or {}
        for k in ("CodeUri", "ContentUri"):
            if isinstance(props.get(k), str) and not props[k].startswith("s3://"):
                props[k] = "s3://bucket/" + props[k].strip("/")
    # The transform fills in pseudo parameters from the default session's region.
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    return sam_transform(template, parameters or {}, _Managed())


def app(name, tmp_path):
    """A copy of a sample app to build in (builds write .aws-sam/ beside it)."""
    dst = tmp_path / name
    shutil.copytree(SAM / name, dst)
    return dst


def python_wheel(dst, greeting_prefix="dep says"):
    """A local wheel (no index needed) the Python apps require."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("greet/__init__.py", f"def greet(s):\n    return '{greeting_prefix}: ' + s\n")
        z.writestr("greet-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: greet\nVersion: 1.0\n")
        z.writestr("greet-1.0.dist-info/WHEEL",
                   "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr("greet-1.0.dist-info/RECORD",
                   "greet/__init__.py,,\ngreet-1.0.dist-info/METADATA,,\n"
                   "greet-1.0.dist-info/WHEEL,,\ngreet-1.0.dist-info/RECORD,,\n")
    (dst / "greet-1.0-py3-none-any.whl").write_bytes(buf.getvalue())


def npm_tarball(path, name, source):
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as t:
        for fname, text in (("package.json", json.dumps({"name": name, "version": "1.0.0",
                                                          "main": "index.js"})),
                            ("index.js", source)):
            data = text.encode()
            info = tarfile.TarInfo(f"package/{fname}")
            info.size = len(data)
            info.mtime = 0
            t.addfile(info, io.BytesIO(data))


def lambent(server, *args, check=True, cwd=None):
    env = dict(os.environ)
    env.update(AWS_ACCESS_KEY_ID=KEY_A[0], AWS_SECRET_ACCESS_KEY=KEY_A[1],
               AWS_REGION=REGION, LAMBENT_ENDPOINT=server.endpoint)
    env.pop("AWS_PROFILE", None)
    proc = subprocess.run([BINARY, *args], env=env, capture_output=True, text=True,
                          timeout=600, cwd=cwd)
    if check and proc.returncode != 0:
        raise AssertionError(f"lambent {' '.join(args)} failed ({proc.returncode}):\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


def deploy(server, template, stack, *extra, check=True, cwd=None):
    where = ("--template", str(template)) if template else ()
    p = lambent(server, "deploy", *where, "--stack-name", stack,
                "--output", "json", *extra, check=check, cwd=cwd)
    return (json.loads(p.stdout) if p.returncode == 0 else None), p


def actions(summary):
    return {r["LogicalResourceId"]: r["Action"] for r in summary["Resources"]}


def outputs(summary):
    return {o["OutputKey"]: o["OutputValue"] for o in summary["Outputs"]}


def get(url, timeout=30):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, json.loads(r.read())


def snapshot(c, name):
    """What a redeploy must leave alone: code, configuration and versions."""
    f = c.get_function(FunctionName=name)["Configuration"]
    versions = [(v["Version"], v["CodeSha256"])
                for v in c.list_versions_by_function(FunctionName=name)["Versions"]]
    aliases = [(a["Name"], a["FunctionVersion"], a["RevisionId"])
               for a in c.list_aliases(FunctionName=name)["Aliases"]]
    return f["CodeSha256"], f["RevisionId"], versions, aliases


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def moto():
    port = free_port()
    exe = pathlib.Path(sys.executable).parent / "moto_server"
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def answers():
        try:
            with urllib.request.urlopen(url + "/moto-api/", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    wait_for("the moto server", answers, timeout=60)
    yield url
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture(scope="module")
def server(moto):
    env = dict(os.environ)
    env.update(AWS_ENDPOINT_URL_SQS=moto, AWS_ACCESS_KEY_ID="testing",
               AWS_SECRET_ACCESS_KEY="testing", AWS_REGION=REGION)
    env.pop("AWS_PROFILE", None)
    s = Server(env=env)
    yield s
    s.stop()


def test_python_app_deploys_runs_redeploys_unchanged_changes_and_goes(server, tmp_path):
    d = app("python-hello", tmp_path)
    python_wheel(d / "hello_world")
    sam_translate(d / "template.yaml")
    c = server.client()
    name = "hello-HelloWorldFunction"

    # From the app's folder, as `sam deploy` runs: template.yaml found there,
    # CodeUri relative to it.
    summary, p = deploy(server, None, "hello", cwd=d)
    assert actions(summary) == {"HelloWorldFunction": "created"}
    assert "building (pip install -r requirements.txt)" in p.stderr
    out = outputs(summary)
    assert out["HelloWorldFunction"] == f"arn:aws:lambda:{REGION}:{ACCOUNT_A}:function:{name}"
    assert out["HelloWorldFunctionIamRole"] == f"arn:aws:iam::{ACCOUNT_A}:role/hello-HelloWorldFunctionRole"
    url = out["HelloWorldUrl"]
    assert get(url) == (200, {"message": "dep says: hello world"})
    conf = c.get_function(FunctionName=name)["Configuration"]
    assert (conf["Runtime"], conf["Handler"], conf["Timeout"], conf["MemorySize"]) == \
        ("python3.11", "app.lambda_handler", 3, 128)
    assert c.get_alias(FunctionName=name, Name="live")["FunctionVersion"] == "1"
    before = snapshot(c, name)

    # Unchanged: nothing is written (same code, revision, versions, alias).
    summary, p = deploy(server, d / "template.yaml", "hello")
    assert actions(summary) == {"HelloWorldFunction": "unchanged"}
    assert snapshot(c, name) == before
    assert outputs(summary)["HelloWorldUrl"] == url

    # A parameter and the code change: one update, a new version behind the alias.
    (d / "hello_world" / "app.py").write_text(
        (d / "hello_world" / "app.py").read_text().replace('"message"', '"said"'))
    summary, _ = deploy(server, d / "template.yaml", "hello",
                        "--parameter-overrides", "Greeting=good morning")
    assert actions(summary) == {"HelloWorldFunction": "updated (code, configuration, alias)"}
    assert c.get_alias(FunctionName=name, Name="live")["FunctionVersion"] == "2"
    assert get(url) == (200, {"said": "dep says: good morning"})
    assert c.get_function(FunctionName=name)["Configuration"]["Environment"]["Variables"] == \
        {"GREETING": "good morning"}

    # Listed, in a table and as JSON.
    table = lambent(server, "functions").stdout
    assert name in table and "hello" in table.splitlines()[1]
    listed = json.loads(lambent(server, "functions", "--output", "json").stdout)["Functions"]
    assert [(f["FunctionName"], f["Stack"]) for f in listed] == [(name, "hello")]

    # Removed from the template: removed from the server, URL with it.
    (d / "template.yaml").write_text(
        "AWSTemplateFormatVersion: '2010-09-09'\nTransform: AWS::Serverless-2016-10-31\n"
        "Resources:\n  Other:\n    Type: AWS::Serverless::Function\n    Properties:\n"
        "      InlineCode: \"def h(e, c):\\n    return 1\\n\"\n      Handler: index.h\n"
        "      Runtime: python3.11\n")
    sam_translate(d / "template.yaml")
    summary, _ = deploy(server, d / "template.yaml", "hello")
    assert actions(summary) == {"Other": "created", "HelloWorldFunction": "deleted"}
    with pytest.raises(c.exceptions.ResourceNotFoundException):
        c.get_function(FunctionName=name)
    with pytest.raises(urllib.error.HTTPError) as e:
        get(url)
    assert e.value.code == 403  # as AWS answers a URL that is gone
    assert json.loads(c.invoke(FunctionName="hello-Other")["Payload"].read()) == 1

    lambent(server, "delete", "--stack-name", "hello")
    assert c.list_functions()["Functions"] == []


def test_unsupported_parts_are_refused_by_name_and_nothing_changes(server, tmp_path):
    d = app("python-httpapi", tmp_path)
    python_wheel(d / "hello_world")
    sam_translate(d / "template.yaml")
    c = server.client()
    before = c.list_functions()["Functions"]
    _, p = deploy(server, d / "template.yaml", "httpapi", check=False)
    assert p.returncode == 1
    assert p.stderr.strip() == (
        "lambent: resource HelloWorldFunction: property Events.HelloWorld (Type HttpApi) is not "
        "supported by lambent deploy: the local API Gateway is not available yet; use "
        "FunctionUrlConfig for HTTP")
    bad = tmp_path / "bad.yaml"
    bad.write_text("Transform: AWS::Serverless-2016-10-31\nResources:\n  T:\n"
                   "    Type: AWS::DynamoDB::Table\n")
    _, p = deploy(server, bad, "bad", check=False)
    assert "resource T: type AWS::DynamoDB::Table is not supported by lambent deploy" in p.stderr
    _, p = deploy(server, SAM / "sqs-worker" / "template.yaml", "sqs", check=False)
    assert p.stderr.strip() == ("lambent: parameter QueueArn: has no Default: pass it with "
                                "--parameter-overrides QueueArn=VALUE")
    assert c.list_functions()["Functions"] == before


def test_node_app_installs_dependencies_without_dev_dependencies(server, tmp_path):
    d = app("node-url", tmp_path)
    npm_tarball(d / "app/vendor/greet-1.0.0.tgz", "greet", "module.exports = (w) => `hello ${w}`;\n")
    npm_tarball(d / "app/vendor/devtool-1.0.0.tgz", "devtool", "module.exports = 1;\n")
    sam_translate(d / "template.yaml")
    summary, p = deploy(server, d / "template.yaml", "node")
    assert actions(summary) == {"NodeFunction": "created"}
    url = outputs(summary)["NodeUrl"]
    assert get(url + "world") == (200, {"message": "hello /world", "path": "/world"})
    c = server.client()
    code = c.get_function(FunctionName="node-NodeFunction")["Code"]["Location"]
    with urllib.request.urlopen(code, timeout=30) as r:
        names = zipfile.ZipFile(io.BytesIO(r.read())).namelist()
    assert "node_modules/greet/index.js" in names
    assert not any(n.startswith("node_modules/devtool") for n in names)
    sha = c.get_function(FunctionName="node-NodeFunction")["Configuration"]["CodeSha256"]
    summary, _ = deploy(server, d / "template.yaml", "node")
    assert actions(summary) == {"NodeFunction": "unchanged"}
    assert c.get_function(FunctionName="node-NodeFunction")["Configuration"]["CodeSha256"] == sha
    lambent(server, "delete", "--stack-name", "node")


def test_sqs_worker_gets_its_queue_and_loses_it(server, moto, tmp_path):
    sqs = boto3.client("sqs", endpoint_url=moto, region_name=REGION,
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    q = sqs.create_queue(QueueName="jobs")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=q, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    d = app("sqs-worker", tmp_path)
    sam_translate(d / "template.yaml", {"QueueArn": arn})
    summary, _ = deploy(server, d / "template.yaml", "worker",
                        "--parameter-overrides", f"QueueArn={arn}", "BatchSize=5")
    assert actions(summary) == {"WorkerFunction": "created"}
    name = outputs(summary)["WorkerFunctionName"]
    assert name == "worker-WorkerFunction"
    c = server.client()
    [m] = c.list_event_source_mappings(FunctionName=name)["EventSourceMappings"]
    assert (m["EventSourceArn"], m["BatchSize"]) == (arn, 5)
    sqs.send_message(QueueUrl=q, MessageBody="job-1")
    logs = server.client(service="logs")

    def worked():
        try:
            ev = logs.filter_log_events(logGroupName=f"/aws/lambda/{name}")["events"]
        except logs.exceptions.ResourceNotFoundException:
            return False
        return any('{"worked": "job-1"}' in e["message"] for e in ev)

    wait_for("the worker to take the message", worked, timeout=60)
    shown = json.loads(lambent(server, "mappings", "--output", "json").stdout)
    assert [(x["UUID"], x["State"]) for x in shown["EventSourceMappings"]] == [(m["UUID"], "Enabled")]
    queued = json.loads(lambent(server, "queue", "--output", "json").stdout)
    assert set(queued) == {"AsyncQueue", "PendingDeliveries"}

    summary, _ = deploy(server, d / "template.yaml", "worker",
                        "--parameter-overrides", f"QueueArn={arn}", "BatchSize=5")
    assert actions(summary) == {"WorkerFunction": "unchanged"}
    assert [x["UUID"] for x in c.list_event_source_mappings(FunctionName=name)["EventSourceMappings"]] \
        == [m["UUID"]]

    summary, _ = deploy(server, d / "template.yaml", "worker",
                        "--parameter-overrides", f"QueueArn={arn}", "BatchSize=2")
    assert actions(summary) == {"WorkerFunction": "updated (triggers)"}
    [m2] = c.list_event_source_mappings(FunctionName=name)["EventSourceMappings"]
    assert m2["BatchSize"] == 2

    lambent(server, "delete", "--stack-name", "worker")
    assert [x for x in c.list_event_source_mappings()["EventSourceMappings"]
            if x["State"] not in ("Deleting",)] == []


def test_scheduled_function_gets_a_schedule(server, tmp_path):
    d = app("scheduled", tmp_path)
    sam_translate(d / "template.yaml")
    summary, _ = deploy(server, d / "template.yaml", "cron")
    assert actions(summary) == {"TickFunction": "created"}
    sched = server.client(service="scheduler")
    s = sched.get_schedule(Name="cron-TickFunction-EveryMinute")
    assert s["ScheduleExpression"] == "rate(1 minute)"
    assert s["Target"]["Arn"] == f"arn:aws:lambda:{REGION}:{ACCOUNT_A}:function:cron-TickFunction"
    assert s["Target"]["Input"] == '{"job": "cleanup"}'
    summary, _ = deploy(server, d / "template.yaml", "cron")
    assert actions(summary) == {"TickFunction": "unchanged"}
    # The event leaves the template: the schedule goes, the function stays.
    t = (d / "template.yaml").read_text()
    (d / "template.yaml").write_text(t[: t.index("      Events:")])
    sam_translate(d / "template.yaml")
    summary, _ = deploy(server, d / "template.yaml", "cron")
    assert actions(summary) == {"TickFunction": "updated (triggers)"}
    with pytest.raises(sched.exceptions.ResourceNotFoundException):
        sched.get_schedule(Name="cron-TickFunction-EveryMinute")
    lambent(server, "delete", "--stack-name", "cron")


def test_completions_print_a_script():
    p = subprocess.run([BINARY, "completions", "bash"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0
    assert "deploy" in p.stdout and "--stack-name" in p.stdout


def log_has(server, name, text):
    logs = server.client(service="logs")
    try:
        ev = logs.filter_log_events(logGroupName=f"/aws/lambda/{name}")["events"]
    except logs.exceptions.ResourceNotFoundException:
        return False
    return any(text in e["message"] for e in ev)


def test_sns_subscriber_with_a_layer(server, tmp_path):
    sns = server.client(service="sns")
    topic = sns.create_topic(Name="orders")["TopicArn"]
    d = app("sns-layer", tmp_path)
    sam_translate(d / "template.yaml", {"TopicArn": topic})
    summary, _ = deploy(server, d / "template.yaml", "subs", "--parameter-overrides", f"TopicArn={topic}")
    assert actions(summary) == {"SharedLayer": "created", "SubscriberFunction": "created"}
    layer = outputs(summary)["LayerArn"]
    assert layer == f"arn:aws:lambda:{REGION}:{ACCOUNT_A}:layer:shared:1"
    c = server.client()
    name = "subs-SubscriberFunction"
    assert [l["Arn"] for l in c.get_function(FunctionName=name)["Configuration"]["Layers"]] == [layer]
    [sub] = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert (sub["Protocol"], sub["Endpoint"]) == ("lambda", c.get_function(FunctionName=name)["Configuration"]["FunctionArn"])
    sns.publish(TopicArn=topic, Message="small one",
                MessageAttributes={"kind": {"DataType": "String", "StringValue": "small"}})
    sns.publish(TopicArn=topic, Message="big one",
                MessageAttributes={"kind": {"DataType": "String", "StringValue": "big"}})
    wait_for("the subscriber to log the big order",
             lambda: log_has(server, name, '{"got": "order big one"}'), timeout=60)
    assert not log_has(server, name, "small one")

    # Unchanged: the same layer version, no new subscription.
    summary, _ = deploy(server, d / "template.yaml", "subs", "--parameter-overrides", f"TopicArn={topic}")
    assert actions(summary) == {"SharedLayer": "unchanged", "SubscriberFunction": "unchanged"}
    assert len(c.list_layer_versions(LayerName="shared")["LayerVersions"]) == 1
    assert sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"] == [sub]

    # New layer code: a new version, and the function moves to it.
    (d / "layer/python/shared.py").write_text("def describe(m):\n    return 'ORDER ' + m\n")
    summary, _ = deploy(server, d / "template.yaml", "subs", "--parameter-overrides", f"TopicArn={topic}")
    assert actions(summary) == {"SharedLayer": "created", "SubscriberFunction": "updated (configuration)"}
    assert [l["Arn"] for l in c.get_function(FunctionName=name)["Configuration"]["Layers"]] == \
        [layer[:-1] + "2"]

    lambent(server, "delete", "--stack-name", "subs")
    assert sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"] == []


def test_a_deploy_that_fails_midway_is_completed_by_the_next(server, tmp_path):
    d = tmp_path / "resume"
    (d / "a").mkdir(parents=True)
    (d / "a" / "app.py").write_text("def handler(e, c):\n    return 'a'\n")
    (d / "b").mkdir()
    (d / "b" / "app.py").write_text("def handler(e, c):\n    return 'b'\n")
    template = ("AWSTemplateFormatVersion: '2010-09-09'\nTransform: AWS::Serverless-2016-10-31\n"
                "Resources:\n"
                "  A:\n    Type: AWS::Serverless::Function\n    Properties:\n"
                "      CodeUri: a/\n      Handler: app.handler\n      Runtime: python3.11\n"
                "  B:\n    Type: AWS::Serverless::Function\n    DependsOn: A\n    Properties:\n"
                "      CodeUri: b/\n      Handler: app.handler\n      Runtime: python3.11\n"
                "      MemorySize: {memory}\n")
    # B's memory is out of Lambda's range: A is created, B is refused.
    (d / "template.yaml").write_text(template.format(memory=64))
    sam_translate(d / "template.yaml")
    _, p = deploy(server, d / "template.yaml", "resume", check=False)
    assert p.returncode == 1
    assert "lambent: CreateFunction resume-B: " in p.stderr and "memorySize" in p.stderr
    c = server.client()
    assert c.get_function(FunctionName="resume-A")["Configuration"]["Handler"] == "app.handler"
    sha = c.get_function(FunctionName="resume-A")["Configuration"]["CodeSha256"]
    (d / "template.yaml").write_text(template.format(memory=256))
    summary, _ = deploy(server, d / "template.yaml", "resume")
    assert actions(summary) == {"A": "unchanged", "B": "created"}
    assert c.get_function(FunctionName="resume-A")["Configuration"]["CodeSha256"] == sha
    assert json.loads(c.invoke(FunctionName="resume-B")["Payload"].read()) == "b"
    lambent(server, "delete", "--stack-name", "resume")


def test_watch_updates_the_function_on_save_and_survives_build_errors(server, tmp_path):
    d = app("python-hello", tmp_path)
    python_wheel(d / "hello_world")
    env = dict(os.environ)
    env.update(AWS_ACCESS_KEY_ID=KEY_A[0], AWS_SECRET_ACCESS_KEY=KEY_A[1],
               AWS_REGION=REGION, LAMBENT_ENDPOINT=server.endpoint)
    log_path = tmp_path / "watch.log"
    proc = subprocess.Popen([BINARY, "deploy", "--watch", "--stack-name", "live"], cwd=d, env=env,
                            stdout=subprocess.DEVNULL, stderr=open(log_path, "w"))
    try:
        text = lambda: log_path.read_text()
        wait_for("the first deploy", lambda: "Watching" in text(), timeout=120)
        url = next(l.split(" = ")[1] for l in text().splitlines() if "HelloWorldUrl = " in l)
        assert get(url) == (200, {"message": "dep says: hello world"})
        app_py = d / "hello_world" / "app.py"

        def edit_and_time(old, new):
            app_py.write_text(app_py.read_text().replace(old, new))
            started = time.monotonic()
            wait_for("the new code to answer",
                     lambda: get(url)[1].get(new.strip('"')) is not None, timeout=30)
            return time.monotonic() - started

        took = edit_and_time('"message"', '"edited"')
        print(f"edit to new answer: {took:.2f} s")
        # A second is what the watch promises; a loaded machine gets its scale.
        assert took < 1.0 * max(1.0, float(os.environ.get("LAMBENT_TEST_TIMEOUT_SCALE") or 1))

        # A build that fails is shown; the watch goes on and the old code serves.
        req = d / "hello_world" / "requirements.txt"
        req.write_text("./missing-1.0-py3-none-any.whl\n")
        wait_for("the build error", lambda: "Still watching" in text(), timeout=60)
        assert "HelloWorldFunction: `" in text() and "failed" in text()
        assert proc.poll() is None
        assert get(url)[1] == {"edited": "dep says: hello world"}
        req.write_text("./greet-1.0-py3-none-any.whl\n")
        edit_and_time('"edited"', '"fixed"')
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    lambent(server, "delete", "--stack-name", "live")


def test_rust_and_makefile_builds(server, tmp_path):
    d = app("rust-make", tmp_path)
    sam_translate(d / "template.yaml")
    summary, p = deploy(server, d / "template.yaml", "built")
    assert actions(summary) == {"RustFunction": "created", "MakeFunction": "created"}
    assert "RustFunction: building (cargo build --release)" in p.stderr
    assert "MakeFunction: building (make)" in p.stderr
    c = server.client()
    r = c.invoke(FunctionName="built-RustFunction", Payload=b'{"n": 1}')
    assert json.loads(r["Payload"].read()) == {"from": "rust", "event": {"n": 1}}
    r = c.invoke(FunctionName="built-MakeFunction", Payload=b"{}")
    assert json.loads(r["Payload"].read()) == {"from": "make", "stamp": "made by make"}
    code = c.get_function(FunctionName="built-RustFunction")["Code"]["Location"]
    with urllib.request.urlopen(code, timeout=30) as z:
        info = zipfile.ZipFile(io.BytesIO(z.read())).getinfo("bootstrap")
    assert (info.external_attr >> 16) & 0o111
    shas = {n: c.get_function(FunctionName=n)["Configuration"]["CodeSha256"]
            for n in ("built-RustFunction", "built-MakeFunction")}
    summary, p = deploy(server, d / "template.yaml", "built")
    assert actions(summary) == {"RustFunction": "unchanged", "MakeFunction": "unchanged"}
    assert "RustFunction: build is up to date" in p.stderr
    assert {n: c.get_function(FunctionName=n)["Configuration"]["CodeSha256"] for n in shas} == shas
    lambent(server, "delete", "--stack-name", "built")


def test_a_canary_deployment_preference_shifts_the_alias_by_weights(server, tmp_path):
    d = tmp_path / "canary"
    d.mkdir()
    template = ("AWSTemplateFormatVersion: '2010-09-09'\nTransform: AWS::Serverless-2016-10-31\n"
                "Resources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n"
                "      InlineCode: \"def h(e, c):\\n    return {answer}\\n\"\n"
                "      Handler: index.h\n      Runtime: python3.11\n      AutoPublishAlias: live\n"
                "      DeploymentPreference:\n        Type: Canary10Percent5Minutes\n")
    (d / "template.yaml").write_text(template.format(answer=1))
    sam_translate(d / "template.yaml")
    deploy(server, d / "template.yaml", "canary")
    c = server.client()
    assert c.get_alias(FunctionName="canary-Fn", Name="live")["FunctionVersion"] == "1"
    (d / "template.yaml").write_text(template.format(answer=2))
    env = dict(os.environ)
    env.update(AWS_ACCESS_KEY_ID=KEY_A[0], AWS_SECRET_ACCESS_KEY=KEY_A[1],
               AWS_REGION=REGION, LAMBENT_ENDPOINT=server.endpoint)
    # Five minutes at 0.01: three seconds of 10% on the new version.
    proc = subprocess.Popen([BINARY, "deploy", "--template", str(d / "template.yaml"),
                             "--stack-name", "canary", "--shift-time-scale", "0.01"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def weights():
        a = c.get_alias(FunctionName="canary-Fn", Name="live")
        return a["FunctionVersion"], a.get("RoutingConfig", {}).get("AdditionalVersionWeights", {})

    wait_for("the canary step", lambda: weights() == ("1", {"2": 0.1}), timeout=60)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "Fn: alias live: 10% to version 2, 90% on 1; next step in 5 min" in err
    assert weights() == ("2", {})
    assert json.loads(c.invoke(FunctionName="canary-Fn", Qualifier="live")["Payload"].read()) == 2
    lambent(server, "delete", "--stack-name", "canary")


def test_a_template_with_its_own_role_deploys(server, tmp_path):
    d = tmp_path / "role"
    d.mkdir()
    (d / "template.yaml").write_text(
        "AWSTemplateFormatVersion: '2010-09-09'\nTransform: AWS::Serverless-2016-10-31\n"
        "Resources:\n"
        "  FnRole:\n    Type: AWS::IAM::Role\n    Properties:\n"
        "      AssumeRolePolicyDocument:\n        Version: '2012-10-17'\n        Statement:\n"
        "          - Effect: Allow\n            Principal: {Service: lambda.amazonaws.com}\n"
        "            Action: sts:AssumeRole\n"
        "      ManagedPolicyArns: [arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]\n"
        "  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n"
        "      InlineCode: \"def h(e, c):\\n    return 'ok'\\n\"\n"
        "      Handler: index.h\n      Runtime: python3.11\n      Role: !GetAtt FnRole.Arn\n"
        "Outputs:\n  Role:\n    Value: !Ref FnRole\n")
    sam_translate(d / "template.yaml")
    summary, p = deploy(server, d / "template.yaml", "own")
    assert actions(summary) == {"FnRole": "accepted without effect (no IAM here)", "Fn": "created"}
    assert outputs(summary) == {"Role": "own-FnRole"}
    c = server.client()
    assert c.get_function(FunctionName="own-Fn")["Configuration"]["Role"] == \
        f"arn:aws:iam::{ACCOUNT_A}:role/own-FnRole"
    lambent(server, "delete", "--stack-name", "own")


def test_a_layer_built_with_pip_lands_under_python(server, tmp_path):
    d = tmp_path / "deps-layer"
    (d / "deps").mkdir(parents=True)
    python_wheel(d / "deps", greeting_prefix="from the layer")
    (d / "deps" / "requirements.txt").write_text("./greet-1.0-py3-none-any.whl\n")
    (d / "template.yaml").write_text(
        "AWSTemplateFormatVersion: '2010-09-09'\nTransform: AWS::Serverless-2016-10-31\n"
        "Resources:\n"
        "  DepsLayer:\n    Type: AWS::Serverless::LayerVersion\n    Metadata:\n"
        "      BuildMethod: python3.11\n    Properties:\n      LayerName: deps\n"
        "      ContentUri: deps/\n      CompatibleRuntimes: [python3.11]\n"
        "  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n"
        "      InlineCode: \"import greet\\ndef h(e, c):\\n    return greet.greet('x')\\n\"\n"
        "      Handler: index.h\n      Runtime: python3.11\n      Layers: [!Ref DepsLayer]\n")
    sam_translate(d / "template.yaml")
    summary, p = deploy(server, d / "template.yaml", "deps")
    assert actions(summary) == {"DepsLayer": "created", "Fn": "created"}
    assert "DepsLayer: building (pip install -r requirements.txt)" in p.stderr
    c = server.client()
    assert json.loads(c.invoke(FunctionName="deps-Fn")["Payload"].read()) == "from the layer: x"
    lambent(server, "delete", "--stack-name", "deps")


def test_a_sam_build_output_deploys_as_it_is(server, tmp_path):
    # What `sam build` leaves: .aws-sam/build/template.yaml and built folders
    # (requirements.txt beside dependencies already installed).
    d = tmp_path / "built-app"
    built = d / ".aws-sam" / "build"
    (built / "HelloFunction" / "greet").mkdir(parents=True)
    (built / "HelloFunction" / "greet" / "__init__.py").write_text(
        "def greet(s):\n    return 'prebuilt ' + s\n")
    (built / "HelloFunction" / "app.py").write_text(
        "import greet\ndef handler(e, c):\n    return greet.greet('ok')\n")
    (built / "HelloFunction" / "requirements.txt").write_text("not-a-package-anywhere==9.9\n")
    (built / "template.yaml").write_text(
        "AWSTemplateFormatVersion: '2010-09-09'\nTransform: AWS::Serverless-2016-10-31\n"
        "Resources:\n  HelloFunction:\n    Type: AWS::Serverless::Function\n    Properties:\n"
        "      CodeUri: HelloFunction\n      Handler: app.handler\n      Runtime: python3.11\n")
    sam_translate(built / "template.yaml")
    summary, p = deploy(server, None, "prebuilt", cwd=d)
    assert actions(summary) == {"HelloFunction": "created"}
    assert "building" not in p.stderr
    c = server.client()
    assert json.loads(c.invoke(FunctionName="prebuilt-HelloFunction")["Payload"].read()) == "prebuilt ok"
    lambent(server, "delete", "--stack-name", "prebuilt")


def test_concurrency_and_event_invoke_settings_follow_the_template(server, tmp_path):
    d = tmp_path / "settings"
    d.mkdir()
    head = ("AWSTemplateFormatVersion: '2010-09-09'\nTransform: AWS::Serverless-2016-10-31\n"
            "Resources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n"
            "      InlineCode: \"def h(e, c):\\n    return 1\\n\"\n"
            "      Handler: index.h\n      Runtime: python3.11\n      AutoPublishAlias: live\n")
    (d / "template.yaml").write_text(
        head + "      ReservedConcurrentExecutions: 5\n"
        "      ProvisionedConcurrencyConfig: {ProvisionedConcurrentExecutions: 1}\n"
        "      EventInvokeConfig:\n        MaximumRetryAttempts: 1\n"
        "        MaximumEventAgeInSeconds: 120\n")
    sam_translate(d / "template.yaml")
    deploy(server, d / "template.yaml", "settings")
    c = server.client()
    name = "settings-Fn"
    assert c.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] == 5
    pc = c.get_provisioned_concurrency_config(FunctionName=name, Qualifier="live")
    assert pc["RequestedProvisionedConcurrentExecutions"] == 1
    eic = c.get_function_event_invoke_config(FunctionName=name, Qualifier="live")
    assert (eic["MaximumRetryAttempts"], eic["MaximumEventAgeInSeconds"]) == (1, 120)
    summary, _ = deploy(server, d / "template.yaml", "settings")
    assert actions(summary) == {"Fn": "unchanged"}

    # Settings that leave the template are removed.
    (d / "template.yaml").write_text(head)
    summary, _ = deploy(server, d / "template.yaml", "settings")
    assert actions(summary) == {"Fn": "updated (settings)"}
    assert "ReservedConcurrentExecutions" not in c.get_function_concurrency(FunctionName=name)
    with pytest.raises(c.exceptions.ProvisionedConcurrencyConfigNotFoundException):
        c.get_provisioned_concurrency_config(FunctionName=name, Qualifier="live")
    with pytest.raises(c.exceptions.ResourceNotFoundException):
        c.get_function_event_invoke_config(FunctionName=name, Qualifier="live")
    lambent(server, "delete", "--stack-name", "settings")
