"""HTTPS on the front door (issue 19): `hoard serve --listen-tls` with a certificate made by
openssl, used by boto3, the aws CLI, rclone and curl with the CA bundle; what openssl
s_client may and may not negotiate; aws:SecureTransport true exactly on TLS connections; the
certificate swapped under load (admin request) and on SIGHUP without a failed request."""

import hashlib
import json
import os
import signal
import ssl
import subprocess
import threading
import time

import boto3
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from hoard_server import free_port, scratch_server

ROOT_KEY = ("tls-root-access", "tls-root-secret-0123456789")


def make_cert(directory, name, cn="localhost"):
    """A self-signed P-256 certificate for localhost and 127.0.0.1: (cert path, key path)."""
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={cn}",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True)
    return cert, key


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    return d, make_cert(d, "first")


@pytest.fixture(scope="module")
def server(certs):
    d, (cert, key) = certs
    # The files the server reloads: copies, so the test can replace them.
    live_cert, live_key = d / "live.crt", d / "live.key"
    live_cert.write_bytes(cert.read_bytes())
    live_key.write_bytes(key.read_bytes())
    port = free_port()
    gen = scratch_server(*ROOT_KEY, args=["--listen-tls", f"127.0.0.1:{port}",
                                          "--tls-cert", str(live_cert), "--tls-key", str(live_key)])
    s = next(gen)
    s.https = f"https://127.0.0.1:{port}"
    s.tls_port = port
    s.live = (live_cert, live_key)
    yield s
    next(gen, None)


def client(endpoint, ca, key=ROOT_KEY):
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", verify=str(ca),
                        aws_access_key_id=key[0], aws_secret_access_key=key[1],
                        config=Config(retries={"max_attempts": 1}))


def served_fingerprint(port):
    """The SHA-256 fingerprint of the certificate a new connection to `port` is shown."""
    der = ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate(("127.0.0.1", port)))
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def file_fingerprint(cert):
    der = ssl.PEM_cert_to_DER_cert(cert.read_text())
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def admin_request(server, method, path, body=b""):
    """An admin request signed with SigV4 in the header, over plain HTTP."""
    req = AWSRequest(method=method, url=server.endpoint + path, data=body)
    S3SigV4Auth(Credentials(*ROOT_KEY), "s3", "us-east-1").add_auth(req)
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request(method, path, body=body, headers=dict(req.headers.items()))
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, data


def test_clients_work_over_https_with_the_ca_bundle(server, certs, tmp_path):
    _, (cert, _) = certs
    s3 = client(server.https, cert)
    s3.create_bucket(Bucket="tls")
    body = os.urandom(300_000)
    s3.put_object(Bucket="tls", Key="boto3", Body=body)
    assert s3.get_object(Bucket="tls", Key="boto3")["Body"].read() == body
    env = dict(os.environ, AWS_ACCESS_KEY_ID=ROOT_KEY[0], AWS_SECRET_ACCESS_KEY=ROOT_KEY[1],
               AWS_DEFAULT_REGION="us-east-1", AWS_CA_BUNDLE=str(cert))
    src = tmp_path / "cli.bin"
    src.write_bytes(os.urandom(20_000_000))  # above the CLI's multipart threshold
    subprocess.run(["aws", "--endpoint-url", server.https, "s3", "cp", str(src), "s3://tls/cli"],
                   env=env, check=True, capture_output=True)
    assert s3.head_object(Bucket="tls", Key="cli")["ContentLength"] == 20_000_000
    # curl with the CA file; without it, the self-signed certificate is refused.
    out = subprocess.run(["curl", "-s", "--cacert", str(cert), "-o", "/dev/null", "-w",
                          "%{http_code}", f"{server.https}/tls/boto3"], capture_output=True)
    assert out.stdout == b"403"  # anonymous, over a verified TLS connection
    assert subprocess.run(["curl", "-s", "-o", "/dev/null", f"{server.https}/"]).returncode == 60
    # rclone with --ca-cert.
    rclone = ["rclone", "--s3-provider", "Other", "--s3-endpoint", server.https,
              "--s3-access-key-id", ROOT_KEY[0], "--s3-secret-access-key", ROOT_KEY[1],
              "--s3-region", "us-east-1", "--ca-cert", str(cert)]
    renv = dict(os.environ)
    renv.pop("AWS_CA_BUNDLE", None)
    got = subprocess.run(rclone + ["cat", ":s3:tls/boto3"], env=renv, capture_output=True)
    assert got.returncode == 0, got.stderr
    assert got.stdout == body


def s_client(server, *args):
    return subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{server.tls_port}",
                           *args], input=b"", capture_output=True, timeout=30)


def test_only_tls_12_and_13_with_strong_suites(server):
    assert s_client(server, "-tls1_3").returncode == 0
    assert b"TLSv1.3" in s_client(server, "-tls1_3").stdout
    assert s_client(server, "-tls1_2").returncode == 0
    for old in ("-tls1_1", "-tls1"):
        r = s_client(server, old)
        assert r.returncode != 0 or b"Cipher is (NONE)" in r.stdout, old
    # No CBC, RC4, 3DES, static-RSA or export suites, even when they are all a client offers.
    for weak in ("AES128-SHA", "AES256-SHA256", "ECDHE-ECDSA-AES128-SHA", "DES-CBC3-SHA",
                 "RC4-SHA", "EXP-RC4-MD5", "NULL-SHA"):
        r = s_client(server, "-tls1_2", "-cipher", weak)
        assert r.returncode != 0 or b"Cipher is (NONE)" in r.stdout, weak
    out = s_client(server, "-tls1_2").stdout
    assert b"ECDHE-ECDSA-AES256-GCM-SHA384" in out or b"ECDHE-ECDSA-CHACHA20-POLY1305" in out \
        or b"ECDHE-ECDSA-AES128-GCM-SHA256" in out, out


