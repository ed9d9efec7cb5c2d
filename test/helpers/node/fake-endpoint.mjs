// A fake credential-refresh endpoint for the helper's tests: it answers
// like the extension (container-credentials JSON; errors as
// {"Code","Message"}), and records what it received.
import { randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";

export async function startEndpoint() {
  const ep = {
    token: randomBytes(32).toString("base64url"),
    secret: randomBytes(24).toString("base64url"), // unguessable: finding it in a message is a leak
    roles: { default: "ASIADEFAULT", audit: "ASIAAUDIT", reports: "ASIAREPORTS" },
    lifetimeMs: 3600_000,
    error: null, // [status, code, message] to answer instead of credentials
    requests: [], // { path, auth }
    issued: 0,
  };
  ep.dir = mkdtempSync(path.join(tmpdir(), "credential-refresh-node-test-"));
  ep.tokenFile = path.join(ep.dir, "token");
  writeFileSync(ep.tokenFile, ep.token); // no trailing newline, as the extension writes it
  const answer = (p, auth) => {
    ep.requests.push({ path: p, auth });
    if (auth === undefined) return [401, { Code: "MissingToken", Message: "no Authorization header" }];
    if (auth !== ep.token) return [403, { Code: "InvalidToken", Message: "the token does not match" }];
    if (ep.error) return [ep.error[0], { Code: ep.error[1], Message: ep.error[2] }];
    const name = p === "/v1/credentials" ? "default" : p.replace(/^\/v1\/credentials\//, "");
    if (!(name in ep.roles)) {
      return [404, { Code: "RoleNotFound", Message: `no role named "${name}"; configured: ${Object.keys(ep.roles).sort()}` }];
    }
    ep.issued++;
    return [
      200,
      {
        AccessKeyId: `${ep.roles[name]}${String(ep.issued).padStart(4, "0")}`,
        SecretAccessKey: ep.secret,
        Token: `session-${ep.secret}`,
        Expiration: new Date(Date.now() + ep.lifetimeMs).toISOString().replace(/\.\d+Z$/, "Z"),
        AccountId: "123456789012",
      },
    ];
  };
  ep.server = http.createServer((req, res) => {
    const [status, body] = answer(req.url, req.headers.authorization);
    const data = JSON.stringify(body);
    res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(data) });
    res.end(data);
  });
  await new Promise((resolve) => ep.server.listen(0, "127.0.0.1", resolve));
  ep.port = ep.server.address().port;
  ep.paths = () => ep.requests.map((r) => r.path);
  ep.rotateToken = () => {
    ep.token = `rotated-${ep.token}`;
    writeFileSync(ep.tokenFile, ep.token);
  };
  ep.close = () => new Promise((resolve) => ep.server.close(resolve));
  return ep;
}
