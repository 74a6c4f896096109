"""What a new user meets first, following the README: any region a client
names, ARNs in the right partition, runtimes the host lacks, AWS_ENDPOINT_URL,
plain logs when piped, the `lambent` CLI as documented, and where the
Prometheus metrics are served."""

import json
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import urllib.error
import urllib.request

import boto3
import botocore.config
import botocore.exceptions
import pytest

from conftest import ACCOUNT_A, KEY_A, ROLE, ROOT, Server, make_zip, wait_for

APP = "def handler(event, context):\n    print('hello from', context.invoked_function_arn)\n" \
      "    return {'arn': context.invoked_function_arn}\n"


def binary():
    return os.environ.get("LAMBENT_BIN", str(ROOT / "target/debug/lambent"))


def create(c, name):
    return c.create_function(FunctionName=name, Runtime="python3.11", Role=ROLE,
                             Handler="app.handler",
                             Code={"ZipFile": make_zip({"app.py": (APP, 0o644)})})


def lambent(server, *args):
    env = dict(os.environ, AWS_ACCESS_KEY_ID=KEY_A[0], AWS_SECRET_ACCESS_KEY=KEY_A[1],
               AWS_DEFAULT_REGION="us-east-1")
    env.pop("AWS_REGION", None)
    env.pop("LAMBENT_ENDPOINT", None)
    return subprocess.run([binary(), *args, "--data-dir", str(server.data)], env=env,
                          capture_output=True, text=True, timeout=60)


def client_in(server, region):
    return boto3.client("lambda", endpoint_url=server.endpoint, region_name=region,
                        aws_access_key_id=KEY_A[0], aws_secret_access_key=KEY_A[1],
                        config=botocore.config.Config(retries={"max_attempts": 0}))


def test_any_region_name_is_its_own_namespace(server):
    for region in ("local", "mars-north-9"):
        c = client_in(server, region)
        made = create(c, "regional")
        assert made["FunctionArn"] == f"arn:aws:lambda:{region}:{ACCOUNT_A}:function:regional"
        out = json.loads(c.invoke(FunctionName="regional")["Payload"].read())
        assert out["arn"] == made["FunctionArn"]
        names = [f["FunctionName"] for f in c.list_functions()["Functions"]]
        assert names == ["regional"], names
    home = [f["FunctionName"] for f in server.client().list_functions()["Functions"]]
    assert "regional" not in home, "us-east-1 does not see other regions' functions"


@pytest.mark.parametrize("region,partition", [
    ("cn-north-1", "aws-cn"),
    ("us-gov-west-1", "aws-us-gov"),
])
def test_arns_use_the_partition_of_the_region(server, region, partition):
    c = client_in(server, region)
    made = create(c, "partitioned")
    arn = f"arn:{partition}:lambda:{region}:{ACCOUNT_A}:function:partitioned"
    assert made["FunctionArn"] == arn
    # The ARN is accepted back wherever a function is named.
    assert c.get_function(FunctionName=arn)["Configuration"]["FunctionArn"] == arn
    out = json.loads(c.invoke(FunctionName=arn + ":$LATEST")["Payload"].read())
    assert out["arn"] == arn + ":$LATEST"
    assert c.list_tags(Resource=arn)["Tags"] == {}
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.get_function(FunctionName="222222222222:function:partitioned")
    assert f"arn:{partition}:iam::{ACCOUNT_A}:root" in e.value.response["Error"]["Message"]


def test_the_cli_takes_a_region_and_follows_a_full_arn(server):
    c = client_in(server, "eu-west-1")
    arn = create(c, "cli-regional")["FunctionArn"]
    # The environment's region (us-east-1) has no such function.
    out = lambent(server, "invoke", "cli-regional")
    assert out.returncode != 0 and "ResourceNotFoundException" in out.stderr, out.stderr
    out = lambent(server, "invoke", "cli-regional", "--region", "eu-west-1", "--log")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["arn"] == arn
    out = lambent(server, "invoke", arn)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["arn"] == arn
    out = lambent(server, "invoke", arn, "--region", "us-west-2")
    assert out.returncode != 0
    assert "the function ARN is in region eu-west-1 but --region says us-west-2" in out.stderr
    for args in (("logs", arn), ("logs", "cli-regional", "--region", "eu-west-1")):
        logs = wait_for("the function's log", lambda: (lambda o: o if "hello from" in o.stdout
                                                       else None)(lambent(server, *args)))
        assert f"hello from {arn}" in logs.stdout


def missing_python_minor():
    dirs = [pathlib.Path(d) for d in os.environ.get("PATH", "").split(os.pathsep) if d]
    dirs += [pathlib.Path("/usr/local/bin"), pathlib.Path("/usr/bin")]
    dirs += list(pathlib.Path(os.environ.get("PYENV_ROOT", pathlib.Path.home() / ".pyenv"))
                 .glob("versions/*/bin"))
    for minor in range(8, 15):
        if not any((d / f"python3.{minor}").exists() for d in dirs):
            return minor
    pytest.fail("every python3.8-3.14 is installed here: no runtime to miss")


