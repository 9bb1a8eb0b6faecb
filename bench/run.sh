#!/usr/bin/env bash
# koogate vs nginx: the same pre-signed KooGallery V2 calls, over TLS keep-alive connections, through
#   (a) nginx as a plain TLS-terminating reverse proxy (no verification), and
#   (b) koogate (TLS, V2 signature + timestamp + nonce verification, JSON normalisation, Body-Sign signing),
# both in front of the same upstream (an nginx server answering a static `{}`).
#
#   bash bench/run.sh                 # from the repository root (or anywhere: paths are resolved from here)
#   DURATION=5 bash bench/run.sh      # shorter run
#
# See bench/README.md for what is measured and why. Exits non-zero on setup errors or if any call gets a wrong
# answer; missing a performance target is only reported.
set -euo pipefail

# ---------------------------------------------------------------------------------------------------- settings
DURATION=${DURATION:-10}               # seconds per measured throughput run (also accepts "10s"); max 40
WARMUP=${WARMUP:-2}                    # seconds of warm-up against each target before its measured run
ROUNDS=${ROUNDS:-1}                    # rounds of each phase (who goes first alternates); medians are reported
THREADS=${THREADS:-2}                  # wrk threads
CONNECTIONS=${CONNECTIONS:-32}         # keep-alive connections in the throughput phase
RATE_DURATION=${RATE_DURATION:-$DURATION}
RATE_CONNECTIONS=${RATE_CONNECTIONS:-10}  # fixed-rate phase: connections ...
RATE_DELAY_MS=${RATE_DELAY_MS:-10}        # ... each waiting ~this long between calls => ~1000 calls/s
MAX_RPS=${MAX_RPS:-60000}              # request budget for a run whose rate is not yet known (warm-up)
NGINX_WORKERS=${NGINX_WORKERS:-auto}   # nginx proxy worker_processes (auto = one per core, like tokio's runtime)
UPSTREAM_WORKERS=${UPSTREAM_WORKERS:-1}
KOOGATE_BIN=${KOOGATE_BIN:-}           # prebuilt binary; default: cargo build --release and use target/release
KEEP_TMP=${KEEP_TMP:-0}                # 1 = keep the scratch directory (configs, logs, results)
STORE=${STORE:-local}                  # koogate [store] backend: local (durable journal, the default) or memory

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd)
REQ_PATH=/koogallery/v2

log() { printf '[bench] %s\n' "$*" >&2; }
DIE_MSG=""
die() { DIE_MSG="$*"; printf '[bench] ERROR: %s\n' "$*" >&2; exit 1; }

seconds() {
    local v=${1%s}
    [[ $v =~ ^[0-9]+$ && $v -gt 0 ]] || die "bad duration '$1' (want whole seconds, e.g. 10 or 10s)"
    echo "$v"
}
DURATION=$(seconds "$DURATION"); WARMUP=$(seconds "$WARMUP"); RATE_DURATION=$(seconds "$RATE_DURATION")
# Calls are stamped when generated and koogate accepts them for 60 s: a run must end well inside that window.
((DURATION <= 40 && RATE_DURATION <= 40 && WARMUP <= 20)) || die "DURATION/RATE_DURATION must be <= 40 s, WARMUP <= 20 s (V2 timestamps are valid for 60 s)"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "bad ROUNDS '$ROUNDS'"
((CONNECTIONS >= THREADS && RATE_CONNECTIONS >= THREADS)) || die "connections must be >= THREADS"

