# shellcheck shell=bash
# bench/lib/phases.sh: the phases of bench/run.sh beyond keep-alive throughput and fixed rate: a new TLS
# connection per call, full handshakes/s, instructions per call (callgrind), RSS with idle connections, RSS growth,
# a forged-signature flood and the restart time. Each writes key=value lines to $RES/<phase>.<target>.

client() { python3 "$BENCH_DIR/tls_client.py" "$@" --cafile "$TMP/cert.pem" --key-file "$TMP/access-key"; }
expect_of() { if is_koogate "$1"; then echo koogate; else echo plain; fi; }

# A new TCP + TLS connection per call (how KooGallery calls), from NEWCONN_PROCS client processes.
phase_newconn() {  # TARGET full|resume
    local target=$1 kind=$2 r=$RES/newconn.$1.$2 flags=() cpu0 cpu1
    [[ $kind == resume ]] && flags=(--resume)
    cpu0=$(cpu_seconds "${PID[$target]}")
    client newconn --url "${URL[$target]}" --expect "$(expect_of "$target")" --procs "$NEWCONN_PROCS" \
        --seconds "$NEWCONN_DURATION" --out "$r" "${flags[@]}" || die "newconn client failed ($target)"
    cpu1=$(cpu_seconds "${PID[$target]}")
    put "$r" cpu_us_per_call "$(calc "n = $(get requests "$r"); printf \"%.1f\", n ? ($cpu1 - $cpu0) * 1e6 / n : 0")"
    (($(get bad "$r") == 0)) || die "newconn $target: $(get bad "$r") wrong answers (first: $(get bad_example "$r"))"
    (($(get requests "$r") > 0)) || die "newconn $target: no call completed ($(get bad_example "$r"))"
    (($(get errors "$r") == 0)) || log "WARNING: newconn $target: $(get errors "$r") connection errors (first: $(get bad_example "$r"))"
    log "  $target ($kind handshake per call): $(get rps "$r") calls/s, p50 $(get p50_ms "$r") ms, p99 $(get p99_ms "$r") ms, resumed $(get resumed "$r")/$(get requests "$r"), server CPU $(get cpu_us_per_call "$r") µs/call"
}

# Full TLS handshakes/s: HS_PROCS `openssl s_time -new` processes (handshake, close; no request).
phase_handshakes() {  # TARGET
    local target=$1 r=$RES/hs.$1 i cpu0 cpu1 total=0 n
    cpu0=$(cpu_seconds "${PID[$target]}")
    local t0 t1; t0=$(date +%s.%N)
    for i in $(seq "$HS_PROCS"); do
        openssl s_time -connect "127.0.0.1:${PORT[$target]}" -new -time "$HS_DURATION" >"$TMP/stime.$i" 2>&1 &
    done
    wait_jobs_or_die "openssl s_time ($target)"
    t1=$(date +%s.%N)
    cpu1=$(cpu_seconds "${PID[$target]}")
    for i in $(seq "$HS_PROCS"); do
        # "1234 connections in 5 real seconds, ..."
        n=$(sed -n 's/^\([0-9][0-9]*\) connections in [0-9]* real seconds.*/\1/p' "$TMP/stime.$i" | head -n 1)
        [[ -n $n ]] || { cat "$TMP/stime.$i" >&2; die "openssl s_time gave no count ($target)"; }
        total=$((total + n))
    done
    put "$r" handshakes "$total"
    put "$r" handshakes_per_s "$(calc "printf \"%.1f\", $total / ($t1 - $t0)")"
    put "$r" cpu_us_per_handshake "$(calc "printf \"%.1f\", $total ? ($cpu1 - $cpu0) * 1e6 / $total : 0")"
    log "  $target: $(get handshakes_per_s "$r") full handshakes/s ($HS_PROCS s_time processes), server CPU $(get cpu_us_per_handshake "$r") µs/handshake"
}
wait_jobs_or_die() {
    local job
    for job in $(jobs -p); do
        # Long-running servers are in PIDS, not waited for here.
        [[ " ${PIDS[*]} " == *" $job "* ]] && continue
        wait "$job" || die "$1 failed"
    done
}

