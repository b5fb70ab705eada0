"""Access control through real clients: canned ACLs and grants, bucket policies (another
account's read, a deny that wins, conditions), the public access block, anonymous callers
with plain HTTP (curl) exactly where an ACL or a policy lets them in."""

import base64
import json
import subprocess

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from hoard_server import admin, make_tenants, scratch_server

ROOT_KEY = ("access-root-access", "access-root-secret-0123456789")


@pytest.fixture(scope="module")
def server():
    yield from scratch_server(*ROOT_KEY)


def s3(server, key=None):
    if key is None:
        return boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1",
                            config=Config(signature_version=UNSIGNED, retries={"max_attempts": 1}))
    return boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1",
                        aws_access_key_id=key[0], aws_secret_access_key=key[1],
                        config=Config(retries={"max_attempts": 1}))


def code(call):
    with pytest.raises(ClientError) as e:
        call()
    return e.value.response["Error"]["Code"]


def curl(url, method="GET", data=None):
    cmd = ["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "-X", method, url]
    if data is not None:
        cmd += ["--data-binary", data]
    out = subprocess.run(cmd, capture_output=True, check=True).stdout
    body, _, status = out.rpartition(b"\n")
    return int(status), body


@pytest.fixture(scope="module")
def tenants(server):
    """Two accounts: `owner` (owns the buckets) and `other`, one user each."""
    return make_tenants(server, ("owner", "other"))


def test_canned_acls_and_anonymous_callers(server, tenants):
    owner_id, owner_key = tenants["owner"]
    other_id, other_key = tenants["other"]
    owner, other, anon = s3(server, owner_key), s3(server, other_key), s3(server)
    owner.create_bucket(Bucket="site")
    owner.put_object(Bucket="site", Key="index.html", Body=b"<h1>hello</h1>", ACL="public-read")
    owner.put_object(Bucket="site", Key="private.txt", Body=b"mine")

    # A public-read object is fetched with plain curl; the private one and the listing are not.
    status, body = curl(f"{server.endpoint}/site/index.html")
    assert (status, body) == (200, b"<h1>hello</h1>")
    status, body = curl(f"{server.endpoint}/site/private.txt")
    assert status == 403 and b"AccessDenied" in body
    assert curl(f"{server.endpoint}/site")[0] == 403
    assert curl(f"{server.endpoint}/site/x", "PUT", b"data")[0] == 403
    assert curl(f"{server.endpoint}/")[0] == 403, "anonymous ListBuckets"
    assert anon.get_object(Bucket="site", Key="index.html")["Body"].read() == b"<h1>hello</h1>"
    # Another account reads the public object and nothing else.
    assert other.get_object(Bucket="site", Key="index.html")["Body"].read() == b"<h1>hello</h1>"
    assert code(lambda: other.get_object(Bucket="site", Key="private.txt")) == "AccessDenied"

    # The object's ACL as S3 documents it.
    acl = owner.get_object_acl(Bucket="site", Key="index.html")
    assert acl["Owner"]["ID"] == owner_id
    grants = {(g["Grantee"].get("URI") or g["Grantee"].get("ID"), g["Permission"]) for g in acl["Grants"]}
    assert grants == {(owner_id, "FULL_CONTROL"),
                      ("http://acs.amazonaws.com/groups/global/AllUsers", "READ")}
    # PutObjectAcl: a grant to the other account by ID, then private again.
    owner.put_object_acl(Bucket="site", Key="private.txt", GrantRead=f'id="{other_id}"')
    assert other.get_object(Bucket="site", Key="private.txt")["Body"].read() == b"mine"
    assert code(lambda: anon.get_object(Bucket="site", Key="private.txt")) == "AccessDenied"
    owner.put_object_acl(Bucket="site", Key="private.txt", ACL="private")
    assert code(lambda: other.get_object(Bucket="site", Key="private.txt")) == "AccessDenied"
    assert code(lambda: other.put_object_acl(Bucket="site", Key="index.html", ACL="private")) == "AccessDenied"

    # A bucket ACL: public-read lets anyone list; authenticated-read only signed callers.
    owner.put_bucket_acl(Bucket="site", ACL="public-read")
    status, body = curl(f"{server.endpoint}/site?list-type=2")
    assert status == 200 and b"<Key>index.html</Key>" in body
    owner.put_bucket_acl(Bucket="site", ACL="authenticated-read")
    assert curl(f"{server.endpoint}/site")[0] == 403
    assert [o["Key"] for o in other.list_objects_v2(Bucket="site")["Contents"]] == ["index.html", "private.txt"]
    owner.put_bucket_acl(Bucket="site", ACL="private")
    assert code(lambda: other.list_objects_v2(Bucket="site")) == "AccessDenied"

    # public-read-write: anyone may write; the bucket owner owns anonymous writes.
    owner.create_bucket(Bucket="dropbox", ACL="public-read-write")
    assert curl(f"{server.endpoint}/dropbox/anon.txt", "PUT", b"from nobody")[0] == 200
    assert owner.get_object(Bucket="dropbox", Key="anon.txt")["Body"].read() == b"from nobody"
    # An object another account writes is that account's: the bucket owner reads it only
    # when its ACL says so, but may delete it.
    other.put_object(Bucket="dropbox", Key="theirs.txt", Body=b"other's")
    assert code(lambda: owner.get_object(Bucket="dropbox", Key="theirs.txt")) == "AccessDenied"
    other.put_object(Bucket="dropbox", Key="shared.txt", Body=b"shared", ACL="bucket-owner-full-control")
    assert owner.get_object(Bucket="dropbox", Key="shared.txt")["Body"].read() == b"shared"
    owner.delete_object(Bucket="dropbox", Key="theirs.txt")
    # Bad ACL input gets clear errors.
    assert code(lambda: owner.put_object(Bucket="site", Key="k", Body=b"", GrantRead='emailAddress="a@b.c"')) == \
        "UnresolvableGrantByEmailAddress"
    assert code(lambda: owner.put_object(Bucket="site", Key="k", Body=b"", GrantRead='id="999999999999"')) == \
        "InvalidArgument"


def test_bucket_policies_allow_another_account_and_a_deny_wins(server, tenants):
    owner_id, owner_key = tenants["owner"]
    other_id, other_key = tenants["other"]
    owner, other = s3(server, owner_key), s3(server, other_key)
    owner.create_bucket(Bucket="reports")
    for key in ("2026/q1.csv", "2026/q2.csv", "secret/plan.txt"):
        owner.put_object(Bucket="reports", Key=key, Body=key.encode())
    assert code(lambda: other.get_object(Bucket="reports", Key="2026/q1.csv")) == "AccessDenied"
    assert code(lambda: owner.get_bucket_policy(Bucket="reports")) == "NoSuchBucketPolicy"

    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "OtherReads", "Effect": "Allow",
             "Principal": {"AWS": f"arn:aws:iam::{other_id}:root"},
             "Action": ["s3:GetObject", "s3:ListBucket"],
             "Resource": ["arn:aws:s3:::reports", "arn:aws:s3:::reports/*"]},
            {"Sid": "PolicyIsTheOwnersAlone", "Effect": "Allow", "Principal": {"AWS": other_id},
             "Action": ["s3:GetBucketPolicy", "s3:PutBucketPolicy"], "Resource": "arn:aws:s3:::reports"},
            {"Sid": "NoSecrets", "Effect": "Deny", "Principal": "*",
             "Action": "s3:GetObject", "Resource": "arn:aws:s3:::reports/secret/*"},
            {"Sid": "PublicListOf2026", "Effect": "Allow", "Principal": "*",
             "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::reports",
             "Condition": {"StringLike": {"s3:prefix": "2026/*"},
                           "IpAddress": {"aws:SourceIp": "127.0.0.0/8"},
                           "Bool": {"aws:SecureTransport": "false"}}},
        ],
    }
    owner.put_bucket_policy(Bucket="reports", Policy=json.dumps(policy))
    assert json.loads(owner.get_bucket_policy(Bucket="reports")["Policy"]) == policy
    assert owner.get_bucket_policy_status(Bucket="reports")["PolicyStatus"]["IsPublic"] is False

    # Even a policy cannot hand the policy itself to another account.
    assert code(lambda: other.get_bucket_policy(Bucket="reports")) == "AccessDenied"
    assert code(lambda: other.put_bucket_policy(Bucket="reports", Policy=json.dumps(policy))) == "AccessDenied"
    # The other account reads; a deny wins over its allow, and over the owner's rights too.
    assert other.get_object(Bucket="reports", Key="2026/q1.csv")["Body"].read() == b"2026/q1.csv"
    assert len(other.list_objects_v2(Bucket="reports")["Contents"]) == 3
    assert code(lambda: other.get_object(Bucket="reports", Key="secret/plan.txt")) == "AccessDenied"
    assert code(lambda: owner.get_object(Bucket="reports", Key="secret/plan.txt")) == "AccessDenied"
    assert code(lambda: other.put_object(Bucket="reports", Key="2026/q3.csv", Body=b"x")) == "AccessDenied"
    # Anonymous callers list 2026/ from this address (the conditions), and nothing else.
    status, body = curl(f"{server.endpoint}/reports?list-type=2&prefix=2026/")
    assert status == 200 and body.count(b"<Key>") == 2
    assert curl(f"{server.endpoint}/reports?list-type=2&prefix=secret/")[0] == 403
    assert curl(f"{server.endpoint}/reports/2026/q1.csv")[0] == 403
    # DeleteObjects is decided per key.
    owner.put_bucket_policy(Bucket="reports", Policy=json.dumps({"Statement": [
        {"Effect": "Allow", "Principal": {"AWS": other_id}, "Action": "s3:DeleteObject",
         "Resource": "arn:aws:s3:::reports/2026/*"}]}))
    result = other.delete_objects(Bucket="reports", Delete={"Objects": [
        {"Key": "2026/q2.csv"}, {"Key": "secret/plan.txt"}]})
    assert [d["Key"] for d in result.get("Deleted", [])] == ["2026/q2.csv"]
    assert [(e["Key"], e["Code"]) for e in result["Errors"]] == [("secret/plan.txt", "AccessDenied")]
    # Only the owner manages the policy; bad policies are refused with a reason.
    assert code(lambda: other.delete_bucket_policy(Bucket="reports")) == "AccessDenied"
    for bad in ("not json", json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*",
                "Action": "s3:GetObject", "Resource": "arn:aws:s3:::elsewhere/*"}]})):
        assert code(lambda: owner.put_bucket_policy(Bucket="reports", Policy=bad)) == "MalformedPolicy"
    owner.delete_bucket_policy(Bucket="reports")
    assert code(lambda: other.get_object(Bucket="reports", Key="2026/q1.csv")) == "AccessDenied"