# ---------------------------------------------------------------------------------------------------- tools
need_pkgs=()
command -v wrk >/dev/null 2>&1 || need_pkgs+=(wrk)
command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || need_pkgs+=(nginx-light)
command -v openssl >/dev/null 2>&1 || need_pkgs+=(openssl)
command -v python3 >/dev/null 2>&1 || need_pkgs+=(python3)
command -v curl >/dev/null 2>&1 || need_pkgs+=(curl)
if ((${#need_pkgs[@]})); then
    [[ $(id -u) -eq 0 ]] || die "missing ${need_pkgs[*]}; run as root to install them with apt-get, or install them"
    command -v apt-get >/dev/null 2>&1 || die "missing ${need_pkgs[*]} and no apt-get to install them"
    log "installing ${need_pkgs[*]} with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
python3 "$BENCH_DIR/gen_requests.py" --self-test >&2

if [[ -z $KOOGATE_BIN ]]; then
    command -v cargo >/dev/null 2>&1 || die "cargo not found (or set KOOGATE_BIN)"
    log "cargo build --release"
    (cd "$REPO_DIR" && cargo build --release --quiet) || die "cargo build --release failed"
    KOOGATE_BIN=$(cd "$REPO_DIR" && cargo metadata --format-version 1 --no-deps 2>/dev/null |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/koogate
fi
[[ -x $KOOGATE_BIN ]] || die "koogate binary not found at $KOOGATE_BIN"

# ---------------------------------------------------------------------------------------------------- scratch + cleanup
TMP=$(mktemp -d "${TMPDIR:-/tmp}/koogate-bench.XXXXXX")
chmod 755 "$TMP"   # nginx workers may run as an unprivileged user
PIDS=()
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if ((rc != 0)); then
        for f in "$TMP"/koogate.log "$TMP"/*/logs/error.log; do
            [[ -s $f ]] && { log "--- last lines of $f"; tail -n 5 "$f" | cut -c1-400 >&2; }
        done
        [[ -n $DIE_MSG ]] && log "FAILED: $DIE_MSG"
    fi
    if [[ $KEEP_TMP == 1 ]]; then log "scratch directory kept: $TMP"; else rm -rf "$TMP"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'DIE_MSG=interrupted; exit 130' INT
trap 'DIE_MSG=terminated; exit 143' TERM

# Loopback ports the kernel says are free right now.
read -r UP_PORT NGX_PORT KOO_PORT ADMIN_PORT < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(4)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])')

# ---------------------------------------------------------------------------------------------------- cert, key, configs
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$TMP/key.pem" \
    -out "$TMP/cert.pem" -days 2 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 >/dev/null 2>&1 || die "openssl could not create the certificate"
chmod 644 "$TMP/key.pem"
openssl rand -hex 32 >"$TMP/access-key"
chmod 600 "$TMP/access-key"

mkdir -p "$TMP/upstream/logs" "$TMP/proxy/logs"
# Both nginx instances: no access log, keep-alive effectively unlimited (nginx's default closes a keep-alive
# connection after 1000 calls; koogate does not, and a reconnect costs a TLS handshake).
cat >"$TMP/upstream/nginx.conf" <<EOF
daemon off;
worker_processes $UPSTREAM_WORKERS;
pid $TMP/upstream/nginx.pid;
error_log $TMP/upstream/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    default_type application/json;
    keepalive_requests 10000000;
    keepalive_timeout 75s;
    server {
        listen 127.0.0.1:$UP_PORT;
        location / { return 200 '{}'; }
    }
}
EOF
cat >"$TMP/proxy/nginx.conf" <<EOF
daemon off;
worker_processes $NGINX_WORKERS;
pid $TMP/proxy/nginx.pid;
error_log $TMP/proxy/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 75s;
    upstream app {
        server 127.0.0.1:$UP_PORT;
        keepalive 32;
        keepalive_requests 10000000;
    }
    server {
        # reuseport: one listening socket per worker, so the kernel spreads connections evenly over workers.
        listen 127.0.0.1:$NGX_PORT ssl reuseport;
        ssl_certificate $TMP/cert.pem;
        ssl_certificate_key $TMP/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
cat >"$TMP/koogate.toml" <<EOF
[server]
listen = "127.0.0.1:$KOO_PORT"
cert_chain_file = "cert.pem"
private_key_file = "key.pem"
max_connections = 4096
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
pool_max_idle_per_host = 32

[upstream.routes.app]
url = "http://127.0.0.1:$UP_PORT$REQ_PATH"

[test_calls]
mode = "forward"

[store]
backend = "$STORE"
data_dir = "data"
journal_key_file = "journal-key"

[log]
format = "json"
level = "warn"
EOF
od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$TMP/journal-key"
for inst in upstream proxy; do
    "$NGINX" -t -q -p "$TMP/$inst" -c "$TMP/$inst/nginx.conf" >/dev/null 2>&1 ||
        { "$NGINX" -t -p "$TMP/$inst" -c "$TMP/$inst/nginx.conf"; die "nginx $inst configuration rejected"; }
done
"$KOOGATE_BIN" check --config "$TMP/koogate.toml" >/dev/null || die "koogate check rejected the configuration"

# ---------------------------------------------------------------------------------------------------- start servers
"$NGINX" -p "$TMP/upstream" -c "$TMP/upstream/nginx.conf" 2>>"$TMP/upstream/logs/error.log" &
UP_PID=$!; PIDS+=("$UP_PID")
"$NGINX" -p "$TMP/proxy" -c "$TMP/proxy/nginx.conf" 2>>"$TMP/proxy/logs/error.log" &
NGX_PID=$!; PIDS+=("$NGX_PID")
"$KOOGATE_BIN" run --config "$TMP/koogate.toml" >"$TMP/koogate.log" 2>&1 &
KOO_PID=$!; PIDS+=("$KOO_PID")

wait_for() {  # name url [curl args...]
    local name=$1 url=$2; shift 2
    for _ in $(seq 100); do
        curl -fsS -o /dev/null "$@" "$url" 2>/dev/null && return 0
        sleep 0.1
    done
    die "$name did not come up at $url"
}
wait_for upstream "http://127.0.0.1:$UP_PORT/"
wait_for "koogate admin" "http://127.0.0.1:$ADMIN_PORT/readyz"
wait_for "nginx proxy" "https://127.0.0.1:$NGX_PORT/" --cacert "$TMP/cert.pem"
for pid in "$UP_PID" "$NGX_PID" "$KOO_PID"; do kill -0 "$pid" 2>/dev/null || die "a server exited at start"; done

NGX_URL="https://127.0.0.1:$NGX_PORT$REQ_PATH"
KOO_URL="https://127.0.0.1:$KOO_PORT$REQ_PATH"
python3 "$BENCH_DIR/gen_requests.py" --key-file "$TMP/access-key" --probe "$NGX_URL" --cafile "$TMP/cert.pem" --expect plain >&2
python3 "$BENCH_DIR/gen_requests.py" --key-file "$TMP/access-key" --probe "$KOO_URL" --cafile "$TMP/cert.pem" --expect koogate >&2

tls_of() {  # what an OpenSSL client (like wrk) negotiates with a listener
    openssl s_client -connect "127.0.0.1:$1" -servername localhost </dev/null 2>/dev/null |
        sed -n 's/^New, \(.*\), Cipher is \(.*\)$/\1 \2/p' | head -n 1
}
NGX_TLS=$(tls_of "$NGX_PORT"); KOO_TLS=$(tls_of "$KOO_PORT")
NGX_WORKER_COUNT=$(python3 - "$NGX_PID" <<'EOF'
import os, sys
n = 0
for d in filter(str.isdigit, os.listdir("/proc")):
    try:
        with open(f"/proc/{d}/stat") as f:
            n += f.read().rsplit(")", 1)[1].split()[1] == sys.argv[1]
    except OSError:
        pass
print(n)
EOF
)

# ---------------------------------------------------------------------------------------------------- helpers
# CPU seconds used so far by the given processes and their direct children (nginx workers).
cpu_seconds() {
    python3 - "$@" <<'EOF'
import os, sys
tck = os.sysconf("SC_CLK_TCK")
roots = {int(p) for p in sys.argv[1:]}
total = 0
for d in os.listdir("/proc"):
    if not d.isdigit():
        continue
    try:
        with open(f"/proc/{d}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        continue
    if int(d) in roots or int(fields[1]) in roots:
        total += int(fields[11]) + int(fields[12])
print(f"{total / tck:.2f}")
EOF
}

# koogate's answered-call counters: "<orderNotify 000000> <everything else>".
koo_counts() {
    curl -fsS "http://127.0.0.1:$ADMIN_PORT/metrics" | awk '
        /^koogate_requests_total\{/ {
            if ($0 ~ /activity="orderNotify"/ && $0 ~ /result_code="000000"/) ok += $NF; else other += $NF
        }
        END { printf "%d %d\n", ok, other }'
}
koo_rejections() {
    curl -fsS "http://127.0.0.1:$ADMIN_PORT/metrics" | grep -E '^koogate_(rejections|upstream_failures)_total' || true
}

get() { awk -F= -v k="$1" '$1 == k { sub(/^[^=]*=/, ""); print; exit }' "$2"; }

# run_wrk TARGET PHASE SECONDS CONNECTIONS DELAY_MS COUNT RESULT_FILE
# Generates COUNT fresh calls (timestamps = now), drives TARGET with them, and checks every answer.
run_wrk() {
    local target=$1 phase=$2 secs=$3 conns=$4 delay=$5 count=$6 result=$7
    local url check server_pids
    if [[ $target == koogate ]]; then url=$KOO_URL; check=koogate; server_pids=$KOO_PID
    else url=$NGX_URL; check=plain; server_pids=$NGX_PID; fi

    python3 "$BENCH_DIR/gen_requests.py" --key-file "$TMP/access-key" --count "$count" --path "$REQ_PATH" \
        --shards "$THREADS" --out "$TMP/reqs"
    local before=(0 0) after=(0 0)
    [[ $target == koogate ]] && read -r -a before < <(koo_counts)
    local cpu0 up0 cpu1 up1
    cpu0=$(cpu_seconds $server_pids); up0=$(cpu_seconds "$UP_PID")

    BENCH_REQUESTS="$TMP/reqs" BENCH_CHECK=$check BENCH_DELAY_MS=$delay BENCH_RESULT=$result \
        wrk -t "$THREADS" -c "$conns" -d "${secs}s" --timeout 5s --latency -s "$BENCH_DIR/signed.lua" "$url" \
        >"$result.wrk" 2>&1 || { cat "$result.wrk" >&2; die "wrk failed ($target $phase)"; }
    [[ -s $result ]] || { cat "$result.wrk" >&2; die "wrk wrote no result ($target $phase)"; }

    cpu1=$(cpu_seconds $server_pids); up1=$(cpu_seconds "$UP_PID")
    echo "cpu_s=$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN{printf "%.2f", b-a}')" >>"$result"
    echo "upstream_cpu_s=$(awk -v a="$up0" -v b="$up1" 'BEGIN{printf "%.2f", b-a}')" >>"$result"
    rm -f "$TMP"/reqs.*

    local requests bad wraps
    requests=$(get requests "$result"); bad=$(get bad "$result"); wraps=$(get wraps "$result")
    echo "cpu_us_per_call=$(awk -v c="$(get cpu_s "$result")" -v n="$requests" 'BEGIN{printf "%.1f", n ? c*1e6/n : 0}')" >>"$result"
    local sockerr=$(( $(get err_connect "$result") + $(get err_read "$result") + $(get err_write "$result") + $(get err_timeout "$result") ))
    ((sockerr == 0)) || log "WARNING: $target $phase: wrk socket errors: connect $(get err_connect "$result") read $(get err_read "$result") write $(get err_write "$result") timeout $(get err_timeout "$result")"
    if [[ $target == koogate ]] && ((wraps != 0)); then
        die "$target $phase: invalid run: the $count generated calls ran out and were reused ($wraps wrap-arounds), so koogate refused the replayed nonces; raise MAX_RPS"
    fi
    ((bad == 0)) || die "$target $phase: $bad wrong answers (first: $(get bad_example "$result"))"
    ((requests > 0)) || die "$target $phase: no calls completed"
    if [[ $target == koogate ]]; then
        read -r -a after < <(koo_counts)
        local ok=$((after[0] - before[0])) other=$((after[1] - before[1]))
        echo "koo_ok=$ok" >>"$result"; echo "koo_other=$other" >>"$result"
        if ((other != 0 || wraps != 0 || ok < requests)); then
            koo_rejections >&2
            die "$target $phase: invalid run: wrk completed $requests calls, koogate answered $ok with 000000 and $other with another code; $wraps request-file wrap-arounds (raise MAX_RPS)"
        fi
        ((ok <= requests + conns)) || log "WARNING: koogate answered $ok calls but wrk completed only $requests"
    elif ((wraps != 0)); then
        log "note: $target $phase reused its calls $wraps times (harmless for nginx, which does not check nonces)"
    fi
}

budget() {  # calls to generate for SECONDS at RPS (with margin)
    awk -v s="$1" -v r="$2" 'BEGIN { n = int(s * r * 1.5) + 5000; print n }'
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# ---------------------------------------------------------------------------------------------------- phase 1: throughput
# How busy the machine is with other work (our servers are idle now): 1 s sample of /proc/stat.
cpu_busy_pct() {
    local a b
    a=$(head -n 1 /proc/stat); sleep 1; b=$(head -n 1 /proc/stat)
    awk -v a="$a" -v b="$b" 'BEGIN {
        n = split(a, x, " "); split(b, y, " "); t = 0
        for (i = 2; i <= n; i++) t += y[i] - x[i]
        idle = (y[5] - x[5]) + (y[6] - x[6])
        printf "%.0f", t ? 100 * (t - idle) / t : 0 }'
}
BUSY_BEFORE=$(cpu_busy_pct)
((BUSY_BEFORE < 10)) ||
    log "WARNING: the CPU is ${BUSY_BEFORE}% busy with other work before the run; results will be noisy"
log "setup: $(nproc) cores; nginx proxy worker_processes=$NGINX_WORKERS ($NGX_WORKER_COUNT workers); upstream nginx worker_processes=$UPSTREAM_WORKERS"
log "TLS negotiated by OpenSSL clients: nginx [$NGX_TLS], koogate [$KOO_TLS]"
log "phase 1: throughput, wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, $ROUNDS round(s), ${WARMUP}s warm-up before each run"
for round in $(seq "$ROUNDS"); do
    order="nginx koogate"; ((round % 2)) || order="koogate nginx"   # alternate who goes first
    for target in $order; do
        run_wrk "$target" warmup "$WARMUP" "$CONNECTIONS" 0 "$(budget "$WARMUP" "$MAX_RPS")" "$TMP/warmup.$target.$round"
        warm_rps=$(get rps "$TMP/warmup.$target.$round")
        # Budget from the warm-up rate (x1.5 + margin in budget()), so the measured run keeps unique nonces.
        n=$(budget "$DURATION" "$(awk -v w="$warm_rps" 'BEGIN { r = w; if (r < 2000) r = 2000; print r }')")
        run_wrk "$target" throughput "$DURATION" "$CONNECTIONS" 0 "$n" "$TMP/tp.$target.$round"
        r=$TMP/tp.$target.$round
        log "  round $round $target: $(get rps "$r") req/s, p50 $(get p50_ms "$r") ms, p99 $(get p99_ms "$r") ms, $(get requests "$r") calls, server CPU $(get cpu_s "$r") s, upstream CPU $(get upstream_cpu_s "$r") s"
    done
done

# ---------------------------------------------------------------------------------------------------- phase 2: fixed rate
rate_target=$(awk -v c="$RATE_CONNECTIONS" -v d="$RATE_DELAY_MS" 'BEGIN { printf "%d", c * 1000 / d }')
log "phase 2: fixed moderate rate, wrk -t$THREADS -c$RATE_CONNECTIONS -d${RATE_DURATION}s, ~${RATE_DELAY_MS} ms between calls per connection (<= ~$rate_target req/s)"
for round in $(seq "$ROUNDS"); do
    order="nginx koogate"; ((round % 2)) || order="koogate nginx"
    for target in $order; do
        r=$TMP/rate.$target.$round
        run_wrk "$target" rate "$RATE_DURATION" "$RATE_CONNECTIONS" "$RATE_DELAY_MS" "$(budget "$RATE_DURATION" "$rate_target")" "$r"
        log "  round $round $target: $(get rps "$r") req/s, p50 $(get p50_ms "$r") ms, p99 $(get p99_ms "$r") ms, p99.9 $(get p999_ms "$r") ms"
    done
done

kill -0 "$KOO_PID" 2>/dev/null || die "koogate exited during the run"
# The probe's replayed and forged calls are logged as WARN "refused"; anything at ERROR level or a panic is not expected.
if grep -qE '"ERROR"|panicked' "$TMP/koogate.log"; then
    log "WARNING: koogate logged errors:"; grep -E '"ERROR"|panicked' "$TMP/koogate.log" | head -n 5 | cut -c1-400 >&2
fi
BUSY_AFTER=$(cpu_busy_pct)

# ---------------------------------------------------------------------------------------------------- summary
med() {  # med KEY PREFIX -> median over rounds
    local key=$1 prefix=$2
    for round in $(seq "$ROUNDS"); do get "$key" "$prefix.$round"; done | median
}
N_RPS=$(med rps "$TMP/tp.nginx");   K_RPS=$(med rps "$TMP/tp.koogate")
N_P50=$(med p50_ms "$TMP/tp.nginx"); K_P50=$(med p50_ms "$TMP/tp.koogate")
N_P99=$(med p99_ms "$TMP/tp.nginx"); K_P99=$(med p99_ms "$TMP/tp.koogate")
N_CPU=$(med cpu_us_per_call "$TMP/tp.nginx"); K_CPU=$(med cpu_us_per_call "$TMP/tp.koogate")
for t in nginx koogate; do
    for key in rps p50_ms p99_ms p999_ms; do
        printf -v "R_${t}_${key}" '%s' "$(med "$key" "$TMP/rate.$t")"
    done
done
RATIO=$(awk -v k="$K_RPS" -v n="$N_RPS" 'BEGIN { printf "%.2f", k / n }')
ADDED_P99=$(awk -v k="$R_koogate_p99_ms" -v n="$R_nginx_p99_ms" 'BEGIN { printf "%.3f", k - n }')
ADDED_P50=$(awk -v k="$R_koogate_p50_ms" -v n="$R_nginx_p50_ms" 'BEGIN { printf "%.3f", k - n }')
T1=$(awk -v r="$RATIO" 'BEGIN { print (r >= 1.0) ? "MET" : "NOT MET" }')
T2=$(awk -v a="$ADDED_P99" 'BEGIN { print (a < 1.0) ? "MET" : "NOT MET" }')

cat <<EOF

==================================================================================================
koogate vs nginx — $(nproc) cores, wrk $THREADS threads, same pre-signed V2 orderNotify calls, TLS keep-alive
  nginx: plain TLS reverse proxy, worker_processes $NGINX_WORKERS ($NGX_WORKER_COUNT workers; koogate's tokio runtime
         also uses every core), upstream keep-alive pool 32; TLS [$NGX_TLS]
  koogate: full V2 verification (HMAC, timestamp, nonce), normalisation, Body-Sign, store=$STORE; TLS [$KOO_TLS]
  upstream (shared): nginx returning a static {} on loopback, worker_processes $UPSTREAM_WORKERS

Throughput: -c$CONNECTIONS, ${DURATION}s, median of $ROUNDS round(s)
                        req/s       p50 ms     p99 ms    server CPU µs/call
  nginx           $(printf '%11.1f %11.3f %10.3f %12s' "$N_RPS" "$N_P50" "$N_P99" "$N_CPU")
  koogate         $(printf '%11.1f %11.3f %10.3f %12s' "$K_RPS" "$K_P50" "$K_P99" "$K_CPU")
  ratio koogate/nginx: $RATIO x

Fixed moderate rate: -c$RATE_CONNECTIONS, ~${RATE_DELAY_MS} ms between calls per connection, ${RATE_DURATION}s, median of $ROUNDS round(s)
                        req/s       p50 ms     p99 ms   p99.9 ms
  nginx           $(printf '%11.1f %11.3f %10.3f %10.3f' "$R_nginx_rps" "$R_nginx_p50_ms" "$R_nginx_p99_ms" "$R_nginx_p999_ms")
  koogate         $(printf '%11.1f %11.3f %10.3f %10.3f' "$R_koogate_rps" "$R_koogate_p50_ms" "$R_koogate_p99_ms" "$R_koogate_p999_ms")
  added by koogate: p50 $ADDED_P50 ms, p99 $ADDED_P99 ms

Correctness: every koogate call answered 000000 with a Body-Sign header (wrk Lua check and /metrics agree)
CPU busy with other work, sampled before / after the run: ${BUSY_BEFORE}% / ${BUSY_AFTER}% (should be ~0)

Targets
  throughput koogate >= 1.0x nginx ........ $RATIO x   $T1
  added p99 at fixed rate < 1 ms .......... $ADDED_P99 ms   $T2
==================================================================================================
EOF
