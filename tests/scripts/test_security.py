"""The front door, probed as an attacker would (issue 19): raw requests that combine
sub-resources, replayed SigV2 signatures with parameters of the replayer's choosing, anonymous
callers spending a tenant's QoS budget, a second server on a live store. Each test reproduces
a finding against the build before its fix and passes after it."""

import base64
import email.utils
import hashlib
import hmac
import http.client
import os
import re
import stat
import subprocess
import time

import boto3
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from hoard_server import HOARD, admin, free_port, make_tenants, scratch_server

ROOT_KEY = ("security-root-access", "security-root-secret-0123456789")


@pytest.fixture(scope="module")
def server():
    yield from scratch_server(*ROOT_KEY)


@pytest.fixture(scope="module")
def tenants(server):
    """Two accounts, `owner` and `other`, one user and key each."""
    return make_tenants(server, ("owner", "other"))


def s3(server, key, **config):
    return boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1",
                        aws_access_key_id=key[0], aws_secret_access_key=key[1],
                        config=Config(retries={"max_attempts": 1}, **config))


def code(call):
    with pytest.raises(ClientError) as e:
        call()
    return e.value.response["Error"]["Code"]


def block_all_public_access(client, bucket):
    client.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True})


def raw(server, method, target, headers=None, body=b""):
    """One request on its own connection, exactly as given: (status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request(method, target, body=body, headers=headers or {})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, data


def sigv4(server, key, method, target, body=b""):
    """`target` signed with SigV4 in the Authorization header, then sent as is."""
    url = server.endpoint + target
    req = AWSRequest(method=method, url=url, data=body)
    S3SigV4Auth(Credentials(*key), "s3", "us-east-1").add_auth(req)
    return raw(server, method, target, dict(req.headers.items()), body)


def sigv2_headers(key, method, resource, date=None):
    """A SigV2 `Authorization` header over `resource` (path plus the sub-resources SigV2
    signs), as legacy clients compute it."""
    date = date or email.utils.formatdate(usegmt=True)
    to_sign = f"{method}\n\n\n{date}\n{resource}"
    sig = base64.b64encode(hmac.new(key[1].encode(), to_sign.encode(), hashlib.sha1).digest())
    return {"Date": date, "Authorization": f"AWS {key[0]}:{sig.decode()}"}


def test_a_second_sub_resource_never_reroutes_a_multipart_request(server, tenants):
    """Finding 1: `?acl` (or `?tagging`, `?attributes`) on UploadPart or ListParts was
    authorized as the ACL operation and run as the multipart one: an anonymous client
    replaced parts of the owner's upload in a public-read bucket."""
    _, owner_key = tenants["owner"]
    _, other_key = tenants["other"]
    owner, other = s3(server, owner_key), s3(server, other_key)
    owner.create_bucket(Bucket="mp-public", ACL="public-read")
    upload = owner.create_multipart_upload(Bucket="mp-public", Key="big")["UploadId"]
    part = b"owner's bytes " * 400_000  # 5.6 MB: a part that may be followed by another
    etag = owner.upload_part(Bucket="mp-public", Key="big", UploadId=upload, PartNumber=1,
                             Body=part)["ETag"]
    base = f"/mp-public/big?uploadId={upload}"
    for sub in ("acl", "tagging", "attributes"):
        status, body = raw(server, "PUT", f"{base}&{sub}&partNumber=1", body=b"attacker")
        assert status == 400 and b"InvalidRequest" in body, (sub, status, body)
        status, body = raw(server, "GET", f"{base}&{sub}")
        assert status == 400 and b"InvalidRequest" in body, (sub, status, body)
    # Without the extra sub-resource, the multipart operations refuse an anonymous caller
    # (READ on the bucket grants neither UploadPart nor ListParts).
    assert raw(server, "PUT", f"{base}&partNumber=2", body=b"attacker")[0] == 403
    assert raw(server, "GET", base)[0] == 403
    # Another account cannot copy its own bytes into the owner's upload.
    other.create_bucket(Bucket="mp-attacker")
    other.put_object(Bucket="mp-attacker", Key="evil", Body=b"evil" * 1000)
    assert code(lambda: other.upload_part_copy(
        Bucket="mp-public", Key="big", UploadId=upload, PartNumber=1,
        CopySource={"Bucket": "mp-attacker", "Key": "evil"})) == "AccessDenied"
    # The owner's upload holds exactly the owner's part, and completes to the owner's bytes.
    parts = owner.list_parts(Bucket="mp-public", Key="big", UploadId=upload)["Parts"]
    assert [(p["PartNumber"], p["ETag"]) for p in parts] == [(1, etag)]
    owner.complete_multipart_upload(Bucket="mp-public", Key="big", UploadId=upload,
                                    MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    assert owner.get_object(Bucket="mp-public", Key="big")["Body"].read() == part


def test_an_acl_grantee_reaches_only_the_acl(server, tenants):
    """Medium finding: a READ_ACP/WRITE_ACP grantee read and set lifecycle, CORS and tags
    with `?acl&lifecycle`, `?acl&cors`, `?acl&tagging`."""
    _, owner_key = tenants["owner"]
    other_id, other_key = tenants["other"]
    owner = s3(server, owner_key)
    owner.create_bucket(Bucket="acp-granted")
    owner.put_bucket_acl(Bucket="acp-granted", GrantReadACP=f'id="{other_id}"',
                         GrantWriteACP=f'id="{other_id}"', GrantFullControl=f'id="{tenants["owner"][0]}"')
    expire_all = (b'<LifecycleConfiguration><Rule><ID>x</ID><Filter><Prefix></Prefix></Filter>'
                  b'<Status>Enabled</Status><Expiration><Days>1</Days></Expiration></Rule>'
                  b'</LifecycleConfiguration>')
    for sub, body in (("lifecycle", expire_all), ("cors", b"<CORSConfiguration/>"),
                      ("tagging", b"<Tagging><TagSet/></Tagging>")):
        status, answer = sigv4(server, other_key, "PUT", f"/acp-granted?acl&{sub}", body)
        assert status == 400 and b"InvalidRequest" in answer, (sub, status, answer)
        status, answer = sigv4(server, other_key, "GET", f"/acp-granted?acl&{sub}")
        assert status == 400 and b"InvalidRequest" in answer, (sub, status, answer)
    assert code(lambda: owner.get_bucket_lifecycle_configuration(Bucket="acp-granted")) == \
        "NoSuchLifecycleConfiguration"
    # The grant itself still works: the grantee reads the ACL.
    status, answer = sigv4(server, other_key, "GET", "/acp-granted?acl")
    assert status == 200 and other_id.encode() in answer


def test_sigv2_signatures_cannot_be_replayed_with_chosen_parameters(server, tenants):
    """Finding 5: SigV2 signs only S3's sub-resources, so a signature seen once was replayed
    with Hoard's own parameters added: an admin created, a public access block deleted."""
    _, owner_key = tenants["owner"]
    owner = s3(server, owner_key)
    owner.create_bucket(Bucket="v2-replay")
    owner.put_object(Bucket="v2-replay", Key="k", Body=b"x")
    block_all_public_access(owner, "v2-replay")

    # A DeleteBucket the owner signed fails (the bucket is not empty); replayed with
    # ?publicAccessBlock it must not become DeletePublicAccessBlock.
    h = sigv2_headers(owner_key, "DELETE", "/v2-replay")
    status, body = raw(server, "DELETE", "/v2-replay", h)
    assert status == 409 and b"BucketNotEmpty" in body
    status, body = raw(server, "DELETE", "/v2-replay?publicAccessBlock", h)
    assert status == 403 and b"publicAccessBlock" in body, (status, body)
    block = owner.get_public_access_block(Bucket="v2-replay")["PublicAccessBlockConfiguration"]
    assert block["BlockPublicAcls"] and block["RestrictPublicBuckets"]

    # Admin requests take no SigV2 at all, so no replay can add ?name=...&admin=true.
    h = sigv2_headers(ROOT_KEY, "GET", "/_hoard/status")
    status, body = raw(server, "GET", "/_hoard/status", h)
    assert status == 403 and b"SigV4" in body, (status, body)
    before = admin(server, "accounts")
    h = sigv2_headers(ROOT_KEY, "POST", "/_hoard/accounts")
    status, _ = raw(server, "POST", "/_hoard/accounts?name=evil", h)
    assert status == 403
    assert admin(server, "accounts") == before

    # SigV2 keeps working for what it signs: reads, writes and listings with their
    # unsigned paging parameters (boto3's legacy "s3" signer).
    v2 = s3(server, owner_key, signature_version="s3")
    v2.put_object(Bucket="v2-replay", Key="dir/a", Body=b"a")
    assert v2.get_object(Bucket="v2-replay", Key="dir/a")["Body"].read() == b"a"
    listed = v2.list_objects(Bucket="v2-replay", Prefix="dir/", MaxKeys=10)["Contents"]
    assert [o["Key"] for o in listed] == ["dir/a"]
    assert code(lambda: v2.get_object_attributes(
        Bucket="v2-replay", Key="dir/a", ObjectAttributes=["ETag"])) == "AccessDenied"

    # A SigV2 presigned URL of a temporary credential carries its token in the query,
    # signed among the x-amz-* (it always failed before); without the token it is refused.
    owner_id = tenants["owner"][0]
    temp = admin(server, "temporary", owner_id, "u", "--seconds", "600")
    temp_v2 = boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1",
                           aws_access_key_id=temp["access_key"],
                           aws_secret_access_key=temp["secret_key"],
                           aws_session_token=temp["session_token"],
                           config=Config(signature_version="s3"))
    url = temp_v2.generate_presigned_url("get_object", Params={"Bucket": "v2-replay", "Key": "dir/a"})
    assert "x-amz-security-token=" in url
    target = url[len(server.endpoint):]
    assert raw(server, "GET", target) == (200, b"a")
    stripped = re.sub(r"&?x-amz-security-token=[^&]*", "", target)
    assert raw(server, "GET", stripped)[0] in (400, 403)