def test_public_access_block(server, tenants):
    _, owner_key = tenants["owner"]
    owner, anon = s3(server, owner_key), s3(server)
    owner.create_bucket(Bucket="guarded")
    owner.put_object(Bucket="guarded", Key="a.txt", Body=b"a", ACL="public-read")
    assert anon.get_object(Bucket="guarded", Key="a.txt")["Body"].read() == b"a"
    assert code(lambda: owner.get_public_access_block(Bucket="guarded")) == \
        "NoSuchPublicAccessBlockConfiguration"
    owner.put_public_access_block(Bucket="guarded", PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True,
        "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
    got = owner.get_public_access_block(Bucket="guarded")["PublicAccessBlockConfiguration"]
    assert got == {"BlockPublicAcls": True, "IgnorePublicAcls": True,
                   "BlockPublicPolicy": True, "RestrictPublicBuckets": True}
    # IgnorePublicAcls: the existing public grant counts for nothing.
    assert code(lambda: anon.get_object(Bucket="guarded", Key="a.txt")) == "AccessDenied"
    # BlockPublicAcls and BlockPublicPolicy refuse new public grants.
    assert code(lambda: owner.put_object(Bucket="guarded", Key="b.txt", Body=b"b", ACL="public-read")) == \
        "AccessDenied"
    public = json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                                        "Resource": "arn:aws:s3:::guarded/*"}]})
    assert code(lambda: owner.put_bucket_policy(Bucket="guarded", Policy=public)) == "AccessDenied"
    owner.delete_public_access_block(Bucket="guarded")
    owner.put_bucket_policy(Bucket="guarded", Policy=public)
    assert owner.get_bucket_policy_status(Bucket="guarded")["PolicyStatus"]["IsPublic"] is True
    assert curl(f"{server.endpoint}/guarded/a.txt") == (200, b"a")


