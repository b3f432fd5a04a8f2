#!/usr/bin/env bash
# Compare retcd with etcd 3.4.23 (Debian's /usr/bin/etcd) on this machine.
#
# Builds release binaries, then starts each server in turn (never both at once,
# so they do not compete for cores), as a single member (or BENCH_MEMBERS
# members) on free loopback ports
# with a fresh data dir under the same filesystem and the same flags, and runs
# the same etcd-bench workloads against it. Prints machine info and a markdown
# table of requests/sec, p50/p99 latency and CPU per request with the
# retcd/etcd ratio; raw reports (JSON) and server logs are kept in the results
# directory it names.
#
# CPU per request: the server's is the user+system time of its member
# processes (/proc/<pid>/stat, summed over members) from just before etcd-bench
# starts to just after it exits, divided by the requests asked for; the
# client's is what etcd-bench reports of itself over the timed run. On a small
# machine the two share the cores, so server CPU per request is the fairest
# measure of a server's cost; requests/sec also depends on the client's.
#
# Usage: scripts/bench.sh
#
# Environment:
#   ETCD_BIN        reference server            (default /usr/bin/etcd; installed with apt if missing)
#   RETCD_ETCD      server in the "retcd" column (default target/release/etcd; when set, retcd-server
#                   is not built, e.g. RETCD_ETCD=/usr/bin/etcd for a dry run of the script)
#   BENCH_SCALE     multiplies every workload's request count (default 1: ~10-20 s per run for etcd
#                   on a 2-core VM; 0.05 for a quick check)
#   BENCH_DIR       where data dirs and results go (default target/bench; keep it on the disk you
#                   want to measure, not a tmpfs)
#   BENCH_TIMEOUT   seconds allowed per workload run (default 600)
#   BENCH_KEEP_DATA 1 to keep the servers' data dirs
#   BENCH_MEMBERS   members per cluster (default 1); with 3, each server runs as a 3-member
#                   cluster on this machine and the clients spread their connections over
#                   every member (followers forward writes to the leader)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

etcd_bin=${ETCD_BIN:-/usr/bin/etcd}
retcd_bin=${RETCD_ETCD:-$repo/target/release/etcd}
bench_bin=$repo/target/release/etcd-bench
scale=${BENCH_SCALE:-1}
bench_dir=${BENCH_DIR:-$repo/target/bench}
run_timeout=${BENCH_TIMEOUT:-600}
keep_data=${BENCH_KEEP_DATA:-0}
members=${BENCH_MEMBERS:-1}

# Workloads: id | description | base request count | etcd-bench arguments.
# Request counts are sized for ~10-20 s each against etcd 3.4.23 on a 2-core VM.
val_size=256
key_space=100000
range_key=bench-range-key
workloads=(
  "put-1|put, 1 client, 1 conn|20000|--clients 1 --conns 1 put --key-size 8 --val-size $val_size --key-space-size $key_space"
  "put-100|put, 100 clients, 10 conns|150000|--clients 100 --conns 10 put --key-size 8 --val-size $val_size --key-space-size $key_space"
  "range-l-1|range linearizable, 1 client, 1 conn|30000|--clients 1 --conns 1 range $range_key --consistency l"
  "range-l-100|range linearizable, 100 clients, 10 conns|120000|--clients 100 --conns 10 range $range_key --consistency l"
  "range-s-100|range serializable, 100 clients, 10 conns|150000|--clients 100 --conns 10 range $range_key --consistency s"
)

