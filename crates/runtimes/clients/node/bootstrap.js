// Lambent's Node.js runtime client.
//
// Runs a `file.function` handler against the Lambda Runtime API the way AWS's
// Node.js runtime does: async handlers and callbacks, the context object with
// getRemainingTimeInMillis(), console output with the request id, and AWS's
// error documents (Runtime.ImportModuleError, Runtime.HandlerNotFound, ...),
// and response streaming: handlers wrapped in awslambda.streamifyResponse get
// a writable response stream whose chunks reach the caller as they are
// written; awslambda.HttpResponseStream.from adds a function URL's status
// and headers ahead of the body.
"use strict";

const http = require("http");
const path = require("path");
const fs = require("fs");
const util = require("util");
const { pathToFileURL } = require("url");
const { Writable } = require("stream");

const [HOST, PORT] = (() => {
  const api = process.env.AWS_LAMBDA_RUNTIME_API || "127.0.0.1:9001";
  const i = api.lastIndexOf(":");
  return [api.slice(0, i), Number(api.slice(i + 1))];
})();
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const ERROR_CT = "application/vnd.aws.lambda.error+json";

function request(method, urlPath, body, headers) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(body);
    const req = http.request(
      {
        host: HOST,
        port: PORT,
        method,
        path: urlPath,
        agent,
        headers: Object.assign({ "Content-Length": data ? data.length : 0 }, headers || {}),
      },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(data);
  });
}

const client = {
  next: () => request("GET", "/2018-06-01/runtime/invocation/next"),
  response: (id, body) => request("POST", `/2018-06-01/runtime/invocation/${id}/response`, body),
  error: (id, doc) =>
    request("POST", `/2018-06-01/runtime/invocation/${id}/error`, JSON.stringify(doc), {
      "Content-Type": ERROR_CT,
      "Lambda-Runtime-Function-Error-Type": doc.errorType,
    }),
  initError: (doc) =>
    request("POST", "/2018-06-01/runtime/init/error", JSON.stringify(doc), {
      "Content-Type": ERROR_CT,
      "Lambda-Runtime-Function-Error-Type": doc.errorType,
    }),
};

// ---- response streaming ----
const STREAMING = Symbol.for("aws.lambda.runtime.handler.streaming");
const HIGH_WATER_MARK = Symbol.for("aws.lambda.runtime.handler.streaming.highWaterMark");
const HTTP_INTEGRATION_CT = "application/vnd.awslambda.http-integration-response";

function streamifyResponse(handler, options) {
  handler[STREAMING] = "response";
  if (options && Number.isInteger(options.highWaterMark)) handler[HIGH_WATER_MARK] = options.highWaterMark;
  return handler;
}

class HttpResponseStream {
  // Status, headers and cookies as JSON, then eight NUL bytes, then the body.
  static from(underlyingStream, prelude) {
    underlyingStream.setContentType(HTTP_INTEGRATION_CT);
    const metadata = JSON.stringify(prelude || {});
    underlyingStream._onBeforeFirstWrite = (write) => {
      write(metadata);
      write(Buffer.alloc(8));
    };
    return underlyingStream;
  }
}

globalThis.awslambda = Object.assign(globalThis.awslambda || {}, { streamifyResponse, HttpResponseStream });

// The response stream of one invocation: a chunked POST to /response in
// streaming mode, started by the first write (or the end), so that the
// content type can be set until then. An error after that goes as trailers.
function responseStream(id, highWaterMark) {
  let contentType = "application/octet-stream";
  let req;
  let resolveDone;
  let rejectDone;
  const done = new Promise((resolve, reject) => {
    resolveDone = resolve;
    rejectDone = reject;
  });
  const begin = () => {
    if (req) return;
    req = http.request(
      {
        host: HOST,
        port: PORT,
        method: "POST",
        path: `/2018-06-01/runtime/invocation/${id}/response`,
        agent,
        headers: {
          "Content-Type": contentType,
          "Lambda-Runtime-Function-Response-Mode": "streaming",
          "Transfer-Encoding": "chunked",
          Trailer: "Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body",
        },
      },
      (res) => {
        res.resume();
        res.on("end", () => resolveDone(res.statusCode));
        res.on("error", rejectDone);
      },
    );
    req.on("error", rejectDone);
    req.setNoDelay(true);
    if (typeof stream._onBeforeFirstWrite === "function") {
      stream._onBeforeFirstWrite((c) => req.write(c));
    }
  };
  const stream = new Writable({
    highWaterMark: highWaterMark || undefined,
    write(chunk, encoding, cb) {
      begin();
      req.write(chunk, encoding, () => cb());
    },
    final(cb) {
      begin();
      req.end(() => cb());
    },
  });
  stream.setContentType = (ct) => {
    if (req) throw new Error("The content type can only be set before the first write");
    contentType = String(ct);
  };
  // Ends the response with the error as trailers (the body so far stands).
  stream.fail = (doc) => {
    begin();
    if (req.writableEnded) return;
    req.addTrailers({
      "Lambda-Runtime-Function-Error-Type": doc.errorType,
      "Lambda-Runtime-Function-Error-Body": Buffer.from(JSON.stringify(doc)).toString("base64"),
    });
    req.end();
  };
  return { stream, done };
}

