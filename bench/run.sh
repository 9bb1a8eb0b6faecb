#!/usr/bin/env bash
# koogate vs nginx: the same pre-signed KooGallery V2 calls, over TLS, through
#   (a) nginx as a plain TLS-terminating reverse proxy (no verification),
#   (b) koogate (TLS, V2 signature + timestamp + nonce verification, JSON normalisation, Body-Sign signing), with
#       the durable store (`local`, the default) and with the memory store,
#   (c) nginx answering `{}` itself over TLS ("direct": no upstream hop, the physical limit),
# (a) and (b) in front of the same upstream (an nginx server answering a static `{}`).
#
#   bash bench/run.sh                 # from the repository root (or anywhere: paths are resolved from here)
#   QUICK=1 bash bench/run.sh         # smoke run (~3 min): short runs, small batches, no restart phase
#   PHASES="throughput rate" bash bench/run.sh   # only some phases
#
# See bench/README.md for every phase, setting and target. Exits non-zero on setup errors or if any call gets a
# wrong answer; missing a performance target is only reported (the targets table at the end).
set -euo pipefail

# ---------------------------------------------------------------------------------------------------- settings
QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then q() { echo "$1"; }; else q() { echo "$2"; }; fi
DURATION=${DURATION:-$(q 3 10)}        # seconds per measured throughput run (also accepts "10s"); max 40
WARMUP=${WARMUP:-$(q 1 2)}             # seconds of warm-up against each target before its measured run
ROUNDS=${ROUNDS:-1}                    # rounds of throughput and fixed rate (who goes first alternates); medians
THREADS=${THREADS:-2}                  # wrk threads
CONNECTIONS=${CONNECTIONS:-32}         # keep-alive connections in the throughput phase
RATE_DURATION=${RATE_DURATION:-$DURATION}
RATE_CONNECTIONS=${RATE_CONNECTIONS:-10}  # fixed-rate phase: connections ...
RATE_DELAY_MS=${RATE_DELAY_MS:-10}        # ... each waiting ~this long between calls => ~1000 calls/s
MAX_RPS=${MAX_RPS:-60000}              # request budget for a run whose rate is not yet known (warm-up)
NEWCONN_DURATION=${NEWCONN_DURATION:-$(q 3 10)}  # seconds per new-connection-per-call run
NEWCONN_PROCS=${NEWCONN_PROCS:-4}      # client processes in that mode
HS_DURATION=${HS_DURATION:-$(q 2 5)}   # seconds per handshake run
HS_PROCS=${HS_PROCS:-4}                # openssl s_time processes
CG_CALLS=${CG_CALLS:-$(q 200 2000)}    # callgrind: keep-alive calls counted
CG_NEWCONN=${CG_NEWCONN:-$(q 20 200)}  # callgrind: calls on new connections counted
CG_WARMUP=${CG_WARMUP:-$(q 20 200)}    # callgrind: calls before the counters are zeroed
IDLE_CONNS=${IDLE_CONNS:-$(q "100 500" "1000 5000")}  # idle TLS connections held (cumulative steps)
RSS_FIRST=${RSS_FIRST:-$(q 2000 20000)}     # calls before the first RSS reading (durable store, fresh instance)
RSS_SECOND=${RSS_SECOND:-$(q 20000 200000)} # calls before the second
RSS_CHUNK=${RSS_CHUNK:-20000}          # calls per wrk run in that phase (each generated right before it)
FLOOD_CONNECTIONS=${FLOOD_CONNECTIONS:-16}  # keep-alive connections sending forged-signature calls
PHASES=${PHASES:-$(q "idle throughput rate newconn handshakes callgrind rss flood" \
    "idle throughput rate newconn handshakes callgrind rss flood restart")}
STORES=${STORES:-${STORE:-local memory}}   # koogate store backends to run (koo-local, koo-mem)
NGINX_WORKERS=${NGINX_WORKERS:-auto}   # nginx proxy worker_processes (auto = one per core, like tokio's runtime)
UPSTREAM_WORKERS=${UPSTREAM_WORKERS:-1}
KOOGATE_BIN=${KOOGATE_BIN:-}           # prebuilt binary; default: cargo build --release and use target/release
KEEP_TMP=${KEEP_TMP:-0}                # 1 = keep the scratch directory (configs, logs, results)

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd)
REQ_PATH=/koogallery/v2
export PYTHONDONTWRITEBYTECODE=1       # tls_client.py imports gen_requests.py: no __pycache__ in the tree
# shellcheck source=lib/common.sh
source "$BENCH_DIR/lib/common.sh"
# shellcheck source=lib/servers.sh
source "$BENCH_DIR/lib/servers.sh"
# shellcheck source=lib/wrk.sh
source "$BENCH_DIR/lib/wrk.sh"
# shellcheck source=lib/phases.sh
source "$BENCH_DIR/lib/phases.sh"

