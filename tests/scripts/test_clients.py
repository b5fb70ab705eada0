"""Real clients against the real server: the aws CLI (cp of 200 MB, sync of 1,000 files) and
boto3 (default checksums, multipart transfers, SigV2 and SigV4 presigned URLs)."""

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

import boto3
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from hoard_server import ROOT, Server
ACCESS_KEY = "script-access"
SECRET_KEY = "script-secret-0123456789"


def client_env():
    env = dict(os.environ)
    env.update(
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
    )
    env.pop("AWS_CA_BUNDLE", None)
    return env


@pytest.fixture(scope="module")
def endpoint():
    scratch = ROOT / "target" / "test-scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    data = tempfile.mkdtemp(dir=scratch)
    server = Server(data, ACCESS_KEY, SECRET_KEY).start()
    yield server.endpoint
    server.stop()
    shutil.rmtree(data, ignore_errors=True)


def aws(endpoint, *args):
    cmd = [sys.executable, "-m", "awscli", "--endpoint-url", endpoint, *args]
    return subprocess.run(cmd, env=client_env(), check=True, capture_output=True, text=True).stdout


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def boto(endpoint, **config):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
        config=Config(**config),
    )


def test_aws_cli_copies_200_mb_in_and_out(endpoint, tmp_path):
    src = tmp_path / "big.bin"
    with open(src, "wb") as f:
        for _ in range(25):
            f.write(os.urandom(8 * 1000 * 1000))
    aws(endpoint, "s3", "mb", "s3://cli-big")
    aws(endpoint, "s3", "cp", "--only-show-errors", str(src), "s3://cli-big/data/big.bin")
    listing = aws(endpoint, "s3", "ls", "s3://cli-big/data/")
    assert "200000000 big.bin" in listing, listing
    dst = tmp_path / "back.bin"
    aws(endpoint, "s3", "cp", "--only-show-errors", "s3://cli-big/data/big.bin", str(dst))
    assert sha256_of(dst) == sha256_of(src)


def test_aws_cli_syncs_1000_files(endpoint, tmp_path):
    tree = tmp_path / "tree"
    for i in range(1000):
        p = tree / f"d{i % 10}" / f"file-{i:04}.txt"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(f"file {i}\n".encode() * (i % 50 + 1))
    aws(endpoint, "s3", "mb", "s3://cli-sync")
    aws(endpoint, "s3", "sync", "--only-show-errors", str(tree), "s3://cli-sync/tree")
    listing = aws(endpoint, "s3", "ls", "--recursive", "s3://cli-sync/tree/")
    assert len(listing.strip().splitlines()) == 1000
    # A second sync finds nothing to upload.
    assert aws(endpoint, "s3", "sync", str(tree), "s3://cli-sync/tree").strip() == ""
    back = tmp_path / "back"
    aws(endpoint, "s3", "sync", "--only-show-errors", "s3://cli-sync/tree", str(back))
    for p in tree.rglob("*.txt"):
        assert (back / p.relative_to(tree)).read_bytes() == p.read_bytes()


def test_boto3_default_checksums_and_multipart_transfers(endpoint, tmp_path):
    s3 = boto(endpoint)
    s3.create_bucket(Bucket="boto")
    s3.put_object(Bucket="boto", Key="small", Body=b"hello boto3", Metadata={"kind": "small"})
    got = s3.get_object(Bucket="boto", Key="small")
    assert got["Body"].read() == b"hello boto3"
    assert got["Metadata"] == {"kind": "small"}
    src = tmp_path / "mp.bin"
    src.write_bytes(os.urandom(23 * 1024 * 1024 + 17))
    config = TransferConfig(multipart_threshold=8 * 1024 * 1024, multipart_chunksize=8 * 1024 * 1024)
    s3.upload_file(str(src), "boto", "mp.bin", Config=config)
    head = s3.head_object(Bucket="boto", Key="mp.bin")
    assert head["ETag"].endswith('-3"')
    dst = tmp_path / "mp.back"
    s3.download_file("boto", "mp.bin", str(dst), Config=config)
    assert sha256_of(dst) == sha256_of(src)
    with pytest.raises(s3.exceptions.NoSuchKey):
        s3.get_object(Bucket="boto", Key="absent")


def http(method, url, data=None, headers=None):
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.mark.parametrize("signature_version", [None, "s3", "s3v4"])
def test_presigned_urls_through_plain_http(endpoint, signature_version):
    """boto3's default for us-east-1 is SigV2 ('s3'); 's3v4' makes SigV4 query URLs."""
    config = {"signature_version": signature_version} if signature_version else {}
    s3 = boto(endpoint, **config)
    bucket = f"presign-{signature_version or 'default'}"
    s3.create_bucket(Bucket=bucket)
    body = os.urandom(300_000)
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=300)
    if signature_version in (None, "s3"):
        assert "AWSAccessKeyId=" in put_url and "Signature=" in put_url, put_url
    # SigV2 signs the Content-Type: send the same (empty) one the URL was made for.
    status, text = http("PUT", put_url, data=body, headers={"Content-Type": ""})
    assert status == 200, text
    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=300)
    status, got = http("GET", get_url)
    assert status == 200 and got == body
    tampered = get_url.replace("Signature=", "Signature=A").replace("X-Amz-Signature=A", "X-Amz-Signature=0")
    status, text = http("GET", tampered)
    assert status == 403 and b"SignatureDoesNotMatch" in text, text


