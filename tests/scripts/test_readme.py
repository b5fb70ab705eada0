"""README works as written: in a fresh clone of this repository, in a new folder, every shell
command of README.md's ```sh blocks is run in order, as a new user would type it.

What the test does beyond typing, and why:
- It shares this tree's `target/` (`CARGO_TARGET_DIR`) and builds for the target and flags
  `appliance/scripts/build-image` uses, so the clone compiles only Hoard's own crates, not
  every dependency again; `cargo install` installs under a scratch `CARGO_INSTALL_ROOT` whose
  `bin` is on PATH, not into the machine's `~/.cargo/bin`.
- The run command (`cargo run ... -- serve`) runs in the background; the other blocks run in
  one shell beside it, in README order, so `$KEY` and `$SECRET` carry from block to block. The
  `/_hoard/shutdown` line runs last, since it stops the server; the HTTPS `hoard serve` lines
  then run one at a time (a certificate made first), each checked to serve and stopped.
- A line `NAME=VALUE   # the FIELD it printed` takes FIELD from the JSON the command before it
  printed (README shows an example value; the real one differs).
- `./holiday.jpg` is "any file of yours": the test makes one.

Blocks not run here, each run elsewhere: the firmware image and QEMU boots (`appliance/scripts/`,
run by `scripts/test` and `tests/integration/appliance_qemu.rs`), `./scripts/test` (this suite),
and the benchmarks (`cargo bench`, `benches/front_door.sh`: minutes each, by hand). Any other
block is run; a new block must run too, or be named in SKIPPED.
"""

import json
import os
import pathlib
import re
import shlex
import signal
import socket
import subprocess
import time

import pytest

from hoard_server import ROOT

# First commands of the blocks not run here (see the docstring).
SKIPPED = (
    "appliance/scripts/",
    "./scripts/test",
    "cargo bench",
    "cargo build --release -p hoard-appliance &&",
    "HOARD_BIN=",
)


def sh_blocks(readme):
    """The ```sh blocks of README, as lists of commands (continuation lines joined)."""
    blocks = []
    for body in re.findall(r"^```sh\n(.*?)^```", readme, re.S | re.M):
        commands, current = [], ""
        for line in body.splitlines():
            current += line
            if current.endswith("\\"):
                current = current[:-1] + " "
                continue
            if current.strip():
                commands.append(current.strip())
            current = ""
        blocks.append(commands)
    return blocks


def port_open(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_port(port, proc, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if port_open(port):
            return
        assert proc.poll() is None, f"the server exited ({proc.returncode}) before serving"
        time.sleep(1)
    raise AssertionError(f"nothing listens on {port} after {seconds} s")


def capture_assignments(commands):
    """Rewrites `NAME=VALUE  # the FIELD it printed` to read FIELD from the output of the
    command before it (whose output is kept in `$HOARD_README_OUT` and still printed)."""
    out = []
    for c in commands:
        m = re.match(r"^([A-Z_]+)=\S+\s+# the (\w+) it printed$", c)
        if m:
            name, field = m.groups()
            prev = re.sub(r"\s+#\s.*$", "", out.pop())  # its comment would swallow the `)`
            out.append(f'HOARD_README_OUT=$({prev}); printf "%s\\n" "$HOARD_README_OUT"')
            out.append(
                f'{name}=$(printf "%s" "$HOARD_README_OUT" | python3 -c '
                f'"import json,sys; print(json.load(sys.stdin)[{field!r}])")'
            )
        else:
            out.append(c)
    return out


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    for port in (9000, 9443):
        if port_open(port):
            pytest.fail(f"port {port} is taken: README's commands use it")
    work = tmp_path_factory.mktemp("readme")
    subprocess.run(["git", "clone", "-q", str(ROOT), str(work / "hoard")], check=True)
    return work


def test_every_readme_command_runs_as_written(clone):
    repo = clone / "hoard"
    readme = (repo / "README.md").read_text()
    blocks = sh_blocks(readme)
    run_blocks = [b for b in blocks if not b[0].startswith(SKIPPED)]
    skipped = [b[0] for b in blocks if b[0].startswith(SKIPPED)]
    assert len(skipped) == 7, f"README's skipped blocks changed: {skipped}"
    run_command = run_blocks.pop(0)
    assert run_command == ["cargo run --release -p hoard-appliance --bin hoard -- serve"]
    https = run_blocks.pop(0)
    assert all(c.startswith("hoard serve ") for c in https), https

    install_root = clone / "cargo-root"
    env = dict(
        os.environ,
        CARGO_TARGET_DIR=str(ROOT / "target"),
        CARGO_BUILD_TARGET="x86_64-unknown-linux-gnu",
        RUSTFLAGS="-C target-feature=+crt-static",
        CARGO_INSTALL_ROOT=str(install_root),
        PATH=f"{install_root / 'bin'}:{os.environ['PATH']}",
        HOARD_LOG="warn",
    )
    for name in ("HOARD_ACCESS_KEY", "HOARD_SECRET_KEY", "HOARD_ENDPOINT", "HOARD_BIN"):
        env.pop(name, None)
    (repo / "holiday.jpg").write_bytes(os.urandom(300_000))

    server_log = open(clone / "server.log", "w")
    server = subprocess.Popen(shlex.split(run_command[0]), cwd=repo, env=env,
                              stdout=server_log, stderr=subprocess.STDOUT)
    try:
        wait_port(9000, server, 1800)
        commands = [c for b in run_blocks for c in capture_assignments(b)]
        shutdown = [c for c in commands if "/_hoard/shutdown" in c]
        assert len(shutdown) == 1, shutdown
        commands = [c for c in commands if c not in shutdown]
        script = "set -eu\n" + "\n".join(commands) + "\n"
        done = subprocess.run(["bash", "-c", script], cwd=repo, env=env,
                              capture_output=True, text=True, timeout=1800)
        assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
        out = done.stdout
        # What the commands showed, as README says they would.
        assert "<HoardStatus" in out, out[:2000]
        assert "2026/holiday.jpg" in out, out
        assert (repo / "copy.jpg").read_bytes() == (repo / "holiday.jpg").read_bytes()
        assert "ec:2+1" in out, out
        assert "hoard_" in out, "the metrics were printed"
        assert (install_root / "bin" / "hoard").exists(), "cargo install put hoard on PATH"
        # The shutdown line stops the server cleanly.
        last = subprocess.run(["bash", "-c", "set -eu\n" + commands_prefix(commands) + shutdown[0]],
                              cwd=repo, env=env, capture_output=True, text=True, timeout=120)
        assert last.returncode == 0, last.stderr
        assert server.wait(timeout=120) == 0, (clone / "server.log").read_text()[-3000:]
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=120)
        server_log.close()

    # HTTPS, one server at a time, with a certificate made for it.
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-keyout", "key.pem", "-out", "cert.pem"],
                   cwd=repo, check=True, capture_output=True)
    for command in https:
        command = command.split("#")[0].strip()
        proc = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=repo, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_port(9443, proc, 120)
            if "--listen 127.0.0.1:9000" in command:
                wait_port(9000, proc, 60)
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=120) == 0, command


def commands_prefix(commands):
    """The lines that set `$KEY` and `$SECRET` (the shutdown line signs with them)."""
    return "\n".join(c for c in commands if c.startswith("KEY=")) + "\n"
