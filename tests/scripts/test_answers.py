"""Answers a client can trust: what a request document says is what Hoard does (keys, tag
keys and values, lifecycle prefixes kept byte-exact, whitespace and XML entities included),
and answers as the AWS S3 API Reference gives them."""

import re

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from hoard_server import scratch_server, signed

ROOT_KEY = ("answers-root-access", "answers-root-secret-0123456789")
# Keys that differ from others only by whitespace: a trimming reader confuses them.
SPACE_KEYS = [" ", "_ ", " a ", "\t", "k\n", "_", "a", "k"]


@pytest.fixture(scope="module")
def server():
    yield from scratch_server(*ROOT_KEY)


@pytest.fixture(scope="module")
def s3(server):
    return boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1",
                        aws_access_key_id=ROOT_KEY[0], aws_secret_access_key=ROOT_KEY[1],
                        config=Config(retries={"max_attempts": 1}))


def error_code(body):
    m = re.search(rb"<Code>([^<]*)</Code>", body)
    return m and m.group(1).decode()


def entities(text):
    """`text` with every whitespace character written as a numeric character reference."""
    return "".join(f"&#{ord(c)};" if c.isspace() else c for c in text)


def listed(s3, bucket, **kw):
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, **kw).get("Contents", []))


def test_whitespace_in_keys_survives_delete_objects_and_listings(server, s3):
    s3.create_bucket(Bucket="spaces")
    for k in SPACE_KEYS:
        s3.put_object(Bucket="spaces", Key=k, Body=k.encode() + b"!")
    # boto3 asks for encoding-type=url and decodes: every key comes back exactly, v1 and v2.
    assert listed(s3, "spaces") == sorted(SPACE_KEYS)
    assert sorted(o["Key"] for o in s3.list_objects(Bucket="spaces")["Contents"]) == sorted(SPACE_KEYS)
    assert listed(s3, "spaces", Prefix="_ ") == ["_ "]
    assert listed(s3, "spaces", Prefix=" ") == [" ", " a "]

    # DeleteObjects through boto3: "_ " deletes "_ " (not "_"), and the answer names it exactly.
    out = s3.delete_objects(Bucket="spaces", Delete={"Objects": [{"Key": "_ "}, {"Key": " "}]})
    assert sorted(d["Key"] for d in out["Deleted"]) == [" ", "_ "]
    assert out.get("Errors", []) == []
    assert listed(s3, "spaces") == sorted(set(SPACE_KEYS) - {"_ ", " "})
    assert s3.get_object(Bucket="spaces", Key="_")["Body"].read() == b"_!"

    # The same by XML entities (a raw document): " a ", "\t" and "k\n".
    doc = "<Delete><Quiet>false</Quiet>" + "".join(
        f"<Object><Key>{entities(k)}</Key></Object>" for k in [" a ", "\t", "k\n"]) + "</Delete>"
    import base64
    import hashlib
    body = doc.encode()
    status, _, reply = signed(server, ROOT_KEY, "POST", "/spaces?delete", body,
                              {"Content-MD5": base64.b64encode(hashlib.md5(body).digest()).decode(),
                               "Content-Type": "application/xml"})
    assert status == 200, reply
    deleted = re.findall(rb"<Deleted><Key>(.*?)</Key>", reply, re.S)
    assert sorted(deleted) == sorted([b" a ", b"\t", b"k\n"]), reply
    assert listed(s3, "spaces") == ["_", "a", "k"]
    for k in ["_", "a", "k"]:
        assert s3.get_object(Bucket="spaces", Key=k)["Body"].read() == k.encode() + b"!"


def test_whitespace_in_tags_is_kept(server, s3):
    s3.create_bucket(Bucket="tag-spaces")
    s3.put_object(Bucket="tag-spaces", Key="o", Body=b"o")
    tags = [{"Key": " sp ", "Value": "  v  "}, {"Key": "t\t", "Value": "\n"}, {"Key": "sp", "Value": "v"}]
    s3.put_object_tagging(Bucket="tag-spaces", Key="o", Tagging={"TagSet": tags})
    got = s3.get_object_tagging(Bucket="tag-spaces", Key="o")["TagSet"]
    assert sorted((t["Key"], t["Value"]) for t in got) == sorted((t["Key"], t["Value"]) for t in tags)
    # By entities, on the bucket.
    doc = ("<Tagging><TagSet><Tag><Key>" + entities(" b ") + "</Key><Value>" + entities(" w\t")
           + "</Value></Tag></TagSet></Tagging>").encode()
    import base64
    import hashlib
    status, _, reply = signed(server, ROOT_KEY, "PUT", "/tag-spaces?tagging", doc,
                              {"Content-MD5": base64.b64encode(hashlib.md5(doc).digest()).decode()})
    assert status in (200, 204), reply
    got = s3.get_bucket_tagging(Bucket="tag-spaces")["TagSet"]
    assert got == [{"Key": " b ", "Value": " w\t"}]


