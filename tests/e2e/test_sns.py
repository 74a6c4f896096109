"""SNS through boto3 and the aws CLI: topics, subscriptions, fan-out to
functions (through the asynchronous queue, only with the function's
permission for sns.amazonaws.com) and to an HTTP subscriber that confirms
its subscription, filter policies, batches, SNS's validation errors in its
XML shape, account isolation, and state across a restart.

A function reports what it received through its OnSuccess destination: the
destination record's requestPayload is the SNS event."""

import json
import re
import urllib.request

import botocore.exceptions
import pytest

from conftest import ACCOUNT_A, KEY_B, ROLE, Server, make_zip, wait_for
from test_async import Collector

APP = r'''
def ok(event, context):
    return {"ok": True}
'''


@pytest.fixture(scope="module")
def server():
    s = Server(extra_args=("--async-delay-scale", "0.01"))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def hooks():
    c = Collector()
    yield c
    c.close()


def fn_arn(name):
    return f"arn:aws:lambda:us-east-1:{ACCOUNT_A}:function:{name}"


def make_function(server, hooks, name, topic_arn=None):
    """A function whose successful invocations are POSTed to hooks/<name>;
    allowed to be invoked by SNS for `topic_arn` when given."""
    c = server.client()
    c.create_function(FunctionName=name, Runtime="python3.11", Role=ROLE, Handler="app.ok",
                      Code={"ZipFile": make_zip({"app.py": (APP, 0o644)})}, Timeout=10)
    c.put_function_event_invoke_config(
        FunctionName=name, DestinationConfig={"OnSuccess": {"Destination": f"{hooks.url}/{name}"}})
    if topic_arn:
        c.add_permission(FunctionName=name, StatementId="sns", Action="lambda:InvokeFunction",
                         Principal="sns.amazonaws.com", SourceArn=topic_arn)
    return fn_arn(name)


def events(hooks, name):
    """The SNS records each invocation of `name` received."""
    return [r["requestPayload"]["Records"][0] for r in hooks.records(f"/{name}")]


def metric(server, name):
    with urllib.request.urlopen(server.metrics_endpoint + "/metrics", timeout=10) as r:
        text = r.read().decode()
    m = re.search(rf"^{name} (\d+)$", text, re.M)
    return int(m.group(1)) if m else 0


def test_fan_out_to_three_functions_and_an_http_subscriber(server, hooks):
    sns = server.client(service="sns")
    topic = sns.create_topic(Name="orders", Attributes={"DisplayName": "Orders"})["TopicArn"]
    assert topic == f"arn:aws:sns:us-east-1:{ACCOUNT_A}:orders"
    subs = []
    for name in ("fan-a", "fan-b", "fan-c"):
        arn = make_function(server, hooks, name, topic)
        subs.append(sns.subscribe(TopicArn=topic, Protocol="lambda", Endpoint=arn)["SubscriptionArn"])
    # The HTTP subscriber confirms through the SubscribeURL it is sent.
    pending = sns.subscribe(TopicArn=topic, Protocol="http", Endpoint=f"{hooks.url}/http-sub")
    assert pending["SubscriptionArn"] == "pending confirmation"
    [post] = hooks.wait("/http-sub")
    assert post["headers"]["x-amz-sns-message-type"] == "SubscriptionConfirmation"
    assert post["headers"]["x-amz-sns-topic-arn"] == topic
    confirmation = json.loads(post["body"])
    assert confirmation["Type"] == "SubscriptionConfirmation"
    assert confirmation["TopicArn"] == topic
    with urllib.request.urlopen(confirmation["SubscribeURL"], timeout=10) as r:
        body = r.read().decode()
    assert "<ConfirmSubscriptionResult><SubscriptionArn>" in body
    listed = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert sorted(s["Protocol"] for s in listed) == ["http", "lambda", "lambda", "lambda"]
    assert all(s["SubscriptionArn"].startswith(topic + ":") for s in listed)
    attrs = sns.get_topic_attributes(TopicArn=topic)["Attributes"]
    assert attrs["SubscriptionsConfirmed"] == "4" and attrs["SubscriptionsPending"] == "0"
    assert attrs["DisplayName"] == "Orders" and attrs["Owner"] == ACCOUNT_A

    published = sns.publish(
        TopicArn=topic, Subject="New order", Message="order 42",
        MessageAttributes={"store": {"DataType": "String", "StringValue": "example_corp"},
                           "price": {"DataType": "Number", "StringValue": "210.75"}})
    for name, sub in zip(("fan-a", "fan-b", "fan-c"), subs):
        hooks.wait(f"/{name}")
        [record] = events(hooks, name)
        assert record["EventSource"] == "aws:sns"
        assert record["EventVersion"] == "1.0"
        assert record["EventSubscriptionArn"] == sub
        s = record["Sns"]
        assert s["Type"] == "Notification"
        assert s["MessageId"] == published["MessageId"]
        assert s["TopicArn"] == topic
        assert s["Subject"] == "New order"
        assert s["Message"] == "order 42"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", s["Timestamp"])
        assert s["SignatureVersion"] == "1"
        assert s["Signature"] and s["SigningCertUrl"]
        assert "Action=Unsubscribe" in s["UnsubscribeUrl"]
        assert s["MessageAttributes"] == {
            "store": {"Type": "String", "Value": "example_corp"},
            "price": {"Type": "Number", "Value": "210.75"}}
    notes = wait_for("the HTTP notification", lambda: len(hooks.at("/http-sub")) >= 2 and hooks.at("/http-sub"))
    note = notes[1]
    assert note["headers"]["x-amz-sns-message-type"] == "Notification"
    assert note["headers"]["x-amz-sns-message-id"] == published["MessageId"]
    assert note["headers"]["x-amz-sns-subscription-arn"].startswith(topic + ":")
    doc = json.loads(note["body"])
    assert doc["Message"] == "order 42" and doc["Subject"] == "New order"
    assert doc["MessageAttributes"]["price"] == {"Type": "Number", "Value": "210.75"}
    assert "UnsubscribeURL" in doc
    with urllib.request.urlopen(doc["SigningCertURL"], timeout=10) as r:
        assert b"HMAC-SHA256" in r.read()

    # MessageStructure json: each protocol gets its own text.
    sns.publish(TopicArn=topic, MessageStructure="json",
                Message=json.dumps({"default": "plain", "lambda": "for functions"}))
    hooks.wait("/fan-a", 2)
    assert events(hooks, "fan-a")[1]["Sns"]["Message"] == "for functions"
    wait_for("the second HTTP notification", lambda: len(hooks.at("/http-sub")) >= 3)
    assert json.loads(hooks.at("/http-sub")[2]["body"])["Message"] == "plain"