DURATION=$(seconds "$DURATION"); WARMUP=$(seconds "$WARMUP"); RATE_DURATION=$(seconds "$RATE_DURATION")
NEWCONN_DURATION=$(seconds "$NEWCONN_DURATION"); HS_DURATION=$(seconds "$HS_DURATION")
# Calls are stamped when generated and koogate accepts them for 60 s: a run must end well inside that window.
((DURATION <= 40 && RATE_DURATION <= 40 && WARMUP <= 20)) || die "DURATION/RATE_DURATION must be <= 40 s, WARMUP <= 20 s (V2 timestamps are valid for 60 s)"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "bad ROUNDS '$ROUNDS'"
((CONNECTIONS >= THREADS && RATE_CONNECTIONS >= THREADS && FLOOD_CONNECTIONS >= THREADS)) || die "connections must be >= THREADS"
((RSS_FIRST < RSS_SECOND && RSS_CHUNK > 0)) || die "want RSS_FIRST < RSS_SECOND and RSS_CHUNK > 0"
for p in $PHASES; do
    [[ " idle throughput rate newconn handshakes callgrind rss flood restart " == *" $p "* ]] || die "unknown phase '$p' in PHASES"
done
KOOS=()
for s in $STORES; do
    case $s in local) KOOS+=(koo-local) ;; memory) KOOS+=(koo-mem) ;; *) die "unknown store '$s' in STORES (local, memory)" ;; esac