def test_a_lifecycle_prefix_with_a_trailing_space_matches_only_what_it_says(server, s3):
    s3.create_bucket(Bucket="lc-spaces")
    rules = [{"ID": "logs-space", "Status": "Enabled", "Filter": {"Prefix": "logs "},
              "Expiration": {"Days": 3}},
             {"ID": "tab", "Status": "Enabled", "Filter": {"Prefix": "\tt"},
              "Expiration": {"Days": 5}}]
    s3.put_bucket_lifecycle_configuration(Bucket="lc-spaces", LifecycleConfiguration={"Rules": rules})
    got = s3.get_bucket_lifecycle_configuration(Bucket="lc-spaces")["Rules"]
    assert [r["Filter"]["Prefix"] for r in got] == ["logs ", "\tt"]
    for key, rule in [("logs a", "logs-space"), ("logsa", None), ("logs", None),
                      ("\tt1", "tab"), ("t1", None)]:
        s3.put_object(Bucket="lc-spaces", Key=key, Body=b"x")
        headers = s3.head_object(Bucket="lc-spaces", Key=key)["ResponseMetadata"]["HTTPHeaders"]
        if rule is None:
            assert "x-amz-expiration" not in headers, key
        else:
            assert f'rule-id="{rule}"' in headers["x-amz-expiration"], key


def test_conditional_reads_and_copies_by_date(s3):
    import datetime
    s3.create_bucket(Bucket="dates")
    s3.put_object(Bucket="dates", Key="k", Body=b"v")
    modified = s3.head_object(Bucket="dates", Key="k")["LastModified"]
    before, after = modified - datetime.timedelta(hours=1), modified + datetime.timedelta(hours=1)
    assert s3.get_object(Bucket="dates", Key="k", IfModifiedSince=before)["Body"].read() == b"v"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="dates", Key="k", IfModifiedSince=after)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    assert s3.get_object(Bucket="dates", Key="k", IfUnmodifiedSince=after)["Body"].read() == b"v"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="dates", Key="k", IfUnmodifiedSince=before)
    assert e.value.response["Error"]["Code"] == "PreconditionFailed"
    s3.copy_object(Bucket="dates", Key="c1", CopySource="dates/k", CopySourceIfModifiedSince=before)
    s3.copy_object(Bucket="dates", Key="c2", CopySource="dates/k", CopySourceIfUnmodifiedSince=after)
    for kw in [dict(CopySourceIfModifiedSince=after), dict(CopySourceIfUnmodifiedSince=before)]:
        with pytest.raises(ClientError) as e:
            s3.copy_object(Bucket="dates", Key="c3", CopySource="dates/k", **kw)
        assert e.value.response["Error"]["Code"] == "PreconditionFailed", kw
    assert listed(s3, "dates") == ["c1", "c2", "k"]


def test_sdk_checksum_algorithm_names_the_checksum_that_is_checked(server, s3):
    """`x-amz-sdk-checksum-algorithm` (boto3's ChecksumAlgorithm) names the x-amz-checksum-*
    header that carries the body's checksum: the checksum is verified."""
    s3.create_bucket(Bucket="sdk-sum")
    s3.put_object(Bucket="sdk-sum", Key="a", Body=b"a")
    out = s3.delete_objects(Bucket="sdk-sum", Delete={"Objects": [{"Key": "a"}]},
                            ChecksumAlgorithm="SHA256")
    assert [d["Key"] for d in out["Deleted"]] == ["a"]
    doc = b"<Delete><Object><Key>a</Key></Object></Delete>"
    status, _, body = signed(server, ROOT_KEY, "POST", "/sdk-sum?delete", doc,
                             {"x-amz-sdk-checksum-algorithm": "SHA256",
                              "x-amz-checksum-sha256": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="})
    assert status == 400 and error_code(body) == "BadDigest", body


def test_if_none_match_with_an_etag_on_writes(s3):
    s3.create_bucket(Bucket="inm")
    etag = s3.put_object(Bucket="inm", Key="k", Body=b"one")["ETag"]
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket="inm", Key="k", Body=b"two", IfNoneMatch=etag)
    assert e.value.response["Error"]["Code"] == "PreconditionFailed"
    assert s3.get_object(Bucket="inm", Key="k")["Body"].read() == b"one"
    s3.put_object(Bucket="inm", Key="k", Body=b"three", IfNoneMatch='"0123456789abcdef0123456789abcdef"')
    s3.put_object(Bucket="inm", Key="new", Body=b"n", IfNoneMatch=etag)
    # CompleteMultipartUpload too.
    etag = s3.head_object(Bucket="inm", Key="k")["ETag"]
    up = s3.create_multipart_upload(Bucket="inm", Key="k")["UploadId"]
    part = s3.upload_part(Bucket="inm", Key="k", UploadId=up, PartNumber=1, Body=b"p")["ETag"]
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket="inm", Key="k", UploadId=up, IfNoneMatch=etag,
                                     MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part}]})
    assert e.value.response["Error"]["Code"] == "PreconditionFailed"
    s3.complete_multipart_upload(Bucket="inm", Key="k", UploadId=up, IfNoneMatch='"other"',
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part}]})
    assert s3.get_object(Bucket="inm", Key="k")["Body"].read() == b"p"


