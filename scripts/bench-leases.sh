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

if [[ -z ${RETCD_ETCD:-} ]]; then
  cargo build --release -p retcd-server --bin etcd >&2
fi
cargo build --release -p retcd-tests --example lease_burst >&2
burst_bin=$repo/target/release/examples/lease_burst

server_pid=""
stop_server() {
  [[ -n $server_pid ]] || return 0
  kill -TERM "$server_pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}
trap stop_server EXIT

# A loopback TCP port nothing listens on.
free_port() {
  local port
  for _ in $(seq 1 200); do
    port=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  die "no free port found"
}

# Runs the burst against binary $2, labelled $1.
run_one() {
  local label=$1 bin=$2 client_port peer_port endpoint peer_url
  client_port=$(free_port)
  peer_port=$(free_port)
  endpoint=http://127.0.0.1:$client_port
  peer_url=http://127.0.0.1:$peer_port
  log "starting $label ($bin) on $endpoint"
  "$bin" --name bench --data-dir "$run_dir/$label-data" \
    --listen-client-urls "$endpoint" --advertise-client-urls "$endpoint" \
    --listen-peer-urls "$peer_url" --initial-advertise-peer-urls "$peer_url" \
    --initial-cluster "bench=$peer_url" >"$run_dir/$label.server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 120); do
    curl -sf "$endpoint/health" | grep -q '"true"' && break
    sleep 0.5
  done
  echo "$label: $("$burst_bin" "$endpoint" "$leases" "$ttl_secs")"
  stop_server
}

log "results and logs in $run_dir"
run_one etcd "$etcd_bin" | tee "$run_dir/etcd.json"
run_one retcd "$retcd_bin" | tee "$run_dir/retcd.json"
