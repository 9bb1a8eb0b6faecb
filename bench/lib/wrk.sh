# shellcheck shell=bash
# bench/lib/wrk.sh: one checked wrk run against a target (fresh signed calls, every answer checked, koogate's own
# counters compared with wrk's). Sourced by bench/run.sh.

is_koogate() { [[ $1 == koo-* || $1 == cg-koo* ]]; }

# wrk_drive TARGET CHECK SECONDS CONNECTIONS DELAY_MS REQUEST_PREFIX RESULT [STOP_AFTER_PER_THREAD]
# Runs wrk with bench/signed.lua and appends the server CPU used during the run (cpu_s, cpu_us_per_call).
wrk_drive() {
    local target=$1 check=$2 secs=$3 conns=$4 delay=$5 reqs=$6 result=$7 stop_after=${8:-0}
    local pids=${PID[$target]} cpu0 cpu1 up0 up1
    cpu0=$(cpu_seconds "$pids"); up0=$(cpu_seconds "${PID[upstream]}")
    rm -f "$result".stopped.*
    BENCH_REQUESTS="$reqs" BENCH_CHECK=$check BENCH_DELAY_MS=$delay BENCH_RESULT=$result BENCH_STOP_AFTER=$stop_after \
        wrk -t "$THREADS" -c "$conns" -d "${secs}s" --timeout 5s --latency -s "$BENCH_DIR/signed.lua" "${URL[$target]}" \
        >"$result.wrk" 2>&1 &
    local wrk_pid=$!
    if ((stop_after > 0)); then  # a fixed count: interrupt wrk (it then prints its summary) once every thread is done
        while kill -0 "$wrk_pid" 2>/dev/null; do
            (($(find "$(dirname "$result")" -maxdepth 1 -name "$(basename "$result").stopped.*" | wc -l) >= THREADS)) &&
                { kill -INT "$wrk_pid" 2>/dev/null || true; break; }
            sleep 0.1
        done
    fi
    wait "$wrk_pid" || { cat "$result.wrk" >&2; die "wrk failed ($target, $result)"; }
    rm -f "$result".stopped.*
    [[ -s $result ]] || { cat "$result.wrk" >&2; die "wrk wrote no result ($target, $result)"; }
    cpu1=$(cpu_seconds "$pids"); up1=$(cpu_seconds "${PID[upstream]}")
    put "$result" cpu_s "$(calc "printf \"%.2f\", $cpu1 - $cpu0")"
    put "$result" upstream_cpu_s "$(calc "printf \"%.2f\", $up1 - $up0")"
    put "$result" cpu_us_per_call "$(calc "n = $(get requests "$result"); printf \"%.1f\", n ? ($cpu1 - $cpu0) * 1e6 / n : 0")"
    local sockerr=$(( $(get err_connect "$result") + $(get err_read "$result") + $(get err_write "$result") + $(get err_timeout "$result") ))
    ((sockerr == 0)) || log "WARNING: $target: wrk socket errors: connect $(get err_connect "$result") read $(get err_read "$result") write $(get err_write "$result") timeout $(get err_timeout "$result")"
}

# run_wrk TARGET PHASE SECONDS CONNECTIONS DELAY_MS COUNT RESULT [FIXED_COUNT]
# Generates COUNT fresh calls (timestamps = now), drives TARGET with them, and checks every answer. With
# FIXED_COUNT the run stops after that many answers (COUNT must exceed it by the connections in flight).
run_wrk() {
    local target=$1 phase=$2 secs=$3 conns=$4 delay=$5 count=$6 result=$7 fixed=${8:-0}
    local check=plain before=(0 0) after=(0 0) per_thread=0
    is_koogate "$target" && check=koogate
    ((fixed > 0)) && per_thread=$(( (fixed + THREADS - 1) / THREADS ))
    python3 "$BENCH_DIR/gen_requests.py" --key-file "$TMP/access-key" --count "$count" --path "$REQ_PATH" \
        --shards "$THREADS" --out "$TMP/reqs"
    [[ $check == koogate ]] && read -r -a before < <(koo_counts "$target")
    wrk_drive "$target" "$check" "$secs" "$conns" "$delay" "$TMP/reqs" "$result" "$per_thread"
    rm -f "$TMP"/reqs.*

    local requests bad wraps
    requests=$(get requests "$result"); bad=$(get bad "$result"); wraps=$(get wraps "$result")
    if [[ $check == koogate ]] && ((wraps != 0)); then
        die "$target $phase: invalid run: the $count generated calls ran out and were reused ($wraps wrap-arounds), so koogate refused the replayed nonces; raise MAX_RPS"
    fi
    ((bad == 0)) || die "$target $phase: $bad wrong answers (first: $(get bad_example "$result"))"
    ((requests > 0)) || die "$target $phase: no calls completed"
    if [[ $check == koogate ]]; then
        read -r -a after < <(koo_counts "$target")
        local ok=$((after[0] - before[0])) other=$((after[1] - before[1]))
        put "$result" koo_ok "$ok"; put "$result" koo_other "$other"
        if ((other != 0 || ok < requests)); then
            koo_rejections "$target" >&2
            die "$target $phase: invalid run: wrk completed $requests calls, koogate answered $ok with 000000 and $other with another code"
        fi
        ((ok <= requests + conns)) || log "WARNING: koogate answered $ok calls but wrk completed only $requests"
    elif ((wraps != 0)); then
        log "note: $target $phase reused its calls $wraps times (harmless for nginx, which does not check nonces)"
    fi
}

# throughput TARGET ROUND: warm-up, then a measured keep-alive run sized from the warm-up rate.
throughput() {
    local target=$1 round=$2 warm n r
    run_wrk "$target" warmup "$WARMUP" "$CONNECTIONS" 0 "$(budget "$WARMUP" "$MAX_RPS")" "$TMP/warmup.$target.$round"
    warm=$(get rps "$TMP/warmup.$target.$round")
    # Budget from the warm-up rate (x1.5 + margin in budget()), so the measured run keeps unique nonces.
    n=$(budget "$DURATION" "$(calc "r = $warm; if (r < 2000) r = 2000; print r")")
    r=$RES/tp.$target.$round
    run_wrk "$target" throughput "$DURATION" "$CONNECTIONS" 0 "$n" "$r"
    log "  round $round $target: $(get rps "$r") req/s, p50 $(get p50_ms "$r") ms, p99 $(get p99_ms "$r") ms, $(get requests "$r") calls, server CPU $(get cpu_s "$r") s ($(get cpu_us_per_call "$r") µs/call), upstream CPU $(get upstream_cpu_s "$r") s"
}

# fixed_rate TARGET ROUND: ~RATE_CONNECTIONS * 1000 / RATE_DELAY_MS calls/s, for latency.
fixed_rate() {
    local target=$1 round=$2 r=$RES/rate.$1.$2
    run_wrk "$target" rate "$RATE_DURATION" "$RATE_CONNECTIONS" "$RATE_DELAY_MS" "$(budget "$RATE_DURATION" "$RATE_TARGET")" "$r"
    log "  round $round $target: $(get rps "$r") req/s, p50 $(get p50_ms "$r") ms, p99 $(get p99_ms "$r") ms, p99.9 $(get p999_ms "$r") ms"
}