def test_complete_multipart_upload_checks_the_objects_checksum_header(s3):
    """On Complete, x-amz-checksum-<algo> is the whole object's expected checksum (composite
    `...-N` here), checked against the combined checksum, not against the XML body."""
    s3.create_bucket(Bucket="mpsum")
    up = s3.create_multipart_upload(Bucket="mpsum", Key="k", ChecksumAlgorithm="CRC32")["UploadId"]
    parts = []
    for n in (1, 2):
        body = bytes([n]) * (5 << 20 if n == 1 else 1000)
        r = s3.upload_part(Bucket="mpsum", Key="k", UploadId=up, PartNumber=n, Body=body,
                           ChecksumAlgorithm="CRC32")
        parts.append({"PartNumber": n, "ETag": r["ETag"], "ChecksumCRC32": r["ChecksumCRC32"]})
    import base64
    import zlib
    raw = b"".join(base64.b64decode(p["ChecksumCRC32"]) for p in parts)
    composite = base64.b64encode(zlib.crc32(raw).to_bytes(4, "big")).decode() + "-2"
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket="mpsum", Key="k", UploadId=up, ChecksumCRC32="AAAAAA==-2",
                                     MultipartUpload={"Parts": parts})
    assert e.value.response["Error"]["Code"] == "BadDigest"
    out = s3.complete_multipart_upload(Bucket="mpsum", Key="k", UploadId=up, ChecksumCRC32=composite,
                                       MultipartUpload={"Parts": parts})
    assert out["ChecksumCRC32"] == composite
    # GetObjectAttributes lists each part with its checksum.
    attrs = s3.get_object_attributes(Bucket="mpsum", Key="k", ObjectAttributes=["ObjectParts"])
    listed_parts = attrs["ObjectParts"]["Parts"]
    assert [(p["PartNumber"], p["ChecksumCRC32"]) for p in listed_parts] == \
        [(p["PartNumber"], p["ChecksumCRC32"]) for p in parts]
    assert "x-hoard-part-checksums" not in s3.head_object(Bucket="mpsum", Key="k")["ResponseMetadata"]["HTTPHeaders"]


def test_complete_with_no_parts_is_malformed_xml(server, s3):
    s3.create_bucket(Bucket="noparts")
    up = s3.create_multipart_upload(Bucket="noparts", Key="k")["UploadId"]
    doc = b"<CompleteMultipartUpload></CompleteMultipartUpload>"
    status, _, body = signed(server, ROOT_KEY, "POST", f"/noparts/k?uploadId={up}", doc)
    assert (status, error_code(body)) == (400, "MalformedXML"), body


def test_upload_part_copy_past_the_source_end_is_invalid_range(s3):
    s3.create_bucket(Bucket="upc")
    s3.put_object(Bucket="upc", Key="src", Body=b"x" * 100)
    up = s3.create_multipart_upload(Bucket="upc", Key="dst")["UploadId"]
    with pytest.raises(ClientError) as e:
        s3.upload_part_copy(Bucket="upc", Key="dst", UploadId=up, PartNumber=1,
                            CopySource="upc/src", CopySourceRange="bytes=50-200")
    assert e.value.response["Error"]["Code"] == "InvalidRange"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 416
    r = s3.upload_part_copy(Bucket="upc", Key="dst", UploadId=up, PartNumber=1,
                            CopySource="upc/src", CopySourceRange="bytes=50-99")
    assert r["CopyPartResult"]["ETag"]