def test_virtual_host_style_addressing(endpoint, monkeypatch):
    """boto3 addressing `<bucket>.localhost`; only name resolution is patched (this machine does
    not resolve *.localhost), the requests are boto3's own."""
    real_getaddrinfo = socket.getaddrinfo

    def resolve(host, *args, **kwargs):
        if isinstance(host, str) and host.endswith(".localhost"):
            host = "127.0.0.1"
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    port = endpoint.rsplit(":", 1)[1]
    s3 = boto(f"http://localhost:{port}", s3={"addressing_style": "virtual"})
    s3.create_bucket(Bucket="vhost-bucket")
    s3.put_object(Bucket="vhost-bucket", Key="dir/key.txt", Body=b"virtual host")
    assert s3.get_object(Bucket="vhost-bucket", Key="dir/key.txt")["Body"].read() == b"virtual host"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="vhost-bucket")["Contents"]]
    assert keys == ["dir/key.txt"]
    # The same bucket through path style.
    assert boto(endpoint).head_object(Bucket="vhost-bucket", Key="dir/key.txt")["ContentLength"] == 12


def test_boto3_standard_headers_round_trip_on_put_and_multipart(endpoint):
    s3 = boto(endpoint)
    s3.create_bucket(Bucket="std-headers")
    headers = dict(
        CacheControl="max-age=3600, public",
        ContentDisposition='attachment; filename="report.pdf"',
        ContentEncoding="gzip",
        ContentLanguage="fr-CA",
        Expires="Thu, 01 Dec 2033 16:00:00 GMT",
    )
    s3.put_object(Bucket="std-headers", Key="single", Body=b"x" * 10, **headers)
    upload = s3.create_multipart_upload(Bucket="std-headers", Key="multi", **headers)
    part = s3.upload_part(Bucket="std-headers", Key="multi", UploadId=upload["UploadId"], PartNumber=1, Body=b"y" * 10)
    s3.complete_multipart_upload(
        Bucket="std-headers",
        Key="multi",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    for key in ("single", "multi"):
        for got in (s3.head_object(Bucket="std-headers", Key=key), s3.get_object(Bucket="std-headers", Key=key)):
            raw = got["ResponseMetadata"]["HTTPHeaders"]
            assert got["CacheControl"] == headers["CacheControl"], raw
            assert got["ContentDisposition"] == headers["ContentDisposition"], raw
            assert got["ContentEncoding"] == "gzip", raw
            assert got["ContentLanguage"] == "fr-CA", raw
            assert raw["expires"] == headers["Expires"], raw
    # response-* overrides still win over what is stored.
    got = s3.get_object(Bucket="std-headers", Key="single", ResponseCacheControl="no-store")
    assert got["CacheControl"] == "no-store"


@pytest.mark.parametrize(
    "algorithm,checksum_type",
    [("CRC32", "COMPOSITE"), ("CRC32", "FULL_OBJECT"), ("SHA1", "COMPOSITE"), ("SHA256", "COMPOSITE")],
)
def test_boto3_multipart_with_flexible_checksums(endpoint, algorithm, checksum_type):
    """boto3 sends each part's checksum in CompleteMultipartUpload; the object gets the composite
    (or full-object) checksum, returned by Complete and by HEAD with checksum mode."""
    import base64
    import zlib

    s3 = boto(endpoint)
    bucket = f"mpu-{algorithm.lower()}-{checksum_type.lower().replace('_', '-')}"
    s3.create_bucket(Bucket=bucket)
    upload = s3.create_multipart_upload(
        Bucket=bucket, Key="k", ChecksumAlgorithm=algorithm, ChecksumType=checksum_type
    )
    bodies = [os.urandom(5 * 1024 * 1024), os.urandom(1000)]
    parts = []
    for i, body in enumerate(bodies, start=1):
        r = s3.upload_part(
            Bucket=bucket, Key="k", UploadId=upload["UploadId"], PartNumber=i, Body=body, ChecksumAlgorithm=algorithm
        )
        parts.append({"PartNumber": i, "ETag": r["ETag"], f"Checksum{algorithm}": r[f"Checksum{algorithm}"]})
    done = s3.complete_multipart_upload(
        Bucket=bucket, Key="k", UploadId=upload["UploadId"], MultipartUpload={"Parts": parts}
    )
    raw = [base64.b64decode(p[f"Checksum{algorithm}"]) for p in parts]
    if checksum_type == "FULL_OBJECT":
        whole = zlib.crc32(b"".join(bodies)).to_bytes(4, "big")
        expected = base64.b64encode(whole).decode()
    else:
        h = {"CRC32": None, "SHA1": hashlib.sha1, "SHA256": hashlib.sha256}[algorithm]
        digest = zlib.crc32(b"".join(raw)).to_bytes(4, "big") if h is None else h(b"".join(raw)).digest()
        expected = f"{base64.b64encode(digest).decode()}-2"
    assert done[f"Checksum{algorithm}"] == expected, done
    assert done["ChecksumType"] == checksum_type
    head = s3.head_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert head[f"Checksum{algorithm}"] == expected
    assert head["ChecksumType"] == checksum_type
    # A part checksum that does not match what was uploaded is refused.
    upload = s3.create_multipart_upload(Bucket=bucket, Key="k2", ChecksumAlgorithm=algorithm)
    r = s3.upload_part(Bucket=bucket, Key="k2", UploadId=upload["UploadId"], PartNumber=1, Body=b"z", ChecksumAlgorithm=algorithm)
    wrong = parts[0][f"Checksum{algorithm}"]
    with pytest.raises(s3.exceptions.ClientError, match="InvalidPart"):
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key="k2",
            UploadId=upload["UploadId"],
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": r["ETag"], f"Checksum{algorithm}": wrong}]},
        )


