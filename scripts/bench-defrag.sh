#!/usr/bin/env bash
# Defragmentation: real etcd 3.4.23 (Debian's /usr/bin/etcd) and retcd on this
# machine, one after the other (never both at once).
#
# For each server: start it as a single member on free loopback ports with a
# fresh data dir, write PUTS puts of 1 KiB values over KEYS keys (100 clients),
# compact physically at the last revision, then time `etcdctl defrag` while
# one client keeps putting (256 B values, one put in flight). Prints the
# database size (`endpoint status`'s dbSize and dbSizeInUse) after the puts,
# after the compaction and after the defragmentation, the defragmentation's
# duration, and the slowest put of that client (how long writes stood still).
#
# Usage: scripts/bench-defrag.sh
# Environment: ETCD_BIN (default /usr/bin/etcd), RETCD_ETCD (default
# target/release/etcd, built unless set), ETCDCTL (default /usr/bin/etcdctl),
# PUTS (200000), KEYS (20000), BENCH_DIR (target/bench-defrag).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
etcd_bin=${ETCD_BIN:-/usr/bin/etcd}
retcd_bin=${RETCD_ETCD:-$repo/target/release/etcd}
etcdctl=${ETCDCTL:-/usr/bin/etcdctl}
puts=${PUTS:-200000}
keys=${KEYS:-20000}
bench_dir=${BENCH_DIR:-$repo/target/bench-defrag}
run_dir=$bench_dir/$(date +%Y%m%d-%H%M%S)
mkdir -p "$run_dir"

log() { echo "bench-defrag: $*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=scripts/bench-lib.sh
source "$repo/scripts/bench-lib.sh"

if [[ -z ${RETCD_ETCD:-} ]]; then
  cargo build --release -p retcd-server --bin etcd >&2
fi
cargo build --release -p retcd-bench >&2
bench_bin=$repo/target/release/etcd-bench

server_pid=""
stop_server() {
  [[ -n $server_pid ]] || return 0
  stop_pid "$server_pid"
  server_pid=""
}
trap stop_server EXIT

# "revision dbSize dbSizeInUse" of the endpoint $1.
status() {
  "$etcdctl" --endpoints="$1" endpoint status -w json | python3 -c '
import json, sys
s = json.load(sys.stdin)[0]["Status"]
print(s["header"]["revision"], s["dbSize"], s.get("dbSizeInUse", "-"))'
}

# Runs the load, compaction and defragmentation against binary $2, labelled $1.
run_one() {
  local label=$1 bin=$2 endpoint rev size in_use start end
  log "starting $label ($bin)"
  start_single "$bin" "$run_dir/$label-data" "$run_dir/$label.server.log" \
    --quota-backend-bytes 8000000000
  "$bench_bin" --endpoints "$endpoint" --clients 100 --conns 10 --total "$puts" \
    put --val-size 1024 --key-space-size "$keys" >"$run_dir/$label.bench.txt"
  read -r rev size in_use < <(status "$endpoint")
  echo "$label: after $puts puts: revision $rev, dbSize $size, in use $in_use"
  "$etcdctl" --endpoints="$endpoint" compact "$rev" --physical >/dev/null
  read -r rev size in_use < <(status "$endpoint")
  echo "$label: after compaction: dbSize $size, in use $in_use"
  "$bench_bin" --endpoints "$endpoint" --clients 1 --conns 1 --total 6000 \
    put --val-size 256 --key-space-size 1000 >"$run_dir/$label.writer.txt" 2>&1 &
  local writer=$!
  sleep 0.5
  start=$(date +%s%N)
  "$etcdctl" --endpoints="$endpoint" --command-timeout=600s defrag >/dev/null
  end=$(date +%s%N)
  wait "$writer"
  read -r rev size in_use < <(status "$endpoint")
  echo "$label: after defrag: dbSize $size, in use $in_use; defrag took $(((end - start) / 1000000)) ms"
  echo "$label: the writer meanwhile: $(grep -E "Slowest|99.9%" "$run_dir/$label.writer.txt" | tr -s ' \t' ' ' | tr '\n' ' ')"
  stop_server
  rm -rf "$run_dir/$label-data"
}

log "results and logs in $run_dir"
run_one etcd "$etcd_bin" | tee "$run_dir/etcd.txt"
run_one retcd "$retcd_bin" | tee "$run_dir/retcd.txt"
