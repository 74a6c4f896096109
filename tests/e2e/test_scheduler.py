"""EventBridge Scheduler through boto3 and the aws CLI: schedules fire their
Lambda target through the asynchronous queue, on time, once per due time,
across restarts.

The server runs with --schedule-time-scale 0.01: a minute of schedule time
passes in 0.6 s (`rate(1 minute)` fires every 0.6 s; `at()` ten minutes
ahead fires in 6 s). Each function's OnSuccess destination is an HTTP
collector, so every fire shows up as a destination record holding the
event the function received."""

import datetime
import http.server
import json
import threading
import time
import zoneinfo

import pytest

from conftest import ACCOUNT_A, ACCOUNT_B, KEY_B, ROLE, Server, make_zip, wait_for

SCALE = 0.01
SCHEDULER_ROLE = f"arn:aws:iam::{ACCOUNT_A}:role/scheduler-invoke"

APP = r'''
def echo(event, context):
    return {"got": event}
'''


class Collector:
    """An HTTP endpoint that keeps every destination record POSTed to it."""

    def __init__(self):
        self.lock = threading.Lock()
        self.posts = []
        collector = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with collector.lock:
                    collector.posts.append((self.path, json.loads(body), time.monotonic()))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def at(self, path):
        with self.lock:
            return [(rec, t) for p, rec, t in self.posts if p == path]

    def close(self):
        self.httpd.shutdown()


def opts():
    return ("--schedule-time-scale", str(SCALE), "--async-delay-scale", str(SCALE))


@pytest.fixture(scope="module")
def server():
    s = Server(extra_args=opts())
    yield s
    s.stop()


@pytest.fixture(scope="module")
def hooks():
    c = Collector()
    yield c
    c.close()


def function(server, hooks, name, key=None):
    """A function that returns its event, with every success POSTed to
    hooks at /<name>."""
    kw = {"key": key} if key else {}
    c = server.client(**kw)
    c.create_function(FunctionName=name, Runtime="python3.11", Role=ROLE, Handler="app.echo",
                      Code={"ZipFile": make_zip({"app.py": (APP, 0o644)})}, Timeout=10)
    c.put_function_event_invoke_config(
        FunctionName=name,
        DestinationConfig={"OnSuccess": {"Destination": f"{hooks.url}/{name}"}})
    account = ACCOUNT_B if key else ACCOUNT_A
    return f"arn:aws:lambda:us-east-1:{account}:function:{name}"


def at_expression(minutes_ahead, tz="UTC"):
    """at() for `minutes_ahead` of schedule time from now, on tz's clock."""
    t = datetime.datetime.now(zoneinfo.ZoneInfo(tz)) + datetime.timedelta(minutes=minutes_ahead)
    return t, f"at({t.strftime('%Y-%m-%dT%H:%M:%S')})"


def events(hooks, name):
    return [rec["responsePayload"]["got"] for rec, _ in hooks.at(f"/{name}")]


