"""A fake credential-refresh endpoint for the helper's tests.

It answers like the extension: /v1/credentials and /v1/credentials/<name>
with the container-credentials JSON, errors as {"Code","Message"}. Each test
sets what it answers and reads what it received.
"""

import datetime
import http.server
import json
import os
import secrets
import sys
import threading

import pytest

# The layer's python/ directory plays /opt/python, which Lambda puts on sys.path.
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "layer", "python"))


class Endpoint:
    def __init__(self):
        self.token = secrets.token_urlsafe(32)
        self.roles = {"default": "ASIADEFAULT", "audit": "ASIAAUDIT", "reports": "ASIAREPORTS"}
        self.lifetime = datetime.timedelta(hours=1)
        self.error = None  # (status, code, message) to answer instead of credentials
        self.requests = []  # (path, authorization header)
        self.issued = 0
        self.secret = secrets.token_urlsafe(24)  # unguessable: finding it in a message is a leak

    def answer(self, path, auth):
        self.requests.append((path, auth))
        if auth is None:
            return 401, {"Code": "MissingToken", "Message": "no Authorization header"}
        if auth != self.token:
            return 403, {"Code": "InvalidToken", "Message": "the token does not match"}
        if self.error:
            status, code, message = self.error
            return status, {"Code": code, "Message": message}
        name = "default" if path == "/v1/credentials" else path.removeprefix("/v1/credentials/")
        if name not in self.roles or not path.startswith("/v1/credentials"):
            return 404, {"Code": "RoleNotFound", "Message": f"no role named {name!r}; configured: {sorted(self.roles)}"}
        self.issued += 1
        expires = datetime.datetime.now(datetime.timezone.utc) + self.lifetime
        return 200, {
            "AccessKeyId": f"{self.roles[name]}{self.issued:04d}",
            "SecretAccessKey": self.secret,
            "Token": "session-" + self.secret,
            "Expiration": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "AccountId": "123456789012",
        }

    def paths(self):
        return [p for p, _ in self.requests]


@pytest.fixture
def endpoint(tmp_path, monkeypatch):
    ep = Endpoint()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            status, body = ep.answer(self.path, self.headers.get("Authorization"))
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    ep.port = server.server_address[1]
    ep.token_file = tmp_path / "token"
    ep.token_file.write_text(ep.token)  # no trailing newline, as the extension writes it
    # The helper reads the extension's own variables, as a function would.
    monkeypatch.setenv("CREDENTIAL_REFRESH_PORT", str(ep.port))
    monkeypatch.setenv("CREDENTIAL_REFRESH_TOKEN_FILE", str(ep.token_file))
    # The execution role's keys, as Lambda sets them: the helper must not use them.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXECUTIONROLE000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "execution-role-secret")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    # botocore sleeps 1 s between its 3 attempts; the attempts still happen.
    import credential_refresh

    monkeypatch.setattr(credential_refresh._Fetcher, "SLEEP_TIME", 0)
    yield ep
    server.shutdown()
    server.server_close()