def test_anonymous_callers_spend_no_tenant_budget(server, tenants):
    """Finding 4: anonymous requests, refused or not, were charged to the bucket owner's
    rate limit; they draw on a share of their own (`anonymous`)."""
    owner_id, owner_key = tenants["owner"]
    owner = s3(server, owner_key)
    owner.create_bucket(Bucket="qos-anon")
    owner.put_object(Bucket="qos-anon", Key="private", Body=b"mine")
    admin(server, "set-limits", "account", owner_id, "--requests-per-s", "5", parse=False)
    try:
        time.sleep(1.2)  # the owner's bucket of tokens is full
        for _ in range(40):
            assert raw(server, "GET", "/qos-anon/private")[0] == 403
        # The owner's full second of tokens is still there.
        for _ in range(5):
            owner.head_object(Bucket="qos-anon", Key="private")
        # Anonymous callers' own share is limited like an account's.
        admin(server, "set-limits", "account", "anonymous", "--requests-per-s", "2", parse=False)
        statuses = [raw(server, "GET", "/qos-anon/private")[0] for _ in range(10)]
        assert 503 in statuses and 403 in statuses, statuses
    finally:
        admin(server, "clear-limits", "account", owner_id, parse=False)
        admin(server, "clear-limits", "account", "anonymous", parse=False)


