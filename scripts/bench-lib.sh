# Helpers the bench scripts share; sourced by them, never run. The sourcing
# script defines `die`.

# A loopback TCP port nothing listens on (bash's /dev/tcp: connect fails).
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

# Stops process $1: SIGTERM, then SIGKILL after 10 s.
stop_pid() {
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 "$1" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# Starts binary $1 as a single member named `bench` with data dir $2, its
# output in $3 and the flags after those, on free loopback ports; sets
# `server_pid` and `endpoint` and waits until /health says true.
start_single() {
  local bin=$1 data=$2 out=$3 peer_url
  shift 3
  endpoint=http://127.0.0.1:$(free_port)
  peer_url=http://127.0.0.1:$(free_port)
  "$bin" --name bench --data-dir "$data" \
    --listen-client-urls "$endpoint" --advertise-client-urls "$endpoint" \
    --listen-peer-urls "$peer_url" --initial-advertise-peer-urls "$peer_url" \
    --initial-cluster "bench=$peer_url" "$@" >"$out" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 120); do
    curl -sf "$endpoint/health" | grep -q '"true"' && return 0
    sleep 0.5
  done
  die "$bin did not become healthy; see $out"
}
