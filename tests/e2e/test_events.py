"""EventBridge through the aws CLI and boto3: rules with event patterns send
matching PutEvents entries, in AWS's envelope, to Lambda targets that allow
events.amazonaws.com for the rule; targets shape what they receive; a
function error is retried and ends at the function's failure destination.

Each function's destinations are an HTTP collector, so every invocation
shows up as a destination record holding the event the function received.
The server runs with --async-delay-scale 0.01 (Lambda's one- and two-minute
retry delays take 0.6 s and 1.2 s) and --schedule-time-scale 0.01 (a
scheduled rule's minute takes 0.6 s)."""

import json
import time

import pytest

from conftest import ACCOUNT_A, KEY_B, ROLE, Server, make_zip, wait_for
from test_scheduler import Collector

APP = r'''
def echo(event, context):
    return {"got": event}
def fail(event, context):
    raise RuntimeError("cannot handle " + event.get("detail-type", "?"))
'''


@pytest.fixture(scope="module")
def server():
    s = Server(extra_args=("--async-delay-scale", "0.01", "--schedule-time-scale", "0.01"))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def hooks():
    c = Collector()
    yield c
    c.close()


def function(server, hooks, name, handler="app.echo", allow_rule=None, **invoke_config):
    c = server.client()
    c.create_function(FunctionName=name, Runtime="python3.11", Role=ROLE, Handler=handler,
                      Code={"ZipFile": make_zip({"app.py": (APP, 0o644)})}, Timeout=10)
    c.put_function_event_invoke_config(
        FunctionName=name,
        DestinationConfig={"OnSuccess": {"Destination": f"{hooks.url}/{name}"},
                           "OnFailure": {"Destination": f"{hooks.url}/{name}-failed"}},
        **invoke_config)
    if allow_rule:
        server.cli("lambda", "add-permission", "--function-name", name,
                   "--statement-id", "events", "--action", "lambda:InvokeFunction",
                   "--principal", "events.amazonaws.com", "--source-arn", allow_rule)
    return f"arn:aws:lambda:us-east-1:{ACCOUNT_A}:function:{name}"


def rule_arn(name, bus=None):
    path = f"{bus}/{name}" if bus else name
    return f"arn:aws:events:us-east-1:{ACCOUNT_A}:rule/{path}"


def received(hooks, path):
    return [rec["responsePayload"]["got"] for rec, _ in hooks.at(path)]


def test_matching_entries_reach_the_function_in_aws_envelope(server, hooks):
    arn = function(server, hooks, "orders", allow_rule=rule_arn("big-orders"))
    out = json.loads(server.cli(
        "events", "put-rule", "--name", "big-orders",
        "--event-pattern", json.dumps({"source": ["shop"], "detail-type": ["Order Placed"],
                                       "detail": {"total": [{"numeric": [">", 100]}]}})).stdout)
    assert out["RuleArn"] == rule_arn("big-orders")
    server.cli("events", "put-targets", "--rule", "big-orders", "--targets", f"Id=1,Arn={arn}")
    entries = [
        {"Source": "shop", "DetailType": "Order Placed", "Detail": json.dumps({"total": 250}),
         "Resources": ["arn:aws:shop:us-east-1:111111111111:order/7"]},
        {"Source": "shop", "DetailType": "Order Placed", "Detail": json.dumps({"total": 5})},
        {"Source": "bank", "DetailType": "Order Placed", "Detail": json.dumps({"total": 500})},
    ]
    put = json.loads(server.cli("events", "put-events", "--entries", json.dumps(entries)).stdout)
    assert put["FailedEntryCount"] == 0
    ids = [e["EventId"] for e in put["Entries"]]
    assert len(set(ids)) == 3
    got = wait_for("the matching event", lambda: received(hooks, "/orders"))
    time.sleep(1.5)  # the two others, were they sent, would have arrived
    got = received(hooks, "/orders")
    assert len(got) == 1, got
    e = got[0]
    assert e["id"] == ids[0]
    assert e["version"] == "0"
    assert (e["source"], e["detail-type"], e["account"], e["region"]) == (
        "shop", "Order Placed", ACCOUNT_A, "us-east-1")
    assert e["resources"] == ["arn:aws:shop:us-east-1:111111111111:order/7"]
    assert e["detail"] == {"total": 250}
    assert e["time"].endswith("Z") and "T" in e["time"]

    rules = json.loads(server.cli("events", "list-rules").stdout)["Rules"]
    assert [r["Name"] for r in rules] == ["big-orders"]
    assert rules[0]["State"] == "ENABLED"
    server.cli("events", "disable-rule", "--name", "big-orders")
    server.cli("events", "put-events", "--entries", json.dumps(entries[:1]))
    time.sleep(1.5)
    assert len(received(hooks, "/orders")) == 1
    assert json.loads(server.cli("events", "describe-rule", "--name", "big-orders").stdout)[
        "State"] == "DISABLED"