def test_a_second_server_on_a_live_store_is_refused(server, tenants):
    """Finding 6: nothing locked the store; two servers on one data directory lost
    acknowledged writes. The second start is refused before it reads anything, naming the
    holder's PID; the store's files are private to its user."""
    _, owner_key = tenants["owner"]
    owner = s3(server, owner_key)
    owner.create_bucket(Bucket="locked")
    for i in range(5):
        owner.put_object(Bucket="locked", Key=f"k{i}", Body=b"v%d" % i)
    env = dict(os.environ, HOARD_ACCESS_KEY=ROOT_KEY[0], HOARD_SECRET_KEY=ROOT_KEY[1])
    second = subprocess.run(
        [HOARD, "serve", "--data", str(server.data), "--listen", f"127.0.0.1:{free_port()}"],
        env=env, capture_output=True, text=True, timeout=60)
    assert second.returncode != 0
    assert f"in use by process {server.proc.pid}" in second.stderr, second.stderr
    for i in range(5):
        assert owner.get_object(Bucket="locked", Key=f"k{i}")["Body"].read() == b"v%d" % i
    assert stat.S_IMODE(os.stat(server.data).st_mode) == 0o700
    files = [f for f in os.listdir(server.data) if f.endswith(".img")]
    assert files, os.listdir(server.data)
    for f in files:
        assert stat.S_IMODE(os.stat(os.path.join(server.data, f)).st_mode) == 0o600, f


