"""Object semantics through boto3 and the aws CLI: conditional writes (If-None-Match: * and
If-Match on PutObject and CompleteMultipartUpload, atomic against racing writers), object
and bucket tags, and GetObjectAttributes."""

import json
import subprocess
import sys
import os
import threading

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from hoard_server import scratch_server

ROOT_KEY = ("semantics-root-access", "semantics-root-secret-0123456789")


@pytest.fixture(scope="module")
def server():
    yield from scratch_server(*ROOT_KEY)


@pytest.fixture(scope="module")
def client(server):
    c = boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1",
                     aws_access_key_id=ROOT_KEY[0], aws_secret_access_key=ROOT_KEY[1],
                     config=Config(retries={"max_attempts": 1}, max_pool_connections=32))
    c.create_bucket(Bucket="sem")
    return c


def code(call):
    with pytest.raises(ClientError) as e:
        call()
    return e.value.response["Error"]["Code"]


def test_conditional_puts(client):
    first = client.put_object(Bucket="sem", Key="once", Body=b"v1", IfNoneMatch="*")
    assert code(lambda: client.put_object(Bucket="sem", Key="once", Body=b"v2", IfNoneMatch="*")) == \
        "PreconditionFailed"
    # If-Match: only over the version named.
    second = client.put_object(Bucket="sem", Key="once", Body=b"v2", IfMatch=first["ETag"])
    assert code(lambda: client.put_object(Bucket="sem", Key="once", Body=b"v3", IfMatch=first["ETag"])) == \
        "PreconditionFailed"
    assert client.get_object(Bucket="sem", Key="once")["Body"].read() == b"v2"
    assert client.head_object(Bucket="sem", Key="once")["ETag"] == second["ETag"]
    assert code(lambda: client.put_object(Bucket="sem", Key="never", Body=b"x", IfMatch='"abc"')) == \
        "NoSuchKey"


def test_of_16_racing_if_none_match_puts_exactly_one_wins(client):
    results = []
    barrier = threading.Barrier(16)

    def racer(i):
        barrier.wait()
        try:
            client.put_object(Bucket="sem", Key="race", Body=f"writer {i}".encode() * 10_000,
                              IfNoneMatch="*")
            results.append(("won", i))
        except ClientError as e:
            results.append((e.response["Error"]["Code"], i))

    threads = [threading.Thread(target=racer, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [i for r, i in results if r == "won"]
    assert len(winners) == 1, results
    assert {r for r, _ in results if r != "won"} <= {"PreconditionFailed", "ConditionalRequestConflict"}
    body = client.get_object(Bucket="sem", Key="race")["Body"].read()
    assert body == f"writer {winners[0]}".encode() * 10_000


def test_conditional_complete_multipart_upload(client):
    client.put_object(Bucket="sem", Key="mp", Body=b"existing")

    def upload():
        u = client.create_multipart_upload(Bucket="sem", Key="mp")["UploadId"]
        p = client.upload_part(Bucket="sem", Key="mp", UploadId=u, PartNumber=1, Body=b"p" * 1000)
        return u, [{"PartNumber": 1, "ETag": p["ETag"]}]

    u, parts = upload()
    assert code(lambda: client.complete_multipart_upload(
        Bucket="sem", Key="mp", UploadId=u, MultipartUpload={"Parts": parts}, IfNoneMatch="*")) == \
        "PreconditionFailed"
    # The upload stays, and completes with the right If-Match.
    etag = client.head_object(Bucket="sem", Key="mp")["ETag"]
    client.complete_multipart_upload(Bucket="sem", Key="mp", UploadId=u,
                                     MultipartUpload={"Parts": parts}, IfMatch=etag)
    assert client.get_object(Bucket="sem", Key="mp")["Body"].read() == b"p" * 1000


def test_object_and_bucket_tags(server, client):
    client.put_object(Bucket="sem", Key="tagged", Body=b"t", Tagging="project=blue%20sky&team=storage")
    tags = client.get_object_tagging(Bucket="sem", Key="tagged")["TagSet"]
    assert tags == [{"Key": "project", "Value": "blue sky"}, {"Key": "team", "Value": "storage"}]
    assert client.get_object(Bucket="sem", Key="tagged")["TagCount"] == 2
    client.put_object_tagging(Bucket="sem", Key="tagged",
                              Tagging={"TagSet": [{"Key": "stage", "Value": "final"}]})
    assert client.get_object_tagging(Bucket="sem", Key="tagged")["TagSet"] == [{"Key": "stage", "Value": "final"}]
    assert client.head_object(Bucket="sem", Key="tagged")["ResponseMetadata"]["HTTPHeaders"]["x-amz-tagging-count"] == "1"
    # Tags are rewritten in place: the data and ETag stay.
    assert client.get_object(Bucket="sem", Key="tagged")["Body"].read() == b"t"
    client.delete_object_tagging(Bucket="sem", Key="tagged")
    assert client.get_object_tagging(Bucket="sem", Key="tagged")["TagSet"] == []
    # An overwrite replaces the tags; multipart uploads take them too.
    u = client.create_multipart_upload(Bucket="sem", Key="mp-tags", Tagging="a=1")["UploadId"]
    p = client.upload_part(Bucket="sem", Key="mp-tags", UploadId=u, PartNumber=1, Body=b"x")
    client.complete_multipart_upload(Bucket="sem", Key="mp-tags", UploadId=u,
                                     MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p["ETag"]}]})
    assert client.get_object_tagging(Bucket="sem", Key="mp-tags")["TagSet"] == [{"Key": "a", "Value": "1"}]
    # S3's limits.
    eleven = {"TagSet": [{"Key": f"k{i}", "Value": "v"} for i in range(11)]}
    assert code(lambda: client.put_object_tagging(Bucket="sem", Key="tagged", Tagging=eleven)) == "BadRequest"
    assert code(lambda: client.put_object_tagging(Bucket="sem", Key="tagged", Tagging={
        "TagSet": [{"Key": "aws:reserved", "Value": "v"}]})) == "InvalidTag"
    assert code(lambda: client.put_object(Bucket="sem", Key="t2", Body=b"", Tagging="k=1&k=2")) == "InvalidTag"
    # Bucket tags, with the aws CLI.
    assert code(lambda: client.get_bucket_tagging(Bucket="sem")) == "NoSuchTagSet"
    env = dict(os.environ, AWS_ACCESS_KEY_ID=ROOT_KEY[0], AWS_SECRET_ACCESS_KEY=ROOT_KEY[1],
               AWS_DEFAULT_REGION="us-east-1", AWS_CONFIG_FILE="/dev/null",
               AWS_SHARED_CREDENTIALS_FILE="/dev/null")
    cli = [sys.executable, "-m", "awscli", "--endpoint-url", server.endpoint, "s3api"]
    subprocess.run(cli + ["put-bucket-tagging", "--bucket", "sem", "--tagging",
                          "TagSet=[{Key=owner,Value=storage-team}]"], env=env, check=True)
    out = subprocess.run(cli + ["get-bucket-tagging", "--bucket", "sem"], env=env, check=True,
                         capture_output=True, text=True).stdout
    assert json.loads(out)["TagSet"] == [{"Key": "owner", "Value": "storage-team"}]
    client.delete_bucket_tagging(Bucket="sem")
    assert code(lambda: client.get_bucket_tagging(Bucket="sem")) == "NoSuchTagSet"