def test_create_bucket_you_own_in_us_east_1_is_200_and_resets_the_acl(s3):
    s3.create_bucket(Bucket="again", ACL="public-read")
    assert any(g["Grantee"].get("URI", "").endswith("AllUsers")
               for g in s3.get_bucket_acl(Bucket="again")["Grants"])
    s3.put_object(Bucket="again", Key="kept", Body=b"k")
    s3.create_bucket(Bucket="again")
    assert not any(g["Grantee"].get("URI", "").endswith("AllUsers")
                   for g in s3.get_bucket_acl(Bucket="again")["Grants"])
    assert s3.get_object(Bucket="again", Key="kept")["Body"].read() == b"k"
    # Another region's constraint is refused; us-east-1's is the empty one.
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket="elsewhere", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    assert e.value.response["Error"]["Code"] == "IllegalLocationConstraintException"


def test_suspended_versioning_writes_send_no_version_header(s3):
    s3.create_bucket(Bucket="susp")
    s3.put_bucket_versioning(Bucket="susp", VersioningConfiguration={"Status": "Enabled"})
    assert s3.put_object(Bucket="susp", Key="k", Body=b"1").get("VersionId")
    s3.put_bucket_versioning(Bucket="susp", VersioningConfiguration={"Status": "Suspended"})
    out = s3.put_object(Bucket="susp", Key="k", Body=b"2")
    assert "x-amz-version-id" not in out["ResponseMetadata"]["HTTPHeaders"]
    # Reading the null version still names it.
    got = s3.get_object(Bucket="susp", Key="k")
    assert got["ResponseMetadata"]["HTTPHeaders"]["x-amz-version-id"] == "null"


def test_lifecycle_legacy_prefix_is_answered_as_written(server, s3):
    s3.create_bucket(Bucket="lc-legacy")
    doc = (b"<LifecycleConfiguration><Rule><ID>old</ID><Prefix>logs/</Prefix><Status>Enabled</Status>"
           b"<Expiration><Days>3</Days></Expiration></Rule></LifecycleConfiguration>")
    import base64
    import hashlib
    md5 = base64.b64encode(hashlib.md5(doc).digest()).decode()
    status, _, body = signed(server, ROOT_KEY, "PUT", "/lc-legacy?lifecycle", doc, {"Content-MD5": md5})
    assert status == 200, body
    status, _, body = signed(server, ROOT_KEY, "GET", "/lc-legacy?lifecycle")
    assert b"<Rule><ID>old</ID><Prefix>logs/</Prefix><Status>" in body, body
    assert b"<Filter>" not in body
    rule = s3.get_bucket_lifecycle_configuration(Bucket="lc-legacy")["Rules"][0]
    assert rule["Prefix"] == "logs/" and "Filter" not in rule
    both = doc.replace(b"<Prefix>logs/</Prefix>", b"<Prefix>a</Prefix><Filter><Prefix>b</Prefix></Filter>")
    md5 = base64.b64encode(hashlib.md5(both).digest()).decode()
    status, _, body = signed(server, ROOT_KEY, "PUT", "/lc-legacy?lifecycle", both, {"Content-MD5": md5})
    assert (status, error_code(body)) == (400, "MalformedXML"), body


def test_list_objects_v1_url_encoding_leaves_the_prefix_alone(server, s3):
    s3.create_bucket(Bucket="enc")
    s3.put_object(Bucket="enc", Key="a b/c d", Body=b"x")
    status, _, body = signed(server, ROOT_KEY, "GET", "/enc?encoding-type=url&prefix=a%20b%2F&delimiter=%2F")
    assert status == 200
    assert b"<Prefix>a b/</Prefix>" in body.split(b"<Contents>")[0], body
    assert b"<Key>a%20b/c%20d</Key>" in body, body
    status, _, body = signed(server, ROOT_KEY, "GET", "/enc?list-type=2&encoding-type=url&prefix=a%20b%2F")
    assert b"<Prefix>a%20b/</Prefix>" in body, body
    # boto3 decodes exactly what S3 encodes.
    assert [o["Key"] for o in s3.list_objects(Bucket="enc", Prefix="a b/")["Contents"]] == ["a b/c d"]
    assert s3.list_objects(Bucket="enc", Prefix="a b/")["Prefix"] == "a b/"


