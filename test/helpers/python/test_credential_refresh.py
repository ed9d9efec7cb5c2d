"""Unit tests of credential_refresh (the layer's python/ package) against a
fake endpoint (conftest.py): token header, named roles, the error answers,
the token file re-read on each fetch, and botocore's refresh machinery."""

import datetime

import botocore.credentials
import pytest

import credential_refresh as cr


def test_default_role_sends_the_token_from_the_file(endpoint):
    creds = cr.session().get_credentials().get_frozen_credentials()
    assert creds.access_key.startswith("ASIADEFAULT")
    assert creds.secret_key == endpoint.secret
    assert endpoint.requests == [("/v1/credentials", endpoint.token)]


def test_named_roles_each_read_their_own_path(endpoint):
    audit = cr.session("audit").get_credentials().get_frozen_credentials()
    reports = cr.session("reports").get_credentials().get_frozen_credentials()
    assert audit.access_key.startswith("ASIAAUDIT")
    assert reports.access_key.startswith("ASIAREPORTS")
    assert endpoint.paths() == ["/v1/credentials/audit", "/v1/credentials/reports"]


def test_clients_sign_with_the_role_not_the_environment(endpoint):
    s = cr.session("audit", region_name="us-east-1")
    client = s.client("s3")
    signer_creds = client._request_signer._credentials.get_frozen_credentials()
    assert signer_creds.access_key.startswith("ASIAAUDIT")
    assert s.region_name == "us-east-1"


def test_nothing_is_fetched_before_a_client_needs_it(endpoint):
    cr.session("audit")
    assert endpoint.requests == []


def test_credentials_are_botocore_refreshable_ones(endpoint):
    creds = cr.session("audit").get_credentials()
    assert isinstance(creds, botocore.credentials.RefreshableCredentials)
    assert creds.method == "credential-refresh"
    # 1 h credentials are outside botocore's windows: no refetch.
    creds.get_frozen_credentials()
    assert len(endpoint.requests) == 1


def test_refresh_inside_botocore_window_rereads_the_token_file(endpoint):
    endpoint.lifetime = datetime.timedelta(minutes=5)  # inside the 10-minute mandatory window
    creds = cr.session("audit").get_credentials()
    first = creds.get_frozen_credentials().access_key
    before = len(endpoint.requests)
    # A new environment's extension, a new token: the file changes, the
    # helper must send the new one on its next fetch.
    endpoint.token = "rotated-" + endpoint.token
    endpoint.token_file.write_text(endpoint.token)
    second = creds.get_frozen_credentials().access_key
    assert first != second
    assert [auth == endpoint.token for _, auth in endpoint.requests] == [False] * before + [True]


def test_missing_token_file_is_named_with_the_fix(endpoint):
    endpoint.token_file.unlink()
    with pytest.raises(cr.TokenFileError) as e:
        cr.session("audit").get_credentials()
    assert e.value.path == str(endpoint.token_file)
    assert str(endpoint.token_file) in str(e.value) and "does not exist" in str(e.value)
    assert "layer" in str(e.value) and "CREDENTIAL_REFRESH_TOKEN_FILE" in str(e.value)
    assert endpoint.requests == []


def test_empty_token_file(endpoint):
    endpoint.token_file.write_text("")
    with pytest.raises(cr.TokenFileError, match="is empty"):
        cr.session().get_credentials()


def test_unknown_role_is_a_404_with_the_fix_and_no_retry(endpoint):
    with pytest.raises(cr.RoleNotFoundError) as e:
        cr.session("billing").get_credentials()
    err = e.value
    assert (err.status, err.code, err.role) == (404, "RoleNotFound", "billing")
    assert "'billing'" in str(err) and "CREDENTIAL_REFRESH_ROLES" in str(err)
    assert "audit" in str(err)  # the extension's message lists the configured names
    assert len(endpoint.requests) == 1
    assert isinstance(err, botocore.exceptions.CredentialRetrievalError)


def test_refused_token_is_unauthorized_with_no_retry(endpoint):
    endpoint.token_file.write_text("not-the-token")
    with pytest.raises(cr.UnauthorizedError) as e:
        cr.session().get_credentials()
    assert (e.value.status, e.value.code) == (403, "InvalidToken")
    assert "not-the-token" not in str(e.value) and endpoint.token not in str(e.value)
    assert len(endpoint.requests) == 1


def test_missing_header_is_a_401():
    err = cr._typed_error("audit", 401, '{"Code":"MissingToken","Message":"no Authorization header"}')
    assert isinstance(err, cr.UnauthorizedError) and err.status == 401


def test_503_is_retried_by_botocore_then_typed(endpoint):
    endpoint.error = (503, "CredentialsUnavailable", "AssumeRole failed: ServiceUnavailable: STS is down")
    with pytest.raises(cr.CredentialsUnavailableError) as e:
        cr.session("audit").get_credentials()
    assert (e.value.status, e.value.code) == (503, "CredentialsUnavailable")
    assert "ServiceUnavailable" in str(e.value)
    assert len(endpoint.requests) == cr._Fetcher.RETRY_ATTEMPTS
    # STS back: the same session recovers on its next fetch.
    endpoint.error = None
    s = cr.session("audit")
    assert s.get_credentials().get_frozen_credentials().access_key.startswith("ASIAAUDIT")


def test_503_during_a_mandatory_refresh_surfaces_typed(endpoint):
    endpoint.lifetime = datetime.timedelta(minutes=5)
    creds = cr.session("audit").get_credentials()
    creds.get_frozen_credentials()
    endpoint.error = (503, "CredentialsUnavailable", "STS is down")
    with pytest.raises(cr.CredentialsUnavailableError):
        creds.get_frozen_credentials()


def test_nothing_listening_is_unreachable(endpoint, monkeypatch):
    with pytest.raises(cr.EndpointUnreachableError) as e:
        cr.session("audit", port=1).get_credentials()
    assert "127.0.0.1:1" in str(e.value) and "layer" in str(e.value)


def test_bad_role_names_are_refused_before_any_request(endpoint):
    for bad in ["", "a/b", "..", "x y", 7]:
        with pytest.raises(ValueError, match="not a role name"):
            cr.session(bad)
    assert endpoint.requests == []


def test_endpoint_url():
    assert cr.endpoint_url(port=2775) == "http://127.0.0.1:2775/v1/credentials"
    assert cr.endpoint_url("audit", port=4000) == "http://127.0.0.1:4000/v1/credentials/audit"


def test_no_secret_in_any_error(endpoint):
    endpoint.error = (503, "CredentialsUnavailable", "STS is down")
    with pytest.raises(cr.CredentialRefreshError) as e:
        cr.session().get_credentials()
    assert endpoint.secret not in repr(e.value) and endpoint.token not in repr(e.value)
