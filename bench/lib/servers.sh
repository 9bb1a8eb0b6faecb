# shellcheck shell=bash
# bench/lib/servers.sh: the certificate, the configurations and the start of the servers the benchmark drives:
#   upstream  nginx answering a static `{}` over plain HTTP (shared by every target)
#   nginx     TLS reverse proxy to the upstream (no verification); its `direct` server block answers `{}` itself
#             over TLS (no upstream hop: the physical limit of TLS + HTTP/1.1 on this machine)
#   koo-*     koogate instances (store backend per instance)
# Sourced by bench/run.sh. Sets PORT[name], PID[name], ADMIN[name] (koogate) and URL[name].
declare -A PORT PID ADMIN URL

make_secrets() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$TMP/key.pem" \
        -out "$TMP/cert.pem" -days 30 -subj /CN=localhost \
        -addext subjectAltName=DNS:localhost,IP:127.0.0.1 >/dev/null 2>&1 || die "openssl could not create the certificate"
    chmod 644 "$TMP/key.pem"
    openssl rand -hex 32 >"$TMP/access-key"
    chmod 600 "$TMP/access-key"
    od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$TMP/journal-key"
}

wait_for() {  # name url tries [curl args...]
    local name=$1 url=$2 tries=$3; shift 3
    for _ in $(seq "$tries"); do
        curl -fsS -o /dev/null "$@" "$url" 2>/dev/null && return 0
        sleep 0.1
    done
    die "$name did not come up at $url"
}

start_upstream() {
    read -r "PORT[upstream]" < <(free_ports 1)
    mkdir -p "$TMP/upstream/logs"
    # No access log, keep-alive effectively unlimited (nginx's default closes a keep-alive connection after 1000
    # calls; koogate does not, and a reconnect costs a TLS handshake).
    cat >"$TMP/upstream/nginx.conf" <<EOF
daemon off;
worker_processes $UPSTREAM_WORKERS;
worker_rlimit_nofile $NOFILE;
pid $TMP/upstream/nginx.pid;
error_log $TMP/upstream/logs/error.log warn;
events { worker_connections 16384; }
http {
    access_log off;
    default_type application/json;
    keepalive_requests 10000000;
    keepalive_timeout 75s;
    server {
        listen 127.0.0.1:${PORT[upstream]} backlog=4096;
        location / { return 200 '{}'; }
    }
}
EOF
    "$NGINX" -t -q -p "$TMP/upstream" -c "$TMP/upstream/nginx.conf" >/dev/null 2>&1 ||
        { "$NGINX" -t -p "$TMP/upstream" -c "$TMP/upstream/nginx.conf"; die "nginx upstream configuration rejected"; }
    "$NGINX" -p "$TMP/upstream" -c "$TMP/upstream/nginx.conf" 2>>"$TMP/upstream/logs/error.log" &
    PID[upstream]=$!; PIDS+=("${PID[upstream]}")
    wait_for upstream "http://127.0.0.1:${PORT[upstream]}/" 100
}

# nginx_conf DIR PROXY_PORT DIRECT_PORT WORKERS [callgrind]: the TLS proxy and the direct TLS server.
nginx_conf() {
    local dir=$1 proxy_port=$2 direct_port=$3 workers=$4 mode=${5:-}
    local head="worker_processes $workers;"
    [[ $mode == callgrind ]] && head="master_process off;"
    mkdir -p "$dir/logs"
    cat >"$dir/nginx.conf" <<EOF
daemon off;
$head
worker_rlimit_nofile $NOFILE;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 16384; }
http {
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 75s;
    ssl_certificate $TMP/cert.pem;
    ssl_certificate_key $TMP/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    upstream app {
        server 127.0.0.1:${PORT[upstream]};
        keepalive 32;
        keepalive_requests 10000000;
    }
    server {
        # reuseport: one listening socket per worker, so the kernel spreads connections evenly over workers.
        listen 127.0.0.1:$proxy_port ssl reuseport backlog=4096;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
    server {
        listen 127.0.0.1:$direct_port ssl reuseport backlog=4096;
        default_type application/json;
        location / { return 200 '{}'; }
    }
}
EOF
    "$NGINX" -t -q -p "$dir" -c "$dir/nginx.conf" >/dev/null 2>&1 ||
        { "$NGINX" -t -p "$dir" -c "$dir/nginx.conf"; die "nginx configuration $dir rejected"; }
}

