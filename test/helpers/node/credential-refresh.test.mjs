// Unit tests of the layer's credential-refresh package against a fake
// endpoint: token header, named roles, 401/403/404/503, the token file
// re-read on every fetch, typed errors with their fix, and loading from
// CommonJS (require via NODE_PATH) and from ESM (import by path).
//
// Run by scripts/test.sh as
//   NODE_PATH=layer/nodejs/node_modules:test/helpers/node/node_modules node --test test/helpers/node/
// (the first entry is the layer's /opt/nodejs/node_modules, the second plays
// the runtime's bundled SDK in /var/runtime/node_modules).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { unlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { after, before, beforeEach, describe, it } from "node:test";
import { fileURLToPath } from "node:url";

import * as cr from "../../../layer/nodejs/node_modules/credential-refresh/index.mjs";
import { startEndpoint } from "./fake-endpoint.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const layerPkg = path.join(here, "..", "..", "..", "layer", "nodejs", "node_modules", "credential-refresh");

describe("fromCredentialRefresh", () => {
  let ep;
  const opts = (o = {}) => ({ port: ep.port, tokenFile: ep.tokenFile, retryDelay: 0, ...o });
  before(async () => {
    ep = await startEndpoint();
  });
  after(() => ep.close());
  beforeEach(() => {
    ep.requests.length = 0;
    ep.error = null;
    writeFileSync(ep.tokenFile, ep.token);
  });

  it("reads the default role with the token from the file", async () => {
    const creds = await cr.fromCredentialRefresh(opts())();
    assert.match(creds.accessKeyId, /^ASIADEFAULT/);
    assert.equal(creds.secretAccessKey, ep.secret);
    assert.ok(creds.expiration instanceof Date && creds.expiration > new Date());
    assert.deepEqual(ep.requests, [{ path: "/v1/credentials", auth: ep.token }]);
  });

  it("reads each named role from its own path", async () => {
    const audit = await cr.fromCredentialRefresh(opts({ role: "audit" }))();
    const reports = await cr.fromCredentialRefresh(opts({ role: "reports" }))();
    assert.match(audit.accessKeyId, /^ASIAAUDIT/);
    assert.match(reports.accessKeyId, /^ASIAREPORTS/);
    assert.deepEqual(ep.paths(), ["/v1/credentials/audit", "/v1/credentials/reports"]);
  });

  it("takes port and token file from the extension's variables", async () => {
    process.env.CREDENTIAL_REFRESH_PORT = String(ep.port);
    process.env.CREDENTIAL_REFRESH_TOKEN_FILE = ep.tokenFile;
    try {
      const creds = await cr.fromCredentialRefresh({ role: "audit" })();
      assert.match(creds.accessKeyId, /^ASIAAUDIT/);
    } finally {
      delete process.env.CREDENTIAL_REFRESH_PORT;
      delete process.env.CREDENTIAL_REFRESH_TOKEN_FILE;
    }
  });

  it("ignores the container variables the exec wrapper sets for the default chain", async () => {
    process.env.AWS_CONTAINER_CREDENTIALS_FULL_URI = "http://127.0.0.1:1/elsewhere";
    process.env.AWS_CONTAINER_AUTHORIZATION_TOKEN = "wrapper-token";
    process.env.AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE = "/nonexistent/token";
    try {
      const creds = await cr.fromCredentialRefresh(opts({ role: "audit" }))();
      assert.match(creds.accessKeyId, /^ASIAAUDIT/);
      assert.deepEqual(ep.requests, [{ path: "/v1/credentials/audit", auth: ep.token }]);
    } finally {
      delete process.env.AWS_CONTAINER_CREDENTIALS_FULL_URI;
      delete process.env.AWS_CONTAINER_AUTHORIZATION_TOKEN;
      delete process.env.AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE;
    }
  });

  it("re-reads the token file on every fetch", async () => {
    const provider = cr.fromCredentialRefresh(opts({ role: "audit" }));
    await provider();
    ep.rotateToken(); // a new token: the next fetch must send it
    await provider();
    assert.deepEqual(
      ep.requests.map((r) => r.auth === ep.token),
      [false, true],
    );
  });

  it("names a missing token file and the fix, without a request", async () => {
    const provider = cr.fromCredentialRefresh(opts({ role: "audit" }));
    unlinkSync(ep.tokenFile);
    await assert.rejects(provider(), (err) => {
      assert.ok(err instanceof cr.TokenFileError && err instanceof cr.CredentialRefreshError);
      assert.equal(err.path, ep.tokenFile);
      assert.match(err.message, /does not exist/);
      assert.ok(err.message.includes(ep.tokenFile) && err.message.includes("CREDENTIAL_REFRESH_TOKEN_FILE"));
      assert.equal(err.tryNextLink, false);
      return true;
    });
    assert.equal(ep.requests.length, 0);
  });

  it("names an empty token file", async () => {
    writeFileSync(ep.tokenFile, "");
    await assert.rejects(cr.fromCredentialRefresh(opts())(), (err) => err instanceof cr.TokenFileError && /is empty/.test(err.message));
  });

  it("types an unknown role (404) with the fix and does not retry", async () => {
    await assert.rejects(cr.fromCredentialRefresh(opts({ role: "billing" }))(), (err) => {
      assert.ok(err instanceof cr.RoleNotFoundError);
      assert.equal(err.status, 404);
      assert.equal(err.code, "RoleNotFound");
      assert.equal(err.role, "billing");
      assert.match(err.message, /role "billing"/);
      assert.match(err.message, /CREDENTIAL_REFRESH_ROLES/);
      assert.match(err.message, /audit/); // the extension lists the configured names
      return true;
    });
    // fromHttp's one request, then one that reads the error body.
    assert.deepEqual(ep.paths(), ["/v1/credentials/billing", "/v1/credentials/billing"]);
  });

  it("types a refused token (403) and does not retry", async () => {
    writeFileSync(ep.tokenFile, "not-the-token");
    await assert.rejects(cr.fromCredentialRefresh(opts())(), (err) => {
      assert.ok(err instanceof cr.UnauthorizedError);
      assert.equal(err.status, 403);
      assert.equal(err.code, "InvalidToken");
      assert.ok(!err.message.includes("not-the-token") && !err.message.includes(ep.token));
      return true;
    });
    assert.equal(ep.requests.length, 2);
  });

  it("retries a 503 and then types it with STS's error", async () => {
    ep.error = [503, "CredentialsUnavailable", "AssumeRole failed: ServiceUnavailable: STS is down"];
    await assert.rejects(cr.fromCredentialRefresh(opts({ role: "audit", maxAttempts: 3 }))(), (err) => {
      assert.ok(err instanceof cr.CredentialsUnavailableError);
      assert.equal(err.status, 503);
      assert.match(err.message, /ServiceUnavailable/);
      assert.ok(!err.message.includes(ep.secret));
      return true;
    });
    assert.equal(ep.requests.length, 6); // 3 attempts, each with its diagnosis
  });

  it("recovers when the endpoint does, with the same provider", async () => {
    const provider = cr.fromCredentialRefresh(opts({ role: "audit", maxAttempts: 5 }));
    ep.error = [503, "CredentialsUnavailable", "STS is down"];
    const pending = provider();
    setTimeout(() => (ep.error = null), 30);
    const creds = await pending.catch((e) => e);
    // With retryDelay 0 the attempts may all fail before the fix: then the
    // next call succeeds.
    const ok = creds.accessKeyId ? creds : await provider();
    assert.match(ok.accessKeyId, /^ASIAAUDIT/);
  });

  it("types an endpoint that does not answer", async () => {
    await assert.rejects(cr.fromCredentialRefresh(opts({ port: 1, maxAttempts: 2 }))(), (err) => {
      assert.ok(err instanceof cr.EndpointUnreachableError);
      assert.match(err.message, /127\.0\.0\.1:1/);
      assert.match(err.message, /layer/);
      return true;
    });
  });

  it("refuses bad role names before any request", () => {
    for (const bad of ["", "a/b", "..", "x y", 7]) {
      assert.throws(() => cr.fromCredentialRefresh(opts({ role: bad })), /not a role name/);
    }
    assert.equal(ep.requests.length, 0);
  });

  it("says what to do when the SDK package is missing", () => {
    const out = execFileSync(process.execPath, ["-e", `
      const cr = require(${JSON.stringify(layerPkg)});
      try { cr.fromCredentialRefresh({ role: "audit" }); console.log("loaded"); }
      catch (e) { console.log(e.name + ": " + e.message); }`], { env: { ...process.env, NODE_PATH: "" } }).toString();
    assert.match(out, /^PeerDependencyError: .*@aws-sdk\/credential-provider-http.*fromCredentialRefresh\(\{ fromHttp \}\)/s);
  });

  it("accepts fromHttp passed in", async () => {
    let calls = 0;
    const fromHttp = () => async () => {
      calls++;
      return { accessKeyId: "ASIAINJECTED", secretAccessKey: "s", sessionToken: "t", expiration: new Date(Date.now() + 3600_000) };
    };
    const creds = await cr.fromCredentialRefresh(opts({ fromHttp }))();
    assert.equal(creds.accessKeyId, "ASIAINJECTED");
    assert.equal(calls, 1);
  });
});

