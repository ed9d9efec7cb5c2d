"""Named roles of the credential-refresh extension for boto3, with no install.

The layer ships this package as ``python/credential_refresh``; Lambda puts
``/opt/python`` on ``sys.path``, so a function imports it as it is::

    import credential_refresh

    audit = credential_refresh.session("audit").client("s3")   # /v1/credentials/audit
    default = credential_refresh.session().client("s3")        # /v1/credentials

``session(role)`` returns a ``boto3.Session`` whose credentials come from the
extension's ``/v1/credentials/<role>`` through botocore's own
``ContainerProvider``: they are ``RefreshableCredentials``, refreshed with
botocore's windows (advisory 15 min, mandatory 10 min before expiry). Every
fetch re-reads the token file, so nothing stale is kept. It works with or
without the exec wrapper: the session never looks at the environment's
credentials.

Errors are typed (all are ``CredentialRefreshError``, itself botocore's
``CredentialRetrievalError``), and each message says how to fix it:

- ``TokenFileError``: the token file is missing, unreadable or empty;
- ``RoleNotFoundError``: the extension has no role of that name (404);
- ``UnauthorizedError``: the token was refused (401/403);
- ``CredentialsUnavailableError``: the extension cannot get credentials
  from STS right now (503), after botocore's retries;
- ``EndpointUnreachableError``: nothing answers on the port.

It needs only boto3 and botocore, which the Lambda Python runtimes include.
"""

import json
import os
import re

import boto3
import botocore.awsrequest
import botocore.session
from botocore.credentials import ContainerProvider, CredentialResolver
from botocore.exceptions import CredentialRetrievalError, MetadataRetrievalError
from botocore.utils import ContainerMetadataFetcher

__all__ = [
    "session",
    "provider",
    "endpoint_url",
    "CredentialRefreshError",
    "TokenFileError",
    "RoleNotFoundError",
    "UnauthorizedError",
    "CredentialsUnavailableError",
    "EndpointUnreachableError",
]

DEFAULT_PORT = 2775
DEFAULT_TOKEN_FILE = "/tmp/credential-refresh/token"
_ROLE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_PROVIDER = "credential-refresh"


class CredentialRefreshError(CredentialRetrievalError):
    """Base of the helper's errors. ``role`` is None for the default role."""

    fmt = "credential-refresh: {error_msg}"

    def __init__(self, error_msg, role=None, **kwargs):
        super().__init__(provider=_PROVIDER, error_msg=error_msg, **kwargs)
        self.role = role


class TokenFileError(CredentialRefreshError):
    """The token file is missing, unreadable or empty. ``path`` names it."""

    def __init__(self, error_msg, role=None, path=None):
        super().__init__(error_msg, role=role)
        self.path = path


class _HTTPError(CredentialRefreshError):
    """An error answer of the endpoint: ``status``, ``code`` and ``message``
    as the extension sent them (never credential material)."""

    def __init__(self, error_msg, role=None, status=None, code=None, message=None):
        super().__init__(error_msg, role=role)
        self.status, self.code, self.message = status, code, message


class RoleNotFoundError(_HTTPError):
    """404: the extension has no role of that name."""


class UnauthorizedError(_HTTPError):
    """401/403: the endpoint refused the token."""


class CredentialsUnavailableError(_HTTPError):
    """503 (or another 5xx): the extension cannot get credentials from STS now."""


class EndpointUnreachableError(CredentialRefreshError):
    """Nothing answered on the extension's port."""


def _label(role):
    return "the default role" if role is None else f"role {role!r}"


def endpoint_url(role=None, port=None):
    """The extension's URL for role (None: the default role)."""
    if port is None:
        port = int(os.environ.get("CREDENTIAL_REFRESH_PORT") or DEFAULT_PORT)
    url = f"http://127.0.0.1:{port}/v1/credentials"
    if role is None:
        return url
    if not isinstance(role, str) or not _ROLE_NAME.match(role) or role in (".", ".."):
        raise ValueError(
            f"credential-refresh: {role!r} is not a role name: use the name of an "
            "entry of CREDENTIAL_REFRESH_ROLES (A-Z a-z 0-9 _ . -), or None for the default role"
        )
    return f"{url}/{role}"


def _typed_error(role, status, body):
    """The typed error for an error answer of the endpoint."""
    try:
        parsed = json.loads(body)
        code, message = str(parsed.get("Code", "")), str(parsed.get("Message", ""))
    except (ValueError, AttributeError):
        code, message = "", body[:200]
    said = f"HTTP {status} {code}: {message}".rstrip(": ")
    if status == 404:
        return RoleNotFoundError(
            f"the extension has no {_label(role)} ({said}). Fix: add it to the function's "
            "CREDENTIAL_REFRESH_ROLES ({\"name\": {\"RoleArn\": ...}}) or use a configured name; "
            "session() with no name is CREDENTIAL_REFRESH_ROLE_ARN's role",
            role=role, status=status, code=code, message=message,
        )
    if status in (401, 403):
        return UnauthorizedError(
            f"the extension refused the token for {_label(role)} ({said}). Fix: read the token "
            "file of this execution environment's extension: leave CREDENTIAL_REFRESH_TOKEN_FILE "
            "and CREDENTIAL_REFRESH_PORT as the extension has them (they share the function's "
            "environment), and never copy a token from elsewhere",
            role=role, status=status, code=code, message=message,
        )
    return CredentialsUnavailableError(
        f"no credentials for {_label(role)} ({said}). The extension keeps retrying STS with "
        "backoff; the message above has STS's own error (see the README's Troubleshooting)",
        role=role, status=status, code=code, message=message,
    )


