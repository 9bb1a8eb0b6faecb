#!/usr/bin/env bash
# System calls per call (bench/README.md, "System calls"): runs `koogate run` under `strace -c -f` for a fixed batch
# of CALLS signed orderNotify calls sent over CONNS keep-alive TLS connections, once with the memory store and once
# with the local (durable) store, and prints the syscalls per call of each and the difference.
#
# Env: CALLS (2000), CONNS (16), KOOGATE_BIN (skip the build), KEEP_TMP=1.
set -euo pipefail

CALLS=${CALLS:-2000}
CONNS=${CONNS:-16}
KEEP_TMP=${KEEP_TMP:-0}
REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
log() { printf '[syscalls] %s\n' "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }
for tool in openssl python3 strace; do command -v "$tool" >/dev/null || die "$tool is needed"; done
if [[ -z ${KOOGATE_BIN:-} ]]; then
    (cd "$REPO_DIR" && cargo build --release --quiet --bin koogate) || die "build failed"
    KOOGATE_BIN=$(cd "$REPO_DIR" && cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/koogate
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/koogate-syscalls.XXXXXX")
UP_PID=
cleanup() {
    [[ -n $UP_PID ]] && kill "$UP_PID" 2>/dev/null || true
    if [[ $KEEP_TMP == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$TMP/key.pem" \
    -out "$TMP/cert.pem" -days 2 -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1
openssl rand -hex 32 >"$TMP/access-key"
openssl rand -hex 32 >"$TMP/journal-key"
read -r UP_PORT KOO_PORT ADMIN_PORT < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])')

python3 - "$UP_PORT" <<'EOF' &
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200); self.send_header("content-type", "application/json")
        self.send_header("content-length", "2"); self.end_headers(); self.wfile.write(b"{}")
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
EOF
UP_PID=$!

run_one() {  # store
    local store=$1 dir=$TMP/$1
    mkdir -p "$dir"
    cat >"$dir/koogate.toml" <<EOF
[server]
listen = "127.0.0.1:$KOO_PORT"
cert_chain_file = "$TMP/cert.pem"
private_key_file = "$TMP/key.pem"
[admin]
listen = "127.0.0.1:$ADMIN_PORT"
[[access_keys]]
name = "bench"
file = "$TMP/access-key"
[upstream]
default_route = "app"
[upstream.routes.app]
url = "http://127.0.0.1:$UP_PORT/koogallery"
[test_calls]
mode = "forward"
[store]
backend = "$store"
data_dir = "$dir/data"
journal_key_file = "$TMP/journal-key"
[log]
level = "warn"
EOF
    python3 "$REPO_DIR/bench/gen_requests.py" --key-file "$TMP/access-key" --count "$CALLS" --shards "$CONNS" \
        --out "$dir/reqs"
    strace -f -c -o "$dir/strace.txt" "$KOOGATE_BIN" run --config "$dir/koogate.toml" >"$dir/koogate.log" 2>&1 &
    local pid=$!
    for _ in $(seq 200); do curl -fsS -o /dev/null "http://127.0.0.1:$ADMIN_PORT/readyz" 2>/dev/null && break; sleep 0.1; done
    python3 - "$KOO_PORT" "$TMP/cert.pem" "$dir/reqs" "$CONNS" <<'EOF' || die "calls failed ($store)"
import http.client, ssl, sys, threading
port, ca, prefix, conns = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
ctx = ssl.create_default_context(cafile=ca)
bad = []
def worker(i):
    c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx)
    for line in open(f"{prefix}.{i}"):
        target, body = line.rstrip("\n").split("\t", 1)
        c.request("POST", target, body=body, headers={"content-type": "application/json"})
        r = c.getresponse(); answer = r.read()
        if r.status != 200 or b'"000000"' not in answer: bad.append(answer[:200])
threads = [threading.Thread(target=worker, args=(i,)) for i in range(conns)]
[t.start() for t in threads]; [t.join() for t in threads]
if bad: sys.exit(f"{len(bad)} calls failed, e.g. {bad[0]!r}")
EOF
    kill -TERM "$pid"; wait "$pid" || true
    # Everything koogate did, over the calls (start-up and shutdown included: small against CALLS calls).
    python3 - "$dir/strace.txt" "$CALLS" "$store" <<'EOF'
import sys
calls, store = int(sys.argv[2]), sys.argv[3]
rows = {}
for line in open(sys.argv[1]):
    p = line.split()
    if len(p) >= 5 and p[0][0].isdigit() and p[-1] != "total":
        rows[p[-1]] = int(p[3])
total = sum(rows.values())
top = sorted(rows.items(), key=lambda kv: -kv[1])[:8]
print(f"{store}: {total / calls:.1f} syscalls per call; " + ", ".join(f"{k} {v / calls:.2f}" for k, v in top)
      + f"; fdatasync {rows.get('fdatasync', 0) / calls:.3f}")
EOF
}

log "$CALLS calls over $CONNS connections, each store under strace -f -c"
run_one memory
run_one local