describe("loading", () => {
  const env = { ...process.env };
  it("loads from CommonJS with require() through NODE_PATH", () => {
    const out = execFileSync(process.execPath, ["-e", `
      const { fromCredentialRefresh, RoleNotFoundError } = require("credential-refresh");
      console.log(typeof fromCredentialRefresh, typeof RoleNotFoundError);
      fromCredentialRefresh({ role: "audit" }); // resolves the SDK's fromHttp`], { env }).toString();
    assert.equal(out.trim(), "function function");
  });

  it("does not load from ESM by bare name (ESM import ignores NODE_PATH)", () => {
    const run = () =>
      execFileSync(process.execPath, ["--input-type=module", "-e", `import "credential-refresh";`], { env, stdio: "pipe" });
    assert.throws(run, /ERR_MODULE_NOT_FOUND|Cannot find package/);
  });

  it("loads from ESM by its path in the layer, and finds the SDK through NODE_PATH", () => {
    const entry = path.join(layerPkg, "index.mjs");
    const out = execFileSync(process.execPath, ["--input-type=module", "-e", `
      import { fromCredentialRefresh, TokenFileError } from ${JSON.stringify(entry)};
      fromCredentialRefresh({ role: "audit" });
      console.log(typeof fromCredentialRefresh, typeof TokenFileError);`], { env }).toString();
    assert.equal(out.trim(), "function function");
  });

  it("loads from ESM with createRequire", () => {
    const out = execFileSync(process.execPath, ["--input-type=module", "-e", `
      import { createRequire } from "node:module";
      const { fromCredentialRefresh } = createRequire(import.meta.url)("credential-refresh");
      console.log(typeof fromCredentialRefresh);`], { env }).toString();
    assert.equal(out.trim(), "function");
  });
});