def test_s3cmd_signature_v2(endpoint, tmp_path):
    """s3cmd --signature-v2 sends `x-amz-date` in RFC 2822 form with a numeric zone."""
    host = endpoint.removeprefix("http://")
    cfg = tmp_path / "s3cfg"
    cfg.write_text(
        "[default]\n"
        f"access_key = {ACCESS_KEY}\nsecret_key = {SECRET_KEY}\n"
        f"host_base = {host}\nhost_bucket = {host}\n"
        "use_https = False\nsignature_v2 = True\n"
    )

    def s3cmd(*args):
        out = subprocess.run(
            ["s3cmd", "-c", str(cfg), *args],
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout

    src = tmp_path / "v2.txt"
    src.write_bytes(b"signed the old way\n" * 100)
    s3cmd("mb", "s3://sigv2")
    s3cmd("put", str(src), "s3://sigv2/dir/v2.txt")
    assert "s3://sigv2/dir/v2.txt" in s3cmd("ls", "-r", "s3://sigv2")
    back = tmp_path / "back.txt"
    s3cmd("get", "s3://sigv2/dir/v2.txt", str(back))
    assert back.read_bytes() == src.read_bytes()
    s3cmd("del", "s3://sigv2/dir/v2.txt")
    assert s3cmd("ls", "-r", "s3://sigv2").strip() == ""


def sigv2_signature(method, path, headers, expires=None):
    """A SigV2 signature as the S3 Developer Guide defines it ("Signing and Authenticating REST
    Requests"), computed here so a captured one can be replayed."""
    import base64
    import hmac

    amz = sorted((k.lower(), v.strip()) for k, v in headers.items() if k.lower().startswith("x-amz-"))
    if expires is not None:
        date_line = str(expires)
    elif any(k == "x-amz-date" for k, _ in amz):
        date_line = ""
    else:
        date_line = headers.get("Date", "")
    to_sign = (
        f"{method}\n{headers.get('Content-MD5', '')}\n{headers.get('Content-Type', '')}\n{date_line}\n"
        + "".join(f"{k}:{v}\n" for k, v in amz)
        + path
    )
    return base64.b64encode(hmac.new(SECRET_KEY.encode(), to_sign.encode(), hashlib.sha1).digest()).decode()


def test_a_sigv2_header_signature_cannot_be_replayed_as_a_presigned_url(endpoint):
    import email.utils
    import time
    import urllib.parse

    s3 = boto(endpoint)
    s3.create_bucket(Bucket="replay")
    s3.put_object(Bucket="replay", Key="victim", Body=b"precious")
    # A legitimate SigV2 header-signed DELETE, as s3cmd sends it (x-amz-date, RFC 2822).
    headers = {"x-amz-date": email.utils.formatdate(usegmt=False)}
    signature = sigv2_signature("DELETE", "/replay/victim", headers)
    status, text = http(
        "DELETE", f"{endpoint}/replay/victim", headers={**headers, "Authorization": f"AWS {ACCESS_KEY}:{signature}"}
    )
    assert status == 204, text
    s3.put_object(Bucket="replay", Key="victim", Body=b"precious again")
    # The captured signature replayed as a presigned URL, with and without the x-amz-date header.
    for expires in (int(time.time()) + 60, 9999999999):
        query = urllib.parse.urlencode({"AWSAccessKeyId": ACCESS_KEY, "Expires": expires, "Signature": signature})
        for replay_headers in (headers, {}):
            status, text = http("DELETE", f"{endpoint}/replay/victim?{query}", headers=replay_headers)
            assert status in (400, 403), (status, text)
            assert b"SignatureDoesNotMatch" in text or b"AuthorizationQueryParametersError" in text, text
    assert s3.get_object(Bucket="replay", Key="victim")["Body"].read() == b"precious again"
    # A header signature without any date is AccessDenied.
    status, text = http(
        "GET", f"{endpoint}/replay/victim", headers={"Authorization": f"AWS {ACCESS_KEY}:{sigv2_signature('GET', '/replay/victim', {})}"}
    )
    assert status == 403 and b"<Code>AccessDenied</Code>" in text, text
