"""Versioning with real clients: boto3 and the aws CLI for every operation (the state,
versions, delete markers, the null version, permanent deletes, DeleteObjects with versions,
restoring by copy, tags of one version, paginated listings), rclone's `--s3-versions`
listing, and restic backing up /usr/share/doc into a versioned bucket, restoring it byte for
byte, forgetting and pruning, then `restic check`; all across a restart."""

import hashlib
import json
import os
import pathlib
import subprocess
import tempfile

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from hoard_server import rclone_env, scratch_server

ROOT_KEY = ("versioning-root-access", "versioning-root-secret-0123456789")


@pytest.fixture(scope="module")
def server():
    yield from scratch_server(*ROOT_KEY)


@pytest.fixture(scope="module")
def s3(server):
    return boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1",
                        aws_access_key_id=ROOT_KEY[0], aws_secret_access_key=ROOT_KEY[1],
                        config=Config(retries={"max_attempts": 1}))


def error(call):
    with pytest.raises(ClientError) as e:
        call()
    r = e.value.response
    return r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"], r["ResponseMetadata"]["HTTPHeaders"]


def versions(s3, bucket, **kw):
    """Every (key, version ID, latest, delete marker) in listing order, read page by page."""
    out = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, **kw):
        entries = [(v["Key"], v["VersionId"], v["IsLatest"], False, v["LastModified"])
                   for v in page.get("Versions", [])]
        entries += [(m["Key"], m["VersionId"], m["IsLatest"], True, m["LastModified"])
                    for m in page.get("DeleteMarkers", [])]
        # boto3 splits versions and markers; the wire order is key, then newest first.
        entries.sort(key=lambda e: (e[0], not e[2], -e[4].timestamp()))
        out += [e[:4] for e in entries]
    return out


