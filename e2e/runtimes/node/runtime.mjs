// A minimal Lambda runtime for Node.js, standing in for the managed nodejs
// runtime in the e2e harness and the demo (aws-lambda-ric needs native
// builds). It speaks the Runtime API's four calls: invocation/next,
// invocation/{id}/response, invocation/{id}/error and init/error.
//
// Usage: node runtime.mjs index.handler   (module file in the working directory)
import http from "node:http";
import path from "node:path";
import { pathToFileURL } from "node:url";

const api = process.env.AWS_LAMBDA_RUNTIME_API;
const base = "/2018-06-01/runtime";
// Lambda Managed Instances run several invocations at once in one Node
// process: one invocation/next loop per worker, as the managed nodejs
// runtime does. Elsewhere the variable is unset: one loop.
const workers = Math.max(1, Number.parseInt(process.env.AWS_LAMBDA_MAX_CONCURRENCY ?? "1", 10) || 1);
// No socket timeout: invocation/next blocks until the next invoke. Each
// worker holds one socket in /next and needs one more to respond.
const agent = new http.Agent({ keepAlive: true, maxSockets: 2 * workers });

function call(method, urlPath, body, headers = {}) {
  const [host, port] = api.split(":");
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host, port, method, path: base + urlPath, agent, headers: { "Content-Type": "application/json", ...headers } },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

function errorBody(err) {
  return JSON.stringify({
    errorType: err?.name ?? "Error",
    errorMessage: err?.message ?? String(err),
    stackTrace: (err?.stack ?? "").split("\n"),
  });
}

async function loadHandler(spec) {
  const dot = spec.lastIndexOf(".");
  const file = spec.slice(0, dot);
  const name = spec.slice(dot + 1);
  const root = process.env.LAMBDA_TASK_ROOT || process.cwd();
  const mod = await import(pathToFileURL(path.join(root, file + ".mjs")).href);
  if (typeof mod[name] !== "function") throw new Error(`handler ${spec} is not a function`);
  return mod[name];
}

let handler;
try {
  handler = await loadHandler(process.argv[2] || process.env._HANDLER || "index.handler");
} catch (err) {
  console.error(err);
  await call("POST", "/init/error", errorBody(err), { "Lambda-Runtime-Function-Error-Type": "Runtime.ImportModuleError" });
  process.exit(1);
}

async function worker() {
  for (;;) {
    await invokeOnce();
  }
}

async function invokeOnce() {
  const next = await call("GET", "/invocation/next");
  const id = next.headers["lambda-runtime-aws-request-id"];
  const deadline = Number(next.headers["lambda-runtime-deadline-ms"]);
  const context = {
    awsRequestId: id,
    invokedFunctionArn: next.headers["lambda-runtime-invoked-function-arn"],
    getRemainingTimeInMillis: () => deadline - Date.now(),
  };
  try {
    const result = await handler(JSON.parse(next.body || "null"), context);
    await call("POST", `/invocation/${id}/response`, JSON.stringify(result ?? null));
  } catch (err) {
    console.error(`invocation ${id} failed:`, err?.name, err?.message);
    await call("POST", `/invocation/${id}/error`, errorBody(err), { "Lambda-Runtime-Function-Error-Type": "Runtime.UnhandledError" });
  }
}

await Promise.all(Array.from({ length: workers }, worker));
