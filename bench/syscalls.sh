#!/usr/bin/env bash
# System calls per call (bench/README.md, "System calls"): runs `koogate run` under `strace -c -f` for a fixed batch
# of CALLS signed orderNotify calls sent over CONNS keep-alive TLS connections, once with the memory store and once
# with the local (durable) store, then nginx as a TLS reverse proxy to the same upstream (run.sh's reference), and
# prints the syscalls per call of each (start-up and shutdown included: small against CALLS calls).
#
# Env: CALLS (2000), CONNS (16), KOOGATE_BIN (skip the build), NGINX (nginx), KEEP_TMP=1.
set -euo pipefail

CALLS=${CALLS:-2000}
CONNS=${CONNS:-16}
KEEP_TMP=${KEEP_TMP:-0}
NGINX=${NGINX:-nginx}
REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
log() { printf '[syscalls] %s\n' "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }
for tool in openssl python3 strace curl pgrep "$NGINX"; do command -v "$tool" >/dev/null || die "$tool is needed"; done
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

# send_calls PORT REQUESTS_PREFIX EXPECT: CONNS keep-alive TLS connections, each sending its shard of the calls;
# every answer must be a 200 that contains EXPECT.
send_calls() {
    python3 - "$1" "$TMP/cert.pem" "$2" "$CONNS" "$3" <<'EOF'
import http.client, ssl, sys, threading
port, ca, prefix, conns, expect = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5].encode()
ctx = ssl.create_default_context(cafile=ca)
bad = []
def worker(i):
    c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx)
    for line in open(f"{prefix}.{i}"):
        target, body = line.rstrip("\n").split("\t", 1)
        c.request("POST", target, body=body, headers={"content-type": "application/json"})
        r = c.getresponse(); answer = r.read()
        if r.status != 200 or expect not in answer: bad.append(answer[:200])
threads = [threading.Thread(target=worker, args=(i,)) for i in range(conns)]
[t.start() for t in threads]; [t.join() for t in threads]
if bad: sys.exit(f"{len(bad)} calls failed, e.g. {bad[0]!r}")
EOF
}

# stop_traced STRACE_PID: SIGTERM to the traced process (a SIGTERM to strace would only detach it and leave it
# running on its port), then waits for strace to write its summary.
stop_traced() {
    local tracee
    tracee=$(pgrep -P "$1" | head -n 1 || true)
    [[ -n $tracee ]] && kill -TERM "$tracee"
    wait "$1" || true
}

# summary STRACE_FILE NAME: syscalls per call, the eight most frequent, and fdatasync per call.
summary() {
    python3 - "$1" "$CALLS" "$2" <<'EOF'
import sys
calls, name = int(sys.argv[2]), sys.argv[3]
rows = {}
for line in open(sys.argv[1]):
    p = line.split()
    if len(p) >= 5 and p[0][0].isdigit() and p[-1] != "total":
        rows[p[-1]] = int(p[3])
total = sum(rows.values())
top = sorted(rows.items(), key=lambda kv: -kv[1])[:8]
print(f"{name}: {total / calls:.1f} syscalls per call; " + ", ".join(f"{k} {v / calls:.2f}" for k, v in top)
      + f"; fdatasync {rows.get('fdatasync', 0) / calls:.3f}")
EOF
}

# wait_ready URL [CURL_ARGS...]: up to 20 s.
wait_ready() {
    local url=$1; shift
    for _ in $(seq 200); do curl -fsS -o /dev/null "$@" "$url" 2>/dev/null && return 0; sleep 0.1; done
    die "$url never answered"
}

run_koogate() {  # store
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
    strace -f -c -o "$dir/strace.txt" "$KOOGATE_BIN" run --config "$dir/koogate.toml" >"$dir/koogate.log" 2>&1 &
    local pid=$!
    wait_ready "http://127.0.0.1:$ADMIN_PORT/readyz"
    # Generated after start-up: the calls' timestamps must be inside koogate's window (60 s) when they arrive.
    python3 "$REPO_DIR/bench/gen_requests.py" --key-file "$TMP/access-key" --count "$CALLS" --shards "$CONNS" \
        --out "$dir/reqs"
    send_calls "$KOO_PORT" "$dir/reqs" '"000000"' || { cat "$dir/koogate.log" >&2; die "calls failed ($store)"; }
    stop_traced "$pid"
    summary "$dir/strace.txt" "koogate, $store store"
}

run_nginx() {
    local dir=$TMP/nginx
    mkdir -p "$dir/logs"
    cat >"$dir/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    keepalive_requests 10000000;
    ssl_certificate $TMP/cert.pem;
    ssl_certificate_key $TMP/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    upstream app {
        server 127.0.0.1:$UP_PORT;
        keepalive 32;
    }
    server {
        listen 127.0.0.1:$KOO_PORT ssl;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
    strace -f -c -o "$dir/strace.txt" "$NGINX" -p "$dir" -c "$dir/nginx.conf" >"$dir/nginx.log" 2>&1 &
    local pid=$!
    wait_ready "https://127.0.0.1:$KOO_PORT/" --cacert "$TMP/cert.pem" -X POST -d '{}'
    python3 "$REPO_DIR/bench/gen_requests.py" --key-file "$TMP/access-key" --count "$CALLS" --shards "$CONNS" \
        --out "$dir/reqs"
    send_calls "$KOO_PORT" "$dir/reqs" '{}' || die "calls failed (nginx)"
    stop_traced "$pid"  # the master stops its worker on SIGTERM
    summary "$dir/strace.txt" "nginx (TLS proxy, 1 worker)"
}

log "$CALLS calls over $CONNS connections, each server under strace -f -c"
run_koogate memory
run_koogate local
run_nginx