def test_list_buckets_pages(server, s3):
    names = [f"page-{i:02}" for i in range(5)]
    for n in names:
        s3.create_bucket(Bucket=n)
    got, token = [], None
    while True:
        kw = {"MaxBuckets": 2, "Prefix": "page-"}
        if token:
            kw["ContinuationToken"] = token
        out = s3.list_buckets(**kw)
        got += [b["Name"] for b in out["Buckets"]]
        assert len(out["Buckets"]) <= 2
        token = out.get("ContinuationToken")
        if not token:
            break
    assert got == names
    assert s3.list_buckets(BucketRegion="eu-west-1")["Buckets"] == []
    assert s3.list_buckets(BucketRegion="us-east-1", Prefix="page-0")["Buckets"][0]["BucketRegion"] == "us-east-1"


def test_chunked_put_without_content_length(server):
    """HTTP/1.1 chunked framing with UNSIGNED-PAYLOAD and no Content-Length is accepted."""
    import http.client
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    req = AWSRequest(method="PUT", url=server.endpoint + "/chunked-te/k",
                     headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD"})
    boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1",
                 aws_access_key_id=ROOT_KEY[0], aws_secret_access_key=ROOT_KEY[1]).create_bucket(Bucket="chunked-te")

    class Unsigned(S3SigV4Auth):
        def payload(self, request):
            return "UNSIGNED-PAYLOAD"
    Unsigned(Credentials(*ROOT_KEY), "s3", "us-east-1").add_auth(req)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.putrequest("PUT", "/chunked-te/k")
    for k, v in req.headers.items():
        conn.putheader(k, v)
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    for piece in [b"hello ", b"chunked ", b"world"]:
        conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
    conn.send(b"0\r\n\r\n")
    r = conn.getresponse()
    assert r.status == 200, r.read()
    r.read()
    status, _, body = signed(server, ROOT_KEY, "GET", "/chunked-te/k")
    assert (status, body) == (200, b"hello chunked world")


