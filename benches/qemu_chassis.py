#!/usr/bin/env python3
"""The appliance's figures on the QEMU profile (P7): the firmware image booted by
appliance/scripts/boot-qemu with its HDDs throttled to the profile's figures (250 MB/s and
170 IOPS each), driven from the host through the forwarded plain-HTTP S3 port:

- durable 4 KiB PUTs per second (wrk, 32 connections, presigned URLs of new keys) against the
  pool's summed IOPS (goal: at least 10x, since small objects are inline in the index and
  commit in groups on the NVMe SSDs);
- 64 MiB PUTs and GETs (boto3, --in-flight at once: by default 2, what one account's share of
  the profile's data streams admits without SlowDown) against the pool's summed MB/s (goal: at least
  90% of what the HDDs can take once erasure coding's parity is paid, network permitting).

Usage: cargo build --release ... && appliance/scripts/build-image && benches/qemu_chassis.py
       [--kvm] [--seconds N] [--objects N]
Needs wrk, QEMU and boto3. Under TCG (the default, as the tests boot) the guest's emulated
CPU bounds every figure; --kvm (when /dev/kvm is usable) measures the I/O path instead.
Not a timed test: developers run it and report the figures.
"""

import argparse
import concurrent.futures
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib

import boto3
from botocore.config import Config

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
ACCESS, SECRET = "QEMUCHASSISBENCHKEY1", "qemu-chassis-bench-secret-0123456789ab"
HTTP_PORT, S3_PORT = 19480, 19443

WRK_LUA = r"""
local threads = {}
function setup(thread) thread:set("id", #threads); table.insert(threads, thread) end
function init(args)
  paths = {}
  for line in io.lines(args[1]) do paths[#paths + 1] = line end
  body = string.rep("x", 4096)
  i = id
end
function request()
  local path = paths[(i % #paths) + 1]
  i = i + 2
  return wrk.format("PUT", path, nil, body)
end
function done(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %d %d\n", summary.requests, summary.errors.status,
    summary.duration, latency:percentile(50), latency:percentile(99)))
end
"""


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kvm", action="store_true")
    p.add_argument("--seconds", type=int, default=8)
    p.add_argument("--objects", type=int, default=16, help="64 MiB objects per phase")
    p.add_argument("--in-flight", type=int, default=2, help="64 MiB requests at once")
    args = p.parse_args()
    with open(os.path.join(ROOT, "hwprofiles", "qemu.toml"), "rb") as f:
        profile = tomllib.load(f)
    hdd = profile["hdd"]
    pool_iops = hdd["count"] * hdd["random_read_iops"]
    pool_mb_s = hdd["count"] * hdd["seq_mb_s"]
    data, parity = (int(x) for x in profile["pool"][0]["protection"][3:].split("+"))
    work = tempfile.mkdtemp(prefix="qemu-chassis-", dir=os.path.join(ROOT, "target"))
    cmd = [os.path.join(ROOT, "appliance", "scripts", "boot-qemu"), "--disks", work,
           "--http-port", str(HTTP_PORT), "--s3-port", str(S3_PORT)]
    if args.kvm:
        cmd.append("--kvm")
    env = dict(os.environ, HOARD_ACCESS_KEY=ACCESS, HOARD_SECRET_KEY=SECRET)
    guest = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True)
    try:
        for line in guest.stderr:
            if "first S3 answer" in line:
                print(line.strip(), file=sys.stderr)
                break
        else:
            sys.exit("the guest never answered S3")
        endpoint = f"http://127.0.0.1:{HTTP_PORT}"
        s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=ACCESS,
                          aws_secret_access_key=SECRET, region_name="us-east-1",
                          config=Config(max_pool_connections=16,
                                        retries={"mode": "standard", "max_attempts": 5}))
        s3.create_bucket(Bucket="p7-bench")
        print(f"qemu_chassis: {'KVM' if args.kvm else 'TCG'}, {hdd['count']} HDDs at "
              f"{hdd['seq_mb_s']} MB/s and {hdd['random_read_iops']} IOPS each "
              f"(pool: {pool_mb_s} MB/s, {pool_iops} IOPS), {profile['pool'][0]['protection']}")

        # Durable 4 KiB PUTs of new keys.
        urls = [s3.generate_presigned_url("put_object", Params={"Bucket": "p7-bench", "Key": f"s{i}"},
                                          ExpiresIn=3600) for i in range(200_000)]
        paths = os.path.join(work, "put.paths")
        with open(paths, "w") as f:
            f.writelines(u[len(endpoint):] + "\n" for u in urls)
        lua = os.path.join(work, "put.lua")
        with open(lua, "w") as f:
            f.write(WRK_LUA)
        out = subprocess.run(["wrk", "-t2", "-c32", f"-d{args.seconds}s", "-s", lua, endpoint,
                              "--", paths], capture_output=True, text=True, check=True).stdout
        n, errors, duration_us, p50, p99 = (int(x) for x in
                                            next(l for l in out.splitlines()
                                                 if l.startswith("RESULT")).split()[1:])
        assert errors == 0, out
        rate = n / (duration_us / 1e6)
        print(f"PUT 4 KiB (durable, new keys, 32 connections): {rate:8.0f} req/s = "
              f"{rate / pool_iops:.1f}x the pool's IOPS; p50 {p50 / 1e3:.1f} ms, "
              f"p99 {p99 / 1e3:.1f} ms")

        # 64 MiB PUTs and GETs.
        body = os.urandom(64 << 20)
        # What the HDDs can take of object bytes once parity is written too.
        data_mb_s = pool_mb_s * data / (data + parity)

        def put(i):
            s3.put_object(Bucket="p7-bench", Key=f"b{i}", Body=body)

        def get(i):
            assert len(s3.get_object(Bucket="p7-bench", Key=f"b{i}")["Body"].read()) == len(body)

        for name, op, limit in [("PUT", put, data_mb_s), ("GET", get, data_mb_s)]:
            t = time.time()
            with concurrent.futures.ThreadPoolExecutor(args.in_flight) as pool:
                list(pool.map(op, range(args.objects)))
            mb_s = args.objects * len(body) / 1e6 / (time.time() - t)
            print(f"{name} 64 MiB ({args.in_flight} in flight): {mb_s:8.1f} MB/s = {mb_s / limit:.0%} of the "
                  f"pool's {limit:.0f} MB/s of object bytes ({pool_mb_s} MB/s raw, "
                  f"{profile['pool'][0]['protection']})")
    finally:
        subprocess.run([os.path.join(ROOT, "appliance", "scripts", "boot-qemu"),
                        "--press-power-button", "--disks", work], capture_output=True)
        try:
            guest.wait(timeout=120)
        except subprocess.TimeoutExpired:
            guest.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
