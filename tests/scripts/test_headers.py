"""Nothing accepted and ignored: every request header of every operation in the S3 API Reference
(as botocore's service model, shipped with boto3, lists them) is honoured, refused with
501 NotImplemented naming it, or ignored on purpose and listed so in README. The walk sends
every refused header on every served operation that takes it; honoured headers name the test
that proves them."""

import re

import boto3
import botocore.session
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from hoard_server import ROOT, make_tenants, scratch_server, signed

ROOT_KEY = ("headers-root-access", "headers-root-secret-0123456789")

# The operations Hoard serves, by their API Reference names.
SERVED = {
    "ListBuckets", "CreateBucket", "DeleteBucket", "HeadBucket", "ListObjects", "ListObjectsV2",
    "ListObjectVersions", "ListMultipartUploads", "GetBucketLocation", "DeleteObjects",
    "GetBucketAcl", "PutBucketAcl", "GetBucketPolicy", "PutBucketPolicy", "DeleteBucketPolicy",
    "GetBucketPolicyStatus", "GetPublicAccessBlock", "PutPublicAccessBlock",
    "DeletePublicAccessBlock", "GetBucketLifecycleConfiguration",
    "PutBucketLifecycleConfiguration", "DeleteBucketLifecycle", "GetBucketTagging",
    "PutBucketTagging", "DeleteBucketTagging", "GetBucketCors", "PutBucketCors",
    "DeleteBucketCors", "GetBucketVersioning", "PutBucketVersioning", "GetObject", "HeadObject",
    "PutObject", "CopyObject", "DeleteObject", "GetObjectAttributes", "GetObjectTagging",
    "PutObjectTagging", "DeleteObjectTagging", "GetObjectAcl", "PutObjectAcl",
    "CreateMultipartUpload", "UploadPart", "UploadPartCopy", "CompleteMultipartUpload",
    "AbortMultipartUpload", "ListParts",
}

# Honoured: the header, and the test (under tests/) that proves it, which must name it or the
# parameter a client sends it by.
HONOURED = {
    "cache-control": "scripts/test_clients.py", "content-disposition": "scripts/test_clients.py",
    "content-encoding": "scripts/test_clients.py", "content-language": "scripts/test_clients.py",
    "content-type": "scripts/test_object_semantics.py", "expires": "scripts/test_clients.py",
    "content-length": "scripts/test_security.py", "content-md5": "scripts/test_access.py",
    "if-match": "scripts/test_object_semantics.py",
    "if-none-match": "scripts/test_object_semantics.py",
    "if-modified-since": "scripts/test_answers.py",
    "if-unmodified-since": "scripts/test_answers.py",
    "range": "scripts/test_object_semantics.py",
    "x-amz-acl": "scripts/test_access.py",
    "x-amz-grant-full-control": "scripts/test_authz_matrix.py",
    "x-amz-grant-read": "scripts/test_access.py",
    "x-amz-grant-read-acp": "scripts/test_authz_matrix.py",
    "x-amz-grant-write": "scripts/test_authz_matrix.py",
    "x-amz-grant-write-acp": "scripts/test_authz_matrix.py",
    "x-amz-checksum-algorithm": "scripts/test_clients.py",
    "x-amz-checksum-crc32": "integration/s3_objects.rs",
    "x-amz-checksum-crc32c": "integration/s3_objects.rs",
    "x-amz-checksum-crc64nvme": "integration/s3_objects.rs",
    "x-amz-checksum-sha1": "integration/s3_objects.rs",
    "x-amz-checksum-sha256": "integration/s3_objects.rs",
    "x-amz-checksum-mode": "scripts/test_clients.py",
    "x-amz-checksum-type": "scripts/test_clients.py",
    "x-amz-sdk-checksum-algorithm": "scripts/test_answers.py",
    "x-amz-copy-source": "scripts/test_object_semantics.py",
    "x-amz-copy-source-if-match": "scripts/test_object_semantics.py",
    "x-amz-copy-source-if-modified-since": "scripts/test_answers.py",
    "x-amz-copy-source-if-none-match": "scripts/test_object_semantics.py",
    "x-amz-copy-source-if-unmodified-since": "scripts/test_answers.py",
    "x-amz-copy-source-range": "scripts/test_object_semantics.py",
    "x-amz-metadata-directive": "scripts/test_object_semantics.py",
    "x-amz-tagging-directive": "scripts/test_object_semantics.py",
    "x-amz-tagging": "scripts/test_object_semantics.py",
    "x-amz-meta-*": "scripts/test_object_semantics.py",
    "x-amz-object-attributes": "scripts/test_object_semantics.py",
    "x-amz-max-parts": "scripts/test_object_semantics.py",
    "x-amz-part-number-marker": "scripts/test_object_semantics.py",
    "x-amz-object-ownership": "scripts/test_answers.py",
    "x-amz-expected-bucket-owner": "scripts/test_headers.py",
    "x-amz-source-expected-bucket-owner": "scripts/test_headers.py",
}

