#!/usr/bin/env bash
# Lease-expiry burst: real etcd 3.4.23 (Debian's /usr/bin/etcd) and retcd on
# this machine, one after the other (never both at once).
#
# For each server: start it as a single member on free loopback ports with a
# fresh data dir, run tests/examples/lease_burst.rs (grant LEASES leases of
# TTL_SECS, each with one attached key, so they all expire within about a
# second, while one writer puts continuously), and print its JSON result: the
# writer's worst and p99 put latency during the burst (first expiry until
# every lease is revoked) and in the quiet period before it.
#
# Usage: scripts/bench-leases.sh
# Environment: ETCD_BIN (default /usr/bin/etcd), RETCD_ETCD (default
# target/release/etcd, built unless set), LEASES (10000), TTL_SECS (10),
# BENCH_DIR (target/bench-leases).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
etcd_bin=${ETCD_BIN:-/usr/bin/etcd}
retcd_bin=${RETCD_ETCD:-$repo/target/release/etcd}
leases=${LEASES:-10000}
ttl_secs=${TTL_SECS:-10}
bench_dir=${BENCH_DIR:-$repo/target/bench-leases}
run_dir=$bench_dir/$(date +%Y%m%d-%H%M%S)
mkdir -p "$run_dir"

log() { echo "bench-leases: $*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=scripts/bench-lib.sh
source "$repo/scripts/bench-lib.sh"

if [[ -z ${RETCD_ETCD:-} ]]; then
  cargo build --release -p retcd-server --bin etcd >&2
fi
cargo build --release -p retcd-tests --example lease_burst >&2
burst_bin=$repo/target/release/examples/lease_burst

server_pid=""
stop_server() {
  [[ -n $server_pid ]] || return 0
  stop_pid "$server_pid"
  server_pid=""
}
trap stop_server EXIT

# Runs the burst against binary $2, labelled $1.
run_one() {
  local label=$1 bin=$2 endpoint
  log "starting $label ($bin)"
  start_single "$bin" "$run_dir/$label-data" "$run_dir/$label.server.log"
  echo "$label: $("$burst_bin" "$endpoint" "$leases" "$ttl_secs")"
  stop_server
}

log "results and logs in $run_dir"
run_one etcd "$etcd_bin" | tee "$run_dir/etcd.json"
run_one retcd "$retcd_bin" | tee "$run_dir/retcd.json"