# Instructions per call: the server under valgrind --tool=callgrind, counters zeroed after a warm-up and dumped
# after exactly CG_CALLS calls (one client, one call at a time), then CG_NEWCONN calls on new connections.
phase_callgrind() {
    local cgp cgd t out
    read -r cgp cgd < <(free_ports 2)
    nginx_conf "$TMP/cg-nginx" "$cgp" "$cgd" 1 callgrind
    valgrind --tool=callgrind --callgrind-out-file="$TMP/cg.cg-nginx.out" \
        "$NGINX" -p "$TMP/cg-nginx" -c "$TMP/cg-nginx/nginx.conf" >"$TMP/cg-nginx.log" 2>&1 &
    PID["cg-nginx"]=$!; PIDS+=("${PID["cg-nginx"]}"); PID["cg-direct"]=${PID["cg-nginx"]}
    URL["cg-nginx"]="https://127.0.0.1:$cgp$REQ_PATH"; URL["cg-direct"]="https://127.0.0.1:$cgd$REQ_PATH"
    wait_for "nginx under callgrind" "https://127.0.0.1:$cgp/" 1200 --cacert "$TMP/cert.pem"
    start_koogate cg-koo-local local callgrind
    for t in cg-direct cg-nginx cg-koo-local; do
        out=$TMP/cg.${t/cg-direct/cg-nginx}.out
        local before
        before=$(find "$TMP" -maxdepth 1 -name "$(basename "$out").*" | wc -l)
        client batch --url "${URL[$t]}" --expect "$(expect_of "$t")" --warmup "$CG_WARMUP" --calls "$CG_CALLS" \
            --before "callgrind_control -z ${PID[$t]}" --after "callgrind_control -d ${PID[$t]}" >/dev/null ||
            die "callgrind batch failed ($t)"
        client batch --url "${URL[$t]}" --expect "$(expect_of "$t")" --warmup 2 --calls "$CG_NEWCONN" --newconn \
            --before "callgrind_control -z ${PID[$t]}" --after "callgrind_control -d ${PID[$t]}" >/dev/null ||
            die "callgrind newconn batch failed ($t)"
        local ka nc
        ka=$(cg_total "$out.$((before + 1))"); nc=$(cg_total "$out.$((before + 2))")
        local r=$RES/cg.${t#cg-}
        put "$r" calls "$CG_CALLS"
        put "$r" ir_per_call "$(calc "printf \"%.0f\", $ka / $CG_CALLS")"
        put "$r" ir_per_newconn_call "$(calc "printf \"%.0f\", $nc / $CG_NEWCONN")"
        log "  ${t#cg-}: $(get ir_per_call "$r") instructions per keep-alive call ($CG_CALLS calls), $(get ir_per_newconn_call "$r") per call on a new connection ($CG_NEWCONN calls)"
    done
    stop_server cg-koo-local; stop_server cg-nginx
}
cg_total() {  # Ir total of one callgrind dump
    for _ in $(seq 100); do grep -qE '^(totals|summary):' "$1" 2>/dev/null && break; sleep 0.1; done
    grep -qE '^(totals|summary):' "$1" 2>/dev/null || die "callgrind dump $1 missing or incomplete"
    awk '/^(totals|summary):/ { print $2; exit }' "$1"
}

# RSS idle and with 1,000 and 5,000 idle keep-alive TLS connections (each made one call, then stays open).
phase_idle() {  # TARGET
    local target=$1 r=$RES/idle.$1 held=0 n add status
    local -a mem
    read -r -a mem < <(mem_kb "${PID[$target]}")
    put "$r" rss_kb_0 "${mem[0]}"; put "$r" pss_kb_0 "${mem[1]}"
    local clients=()
    for n in $IDLE_CONNS; do
        add=$((n - held)); status=$TMP/hold.$target.$n
        # Not through client(): the pid must be python's own, for the signals below.
        python3 "$BENCH_DIR/tls_client.py" hold --url "${URL[$target]}" --expect "$(expect_of "$target")" \
            --cafile "$TMP/cert.pem" --key-file "$TMP/access-key" --count "$add" --status "$status" &
        clients+=($!)
        for _ in $(seq 1200); do [[ -s $status ]] && break; sleep 0.1; done
        [[ -s $status ]] || die "idle $target: $add connections not established in 120 s"
        (($(get failed "$status") == 0)) || die "idle $target: $(get failed "$status") of $add connections failed ($(get example "$status"))"
        held=$n
        sleep 2
        read -r -a mem < <(mem_kb "${PID[$target]}")
        put "$r" "rss_kb_$n" "${mem[0]}"; put "$r" "pss_kb_$n" "${mem[1]}"
        # Still open? (each client counts its connections the server has closed)
        local alive=0 c s
        for c in "${clients[@]}"; do kill -USR1 "$c"; done
        sleep 0.5
        for s in "$TMP"/hold."$target".*; do alive=$((alive + $(get alive "$s"))); done
        put "$r" "alive_$n" "$alive"
        ((alive == n)) || log "WARNING: idle $target: only $alive of $n connections still open"
        log "  $target: RSS $(calc "printf \"%.1f\", ${mem[0]} / 1024") MB with $n idle TLS connections (PSS $(calc "printf \"%.1f\", ${mem[1]} / 1024") MB; idle: $(calc "printf \"%.1f\", $(get rss_kb_0 "$r") / 1024") MB)"
    done
    for c in "${clients[@]}"; do kill -TERM "$c" 2>/dev/null || true; wait "$c" 2>/dev/null || true; done
    rm -f "$TMP"/hold."$target".*
}

