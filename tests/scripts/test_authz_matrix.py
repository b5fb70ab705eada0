"""The authorization matrix (issue 19): every bucket and object operation of the route table
(`appliance/s3/src/protocol/route.rs`), called as real clients call it (boto3, with the bodies it
sends), by every kind of caller: the owner's user, another user of the owner's account, the
owner's temporary credential, an expired one, another account with no grant and with each
bucket ACL grant, anonymous callers with none and with `public-read`, and a store admin of
another account. Each call must be allowed or refused exactly as S3's rules say: the owner's
account may do anything; a bucket ACL grant gives what S3's "ACL permission to action"
mapping gives (READ: list; WRITE: write and delete objects, Hoard adding the upload's parts
list and abort; READ_ACP / WRITE_ACP: the bucket ACL); the policy, public access block,
lifecycle, CORS, tags, versioning and location are the owner's alone; a private object's reads
are its owner's; a store admin may recover the bucket policy and nothing else; an admin of
another account has no more rights than its account."""

import json
import pathlib
import re
import time

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from hoard_server import ROOT, admin, scratch_server

ROOT_KEY = ("matrix-root-access", "matrix-root-secret-0123456789")
# Refusals; a HEAD's has no body, so botocore names it by its status (ExpiredToken is 400).
DENIED = {"AccessDenied", "ExpiredToken", "InvalidToken", "403", "400"}

LIFECYCLE = {"Rules": [{"ID": "r", "Filter": {"Prefix": "never/"}, "Status": "Enabled",
                        "Expiration": {"Days": 365}}]}
CORS = {"CORSRules": [{"AllowedMethods": ["GET"], "AllowedOrigins": ["https://example.org"]}]}