start_nginx() {
    read -r "PORT[nginx]" "PORT[direct]" < <(free_ports 2)
    nginx_conf "$TMP/proxy" "${PORT[nginx]}" "${PORT[direct]}" "$NGINX_WORKERS"
    "$NGINX" -p "$TMP/proxy" -c "$TMP/proxy/nginx.conf" 2>>"$TMP/proxy/logs/error.log" &
    PID[nginx]=$!; PIDS+=("${PID[nginx]}"); PID[direct]=${PID[nginx]}
    URL[nginx]="https://127.0.0.1:${PORT[nginx]}$REQ_PATH"
    URL[direct]="https://127.0.0.1:${PORT[direct]}$REQ_PATH"
    wait_for "nginx proxy" "https://127.0.0.1:${PORT[nginx]}/" 100 --cacert "$TMP/cert.pem"
    wait_for "nginx direct" "https://127.0.0.1:${PORT[direct]}/" 100 --cacert "$TMP/cert.pem"
    NGX_WORKER_COUNT=$(children_of "${PID[nginx]}")
}

# koogate_conf NAME STORE PORT ADMIN_PORT EXTRA_SERVER_LINES: writes $TMP/NAME.toml (data in $TMP/NAME.data).
koogate_conf() {
    local name=$1 store=$2 port=$3 admin=$4 extra=${5:-}
    cat >"$TMP/$name.toml" <<EOF
[server]
listen = "127.0.0.1:$port"
cert_chain_file = "cert.pem"
private_key_file = "key.pem"
# Above the 5,000 idle connections of the memory phase; the fd limit is raised to match (NOFILE).
max_connections = 12000
# nginx keeps idle keep-alive connections 75 s: koogate closes them after header_read_timeout (default 5 s).
header_read_timeout_ms = 60000
shutdown_grace_ms = 1000
$extra

[admin]
listen = "127.0.0.1:$admin"

[verify]
replay_cache_max_entries = 5000000

[[access_keys]]
name = "bench"
file = "access-key"

[upstream]
default_route = "app"
pool_max_idle_per_host = 32

[upstream.routes.app]
url = "http://127.0.0.1:${PORT[upstream]}$REQ_PATH"

[test_calls]
mode = "forward"

[store]
backend = "$store"
data_dir = "$name.data"
journal_key_file = "journal-key"

[log]
format = "json"
level = "warn"
EOF
    "$KOOGATE_BIN" check --config "$TMP/$name.toml" >"$TMP/$name.check" 2>&1 ||
        { cat "$TMP/$name.check" >&2; die "koogate check rejected $TMP/$name.toml"; }
}

# start_koogate NAME STORE [callgrind]: a koogate instance on fresh ports with a fresh data directory.
start_koogate() {
    local name=$1 store=$2 mode=${3:-} p a
    read -r p a < <(free_ports 2)
    PORT[$name]=$p; ADMIN[$name]=$a
    URL[$name]="https://127.0.0.1:$p$REQ_PATH"
    if [[ $mode == callgrind ]]; then
        koogate_conf "$name" "$store" "$p" "$a" "handshake_timeout_ms = 60000"
        valgrind --tool=callgrind --callgrind-out-file="$TMP/cg.$name.out" \
            "$KOOGATE_BIN" run --config "$TMP/$name.toml" >"$TMP/$name.log" 2>&1 &
    else
        koogate_conf "$name" "$store" "$p" "$a"
        "$KOOGATE_BIN" run --config "$TMP/$name.toml" >"$TMP/$name.log" 2>&1 &
    fi
    PID[$name]=$!; PIDS+=("${PID[$name]}")
    wait_for "koogate $name admin" "http://127.0.0.1:$a/readyz" 1200
    kill -0 "${PID[$name]}" 2>/dev/null || die "koogate $name exited at start"
}

stop_server() {  # stop_server NAME
    local tries=50
    [[ ${1} == cg-* ]] && tries=600
    stop_pid "${PID[$1]}" "$tries"; forget_pid "${PID[$1]}"
}

# What an OpenSSL client (like wrk) negotiates with a listener.
tls_of() {
    openssl s_client -connect "127.0.0.1:$1" -servername localhost </dev/null 2>/dev/null |
        sed -n 's/^New, \(.*\), Cipher is \(.*\)$/\1 \2/p' | head -n 1
}

# koogate's answered-call counters: "<orderNotify 000000> <everything else>".
koo_counts() {
    curl -fsS "http://127.0.0.1:${ADMIN[$1]}/metrics" | awk '
        /^koogate_requests_total\{/ {
            if ($0 ~ /activity="orderNotify"/ && $0 ~ /result_code="000000"/) ok += $NF; else other += $NF
        }
        END { printf "%d %d\n", ok, other }'
}
koo_rejections() {
    curl -fsS "http://127.0.0.1:${ADMIN[$1]}/metrics" | grep -E '^koogate_(rejections|upstream_failures)_total' || true
}
koo_metric() {  # koo_metric NAME METRIC -> sum of the series' values
    curl -fsS "http://127.0.0.1:${ADMIN[$1]}/metrics" | awk -v m="$2" '$1 == m || index($1, m "{") == 1 { s += $NF } END { printf "%d\n", s }'
}