def test_policy_condition_keys_are_evaluated_as_s3_defines_them(server, s3):
    import json
    from hoard_server import make_tenants
    tenants = make_tenants(server, ["keys-writer"])
    writer_id, writer_key = tenants["keys-writer"]

    def client(**cfg):
        return boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1",
                            aws_access_key_id=writer_key[0], aws_secret_access_key=writer_key[1],
                            config=Config(retries={"max_attempts": 1}, **cfg))
    w = client()
    s3.create_bucket(Bucket="keys")
    s3.put_bucket_versioning(Bucket="keys", VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket="keys", Key="secret", Body=b"s", Tagging="class=secret")
    v1 = s3.put_object(Bucket="keys", Key="open", Body=b"o1")["VersionId"]
    s3.put_object(Bucket="keys", Key="open", Body=b"o2")
    arn = "arn:aws:s3:::keys/*"
    who = {"AWS": writer_id}
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": who, "Action": "s3:PutObject", "Resource": arn,
         "Condition": {"StringEquals": {"s3:x-amz-acl": "bucket-owner-full-control",
                                        "s3:RequestObjectTag/project": "blue"},
                       "ForAllValues:StringEquals": {"s3:RequestObjectTagKeys": ["project"]}}},
        {"Effect": "Allow", "Principal": who, "Action": "s3:PutObjectTagging", "Resource": arn,
         "Condition": {"StringEquals": {"s3:RequestObjectTag/project": "blue"}}},
        {"Effect": "Allow", "Principal": who, "Action": ["s3:GetObject", "s3:GetObjectVersion"],
         "Resource": arn},
        {"Effect": "Deny", "Principal": who, "Action": "s3:GetObject", "Resource": arn,
         "Condition": {"StringEquals": {"s3:ExistingObjectTag/class": "secret"}}},
        {"Effect": "Deny", "Principal": who, "Action": "s3:GetObjectVersion", "Resource": arn,
         "Condition": {"StringEquals": {"s3:versionid": v1}}},
        {"Effect": "Deny", "Principal": who, "Action": "s3:*", "Resource": arn,
         "Condition": {"StringEquals": {"s3:signatureversion": "AWS"}}},
        {"Effect": "Deny", "Principal": who, "Action": "s3:GetObject", "Resource": arn,
         "Condition": {"StringEquals": {"s3:authType": "REST-QUERY-STRING"}}},
        {"Effect": "Deny", "Principal": who, "Action": "s3:PutObject", "Resource": arn,
         "Condition": {"StringEquals": {"s3:x-amz-content-sha256": "UNSIGNED-PAYLOAD"}}},
        {"Effect": "Deny", "Principal": who, "Action": "s3:PutObject", "Resource": arn,
         "Condition": {"StringLike": {"s3:x-amz-copy-source": "keys/secret*"}}},
    ]}
    s3.put_bucket_policy(Bucket="keys", Policy=json.dumps(policy))

    def denied(call):
        with pytest.raises(ClientError) as e:
            call()
        return e.value.response["Error"]["Code"] == "AccessDenied"
    # s3:x-amz-acl, s3:RequestObjectTag/<key>, s3:RequestObjectTagKeys on PutObject.
    ok = dict(ACL="bucket-owner-full-control", Tagging="project=blue")
    w.put_object(Bucket="keys", Key="w1", Body=b"w", **ok)
    assert denied(lambda: w.put_object(Bucket="keys", Key="w2", Body=b"w", Tagging="project=blue"))
    assert denied(lambda: w.put_object(Bucket="keys", Key="w2", Body=b"w", ACL="bucket-owner-full-control",
                                       Tagging="project=red"))
    assert denied(lambda: w.put_object(Bucket="keys", Key="w2", Body=b"w", ACL="bucket-owner-full-control",
                                       Tagging="project=blue&extra=1"))
    # PutObjectTagging: decided on the tags of its body.
    w.put_object_tagging(Bucket="keys", Key="w1", Tagging={"TagSet": [{"Key": "project", "Value": "blue"}]})
    assert denied(lambda: w.put_object_tagging(Bucket="keys", Key="w1",
                                               Tagging={"TagSet": [{"Key": "project", "Value": "red"}]}))
    assert s3.get_object_tagging(Bucket="keys", Key="w1")["TagSet"] == [{"Key": "project", "Value": "blue"}]
    # s3:ExistingObjectTag/<key>: the tagged object is denied, another is not.
    assert w.get_object(Bucket="keys", Key="open")["Body"].read() == b"o2"
    assert denied(lambda: w.get_object(Bucket="keys", Key="secret"))
    # s3:versionid.
    assert denied(lambda: w.get_object(Bucket="keys", Key="open", VersionId=v1))
    # s3:x-amz-copy-source: a copy of the secret is denied (the copy's PutObject).
    assert denied(lambda: w.copy_object(Bucket="keys", Key="w3", CopySource="keys/secret", **ok))
    # s3:signatureversion: SigV2 is denied, SigV4 is not.
    v2 = client(signature_version="s3")
    assert denied(lambda: v2.get_object(Bucket="keys", Key="open"))
    # s3:authType: a presigned GET is denied, the same request signed in the header is not.
    import urllib.request
    url = w.generate_presigned_url("get_object", Params={"Bucket": "keys", "Key": "open"}, ExpiresIn=60)
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(url)
    assert e.value.code == 403
    # s3:x-amz-content-sha256: an unsigned payload is denied (SigV4 over plain HTTP signs the
    # payload by default; ask for UNSIGNED-PAYLOAD).
    put_headers = {"x-amz-acl": "bucket-owner-full-control", "x-amz-tagging": "project=blue"}
    status, _, body = signed(server, writer_key, "PUT", "/keys/w4", b"w", put_headers,
                             payload="UNSIGNED-PAYLOAD")
    assert (status, error_code(body)) == (403, "AccessDenied"), body
    status, _, body = signed(server, writer_key, "PUT", "/keys/w4", b"w", put_headers)
    assert status == 200, body


