"""Many users on one box, through real clients: accounts, users and access keys made with
`hoard admin`, then boto3 and the aws CLI acting as three users of two accounts."""

import json
import os
import subprocess
import sys
import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from hoard_server import admin, scratch_server

ROOT_ACCESS = "tenancy-root-access"
ROOT_SECRET = "tenancy-root-secret-0123456789"


@pytest.fixture(scope="module")
def server():
    yield from scratch_server(ROOT_ACCESS, ROOT_SECRET, log=True)


def s3(server, key, token=None):
    return boto3.client(
        "s3", endpoint_url=server.endpoint, region_name="us-east-1",
        aws_access_key_id=key[0], aws_secret_access_key=key[1], aws_session_token=token,
        config=Config(retries={"max_attempts": 1}))


def error_code(call):
    with pytest.raises(ClientError) as e:
        call()
    return e.value.response["Error"]["Code"]


def aws_cli(server, key, *args):
    env = dict(os.environ, AWS_ACCESS_KEY_ID=key[0], AWS_SECRET_ACCESS_KEY=key[1],
               AWS_DEFAULT_REGION="us-east-1", AWS_CONFIG_FILE="/dev/null",
               AWS_SHARED_CREDENTIALS_FILE="/dev/null")
    cmd = [sys.executable, "-m", "awscli", "--endpoint-url", server.endpoint, *args]
    return subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout


def test_three_users_of_two_accounts(server):
    acme = admin(server, "create-account", "acme")
    globex = admin(server, "create-account", "globex")
    assert acme["id"] != globex["id"] and len(acme["id"]) == 12
    names = [a["name"] for a in admin(server, "accounts")["accounts"]]
    assert names == ["root", "acme", "globex"]
    # A name is taken once.
    out = admin(server, "create-account", "acme", check=False)
    assert out.returncode != 0 and "EntityAlreadyExists" in out.stderr

    for account, user in [(acme, "alice"), (acme, "bob"), (globex, "carol")]:
        admin(server, "create-user", account["id"], user)
    keys = {}
    for account, user in [(acme, "alice"), (acme, "bob"), (globex, "carol")]:
        k = admin(server, "create-key", account["id"], user)
        assert len(k["access_key"]) == 20 and len(k["secret_key"]) == 40
        keys[user] = (k["access_key"], k["secret_key"])
    listed = admin(server, "keys", "--account", acme["id"])["keys"]
    assert {k["user"] for k in listed} == {"alice", "bob"}
    assert all("secret" not in json.dumps(k) for k in listed), "listings never show secrets"

    alice, bob, carol = (s3(server, keys[u]) for u in ("alice", "bob", "carol"))
    alice.create_bucket(Bucket="acme-data")
    alice.put_object(Bucket="acme-data", Key="plan.txt", Body=b"acme's plan")
    carol.create_bucket(Bucket="globex-data")
    carol.put_object(Bucket="globex-data", Key="secret.txt", Body=b"globex's secret")

    # Users of one account share its buckets; another account sees none of them.
    assert bob.get_object(Bucket="acme-data", Key="plan.txt")["Body"].read() == b"acme's plan"
    assert [b["Name"] for b in bob.list_buckets()["Buckets"]] == ["acme-data"]
    assert [b["Name"] for b in carol.list_buckets()["Buckets"]] == ["globex-data"]
    assert error_code(lambda: carol.get_object(Bucket="acme-data", Key="plan.txt")) == "AccessDenied"
    assert error_code(lambda: bob.list_objects_v2(Bucket="globex-data")) == "AccessDenied"
    assert error_code(lambda: carol.delete_object(Bucket="acme-data", Key="plan.txt")) == "AccessDenied"
    # The aws CLI, as carol, lists only her bucket.
    listing = aws_cli(server, keys["carol"], "s3", "ls")
    assert "globex-data" in listing and "acme-data" not in listing, listing

    # Only administrators may call admin requests.
    out = admin(server, "accounts", key=keys["alice"], check=False)
    assert out.returncode != 0 and "AccessDenied" in out.stderr
    # An account that owns buckets cannot be deleted.
    out = admin(server, "delete-account", globex["id"], check=False)
    assert out.returncode != 0 and "DeleteConflict" in out.stderr

    # A key rotated mid-test: the new key keeps alice's access, the old one is refused.
    rotated = admin(server, "rotate-key", keys["alice"][0])
    new_alice = s3(server, (rotated["access_key"], rotated["secret_key"]))
    assert new_alice.get_object(Bucket="acme-data", Key="plan.txt")["Body"].read() == b"acme's plan"
    assert error_code(lambda: alice.list_buckets()) == "InvalidAccessKeyId"
    statuses = {k["access_key"]: k["status"] for k in admin(server, "keys")["keys"]}
    assert statuses[keys["alice"][0]] == "Inactive" and statuses[rotated["access_key"]] == "Active"

    # A disabled key is refused, and works again once enabled.
    admin(server, "disable-key", keys["bob"][0])
    assert error_code(lambda: bob.list_buckets()) == "InvalidAccessKeyId"
    admin(server, "enable-key", keys["bob"][0])
    assert [b["Name"] for b in bob.list_buckets()["Buckets"]] == ["acme-data"]

    # A temporary credential works, with its token, until it expires.
    temp = admin(server, "temporary", globex["id"], "carol", "--seconds", "4")
    issued = time.time()
    assert temp["session_token"] and temp["expires_unix_ms"] > issued * 1000
    temp_key = (temp["access_key"], temp["secret_key"])
    carol_temp = s3(server, temp_key, token=temp["session_token"])
    assert carol_temp.get_object(Bucket="globex-data", Key="secret.txt")["Body"].read() == b"globex's secret"
    assert error_code(lambda: s3(server, temp_key).list_buckets()) == "InvalidToken"
    assert error_code(lambda: s3(server, temp_key, token="forged").list_buckets()) == "InvalidToken"
    time.sleep(max(0.0, issued + 5.5 - time.time()))
    assert error_code(lambda: carol_temp.list_buckets()) == "ExpiredToken"

    # Everything survives a restart: accounts, users, keys and their states.
    server.stop()
    server.start()
    new_alice = s3(server, (rotated["access_key"], rotated["secret_key"]))
    assert [b["Name"] for b in new_alice.list_buckets()["Buckets"]] == ["acme-data"]
    assert error_code(lambda: s3(server, keys["alice"]).list_buckets()) == "InvalidAccessKeyId"
    carol = s3(server, keys["carol"])
    assert carol.get_object(Bucket="globex-data", Key="secret.txt")["Body"].read() == b"globex's secret"
    assert error_code(lambda: s3(server, temp_key, token=temp["session_token"]).list_buckets()) in (
        "InvalidAccessKeyId", "ExpiredToken")

    # Deleting a user deletes its keys; an emptied account can be deleted.
    admin(server, "delete-user", acme["id"], "bob")
    assert error_code(lambda: s3(server, keys["bob"]).list_buckets()) == "InvalidAccessKeyId"
    carol.delete_object(Bucket="globex-data", Key="secret.txt")
    carol.delete_bucket(Bucket="globex-data")
    admin(server, "delete-account", globex["id"])
    assert error_code(lambda: carol.list_buckets()) == "InvalidAccessKeyId"
    assert [a["name"] for a in admin(server, "accounts")["accounts"]] == ["root", "acme"]

    # Secrets are never stored or logged in plain text: not on the metadata SSDs (WAL, tables),
    # not in the log.
    server.stop()
    secrets = [keys[u][1] for u in keys] + [rotated["secret_key"], temp["secret_key"]]
    ssds = [n for n in sorted(os.listdir(server.data)) if n.startswith("ssd") and n.endswith(".img")]
    assert ssds, os.listdir(server.data)
    for name in ssds:
        with open(os.path.join(server.data, name), "rb") as f:
            tail = b""
            while block := f.read(64 << 20):
                window = tail + block
                for secret in secrets:
                    assert secret.encode() not in window, f"a secret in plain text on {name}"
                tail = block[-64:]
    with open(server.log) as f:
        log = f.read()
    for secret in secrets:
        assert secret not in log
    server.start()
