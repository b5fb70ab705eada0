"""Lifecycle with a shortened clock (a lifecycle day of 2 s, a pass every second): objects and
incomplete multipart uploads disappear when due and not before, filters by prefix, tag and
size hold, x-amz-expiration names the date and rule, and the space comes back."""

import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from hoard_server import admin, scratch_server

ROOT_KEY = ("lifecycle-root-access", "lifecycle-root-secret-0123456789")
DAY_S = 2


@pytest.fixture(scope="module")
def server():
    yield from scratch_server(*ROOT_KEY, args=["--lifecycle-day-seconds", str(DAY_S),
                                               "--lifecycle-interval-seconds", "1"])


def test_rules_expire_objects_and_uploads_when_due(server):
    s3 = boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1",
                      aws_access_key_id=ROOT_KEY[0], aws_secret_access_key=ROOT_KEY[1],
                      config=Config(retries={"max_attempts": 1}))
    s3.create_bucket(Bucket="lcy")
    with pytest.raises(ClientError) as e:
        s3.get_bucket_lifecycle_configuration(Bucket="lcy")
    assert e.value.response["Error"]["Code"] == "NoSuchLifecycleConfiguration"
    rules = [
        {"ID": "logs-after-3-days", "Status": "Enabled", "Filter": {"Prefix": "logs/"},
         "Expiration": {"Days": 3}},
        {"ID": "temp-tagged", "Status": "Enabled",
         "Filter": {"And": {"Prefix": "data/", "Tags": [{"Key": "temp", "Value": "yes"}],
                            "ObjectSizeGreaterThan": 100}},
         "Expiration": {"Days": 1}},
        {"ID": "uploads", "Status": "Enabled", "Filter": {"Prefix": ""},
         "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}},
        {"ID": "off", "Status": "Disabled", "Filter": {"Prefix": "keep/"}, "Expiration": {"Days": 1}},
    ]
    s3.put_bucket_lifecycle_configuration(Bucket="lcy", LifecycleConfiguration={"Rules": rules})
    got = s3.get_bucket_lifecycle_configuration(Bucket="lcy")["Rules"]
    assert [r["ID"] for r in got] == [r["ID"] for r in rules]
    assert got[1]["Filter"]["And"]["Tags"] == [{"Key": "temp", "Value": "yes"}]

    start = time.time()
    big = b"x" * 300_000
    s3.put_object(Bucket="lcy", Key="logs/a.log", Body=big)
    s3.put_object(Bucket="lcy", Key="data/temp.bin", Body=big, Tagging="temp=yes")
    s3.put_object(Bucket="lcy", Key="data/small.bin", Body=b"tiny", Tagging="temp=yes")
    s3.put_object(Bucket="lcy", Key="data/kept.bin", Body=big)
    s3.put_object(Bucket="lcy", Key="keep/k", Body=b"k")
    upload = s3.create_multipart_upload(Bucket="lcy", Key="data/partial")["UploadId"]
    s3.upload_part(Bucket="lcy", Key="data/partial", UploadId=upload, PartNumber=1, Body=big)
    # x-amz-expiration names the rule and the date.
    head = s3.head_object(Bucket="lcy", Key="logs/a.log")
    assert 'rule-id="logs-after-3-days"' in head["ResponseMetadata"]["HTTPHeaders"]["x-amz-expiration"]
    assert "x-amz-expiration" not in s3.head_object(Bucket="lcy", Key="keep/k")["ResponseMetadata"]["HTTPHeaders"]
    live_before = int(admin(server, "metrics", parse=False).split('hoard_space_bytes{use="live"} ')[1].split()[0])

    def keys():
        return {o["Key"] for o in s3.list_objects_v2(Bucket="lcy").get("Contents", [])}

    def expiry(key):
        h = s3.head_object(Bucket="lcy", Key=key)["ResponseMetadata"]["HTTPHeaders"]
        if "x-amz-expiration" not in h:
            return None
        from email.utils import parsedate_to_datetime
        date = h["x-amz-expiration"].split('expiry-date="')[1].split('"')[0]
        return parsedate_to_datetime(date).timestamp()

    due = {k: expiry(k) for k in keys()}
    assert due["data/temp.bin"] is not None and due["logs/a.log"] is not None
    assert due["data/small.bin"] is None and due["data/kept.bin"] is None and due["keep/k"] is None
    assert due["data/temp.bin"] < due["logs/a.log"]
    # Every object stays until its expiry date, and is gone at most a pass (1 s) and some
    # slack after it; the others stay.
    deadline = max(d for d in due.values() if d) + 4
    while time.time() < deadline:
        now, present = time.time(), keys()
        for key, at in due.items():
            if at is None or now < at - 0.5:
                assert key in present, (key, at, now)
            elif now > at + 3:
                assert key not in present, (key, at, now)
        time.sleep(0.2)
    assert keys() == {"data/small.bin", "data/kept.bin", "keep/k"}
    assert s3.list_multipart_uploads(Bucket="lcy").get("Uploads", []) == []
    status = admin(server, "status", parse=False)
    assert "<ObjectsExpired>2</ObjectsExpired>" in status and "<UploadsAborted>1</UploadsAborted>" in status
    # Their space comes back (needles dead; garbage collection frees them).
    live_after = int(admin(server, "metrics", parse=False).split('hoard_space_bytes{use="live"} ')[1].split()[0])
    assert live_after < live_before
    s3.delete_bucket_lifecycle(Bucket="lcy")
    with pytest.raises(ClientError):
        s3.get_bucket_lifecycle_configuration(Bucket="lcy")


def test_bad_lifecycle_configurations_are_refused(server):
    s3 = boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1",
                      aws_access_key_id=ROOT_KEY[0], aws_secret_access_key=ROOT_KEY[1],
                      config=Config(retries={"max_attempts": 1}))
    s3.create_bucket(Bucket="lc-bad")
    for rules, code in [
        ([{"ID": "x", "Status": "Enabled", "Filter": {"Prefix": ""}}], "InvalidArgument"),
        ([{"ID": "x", "Status": "Enabled", "Filter": {"Prefix": ""}, "Expiration": {"Days": 0}}],
         "InvalidArgument"),
        ([{"ID": "x", "Status": "Enabled", "Filter": {"Prefix": ""}, "Expiration": {"Days": 1}},
          {"ID": "x", "Status": "Enabled", "Filter": {"Prefix": ""}, "Expiration": {"Days": 2}}],
         "InvalidArgument"),
        ([{"ID": "x", "Status": "Enabled", "Filter": {"Prefix": ""},
           "Transitions": [{"Days": 1, "StorageClass": "GLACIER"}]}], "InvalidArgument"),
    ]:
        with pytest.raises(ClientError) as e:
            s3.put_bucket_lifecycle_configuration(Bucket="lc-bad", LifecycleConfiguration={"Rules": rules})
        assert e.value.response["Error"]["Code"] == code, rules


