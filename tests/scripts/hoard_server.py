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