def test_a_runtime_the_host_cannot_run_says_what_to_install(server):
    minor = missing_python_minor()
    c = server.client()
    with pytest.raises(c.exceptions.InvalidParameterValueException) as e:
        c.create_function(FunctionName="unrunnable", Runtime=f"python3.{minor}", Role=ROLE,
                          Handler="app.handler",
                          Code={"ZipFile": make_zip({"app.py": (APP, 0o644)})})
    msg = e.value.response["Error"]["Message"]
    assert msg.startswith(f"Value python3.{minor} at 'runtime' failed to satisfy constraint: "
                          "Member must satisfy enum value set: ["), msg
    assert f"python3.{minor} needs /usr/bin/python3.{minor}" in msg, msg
    names = [f["FunctionName"] for f in c.list_functions()["Functions"]]
    assert "unrunnable" not in names


def test_serve_names_its_runtimes_in_one_plain_line(server):
    log = server.log()
    lines = [l for l in log.splitlines() if "runtimes on this host: " in l]
    assert len(lines) == 1, log
    assert "provided.al2023" in lines[0] and "python3.11 (/" in lines[0], lines[0]
    # Its stderr is a file here, not a terminal: no colour codes anywhere.
    assert "\x1b[" not in log


def test_aws_endpoint_url_replaces_the_endpoint_flag(server, tmp_path):
    create(server.client(), "by-env")
    env = dict(os.environ, AWS_ACCESS_KEY_ID=KEY_A[0], AWS_SECRET_ACCESS_KEY=KEY_A[1],
               AWS_DEFAULT_REGION="us-east-1", AWS_PAGER="", AWS_ENDPOINT_URL=server.endpoint)
    env.pop("AWS_PROFILE", None)
    aws = shutil.which("aws") or str(pathlib.Path(os.sys.executable).parent / "aws")
    out = subprocess.run([aws, "lambda", "invoke", "--function-name", "by-env",
                          str(tmp_path / "out.json")],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads((tmp_path / "out.json").read_text())["arn"].endswith(":function:by-env")
    # Another service (CloudWatch Logs) signs for itself against the same endpoint.
    out = wait_for("the log through the aws CLI", lambda: (lambda o: o if "hello from" in o.stdout
                   else None)(subprocess.run(
                       [aws, "logs", "filter-log-events", "--log-group-name", "/aws/lambda/by-env",
                        "--output", "json"], env=env, capture_output=True, text=True,
                       timeout=120)))
    assert json.loads(out.stdout)["events"]
    # boto3 reads it too.
    script = ("import boto3; c = boto3.client('lambda');"
              "print([f['FunctionName'] for f in c.list_functions()['Functions']])")
    out = subprocess.run([os.sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "by-env" in out.stdout


def test_every_lambent_command_in_the_readme_exists():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", readme, re.S)
    commands = []
    for block in blocks:
        pending = ""
        for line in block.replace("\\\n", " ").splitlines():
            # A quoted argument may span lines: read on until the quote closes.
            pending = f"{pending}\n{line}" if pending else line
            try:
                words = shlex.split(pending, comments=True)
            except ValueError:
                continue
            pending = ""
            while words and (words[0] in ("sudo", "env") or "=" in words[0]):
                words = words[1:]
            if words and words[0] == "lambent":
                commands.append(words)
        assert not pending, f"a quote in the README never closes: {pending}"
    assert {c[1] for c in commands} >= {"serve", "invoke", "logs", "queue"}, commands
    for words in commands:
        help_text = subprocess.run([binary(), words[1], "--help"], capture_output=True,
                                   text=True, timeout=30)
        assert help_text.returncode == 0, (words, help_text.stderr)
        for flag in (w.split("=", 1)[0] for w in words[2:] if w.startswith("--")):
            assert re.search(rf"{re.escape(flag)}\b", help_text.stdout), (flag, words)


def get(url, token=None):
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_metrics_are_not_on_the_api_listener_by_default(server):
    create(server.client(), "counted")
    status, body = get(server.endpoint + "/lambent/metrics")
    assert status == 404 and "counted" not in body, body
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", server.metrics_endpoint)
    assert server.metrics_endpoint != server.endpoint
    status, body = get(server.metrics_endpoint + "/metrics")
    assert status == 200 and "# TYPE lambent_async_queue_depth gauge" in body, body


def test_metrics_with_a_token_and_on_the_api_when_asked(tmp_path):
    token_file = tmp_path / "metrics.token"
    token_file.write_text("Zm9vYmFy-token\n")
    s = Server(extra_args=("--metrics-token-file", str(token_file), "--metrics-on-api"))
    try:
        for url in (s.metrics_endpoint + "/metrics", s.endpoint + "/lambent/metrics"):
            assert get(url)[0] == 401, url
            assert get(url, token="wrong")[0] == 401, url
            status, body = get(url, token="Zm9vYmFy-token")
            assert status == 200 and "lambent_async_events_received_total" in body, url
    finally:
        s.stop()


def test_metrics_listen_off_and_a_bad_token_file(tmp_path):
    s = Server(extra_args=("--metrics-listen", "off"))
    try:
        assert s.metrics_endpoint is None
        assert get(s.endpoint + "/lambent/metrics")[0] == 404
    finally:
        s.stop()
    empty = tmp_path / "empty.token"
    empty.write_text("\n")
    out = subprocess.run([binary(), "serve", "--listen", "127.0.0.1:0", "--metrics-listen",
                          "127.0.0.1:0", "--data-dir", str(tmp_path / "data"),
                          "--metrics-token-file", str(empty)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert f"cannot read the metrics token file {empty}: it is empty" in out.stderr