def test_filter_policy_through_the_cli(server, hooks):
    topic = json.loads(server.cli("sns", "create-topic", "--name", "filtered").stdout)["TopicArn"]
    arn = make_function(server, hooks, "filtered-fn", topic)
    sub = json.loads(server.cli(
        "sns", "subscribe", "--topic-arn", topic, "--protocol", "lambda",
        "--notification-endpoint", arn,
        "--attributes", json.dumps({"FilterPolicy": json.dumps(
            {"store": ["example_corp"], "price_usd": [{"numeric": [">=", 100]}]})}),
    ).stdout)["SubscriptionArn"]
    got = json.loads(server.cli("sns", "get-subscription-attributes",
                                "--subscription-arn", sub).stdout)["Attributes"]
    assert json.loads(got["FilterPolicy"]) == {"store": ["example_corp"], "price_usd": [{"numeric": [">=", 100]}]}
    assert got["FilterPolicyScope"] == "MessageAttributes"
    before = metric(server, "lambent_sns_notifications_filtered_out_total")

    def publish(message, store, price):
        server.cli("sns", "publish", "--topic-arn", topic, "--message", message,
                   "--message-attributes", json.dumps({
                       "store": {"DataType": "String", "StringValue": store},
                       "price_usd": {"DataType": "Number", "StringValue": str(price)}}))

    publish("too cheap", "example_corp", 50)
    publish("other store", "other", 500)
    assert metric(server, "lambent_sns_notifications_filtered_out_total") == before + 2
    publish("match", "example_corp", 150)
    hooks.wait("/filtered-fn")
    assert [e["Sns"]["Message"] for e in events(hooks, "filtered-fn")] == ["match"]

    # Body scope: the policy reads the message as JSON.
    server.cli("sns", "set-subscription-attributes", "--subscription-arn", sub,
               "--attribute-name", "FilterPolicyScope", "--attribute-value", "MessageBody")
    server.cli("sns", "set-subscription-attributes", "--subscription-arn", sub,
               "--attribute-name", "FilterPolicy",
               "--attribute-value", json.dumps({"order": {"kind": [{"prefix": "big"}]}}))
    server.cli("sns", "publish", "--topic-arn", topic, "--message", json.dumps({"order": {"kind": "small"}}))
    server.cli("sns", "publish", "--topic-arn", topic, "--message", json.dumps({"order": {"kind": "bigger"}}))
    hooks.wait("/filtered-fn", 2)
    assert [e["Sns"]["Message"] for e in events(hooks, "filtered-fn")][1] == json.dumps({"order": {"kind": "bigger"}})


