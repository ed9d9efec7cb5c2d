// Node.js example function for the credential-refresh layer.
//
// There is no credential code here: a plain S3Client with the SDK's default
// credential chain. With AWS_LAMBDA_EXEC_WRAPPER=/opt/credential-refresh/exec-wrapper
// the layer's wrapper points the SDK's container provider at the extension,
// which keeps the assumed role's credentials fresh.
//
// Event:    {"bucket": "my-bucket", "prefix": "node-0001-", "count": 8}
// Response: {"runtime": "node", "written": 8, "keys": [...], "accessKeyId": "ASIA..."}
//
// With "secretsEndpoint" in the event (a Parameters and Secrets extension
// URL), it also calls that URL the way functions do, with
// X-Aws-Parameters-Secrets-Token: $AWS_SESSION_TOKEN, and adds
// "secrets": {"status": 200, "sessionTokenSet": true} to the response (the
// status only, never the value). The exec wrapper keeps AWS_SESSION_TOKEN for
// exactly this.
import { PutObjectCommand, S3Client } from "@aws-sdk/client-s3";

const MAX_COUNT = 1000;

// Created once per execution environment, reused by warm invocations.
const s3 = new S3Client({});

async function callSecrets(endpoint) {
  const token = process.env.AWS_SESSION_TOKEN ?? "";
  const res = await fetch(endpoint, {
    headers: { "X-Aws-Parameters-Secrets-Token": token },
    signal: AbortSignal.timeout(5000),
  });
  await res.arrayBuffer(); // the secret: used here, never returned or logged
  return { status: res.status, sessionTokenSet: token !== "" };
}

export const handler = async (event) => {
  const bucket = event?.bucket;
  if (!bucket) throw new Error('event needs "bucket"');
  const prefix = event.prefix || "node-";
  const count = Number(event.count || 8);
  if (!Number.isInteger(count) || count < 1 || count > MAX_COUNT) {
    throw new Error(`"count" must be 1..${MAX_COUNT}, got ${event.count}`);
  }

  const keys = Array.from({ length: count }, (_, i) => `${prefix}${String(i).padStart(4, "0")}`);
  // All uploads in flight at once; the SDK's HTTP agent bounds the sockets.
  await Promise.all(
    keys.map((Key, i) =>
      s3.send(new PutObjectCommand({ Bucket: bucket, Key, Body: `object ${i + 1} of ${count}, written by the Node.js example\n` })),
    ),
  );

  // The access key ID only, for the caller to see which credentials were
  // used. Never return or log the secret or the session token.
  const { accessKeyId } = await s3.config.credentials();
  const result = { runtime: "node", written: keys.length, keys, accessKeyId };
  if (event.secretsEndpoint) result.secrets = await callSecrets(event.secretsEndpoint);
  return result;
};
