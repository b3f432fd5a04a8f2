#!/usr/bin/env bash
# The test command: builds every binary, then runs every test in the workspace.
#
# The end-to-end tests (tests/) compare our binaries with Debian's etcd 3.4.23
# and drive them with Debian's etcdctl, so both are installed when missing;
# the Rust etcd-client crate the tests use needs protoc at build time.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
[[ -x /usr/bin/etcd ]] || missing+=(etcd-server)
[[ -x /usr/bin/etcdctl ]] || missing+=(etcd-client)
command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
if ((${#missing[@]})); then
    sudo=()
    [[ "$(id -u)" -eq 0 ]] || sudo=(sudo)
    echo "installing ${missing[*]}" >&2
    "${sudo[@]}" apt-get update
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

cargo build --workspace --bins
cargo test --workspace --no-fail-fast