def test_a_one_time_schedule_fires_once_with_its_input(server, hooks):
    arn = function(server, hooks, "once")
    sch = server.client(service="scheduler")
    when, expr = at_expression(2, "America/New_York")
    payload = {"job": "report", "when": "<aws.scheduler.scheduled-time>",
               "schedule": "<aws.scheduler.schedule-arn>", "nested": {"keep": [1, 2, None]}}
    out = sch.create_schedule(
        Name="report-once", ScheduleExpression=expr,
        ScheduleExpressionTimezone="America/New_York",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": arn, "RoleArn": SCHEDULER_ROLE, "Input": json.dumps(payload)})
    schedule_arn = f"arn:aws:scheduler:us-east-1:{ACCOUNT_A}:schedule/default/report-once"
    assert out["ScheduleArn"] == schedule_arn
    got = sch.get_schedule(Name="report-once")
    assert got["ScheduleExpression"] == expr
    assert got["ScheduleExpressionTimezone"] == "America/New_York"
    assert got["State"] == "ENABLED"
    assert got["ActionAfterCompletion"] == "NONE"
    assert got["Target"]["RetryPolicy"] == {"MaximumEventAgeInSeconds": 86400,
                                            "MaximumRetryAttempts": 185}
    assert json.loads(got["Target"]["Input"]) == payload

    wait_for("the one-time fire", lambda: events(hooks, "once"))
    # Five more minutes of schedule time: nothing more.
    time.sleep(3)
    fired = events(hooks, "once")
    assert len(fired) == 1, fired
    scheduled = when.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert fired[0] == dict(payload, when=scheduled, schedule=schedule_arn)


def test_a_rate_schedule_fires_on_time_and_stops_when_disabled(server, hooks):
    arn = function(server, hooks, "ticker")
    target = json.dumps({"Arn": arn, "RoleArn": SCHEDULER_ROLE, "Input": '{"tick": true}'})
    started = time.monotonic()
    server.cli("scheduler", "create-schedule", "--name", "every-minute",
               "--schedule-expression", "rate(1 minute)",
               "--flexible-time-window", "Mode=OFF", "--target", target)
    # At once, then every 0.6 s.
    wait_for("four fires", lambda: len(events(hooks, "ticker")) >= 4)
    elapsed = time.monotonic() - started
    assert elapsed >= 1.7, f"four fires of rate(1 minute) took {elapsed:.2f}s (< 3 × 0.6 s)"
    times = [t for _, t in hooks.at("/ticker")]
    assert all(e == {"tick": True} for e in events(hooks, "ticker"))
    # Never two fires for one due time: the gaps are about 0.6 s, none near 0.
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert min(gaps) > 0.2, gaps

    server.cli("scheduler", "update-schedule", "--name", "every-minute",
               "--schedule-expression", "rate(1 minute)", "--state", "DISABLED",
               "--flexible-time-window", "Mode=OFF", "--target", target)
    got = json.loads(server.cli("scheduler", "get-schedule", "--name", "every-minute").stdout)
    assert got["State"] == "DISABLED"
    time.sleep(0.5)  # a fire already queued may still land
    stopped = len(events(hooks, "ticker"))
    time.sleep(3)  # five periods
    assert len(events(hooks, "ticker")) == stopped

    listed = json.loads(server.cli("scheduler", "list-schedules", "--state", "DISABLED").stdout)
    assert [s["Name"] for s in listed["Schedules"]] == ["every-minute"]
    server.cli("scheduler", "delete-schedule", "--name", "every-minute")
    gone = server.cli("scheduler", "get-schedule", "--name", "every-minute", check=False)
    assert gone.returncode != 0
    assert "ResourceNotFoundException" in gone.stderr
    assert "Schedule every-minute does not exist." in gone.stderr


def test_bad_requests_get_aws_errors_and_change_nothing(server):
    sch = server.client(service="scheduler")
    target = {"Arn": f"arn:aws:lambda:us-east-1:{ACCOUNT_A}:function:nobody",
              "RoleArn": SCHEDULER_ROLE}
    for expr in ("rate(10 seconds)", "cron(0 1 * * * *)", "cron(71 8 1 * ? *)",
                 "at(2021-12-31T23:59:59Z)"):
        with pytest.raises(sch.exceptions.ValidationException) as e:
            sch.create_schedule(Name="bad", ScheduleExpression=expr,
                                FlexibleTimeWindow={"Mode": "OFF"}, Target=target)
        assert e.value.response["Error"]["Message"] == f"Invalid Schedule Expression {expr}."
    with pytest.raises(sch.exceptions.ResourceNotFoundException):
        sch.get_schedule(Name="bad")
    with pytest.raises(sch.exceptions.ResourceNotFoundException) as e:
        sch.create_schedule(Name="x", GroupName="missing", ScheduleExpression="rate(1 hour)",
                            FlexibleTimeWindow={"Mode": "OFF"}, Target=target)
    assert e.value.response["Error"]["Message"] == "Schedule group missing does not exist."
    sch.create_schedule(Name="dup", ScheduleExpression="cron(0 3 * * ? *)",
                        FlexibleTimeWindow={"Mode": "FLEXIBLE", "MaximumWindowInMinutes": 15},
                        Target=target)
    with pytest.raises(sch.exceptions.ConflictException):
        sch.create_schedule(Name="dup", ScheduleExpression="cron(0 3 * * ? *)",
                            FlexibleTimeWindow={"Mode": "OFF"}, Target=target)
    with pytest.raises(sch.exceptions.ValidationException):
        sch.update_schedule(Name="dup", ScheduleExpression="cron(0 3 * * ? *)",
                            FlexibleTimeWindow={"Mode": "OFF"},
                            Target=dict(target, RetryPolicy={"MaximumRetryAttempts": 500}))
    assert sch.get_schedule(Name="dup")["FlexibleTimeWindow"] == {
        "Mode": "FLEXIBLE", "MaximumWindowInMinutes": 15}
    # Another account sees none of it.
    other = server.client(key=KEY_B, service="scheduler")
    with pytest.raises(other.exceptions.ResourceNotFoundException):
        other.get_schedule(Name="dup")
    assert other.list_schedules()["Schedules"] == []
    sch.delete_schedule(Name="dup")


def test_schedule_groups_and_tags(server):
    sch = server.client(service="scheduler")
    arn = sch.create_schedule_group(Name="nightly-jobs", Tags=[{"Key": "team", "Value": "ops"}])[
        "ScheduleGroupArn"]
    assert arn == f"arn:aws:scheduler:us-east-1:{ACCOUNT_A}:schedule-group/nightly-jobs"
    names = [g["Name"] for g in sch.list_schedule_groups()["ScheduleGroups"]]
    assert "default" in names and "nightly-jobs" in names
    assert sch.get_schedule_group(Name="nightly-jobs")["State"] == "ACTIVE"
    sch.tag_resource(ResourceArn=arn, Tags=[{"Key": "tier", "Value": "gold"}])
    sch.untag_resource(ResourceArn=arn, TagKeys=["team"])
    assert sch.list_tags_for_resource(ResourceArn=arn)["Tags"] == [
        {"Key": "tier", "Value": "gold"}]
    target = {"Arn": f"arn:aws:lambda:us-east-1:{ACCOUNT_A}:function:nobody",
              "RoleArn": SCHEDULER_ROLE}
    for i in range(3):
        sch.create_schedule(Name=f"job-{i}", GroupName="nightly-jobs",
                            ScheduleExpression="cron(0 2 ? * MON-FRI *)",
                            FlexibleTimeWindow={"Mode": "OFF"}, Target=target)
    pages = sch.get_paginator("list_schedules").paginate(
        GroupName="nightly-jobs", PaginationConfig={"PageSize": 2})
    assert [s["Name"] for p in pages for s in p["Schedules"]] == ["job-0", "job-1", "job-2"]
    sch.delete_schedule_group(Name="nightly-jobs")
    with pytest.raises(sch.exceptions.ResourceNotFoundException):
        sch.get_schedule(Name="job-0", GroupName="nightly-jobs")
    with pytest.raises(sch.exceptions.ValidationException):
        sch.delete_schedule_group(Name="default")


def test_a_schedule_due_while_the_server_was_down_fires_once_on_start(hooks):
    s = Server(extra_args=opts())
    try:
        arn = function(s, hooks, "resumed")
        sch = s.client(service="scheduler")
        # Ten minutes of schedule time: 6 s away.
        _, expr = at_expression(10)
        sch.create_schedule(Name="while-down", ScheduleExpression=expr,
                            FlexibleTimeWindow={"Mode": "OFF"},
                            Target={"Arn": arn, "RoleArn": SCHEDULER_ROLE, "Input": '{"n": 1}'})
        s.proc.terminate()
        s.proc.wait(timeout=20)
        time.sleep(8)  # the due time passes while the server is down
        assert events(hooks, "resumed") == []
        s.restart()
        wait_for("the missed fire", lambda: events(hooks, "resumed"))
        time.sleep(2)
        assert events(hooks, "resumed") == [{"n": 1}]
        # Once fired and recorded, a further restart does not fire it again.
        s.restart()
        time.sleep(3)
        assert events(hooks, "resumed") == [{"n": 1}]
    finally:
        s.stop()
