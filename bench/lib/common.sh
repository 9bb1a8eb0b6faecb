# shellcheck shell=bash
# bench/lib/common.sh: logging, errors, cleanup, /proc readers and small numeric helpers for bench/run.sh.
# Sourced, not run. Expects BENCH_DIR, KEEP_TMP and TMP (set by init_scratch).

log() { printf '[bench] %s\n' "$*" >&2; }
DIE_MSG=""
die() { DIE_MSG="$*"; printf '[bench] ERROR: %s\n' "$*" >&2; exit 1; }

seconds() {  # "10" or "10s" -> 10
    local v=${1%s}
    [[ $v =~ ^[0-9]+$ && $v -gt 0 ]] || die "bad duration '$1' (want whole seconds, e.g. 10 or 10s)"
    echo "$v"
}

# Installs what is missing (apt-get, as root): "command:package" pairs.
need_tools() {
    local pair missing=()
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || [[ -x /usr/sbin/${pair%%:*} ]] || missing+=("${pair##*:}")
    done
    ((${#missing[@]})) || return 0
    [[ $(id -u) -eq 0 ]] || die "missing ${missing[*]}; run as root to install them with apt-get, or install them"
    command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get to install them"
    log "installing ${missing[*]} with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
        die "apt-get install ${missing[*]} failed"
}

# ---------------------------------------------------------------------------------------------------- scratch + cleanup
PIDS=()
init_scratch() {
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/koogate-bench.XXXXXX")
    chmod 755 "$TMP"   # nginx workers may run as an unprivileged user
    RES=$TMP/results; mkdir -p "$RES"
    trap cleanup EXIT
    trap 'DIE_MSG=interrupted; exit 130' INT
    trap 'DIE_MSG=terminated; exit 143' TERM
}
stop_pid() {  # TERM, wait up to 5 s (valgrind: 30 s), then KILL
    local pid=$1 tries=${2:-50}
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq "$tries"); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
forget_pid() {  # drop a stopped process from the cleanup list
    local pid=$1 keep=() p
    for p in "${PIDS[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do stop_pid "$pid" 300; done
    if ((rc != 0)); then
        for f in "$TMP"/*.log "$TMP"/*/logs/error.log; do
            [[ -s $f ]] && { log "--- last lines of $f"; tail -n 5 "$f" | cut -c1-400 >&2; }
        done
        [[ -n $DIE_MSG ]] && log "FAILED: $DIE_MSG"
    fi
    if [[ $KEEP_TMP == 1 ]]; then log "scratch directory kept: $TMP"; else rm -rf "$TMP"; fi
    exit "$rc"
}

free_ports() {  # N loopback ports the kernel says are free right now
    python3 - "$1" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
EOF
}

# ---------------------------------------------------------------------------------------------------- /proc readers
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
# "RSS_KB PSS_KB" summed over the given processes and their direct children.
mem_kb() {
    python3 - "$@" <<'EOF'
import os, sys
roots = {int(p) for p in sys.argv[1:]}
rss = pss = 0
for d in os.listdir("/proc"):
    if not d.isdigit():
        continue
    try:
        with open(f"/proc/{d}/stat") as f:
            ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        if int(d) not in roots and ppid not in roots:
            continue
        with open(f"/proc/{d}/smaps_rollup") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k == "Rss": rss += int(v.split()[0])
                if k == "Pss": pss += int(v.split()[0])
    except OSError:
        continue
print(rss, pss)
EOF
}
children_of() {  # how many processes have this parent
    python3 - "$1" <<'EOF'
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
}
# How busy the machine is with other work (call it while our servers are idle): 1 s sample of /proc/stat.
cpu_busy_pct() {
    local a b
    a=$(head -n 1 /proc/stat); sleep 1; b=$(head -n 1 /proc/stat)
    awk -v a="$a" -v b="$b" 'BEGIN {
        n = split(a, x, " "); split(b, y, " "); t = 0
        for (i = 2; i <= n; i++) t += y[i] - x[i]
        idle = (y[5] - x[5]) + (y[6] - x[6])
        printf "%.0f", t ? 100 * (t - idle) / t : 0 }'
}

# ---------------------------------------------------------------------------------------------------- numbers
get() { awk -F= -v k="$1" '$1 == k { sub(/^[^=]*=/, ""); print; exit }' "$2"; }
put() { printf '%s=%s\n' "$2" "$3" >>"$1"; }   # put FILE KEY VALUE
calc() { awk "BEGIN { $1 }"; }                 # calc 'printf "%.1f", 3 / 2'
budget() {  # calls to generate for SECONDS at RPS (with margin)
    awk -v s="$1" -v r="$2" 'BEGIN { n = int(s * r * 1.5) + 5000; print n }'
}