def test_object_ownership_controls(server, s3):
    """BucketOwnerEnforced disables ACLs and gives the bucket owner every object;
    BucketOwnerPreferred gives it objects written with bucket-owner-full-control; a bucket
    created without the header stays ObjectWriter (Hoard's default, unlike S3's since 2023)."""
    import json
    from hoard_server import make_tenants
    tenants = make_tenants(server, ["own-writer"])
    writer_id, writer_key = tenants["own-writer"]
    w = boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1",
                     aws_access_key_id=writer_key[0], aws_secret_access_key=writer_key[1],
                     config=Config(retries={"max_attempts": 1}))
    owner_id = s3.list_buckets()["Owner"]["ID"]

    def grant_writes(bucket):
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Statement": [{
            "Effect": "Allow", "Principal": {"AWS": writer_id},
            "Action": ["s3:PutObject", "s3:GetObject"], "Resource": f"arn:aws:s3:::{bucket}/*"}]}))

    def code(call):
        with pytest.raises(ClientError) as e:
            call()
        return e.value.response["Error"]["Code"]

    # Default: ObjectWriter, and GetBucketOwnershipControls says none is set.
    s3.create_bucket(Bucket="own-default")
    assert code(lambda: s3.get_bucket_ownership_controls(Bucket="own-default")) == \
        "OwnershipControlsNotFoundError"
    grant_writes("own-default")
    w.put_object(Bucket="own-default", Key="k", Body=b"w")
    # The writer owns it (the bucket owner may not even read its ACL).
    assert w.get_object_acl(Bucket="own-default", Key="k")["Owner"]["ID"] == writer_id

    # BucketOwnerEnforced at creation: ACLs refused, the bucket owner owns what others write.
    s3.create_bucket(Bucket="own-enforced", ObjectOwnership="BucketOwnerEnforced")
    rules = s3.get_bucket_ownership_controls(Bucket="own-enforced")["OwnershipControls"]["Rules"]
    assert rules == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    grant_writes("own-enforced")
    w.put_object(Bucket="own-enforced", Key="k", Body=b"w")
    w.put_object(Bucket="own-enforced", Key="k2", Body=b"w", ACL="bucket-owner-full-control")
    assert code(lambda: w.put_object(Bucket="own-enforced", Key="k3", Body=b"w", ACL="public-read")) == \
        "AccessControlListNotSupported"
    assert code(lambda: s3.put_bucket_acl(Bucket="own-enforced", ACL="public-read")) == \
        "AccessControlListNotSupported"
    acl = s3.get_object_acl(Bucket="own-enforced", Key="k")
    assert acl["Owner"]["ID"] == owner_id
    assert [g["Permission"] for g in acl["Grants"]] == ["FULL_CONTROL"]
    with pytest.raises(ClientError):
        s3.head_object(Bucket="own-enforced", Key="k3")
    # ACL grants count for nothing: a public-read bucket ACL set before cannot be enforced over.
    s3.create_bucket(Bucket="own-acl", ACL="public-read")
    assert code(lambda: s3.put_bucket_ownership_controls(
        Bucket="own-acl", OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]})) == \
        "InvalidBucketAclWithObjectOwnership"
    assert code(lambda: s3.create_bucket(Bucket="own-bad", ACL="public-read",
                                         ObjectOwnership="BucketOwnerEnforced")) == \
        "InvalidBucketAclWithObjectOwnership"

    # BucketOwnerPreferred: bucket-owner-full-control hands the object to the bucket owner.
    s3.create_bucket(Bucket="own-pref")
    s3.put_bucket_ownership_controls(
        Bucket="own-pref", OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerPreferred"}]})
    grant_writes("own-pref")
    w.put_object(Bucket="own-pref", Key="given", Body=b"w", ACL="bucket-owner-full-control")
    w.put_object(Bucket="own-pref", Key="kept", Body=b"w")
    assert s3.get_object_acl(Bucket="own-pref", Key="given")["Owner"]["ID"] == owner_id
    assert w.get_object_acl(Bucket="own-pref", Key="kept")["Owner"]["ID"] == writer_id
    s3.delete_bucket_ownership_controls(Bucket="own-pref")
    assert code(lambda: s3.get_bucket_ownership_controls(Bucket="own-pref")) == \
        "OwnershipControlsNotFoundError"


def sigv2(key, method, resource, date_header=None, amz_date=None):
    """SigV2 headers over `resource`, with the given Date and/or x-amz-date (signed as S3's
    SigV2 signs them: an x-amz-date replaces the Date line)."""
    import base64
    import hashlib
    import hmac
    headers, amz = {}, ""
    if date_header is not None:
        headers["Date"] = date_header
    if amz_date is not None:
        headers["x-amz-date"] = amz_date
        amz = f"x-amz-date:{amz_date}\n"
    line = "" if amz_date is not None else (date_header or "")
    to_sign = f"{method}\n\n\n{line}\n{amz}{resource}"
    sig = base64.b64encode(hmac.new(key[1].encode(), to_sign.encode(), hashlib.sha1).digest()).decode()
    headers["Authorization"] = f"AWS {key[0]}:{sig}"
    return headers


def test_request_dates_as_s3_reads_them(server, s3):
    import email.utils
    import http.client
    import time as _time
    s3.create_bucket(Bucket="dates-v2")
    s3.put_object(Bucket="dates-v2", Key="k", Body=b"v")

    def get(headers, target="/dates-v2/k"):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        conn.request("GET", target, headers=headers)
        r = conn.getresponse()
        out = (r.status, r.read())
        conn.close()
        return out

    now = email.utils.formatdate(usegmt=True)
    # A weekday that does not match the day is read past, as S3 does.
    weekdays = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    wrong = weekdays[(weekdays.index(now[:3]) + 1) % 7] + now[3:]
    assert get(sigv2(ROOT_KEY, "GET", "/dates-v2/k", date_header=wrong)) == (200, b"v")
    old = email.utils.formatdate(_time.time() - 3600, usegmt=True)
    old_wrong = weekdays[(weekdays.index(old[:3]) + 1) % 7] + old[3:]
    status, body = get(sigv2(ROOT_KEY, "GET", "/dates-v2/k", date_header=old_wrong))
    assert (status, error_code(body)) == (403, "RequestTimeTooSkewed"), body
    # An empty x-amz-date is no date, even beside a valid Date: AccessDenied.
    status, body = get(sigv2(ROOT_KEY, "GET", "/dates-v2/k", date_header=now, amz_date=""))
    assert (status, error_code(body)) == (403, "AccessDenied"), body
    # SigV4 signed with Date and no X-Amz-Date (botocore signs so when the caller sets Date).
    status, _, body = signed(server, ROOT_KEY, "GET", "/dates-v2/k", headers={"Date": now})
    assert (status, body) == (200, b"v")
    # A presigned URL that lives 0 s has expired when it arrives.
    import urllib.error
    import urllib.request
    v4 = boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1",
                      aws_access_key_id=ROOT_KEY[0], aws_secret_access_key=ROOT_KEY[1],
                      config=Config(signature_version="s3v4"))
    url = v4.generate_presigned_url("get_object", Params={"Bucket": "dates-v2", "Key": "k"}, ExpiresIn=0)
    assert "X-Amz-Expires=0" in url
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(url)
    assert e.value.code == 403 and b"expired" in e.value.read()