# Refused with 501 NotImplemented, and a value that asks for the thing.
REFUSED = {
    "x-amz-server-side-encryption": "AES256",
    "x-amz-server-side-encryption-aws-kms-key-id": "key-1",
    "x-amz-server-side-encryption-context": "e30=",
    "x-amz-server-side-encryption-bucket-key-enabled": "true",
    "x-amz-server-side-encryption-customer-algorithm": "AES256",
    "x-amz-server-side-encryption-customer-key": "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=",
    "x-amz-server-side-encryption-customer-key-md5": "b0bV7lDh2GuMU9uH5OpRXQ==",
    "x-amz-copy-source-server-side-encryption-customer-algorithm": "AES256",
    "x-amz-copy-source-server-side-encryption-customer-key": "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=",
    "x-amz-copy-source-server-side-encryption-customer-key-md5": "b0bV7lDh2GuMU9uH5OpRXQ==",
    "x-amz-object-lock-mode": "GOVERNANCE",
    "x-amz-object-lock-retain-until-date": "2030-01-01T00:00:00Z",
    "x-amz-object-lock-legal-hold": "ON",
    "x-amz-object-lock-event-hold": "ON",
    "x-amz-object-lock-event-hold-duration-days": "5",
    "x-amz-object-lock-event-hold-duration-years": "1",
    # COPY and EXCLUDE hold (no object has annotations); anything else asks for them.
    "x-amz-object-annotation-directive": "REPLACE",
    "x-amz-bucket-object-lock-enabled": "true",
    "x-amz-bucket-object-lock-token": "token",
    "x-amz-bucket-namespace": "account-regional",
    "x-amz-mfa": "arn:aws:iam::123456789012:mfa/user 123456",
    "x-amz-website-redirect-location": "/elsewhere",
    "x-amz-storage-class": "GLACIER",
    "x-amz-write-offset-bytes": "0",
    "x-amz-mp-object-size": "5",
    "x-amz-if-match-size": "5",
    "x-amz-if-match-last-modified-time": "Wed, 01 Jan 2025 00:00:00 GMT",
    "x-amz-if-match-initiated-time": "Wed, 01 Jan 2025 00:00:00 GMT",
    "x-amz-optional-object-attributes": "RestoreStatus",
    "x-amz-transition-default-minimum-object-size": "varies_by_storage_class",
    "x-amz-checksum-md5": "AAAAAAAAAAAAAAAAAAAAAA==",
    "x-amz-checksum-sha512": "AAAA",
    "x-amz-checksum-xxhash3": "AAAAAAAAAAA=",
    "x-amz-checksum-xxhash64": "AAAAAAAAAAA=",
    "x-amz-checksum-xxhash128": "AAAAAAAAAAAAAAAAAAAAAA==",
}


def readme_ignored():
    """The headers README lists under "Request headers ignored on purpose"."""
    text = (ROOT / "README.md").read_text()
    section = text.split("### Request headers ignored on purpose", 1)[1].split("\n#", 1)[0]
    return set(re.findall(r"^- `([a-z0-9*-]+)`", section, re.M))


def model_headers():
    """{operation: {header}} for every operation of the API Reference."""
    model = botocore.session.get_session().get_service_model("s3")
    out = {}
    for name in model.operation_names:
        op = model.operation_model(name)
        headers = set()
        for member in (op.input_shape.members.values() if op.input_shape else []):
            loc = member.serialization.get("location")
            if loc in ("header", "headers"):
                headers.add(member.serialization["name"].lower() + ("*" if loc == "headers" else ""))
        out[name] = (op, headers)
    return out


