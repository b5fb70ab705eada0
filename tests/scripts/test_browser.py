"""Browser uploads and CORS: boto3's generate_presigned_post forms (SigV4 and SigV2) posted
over plain HTTP, hostile forms refused, CORS preflights, and a real browser (headless
Chromium driven by Selenium) filling a form page served from a bucket and posting it to
another origin."""

import base64
import json
import os
import time

import boto3
import pytest
import urllib3
from botocore.config import Config
from botocore.exceptions import ClientError

from hoard_server import admin, scratch_server

ROOT_KEY = ("browser-root-access", "browser-root-secret-0123456789")


@pytest.fixture(scope="module")
def server():
    yield from scratch_server(*ROOT_KEY)


@pytest.fixture(scope="module")
def uploader(server):
    """A user of another account than the root's, and its key."""
    account = admin(server, "create-account", "web")
    admin(server, "create-user", account["id"], "uploader")
    k = admin(server, "create-key", account["id"], "uploader")
    return k["access_key"], k["secret_key"]


def s3(server, key, signature_version="s3v4"):
    return boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1",
                        aws_access_key_id=key[0], aws_secret_access_key=key[1],
                        config=Config(signature_version=signature_version,
                                      retries={"max_attempts": 1}))


def post_form(url, fields, file_bytes, filename="upload.bin", headers=None):
    body, content_type = urllib3.encode_multipart_formdata(
        list(fields.items()) + [("file", (filename, file_bytes, "application/octet-stream"))])
    r = urllib3.request("POST", url, body=body,
                        headers={"Content-Type": content_type, **(headers or {})}, redirect=False)
    return r.status, r.data, r.headers


def test_presigned_post_forms_store_objects_with_metadata(server, uploader):
    client = s3(server, uploader)
    client.create_bucket(Bucket="inbox")
    form = client.generate_presigned_post(
        "inbox", "photos/${filename}",
        Fields={"Content-Type": "image/png", "x-amz-meta-camera": "x100",
                "success_action_status": "201"},
        Conditions=[["starts-with", "$key", "photos/"], {"Content-Type": "image/png"},
                    {"x-amz-meta-camera": "x100"}, {"success_action_status": "201"},
                    ["content-length-range", 1, 1 << 20]],
        ExpiresIn=600)
    status, body, headers = post_form(form["url"], form["fields"], b"\x89PNG" + os.urandom(5000),
                                      filename="cat.png")
    assert status == 201, body
    assert b"<Key>photos/cat.png</Key>" in body and b"<Bucket>inbox</Bucket>" in body
    head = client.head_object(Bucket="inbox", Key="photos/cat.png")
    assert head["ContentType"] == "image/png" and head["Metadata"] == {"camera": "x100"}
    assert head["ContentLength"] == 5004 and headers["ETag"] == head["ETag"]

    # A file over content-length-range is refused, and nothing is stored.
    status, body, _ = post_form(form["url"], form["fields"], os.urandom((1 << 20) + 1),
                                filename="huge.png")
    assert status == 400 and b"EntityTooLarge" in body
    assert "Contents" not in client.list_objects_v2(Bucket="inbox", Prefix="photos/huge")
    # So is an empty one (the range starts at 1).
    status, body, _ = post_form(form["url"], form["fields"], b"", filename="empty.png")
    assert status == 400 and b"EntityTooSmall" in body

    # A SigV2 form, with a redirect on success.
    v2 = s3(server, uploader, signature_version="s3").generate_presigned_post(
        "inbox", "v2.txt", Fields={"success_action_redirect": "http://example.com/done"},
        Conditions=[{"success_action_redirect": "http://example.com/done"}])
    status, _, headers = post_form(v2["url"], v2["fields"], b"v2 body")
    assert status == 303 and headers["Location"].startswith("http://example.com/done?bucket=inbox&key=v2.txt&etag=")
    assert client.get_object(Bucket="inbox", Key="v2.txt")["Body"].read() == b"v2 body"