async function invokeStreaming(id, event, ctx) {
  const { stream, done } = responseStream(id, handler[HIGH_WATER_MARK]);
  let failure;
  try {
    const ret = handler(event, stream, ctx);
    if (ret && typeof ret.then === "function") await ret;
  } catch (e) {
    failure = e === undefined ? new Error("undefined") : e;
  }
  if (failure !== undefined) {
    const doc = toErrorDoc(failure);
    logError(doc, id);
    stream.fail(doc);
  } else if (!stream.writableEnded) {
    stream.end();
  }
  try {
    await done;
  } catch (e) {
    process.stderr.write(`streaming the response failed: ${e && e.message}\n`);
  }
}

// ---- logging: console.* lines carry the timestamp, request id and level ----
let currentRequestId;
function patchConsole() {
  const write = (level) =>
    function (...args) {
      const msg = util.format(...args).replace(/\n/g, "\r");
      process.stdout.write(`${new Date().toISOString()}\t${currentRequestId || "undefined"}\t${level}\t${msg}\n`);
    };
  console.log = write("INFO");
  console.info = write("INFO");
  console.warn = write("WARN");
  console.error = write("ERROR");
  console.debug = write("DEBUG");
  console.trace = write("TRACE");
  console.fatal = write("FATAL");
}

// ---- errors ----
class UserCodeError extends Error {
  constructor(errorType, message, cause) {
    super(message);
    this.name = errorType;
    this.errorType = errorType;
    if (cause && cause.stack) this.stack = `${errorType}: ${message}\n${String(cause.stack).split("\n").slice(1).join("\n")}`;
  }
}

function toErrorDoc(err) {
  if (err instanceof Error) {
    const errorType = err.errorType || err.name || "Error";
    return {
      errorType,
      errorMessage: err.message,
      trace: String(err.stack || "").split("\n"),
    };
  }
  try {
    return { errorType: typeof err === "string" ? "string" : "Error", errorMessage: typeof err === "string" ? err : JSON.stringify(err), trace: [] };
  } catch (_) {
    return { errorType: "Error", errorMessage: String(err), trace: [] };
  }
}

function logError(doc, requestId) {
  const text = JSON.stringify(doc);
  process.stdout.write(`${new Date().toISOString()}\t${requestId || "undefined"}\tERROR\tInvoke Error \t${text}\n`);
}

// ---- handler loading ----
async function loadHandler(spec) {
  const taskRoot = process.env.LAMBDA_TASK_ROOT || "/var/task";
  const dot = spec.lastIndexOf(".");
  if (dot <= 0 || spec.startsWith("..") ) {
    throw new UserCodeError("Runtime.MalformedHandlerName", "Bad handler");
  }
  const moduleName = spec.slice(0, dot);
  const handlerPath = spec.slice(dot + 1);
  const base = path.resolve(taskRoot, moduleName);
  let mod;
  try {
    if (fs.existsSync(base + ".mjs")) {
      mod = await import(pathToFileURL(base + ".mjs").href);
    } else if (fs.existsSync(base + ".cjs")) {
      mod = require(base + ".cjs");
    } else {
      try {
        mod = require(base);
      } catch (e) {
        if (e && (e.code === "ERR_REQUIRE_ESM" || e.code === "ERR_REQUIRE_ASYNC_MODULE")) {
          mod = await import(pathToFileURL(require.resolve(base)).href);
        } else {
          throw e;
        }
      }
    }
  } catch (e) {
    if (e instanceof SyntaxError) {
      throw new UserCodeError("Runtime.UserCodeSyntaxError", `${e.name}: ${e.message}`, e);
    }
    if (e && e.code === "MODULE_NOT_FOUND" && String(e.message).includes(base)) {
      throw new UserCodeError("Runtime.ImportModuleError", `Error: Cannot find module '${moduleName}'\nRequire stack:\n- /var/runtime/bootstrap.js`, e);
    }
    throw e;
  }
  let fn = mod;
  for (const part of handlerPath.split(".")) {
    fn = fn == null ? undefined : fn[part];
  }
  if (fn === undefined && mod && mod.default) {
    let alt = mod.default;
    for (const part of handlerPath.split(".")) alt = alt == null ? undefined : alt[part];
    fn = alt;
  }
  if (typeof fn !== "function") {
    throw new UserCodeError("Runtime.HandlerNotFound", `${spec} is undefined or not exported`);
  }
  return fn;
}