@pytest.fixture(scope="module")
def server():
    yield from scratch_server(*ROOT_KEY)


def test_every_header_of_every_served_operation_is_classified():
    ignored = readme_ignored()
    assert ignored, "README lists the headers ignored on purpose"
    classes = [set(HONOURED), set(REFUSED), ignored]
    for a in range(3):
        for b in range(a + 1, 3):
            assert not classes[a] & classes[b], classes[a] & classes[b]
    ops = model_headers()
    assert SERVED <= set(ops), SERVED - set(ops)
    unclassified = {(op, h) for op in SERVED for h in ops[op][1]
                    if not any(h in c for c in classes)}
    assert not unclassified, sorted(unclassified)
    members = {}
    for op, _ in ops.values():
        for member_name, member in (op.input_shape.members.items() if op.input_shape else []):
            if member.serialization.get("location") in ("header", "headers"):
                wire = member.serialization["name"].lower()
                wire += "*" if member.serialization["location"] == "headers" else ""
                members.setdefault(wire, set()).add(member_name.lower())
    for header, test in HONOURED.items():
        text = (ROOT / "tests" / test).read_text().lower()
        # The test names the header, or the parameter a client sends it by (boto3's
        # `IfModifiedSince`, the Rust SDK's `if_modified_since`).
        names = {header.rstrip("*")} | members.get(header, set())
        assert any(n in text or n in text.replace("_", "") for n in names), (header, test)


def test_every_refused_header_is_refused_on_every_operation_that_takes_it(server):
    s3 = boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1",
                      aws_access_key_id=ROOT_KEY[0], aws_secret_access_key=ROOT_KEY[1],
                      config=Config(retries={"max_attempts": 1}))
    s3.create_bucket(Bucket="walk")
    s3.put_object(Bucket="walk", Key="obj", Body=b"before")
    upload = s3.create_multipart_upload(Bucket="walk", Key="mp")["UploadId"]
    sent = 0
    for name, (op, headers) in sorted(model_headers().items()):
        if name not in SERVED:
            continue
        for header in sorted(headers & set(REFUSED)):
            uri = op.http["requestUri"]
            uri = uri.replace("{Bucket}", "walk").replace("{Key+}", "obj")
            if name == "CreateBucket":
                uri = uri.replace("walk", "walk-new")
            query = {"UploadPart": "partNumber=1&uploadId=" + upload,
                     "UploadPartCopy": "partNumber=1&uploadId=" + upload,
                     "CompleteMultipartUpload": "uploadId=" + upload,
                     "AbortMultipartUpload": "uploadId=" + upload,
                     "ListParts": "uploadId=" + upload,
                     "ListObjectsV2": "list-type=2"}.get(name)
            if query:
                uri = uri.replace("?x-id=" + name, "").split("?")[0] + "?" + query + (
                    "&" + uri.split("?", 1)[1] if "?" in uri and "x-id" not in uri else "")
            uri = re.sub(r"[?&]x-id=[A-Za-z]+", "", uri)
            if uri.endswith("?"):
                uri = uri[:-1]
            extra = {header: REFUSED[header]}
            if name in ("CopyObject", "UploadPartCopy"):
                extra["x-amz-copy-source"] = "/walk/obj"
            status, _, body = signed(server, ROOT_KEY, op.http["method"], uri, b"", extra)
            assert status == 501, (name, header, status, body)
            if op.http["method"] != "HEAD":  # a HEAD answer has no body
                assert b"<Code>NotImplemented</Code>" in body and header.encode() in body, (name, header, body)
            sent += 1
    assert sent > 60, sent
    # Nothing was done: the object, the upload and the bucket list are as they were.
    assert s3.get_object(Bucket="walk", Key="obj")["Body"].read() == b"before"
    assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket="walk")["Uploads"]] == [upload]
    assert "walk-new" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_harmless_values_of_refused_headers_are_accepted(server):
    s3 = boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1",
                      aws_access_key_id=ROOT_KEY[0], aws_secret_access_key=ROOT_KEY[1],
                      config=Config(retries={"max_attempts": 1}))
    s3.create_bucket(Bucket="harmless", ObjectLockEnabledForBucket=False)
    s3.put_object(Bucket="harmless", Key="k", Body=b"v", StorageClass="STANDARD")
    assert s3.get_object(Bucket="harmless", Key="k")["Body"].read() == b"v"


