#!/usr/bin/env bash
# The README's test command: installs the system programs the end-to-end tests start (when missing), then runs the
# whole test suite. Extra arguments go to `cargo test` (for example a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."

# The e2e suite starts real peers: the example upstream (python3, standard library only), its own redis-server
# processes (several replicas sharing state; the system service is not used) and `openssl s_server` (a TLS
# 1.1-only server for simulate's tests; `openssl s_client` as a TLS 1.0/1.1 client and as one that does not trust
# koogate's certificate, tests/e2e/operator.rs).
# curl runs the commands the READMEs show (tests/e2e/readme.rs).
# pebble is Let's Encrypt's RFC 8555 test CA: the [acme] tests (tests/e2e/acme/) order certificates from it.
# chromium (headless, Debian's package) loads the console page and runs its script (tests/e2e/console.rs).
need=(python3:python3 redis-server:redis-server openssl:openssl curl:curl pebble:pebble chromium:chromium)
missing=()
for pair in "${need[@]}"; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair##*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "tests/run.sh: installing ${missing[*]} (Debian packages the end-to-end tests start)" >&2
  sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "tests/run.sh: no apt-get here; install ${missing[*]} with your package manager, then run again" >&2
    exit 1
  fi
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi

exec cargo test --locked "$@"