def operations(env):
    """(operation, call(client, bucket)) for every operation of the route table, in an order
    that leaves each bucket usable for the next call (deletions of what the matrix made last).
    `env` has the owner's account ID, a bucket the caller may read as copy source, and each
    bucket's multipart upload."""
    owner_policy = json.dumps({"Statement": [{
        "Effect": "Allow", "Principal": {"AWS": env["owner_id"]}, "Action": "s3:GetObject",
        "Resource": "arn:aws:s3:::BUCKET/*"}]})
    return [
        ("HeadBucket", lambda c, b: c.head_bucket(Bucket=b)),
        ("ListObjects", lambda c, b: c.list_objects_v2(Bucket=b)),
        ("ListObjectVersions", lambda c, b: c.list_object_versions(Bucket=b)),
        ("ListMultipartUploads", lambda c, b: c.list_multipart_uploads(Bucket=b)),
        ("GetBucketLocation", lambda c, b: c.get_bucket_location(Bucket=b)),
        ("GetBucketAcl", lambda c, b: c.get_bucket_acl(Bucket=b)),
        ("PutBucketAcl", lambda c, b: c.put_bucket_acl(
            Bucket=b, AccessControlPolicy=env["acls"][b])),
        ("GetBucketPolicy", lambda c, b: c.get_bucket_policy(Bucket=b)),
        ("PutBucketPolicy", lambda c, b: c.put_bucket_policy(
            Bucket=b, Policy=owner_policy.replace("BUCKET", b))),
        ("GetBucketPolicyStatus", lambda c, b: c.get_bucket_policy_status(Bucket=b)),
        ("GetPublicAccessBlock", lambda c, b: c.get_public_access_block(Bucket=b)),
        ("PutBucketOwnershipControls", lambda c, b: c.put_bucket_ownership_controls(
            Bucket=b, OwnershipControls={"Rules": [{"ObjectOwnership": "ObjectWriter"}]})),
        ("GetBucketOwnershipControls", lambda c, b: c.get_bucket_ownership_controls(Bucket=b)),
        ("PutPublicAccessBlock", lambda c, b: c.put_public_access_block(
            Bucket=b, PublicAccessBlockConfiguration={
                "BlockPublicAcls": False, "IgnorePublicAcls": False,
                "BlockPublicPolicy": False, "RestrictPublicBuckets": False})),
        ("GetBucketLifecycle", lambda c, b: c.get_bucket_lifecycle_configuration(Bucket=b)),
        ("PutBucketLifecycle", lambda c, b: c.put_bucket_lifecycle_configuration(
            Bucket=b, LifecycleConfiguration=LIFECYCLE)),
        ("GetBucketTagging", lambda c, b: c.get_bucket_tagging(Bucket=b)),
        ("PutBucketTagging", lambda c, b: c.put_bucket_tagging(
            Bucket=b, Tagging={"TagSet": [{"Key": "k", "Value": "v"}]})),
        ("GetBucketCors", lambda c, b: c.get_bucket_cors(Bucket=b)),
        ("PutBucketCors", lambda c, b: c.put_bucket_cors(Bucket=b, CORSConfiguration=CORS)),
        ("GetBucketVersioning", lambda c, b: c.get_bucket_versioning(Bucket=b)),
        ("PutBucketVersioning", lambda c, b: c.put_bucket_versioning(
            Bucket=b, VersioningConfiguration={"Status": "Suspended"})),
        ("GetObject", lambda c, b: c.get_object(Bucket=b, Key="private")["Body"].read()),
        ("HeadObject", lambda c, b: c.head_object(Bucket=b, Key="private")),
        ("GetObjectAttributes", lambda c, b: c.get_object_attributes(
            Bucket=b, Key="private", ObjectAttributes=["ETag"])),
        ("GetObjectTagging", lambda c, b: c.get_object_tagging(Bucket=b, Key="private")),
        ("PutObjectTagging", lambda c, b: c.put_object_tagging(
            Bucket=b, Key="private", Tagging={"TagSet": [{"Key": "t", "Value": "1"}]})),
        ("DeleteObjectTagging", lambda c, b: c.delete_object_tagging(Bucket=b, Key="private")),
        ("GetObjectAcl", lambda c, b: c.get_object_acl(Bucket=b, Key="private")),
        ("PutObjectAcl", lambda c, b: c.put_object_acl(Bucket=b, Key="private", ACL="private")),
        ("PutObject", lambda c, b: c.put_object(Bucket=b, Key="written", Body=b"w" * 5000)),
        ("CopyObject", lambda c, b: c.copy_object(
            Bucket=b, Key="copied", CopySource={"Bucket": env["source"], "Key": "source"})),
        ("CreateMultipartUpload", lambda c, b: c.create_multipart_upload(Bucket=b, Key="mp2")),
        ("UploadPart", lambda c, b: c.upload_part(
            Bucket=b, Key="mp", UploadId=env["uploads"][b], PartNumber=1, Body=b"p" * 5000)),
        ("UploadPartCopy", lambda c, b: c.upload_part_copy(
            Bucket=b, Key="mp", UploadId=env["uploads"][b], PartNumber=2,
            CopySource={"Bucket": env["source"], "Key": "source"})),
        ("ListParts", lambda c, b: c.list_parts(Bucket=b, Key="mp", UploadId=env["uploads"][b])),
        # A Complete naming a part that is not there: authorized, then InvalidPart.
        ("CompleteMultipartUpload", lambda c, b: c.complete_multipart_upload(
            Bucket=b, Key="mp", UploadId=env["uploads"][b],
            MultipartUpload={"Parts": [{"PartNumber": 9, "ETag": '"0"'}]})),
        ("AbortMultipartUpload", lambda c, b: c.abort_multipart_upload(
            Bucket=b, Key="mp", UploadId=env["uploads"][b])),
        ("DeleteObjects", lambda c, b: c.delete_objects(
            Bucket=b, Delete={"Objects": [{"Key": "absent"}]})),
        ("DeleteObject", lambda c, b: c.delete_object(Bucket=b, Key="absent")),
        ("DeletePublicAccessBlock", lambda c, b: c.delete_public_access_block(Bucket=b)),
        ("DeleteBucketOwnershipControls", lambda c, b: c.delete_bucket_ownership_controls(Bucket=b)),
        ("DeleteBucketLifecycle", lambda c, b: c.delete_bucket_lifecycle(Bucket=b)),
        ("DeleteBucketTagging", lambda c, b: c.delete_bucket_tagging(Bucket=b)),
        ("DeleteBucketCors", lambda c, b: c.delete_bucket_cors(Bucket=b)),
        ("DeleteBucketPolicy", lambda c, b: c.delete_bucket_policy(Bucket=b)),
        # The bucket holds objects: an authorized DeleteBucket is refused BucketNotEmpty.
        ("DeleteBucket", lambda c, b: c.delete_bucket(Bucket=b)),
    ]