done
((${#KOOS[@]})) || die "STORES is empty"
KOO=${KOOS[0]}                         # the instance of the summary lines: the durable store when it runs
has() { [[ " $PHASES " == *" $1 "* ]]; }
RATE_TARGET=$(calc "printf \"%d\", $RATE_CONNECTIONS * 1000 / $RATE_DELAY_MS")

# ---------------------------------------------------------------------------------------------------- tools
tools=(wrk:wrk nginx:nginx-light openssl:openssl python3:python3 curl:curl)
has callgrind && tools+=(valgrind:valgrind)
need_tools "${tools[@]}"
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
python3 "$BENCH_DIR/gen_requests.py" --self-test >&2
python3 "$BENCH_DIR/tls_client.py" --self-test >&2
python3 "$BENCH_DIR/report.py" --self-test >&2
# Up to 5,000 idle connections per server and as many client sockets: raise the soft limit to the hard one.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
[[ $NOFILE == unlimited ]] && NOFILE=1048576
for n in $IDLE_CONNS; do
    ((n + 200 < NOFILE)) || die "IDLE_CONNS $n needs a file descriptor limit above $((n + 200)) (ulimit -n is $NOFILE)"
done

if [[ -z $KOOGATE_BIN ]]; then
    command -v cargo >/dev/null 2>&1 || die "cargo not found (or set KOOGATE_BIN)"
    log "cargo build --release"
    (cd "$REPO_DIR" && cargo build --release --quiet) || die "cargo build --release failed"
    KOOGATE_BIN=$(cd "$REPO_DIR" && cargo metadata --format-version 1 --no-deps 2>/dev/null |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/koogate
fi
[[ -x $KOOGATE_BIN ]] || die "koogate binary not found at $KOOGATE_BIN"

# ---------------------------------------------------------------------------------------------------- servers
init_scratch
make_secrets
start_upstream
start_nginx
for k in "${KOOS[@]}"; do
    if [[ $k == koo-local ]]; then start_koogate koo-local local; else start_koogate koo-mem memory; fi
done
python3 "$BENCH_DIR/gen_requests.py" --key-file "$TMP/access-key" --probe "${URL[nginx]}" --cafile "$TMP/cert.pem" --expect plain >&2
for k in "${KOOS[@]}"; do
    python3 "$BENCH_DIR/gen_requests.py" --key-file "$TMP/access-key" --probe "${URL[$k]}" --cafile "$TMP/cert.pem" --expect koogate >&2
done
M=$RES/meta
put "$M" cores "$(nproc)"; put "$M" threads "$THREADS"; put "$M" connections "$CONNECTIONS"; put "$M" duration "$DURATION"
put "$M" rounds "$ROUNDS"; put "$M" rate_connections "$RATE_CONNECTIONS"; put "$M" rate_delay_ms "$RATE_DELAY_MS"
put "$M" rate_duration "$RATE_DURATION"; put "$M" nginx_workers "$NGINX_WORKERS ($NGX_WORKER_COUNT workers)"
put "$M" upstream_workers "$UPSTREAM_WORKERS"; put "$M" koogate "${KOOS[*]}"; put "$M" summary_koogate "$KOO"
put "$M" tls_nginx "$(tls_of "${PORT[nginx]}")"; put "$M" tls_koogate "$(tls_of "${PORT[$KOO]}")"
put "$M" newconn_procs "$NEWCONN_PROCS"; put "$M" newconn_duration "$NEWCONN_DURATION"
put "$M" hs_procs "$HS_PROCS"; put "$M" hs_duration "$HS_DURATION"; put "$M" idle_conns "$IDLE_CONNS"
put "$M" flood_connections "$FLOOD_CONNECTIONS"; put "$M" phases "$PHASES"; put "$M" quick "$QUICK"
put "$M" busy_before "$(cpu_busy_pct)"
(($(get busy_before "$M") < 10)) ||
    log "WARNING: the CPU is $(get busy_before "$M")% busy with other work before the run; results will be noisy"
log "setup: $(nproc) cores; nginx proxy worker_processes=$NGINX_WORKERS ($NGX_WORKER_COUNT workers); koogate: ${KOOS[*]}; phases: $PHASES"

# ---------------------------------------------------------------------------------------------------- phases
# Idle-connection memory first, while every server is fresh.
if has idle; then
    log "phase idle: RSS idle and with $IDLE_CONNS idle TLS keep-alive connections"
    for t in nginx "$KOO"; do phase_idle "$t"; done
fi
if has throughput; then
    log "phase throughput: wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, $ROUNDS round(s), ${WARMUP}s warm-up before each run"
    for round in $(seq "$ROUNDS"); do
        order=(direct nginx "${KOOS[@]}")
        ((round % 2)) || order=("${KOOS[@]}" nginx direct)   # alternate who goes first
        for t in "${order[@]}"; do throughput "$t" "$round"; done
    done
fi
if has rate; then
    log "phase rate: wrk -t$THREADS -c$RATE_CONNECTIONS -d${RATE_DURATION}s, ~${RATE_DELAY_MS} ms between calls per connection (<= ~$RATE_TARGET req/s)"
    for round in $(seq "$ROUNDS"); do
        order=(nginx "${KOOS[@]}"); ((round % 2)) || order=("${KOOS[@]}" nginx)
        for t in "${order[@]}"; do fixed_rate "$t" "$round"; done
    done
fi
if has newconn; then
    log "phase newconn: a new TLS connection per call, $NEWCONN_PROCS client processes, ${NEWCONN_DURATION}s"
    for kind in full resume; do for t in nginx "$KOO"; do phase_newconn "$t" "$kind"; done; done
fi
if has handshakes; then
    log "phase handshakes: $HS_PROCS x openssl s_time -new, ${HS_DURATION}s"
    for t in nginx "$KOO"; do phase_handshakes "$t"; done
fi
if has flood; then
    log "phase flood: good calls at ~$RATE_TARGET/s while $FLOOD_CONNECTIONS connections send forged-signature calls"
    phase_flood "$KOO"
fi
for k in "${KOOS[@]}"; do kill -0 "${PID[$k]}" 2>/dev/null || die "koogate $k exited during the run"; done
put "$M" busy_after "$(cpu_busy_pct)"
# Phases with their own servers (the shared ones stay idle).
if has callgrind; then
    log "phase callgrind: instructions per call, servers under valgrind --tool=callgrind ($CG_CALLS + $CG_NEWCONN calls)"
    phase_callgrind
fi
if has rss; then
    log "phase rss: a fresh durable koogate, RSS after $RSS_FIRST and $RSS_SECOND calls"
    phase_rss_growth
fi
if has restart; then
    log "phase restart: bench/restart.sh"
    phase_restart
fi

# The probe's replayed and forged calls (and the flood) are logged as WARN "refused"; ERROR or a panic is not expected.
for f in "$TMP"/koo-*.log; do
    if grep -qE '"ERROR"|panicked' "$f"; then
        log "WARNING: $(basename "$f" .log) logged errors:"; grep -E '"ERROR"|panicked' "$f" | head -n 5 | cut -c1-400 >&2
    fi
done

python3 "$BENCH_DIR/report.py" "$RES"
