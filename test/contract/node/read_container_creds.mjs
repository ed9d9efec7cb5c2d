// Reads the credential-refresh endpoint with the AWS SDK for JavaScript v3's
// own HTTP credential provider (fromHttp), as a Node function would.
//
// The contract test in extension/internal/server runs this after `npm ci`.
// Input is the standard environment the exec wrapper sets:
//   AWS_CONTAINER_CREDENTIALS_FULL_URI       the endpoint (required)
//   AWS_CONTAINER_AUTHORIZATION_TOKEN        the token, or
//   AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE   a file holding it (preferred)
// plus, so that no secret is ever printed:
//   CONTRACT_EXPECT_SECRET_SHA256, CONTRACT_EXPECT_TOKEN_SHA256
//
// Output is one JSON line. Success:
//   {"ok":true,"access_key","expiry_time":"...Z","account_id","has_secret",
//    "has_token","secret_matches","token_matches"}
// A clean SDK failure (CredentialsProviderError) is {"ok":false,"error_type",
// "error","code"} with exit status 0; anything else is a crash (status 1).
import { createHash } from "node:crypto";
import { fromHttp } from "@aws-sdk/credential-provider-http";

const sha256 = (v) => (v ? createHash("sha256").update(v).digest("hex") : "");

async function read() {
  const creds = await fromHttp()();
  if (!(creds.expiration instanceof Date) || Number.isNaN(creds.expiration.getTime())) {
    throw new Error(`fromHttp returned no valid expiration: ${creds.expiration}`);
  }
  return {
    ok: true,
    access_key: creds.accessKeyId,
    expiry_time: creds.expiration.toISOString().replace(/\.\d{3}Z$/, "Z"),
    account_id: creds.accountId ?? null,
    has_secret: Boolean(creds.secretAccessKey),
    has_token: Boolean(creds.sessionToken),
    secret_matches: sha256(creds.secretAccessKey) === process.env.CONTRACT_EXPECT_SECRET_SHA256,
    token_matches: sha256(creds.sessionToken) === process.env.CONTRACT_EXPECT_TOKEN_SHA256,
  };
}

let out;
try {
  out = await read();
} catch (e) {
  if (e?.name !== "CredentialsProviderError") throw e;
  out = { ok: false, error_type: e.name, error: e.message, code: e.Code ?? null };
}
process.stdout.write(JSON.stringify(out) + "\n");