def test_a_missing_key_is_403_to_a_caller_who_may_not_list(server, s3):
    import json
    from hoard_server import make_tenants
    reader_id, reader_key = make_tenants(server, ["missing-reader"])["missing-reader"]
    r = boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1",
                     aws_access_key_id=reader_key[0], aws_secret_access_key=reader_key[1],
                     config=Config(retries={"max_attempts": 1}))
    s3.create_bucket(Bucket="hidden")
    s3.put_object(Bucket="hidden", Key="there", Body=b"t")
    get_only = {"Effect": "Allow", "Principal": {"AWS": reader_id}, "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::hidden/*"}
    s3.put_bucket_policy(Bucket="hidden", Policy=json.dumps({"Statement": [get_only]}))
    assert r.get_object(Bucket="hidden", Key="there")["Body"].read() == b"t"
    for call in [lambda: r.head_object(Bucket="hidden", Key="absent"),
                 lambda: r.get_object(Bucket="hidden", Key="absent")]:
        with pytest.raises(ClientError) as e:
            call()
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    # With s3:ListBucket (for that prefix), the key is told missing.
    listing = {"Effect": "Allow", "Principal": {"AWS": reader_id}, "Action": "s3:ListBucket",
               "Resource": "arn:aws:s3:::hidden", "Condition": {"StringLike": {"s3:prefix": "abs*"}}}
    s3.put_bucket_policy(Bucket="hidden", Policy=json.dumps({"Statement": [get_only, listing]}))
    with pytest.raises(ClientError) as e:
        r.head_object(Bucket="hidden", Key="absent")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(ClientError) as e:
        r.get_object(Bucket="hidden", Key="other")
    assert e.value.response["Error"]["Code"] == "AccessDenied"
    # The owner always learns it.
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="hidden", Key="absent")
    assert e.value.response["Error"]["Code"] == "NoSuchKey"


def test_create_bucket_you_own_elsewhere_than_us_east_1_is_409():
    gen = scratch_server(*ROOT_KEY, args=["--region", "eu-west-1"])
    server = next(gen)
    try:
        c = boto3.client("s3", endpoint_url=server.endpoint, region_name="eu-west-1",
                         aws_access_key_id=ROOT_KEY[0], aws_secret_access_key=ROOT_KEY[1],
                         config=Config(retries={"max_attempts": 1}))
        conf = {"LocationConstraint": "eu-west-1"}
        c.create_bucket(Bucket="eu-bucket", CreateBucketConfiguration=conf)
        with pytest.raises(ClientError) as e:
            c.create_bucket(Bucket="eu-bucket", CreateBucketConfiguration=conf)
        assert e.value.response["Error"]["Code"] == "BucketAlreadyOwnedByYou"
        with pytest.raises(ClientError) as e:
            c.create_bucket(Bucket="us-bucket", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
        assert e.value.response["Error"]["Code"] == "IllegalLocationConstraintException"
    finally:
        next(gen, None)
