"""Lambent's Python runtime client.

Runs a `module.function` handler against the Lambda Runtime API, the way AWS's
Python runtime does: same event and context, same log format, same error
documents. It uses only the standard library and a raw-socket HTTP client, so
that a cold start costs little more than the interpreter itself.
"""

import json
import os
import socket
import sys
import time

RUNTIME_API = os.environ.get("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001")
ERROR_CT = "application/vnd.aws.lambda.error+json"

_current_request_id = None


class RuntimeClient:
    """A keep-alive HTTP/1.1 client for the Runtime API (Content-Length bodies)."""

    def __init__(self, address):
        host, _, port = address.rpartition(":")
        self.host = host or "127.0.0.1"
        self.port = int(port)
        self.sock = None
        self.buf = b""

    def _connect(self):
        self.sock = socket.create_connection((self.host, self.port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def _read_until(self, marker):
        while marker not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("Runtime API closed the connection")
            self.buf += chunk
        head, _, self.buf = self.buf.partition(marker)
        return head

    def _read_exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buf)))
            if not chunk:
                raise ConnectionError("Runtime API closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def request(self, method, path, body=b"", headers=None):
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}",
                 f"Content-Length: {len(body)}"]
        for k, v in (headers or {}).items():
            lines.append(f"{k}: {v}")
        raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        for attempt in (0, 1):
            try:
                if self.sock is None:
                    self._connect()
                self.sock.sendall(raw)
                head = self._read_until(b"\r\n\r\n").decode("latin-1").split("\r\n")
                status = int(head[0].split(" ", 2)[1])
                hdrs = {}
                for line in head[1:]:
                    k, _, v = line.partition(":")
                    hdrs[k.strip().lower()] = v.strip()
                payload = self._read_exact(int(hdrs.get("content-length", "0")))
                return status, hdrs, payload
            except (ConnectionError, OSError):
                self.sock = None
                if attempt:
                    raise

    def next(self):
        return self.request("GET", "/2018-06-01/runtime/invocation/next")

    def post_response(self, request_id, body):
        return self.request("POST", f"/2018-06-01/runtime/invocation/{request_id}/response", body)

    def post_error(self, request_id, doc, error_type):
        return self.request("POST", f"/2018-06-01/runtime/invocation/{request_id}/error",
                            json.dumps(doc).encode(), {"Content-Type": ERROR_CT,
                                                       "Lambda-Runtime-Function-Error-Type": error_type})

    def post_init_error(self, doc, error_type):
        return self.request("POST", "/2018-06-01/runtime/init/error", json.dumps(doc).encode(),
                            {"Content-Type": ERROR_CT,
                             "Lambda-Runtime-Function-Error-Type": error_type})


class CognitoIdentity:
    __slots__ = ["cognito_identity_id", "cognito_identity_pool_id"]

    def __init__(self, data):
        self.cognito_identity_id = data.get("cognitoIdentityId")
        self.cognito_identity_pool_id = data.get("cognitoIdentityPoolId")


class Client:
    __slots__ = ["installation_id", "app_title", "app_version_name", "app_version_code", "app_package_name"]

    def __init__(self, data):
        self.installation_id = data.get("installation_id")
        self.app_title = data.get("app_title")
        self.app_version_name = data.get("app_version_name")
        self.app_version_code = data.get("app_version_code")
        self.app_package_name = data.get("app_package_name")


class ClientContext:
    __slots__ = ["custom", "env", "client"]

    def __init__(self, data):
        self.custom = data.get("custom")
        self.env = data.get("env")
        client = data.get("client")
        self.client = Client(client) if client else None


class LambdaContext:
    """The `context` argument, with the attributes and methods AWS provides."""

    def __init__(self, request_id, deadline_ms, invoked_arn, client_context, identity):
        self.aws_request_id = request_id
        self.invoked_function_arn = invoked_arn
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.tenant_id = None
        self._deadline_ms = deadline_ms
        self.client_context = None
        if client_context:
            try:
                import base64
                self.client_context = ClientContext(json.loads(base64.b64decode(client_context)))
            except Exception:
                self.client_context = None
        self.identity = CognitoIdentity(json.loads(identity) if identity else {})

    def get_remaining_time_in_millis(self):
        return max(self._deadline_ms - int(time.time() * 1000), 0)

    def log(self, msg):
        sys.stdout.write(str(msg))
        sys.stdout.flush()

    def __repr__(self):
        return (f"LambdaContext([aws_request_id={self.aws_request_id},"
                f"log_group_name={self.log_group_name},log_stream_name={self.log_stream_name},"
                f"function_name={self.function_name},memory_limit_in_mb={self.memory_limit_in_mb},"
                f"function_version={self.function_version},invoked_function_arn={self.invoked_function_arn},"
                f"client_context={self.client_context},identity={self.identity}])")


_logging_ready = False