# RSS of a fresh durable koogate after RSS_FIRST and after RSS_SECOND calls (unique orders: a new record each),
# driven with fixed-count wrk runs of at most RSS_CHUNK calls (every answer checked as everywhere else).
phase_rss_growth() {
    local t=koo-rss r=$RES/rss done_calls=0 want chunk i=0
    local -a mem
    start_koogate "$t" local
    run_wrk "$t" rss-warmup 60 16 0 2100 "$TMP/rss.warm" 2000
    done_calls=$(get requests "$TMP/rss.warm")
    read -r -a mem < <(mem_kb "${PID[$t]}"); put "$r" rss_kb_warm "${mem[0]}"; put "$r" calls_warm "$done_calls"
    for want in "$RSS_FIRST" "$RSS_SECOND"; do
        while ((done_calls < want)); do
            chunk=$((want - done_calls)); ((chunk > RSS_CHUNK)) && chunk=$RSS_CHUNK
            i=$((i + 1))
            run_wrk "$t" "rss-$i" 40 16 0 $((chunk + 16 * THREADS + 100)) "$TMP/rss.$i" "$chunk"
            done_calls=$((done_calls + $(get requests "$TMP/rss.$i")))
        done
        read -r -a mem < <(mem_kb "${PID[$t]}")
        put "$r" "rss_kb_at_$want" "${mem[0]}"; put "$r" "calls_at_$want" "$done_calls"
        put "$r" "records_at_$want" "$(koo_metric "$t" koogate_store_records)"
        log "  after $done_calls calls: RSS $(calc "printf \"%.1f\", ${mem[0]} / 1024") MB, $(koo_metric "$t" koogate_store_records) records"
    done
    put "$r" first "$RSS_FIRST"; put "$r" second "$RSS_SECOND"
    stop_server "$t"
}

# Good calls at the fixed rate while FLOOD_CONNECTIONS keep-alive connections send forged-signature calls.
phase_flood() {  # TARGET
    local target=$1 r=$RES/flood.$1 f=$RES/flood.$1.forged
    python3 "$BENCH_DIR/gen_requests.py" --key-file "$TMP/access-key" --count 50000 --path "$REQ_PATH" \
        --shards "$THREADS" --forge --out "$TMP/forged"
    local rej0; rej0=$(koo_metric "$target" koogate_rejections_total)
    wrk_drive "$target" refused $((RATE_DURATION + 2)) "$FLOOD_CONNECTIONS" 0 "$TMP/forged" "$f" &
    local flood=$!
    sleep 1
    run_wrk_in_flood "$target" "$r"
    wait "$flood" || die "forged-call flood failed"
    (($(get bad "$f") == 0)) || die "flood $target: $(get bad "$f") forged calls were not refused with a signed error (first: $(get bad_example "$f"))"
    local rej1; rej1=$(koo_metric "$target" koogate_rejections_total)
    put "$r" forged_rps "$(get rps "$f")"; put "$r" forged_calls "$(get requests "$f")"
    put "$r" rejections "$((rej1 - rej0))"
    ((rej1 - rej0 >= $(get requests "$f"))) ||
        die "flood $target: wrk sent $(get requests "$f") forged calls but koogate_rejections_total rose by $((rej1 - rej0))"
    log "  $target: good calls $(get rps "$r")/s p50 $(get p50_ms "$r") ms p99 $(get p99_ms "$r") ms p99.9 $(get p999_ms "$r") ms, while $(get rps "$f") forged calls/s were refused"
    rm -f "$TMP"/forged.*
}
run_wrk_in_flood() {  # the good calls of the flood phase: run_wrk's checks, but the flood moves other counters
    local target=$1 r=$2 before after
    python3 "$BENCH_DIR/gen_requests.py" --key-file "$TMP/access-key" --count "$(budget "$RATE_DURATION" "$RATE_TARGET")" \
        --path "$REQ_PATH" --shards "$THREADS" --out "$TMP/reqs"
    read -r -a before < <(koo_counts "$target")
    wrk_drive "$target" koogate "$RATE_DURATION" "$RATE_CONNECTIONS" "$RATE_DELAY_MS" "$TMP/reqs" "$r"
    read -r -a after < <(koo_counts "$target")
    rm -f "$TMP"/reqs.*
    (($(get bad "$r") == 0 && $(get wraps "$r") == 0)) || die "flood $target: $(get bad "$r") good calls got a wrong answer (first: $(get bad_example "$r"))"
    ((after[0] - before[0] >= $(get requests "$r"))) || die "flood $target: koogate answered fewer good calls than wrk completed"
}

# Restart time with 1M records: bench/restart.sh (the store's), when present.
phase_restart() {
    local r=$RES/restart line
    if [[ ! -f $BENCH_DIR/restart.sh ]]; then
        put "$r" note "bench/restart.sh not present"; log "  skipped: bench/restart.sh is not in this tree"; return 0
    fi
    KOOGATE_BIN=$KOOGATE_BIN bash "$BENCH_DIR/restart.sh" >"$TMP/restart.out" 2>&1 ||
        { tail -n 20 "$TMP/restart.out" >&2; die "bench/restart.sh failed"; }
    line=$(grep -E '^restart with ' "$TMP/restart.out" | tail -n 1)
    [[ -n $line ]] || { tail -n 20 "$TMP/restart.out" >&2; die "bench/restart.sh printed no 'restart with ...' line"; }
    put "$r" line "$line"
    put "$r" seconds "$(sed -n 's/^restart with [^:]*: \([0-9.]*\) s.*/\1/p' <<<"$line")"
    log "  $line"
}
