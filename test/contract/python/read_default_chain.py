"""Resolves credentials with boto3's default chain, as a Python function would.

The chain contract test in extension/internal/server runs this with the
project venv, once with what the exec wrapper leaves a function:

  AWS_CONTAINER_CREDENTIALS_FULL_URI, AWS_CONTAINER_AUTHORIZATION_TOKEN
  AWS_SESSION_TOKEN   the execution role's token, alone: the wrapper keeps it
                      and unsets AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY

and once with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY also set, where
the chain must pick the environment instead. The test isolates the chain
from this machine (AWS_EC2_METADATA_DISABLED, AWS_CONFIG_FILE,
AWS_SHARED_CREDENTIALS_FILE, BOTO_CONFIG, HOME) and sets a region.

So that no secret is ever printed:

  CONTRACT_EXPECT_SECRET_SHA256, CONTRACT_EXPECT_TOKEN_SHA256
      hex SHA-256 of the expected secret key and session token.

Output is one JSON line on stdout. Success:
  {"ok": true, "access_key": ..., "source": <botocore's method: "env",
   "container-role", ...>, "has_secret", "has_token", "secret_matches",
   "token_matches"}
No credentials, or any botocore error, is {"ok": false, "error_type",
"error"} with exit status 0; anything else is a crash (non-zero status).
"""

import hashlib
import json
import os
import sys

import boto3
from botocore.exceptions import BotoCoreError


def sha256(value):
    return hashlib.sha256(value.encode()).hexdigest() if value else ""


def read():
    creds = boto3.Session().get_credentials()
    if creds is None:
        return {"ok": False, "error_type": "NoCredentials", "error": "the default chain found no credentials"}
    frozen = creds.get_frozen_credentials()
    return {
        "ok": True,
        "access_key": frozen.access_key,
        "source": creds.method,
        "has_secret": bool(frozen.secret_key),
        "has_token": bool(frozen.token),
        "secret_matches": sha256(frozen.secret_key) == os.environ.get("CONTRACT_EXPECT_SECRET_SHA256"),
        "token_matches": sha256(frozen.token) == os.environ.get("CONTRACT_EXPECT_TOKEN_SHA256"),
    }


def main():
    try:
        out = read()
    except BotoCoreError as e:
        out = {"ok": False, "error_type": type(e).__name__, "error": str(e)}
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
