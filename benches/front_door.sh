#!/usr/bin/env bash
# The front door's cost, measured from outside in one run: request rates of anonymous 4 KiB
# GETs and PUTs (wrk, 16 connections, one client thread) and single-stream 64 MiB GETs and
# PUTs (curl), over HTTP and HTTPS, for nginx serving the same file (the reference) and for
# each Hoard build named; with the server's CPU seconds per GiB moved (/proc/PID/stat).
#
#   cargo build --release -p hoard-appliance
#   benches/front_door.sh                                   # target/release/hoard
#   HOARD_BIN="old/hoard new/hoard" benches/front_door.sh   # several builds, side by side
#   FRONT_DOOR_SECONDS=10 benches/front_door.sh             # longer runs (default 5 s)
#
# Needs wrk, nginx, curl and openssl (apt-get install --no-install-recommends wrk nginx-light).
set -euo pipefail
[ -n "${FRONT_DOOR_TRACE:-}" ] && set -x
root=$(cd "$(dirname "$0")/.." && pwd)
secs=${FRONT_DOOR_SECONDS:-5}
bins=${HOARD_BIN:-$root/target/release/hoard}
work=$(mktemp -d "$root/target/front-door.XXXXXX")
trap 'kill $(jobs -p) 2>/dev/null || true; nginx -p "$work/nginx" -c nginx.conf -s stop 2>/dev/null || true; rm -rf "$work"' EXIT
for tool in wrk nginx curl openssl; do
  command -v $tool >/dev/null || { echo "front_door: $tool is missing" >&2; exit 1; }
done

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/key.pem" \
  -out "$work/cert.pem" -days 2 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null
head -c 4096 /dev/urandom >"$work/small"
head -c $((64 << 20)) /dev/urandom >"$work/big"
printf 'wrk.method = "PUT"\nwrk.body = string.rep("x", 4096)\n' >"$work/put.lua"

rate() { # URL [wrk args]: requests per second (every answer must be a success)
  local url=$1 out; shift
  out=$(wrk -t1 -c16 -d"${secs}s" "$@" "$url")
  if grep -q "Non-2xx" <<<"$out"; then
    echo "front_door: $url answered errors: $(grep Non-2xx <<<"$out")" >&2
    exit 1
  fi
  awk '/Requests\/sec/ {print int($2)}' <<<"$out"
}

cpu_s() { # PID: user + system CPU seconds so far, of it and its children (nginx's workers)
  local pids
  pids="$1 $(pgrep -P "$1" | tr '\n' ' ')"
  for p in $pids; do cat "/proc/$p/stat"; done |
    awk -v hz="$(getconf CLK_TCK)" '{s += $14 + $15} END {print s / hz}'
}

big() { # NAME BASE PID CURL-ARGS...: 64 MiB GET and PUT, MiB/s and CPU s per GiB
  local name=$1 base=$2 pid=$3; shift 3
  local n=4 t0 t1 c0 c1
  c0=$(cpu_s "$pid"); t0=$(date +%s.%N)
  for _ in $(seq $n); do curl -sf "$@" -o /dev/null "$base/big"; done
  t1=$(date +%s.%N); c1=$(cpu_s "$pid")
  awk -v n=$n -v c0="$c0" -v c1="$c1" -v t0="$t0" -v t1="$t1" -v name="$name" \
    'BEGIN {printf "%-44s GET 64 MiB  %7.0f MiB/s  %5.2f CPU s/GiB\n", name, n*64/(t1-t0), (c1-c0)/(n/16)}'
  c0=$(cpu_s "$pid"); t0=$(date +%s.%N)
  for _ in $(seq $n); do curl -sf "$@" -o /dev/null -T "$work/big" "$base/big-put"; done
  t1=$(date +%s.%N); c1=$(cpu_s "$pid")
  awk -v n=$n -v c0="$c0" -v c1="$c1" -v t0="$t0" -v t1="$t1" -v name="$name" \
    'BEGIN {printf "%-44s PUT 64 MiB  %7.0f MiB/s  %5.2f CPU s/GiB\n", name, n*64/(t1-t0), (c1-c0)/(n/16)}'
}

