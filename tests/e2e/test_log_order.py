"""Log order and Duration under parallel load, as Lambda writes them: START
before anything the handler prints for that invocation, END and REPORT after,
and a REPORT Duration that covers the handler (at least the time it sleeps)."""

import collections
import concurrent.futures
import re

import botocore.config

from conftest import ROLE, make_zip, wait_for

APP = '''
import time
def handler(event, context):
    print("begin", context.aws_request_id)
    time.sleep(event["sleep"])
    print("end", context.aws_request_id)
    return {"id": context.aws_request_id}
'''

PARALLEL = 64
ROUNDS = 3
SLEEP_S = 0.05


def all_events(logs, group):
    events, token = [], None
    while True:
        kw = {"logGroupName": group}
        if token:
            kw["nextToken"] = token
        page = logs.filter_log_events(**kw)
        events += page["events"]
        token = page.get("nextToken")
        if not token:
            return events


def test_start_comes_first_and_duration_covers_the_handler_under_load(server):
    lam = server.client(max_pool_connections=PARALLEL + 8)
    lam.create_function(FunctionName="ordered", Runtime="python3.11", Role=ROLE,
                        Handler="app.handler", Timeout=30,
                        Code={"ZipFile": make_zip({"app.py": (APP, 0o644)})})
    payload = ('{"sleep": %s}' % SLEEP_S).encode()

    def one(_):
        out = lam.invoke(FunctionName="ordered", Payload=payload)
        assert "FunctionError" not in out, out["Payload"].read()
        return out["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]

    ids = []
    with concurrent.futures.ThreadPoolExecutor(PARALLEL) as pool:
        # The first round starts the environments; the later ones run warm,
        # all at once.
        for _ in range(ROUNDS):
            ids += list(pool.map(one, range(PARALLEL)))
    assert len(set(ids)) == PARALLEL * ROUNDS

    logs = server.client(service="logs")
    events = wait_for(
        "every REPORT line",
        lambda: (lambda ev: ev if sum(e["message"].startswith("REPORT") for e in ev) >= len(ids)
                 else None)(all_events(logs, "/aws/lambda/ordered")),
        timeout=60,
    )
    by_stream = collections.defaultdict(list)
    for e in events:
        by_stream[e["logStreamName"]].append(e["message"])
    assert len(by_stream) > 1, "invocations ran in parallel environments"

    problems = []
    durations = {}
    for stream, messages in by_stream.items():
        position = {}
        for i, m in enumerate(messages):
            for kind, pattern in (("START", r"START RequestId: (\S+) Version: "),
                                  ("begin", r"begin (\S+)$"), ("end", r"end (\S+)$"),
                                  ("END", r"END RequestId: (\S+)$"),
                                  ("REPORT", r"REPORT RequestId: (\S+)\t")):
                match = re.match(pattern, m)
                if match:
                    position[(match.group(1), kind)] = i
            match = re.match(r"REPORT RequestId: (\S+)\tDuration: ([0-9.]+) ms", m)
            if match:
                durations[match.group(1)] = float(match.group(2))
        for rid in {rid for rid, _ in position}:
            order = [position.get((rid, k)) for k in ("START", "begin", "end", "END", "REPORT")]
            if None in order or order != sorted(order):
                problems.append(f"{stream} {rid}: " + " | ".join(
                    messages[i] for i in sorted(x for x in order if x is not None)))
    assert not problems, f"{len(problems)} invocations out of order:\n" + "\n".join(problems[:10])
    assert set(durations) == set(ids)
    short = {rid: d for rid, d in durations.items() if d < SLEEP_S * 1000}
    assert not short, f"Durations shorter than the handler's {SLEEP_S * 1000} ms sleep: {short}"
