"""The memory budget holds under a mixed load of a real client: rclone with 16 transfers
putting and getting 4 KiB, 64 KiB and multipart objects at once, on the dev profile planned
for 1 GiB of memory. The server's peak resident size (VmHWM, from GET /_hoard/status) stays
within the profile's `memory_budget_bytes`; with glibc's allocator it did not (rclone's 1 GiB
sets reached 945 MiB against 888.8 MiB).

`HOARD_MEMORY_ROUNDS` (default 1) repeats the load; `HOARD_MEMORY_BIG_MIB` (default 16)
sizes the multipart objects."""

import os
import pathlib
import re
import subprocess

import pytest

from hoard_server import admin, rclone_env, scratch_server

ROOT_KEY = ("memory-root-access", "memory-root-secret-0123456789abcdef")
ROUNDS = int(os.environ.get("HOARD_MEMORY_ROUNDS", "1"))
BIG_MIB = int(os.environ.get("HOARD_MEMORY_BIG_MIB", "16"))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = pathlib.Path(__file__).resolve().parents[2]
    text = (root / "hwprofiles" / "dev.toml").read_text()
    planned = re.sub(r"memory_bytes = [0-9_]+", "memory_bytes = 1_073_741_824", text)
    assert planned != text
    profile = tmp_path_factory.mktemp("profile") / "dev-1gib.toml"
    profile.write_text(planned)
    yield from scratch_server(*ROOT_KEY, args=["--profile", str(profile)])


def memory(server):
    text = admin(server, "status", parse=False)
    fields = ("BudgetBytes", "ResidentBytes", "PeakResidentBytes")
    return {f: int(re.search(f"<{f}>([0-9]+)</{f}>", text).group(1)) for f in fields}


def test_peak_resident_size_stays_within_the_budget_under_mixed_load(server, tmp_path):
    src = tmp_path / "src"
    sets = {"small": (400, 4096), "mid": (200, 65536), "big": (16, BIG_MIB << 20)}
    for name, (count, size) in sets.items():
        (src / name).mkdir(parents=True)
        block = os.urandom(min(size, 1 << 20))
        body = block * (size // len(block))
        for i in range(count):
            # Every object differs in its last 8 bytes.
            (src / name / str(i)).write_bytes(body[:-8] + i.to_bytes(8, "little"))
    env = rclone_env(server, ROOT_KEY)
    # Objects over 8 MiB go up as multipart uploads of 5 MiB parts, 4 at once per object.
    flags = ["--transfers", "16", "--checkers", "16", "--s3-upload-cutoff", "8M",
             "--s3-chunk-size", "5M", "--s3-upload-concurrency", "4"]

    def rclone(*args):
        subprocess.run(["rclone", *flags, *args], env=env, check=True, capture_output=True)

    rclone("mkdir", "hoard:mem")
    budget = memory(server)["BudgetBytes"]
    for r in range(ROUNDS):
        for name in sets:
            rclone("copy", str(src / name), f"hoard:mem/r{r}/{name}")
        back = tmp_path / f"back{r}"
        rclone("copy", f"hoard:mem/r{r}", str(back))
        for name, (count, _) in sets.items():
            for i in range(count):
                assert (back / name / str(i)).read_bytes() == (src / name / str(i)).read_bytes()
        got = memory(server)
        print(f"round {r + 1}: peak resident {got['PeakResidentBytes'] >> 20} MiB, resident "
              f"{got['ResidentBytes'] >> 20} MiB, budget {budget >> 20} MiB")
        assert got["PeakResidentBytes"] <= budget, got