# What each bucket ACL permission grants another account or anonymous callers.
READ = {"HeadBucket", "ListObjects", "ListObjectVersions", "ListMultipartUploads"}
WRITE = {"PutObject", "CopyObject", "CreateMultipartUpload", "UploadPart", "UploadPartCopy",
         "ListParts", "CompleteMultipartUpload", "AbortMultipartUpload", "DeleteObjects",
         "DeleteObject"}
READ_ACP = {"GetBucketAcl"}
WRITE_ACP = {"PutBucketAcl"}
POLICY = {"GetBucketPolicy", "PutBucketPolicy", "DeleteBucketPolicy"}
# Route-table endpoints the matrix does not call: service-level ones (ListBuckets,
# CreateBucket: tested for anonymous callers below), browser POST uploads (test_browser.py),
# and Hoard's own protection query (the location's rules). Preflights are no row: every
# OPTIONS is one, never authenticated (test_access.py).
NOT_IN_MATRIX = {"ListBuckets", "CreateBucket", "PostObject", "GetBucketProtection"}

CALLERS = {
    # caller: (bucket ACL grant set up for it, what it may do)
    "owner": (None, "all"),
    "same-account user": (None, "all"),
    "temporary credential": (None, "all"),
    "expired credential": (None, set()),
    "other account": (None, set()),
    "other, READ": ("GrantRead", READ),
    "other, WRITE": ("GrantWrite", WRITE),
    "other, READ_ACP": ("GrantReadACP", READ_ACP),
    "other, WRITE_ACP": ("GrantWriteACP", WRITE_ACP),
    "other, FULL_CONTROL": ("GrantFullControl", READ | WRITE | READ_ACP | WRITE_ACP),
    "anonymous": (None, set()),
    "anonymous, public-read": ("public-read", READ),
    "store admin": (None, POLICY),
    "owner's account admin": (None, "all"),
    "other account's admin": (None, set()),
}


@pytest.fixture(scope="module")
def server():
    yield from scratch_server(*ROOT_KEY)


def client(server, key=None, token=None):
    config = Config(retries={"max_attempts": 1}, signature_version=UNSIGNED if key is None else None)
    return boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1",
                        aws_access_key_id=key and key[0], aws_secret_access_key=key and key[1],
                        aws_session_token=token, config=config)


def route_endpoints():
    text = (ROOT / "appliance" / "s3" / "src" / "protocol" / "route.rs").read_text()
    table = text[text.index("pub const ROUTES"):text.index("pub const UNSUPPORTED_SELECTORS")]
    return set(re.findall(r"E::(\w+)", table))


def test_the_matrix_covers_the_route_table():
    called = {name for name, _ in operations({"owner_id": "", "acls": {}, "uploads": {},
                                              "source": ""})}
    endpoints = route_endpoints()
    assert len(endpoints) > 40 and NOT_IN_MATRIX <= endpoints
    assert endpoints - NOT_IN_MATRIX == called
    assert READ | WRITE | READ_ACP | WRITE_ACP | POLICY <= called