def test_a_function_without_permission_is_not_invoked(server, hooks):
    sns = server.client(service="sns")
    topic = sns.create_topic(Name="guarded")["TopicArn"]
    allowed = make_function(server, hooks, "perm-yes", topic)
    # Permission for another topic does not count.
    denied = make_function(server, hooks, "perm-no", topic.replace("guarded", "elsewhere"))
    sns.subscribe(TopicArn=topic, Protocol="lambda", Endpoint=allowed)
    sns.subscribe(TopicArn=topic, Protocol="lambda", Endpoint=denied)
    failed = metric(server, "lambent_sns_notifications_failed_total")
    sns.publish(TopicArn=topic, Message="m")
    # The refusal is decided before Publish answers.
    assert metric(server, "lambent_sns_notifications_failed_total") == failed + 1
    hooks.wait("/perm-yes")
    assert hooks.at("/perm-no") == []
    assert "sns.amazonaws.com" in server.log()


def test_publish_batch_answers_per_entry(server, hooks):
    sns = server.client(service="sns")
    topic = sns.create_topic(Name="batched")["TopicArn"]
    arn = make_function(server, hooks, "batch-fn", topic)
    sns.subscribe(TopicArn=topic, Protocol="lambda", Endpoint=arn)
    r = sns.publish_batch(TopicArn=topic, PublishBatchRequestEntries=[
        {"Id": "one", "Message": "first"},
        {"Id": "two", "Message": "second", "MessageAttributes": {
            "n": {"DataType": "Number", "StringValue": "not a number"}}},
        {"Id": "three", "Message": "third", "Subject": "s"},
    ])
    assert sorted(s["Id"] for s in r["Successful"]) == ["one", "three"]
    [failed] = r["Failed"]
    assert failed["Id"] == "two" and failed["SenderFault"] is True
    assert failed["Code"] == "ParameterValueInvalid"
    assert failed["Message"] == "Could not cast message attribute 'n' value to number."
    hooks.wait("/batch-fn", 2)
    assert sorted(e["Sns"]["Message"] for e in events(hooks, "batch-fn")) == ["first", "third"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sns.publish_batch(TopicArn=topic, PublishBatchRequestEntries=[
            {"Id": "x", "Message": "a"}, {"Id": "x", "Message": "b"}])
    assert e.value.response["Error"]["Code"] == "BatchEntryIdsNotDistinct"


def error(call):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call()
    err = e.value.response["Error"]
    return e.value.response["ResponseMetadata"]["HTTPStatusCode"], err["Code"], err["Message"]


def test_validation_errors_in_sns_shape(server):
    sns = server.client(service="sns")
    topic = sns.create_topic(Name="validated")["TopicArn"]
    missing = f"arn:aws:sns:us-east-1:{ACCOUNT_A}:nope"
    cases = [
        (lambda: sns.create_topic(Name="bad name"), (400, "InvalidParameter", "Invalid parameter: Topic Name")),
        (lambda: sns.create_topic(Name="plain", Attributes={"FifoTopic": "true"}),
         (400, "InvalidParameter", "Invalid parameter: Fifo Topic names must end with .fifo and must be made up of only uppercase and lowercase ASCII letters, numbers, underscores, and hyphens, and must be between 1 and 256 characters long.")),
        (lambda: sns.publish(TopicArn=missing, Message="m"), (404, "NotFound", "Topic does not exist")),
        (lambda: sns.publish(TopicArn=topic, Message=""), (400, "InvalidParameter", "Invalid parameter: Empty message")),
        (lambda: sns.publish(TopicArn=topic, Message="m", MessageStructure="json"),
         (400, "InvalidParameter", "Invalid parameter: Message Structure - JSON message body failed to parse")),
        (lambda: sns.publish(TopicArn=topic, Message="m", MessageAttributes={"a": {"DataType": "Float", "StringValue": "1"}}),
         (400, "ParameterValueInvalid", "The message attribute 'a' has an invalid message attribute type, the set of supported type prefixes is Binary, Number, and String.")),
        (lambda: sns.subscribe(TopicArn=topic, Protocol="carrier-pigeon", Endpoint="x"),
         (400, "InvalidParameter", "Invalid parameter: Amazon SNS does not support this protocol string: carrier-pigeon")),
        (lambda: sns.subscribe(TopicArn=topic, Protocol="lambda", Endpoint=fn_arn("f"),
                               Attributes={"RawMessageDelivery": "true"}),
         (400, "InvalidParameter", "Invalid parameter: Attributes Reason: Delivery protocol [lambda] does not support raw message delivery.")),
        (lambda: sns.subscribe(TopicArn=topic, Protocol="lambda", Endpoint=fn_arn("f"),
                               Attributes={"FilterPolicy": json.dumps({"a": [], "b": ["c"]})}),
         (400, "InvalidParameter", "Invalid parameter: Attributes Reason: FilterPolicy: Empty arrays are not allowed")),
        (lambda: sns.set_topic_attributes(TopicArn=topic, AttributeName="Bogus", AttributeValue="x"),
         (400, "InvalidParameter", "Invalid parameter: AttributeName")),
        (lambda: sns.get_subscription_attributes(SubscriptionArn=topic + ":00000000-0000-0000-0000-000000000000"),
         (404, "NotFound", "Subscription does not exist")),
    ]
    for call, expected in cases:
        assert error(call) == expected
    # Nothing was created by the refused calls.
    arns = [t["TopicArn"] for t in sns.list_topics()["Topics"]]
    assert not any(a.endswith((":bad name", ":plain")) for a in arns)
    assert sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"] == []
    # The CLI shows SNS's code and message.
    proc = server.cli("sns", "create-topic", "--name", "no spaces allowed", check=False)
    assert proc.returncode != 0
    assert "InvalidParameter" in proc.stderr and "Invalid parameter: Topic Name" in proc.stderr


def test_accounts_see_only_their_topics(server):
    a = server.client(service="sns")
    b = server.client(key=KEY_B, service="sns")
    topic = a.create_topic(Name="private")["TopicArn"]
    assert topic not in [t["TopicArn"] for t in b.list_topics()["Topics"]]
    assert error(lambda: b.publish(TopicArn=topic, Message="m"))[1] == "NotFound"
    assert error(lambda: b.get_topic_attributes(TopicArn=topic))[1] == "NotFound"
    assert error(lambda: b.subscribe(TopicArn=topic, Protocol="lambda", Endpoint=fn_arn("x")))[1] == "NotFound"
    b.delete_topic(TopicArn=topic)  # idempotent, and not B's to delete
    assert topic in [t["TopicArn"] for t in a.list_topics()["Topics"]]


def test_a_bad_signature_is_refused_in_xml(server):
    bad = server.client(key=("AKIAPYTESTACCOUNTAAA", "wrong"), service="sns")
    status, code, _ = error(lambda: bad.list_topics())
    assert status == 403 and code == "SignatureDoesNotMatch"


def test_topics_and_subscriptions_survive_a_restart(hooks):
    s = Server(extra_args=("--async-delay-scale", "0.01"))
    try:
        sns = s.client(service="sns")
        topic = sns.create_topic(Name="durable")["TopicArn"]
        arn = make_function(s, hooks, "durable-fn", topic)
        sub = sns.subscribe(TopicArn=topic, Protocol="lambda", Endpoint=arn,
                            Attributes={"FilterPolicy": json.dumps({"keep": ["yes"]})})["SubscriptionArn"]
        s.restart()
        sns = s.client(service="sns")
        assert topic in [t["TopicArn"] for t in sns.list_topics()["Topics"]]
        assert sns.get_subscription_attributes(SubscriptionArn=sub)["Attributes"]["FilterPolicy"] == json.dumps({"keep": ["yes"]})
        sns.publish(TopicArn=topic, Message="dropped", MessageAttributes={"keep": {"DataType": "String", "StringValue": "no"}})
        sns.publish(TopicArn=topic, Message="kept", MessageAttributes={"keep": {"DataType": "String", "StringValue": "yes"}})
        hooks.wait("/durable-fn")
        assert [e["Sns"]["Message"] for e in events(hooks, "durable-fn")] == ["kept"]
        sns.unsubscribe(SubscriptionArn=sub)
        sns.delete_topic(TopicArn=topic)
        s.restart()
        assert topic not in [t["TopicArn"] for t in s.client(service="sns").list_topics()["Topics"]]
    finally:
        s.stop()


def test_topic_tags(server):
    sns = server.client(service="sns")
    topic = sns.create_topic(Name="tagged", Tags=[{"Key": "team", "Value": "orders"}])["TopicArn"]
    sns.tag_resource(ResourceArn=topic, Tags=[{"Key": "env", "Value": "test"}])
    tags = sns.list_tags_for_resource(ResourceArn=topic)["Tags"]
    assert sorted((t["Key"], t["Value"]) for t in tags) == [("env", "test"), ("team", "orders")]
    sns.untag_resource(ResourceArn=topic, TagKeys=["team"])
    assert sns.list_tags_for_resource(ResourceArn=topic)["Tags"] == [{"Key": "env", "Value": "test"}]
    assert error(lambda: sns.list_tags_for_resource(ResourceArn=topic + "-missing")) == (
        404, "ResourceNotFound", "Resource does not exist")
    too_many = [{"Key": f"k{i}", "Value": "v"} for i in range(50)]
    assert error(lambda: sns.tag_resource(ResourceArn=topic, Tags=too_many))[1] == "TagLimitExceeded"
