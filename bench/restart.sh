#!/usr/bin/env bash
# Restart time of koogate with a full local store (bench/README.md, "Restart"): fills a data directory through the
# real store code (examples/fill_store.rs: RECORDS records over 29 days, NONCES V1 replay keys over the last 24 h,
# every call with its journal line), then times `koogate run` from exec to `/readyz` answering 200, ROUNDS times,
# and prints the median:
#
#   restart with 1M records: X s (goal < 2 s: met|not met)
#
# Env: RECORDS (1000000), NONCES (100000), ROUNDS (3), KOOGATE_BIN and FILL_BIN (skip the build), KEEP_TMP=1.
set -euo pipefail

RECORDS=${RECORDS:-1000000}
NONCES=${NONCES:-100000}
ROUNDS=${ROUNDS:-3}
KEEP_TMP=${KEEP_TMP:-0}
GOAL_S=2
REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() { printf '[restart] %s\n' "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }
for tool in openssl python3; do command -v "$tool" >/dev/null || die "$tool is needed"; done

if [[ -z ${KOOGATE_BIN:-} || -z ${FILL_BIN:-} ]]; then
    log "cargo build --release (koogate, examples/fill_store)"
    (cd "$REPO_DIR" && cargo build --release --quiet --bin koogate --example fill_store) || die "build failed"
    target=$(cd "$REPO_DIR" && cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
    KOOGATE_BIN=${KOOGATE_BIN:-$target/release/koogate}
    FILL_BIN=${FILL_BIN:-$target/release/examples/fill_store}
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/koogate-restart.XXXXXX")
cleanup() { if [[ $KEEP_TMP == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi; }
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$TMP/key.pem" \
    -out "$TMP/cert.pem" -days 2 -subj /CN=localhost >/dev/null 2>&1 || die "openssl could not create a certificate"
openssl rand -hex 32 >"$TMP/access-key"
openssl rand -hex 32 >"$TMP/journal-key"
chmod 600 "$TMP/access-key" "$TMP/journal-key"

log "filling $RECORDS records and $NONCES replay keys (through the store, simulated time)"
"$FILL_BIN" --dir "$TMP/data" --records "$RECORDS" --nonces "$NONCES" --journal-key-file "$TMP/journal-key" >&2 ||
    die "fill_store failed"
mkdir -p "$TMP/empty"

read -r KOO_PORT ADMIN_PORT < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])')

config() {  # data_dir
    cat <<EOF
[server]
listen = "127.0.0.1:$KOO_PORT"
cert_chain_file = "cert.pem"
private_key_file = "key.pem"

[admin]
listen = "127.0.0.1:$ADMIN_PORT"

[v1]
enabled = true
replay_cache_max_entries = 1000000

[[access_keys]]
name = "bench"
file = "access-key"

[upstream]
default_route = "app"

[upstream.routes.app]
url = "http://127.0.0.1:9/koogallery"

[test_calls]
mode = "forward"

[store]
backend = "local"
data_dir = "$1"
journal_key_file = "journal-key"
max_records = 2000000

[log]
format = "json"
level = "info"
EOF
}
config data >"$TMP/full.toml"
config empty >"$TMP/empty.toml"
"$KOOGATE_BIN" check --config "$TMP/full.toml" >/dev/null || die "koogate check rejected the configuration"

# Starts koogate, waits for /readyz, prints "seconds rss_kb store_open_ms" and stops it.
time_start() {  # config
    python3 - "$KOOGATE_BIN" "$1" "$ADMIN_PORT" <<'EOF'
import json, subprocess, sys, time, urllib.request
binary, config, port = sys.argv[1], sys.argv[2], sys.argv[3]
started = time.monotonic()
proc = subprocess.Popen([binary, "run", "--config", config], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
ready = None
try:
    while time.monotonic() - started < 60:
        if proc.poll() is not None:
            sys.exit("koogate exited: " + proc.stdout.read().decode(errors="replace")[-2000:])
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    ready = time.monotonic() - started
                    break
        except OSError:
            pass
        time.sleep(0.002)
    if ready is None:
        sys.exit("koogate was not ready within 60 s")
    rss = next(int(l.split()[1]) for l in open(f"/proc/{proc.pid}/status") if l.startswith("VmRSS:"))
finally:
    proc.terminate()
    out = proc.communicate(timeout=30)[0].decode(errors="replace")
opened = next((json.loads(l) for l in out.splitlines() if '"log opened"' in l), {})
fields = opened.get("fields", opened)
print(f"{ready:.3f} {rss} {fields.get('elapsed_ms', '?')}")
EOF
}

read -r _ EMPTY_RSS _ < <(time_start "$TMP/empty.toml") || die "koogate did not start on an empty store"
times=()
for round in $(seq "$ROUNDS"); do
    read -r secs rss open_ms < <(time_start "$TMP/full.toml") || die "koogate did not start on the full store"
    log "round $round: ready after $secs s (store opened in $open_ms ms), RSS $((rss / 1024)) MiB"
    times+=("$secs")
    FULL_RSS=$rss
done
median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
verdict=$(awk -v t="$median" -v g="$GOAL_S" 'BEGIN {print (t < g) ? "met" : "not met"}')
label=$(awk -v n="$RECORDS" 'BEGIN {if (n % 1000000 == 0) printf "%dM", n/1000000; else if (n % 1000 == 0) printf "%dk", n/1000; else print n}')
per=$(awk -v f="$FULL_RSS" -v e="$EMPTY_RSS" -v r="$RECORDS" -v n="$NONCES" 'BEGIN {printf "%.0f", (f - e) * 1024 / (r + n)}')
echo "RSS after restart: $((FULL_RSS / 1024)) MiB with $RECORDS records + $NONCES replay keys, $((EMPTY_RSS / 1024)) MiB empty (~$per bytes per entry)"
echo "restart with $label records: $median s (goal < $GOAL_S s: $verdict)"