def test_targets_shape_the_event_on_a_custom_bus(server, hooks):
    ev = server.client(service="events")
    bus = ev.create_event_bus(Name="shop-bus")["EventBusArn"]
    assert bus == f"arn:aws:events:us-east-1:{ACCOUNT_A}:event-bus/shop-bus"
    rule = rule_arn("shipped", "shop-bus")
    plain = function(server, hooks, "shaped", allow_rule=rule)
    assert ev.put_rule(Name="shipped", EventBusName="shop-bus",
                       EventPattern=json.dumps({"detail-type": ["Shipped"]}))["RuleArn"] == rule
    res = ev.put_targets(Rule="shipped", EventBusName="shop-bus", Targets=[
        {"Id": "path", "Arn": plain, "InputPath": "$.detail"},
        {"Id": "tmpl", "Arn": plain, "InputTransformer": {
            "InputPathsMap": {"order": "$.detail.order", "carrier": "$.detail.carrier"},
            "InputTemplate": '{"message": "Order <order> left with <carrier>", "order": <order>,'
                             ' "rule": "<aws.events.rule-name>"}'}},
    ])
    assert res["FailedEntryCount"] == 0
    targets = ev.list_targets_by_rule(Rule="shipped", EventBusName="shop-bus")["Targets"]
    assert [t["Id"] for t in targets] == ["path", "tmpl"]
    ev.put_events(Entries=[{"Source": "shop", "DetailType": "Shipped", "EventBusName": bus,
                            "Detail": json.dumps({"order": 7, "carrier": "DHL"})}])
    got = wait_for("both shapes", lambda: len(received(hooks, "/shaped")) >= 2 and
                   received(hooks, "/shaped"))
    assert sorted(got, key=json.dumps) == sorted(
        [{"order": 7, "carrier": "DHL"},
         {"message": "Order 7 left with DHL", "order": 7, "rule": "shipped"}], key=json.dumps)
    # On the default bus the same entry matches nothing.
    ev.put_events(Entries=[{"Source": "shop", "DetailType": "Shipped", "Detail": "{}"}])
    time.sleep(1.5)
    assert len(received(hooks, "/shaped")) == 2


def test_a_function_without_permission_is_not_invoked(server, hooks):
    ev = server.client(service="events")
    # A permission for another rule does not count.
    arn = function(server, hooks, "locked", allow_rule=rule_arn("some-other-rule"))
    ev.put_rule(Name="to-locked", EventPattern=json.dumps({"source": ["locksmith"]}))
    ev.put_targets(Rule="to-locked", Targets=[{"Id": "1", "Arn": arn}])
    out = ev.put_events(Entries=[{"Source": "locksmith", "DetailType": "x", "Detail": "{}"}])
    assert out["FailedEntryCount"] == 0  # accepted: delivery is EventBridge's business
    time.sleep(2)
    assert received(hooks, "/locked") == []
    assert "does not let events.amazonaws.com invoke it" in server.log()


def test_a_function_error_is_retried_then_sent_to_the_failure_destination(server, hooks):
    arn = function(server, hooks, "fragile", handler="app.fail",
                   allow_rule=rule_arn("fragile-rule"), MaximumRetryAttempts=1)
    ev = server.client(service="events")
    ev.put_rule(Name="fragile-rule", EventPattern=json.dumps({"source": ["batch"]}))
    ev.put_targets(Rule="fragile-rule", Targets=[{"Id": "1", "Arn": arn}])
    ev.put_events(Entries=[{"Source": "batch", "DetailType": "Job Ready", "Detail": "{}"}])
    (rec, _), = wait_for("the failure record", lambda: hooks.at("/fragile-failed"))
    assert rec["requestContext"]["condition"] == "RetriesExhausted"
    assert rec["requestContext"]["approximateInvokeCount"] == 2
    assert rec["requestPayload"]["detail-type"] == "Job Ready"
    assert rec["responsePayload"]["errorMessage"] == "cannot handle Job Ready"