class _Retryable(MetadataRetrievalError):
    """A failure botocore's fetcher retries; it carries the typed error to
    raise once the retries are spent."""

    def __init__(self, typed):
        super().__init__(error_msg=str(typed))
        self.typed = typed


class _Fetcher(ContainerMetadataFetcher):
    """botocore's container fetcher (timeout, attempts, loopback check) with
    typed errors: 401, 403 and 404 fail at once, 5xx and connection errors
    are retried as botocore retries them."""

    def __init__(self, role):
        super().__init__()
        self._role = role

    def _get_response(self, full_url, headers, timeout):
        request = botocore.awsrequest.AWSRequest(method="GET", url=full_url, headers=headers)
        try:
            response = self._session.send(request.prepare())
        except Exception as e:  # botocore's HTTP errors: connection refused, timeout
            raise _Retryable(EndpointUnreachableError(
                f"nothing answered at {full_url} ({type(e).__name__}) for {_label(self._role)}. "
                "Fix: attach the credential-refresh layer for the function's architecture "
                "(/opt/extensions/credential-refresh) and keep CREDENTIAL_REFRESH_PORT the same "
                "for extension and function; look for credential-refresh errors in the INIT log",
                role=self._role,
            )) from e
        body = response.content.decode("utf-8", "replace")
        if response.status_code == 200:
            try:
                return json.loads(body)
            except ValueError:
                raise _Retryable(CredentialsUnavailableError(
                    f"the answer for {_label(self._role)} is not JSON", role=self._role, status=200))
        typed = _typed_error(self._role, response.status_code, body)
        if isinstance(typed, CredentialsUnavailableError):
            raise _Retryable(typed)
        raise typed


class _Provider(ContainerProvider):
    """botocore's ContainerProvider for one role of the extension. It reads
    the token file on every fetch (botocore builds the headers per fetch)."""

    METHOD = "credential-refresh"
    CANONICAL_NAME = "CredentialRefresh"

    def __init__(self, role, url, token_file):
        super().__init__(environ={self.ENV_VAR_FULL: url}, fetcher=_Fetcher(role))
        self._role, self._token_file = role, token_file

    def _build_headers(self):
        path = self._token_file
        fix = (
            "The credential-refresh extension writes it before the runtime starts: attach the "
            "layer for the function's architecture, look for credential-refresh errors (e.g. "
            "Extension.ConfigInvalid) in the INIT log, and give extension and function the same "
            "CREDENTIAL_REFRESH_TOKEN_FILE"
        )
        try:
            with open(path, encoding="utf-8") as f:
                token = f.read().strip()
        except FileNotFoundError:
            raise TokenFileError(f"token file {path} does not exist. {fix}", role=self._role, path=path) from None
        except OSError as e:
            raise TokenFileError(f"token file {path} could not be read ({e.strerror}). {fix}",
                                 role=self._role, path=path) from None
        if not token:
            raise TokenFileError(f"token file {path} is empty. {fix}", role=self._role, path=path)
        self._validate_auth_token(token)
        return {"Authorization": token}

    def _create_fetcher(self, full_uri, *args, **kwargs):
        fetch = super()._create_fetcher(full_uri, *args, **kwargs)

        def fetch_creds():
            try:
                return fetch()
            except CredentialRetrievalError as e:
                # botocore wraps the last retried failure; raise its typed error.
                cause = e.__context__
                if isinstance(cause, _Retryable):
                    raise cause.typed from None
                raise

        return fetch_creds


def provider(role=None, *, port=None, token_file=None):
    """A botocore credential provider for role (None: the default role), for
    callers that assemble their own botocore session or resolver."""
    if token_file is None:
        token_file = os.environ.get("CREDENTIAL_REFRESH_TOKEN_FILE") or DEFAULT_TOKEN_FILE
    return _Provider(role, endpoint_url(role, port), token_file)


def session(role=None, *, port=None, token_file=None, **session_kwargs):
    """A boto3.Session whose credentials are role's (None: the default role).

    Nothing is fetched here: the first client (or get_credentials()) fetches,
    and botocore refreshes from then on. port and token_file default to
    CREDENTIAL_REFRESH_PORT and CREDENTIAL_REFRESH_TOKEN_FILE as the extension
    reads them; session_kwargs go to boto3.Session (region_name, ...).
    """
    core = botocore.session.Session()
    core.register_component("credential_provider", CredentialResolver([provider(role, port=port, token_file=token_file)]))
    return boto3.Session(botocore_session=core, **session_kwargs)