# nginx: the same objects as static files, HTTP and HTTPS, the same certificate. Its workers
# run as another user: they must read and write its folders.
mkdir -p "$work/nginx/logs" "$work/nginx/www"
chmod 755 "$work"
cp "$work/small" "$work/big" "$work/nginx/www/"
chmod -R a+rwX "$work/nginx"
cat >"$work/nginx/nginx.conf" <<EOF
worker_processes auto;
pid nginx.pid;
error_log logs/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body;
  client_max_body_size 128m;
  server {
    listen 127.0.0.1:18080;
    listen 127.0.0.1:18443 ssl;
    ssl_certificate $work/cert.pem;
    ssl_certificate_key $work/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    root $work/nginx/www;
    location / { dav_methods PUT; }
  }
}
EOF
nginx -p "$work/nginx" -c nginx.conf
sleep 0.5
ngx_pid=$(cat "$work/nginx/nginx.pid")
echo "front_door: $secs s per rate; 2 cores shared by client and server"
printf '%-44s %s\n' "nginx HTTP  GET 4 KiB" "$(rate http://127.0.0.1:18080/small) req/s"
printf '%-44s %s\n' "nginx HTTPS GET 4 KiB" "$(rate https://127.0.0.1:18443/small) req/s"
printf '%-44s %s\n' "nginx HTTP  PUT 4 KiB" "$(rate http://127.0.0.1:18080/put-small -s "$work/put.lua") req/s"
printf '%-44s %s\n' "nginx HTTPS PUT 4 KiB" "$(rate https://127.0.0.1:18443/put-small -s "$work/put.lua") req/s"
big "nginx HTTP" http://127.0.0.1:18080 "$ngx_pid"
big "nginx HTTPS" https://127.0.0.1:18443 "$ngx_pid" --cacert "$work/cert.pem"

i=0
for bin in $bins; do
  i=$((i + 1))
  data="$work/hoard$i"
  https=()
  "$bin" serve --help | grep -q -- --listen-tls &&
    https=(--listen-tls 127.0.0.1:19443 --tls-cert "$work/cert.pem" --tls-key "$work/key.pem")
  HOARD_ACCESS_KEY=bench HOARD_SECRET_KEY=bench-secret-0123456789 HOARD_LOG=warn \
    "$bin" serve --data "$data" --listen 127.0.0.1:19080 "${https[@]}" >"$work/hoard$i.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do grep -q "serving S3" "$work/hoard$i.log" && break; sleep 0.1; done
  # A public-read-write bucket, so wrk and curl need no signature.
  curl -sf --aws-sigv4 aws:amz:us-east-1:s3 --user bench:bench-secret-0123456789 \
    -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' -H 'x-amz-acl: public-read-write' \
    -X PUT http://127.0.0.1:19080/bench >/dev/null
  for obj in small big; do
    curl -sf -H 'x-amz-acl: public-read' -T "$work/$obj" "http://127.0.0.1:19080/bench/$obj"
  done
  name="hoard $i ($(basename "$(dirname "$bin")")/$(basename "$bin"))"
  printf '%-44s %s\n' "$name HTTP  GET 4 KiB" "$(rate http://127.0.0.1:19080/bench/small) req/s"
  printf '%-44s %s\n' "$name HTTP  PUT 4 KiB" "$(rate http://127.0.0.1:19080/bench/put-small -s "$work/put.lua") req/s"
  big "$name HTTP" http://127.0.0.1:19080/bench "$pid"
  if [ ${#https[@]} -gt 0 ]; then
    printf '%-44s %s\n' "$name HTTPS GET 4 KiB" "$(rate https://127.0.0.1:19443/bench/small) req/s"
    printf '%-44s %s\n' "$name HTTPS PUT 4 KiB" "$(rate https://127.0.0.1:19443/bench/put-small -s "$work/put.lua") req/s"
    big "$name HTTPS" https://127.0.0.1:19443/bench "$pid" --cacert "$work/cert.pem"
  fi
  kill "$pid"; wait "$pid" || true
done