log() { echo "bench.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=scripts/bench-lib.sh
source "$repo/scripts/bench-lib.sh"

server_pids=()
bench_pid=""
data_dirs=()

# Stops the running members, if any: SIGTERM, then SIGKILL after 10 s.
stop_server() {
  local pid
  for pid in "${server_pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  # All members stop at once; then each is waited for (or killed).
  for pid in "${server_pids[@]}"; do
    stop_pid "$pid"
  done
  server_pids=()
}

cleanup() {
  if [[ -n $bench_pid ]]; then
    kill -TERM "$bench_pid" 2>/dev/null || true
    wait "$bench_pid" 2>/dev/null || true
  fi
  stop_server
  if [[ $keep_data != 1 ]]; then
    for dir in "${data_dirs[@]}"; do rm -rf "$dir"; done
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The number after "key": in one-line JSON file $1 (etcd-bench --json output).
json_num() {
  [[ -s $1 ]] || return 0
  sed -n "s/.*\"$2\":\([-0-9.eE+]*\).*/\1/p" "$1" | head -n 1
}

# Clock ticks per second of /proc/<pid>/stat times.
clk_tck=$(getconf CLK_TCK 2>/dev/null || echo 100)

# User+system CPU ticks of the running members, summed; empty if any member's
# /proc entry cannot be read. Fields are counted after the last ')' because the
# process name may hold spaces: utime and stime are fields 14 and 15 of the
# line, the 12th and 13th after the name.
server_cpu_ticks() {
  local pid line total=0
  for pid in "${server_pids[@]}"; do
    line=$(cat "/proc/$pid/stat" 2>/dev/null) || return 0
    line=${line##*) }
    total=$(awk -v t="$total" '{ print t + $12 + $13 }' <<<"$line")
  done
  echo "$total"
}

# Server CPU µs per request from ticks $1 (before) and $2 (after) over $3
# requests; empty when a reading is missing.
server_cpu_us() {
  [[ -n $1 && -n $2 ]] || return 0
  awk -v a="$1" -v b="$2" -v n="$3" -v hz="$clk_tck" 'BEGIN { printf "%.1f", (b - a) * 1e6 / hz / n }'
}

# printf-formats number $2 with format $1, or prints n/a when it is empty.
fmt() {
  if [[ -z $2 ]]; then echo "n/a"; else awk -v v="$2" -v f="$1" 'BEGIN { printf f, v }'; fi
}

# retcd/etcd as "1.23x", or n/a.
ratio() {
  if [[ -z $1 || -z $2 ]]; then echo "n/a"; return; fi
  awk -v e="$1" -v r="$2" 'BEGIN { if (e == 0) print "n/a"; else printf "%.2fx", r / e }'
}

# Starts server binary $2 as a cluster of $members members labelled $1 (all at
# once: a new cluster needs a quorum); sets server_pids and endpoint (every
# member's client URL, comma-separated).
start_server() {
  local label=$1 bin=$2 data_dir i client_port peer_port cluster="" used=" "
  data_dir=$(mktemp -d "$run_dir/$label-data.XXXXXX")
  data_dirs+=("$data_dir")
  local client_urls=() peer_urls=()
  for i in $(seq 1 "$members"); do
    client_port=$(free_port)
    while [[ $used == *" $client_port "* ]]; do client_port=$(free_port); done
    used+="$client_port "
    peer_port=$(free_port)
    while [[ $used == *" $peer_port "* ]]; do peer_port=$(free_port); done
    used+="$peer_port "
    client_urls+=("http://127.0.0.1:$client_port")
    peer_urls+=("http://127.0.0.1:$peer_port")
    cluster+="${cluster:+,}bench$i=http://127.0.0.1:$peer_port"
  done
  endpoint=$(IFS=,; echo "${client_urls[*]}")
  log "starting $label ($bin), $members member(s) on $endpoint, data dir $data_dir"
  for i in $(seq 1 "$members"); do
    "$bin" --name "bench$i" --data-dir "$data_dir/member$i-data" \
      --listen-client-urls "${client_urls[i-1]}" --advertise-client-urls "${client_urls[i-1]}" \
      --listen-peer-urls "${peer_urls[i-1]}" --initial-advertise-peer-urls "${peer_urls[i-1]}" \
      --initial-cluster "$cluster" --initial-cluster-state new \
      >"$run_dir/$label.server$i.log" 2>&1 &
    server_pids+=($!)
  done
  # Ready once a linearizable read succeeds through every member: a leader is
  # elected and every member serves.
  local pid ready
  for _ in $(seq 1 120); do
    for pid in "${server_pids[@]}"; do
      kill -0 "$pid" 2>/dev/null || {
        tail -n 20 "$run_dir/$label".server*.log >&2
        die "$label exited during startup (logs: $run_dir/$label.server*.log)"
      }
    done
    ready=1
    for i in $(seq 1 "$members"); do
      "$bench_bin" --endpoints "${client_urls[i-1]}" --total 1 --dial-timeout-secs 1 --json \
        range bench-ready >/dev/null 2>&1 || { ready=0; break; }
    done
    [[ $ready == 1 ]] && return 0
    sleep 0.5
  done
  die "$label not ready after 60 s (logs: $run_dir/$label.server*.log)"
}

# Runs every workload against the server labelled $1 at $endpoint.
run_workloads() {
  local label=$1 entry id desc base args total out rc cpu_before cpu_after server_us server_ticks
  for entry in "${workloads[@]}"; do
    IFS='|' read -r id desc base args <<<"$entry"
    if [[ $id == range-l-1 ]]; then
      log "$label: seeding $range_key with a $val_size-byte value"
      "$etcdctl_bin" --endpoints "${endpoint%%,*}" put "$range_key" "$seed_value" >/dev/null
    fi
    total=$(awk -v b="$base" -v s="$scale" 'BEGIN { t = int(b * s); print (t < 1 ? 1 : t) }')
    out=$run_dir/$label.$id.json
    log "$label: $desc, $total requests"
    rc=0
    cpu_before=$(server_cpu_ticks)
    # shellcheck disable=SC2086 # args is a word list on purpose
    # In the background so a signal to this script is handled at once, not
    # after the run; cleanup stops it.
    timeout "$run_timeout" "$bench_bin" --endpoints "$endpoint" --json --total "$total" $args \
      >"$out" &
    bench_pid=$!
    wait "$bench_pid" || rc=$?
    bench_pid=""
    cpu_after=$(server_cpu_ticks)
    server_us=$(server_cpu_us "$cpu_before" "$cpu_after" "$total")
    server_ticks=null
    if [[ -n $cpu_before && -n $cpu_after ]]; then server_ticks=$((cpu_after - cpu_before)); fi
    echo "{\"server_cpu_ticks\":$server_ticks,\"server_cpu_us_per_request\":${server_us:-null}}" \
      >"$run_dir/$label.$id.server-cpu.json"
    if [[ $rc -ne 0 ]]; then
      log "$label: $id exited with status $rc (1: some requests failed, 124: timed out)"
    fi
    log "$label: $id: $(fmt '%.0f' "$(json_num "$out" requests_per_sec)") req/s," \
      "p99 $(fmt '%.3f' "$(json_num "$out" p99)") ms, failed $(json_num "$out" failed)," \
      "server CPU $(fmt '%.1f' "$server_us") µs/req, client CPU $(fmt '%.1f' "$(json_num "$out" client_cpu_us_per_request)") µs/req"
  done
}

# --- Build and prerequisites -------------------------------------------------

if [[ ! -x $etcd_bin && $etcd_bin == /usr/bin/etcd ]]; then
  log "installing Debian's etcd-server and etcd-client"
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq etcd-server etcd-client >/dev/null
fi
[[ -x $etcd_bin ]] || die "reference etcd not found at $etcd_bin"
etcdctl_bin=$(dirname "$etcd_bin")/etcdctl
[[ -x $etcdctl_bin ]] || etcdctl_bin=$(command -v etcdctl) || die "etcdctl not found (apt-get install etcd-client)"
export ETCDCTL_API=3

if [[ -n ${RETCD_ETCD:-} ]]; then
  log "building etcd-bench (release); retcd column runs $retcd_bin"
  cargo build --release -p retcd-bench
else
  log "building retcd and etcd-bench (release)"
  cargo build --release -p retcd-server -p retcd-bench
fi
[[ -x $retcd_bin ]] || die "retcd server not found at $retcd_bin"

load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)
if awk -v l="${load_at_start%% *}" -v n="$(nproc)" 'BEGIN { exit !(l > n / 2) }'; then
  log "warning: load average is $load_at_start on $(nproc) CPUs; other work will skew the numbers"
fi

mkdir -p "$bench_dir"
run_dir=$(mktemp -d "$bench_dir/run-$(date +%Y%m%d-%H%M%S)-XXXX")
seed_value=$(head -c "$val_size" /dev/zero | tr '\0' v)

# --- Run: etcd, then retcd -----------------------------------------------------

start_server etcd "$etcd_bin"
run_workloads etcd
stop_server

start_server retcd "$retcd_bin"
run_workloads retcd
stop_server

# --- Report ----------------------------------------------------------------------

report() {
  local fs_source fs_type
  read -r fs_source fs_type < <(df -PT "$run_dir" | awk 'NR == 2 { print $1, $2 }')
  echo "## etcd 3.4.23 vs retcd, $members member(s)"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), retcd commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "- machine: $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)), $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) memory"
  echo "- OS: $(sed -n 's/^PRETTY_NAME="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' /etc/os-release 2>/dev/null), kernel $(uname -srm)"
  echo "- load average (1/5/15 min): $load_at_start at start, $(cut -d' ' -f1-3 /proc/loadavg) at end"
  echo "- data dirs: $bench_dir on $fs_source ($fs_type)"
  echo "- etcd: $etcd_bin ($("$etcd_bin" --version 2>/dev/null | head -n 1))"
  echo "- retcd: $retcd_bin ($("$retcd_bin" --version 2>/dev/null | head -n 1))"
  echo "- each server alone, $members member(s) on this machine, fresh data dirs, same flags; values $val_size B, keys 8 B over $key_space keys; BENCH_SCALE=$scale"
  echo
  echo "| workload | metric | etcd 3.4.23 | retcd | ratio |"
  echo "| --- | --- | ---: | ---: | ---: |"
  local entry id desc base args metric key format file ev rv
  for entry in "${workloads[@]}"; do
    IFS='|' read -r id desc base args <<<"$entry"
    for metric in "req/s|requests_per_sec|%.0f|json" "p50 ms|p50|%.3f|json" "p99 ms|p99|%.3f|json" \
      "server CPU µs/req|server_cpu_us_per_request|%.1f|server-cpu.json" \
      "client CPU µs/req|client_cpu_us_per_request|%.1f|json"; do
      IFS='|' read -r metric key format file <<<"$metric"
      ev=$(json_num "$run_dir/etcd.$id.$file" "$key")
      rv=$(json_num "$run_dir/retcd.$id.$file" "$key")
      echo "| $desc | $metric | $(fmt "$format" "$ev") | $(fmt "$format" "$rv") | $(ratio "$ev" "$rv") |"
      desc=""
    done
    ev=$(json_num "$run_dir/etcd.$id.json" failed)
    rv=$(json_num "$run_dir/retcd.$id.json" failed)
    if [[ ${ev:-x} != 0 || ${rv:-x} != 0 ]]; then
      echo "| | failed | ${ev:-n/a} | ${rv:-n/a} | |"
    fi
  done
  echo
  echo "ratio = retcd / etcd: above 1 is better for req/s, below 1 is better for latency and CPU."
  echo "server CPU µs/req: user+system time of the server's member processes over the run, per request"
  echo "(the server's cost); client CPU µs/req: etcd-bench's own, the same client for both servers."
  echo "Raw reports and server logs: $run_dir"
}

report | tee "$run_dir/report.md"