def test_get_object_attributes(client):
    u = client.create_multipart_upload(Bucket="sem", Key="parts", ChecksumAlgorithm="SHA256")["UploadId"]
    parts = []
    for n, size in [(1, 5 << 20), (2, 5 << 20), (3, 1234)]:
        p = client.upload_part(Bucket="sem", Key="parts", UploadId=u, PartNumber=n,
                               Body=bytes([n]) * size, ChecksumAlgorithm="SHA256")
        parts.append({"PartNumber": n, "ETag": p["ETag"], "ChecksumSHA256": p["ChecksumSHA256"]})
    done = client.complete_multipart_upload(Bucket="sem", Key="parts", UploadId=u,
                                            MultipartUpload={"Parts": parts})
    a = client.get_object_attributes(Bucket="sem", Key="parts",
                                     ObjectAttributes=["ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"],
                                     MaxParts=2)
    assert a["ETag"] == done["ETag"].strip('"')
    assert a["ObjectSize"] == (10 << 20) + 1234 and a["StorageClass"] == "STANDARD"
    assert a["Checksum"]["ChecksumSHA256"] == done["ChecksumSHA256"]
    assert a["ObjectParts"]["TotalPartsCount"] == 3 and a["ObjectParts"]["IsTruncated"] is True
    assert [p["Size"] for p in a["ObjectParts"]["Parts"]] == [5 << 20, 5 << 20]
    rest = client.get_object_attributes(Bucket="sem", Key="parts", ObjectAttributes=["ObjectParts"],
                                        PartNumberMarker=2)
    assert [(p["PartNumber"], p["Size"]) for p in rest["ObjectParts"]["Parts"]] == [(3, 1234)]
    assert code(lambda: client.get_object_attributes(Bucket="sem", Key="missing", ObjectAttributes=["ETag"])) == \
        "NoSuchKey"


