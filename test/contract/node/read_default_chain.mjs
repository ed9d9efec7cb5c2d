// Resolves credentials with the AWS SDK for JavaScript v3's Node default
// chain (defaultProvider from @aws-sdk/credential-provider-node, what every
// v3 client uses in Node when given no credentials), as a function would.
//
// The chain contract test in extension/internal/server runs this after
// `npm ci`, once with what the exec wrapper leaves a function:
//   AWS_CONTAINER_CREDENTIALS_FULL_URI, AWS_CONTAINER_AUTHORIZATION_TOKEN
//   AWS_SESSION_TOKEN   the execution role's token, alone: the wrapper keeps
//                       it and unsets AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY
// and once with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY also set, where
// the chain must pick the environment instead. The test isolates the chain
// from this machine (AWS_EC2_METADATA_DISABLED, AWS_CONFIG_FILE,
// AWS_SHARED_CREDENTIALS_FILE, HOME) and sets a region.
// So that no secret is ever printed:
//   CONTRACT_EXPECT_SECRET_SHA256, CONTRACT_EXPECT_TOKEN_SHA256
//
// Output is one JSON line. Success:
//   {"ok":true,"access_key","source","has_secret","has_token",
//    "secret_matches","token_matches"}
// where source lists the SDK's credential-feature marks ($source), e.g.
// CREDENTIALS_HTTP or CREDENTIALS_ENV_VARS. A clean SDK failure
// (CredentialsProviderError) is {"ok":false,"error_type","error"} with exit
// status 0; anything else is a crash (status 1).
import { createHash } from "node:crypto";
import { defaultProvider } from "@aws-sdk/credential-provider-node";

const sha256 = (v) => (v ? createHash("sha256").update(v).digest("hex") : "");

async function read() {
  const creds = await defaultProvider()();
  return {
    ok: true,
    access_key: creds.accessKeyId,
    source: Object.keys(creds.$source ?? {}).sort().join(","),
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
  out = { ok: false, error_type: e.name, error: e.message };
}
process.stdout.write(JSON.stringify(out) + "\n");