# --- Fair shares and the minimum rate (findings 2 and 3) --------------------------------------

IDLE_S = 3  # the DoS server's idle timeout: its grace before the minimum rate applies


@pytest.fixture(scope="module")
def dos_server(tmp_path_factory):
    """A server whose idle timeout is 3 s (the dev profile's otherwise), so cuts come fast."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(root, "hwprofiles", "dev.toml")) as f:
        text = f.read()
    profile = tmp_path_factory.mktemp("profile") / "dev-short-idle.toml"
    profile.write_text(text + f"\n[engine]\nrequest_idle_timeout_s = {IDLE_S}\n")
    yield from scratch_server(*ROOT_KEY, args=["--profile", str(profile)])


def trickle(server, head, count):
    """`count` connections that send `head` (a request line and headers promising a body)
    and then one body byte: slowloris clients. Returns the sockets."""
    import socket
    socks = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", server.port))
        s.sendall(head + b"x")
        socks.append(s)
    return socks


def answers(socks, timeout_s):
    """The status each trickling connection got (None: still held open)."""
    import select
    out = []
    deadline = time.time() + timeout_s
    for s in socks:
        s.settimeout(max(0.01, deadline - time.time()))
        try:
            line = s.recv(4096).split(b"\r\n", 1)[0]
            out.append(int(line.split()[1]) if line else 0)
        except (TimeoutError, OSError):
            out.append(None)
    return out


def test_anonymous_slowloris_posts_leave_every_tenant_served(dos_server):
    """Finding 2: 256 anonymous POST form uploads sending a byte now and then held every
    request permit; every other request answered 503. Anonymous callers together hold at
    most a quarter of the permits; the rest are refused at once; and each held one is cut
    by the minimum rate once its grace has passed."""
    server = dos_server
    owner = s3(server, ROOT_KEY)
    owner.create_bucket(Bucket="dos-forms")
    head = (b"POST /dos-forms HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: multipart/form-data; boundary=zz\r\nContent-Length: 100000\r\n\r\n")
    socks = trickle(server, head, 96)
    try:
        time.sleep(0.5)
        # Everyone else is served while they hold what they hold.
        owner.put_object(Bucket="dos-forms", Key="k", Body=b"v" * 65536)
        assert owner.get_object(Bucket="dos-forms", Key="k")["Body"].read() == b"v" * 65536
        owner.head_bucket(Bucket="dos-forms")
        owner.list_objects_v2(Bucket="dos-forms")
        assert admin(server, "status", parse=False)
        got = answers(socks, 0.5)
        refused = [g for g in got if g == 503]
        held = [g for g in got if g is None]
        assert len(held) == 256 // 4 and len(refused) == 96 - 64, got
        # Past the grace, the held ones fall below the minimum rate and are cut.
        got = answers([s for s, g in zip(socks, got) if g is None], IDLE_S + 5)
        assert all(g == 400 for g in got), got
    finally:
        for s in socks:
            s.close()


def test_one_slow_tenant_takes_only_its_share_of_data_streams(dos_server):
    """Finding 3: 16 signed PUTs sending a byte per 10 s took every data stream; another
    account's GET and PUT of 64 KiB answered 503. Streams are counted in the chunk buffers
    they may hold (16 streams x 4 on the dev profile; a body of one chunk or less holds one):
    an account holds at most half of them (8 large bodies, or 32 small ones), the last
    quarter goes only to accounts holding little, another account is still served, and the
    slow PUTs are cut with RequestTimeout."""
    server = dos_server

    def slow_tenant(name, bucket, length):
        account = admin(server, "create-account", name)["id"]
        admin(server, "create-user", account, "u")
        k = admin(server, "create-key", account, "u")
        key = (k["access_key"], k["secret_key"])
        s3(server, key).create_bucket(Bucket=bucket)
        req = AWSRequest(method="PUT", url=f"{server.endpoint}/{bucket}/big", data=b"s" * length)
        S3SigV4Auth(Credentials(*key), "s3", "us-east-1").add_auth(req)
        return (f"PUT /{bucket}/big HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n".encode()
                + b"".join(f"{n}: {v}\r\n".encode() for n, v in req.headers.items())
                + f"Content-Length: {length}\r\n\r\n".encode())

    large = slow_tenant("slow", "dos-slow", 8 << 20)
    small = slow_tenant("slow-small", "dos-slow-small", 100_000)
    owner = s3(server, ROOT_KEY)
    owner.create_bucket(Bucket="dos-other")
    owner.put_object(Bucket="dos-other", Key="read-me", Body=b"r" * 65536)
    large_socks = trickle(server, large, 16)
    time.sleep(0.5)
    small_socks = trickle(server, small, 24)
    try:
        time.sleep(0.5)
        for i in range(4):
            owner.put_object(Bucket="dos-other", Key=f"w{i}", Body=b"w" * (4 << 20))
            assert owner.get_object(Bucket="dos-other", Key="read-me")["Body"].read() == b"r" * 65536
        got = answers(large_socks + small_socks, IDLE_S + 6)
        got_large, got_small = got[:16], got[16:]
        # 8 large bodies (4 buffers each) are half of the 64 buffers; the rest waited 2 s
        # and were refused. The small tenant took 16 more, down to the reserve of 16 that
        # only accounts holding at most 4 may use. Every held one was cut once below the
        # minimum rate.
        assert got_large.count(503) == 8 and got_large.count(400) == 8, got_large
        assert got_small.count(503) == 8 and got_small.count(400) == 16, got_small
    finally:
        for s in large_socks + small_socks:
            s.close()


def test_an_anonymous_delete_objects_body_is_never_read(server, tenants):
    """Finding 2: DeleteObjects bodies (2 MiB) were read before the caller was authorized.
    A caller that nothing could allow to delete is refused on the head alone."""
    _, owner_key = tenants["owner"]
    owner = s3(server, owner_key)
    owner.create_bucket(Bucket="dos-delete", ACL="public-read")
    import socket
    s = socket.create_connection(("127.0.0.1", server.port))
    s.sendall(b"POST /dos-delete?delete HTTP/1.1\r\nHost: 127.0.0.1\r\n"
              b"Content-MD5: AAAAAAAAAAAAAAAAAAAAAA==\r\nContent-Length: 2000000\r\n\r\n")
    s.settimeout(5)
    answer = s.recv(4096)  # nothing of the body was sent
    s.close()
    assert answer.startswith(b"HTTP/1.1 403"), answer


def test_block_public_access_judges_public_as_s3_does(server, tenants):
    """Medium finding: with all four flags on, a policy allowing `*` from
    0.0.0.0/1 + 128.0.0.0/1 (everyone), or under StringEqualsIfExists aws:PrincipalAccount,
    was accepted and judged not public; anonymous callers read and listed."""
    import json
    _, owner_key = tenants["owner"]
    owner = s3(server, owner_key)
    owner.create_bucket(Bucket="bpa")
    owner.put_object(Bucket="bpa", Key="secret", Body=b"s")
    block_all_public_access(owner, "bpa")
    conditions = [
        {"IpAddress": {"aws:SourceIp": ["0.0.0.0/1", "128.0.0.0/1"]}},
        {"IpAddress": {"aws:SourceIp": ["::/1", "8000::/1"]}},
        {"StringEqualsIfExists": {"aws:PrincipalAccount": "111122223333"}},
    ]
    for c in conditions:
        policy = {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": "*", "Action": ["s3:GetObject", "s3:ListBucket"],
            "Resource": ["arn:aws:s3:::bpa", "arn:aws:s3:::bpa/*"], "Condition": c}]}
        assert code(lambda: owner.put_bucket_policy(Bucket="bpa", Policy=json.dumps(policy))) == \
            "AccessDenied", c
    assert raw(server, "GET", "/bpa/secret")[0] == 403
    assert raw(server, "GET", "/bpa?list-type=2")[0] == 403
    # Without the block, the same policy is public, and says so.
    owner.delete_public_access_block(Bucket="bpa")
    owner.put_bucket_policy(Bucket="bpa", Policy=json.dumps({"Statement": [{
        "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
        "Resource": "arn:aws:s3:::bpa/*", "Condition": conditions[0]}]}))
    assert owner.get_bucket_policy_status(Bucket="bpa")["PolicyStatus"]["IsPublic"] is True


def test_a_presigned_put_that_signs_the_body_hash_gets_that_body(server, tenants):
    """Medium finding: a presigned PUT whose signature covers X-Amz-Content-Sha256 accepted
    any body."""
    from botocore.auth import S3SigV4QueryAuth
    _, owner_key = tenants["owner"]
    owner = s3(server, owner_key)
    owner.create_bucket(Bucket="presigned-hash")
    good = b"the body that was signed"
    digest = hashlib.sha256(good).hexdigest()
    req = AWSRequest(method="PUT", url=f"{server.endpoint}/presigned-hash/k",
                     headers={"x-amz-content-sha256": digest})
    S3SigV4QueryAuth(Credentials(*owner_key), "s3", "us-east-1", expires=300).add_auth(req)
    target = req.url[len(server.endpoint):]
    signed = req.url.split("X-Amz-SignedHeaders=")[1].split("&")[0]
    assert "x-amz-content-sha256" in signed, signed
    status, body = raw(server, "PUT", target, {"x-amz-content-sha256": digest},
                       b"another body, same length!")
    assert status == 400 and b"XAmzContentSHA256Mismatch" in body, (status, body)
    assert code(lambda: owner.head_object(Bucket="presigned-hash", Key="k")) == "404"
    status, _ = raw(server, "PUT", target, {"x-amz-content-sha256": digest}, good)
    assert status == 200
    assert owner.get_object(Bucket="presigned-hash", Key="k")["Body"].read() == good


def test_an_account_admin_manages_only_its_own_account(server, tenants):
    """Low finding: an --admin user of one account managed every account. An admin user of
    the root account is a store admin; one of any other account administers that account's
    users, keys and usage only."""
    owner_id, _ = tenants["owner"]
    other_id, _ = tenants["other"]
    admin(server, "create-user", owner_id, "boss", "--admin")
    k = admin(server, "create-key", owner_id, "boss")
    boss = (k["access_key"], k["secret_key"])

    def as_boss(*args):
        return admin(server, *args, key=boss, check=False)

    # Its own account: users, keys, temporary credentials, listings of its own.
    assert as_boss("create-user", owner_id, "intern").returncode == 0
    assert as_boss("create-key", owner_id, "intern").returncode == 0
    assert as_boss("temporary", owner_id, "intern", "--seconds", "60").returncode == 0
    import json
    listed = json.loads(as_boss("accounts").stdout)["accounts"]
    assert [a["id"] for a in listed] == [owner_id]
    keys = json.loads(as_boss("keys").stdout)["keys"]
    assert keys and {k["account_id"] for k in keys} == {owner_id}
    # Another account, and the store itself, are out of its reach.
    other_key = admin(server, "keys", "--account", other_id)["keys"][0]["access_key"]
    for args in (("create-user", other_id, "mole"), ("create-key", other_id, "u"),
                 ("users", other_id), ("disable-key", other_key), ("rotate-key", other_key),
                 ("delete-key", other_key), ("create-account", "mine"),
                 ("delete-account", other_id), ("status",), ("limits",),
                 ("set-limits", "account", owner_id, "--requests-per-s", "1000"),
                 # The appliance's settings and bays are the store's, whatever the server.
                 ("time",), ("time", "--trust-rtc", "true"), ("network",),
                 ("network", "--hostname", "mole"), ("locate", "3", "--on", "true")):
        out = as_boss(*args)
        assert out.returncode != 0 and "AccessDenied" in out.stderr, (args, out.stderr)
    # A user who is no admin at all gets the same answer for them.
    _, user_key = tenants["owner"]
    for args in (("time",), ("network", "--hostname", "mole"), ("locate", "3", "--on", "true")):
        out = admin(server, *args, key=user_key, check=False)
        assert out.returncode != 0 and "AccessDenied" in out.stderr, (args, out.stderr)
    assert [k["status"] for k in admin(server, "keys", "--account", other_id)["keys"]
            if k["access_key"] == other_key] == ["Active"]
    # The store admin still manages every account.
    assert admin(server, "users", other_id)["users"]


def test_the_root_key_can_come_from_a_private_file(tmp_path):
    """Low finding: the README's way of choosing the root key left the secret in the process
    environment. `--credentials FILE` reads it from a file only its owner may read."""
    import tempfile
    from hoard_server import ROOT
    (ROOT / "target" / "test-scratch").mkdir(parents=True, exist_ok=True)
    data = tempfile.mkdtemp(dir=ROOT / "target" / "test-scratch")  # O_DIRECT: not tmpfs

    key = ("file-root-access", "file-root-secret-0123456789")
    creds = tmp_path / "root.key"
    creds.write_text(f"{key[0]}\n{key[1]}\n")
    creds.chmod(0o644)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOARD_")}
    refused = subprocess.run(
        [HOARD, "serve", "--data", data, "--credentials", str(creds),
         "--listen", f"127.0.0.1:{free_port()}"], env=env, capture_output=True, text=True,
        timeout=60)
    assert refused.returncode != 0 and "chmod 600" in refused.stderr, refused.stderr
    creds.chmod(0o600)
    port = free_port()
    proc = subprocess.Popen(
        [HOARD, "serve", "--data", data, "--credentials", str(creds),
         "--listen", f"127.0.0.1:{port}"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:
            if "credentials (file)" in line:
                break
        with open(f"/proc/{proc.pid}/environ", "rb") as f:
            assert key[1].encode() not in f.read()
        c = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                         aws_access_key_id=key[0], aws_secret_access_key=key[1])
        c.create_bucket(Bucket="from-file")
        assert [b["Name"] for b in c.list_buckets()["Buckets"]] == ["from-file"]
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        import shutil
        shutil.rmtree(data, ignore_errors=True)


def test_a_form_field_is_never_held_whole_past_its_limit(server, tenants):
    """Found while fuzzing the POST form: a field before `file` was read whole (up to the 5 GiB
    body limit) before its size was checked, so an anonymous form could make the server hold
    gigabytes. Each field stops at 64 KiB: the answer comes while the rest is unsent."""
    import socket
    _, owner_key = tenants["owner"]
    s3(server, owner_key).create_bucket(Bucket="forms-bounded")
    s = socket.create_connection(("127.0.0.1", server.port))
    s.sendall(b"POST /forms-bounded HTTP/1.1\r\nHost: 127.0.0.1\r\n"
              b"Content-Type: multipart/form-data; boundary=zz\r\n"
              b"Content-Length: 300000000\r\n\r\n"
              b"--zz\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\n")
    s.settimeout(10)
    answer = b""
    try:
        for _ in range(16):  # 1 MiB of the 300 MB promised, then wait for the answer
            s.sendall(b"k" * 65536)
    except (BrokenPipeError, ConnectionResetError):
        pass
    try:
        answer = s.recv(4096)
    finally:
        s.close()
    assert answer.startswith(b"HTTP/1.1 400") and b"MalformedPOSTRequest" in answer, answer


def test_parallel_gets_stay_within_a_byte_limit(server, tenants):
    """Low finding: GET bytes were charged when answered, so parallel GETs admitted at once
    overshot a byte limit about 4x. Now each charges its bytes before sending and is refused
    while the limit is in debt. 16 curl processes GET a 1 MB object at once under a 1 MB/s
    limit: the first second's tokens serve one or two."""
    owner_id, owner_key = tenants["owner"]
    owner = s3(server, owner_key)
    owner.create_bucket(Bucket="byte-limited")
    owner.put_object(Bucket="byte-limited", Key="1m", Body=b"b" * 1_000_000)
    admin(server, "set-limits", "account", owner_id, "--bytes-per-s", "1000000", parse=False)
    try:
        time.sleep(1.2)  # a full second of tokens
        cmd = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download}",
               "--aws-sigv4", "aws:amz:us-east-1:s3", "--user", f"{owner_key[0]}:{owner_key[1]}",
               "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD",
               f"{server.endpoint}/byte-limited/1m"]
        procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(16)]
        results = [p.communicate(timeout=60)[0].split() for p in procs]
        served = [int(size) for status, size in results if status == "200"]
        assert all(status in ("200", "503") for status, _ in results), results
        assert 1 <= len(served) <= 3 and sum(served) <= 3_000_000, results
    finally:
        admin(server, "clear-limits", "account", owner_id, parse=False)