def signed_request(server, key, method, path, body=b"", headers=None):
    """A request with an arbitrary body, signed by botocore's own S3 SigV4 signer."""
    import hashlib as _hashlib
    import urllib3
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    headers = dict(headers or {})
    headers["Content-MD5"] = base64.b64encode(_hashlib.md5(body).digest()).decode()
    req = AWSRequest(method=method, url=server.endpoint + path, data=body, headers=headers)
    S3SigV4Auth(Credentials(*key), "s3", "us-east-1").add_auth(req)
    r = urllib3.request(method, req.url, body=body, headers=dict(req.headers.items()))
    return r.status, r.data


def test_hostile_access_documents_get_clear_errors_and_change_nothing(server, tenants):
    _, owner_key = tenants["owner"]
    owner = s3(server, owner_key)
    owner.create_bucket(Bucket="hostile")
    owner.put_object(Bucket="hostile", Key="k", Body=b"v")
    cases = [
        ("PUT", "/hostile?acl", b"<AccessControlPolicy><Owner>", "MalformedXML"),
        ("PUT", "/hostile?acl", b"<AccessControlPolicy>" + b"<Grant>" * 100_000, "MalformedXML"),
        ("PUT", "/hostile?acl", b"<AccessControlPolicy>" + b" " * (3 << 20) + b"</AccessControlPolicy>",
         "EntityTooLarge"),
        ("PUT", "/hostile/k?acl",
         b"<AccessControlPolicy><AccessControlList><Grant><Grantee><URI>http://acs.amazonaws.com/groups/global/AllUsers</URI></Grantee>"
         b"<Permission>EVERYTHING</Permission></Grant></AccessControlList></AccessControlPolicy>", "MalformedACLError"),
        ("PUT", "/hostile?acl", b"<NotAnAcl/>", "MalformedACLError"),
        ("PUT", "/hostile?policy", b"{\"Statement\": [", "MalformedPolicy"),
        ("PUT", "/hostile?policy", json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*",
         "Action": "s3:GetObject", "Resource": "arn:aws:s3:::hostile/" + "x" * 30_000}]}).encode(),
         "MalformedPolicy"),
        ("PUT", "/hostile?cors", b"<CORSConfiguration><CORSRule><AllowedMethod>GET", "MalformedXML"),
        ("PUT", "/hostile?publicAccessBlock",
         b"<PublicAccessBlockConfiguration><BlockPublicAcls>maybe</BlockPublicAcls></PublicAccessBlockConfiguration>",
         "MalformedXML"),
    ]
    for method, path, body, expected in cases:
        status, answer = signed_request(server, owner_key, method, path, body)
        assert status == 400 and f"<Code>{expected}</Code>".encode() in answer, (path, status, answer[:300])
    # Nothing changed: the ACLs are the owner's private ones, no policy, no CORS, no block.
    assert [g["Permission"] for g in owner.get_bucket_acl(Bucket="hostile")["Grants"]] == ["FULL_CONTROL"]
    assert [g["Permission"] for g in owner.get_object_acl(Bucket="hostile", Key="k")["Grants"]] == ["FULL_CONTROL"]
    assert code(lambda: owner.get_bucket_policy(Bucket="hostile")) == "NoSuchBucketPolicy"
    assert code(lambda: owner.get_bucket_cors(Bucket="hostile")) == "NoSuchCORSConfiguration"
    assert code(lambda: owner.get_public_access_block(Bucket="hostile")) == "NoSuchPublicAccessBlockConfiguration"
