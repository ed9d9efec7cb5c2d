"""Shows which credentials the AWS CLI (v1, awscli in the project venv) resolves.

It runs `aws configure list` in-process, exactly as the `aws` entry point
does (awscli.clidriver: create_clidriver(), then driver.main(args)), and
reads the access_key row: its Type is the credential source botocore
reports ("container-role", "env", ...) and its Value shows the key id's last
4 characters. `configure list` shows no session token, and the lone-token
case is about the token, so the script then asks the same CLI session for
its credentials (session.get_credentials(), which returns what botocore
cached for the command, or runs the chain when the command read
AWS_ACCESS_KEY_ID directly, as it does when that is set) and compares their
secret and token by hash. No call leaves the machine: the only request is
the container provider's, to the test's endpoint. (awscli 1.46 has no
`configure export-credentials`; that is v2 only.)

Environment: as read_default_chain.py (the exec wrapper's variables, the
lone AWS_SESSION_TOKEN, the isolation variables, and optionally
AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY), plus

  CONTRACT_EXPECT_SECRET_SHA256, CONTRACT_EXPECT_TOKEN_SHA256
      hex SHA-256 of the expected secret key and session token.

Output is one JSON line on stdout. Success:
  {"ok": true, "cli_type": ..., "cli_key_last4": ..., "access_key": ...,
   "source": ..., "has_secret", "has_token", "secret_matches", "token_matches"}
A failing `aws configure list` is {"ok": false, "error_type": "CLIExit<rc>",
"error": <its stderr>} with exit status 0; anything else is a crash.
The secret_key row (which shows the secret's last 4 characters) is never
printed.
"""

import contextlib
import hashlib
import io
import json
import os
import sys

from awscli.clidriver import create_clidriver


def sha256(value):
    return hashlib.sha256(value.encode()).hexdigest() if value else ""


def access_key_row(table):
    # Rows are "%10s %24s %16s    %s": name, value, type, location.
    for line in table.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[0] == "access_key":
            return fields[1], fields[2]
    raise SystemExit("no access_key row in `aws configure list` output")


def read():
    driver = create_clidriver()
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        rc = driver.main(["configure", "list"])
    if rc != 0:
        return {"ok": False, "error_type": f"CLIExit{rc}", "error": stderr.getvalue().strip()}
    masked, cli_type = access_key_row(stdout.getvalue())
    creds = driver.session.get_credentials()
    frozen = creds.get_frozen_credentials()
    return {
        "ok": True,
        "cli_type": cli_type,
        "cli_key_last4": masked[-4:],
        "access_key": frozen.access_key,
        "source": creds.method,
        "has_secret": bool(frozen.secret_key),
        "has_token": bool(frozen.token),
        "secret_matches": sha256(frozen.secret_key) == os.environ.get("CONTRACT_EXPECT_SECRET_SHA256"),
        "token_matches": sha256(frozen.token) == os.environ.get("CONTRACT_EXPECT_TOKEN_SHA256"),
    }


def main():
    json.dump(read(), sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
