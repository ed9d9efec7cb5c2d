// Node.js example: two named roles at once, with the layer's helper.
//
// A process has one AWS_CONTAINER_CREDENTIALS_FULL_URI, so the default chain
// gives one role. For several, the layer ships the package credential-refresh
// in /opt/nodejs/node_modules (nothing to install): fromCredentialRefresh({
// role: "audit" }) is an SDK v3 credential provider for the extension's role
// "audit", built on @aws-sdk/credential-provider-http (bundled with the
// runtime's SDK). It needs no exec wrapper (and works with it).
//
// This handler is an ES module, and ESM import ignores NODE_PATH, so it
// imports the package by its path in the layer. A CommonJS handler writes
// require("credential-refresh").
//
// Configuration: CREDENTIAL_REFRESH_ROLES='{"audit": {"RoleArn": "..."}, "reports": {"RoleArn": "..."}}'
// Event:    {"buckets": {"audit": "audit-bucket", "reports": "reports-bucket"}, "prefix": "roles-0001-", "count": 4}
// Response: {"runtime": "node-roles", "written": {"audit": 4, ...}, "keys": {...}, "accessKeyIds": {"audit": "ASIA...", ...}}
import { PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { fromCredentialRefresh } from "/opt/nodejs/node_modules/credential-refresh/index.mjs";

const MAX_COUNT = 1000;

// One client per role, created once per execution environment.
const clients = new Map();
const clientFor = (role) => {
  if (!clients.has(role)) clients.set(role, new S3Client({ credentials: fromCredentialRefresh({ role }) }));
  return clients.get(role);
};

export const handler = async (event) => {
  const buckets = event?.buckets ?? {};
  const roles = Object.keys(buckets).sort();
  if (roles.length === 0) throw new Error('event needs "buckets": {"role": "bucket", ...}');
  const prefix = event.prefix || "roles-";
  const count = Number(event.count || 4);
  if (!Number.isInteger(count) || count < 1 || count > MAX_COUNT) {
    throw new Error(`"count" must be 1..${MAX_COUNT}, got ${event.count}`);
  }

  const keys = Object.fromEntries(roles.map((r) => [r, []]));
  await Promise.all(
    roles.flatMap((role) =>
      Array.from({ length: count }, async (_, i) => {
        const Key = `${prefix}${role}-${String(i).padStart(4, "0")}`;
        await clientFor(role).send(new PutObjectCommand({ Bucket: buckets[role], Key, Body: `written with role ${role}\n` }));
        keys[role].push(Key);
      }),
    ),
  );

  // Access key IDs only; never the secret or the session token.
  const accessKeyIds = {};
  for (const role of roles) accessKeyIds[role] = (await clientFor(role).config.credentials()).accessKeyId;
  const written = Object.fromEntries(roles.map((r) => [r, keys[r].length]));
  return { runtime: "node-roles", written, keys, accessKeyIds };
};
