#!/usr/bin/env bash
# Measures that do not depend on how busy the machine is, for one koogate binary and store backend:
#   CPU per call (koogate's utime+stime from /proc), syscalls per call (strace -c -f), RSS after 20k and 200k calls.
# The load is a fixed number of signed orderNotify calls (examples/load.rs), not a fixed time.
#
#   bash bench/stable.sh                                  # this tree's release build, STORE=local
#   KOOGATE_BIN=/tmp/koogate-old STORE=local bash bench/stable.sh
#   STRACE=0 bash bench/stable.sh                         # skip the strace run
#
# Prints key=value lines; bench/README.md records old-vs-new results.
set -euo pipefail
STORE=${STORE:-local}
CONNECTIONS=${CONNECTIONS:-16}
STRACE=${STRACE:-1}
FIRST=${FIRST:-20000}       # calls before the first RSS reading
SECOND=${SECOND:-180000}    # more calls before the second (20k and 200k by default)
STRACE_CALLS=${STRACE_CALLS:-10000}
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd)
TARGET=$(cd "$REPO_DIR" && cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
if [[ -z ${KOOGATE_BIN:-} ]]; then
    (cd "$REPO_DIR" && cargo build --release --quiet)
    KOOGATE_BIN=$TARGET/release/koogate
fi
LOAD_BIN=${LOAD_BIN:-}
if [[ -z $LOAD_BIN ]]; then
    (cd "$REPO_DIR" && cargo build --release --quiet --example load)
    LOAD_BIN=$TARGET/release/examples/load
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/koogate-stable.XXXXXX")
chmod 755 "$TMP"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT
read -r UP_PORT KOO_PORT ADMIN_PORT < <(python3 -c '
import socket
s = [socket.socket() for _ in range(3)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$TMP/key.pem" \
    -out "$TMP/cert.pem" -days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -addext basicConstraints=critical,CA:FALSE >/dev/null 2>&1
openssl rand -hex 32 >"$TMP/access-key"
openssl rand -hex 32 >"$TMP/journal-key"
mkdir -p "$TMP/upstream/logs"
cat >"$TMP/upstream/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $TMP/upstream/nginx.pid;
error_log $TMP/upstream/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    default_type application/json;
    keepalive_requests 10000000;
    server { listen 127.0.0.1:$UP_PORT; location / { return 200 '{}'; } }
}
EOF
cat >"$TMP/koogate.toml" <<EOF
[server]
listen = "127.0.0.1:$KOO_PORT"
cert_chain_file = "cert.pem"
private_key_file = "key.pem"
shutdown_grace_ms = 1000
[admin]
listen = "127.0.0.1:$ADMIN_PORT"
[verify]
replay_cache_max_entries = 5000000
[[access_keys]]
name = "bench"
file = "access-key"
[upstream]
default_route = "app"
[upstream.routes.app]
url = "http://127.0.0.1:$UP_PORT/koogallery/v2"
[store]
backend = "$STORE"
data_dir = "data"
journal_key_file = "journal-key"
[log]
level = "warn"
EOF
"$NGINX" -p "$TMP/upstream" -c "$TMP/upstream/nginx.conf" &
PIDS+=($!)

start() {  # start koogate, optionally under strace
    if [[ ${1:-} == strace ]]; then
        strace -f -c -o "$TMP/strace.txt" "$KOOGATE_BIN" run --config "$TMP/koogate.toml" >"$TMP/koogate.log" 2>&1 &
    else
        "$KOOGATE_BIN" run --config "$TMP/koogate.toml" >"$TMP/koogate.log" 2>&1 &
    fi
    KOO_PID=$!
    PIDS+=("$KOO_PID")
    for _ in $(seq 200); do
        curl -fsS -o /dev/null "http://127.0.0.1:$ADMIN_PORT/readyz" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "koogate did not start" >&2; cat "$TMP/koogate.log" >&2; exit 1
}
stop() { kill -TERM "$KOO_PID"; wait "$KOO_PID" 2>/dev/null || true; }
# koogate's own pid (under strace, the traced child)
koo_pid() { pgrep -P "$KOO_PID" -x koogate 2>/dev/null || echo "$KOO_PID"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
load() { "$LOAD_BIN" --url "https://127.0.0.1:$KOO_PORT/koogallery/v2" --ca "$TMP/cert.pem" \
    --key-file "$TMP/access-key" --calls "$1" --connections "$CONNECTIONS"; }
TCK=$(getconf CLK_TCK)

start
PID=$(koo_pid)
load 2000 >/dev/null   # warm-up: connection pools, allocator
rss0=$(rss_kb "$PID"); c0=$(cpu_ticks "$PID")
r20=$(load "$FIRST")
c1=$(cpu_ticks "$PID"); rss20=$(rss_kb "$PID")
r200=$(load "$SECOND")
c2=$(cpu_ticks "$PID"); rss200=$(rss_kb "$PID")
stop
echo "store=$STORE bin=$KOOGATE_BIN"
echo "load_first: $r20"
echo "load_second: $r200"
python3 - "$c0" "$c1" "$c2" "$TCK" "$rss0" "$rss20" "$rss200" "$FIRST" "$SECOND" <<'EOF'
import sys
c0, c1, c2, tck, r0, r20, r200, first, second = map(int, sys.argv[1:])
print(f"cpu_us_per_call_first={(c1 - c0) / tck / first * 1e6:.1f}")
print(f"cpu_us_per_call_second={(c2 - c1) / tck / second * 1e6:.1f}")
print(f"rss_kb_after_warmup={r0} rss_kb_after_first={r20} rss_kb_after_second={r200} growth={(r200 - r20) / r20 * 100:.1f}%")
EOF
if [[ $STRACE == 1 ]] && command -v strace >/dev/null; then
    start strace
    load "$STRACE_CALLS" >/dev/null
    stop
    python3 - "$TMP/strace.txt" "$STRACE_CALLS" <<'EOF'
import sys
calls = int(sys.argv[2])
rows = []
for line in open(sys.argv[1]):
    parts = line.split()
    if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] not in ("total",):
        try:
            n = int(parts[3])
        except ValueError:
            continue
        rows.append((n, parts[-1]))
total = sum(n for n, _ in rows)
print(f"syscalls_per_call={total / calls:.2f}")
print("top: " + ", ".join(f"{name}={n / calls:.2f}" for n, name in sorted(rows, reverse=True)[:8]))
EOF
fi
