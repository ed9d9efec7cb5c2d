"""Reads the credential-refresh endpoint with botocore's own ContainerProvider.

The contract test in extension/internal/server runs this with the project
venv. Input is the standard environment the exec wrapper sets:

  AWS_CONTAINER_CREDENTIALS_FULL_URI       the endpoint (required)
  AWS_CONTAINER_AUTHORIZATION_TOKEN        the token, or
  AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE   a file holding it (botocore prefers the file)

plus, so that no secret is ever printed:

  CONTRACT_EXPECT_SECRET_SHA256, CONTRACT_EXPECT_TOKEN_SHA256
      hex SHA-256 of the expected secret key and session token.

Output is one JSON line on stdout. Success:
  {"ok": true, "access_key": ..., "expiry_time": "...Z", "account_id": ...,
   "has_secret": bool, "has_token": bool, "secret_matches": bool,
   "token_matches": bool, "method": "container-role"}
A clean SDK failure (any botocore error) is {"ok": false, "error_type", "error"}
with exit status 0; anything else is a crash (traceback, non-zero status).
"""

import datetime
import hashlib
import json
import os
import sys

from botocore.credentials import ContainerProvider
from botocore.exceptions import BotoCoreError


def sha256(value):
    return hashlib.sha256(value.encode()).hexdigest() if value else ""


def read():
    creds = ContainerProvider(environ=os.environ).load()
    if creds is None:
        raise SystemExit("ContainerProvider found no AWS_CONTAINER_CREDENTIALS_* variables")
    frozen = creds.get_frozen_credentials()
    expiry = creds._expiry_time.astimezone(datetime.timezone.utc)
    return {
        "ok": True,
        "access_key": frozen.access_key,
        "expiry_time": expiry.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "account_id": getattr(frozen, "account_id", None),
        "has_secret": bool(frozen.secret_key),
        "has_token": bool(frozen.token),
        "secret_matches": sha256(frozen.secret_key) == os.environ.get("CONTRACT_EXPECT_SECRET_SHA256"),
        "token_matches": sha256(frozen.token) == os.environ.get("CONTRACT_EXPECT_TOKEN_SHA256"),
        "method": creds.method,
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