def test_copy_object_and_upload_part_copy(server, client):
    client.create_bucket(Bucket="sem-dst")
    big = os.urandom(12 << 20)
    client.put_object(Bucket="sem", Key="src", Body=big, ContentType="application/x-raw",
                      Metadata={"origin": "camera"}, Tagging="k=v", ACL="public-read")
    src_etag = client.head_object(Bucket="sem", Key="src")["ETag"]
    # Same bucket and across buckets; COPY keeps metadata and tags, never the ACL.
    r = client.copy_object(Bucket="sem-dst", Key="copy", CopySource={"Bucket": "sem", "Key": "src"})
    assert r["CopyObjectResult"]["ETag"] == src_etag
    head = client.head_object(Bucket="sem-dst", Key="copy")
    assert head["ContentType"] == "application/x-raw" and head["Metadata"] == {"origin": "camera"}
    assert client.get_object_tagging(Bucket="sem-dst", Key="copy")["TagSet"] == [{"Key": "k", "Value": "v"}]
    grants = client.get_object_acl(Bucket="sem-dst", Key="copy")["Grants"]
    assert [g["Permission"] for g in grants] == ["FULL_CONTROL"]
    # REPLACE takes the request's metadata and tags.
    client.copy_object(Bucket="sem", Key="src2", CopySource="sem/src", MetadataDirective="REPLACE",
                       ContentType="text/plain", Metadata={"new": "1"},
                       TaggingDirective="REPLACE", Tagging="t=2")
    head = client.head_object(Bucket="sem", Key="src2")
    assert head["ContentType"] == "text/plain" and head["Metadata"] == {"new": "1"}
    assert client.get_object_tagging(Bucket="sem", Key="src2")["TagSet"] == [{"Key": "t", "Value": "2"}]
    # Onto itself only with REPLACE.
    assert code(lambda: client.copy_object(Bucket="sem", Key="src", CopySource="sem/src")) == "InvalidRequest"
    client.copy_object(Bucket="sem", Key="src", CopySource="sem/src", MetadataDirective="REPLACE",
                       Metadata={"again": "yes"})
    assert client.head_object(Bucket="sem", Key="src")["Metadata"] == {"again": "yes"}
    # The copy-source conditions.
    assert code(lambda: client.copy_object(Bucket="sem", Key="c3", CopySource="sem/src",
                                           CopySourceIfMatch='"not-it"')) == "PreconditionFailed"
    assert code(lambda: client.copy_object(Bucket="sem", Key="c3", CopySource="sem/src",
                                           CopySourceIfNoneMatch=src_etag)) == "PreconditionFailed"
    client.copy_object(Bucket="sem", Key="c3", CopySource="sem/src", CopySourceIfMatch=src_etag)
    assert code(lambda: client.copy_object(Bucket="sem", Key="c4", CopySource="sem/missing")) == "NoSuchKey"
    # The source deleted, the copies read back whole.
    client.delete_object(Bucket="sem", Key="src")
    for bucket, key in [("sem-dst", "copy"), ("sem", "src2"), ("sem", "c3")]:
        assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == big
    # UploadPartCopy with ranges: the parts are the source's bytes.
    u = client.create_multipart_upload(Bucket="sem-dst", Key="assembled")["UploadId"]
    parts = []
    for n, (a, b) in enumerate([(0, (5 << 20) - 1), (5 << 20, len(big) - 1)], start=1):
        r = client.upload_part_copy(Bucket="sem-dst", Key="assembled", UploadId=u, PartNumber=n,
                                    CopySource="sem-dst/copy", CopySourceRange=f"bytes={a}-{b}")
        parts.append({"PartNumber": n, "ETag": r["CopyPartResult"]["ETag"]})
    client.complete_multipart_upload(Bucket="sem-dst", Key="assembled", UploadId=u,
                                     MultipartUpload={"Parts": parts})
    assert client.get_object(Bucket="sem-dst", Key="assembled")["Body"].read() == big
    # The aws CLI copies between buckets (CopyObject, or UploadPartCopy for large objects).
    env = dict(os.environ, AWS_ACCESS_KEY_ID=ROOT_KEY[0], AWS_SECRET_ACCESS_KEY=ROOT_KEY[1],
               AWS_DEFAULT_REGION="us-east-1", AWS_CONFIG_FILE="/dev/null",
               AWS_SHARED_CREDENTIALS_FILE="/dev/null")
    subprocess.run([sys.executable, "-m", "awscli", "--endpoint-url", server.endpoint, "s3", "cp",
                    "--only-show-errors", "s3://sem-dst/assembled", "s3://sem/cli-copy"],
                   env=env, check=True)
    assert client.get_object(Bucket="sem", Key="cli-copy")["Body"].read() == big