def test_errors_and_test_event_pattern(server):
    ev = server.client(service="events")
    with pytest.raises(ev.exceptions.InvalidEventPatternException) as e:
        ev.put_rule(Name="bad", EventPattern=json.dumps({"source": []}))
    assert e.value.response["Error"]["Message"].startswith("Event pattern is not valid. Reason: ")
    with pytest.raises(ev.exceptions.ResourceNotFoundException) as e:
        ev.describe_rule(Name="bad")
    assert e.value.response["Error"]["Message"] == "Rule bad does not exist on EventBus default."
    out = ev.put_events(Entries=[
        {"Source": "a", "DetailType": "b", "Detail": "not json"},
        {"DetailType": "b", "Detail": "{}"},
        {"Source": "a", "DetailType": "b", "Detail": "{}"},
    ])
    assert out["FailedEntryCount"] == 2
    assert out["Entries"][0]["ErrorCode"] == "MalformedDetail"
    assert out["Entries"][1]["ErrorCode"] == "InvalidArgument"
    assert "EventId" in out["Entries"][2]
    with pytest.raises(ev.exceptions.ClientError) as e:
        ev.put_events(Entries=[{"Source": "a", "DetailType": "b", "Detail": "{}"}] * 11)
    assert e.value.response["Error"]["Code"] == "ValidationException"
    event = json.dumps({"id": "1", "account": ACCOUNT_A, "source": "shop", "time":
                        "2026-01-01T00:00:00Z", "region": "us-east-1", "detail-type": "Order",
                        "resources": [], "detail": {"total": 250, "currency": "EUR"}})
    pattern = {"detail": {"total": [{"numeric": [">=", 100]}], "currency": [{"prefix": "EU"}]}}
    assert ev.test_event_pattern(EventPattern=json.dumps(pattern), Event=event)["Result"] is True
    pattern["detail"]["currency"] = ["USD"]
    assert ev.test_event_pattern(EventPattern=json.dumps(pattern), Event=event)["Result"] is False
    # Another account sees none of these rules.
    other = server.client(key=KEY_B, service="events")
    assert other.list_rules()["Rules"] == []


def test_a_scheduled_rule_sends_aws_scheduled_event(server, hooks):
    rule = rule_arn("every-minute")
    arn = function(server, hooks, "cron-job", allow_rule=rule)
    out = json.loads(server.cli("events", "put-rule", "--name", "every-minute",
                                "--schedule-expression", "rate(1 minute)").stdout)
    assert out["RuleArn"] == rule
    server.cli("events", "put-targets", "--rule", "every-minute",
               "--targets", f"Id=1,Arn={arn}")
    got = wait_for("two scheduled events", lambda: len(received(hooks, "/cron-job")) >= 2 and
                   received(hooks, "/cron-job"))
    for e in got:
        assert (e["source"], e["detail-type"], e["resources"], e["detail"]) == (
            "aws.events", "Scheduled Event", [rule], {})
        assert e["account"] == ACCOUNT_A
    server.cli("events", "disable-rule", "--name", "every-minute")
    # Events already queued may still land: wait until none has for a second.
    def settled():
        before = len(received(hooks, "/cron-job"))
        time.sleep(1)
        return len(received(hooks, "/cron-job")) == before
    wait_for("in-flight events to land", settled)
    stopped = len(received(hooks, "/cron-job"))
    time.sleep(2)
    assert len(received(hooks, "/cron-job")) == stopped
    refused = server.cli("events", "put-rule", "--name", "bad-rate",
                         "--schedule-expression", "rate(1 minutes)", check=False)
    assert "ValidationException" in refused.stderr
    assert "Parameter ScheduleExpression is not valid." in refused.stderr