def test_protection_asked_of_boto3_is_refused_and_nothing_is_written(server):
    """The issue's cases, through boto3: SSE-S3, SSE-KMS and SSE-C PUTs, an Object Lock bucket
    and a retention period each answer 501; no object or bucket is left behind."""
    s3 = boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1",
                      aws_access_key_id=ROOT_KEY[0], aws_secret_access_key=ROOT_KEY[1],
                      config=Config(retries={"max_attempts": 1}))
    s3.create_bucket(Bucket="protect")
    cases = [
        dict(ServerSideEncryption="AES256"),
        dict(ServerSideEncryption="aws:kms", SSEKMSKeyId="k"),
        dict(SSECustomerAlgorithm="AES256", SSECustomerKey="0" * 32),
        dict(ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate="2030-01-01T00:00:00Z"),
        dict(ObjectLockLegalHoldStatus="ON"),
    ]
    for extra in cases:
        with pytest.raises(ClientError) as e:
            s3.put_object(Bucket="protect", Key="secret", Body=b"plaintext", **extra)
        assert e.value.response["Error"]["Code"] == "NotImplemented", extra
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501
    assert "Contents" not in s3.list_objects_v2(Bucket="protect")
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket="locked", ObjectLockEnabledForBucket=True)
    assert e.value.response["Error"]["Code"] == "NotImplemented"
    assert "object-lock" in e.value.response["Error"]["Message"]
    assert "locked" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    # Multipart and copy ask the same.
    for call in [
        lambda: s3.create_multipart_upload(Bucket="protect", Key="m", ServerSideEncryption="AES256"),
        lambda: s3.copy_object(Bucket="protect", Key="c", CopySource="protect/none",
                               ObjectLockMode="COMPLIANCE",
                               ObjectLockRetainUntilDate="2030-01-01T00:00:00Z"),
    ]:
        with pytest.raises(ClientError) as e:
            call()
        assert e.value.response["Error"]["Code"] == "NotImplemented"


def test_expected_bucket_owner_is_checked(server):
    tenants = make_tenants(server, ["ebo-a", "ebo-b"])
    (a_id, a_key), (b_id, _) = tenants["ebo-a"], tenants["ebo-b"]
    a = boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1",
                     aws_access_key_id=a_key[0], aws_secret_access_key=a_key[1],
                     config=Config(retries={"max_attempts": 1}))
    a.create_bucket(Bucket="ebo")
    a.put_object(Bucket="ebo", Key="k", Body=b"v", ExpectedBucketOwner=a_id)
    assert a.get_object(Bucket="ebo", Key="k", ExpectedBucketOwner=a_id)["Body"].read() == b"v"
    for call in [
        lambda: a.put_object(Bucket="ebo", Key="k", Body=b"other", ExpectedBucketOwner=b_id),
        lambda: a.get_object(Bucket="ebo", Key="k", ExpectedBucketOwner=b_id),
        lambda: a.list_objects_v2(Bucket="ebo", ExpectedBucketOwner=b_id),
        lambda: a.delete_object(Bucket="ebo", Key="k", ExpectedBucketOwner=b_id),
        lambda: a.get_bucket_acl(Bucket="ebo", ExpectedBucketOwner="123456789012"),
        lambda: a.copy_object(Bucket="ebo", Key="c", CopySource="ebo/k",
                              ExpectedSourceBucketOwner=b_id),
    ]:
        with pytest.raises(ClientError) as e:
            call()
        assert e.value.response["Error"]["Code"] == "AccessDenied"
    assert a.get_object(Bucket="ebo", Key="k")["Body"].read() == b"v"
    a.copy_object(Bucket="ebo", Key="c", CopySource="ebo/k", ExpectedSourceBucketOwner=a_id,
                  ExpectedBucketOwner=a_id)
