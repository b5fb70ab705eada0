"""Starting and stopping a real `hoard serve` for the script tests."""

import os
import pathlib
import socket
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[2]
HOARD = os.environ.get("HOARD_BIN", str(ROOT / "target" / "debug" / "hoard"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`hoard serve` on `data` with the root key (access, secret); its log goes to `log`."""

    def __init__(self, data, access, secret, log=None, args=()):
        self.data, self.access, self.secret = data, access, secret
        self.log = log
        self.args = list(args)
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc = None

    def start(self):
        env = dict(os.environ, HOARD_ACCESS_KEY=self.access, HOARD_SECRET_KEY=self.secret,
                   HOARD_LOG=os.environ.get("HOARD_LOG", "warn"))
        stderr = open(self.log, "a") if self.log else None
        self.proc = subprocess.Popen(
            [HOARD, "serve", "--data", str(self.data), "--listen", f"127.0.0.1:{self.port}",
             *self.args],
            env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)
        for line in self.proc.stdout:
            if "serving S3" in line:
                return self
        raise RuntimeError("hoard exited before serving")

    def stop(self):
        self.proc.terminate()
        assert self.proc.wait(timeout=60) == 0, "hoard shuts down cleanly on SIGTERM"


def scratch_server(access, secret, log=False, args=()):
    """A fixture's body: a server on a fresh data directory under target/test-scratch, with
    the root key (access, secret); yields it, stops it, removes the directory."""
    import shutil
    import tempfile
    scratch = ROOT / "target" / "test-scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    data = tempfile.mkdtemp(dir=scratch)
    server = Server(data, access, secret, log=os.path.join(data, "server.log") if log else None,
                    args=args)
    server.start()
    yield server
    if server.proc.poll() is None:
        server.stop()
    shutil.rmtree(data, ignore_errors=True)


def rclone_env(server, key):
    """The environment for rclone to reach `server` as remote `hoard:` with `key` (access,
    secret)."""
    env = dict(os.environ, RCLONE_CONFIG_HOARD_TYPE="s3", RCLONE_CONFIG_HOARD_PROVIDER="Other",
               RCLONE_CONFIG_HOARD_ACCESS_KEY_ID=key[0],
               RCLONE_CONFIG_HOARD_SECRET_ACCESS_KEY=key[1],
               RCLONE_CONFIG_HOARD_ENDPOINT=server.endpoint, RCLONE_CONFIG_HOARD_REGION="us-east-1",
               RCLONE_CONFIG_HOARD_FORCE_PATH_STYLE="true")
    # rclone's AWS SDK cannot load a custom CA bundle into its HTTP transport, and plain HTTP
    # needs none.
    env.pop("AWS_CA_BUNDLE", None)
    return env


def admin(server, *args, key=None, check=True, parse=True):
    """`hoard admin ARGS` against `server`, signed with `key` (default: its root key).
    Returns the parsed JSON (or the text, with `parse=False`); with `check=False`, the
    completed process."""
    import json
    key = key or (server.access, server.secret)
    env = dict(os.environ, HOARD_ENDPOINT=server.endpoint,
               HOARD_ACCESS_KEY=key[0], HOARD_SECRET_KEY=key[1])
    out = subprocess.run([HOARD, "admin", *args], env=env, capture_output=True, text=True)
    if not check:
        return out
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout) if parse and out.stdout.strip() else out.stdout


def make_tenants(server, names, user="u"):
    """An account per name, each with one user (`user`) and one access key:
    {name: (account ID, (access key, secret key))}."""
    keys = {}
    for name in names:
        account = admin(server, "create-account", name)
        admin(server, "create-user", account["id"], user)
        k = admin(server, "create-key", account["id"], user)
        keys[name] = (account["id"], (k["access_key"], k["secret_key"]))
    return keys


def signed(server, key, method, target, body=b"", headers=None, payload=None):
    """`target` (path and query) signed by botocore's S3 SigV4 signer with `key`, headers
    included, then sent exactly as given on its own connection: (status, headers, body).
    `payload` replaces the body's SHA-256 as x-amz-content-sha256 (`UNSIGNED-PAYLOAD`)."""
    import http.client
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    class Signer(S3SigV4Auth):
        def payload(self, request):
            return payload or super().payload(request)
    req = AWSRequest(method=method, url=server.endpoint + target, data=body,
                     headers=dict(headers or {}))
    Signer(Credentials(*key), "s3", "us-east-1").add_auth(req)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    conn.request(method, target, body=body, headers=dict(req.headers.items()))
    r = conn.getresponse()
    out = (r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    conn.close()
    return out