def test_hostile_forms_get_clear_errors_and_store_nothing(server, uploader):
    client = s3(server, uploader)
    client.create_bucket(Bucket="guarded-inbox")
    good = client.generate_presigned_post("guarded-inbox", "a.txt", ExpiresIn=600)

    def refused(fields, code, status=403):
        s, body, _ = post_form(good["url"], fields, b"payload")
        assert s == status and code.encode() in body, (s, body)

    # Forged signature.
    fields = dict(good["fields"], **{"x-amz-signature": "0" * 64})
    refused(fields, "SignatureDoesNotMatch")
    # The policy changed after signing (a wider key).
    policy = json.loads(base64.b64decode(good["fields"]["policy"]))
    policy["conditions"] = [c for c in policy["conditions"] if not (isinstance(c, dict) and "key" in c)]
    refused(dict(good["fields"], policy=base64.b64encode(json.dumps(policy).encode()).decode()),
            "SignatureDoesNotMatch")
    # A key the policy does not allow, a field it does not name.
    refused(dict(good["fields"], key="b.txt"), "AccessDenied")
    refused(dict(good["fields"], **{"x-amz-meta-extra": "1"}), "AccessDenied")
    # An expired policy, correctly signed.
    expired = client.generate_presigned_post("guarded-inbox", "a.txt", ExpiresIn=1)
    time.sleep(2)
    s, body, _ = post_form(expired["url"], expired["fields"], b"late")
    assert s == 403 and b"Policy expired" in body
    # No signature at all on a private bucket: an anonymous caller.
    s, body, _ = post_form(good["url"], {"key": "anon.txt"}, b"x")
    assert s == 403 and b"AccessDenied" in body
    # Not multipart at all.
    r = urllib3.request("POST", good["url"], body=b"garbage",
                        headers={"Content-Type": "multipart/form-data; boundary=xyz"})
    assert r.status == 400 and b"MalformedPOSTRequest" in r.data
    assert "Contents" not in client.list_objects_v2(Bucket="guarded-inbox")


def test_cors_preflights_and_headers(server, uploader):
    client = s3(server, uploader)
    client.create_bucket(Bucket="cors-site")
    url = f"{server.endpoint}/cors-site/x"
    preflight = lambda origin, method, hdrs="": urllib3.request("OPTIONS", url, headers={
        "Origin": origin, "Access-Control-Request-Method": method,
        **({"Access-Control-Request-Headers": hdrs} if hdrs else {})})
    r = preflight("http://app.example.com", "PUT")
    assert r.status == 403 and b"CORS is not enabled" in r.data
    client.put_bucket_cors(Bucket="cors-site", CORSConfiguration={"CORSRules": [
        {"AllowedOrigins": ["http://*.example.com"], "AllowedMethods": ["PUT", "POST", "GET"],
         "AllowedHeaders": ["x-amz-*", "content-type"], "ExposeHeaders": ["ETag"],
         "MaxAgeSeconds": 600}]})
    got = client.get_bucket_cors(Bucket="cors-site")["CORSRules"][0]
    assert got["AllowedOrigins"] == ["http://*.example.com"] and got["MaxAgeSeconds"] == 600
    r = preflight("http://app.example.com", "PUT", "Content-Type, X-Amz-Meta-A")
    assert r.status == 200
    assert r.headers["Access-Control-Allow-Origin"] == "http://app.example.com"
    assert r.headers["Access-Control-Max-Age"] == "600"
    assert "PUT" in r.headers["Access-Control-Allow-Methods"]
    assert preflight("http://evil.com", "PUT").status == 403
    assert preflight("http://app.example.com", "DELETE").status == 403
    assert preflight("http://app.example.com", "PUT", "authorization-x").status == 403
    # Actual requests from a matching origin carry the headers, presigned ones included, and
    # so do their refusals (the page can read why).
    client.put_object(Bucket="cors-site", Key="x", Body=b"hello")
    presigned = client.generate_presigned_url("get_object", Params={"Bucket": "cors-site", "Key": "x"})
    r = urllib3.request("GET", presigned, headers={"Origin": "http://app.example.com"})
    assert r.status == 200 and r.data == b"hello"
    assert r.headers["Access-Control-Allow-Origin"] == "http://app.example.com"
    assert r.headers["Access-Control-Expose-Headers"] == "ETag"
    r = urllib3.request("GET", url, headers={"Origin": "http://app.example.com"})
    assert r.status == 403 and r.headers["Access-Control-Allow-Origin"] == "http://app.example.com"
    r = urllib3.request("GET", presigned, headers={"Origin": "http://evil.com"})
    assert r.status == 200 and "Access-Control-Allow-Origin" not in r.headers
    # Malformed configurations are refused.
    with pytest.raises(ClientError) as e:
        client.put_bucket_cors(Bucket="cors-site", CORSConfiguration={"CORSRules": [
            {"AllowedOrigins": ["*"], "AllowedMethods": ["PATCH"]}]})
    assert "PATCH" in e.value.response["Error"]["Message"]
    client.delete_bucket_cors(Bucket="cors-site")
    assert preflight("http://app.example.com", "PUT").status == 403


