"""Python example: two named roles at once, with the layer's helper.

A process has one AWS_CONTAINER_CREDENTIALS_FULL_URI, so the default chain
gives one role. For several, the layer ships ``credential_refresh``
(/opt/python is on the runtime's path; nothing to install):
``credential_refresh.session("audit")`` is a boto3.Session whose
credentials are the extension's role "audit", refreshed by botocore. It
needs no exec wrapper (and works with it).

Configuration: CREDENTIAL_REFRESH_ROLES='{"audit": {"RoleArn": "..."}, "reports": {"RoleArn": "..."}}'

Event:    {"buckets": {"audit": "audit-bucket", "reports": "reports-bucket"}, "prefix": "roles-0001-", "count": 4}
          (role name -> the bucket to write with that role)
Response: {"runtime": "python-roles", "written": {"audit": 4, ...}, "keys": {"audit": [...], ...},
           "accessKeyIds": {"audit": "ASIA...", ...}}
"""

from concurrent.futures import ThreadPoolExecutor

import credential_refresh

MAX_COUNT = 1000

# One session and client per role, created once per execution environment
# and reused by warm invocations.
_sessions = {}
_clients = {}


def client_for(role):
    if role not in _clients:
        _sessions[role] = credential_refresh.session(role)
        _clients[role] = _sessions[role].client("s3")
    return _clients[role]


def handler(event, context):
    buckets = event.get("buckets") or {}
    if not buckets:
        raise ValueError('event needs "buckets": {"role": "bucket", ...}')
    prefix = event.get("prefix") or "roles-"
    count = int(event.get("count") or 4)
    if not 1 <= count <= MAX_COUNT:
        raise ValueError(f'"count" must be 1..{MAX_COUNT}, got {count}')

    jobs = [(role, bucket, f"{prefix}{role}-{i:04d}") for role, bucket in sorted(buckets.items()) for i in range(count)]

    def put(job):
        role, bucket, key = job
        client_for(role).put_object(Bucket=bucket, Key=key, Body=f"written with role {role}\n".encode())
        return role, key

    keys = {role: [] for role in buckets}
    with ThreadPoolExecutor(max_workers=8) as pool:
        for role, key in pool.map(put, jobs):
            keys[role].append(key)

    # Access key IDs only; never the secret or the session token.
    ids = {role: _sessions[role].get_credentials().get_frozen_credentials().access_key for role in buckets}
    return {"runtime": "python-roles", "written": {r: len(k) for r, k in keys.items()}, "keys": keys, "accessKeyIds": ids}