def test_noncurrent_versions_and_lone_delete_markers_expire_when_due(server):
    s3 = boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1",
                      aws_access_key_id=ROOT_KEY[0], aws_secret_access_key=ROOT_KEY[1],
                      config=Config(retries={"max_attempts": 1}))
    s3.create_bucket(Bucket="lc-ver")
    s3.put_bucket_versioning(Bucket="lc-ver", VersioningConfiguration={"Status": "Enabled"})
    rules = [{"ID": "old-versions", "Status": "Enabled", "Filter": {"Prefix": "doc"},
              "NoncurrentVersionExpiration": {"NoncurrentDays": 2, "NewerNoncurrentVersions": 1}},
             {"ID": "deleted", "Status": "Enabled", "Filter": {"Prefix": "gone"},
              "NoncurrentVersionExpiration": {"NoncurrentDays": 2},
              "Expiration": {"ExpiredObjectDeleteMarker": True}}]
    s3.put_bucket_lifecycle_configuration(Bucket="lc-ver", LifecycleConfiguration={"Rules": rules})
    got = s3.get_bucket_lifecycle_configuration(Bucket="lc-ver")["Rules"][0]
    assert s3.get_bucket_lifecycle_configuration(Bucket="lc-ver")["Rules"][1]["Expiration"] == {"ExpiredObjectDeleteMarker": True}
    assert got["NoncurrentVersionExpiration"] == {"NoncurrentDays": 2, "NewerNoncurrentVersions": 1}
    body = b"v" * 300_000
    live = lambda: int(admin(server, "metrics", parse=False).split('hoard_space_bytes{use="live"} ')[1].split()[0])
    live_before = live()
    ids = [s3.put_object(Bucket="lc-ver", Key="doc", Body=body)["VersionId"]]
    per_version = live() - live_before
    assert per_version > len(body), "one version's needles (with its parity) are live"
    ids += [s3.put_object(Bucket="lc-ver", Key="doc", Body=body)["VersionId"] for _ in range(2)]
    gone = s3.put_object(Bucket="lc-ver", Key="gone", Body=body)["VersionId"]
    marker = s3.delete_object(Bucket="lc-ver", Key="gone")["VersionId"]
    became_noncurrent = time.time()

    def listed():
        page = s3.list_object_versions(Bucket="lc-ver")
        return ({(v["Key"], v["VersionId"]) for v in page.get("Versions", [])},
                {(m["Key"], m["VersionId"]) for m in page.get("DeleteMarkers", [])})

    # Noncurrent for 2 lifecycle days (4 s), rounded up to a lifecycle midnight, plus a pass.
    assert listed() == ({("doc", i) for i in ids} | {("gone", gone)}, {("gone", marker)})
    deadline = became_noncurrent + 2 * DAY_S + DAY_S + 4
    while time.time() < deadline:
        versions, markers = listed()
        if time.time() < became_noncurrent + 2 * DAY_S - 0.5:
            assert len(versions) == 4 and markers, "nothing goes before it is due"
        if versions == {("doc", ids[2]), ("doc", ids[1])} and not markers:
            break
        time.sleep(0.2)
    # Of doc's, the newest noncurrent version is kept (NewerNoncurrentVersions: 1) and the
    # older one went; the deleted key's data went, then its delete marker, alone, too.
    assert listed() == ({("doc", ids[2]), ("doc", ids[1])}, set())
    assert "<VersionsExpired>3</VersionsExpired>" in admin(server, "status", parse=False)
    assert s3.get_object(Bucket="lc-ver", Key="doc")["Body"].read() == body
    # Two versions' needles are live, not four: the expired versions' are dead.
    assert live() - live_before == 2 * per_version