// ---- the context object ----
function makeContext(headers, finish) {
  const deadline = Number(headers["lambda-runtime-deadline-ms"]);
  const ctx = {
    callbackWaitsForEmptyEventLoop: true,
    functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
    functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
    invokedFunctionArn: headers["lambda-runtime-invoked-function-arn"],
    memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    awsRequestId: headers["lambda-runtime-aws-request-id"],
    logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
    getRemainingTimeInMillis: () => Math.max(deadline - Date.now(), 0),
    done: (err, result) => finish(err, result),
    succeed: (result) => finish(null, result),
    fail: (err) => finish(err == null ? new Error("handled") : err),
  };
  if (headers["lambda-runtime-client-context"]) {
    try {
      ctx.clientContext = JSON.parse(Buffer.from(headers["lambda-runtime-client-context"], "base64").toString());
    } catch (_) {
      ctx.clientContext = undefined;
    }
  }
  if (headers["lambda-runtime-cognito-identity"]) {
    try {
      ctx.identity = JSON.parse(headers["lambda-runtime-cognito-identity"]);
    } catch (_) {
      ctx.identity = undefined;
    }
  }
  return ctx;
}

// ---- the invoke loop ----
let handler;
let inFlight; // { id, settled }

function settle(err, result) {
  const current = inFlight;
  if (!current || current.settled) return Promise.resolve();
  current.settled = true;
  if (err !== null && err !== undefined) {
    const doc = toErrorDoc(err);
    logError(doc, current.id);
    return client.error(current.id, doc);
  }
  let body;
  try {
    body = JSON.stringify(result === undefined ? null : result);
  } catch (e) {
    const doc = { errorType: "Runtime.MarshalError", errorMessage: `Unable to stringify response body: ${e.message}`, trace: [] };
    logError(doc, current.id);
    return client.error(current.id, doc);
  }
  return client.response(current.id, body === undefined ? "null" : body);
}

async function invokeOnce() {
  const res = await client.next();
  if (res.status !== 200) {
    process.stderr.write(`Runtime API /next answered ${res.status}\n`);
    process.exit(1);
  }
  const h = res.headers;
  const id = h["lambda-runtime-aws-request-id"];
  currentRequestId = id;
  if (h["lambda-runtime-trace-id"]) process.env._X_AMZN_TRACE_ID = h["lambda-runtime-trace-id"];
  else delete process.env._X_AMZN_TRACE_ID;
  inFlight = { id, settled: false };
  let event;
  try {
    event = res.body.length ? JSON.parse(res.body.toString("utf8")) : {};
  } catch (e) {
    return settle({ errorType: "Runtime.UnmarshalError", message: e.message });
  }
  if (handler[STREAMING] === "response") {
    inFlight.settled = true;
    return invokeStreaming(id, event, makeContext(h, () => {}));
  }
  let finishedByCallback;
  const done = new Promise((resolve) => {
    finishedByCallback = (err, result) => resolve(settle(err, result));
  });
  const ctx = makeContext(h, finishedByCallback);
  try {
    const ret = handler(event, ctx, finishedByCallback);
    if (ret && typeof ret.then === "function") {
      ret.then((v) => finishedByCallback(null, v), (e) => finishedByCallback(e === undefined ? new Error("undefined") : e));
    } else if (handler.length < 3) {
      finishedByCallback(null, ret);
    }
  } catch (e) {
    finishedByCallback(e);
  }
  await done;
}

process.on("uncaughtException", (err) => {
  const doc = toErrorDoc(err);
  doc.errorType = err && err.name ? err.name : "Runtime.UncaughtException";
  logError(doc, currentRequestId);
  const post = inFlight && !inFlight.settled ? client.error(inFlight.id, doc) : client.initError(doc);
  post.finally(() => process.exit(129));
});
process.on("unhandledRejection", (reason) => {
  const doc = {
    errorType: "Runtime.UnhandledPromiseRejection",
    errorMessage: `${reason instanceof Error ? reason.name + ": " + reason.message : String(reason)}`,
    trace: reason instanceof Error ? String(reason.stack).split("\n") : [],
  };
  logError(doc, currentRequestId);
  const post = inFlight && !inFlight.settled ? client.error(inFlight.id, doc) : client.initError(doc);
  post.finally(() => process.exit(128));
});

(async () => {
  patchConsole();
  try {
    handler = await loadHandler(process.env._HANDLER || "");
  } catch (e) {
    const doc = toErrorDoc(e);
    logError(doc, undefined);
    await client.initError(doc);
    process.exit(129);
  }
  for (;;) {
    await invokeOnce();
  }
})();
