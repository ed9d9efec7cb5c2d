"""Python example function for the credential-refresh layer.

There is no credential code here: a plain boto3 client, as in any Lambda
function. With AWS_LAMBDA_EXEC_WRAPPER=/opt/credential-refresh/exec-wrapper
the layer's wrapper points botocore's container provider at the extension,
which keeps the assumed role's credentials fresh; botocore re-reads them
when its copy nears expiry.

Event:    {"bucket": "my-bucket", "prefix": "python-0001-", "count": 8}
Response: {"runtime": "python", "written": 8, "keys": [...], "accessKeyId": "ASIA..."}

With "secretsEndpoint" in the event (a Parameters and Secrets extension
URL), it also calls that URL the way functions do, with
X-Aws-Parameters-Secrets-Token: $AWS_SESSION_TOKEN, and adds
"secrets": {"status": 200, "sessionTokenSet": true} to the response (the
status only, never the value). The exec wrapper keeps AWS_SESSION_TOKEN for
exactly this.

Uploads run in parallel on a ThreadPoolExecutor, like the parallel-upload
example of boto3-refresh-session (boto3 clients are thread-safe).
"""

import os
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import boto3

MAX_COUNT = 1000
PARALLEL = 8

# Created once per execution environment, reused by warm invocations.
session = boto3.Session()
s3 = session.client("s3")


def call_secrets(endpoint):
    token = os.environ.get("AWS_SESSION_TOKEN", "")
    req = urllib.request.Request(endpoint, headers={"X-Aws-Parameters-Secrets-Token": token})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            resp.read()  # the secret: used here, never returned or logged
            status = resp.status
    except urllib.error.HTTPError as e:
        status = e.code
    return {"status": status, "sessionTokenSet": token != ""}


def handler(event, context):
    bucket = event.get("bucket")
    if not bucket:
        raise ValueError('event needs "bucket"')
    prefix = event.get("prefix") or "python-"
    count = int(event.get("count") or 8)
    if not 1 <= count <= MAX_COUNT:
        raise ValueError(f'"count" must be 1..{MAX_COUNT}, got {count}')

    keys = [f"{prefix}{i:04d}" for i in range(count)]

    def put(i_key):
        i, key = i_key
        body = f"object {i + 1} of {count}, written by the Python example\n"
        s3.put_object(Bucket=bucket, Key=key, Body=body.encode())
        return key

    with ThreadPoolExecutor(max_workers=min(PARALLEL, count)) as pool:
        written = list(pool.map(put, enumerate(keys)))

    # The access key ID only, for the caller to see which credentials were
    # used. Never return or log the secret or the session token.
    access_key = session.get_credentials().get_frozen_credentials().access_key
    result = {"runtime": "python", "written": len(written), "keys": written, "accessKeyId": access_key}
    if event.get("secretsEndpoint"):
        result["secrets"] = call_secrets(event["secretsEndpoint"])
    return result