@pytest.fixture(scope="module")
def callers(server):
    """A boto3 client for each caller kind, and the owner's account ID."""
    def account(name, users):
        a = admin(server, "create-account", name)
        keys = []
        for u in users:
            admin(server, "create-user", a["id"], u)
            k = admin(server, "create-key", a["id"], u)
            keys.append((k["access_key"], k["secret_key"]))
        return a["id"], keys
    owner_id, (owner_key, mate_key) = account("owner", ["alice", "bob"])
    other_id, (other_key,) = account("other", ["carol"])
    admins = {}
    for name, account_id in (("owner's account admin", owner_id),
                             ("other account's admin", other_id)):
        admin(server, "create-user", account_id, "admin", "--admin")
        k = admin(server, "create-key", account_id, "admin")
        admins[name] = client(server, (k["access_key"], k["secret_key"]))
    temp = admin(server, "temporary", owner_id, "alice", "--seconds", "3600")
    expiring = admin(server, "temporary", owner_id, "alice", "--seconds", "1")
    clients = {
        "owner": client(server, owner_key),
        "same-account user": client(server, mate_key),
        "temporary credential": client(server, (temp["access_key"], temp["secret_key"]),
                                       temp["session_token"]),
        "expired credential": client(server, (expiring["access_key"], expiring["secret_key"]),
                                     expiring["session_token"]),
        "anonymous": client(server),
        "anonymous, public-read": client(server),
        "store admin": client(server, ROOT_KEY),
        **admins,
    }
    for name in CALLERS:
        if name.startswith("other"):
            clients[name] = client(server, other_key)
    time.sleep(1.5)  # the 1 s credential has expired
    return clients, owner_id, other_id


def outcome(call, c, bucket):
    try:
        call(c, bucket)
        return "allowed"
    except ClientError as e:
        err = e.response["Error"]["Code"]
        return "denied" if err in DENIED else f"allowed ({err})"


@pytest.mark.parametrize("caller", list(CALLERS))
def test_each_operation_is_allowed_exactly_as_s3_says(server, callers, caller):
    clients, owner_id, other_id = callers
    owner = clients["owner"]
    grant, allowed = CALLERS[caller]
    bucket = "mx-" + re.sub(r"[^a-z]+", "-", caller.lower()).strip("-")
    owner.create_bucket(Bucket=bucket)
    if grant == "public-read":
        owner.put_bucket_acl(Bucket=bucket, ACL="public-read")
    elif grant:
        owner.put_bucket_acl(Bucket=bucket, **{grant: f'id="{other_id}"',
                                               "GrantFullControl": f'id="{owner_id}"'}
                             if grant != "GrantFullControl" else {grant: f'id="{other_id}"'})
    owner.put_object(Bucket=bucket, Key="private", Body=b"owner's")
    acl = owner.get_bucket_acl(Bucket=bucket)
    # The caller's own readable copy source: a public-read object of the owner's.
    source = bucket + "-src"
    owner.create_bucket(Bucket=source)
    owner.put_object(Bucket=source, Key="source", Body=b"s" * 5000, ACL="public-read")
    env = {
        "owner_id": owner_id,
        "acls": {bucket: {"Owner": acl["Owner"], "Grants": acl["Grants"]}},
        "uploads": {bucket: owner.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]},
        "source": source,
    }
    c = clients[caller]
    wrong = []
    for name, call in operations(env):
        expect = "allowed" if allowed == "all" or name in allowed else "denied"
        got = outcome(call, c, bucket)
        if got.split(" ")[0] != expect:
            wrong.append(f"{name}: expected {expect}, got {got}")
    assert not wrong, f"{caller}:\n" + "\n".join(wrong)
    # What the matrix did left the owner's object as it was.
    assert owner.get_object(Bucket=bucket, Key="private")["Body"].read() == b"owner's"


def test_service_operations_need_a_signature(server, callers):
    clients, _, _ = callers
    anon = clients["anonymous"]
    for call in (lambda: anon.list_buckets(), lambda: anon.create_bucket(Bucket="mx-anon-new")):
        with pytest.raises(ClientError) as e:
            call()
        assert e.value.response["Error"]["Code"] == "AccessDenied"
    with pytest.raises(ClientError) as e:
        clients["expired credential"].list_buckets()
    assert e.value.response["Error"]["Code"] == "ExpiredToken"