PAGE = """<!doctype html>
<html><body>
<form id="f">
  {fields}
  <input type="file" name="file" id="file">
  <button type="submit" id="send">Upload</button>
</form>
<pre id="result">waiting</pre>
<script>
document.getElementById('f').addEventListener('submit', async (event) => {{
  event.preventDefault();
  const result = document.getElementById('result');
  try {{
    // The custom header makes the browser send a CORS preflight first.
    const r = await fetch('{action}', {{method: 'POST', body: new FormData(event.target),
                                       headers: {{'X-Requested-With': 'hoard-test'}}}});
    result.textContent = r.status + ' ' + (r.headers.get('ETag') || '') + ' ' + await r.text();
  }} catch (e) {{
    result.textContent = 'failed ' + e;
  }}
}});
</script>
</body></html>"""


def chromium():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def test_a_browser_uploads_through_a_form_served_from_a_bucket(server, uploader, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    client = s3(server, uploader)
    port = server.endpoint.rsplit(":", 1)[1]
    page_origin = f"http://127.0.0.1:{port}"       # the page ...
    upload_origin = f"http://localhost:{port}"     # ... posts to another origin
    client.create_bucket(Bucket="pages")
    client.create_bucket(Bucket="uploads")
    client.put_bucket_cors(Bucket="uploads", CORSConfiguration={"CORSRules": [
        {"AllowedOrigins": [page_origin], "AllowedMethods": ["POST"],
         "AllowedHeaders": ["x-requested-with"], "ExposeHeaders": ["ETag"]}]})
    form = client.generate_presigned_post(
        "uploads", "from-browser/${filename}",
        Fields={"x-amz-meta-source": "chromium", "success_action_status": "201"},
        Conditions=[["starts-with", "$key", "from-browser/"], {"x-amz-meta-source": "chromium"},
                    {"success_action_status": "201"}, ["content-length-range", 1, 100_000]],
        ExpiresIn=600)
    hidden = "\n  ".join(f'<input type="hidden" name="{k}" value="{v}">' for k, v in form["fields"].items())
    html = PAGE.format(fields=hidden, action=f"{upload_origin}/uploads")
    client.put_object(Bucket="pages", Key="upload.html", Body=html.encode(),
                      ContentType="text/html", ACL="public-read")

    small = tmp_path / "note.txt"
    small.write_bytes(b"written by a browser\n" * 100)
    big = tmp_path / "big.txt"
    big.write_bytes(os.urandom(150_000))
    driver = chromium()
    try:
        def upload(path):
            driver.get(f"{page_origin}/pages/upload.html")
            driver.find_element(By.ID, "file").send_keys(str(path))
            driver.find_element(By.ID, "send").click()
            WebDriverWait(driver, 30).until(
                lambda d: d.find_element(By.ID, "result").text != "waiting")
            return driver.find_element(By.ID, "result").text

        result = upload(small)
        assert result.startswith("201 \""), result
        assert "<Key>from-browser/note.txt</Key>" in result
        head = client.head_object(Bucket="uploads", Key="from-browser/note.txt")
        assert head["Metadata"] == {"source": "chromium"} and head["ContentLength"] == small.stat().st_size
        assert client.get_object(Bucket="uploads", Key="from-browser/note.txt")["Body"].read() == small.read_bytes()
        # Over the policy's content-length-range: refused, readable by the page (CORS), not stored.
        result = upload(big)
        assert result.startswith("400") and "EntityTooLarge" in result, result
        assert "Contents" not in client.list_objects_v2(Bucket="uploads", Prefix="from-browser/big")
    finally:
        driver.quit()


def signed_policy_form(key, policy_doc, object_key="p.txt"):
    """Form fields carrying `policy_doc` (a str, sent as written) signed with SigV4 by `key`."""
    import datetime
    import hashlib
    import hmac
    now = datetime.datetime.now(datetime.timezone.utc)
    date, stamp = now.strftime("%Y%m%d"), now.strftime("%Y%m%dT%H%M%SZ")
    b64 = base64.b64encode(policy_doc.encode()).decode()
    k = ("AWS4" + key[1]).encode()
    for part in (date, "us-east-1", "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return {"key": object_key, "x-amz-algorithm": "AWS4-HMAC-SHA256",
            "x-amz-credential": f"{key[0]}/{date}/us-east-1/s3/aws4_request",
            "x-amz-date": stamp, "policy": b64,
            "x-amz-signature": hmac.new(k, b64.encode(), hashlib.sha256).hexdigest()}


def test_malformed_policies_are_400_and_checksum_fields_are_verified(server, uploader):
    """S3 answers a policy that is not one with 400 (InvalidPolicyDocument; a policy without a
    signature InvalidArgument), not 403; a form's x-amz-checksum-<algorithm> is the file's
    checksum, verified."""
    client = s3(server, uploader)
    client.create_bucket(Bucket="policy-forms")
    url = f"{server.endpoint}/policy-forms"
    exp = "2030-01-01T00:00:00.000Z"
    cond = ('[{"bucket":"policy-forms"},["starts-with","$key",""],["starts-with","$x-amz-algorithm",""],'
            '["starts-with","$x-amz-credential",""],["starts-with","$x-amz-date",""]]')
    for doc in [
        '{"expiration":"2030-01-01","conditions":%s}' % cond,
        '{"EXPIRATION":"%s","conditions":%s}' % (exp, cond),
        '{"expiration":"%s","CONDITIONS":%s}' % (exp, cond),
        '{"conditions":%s}' % cond,
        '{"expiration":"%s"}' % exp,
        '{"expiration":"%s","conditions":[]}' % exp,
        '{"expiration":"%s","conditions":[{"bucket":"policy-forms"},["content-length-range",10]]}' % exp,
        '{"expiration":"%s","conditions":[{"bucket":"policy-forms"},["content-length-range",-1,10]]}' % exp,
        'not json',
    ]:
        s, body, _ = post_form(url, signed_policy_form(uploader, doc), b"x")
        assert (s, b"InvalidPolicyDocument" in body) == (400, True), (doc, s, body)
    fields = signed_policy_form(uploader, '{"expiration":"%s","conditions":%s}' % (exp, cond))
    unsigned = {k: v for k, v in fields.items() if k != "x-amz-signature" and k != "x-amz-credential"}
    s, body, _ = post_form(url, unsigned, b"x")
    assert s == 400 and b"InvalidArgument" in body, body
    # The file's checksum: verified, not an extra field the policy must name.
    import hashlib
    data = b"checked payload"
    good = base64.b64encode(hashlib.sha256(data).digest()).decode()
    s, body, _ = post_form(url, dict(fields, **{"x-amz-checksum-sha256": good}), data)
    assert s == 204, body
    assert client.head_object(Bucket="policy-forms", Key="p.txt", ChecksumMode="ENABLED")["ChecksumSHA256"] == good
    bad = dict(signed_policy_form(uploader, '{"expiration":"%s","conditions":%s}' % (exp, cond), "q.txt"),
               **{"x-amz-checksum-sha256": good})
    s, body, _ = post_form(url, bad, b"other payload")
    assert s == 400 and b"BadDigest" in body, body
    with pytest.raises(ClientError):
        client.head_object(Bucket="policy-forms", Key="q.txt")
    # A form field asking for encryption is refused, not ignored.
    with_sse = cond[:-1] + ',["starts-with","$x-amz-server-side-encryption",""]]'
    enc = dict(signed_policy_form(uploader, '{"expiration":"%s","conditions":%s}' % (exp, with_sse), "e.txt"),
               **{"x-amz-server-side-encryption": "AES256"})
    s, body, _ = post_form(url, enc, b"secret")
    assert s == 501 and b"x-amz-server-side-encryption" in body, body
    with pytest.raises(ClientError):
        client.head_object(Bucket="policy-forms", Key="e.txt")