def setup_logging():
    """Gives the root logger Lambda's Text format. Run once the function has
    imported `logging` (importing it here would cost every cold start ~10 ms
    for functions that never log through it)."""
    global _logging_ready
    _logging_ready = True
    import logging

    class LambdaLoggerHandler(logging.Handler):
        def emit(self, record):
            try:
                msg = self.format(record)
                sys.stdout.write(msg.replace("\n", "\r") + "\n")
                sys.stdout.flush()
            except Exception:
                self.handleError(record)

    class LambdaLoggerFilter(logging.Filter):
        def filter(self, record):
            record.aws_request_id = _current_request_id or ""
            return True

    class LambdaFormatter(logging.Formatter):
        converter = time.gmtime

        def __init__(self):
            super().__init__("[%(levelname)s]\t%(asctime)s\t%(aws_request_id)s\t%(message)s\n",
                             "%Y-%m-%dT%H:%M:%S")

        def formatTime(self, record, datefmt=None):
            ct = self.converter(record.created)
            return time.strftime("%Y-%m-%dT%H:%M:%S", ct) + ".%03dZ" % record.msecs

    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = LambdaLoggerHandler()
    handler.setFormatter(LambdaFormatter())
    handler.addFilter(LambdaLoggerFilter())
    root.addHandler(handler)


class FaultError(Exception):
    def __init__(self, error_type, message, trace=None):
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.trace = trace or []


def user_frames(tb):
    """Stack entries from the user's code, in AWS's `stackTrace` form."""
    import traceback
    frames = traceback.extract_tb(tb)
    here = os.path.abspath(__file__)
    frames = [f for f in frames if os.path.abspath(f.filename) != here]
    return traceback.format_list(frames)


def load_handler(spec):
    try:
        modname, fname = spec.rsplit(".", 1)
    except ValueError as e:
        raise FaultError("Runtime.MalformedHandlerName", f"Bad handler '{spec}': {e}")
    modname = modname.replace("/", ".")
    if modname.startswith("."):
        raise FaultError("Runtime.MalformedHandlerName",
                         f"Bad handler '{spec}': Cannot use relative import")
    import importlib
    try:
        module = importlib.import_module(modname)
    except ImportError as e:
        raise FaultError("Runtime.ImportModuleError", f"Unable to import module '{modname}': {e}")
    except SyntaxError as e:
        trace = [f'  File "{e.filename}" Line {e.lineno}\n        {(e.text or "").strip()}\n']
        raise FaultError("Runtime.UserCodeSyntaxError",
                         f"Syntax error in module '{modname}': {e}", trace)
    try:
        return getattr(module, fname)
    except AttributeError:
        raise FaultError("Runtime.HandlerNotFound", f"Handler '{fname}' missing on module '{modname}'")


def error_doc(exc, request_id):
    if isinstance(exc, FaultError):
        return {"errorMessage": exc.message, "errorType": exc.error_type,
                "requestId": request_id, "stackTrace": exc.trace}
    return {"errorMessage": str(exc), "errorType": type(exc).__name__, "requestId": request_id,
            "stackTrace": user_frames(exc.__traceback__)}


def log_error(doc):
    lines = "".join(doc.get("stackTrace") or [])
    text = f"[ERROR] {doc['errorType']}: {doc['errorMessage']}"
    if lines:
        text += "\nTraceback (most recent call last):\n" + lines
    sys.stdout.write(text.replace("\n", "\r") + "\n")
    sys.stdout.flush()


def main():
    global _current_request_id
    task_root = os.environ.get("LAMBDA_TASK_ROOT", "/var/task")
    paths = [task_root, "/opt/python/lib/python%d.%d/site-packages" % sys.version_info[:2],
             "/opt/python", "/var/runtime"]
    sys.path[:0] = [p for p in paths if p not in sys.path]
    extra = os.environ.get("_LAMBENT_PYTHON_SITE")
    if extra and extra not in sys.path:
        sys.path.append(extra)
    client = RuntimeClient(RUNTIME_API)
    try:
        handler = load_handler(os.environ["_HANDLER"])
        if "logging" in sys.modules:
            setup_logging()
    except Exception as e:
        doc = error_doc(e, "")
        log_error(doc)
        client.post_init_error(doc, doc["errorType"])
        sys.exit(1)

    while True:
        status, headers, payload = client.next()
        if status != 200:
            sys.stderr.write(f"Runtime API /next answered {status}\n")
            sys.exit(1)
        request_id = headers.get("lambda-runtime-aws-request-id", "")
        _current_request_id = request_id
        trace = headers.get("lambda-runtime-trace-id")
        if trace:
            os.environ["_X_AMZN_TRACE_ID"] = trace
        else:
            os.environ.pop("_X_AMZN_TRACE_ID", None)
        context = LambdaContext(request_id, int(headers.get("lambda-runtime-deadline-ms", "0")),
                                headers.get("lambda-runtime-invoked-function-arn"),
                                headers.get("lambda-runtime-client-context"),
                                headers.get("lambda-runtime-cognito-identity"))
        try:
            event = json.loads(payload) if payload else {}
        except ValueError as e:
            doc = {"errorMessage": f"Unable to unmarshal input: {e}",
                   "errorType": "Runtime.UnmarshalError", "requestId": request_id, "stackTrace": []}
            log_error(doc)
            client.post_error(request_id, doc, doc["errorType"])
            continue
        if not _logging_ready and "logging" in sys.modules:
            setup_logging()
        try:
            result = handler(event, context)
        except Exception as e:
            doc = error_doc(e, request_id)
            log_error(doc)
            client.post_error(request_id, doc, doc["errorType"])
            continue
        try:
            body = json.dumps(result).encode()
        except Exception as e:
            doc = {"errorMessage": f"Unable to marshal response: {e}",
                   "errorType": "Runtime.MarshalError", "requestId": request_id, "stackTrace": []}
            log_error(doc)
            client.post_error(request_id, doc, doc["errorType"])
            continue
        client.post_response(request_id, body)


if __name__ == "__main__":
    main()