def tree(root):
    """Every entry under `root`: a file's SHA-256, a link's target, or a directory."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = pathlib.Path(dirpath) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                out[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                out[rel] = ("dir",)
            else:
                out[rel] = ("file", hashlib.sha256(path.read_bytes()).hexdigest())
    return out


def test_versions_markers_and_permanent_deletes(server, s3):
    s3.create_bucket(Bucket="ver")
    assert "Status" not in s3.get_bucket_versioning(Bucket="ver")
    # An object from before versioning is the null version.
    s3.put_object(Bucket="ver", Key="doc", Body=b"v0")
    s3.put_bucket_versioning(Bucket="ver", VersioningConfiguration={"Status": "Enabled"})
    assert s3.get_bucket_versioning(Bucket="ver")["Status"] == "Enabled"
    ids = [s3.put_object(Bucket="ver", Key="doc", Body=f"v{i}".encode())["VersionId"]
           for i in (1, 2, 3)]
    assert len(set(ids)) == 3 and "null" not in ids
    assert sorted(ids) == ids, "version IDs sort by age"
    assert s3.get_object(Bucket="ver", Key="doc")["Body"].read() == b"v3"
    for i, vid in enumerate(ids, 1):
        got = s3.get_object(Bucket="ver", Key="doc", VersionId=vid)
        assert got["Body"].read() == f"v{i}".encode() and got["VersionId"] == vid
    assert s3.get_object(Bucket="ver", Key="doc", VersionId="null")["Body"].read() == b"v0"
    assert s3.head_object(Bucket="ver", Key="doc", VersionId=ids[0])["ContentLength"] == 2
    listed = versions(s3, "ver")
    assert listed == [("doc", ids[2], True, False), ("doc", ids[1], False, False),
                      ("doc", ids[0], False, False), ("doc", "null", False, False)]

    # A delete hides the object behind a marker; the data stays.
    d = s3.delete_object(Bucket="ver", Key="doc")
    assert d["DeleteMarker"] is True
    marker = d["VersionId"]
    code, status, headers = error(lambda: s3.get_object(Bucket="ver", Key="doc"))
    assert (code, status) == ("NoSuchKey", 404)
    assert headers["x-amz-delete-marker"] == "true" and headers["x-amz-version-id"] == marker
    code, status, _ = error(lambda: s3.head_object(Bucket="ver", Key="doc", VersionId=marker))
    assert status == 405
    assert s3.list_objects_v2(Bucket="ver").get("KeyCount") == 0
    assert versions(s3, "ver")[0] == ("doc", marker, True, True)
    # Removing the marker brings the object back.
    d = s3.delete_object(Bucket="ver", Key="doc", VersionId=marker)
    assert d["DeleteMarker"] is True and d["VersionId"] == marker
    assert s3.get_object(Bucket="ver", Key="doc")["Body"].read() == b"v3"

    # A permanent delete of the latest version makes the one before it the latest.
    s3.delete_object(Bucket="ver", Key="doc", VersionId=ids[2])
    assert s3.get_object(Bucket="ver", Key="doc")["Body"].read() == b"v2"
    code, status, _ = error(lambda: s3.get_object(Bucket="ver", Key="doc", VersionId=ids[2]))
    assert (code, status) == ("NoSuchVersion", 404)
    code, status, _ = error(lambda: s3.get_object(Bucket="ver", Key="doc", VersionId="not-a-version"))
    assert (code, status) == ("InvalidArgument", 400)

    # Restoring an old version is a copy of it onto its own key: a new latest version.
    restored = s3.copy_object(Bucket="ver", Key="doc", CopySource={"Bucket": "ver", "Key": "doc", "VersionId": ids[0]})
    assert restored["CopySourceVersionId"] == ids[0] and restored["VersionId"] not in ids
    assert s3.get_object(Bucket="ver", Key="doc")["Body"].read() == b"v1"

    # Tags belong to one version.
    put = s3.put_object_tagging(Bucket="ver", Key="doc", VersionId=ids[1],
                                Tagging={"TagSet": [{"Key": "k", "Value": "old"}]})
    assert put["VersionId"] == ids[1]
    got = s3.get_object_tagging(Bucket="ver", Key="doc", VersionId=ids[1])
    assert got["TagSet"] == [{"Key": "k", "Value": "old"}] and got["VersionId"] == ids[1]
    assert s3.get_object_tagging(Bucket="ver", Key="doc")["TagSet"] == []

    # DeleteObjects with and without versions.
    s3.put_object(Bucket="ver", Key="other", Body=b"o")
    result = s3.delete_objects(Bucket="ver", Delete={"Objects": [
        {"Key": "doc", "VersionId": ids[0]}, {"Key": "other"}, {"Key": "doc", "VersionId": "bad id"}]})
    deleted = {(d["Key"], d.get("VersionId")): d for d in result["Deleted"]}
    assert ("doc", ids[0]) in deleted
    assert deleted[("other", None)]["DeleteMarker"] is True
    assert deleted[("other", None)]["DeleteMarkerVersionId"]
    assert [e["Code"] for e in result["Errors"]] == ["InvalidArgument"]
    assert ids[0] not in [v[1] for v in versions(s3, "ver")]

    # A bucket with versions cannot be deleted.
    code, status, _ = error(lambda: s3.delete_bucket(Bucket="ver"))
    assert code == "BucketNotEmpty"

    # Everything survives a restart.
    before = versions(s3, "ver")
    server.stop()
    server.start()
    assert versions(s3, "ver") == before


def test_suspended_writes_replace_the_null_version(s3):
    s3.create_bucket(Bucket="susp")
    s3.put_bucket_versioning(Bucket="susp", VersioningConfiguration={"Status": "Enabled"})
    kept = s3.put_object(Bucket="susp", Key="k", Body=b"kept")["VersionId"]
    s3.put_bucket_versioning(Bucket="susp", VersioningConfiguration={"Status": "Suspended"})
    assert s3.get_bucket_versioning(Bucket="susp")["Status"] == "Suspended"
    # A suspended bucket's writes carry no x-amz-version-id (S3 sends none); they are `null`.
    assert "VersionId" not in s3.put_object(Bucket="susp", Key="k", Body=b"n1")
    assert "VersionId" not in s3.put_object(Bucket="susp", Key="k", Body=b"n2")
    assert versions(s3, "susp") == [("k", "null", True, False), ("k", kept, False, False)]
    d = s3.delete_object(Bucket="susp", Key="k")
    assert d["DeleteMarker"] is True and d["VersionId"] == "null"
    assert versions(s3, "susp") == [("k", "null", True, True), ("k", kept, False, False)]
    # A bucket never returns to unversioned.
    code, status, _ = error(lambda: s3.put_bucket_versioning(
        Bucket="susp", VersioningConfiguration={"Status": "Disabled"}))
    assert status == 400


def test_listing_pages_prefixes_and_the_cli(server, s3):
    s3.create_bucket(Bucket="pages")
    s3.put_bucket_versioning(Bucket="pages", VersioningConfiguration={"Status": "Enabled"})
    expected = []
    for key in ["a/1", "a/2", "b", "c/x/y"]:
        vids = [s3.put_object(Bucket="pages", Key=key, Body=key.encode() * i)["VersionId"]
                for i in (1, 2, 3)]
        expected += [(key, v, i == 0, False) for i, v in enumerate(reversed(vids))]
    assert versions(s3, "pages", PaginationConfig={"PageSize": 2}) == expected
    assert versions(s3, "pages", Prefix="a/", PaginationConfig={"PageSize": 4}) == expected[:6]
    top = s3.list_object_versions(Bucket="pages", Delimiter="/")
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["a/", "c/"]
    assert {v["Key"] for v in top["Versions"]} == {"b"}
    # ListObjectsV2 lists the latest versions only.
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="pages")["Contents"]] == ["a/1", "a/2", "b", "c/x/y"]

    env = dict(os.environ, AWS_ACCESS_KEY_ID=ROOT_KEY[0], AWS_SECRET_ACCESS_KEY=ROOT_KEY[1],
               AWS_DEFAULT_REGION="us-east-1")
    cli = ["aws", "--endpoint-url", server.endpoint, "s3api"]
    subprocess.run(cli + ["put-bucket-versioning", "--bucket", "pages", "--versioning-configuration",
                          "Status=Suspended"], env=env, check=True)
    state = json.loads(subprocess.run(cli + ["get-bucket-versioning", "--bucket", "pages"],
                                      env=env, check=True, capture_output=True, text=True).stdout)
    assert state["Status"] == "Suspended"
    out = json.loads(subprocess.run(cli + ["list-object-versions", "--bucket", "pages", "--prefix", "b"],
                                    env=env, check=True, capture_output=True, text=True).stdout)
    assert [v["VersionId"] for v in out["Versions"]] == [e[1] for e in expected if e[0] == "b"]


def test_rclone_lists_old_versions(server, s3):
    s3.create_bucket(Bucket="rcl")
    s3.put_bucket_versioning(Bucket="rcl", VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket="rcl", Key="notes.txt", Body=b"first draft")
    s3.put_object(Bucket="rcl", Key="notes.txt", Body=b"second, final draft")
    env = rclone_env(server, ROOT_KEY)
    plain = subprocess.run(["rclone", "lsl", "hoard:rcl"], env=env, check=True,
                           capture_output=True, text=True).stdout
    assert [l.split()[-1] for l in plain.splitlines()] == ["notes.txt"]
    listed = subprocess.run(["rclone", "lsl", "--s3-versions", "hoard:rcl"], env=env, check=True,
                            capture_output=True, text=True).stdout
    lines = [l.split() for l in listed.splitlines()]
    # The latest under its name, the old one under a name carrying its date.
    sizes = {l[-1]: int(l[0]) for l in lines}
    assert sizes.pop("notes.txt") == len(b"second, final draft")
    [(old_name, old_size)] = sizes.items()
    assert old_name.startswith("notes-v") and old_name.endswith(".txt") and old_size == len(b"first draft")
    got = subprocess.run(["rclone", "cat", "--s3-versions", f"hoard:rcl/{old_name}"], env=env,
                         check=True, capture_output=True).stdout
    assert got == b"first draft"


def test_restic_backup_restore_and_check(server, s3):
    s3.create_bucket(Bucket="restic")
    s3.put_bucket_versioning(Bucket="restic", VersioningConfiguration={"Status": "Enabled"})
    env = dict(os.environ, AWS_ACCESS_KEY_ID=ROOT_KEY[0], AWS_SECRET_ACCESS_KEY=ROOT_KEY[1],
               RESTIC_REPOSITORY=f"s3:{server.endpoint}/restic", RESTIC_PASSWORD="correct horse",
               RESTIC_CACHE_DIR=tempfile.mkdtemp())

    def restic(*args):
        return subprocess.run(["restic", "--no-cache", *args], env=env, check=True,
                              capture_output=True, text=True).stdout

    source = pathlib.Path("/usr/share/doc")
    restic("init")
    restic("backup", "--quiet", str(source))
    restic("check", "--read-data")
    with tempfile.TemporaryDirectory() as target:
        restic("restore", "latest", "--target", target)
        original = tree(source)
        assert len(original) > 100
        assert tree(pathlib.Path(target) / "usr/share/doc") == original
    # A second snapshot, then forgetting the first and pruning: restic deletes and rewrites
    # objects, which the versioned bucket keeps as noncurrent versions and delete markers.
    extra = pathlib.Path(tempfile.mkdtemp()) / "extra.txt"
    extra.write_text("one more file\n")
    restic("backup", "--quiet", str(source), str(extra))
    restic("forget", "--group-by", "host", "--keep-last", "1", "--prune")
    restic("check")
    listed = versions(s3, "restic")
    assert any(marker for (_, _, _, marker) in listed), "pruning left delete markers"
    snapshots = json.loads(restic("snapshots", "--json"))
    assert len(snapshots) == 1