def test_secure_transport_is_true_exactly_over_tls(server, certs):
    _, (cert, _) = certs
    s3 = client(server.https, cert)
    plain = client(server.endpoint, cert)
    s3.create_bucket(Bucket="tls-only")
    s3.put_object(Bucket="tls-only", Key="k", Body=b"secret")
    s3.put_bucket_policy(Bucket="tls-only", Policy=json.dumps({"Statement": [{
        "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": ["arn:aws:s3:::tls-only", "arn:aws:s3:::tls-only/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}))
    assert s3.get_object(Bucket="tls-only", Key="k")["Body"].read() == b"secret"
    with pytest.raises(ClientError) as e:
        plain.get_object(Bucket="tls-only", Key="k")
    assert e.value.response["Error"]["Code"] == "AccessDenied"


def test_a_certificate_swap_under_load_loses_no_request(server, certs):
    d, (first, _) = certs
    second, second_key = make_cert(d, "second")
    both = d / "both.pem"
    both.write_text(first.read_text() + second.read_text())
    s3 = client(server.https, both)
    s3.create_bucket(Bucket="tls-swap")
    s3.put_object(Bucket="tls-swap", Key="k", Body=b"x" * 10_000)
    assert served_fingerprint(server.tls_port) == file_fingerprint(first)
    failures, done, count = [], threading.Event(), [0]

    def load():
        c = client(server.https, both)
        while not done.is_set():
            try:
                assert c.get_object(Bucket="tls-swap", Key="k")["Body"].read() == b"x" * 10_000
                count[0] += 1
            except Exception as e:  # noqa: BLE001 - every failure counts
                failures.append(repr(e))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(1)
    # The admin request: a PEM bundle of the second certificate and its key.
    status, answer = admin_request(server, "PUT", "/_hoard/tls",
                                   second.read_bytes() + second_key.read_bytes())
    assert status == 200, answer
    assert json.loads(answer)["fingerprint_sha256"] == file_fingerprint(second)
    time.sleep(1)
    # A bad bundle is refused and the second stays in force.
    status, answer = admin_request(server, "PUT", "/_hoard/tls", second.read_bytes())
    assert status == 400 and b"private key" in answer
    # SIGHUP: the files now hold the second pair; put the first back and signal.
    cert_file, key_file = server.live
    assert file_fingerprint(cert_file) == file_fingerprint(second)
    cert_file.write_bytes(first.read_bytes())
    key_file.write_bytes((d / "first.key").read_bytes())
    os.kill(server.proc.pid, signal.SIGHUP)
    time.sleep(1)
    done.set()
    for t in threads:
        t.join()
    assert not failures, failures[:3]
    assert count[0] > 20, count
    assert served_fingerprint(server.tls_port) == file_fingerprint(first)
    status, answer = admin_request(server, "POST", "/_hoard/tls/reload")
    assert status == 200 and json.loads(answer)["fingerprint_sha256"] == file_fingerprint(first)


def make_ca_and_leaf(directory):
    """A CA, and a leaf certificate it signed for localhost and 127.0.0.1 (not a CA itself):
    (CA cert path, leaf bundle bytes: leaf cert then key)."""
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)  # noqa: E731
    ca_key, ca = directory / "ca.key", directory / "ca.crt"
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-keyout", str(ca_key), "-out", str(ca), "-days", "2", "-subj", "/CN=Test CA")
    key, csr, leaf = directory / "leaf.key", directory / "leaf.csr", directory / "leaf.crt"
    run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", str(key), "-out", str(csr), "-subj", "/CN=localhost")
    ext = directory / "leaf.ext"
    ext.write_text("basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(leaf), "-days", "2", "-extfile", str(ext))
    return ca, leaf.read_bytes() + key.read_bytes()


def test_hoard_admin_speaks_https_with_a_ca_or_a_pinned_fingerprint(server, certs):
    """The appliance serves HTTPS only, with a self-signed certificate whose fingerprint its
    console prints: `hoard admin` trusts exactly that pinned certificate, or a CA file for a
    certificate a CA issued. (Runs last: it installs a CA-issued certificate.)"""
    from hoard_server import HOARD
    d, _ = certs
    env = dict(os.environ, HOARD_ENDPOINT=server.https, HOARD_ACCESS_KEY=ROOT_KEY[0],
               HOARD_SECRET_KEY=ROOT_KEY[1])

    def admin(*args):
        return subprocess.run([HOARD, "admin", *args, "accounts"], env=env, capture_output=True,
                              text=True, timeout=60)
    pinned = served_fingerprint(server.tls_port)
    ok = admin("--fingerprint", pinned)
    assert ok.returncode == 0 and "root" in ok.stdout, ok.stderr
    wrong = admin("--fingerprint", "00:" * 31 + "00")
    assert wrong.returncode != 0 and "fingerprint" in wrong.stderr, wrong.stderr
    # The system's roots do not know a self-signed certificate.
    assert admin().returncode != 0
    # A certificate a CA issued, trusted through the CA file.
    ca, bundle = make_ca_and_leaf(d)
    status, answer = admin_request(server, "PUT", "/_hoard/tls", bundle)
    assert status == 200, answer
    for endpoint in (server.https, server.https.replace("127.0.0.1", "localhost")):
        env["HOARD_ENDPOINT"] = endpoint
        ok = admin("--ca-cert", str(ca))
        assert ok.returncode == 0 and "root" in ok.stdout, (endpoint, ok.stderr)
