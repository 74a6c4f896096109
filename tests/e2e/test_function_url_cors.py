"""CORS on function URLs through a real browser: headless Chromium loads a
page from another origin whose script calls the URL with fetch(), a
preflight included."""

import http.server
import json
import shutil
import subprocess
import tempfile
import threading

import pytest
import requests

from conftest import ROLE, Server, make_zip, wait_for
from test_function_urls import _resolve_localhost  # noqa: F401  (resolves *.localhost)

APP = r'''
import json

def handler(event, context):
    print("METHOD", event["requestContext"]["http"]["method"])
    return {"statusCode": 200,
            "headers": {"content-type": "application/json", "x-out": "exposed", "x-hidden": "no"},
            "body": json.dumps({"method": event["requestContext"]["http"]["method"],
                                "custom": event["headers"].get("x-custom"),
                                "body": event.get("body")})}
'''

PAGE = """<!doctype html><html><body><script>
async function run() {
  const report = (r) => fetch("/result", {method: "POST", body: JSON.stringify(r)});
  try {
    const resp = await fetch(%(url)s, {
      method: "POST",
      headers: {"Content-Type": "application/json", "X-Custom": "from-browser"},
      body: JSON.stringify({hello: "cors"}),
    });
    await report({ok: true, status: resp.status, body: await resp.json(),
                  exposed: resp.headers.get("x-out"), hidden: resp.headers.get("x-hidden")});
  } catch (e) {
    await report({ok: false, error: String(e)});
  }
}
run();
</script></body></html>"""


class PageServer:
    """Serves one page at http://app.localhost:<port>/ and records what its
    script reports."""

    def __init__(self):
        self.results = []
        self.target_url = None
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                page = (PAGE % {"url": json.dumps(outer.target_url)}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                outer.results.append(json.loads(self.rfile.read(n)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.origin = f"http://app.localhost:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def browse(url, page_server):
    """Opens `url` in headless Chromium until the page reports; its report."""
    profile = tempfile.mkdtemp(prefix="lambent-chromium-")
    proc = subprocess.Popen(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-extensions", f"--user-data-dir={profile}", url],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return wait_for("the page's report", lambda: page_server.results and page_server.results[0],
                        timeout=90)
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def server():
    if not shutil.which("chromium"):
        pytest.fail("chromium is not installed (scripts/test installs Debian's package)")
    s = Server()
    yield s
    s.stop()


def url_with_cors(server, name, origins):
    c = server.client()
    c.create_function(FunctionName=name, Runtime="python3.11", Role=ROLE, Handler="app.handler",
                      Code={"ZipFile": make_zip({"app.py": (APP, 0o644)})})
    url = c.create_function_url_config(
        FunctionName=name, AuthType="NONE",
        Cors={"AllowOrigins": origins, "AllowMethods": ["POST", "GET"],
              "AllowHeaders": ["content-type", "x-custom"], "ExposeHeaders": ["x-out"],
              "MaxAge": 60})["FunctionUrl"]
    c.add_permission(FunctionName=name, StatementId="public", Action="lambda:InvokeFunctionUrl",
                     Principal="*", FunctionUrlAuthType="NONE")
    return url


def methods_logged(server, name):
    logs = server.client(service="logs")
    try:
        events = logs.filter_log_events(logGroupName=f"/aws/lambda/{name}",
                                        filterPattern='"METHOD"')["events"]
    except logs.exceptions.ResourceNotFoundException:
        return []
    return [e["message"].split()[1] for e in events if e["message"].startswith("METHOD")]


def test_a_page_from_another_origin_calls_the_url(server):
    page = PageServer()
    try:
        page.target_url = url_with_cors(server, "cors-ok", [page.origin])
        report = browse(page.origin + "/", page)
        assert report["ok"], report
        assert report["status"] == 200
        assert report["body"] == {"method": "POST", "custom": "from-browser",
                                  "body": '{"hello":"cors"}'}
        assert report["exposed"] == "exposed"
        assert report["hidden"] is None, "only configured headers are exposed"
        # The preflight was answered by the platform: the function saw only the POST.
        methods = wait_for("the function's log line",
                           lambda: methods_logged(server, "cors-ok") or None)
        assert methods == ["POST"]
    finally:
        page.close()


def test_an_origin_not_configured_is_refused_by_the_browser(server):
    page = PageServer()
    page.target_url = url_with_cors(server, "cors-other", ["http://elsewhere.localhost:1"])
    try:
        report = browse(page.origin + "/", page)
        assert report["ok"] is False, report
        assert "Failed to fetch" in report["error"]
    finally:
        page.close()


def test_preflight_and_simple_responses_carry_the_configured_headers(server):
    url = url_with_cors(server, "cors-raw", ["http://app.localhost:8000"])
    r = requests.options(url + "x", timeout=30, headers={
        "Origin": "http://app.localhost:8000", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-custom"})
    assert r.status_code == 200
    assert r.headers["Access-Control-Allow-Origin"] == "http://app.localhost:8000"
    assert r.headers["Access-Control-Allow-Methods"] == "POST,GET"
    assert r.headers["Access-Control-Allow-Headers"] == "content-type,x-custom"
    assert r.headers["Access-Control-Max-Age"] == "60"
    r = requests.get(url + "x", timeout=60, headers={"Origin": "http://app.localhost:8000"})
    assert r.status_code == 200
    assert r.headers["Access-Control-Allow-Origin"] == "http://app.localhost:8000"
    assert r.headers["Access-Control-Expose-Headers"] == "x-out"
    r = requests.get(url + "x", timeout=60, headers={"Origin": "http://evil.localhost"})
    assert r.status_code == 200 and "Access-Control-Allow-Origin" not in r.headers
    assert methods_logged(server, "cors-raw") == ["GET", "GET"]
