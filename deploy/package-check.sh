#!/usr/bin/env bash
# CI check of the release artefacts: builds them (deploy/release.sh), creates a clean Debian root with debootstrap
# (minbase bookworm, kept in target/pkgroot-base between runs), installs the .deb into a copy of it with dpkg, and
# checks from inside that root what a seller would see: the files and their modes, the `koogate` system user,
# `koogate --version`, and `koogate check` on the installed configuration (with throwaway credentials where systemd
# would put them). Then purges the package and checks that the user and state are gone.
#
#   bash deploy/package-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n--> %s\n' "$*"; }
fail() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Without the aarch64 binary (a second release build, ~8 CPU-minutes): deploy/release.sh builds it by default.
KOOGATE_AARCH64=${KOOGATE_AARCH64:-0} bash deploy/release.sh
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
deb=target/artefacts/koogate_${version}-1_amd64.deb

step "clean Debian root (debootstrap)"
command -v debootstrap >/dev/null 2>&1 || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
}
base=target/pkgroot-base
if [ ! -x "$base/usr/bin/dpkg" ]; then
  rm -rf "$base"
  mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)
  debootstrap --variant=minbase bookworm "$base" "${mirror:-http://deb.debian.org/debian}" >/dev/null
fi
root=$(mktemp -d /tmp/koogate-pkgroot.XXXXXX)
trap 'rm -rf "$root"' EXIT
cp -a "$base/." "$root/"
in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }

step "dpkg -i $(basename "$deb")"
cp "$deb" "$root/tmp/koogate.deb"
in_root dpkg -i /tmp/koogate.deb

step "installed files, modes and the system user"
for path in /usr/bin/koogate /lib/systemd/system/koogate.service /etc/koogate/koogate.toml \
  /etc/koogate/koogate.env /usr/share/doc/koogate/examples/koogate.example.toml /usr/share/doc/koogate/README.Debian; do
  [ -e "$root$path" ] || fail "$path not installed"
  printf '%s %s\n' "$(stat -c '%a %U:%G' "$root$path")" "$path"
done
[ "$(stat -c %a "$root/etc/koogate/koogate.env")" = 600 ] || fail "/etc/koogate/koogate.env is not 0600"
[ "$(stat -c '%a %U' "$root/etc/koogate/credentials")" = "700 root" ] || fail "/etc/koogate/credentials is not 0700 root"
in_root getent passwd koogate || fail "no koogate user"
[ "$(in_root stat -c '%a %U' /var/lib/koogate)" = "700 koogate" ] || fail "/var/lib/koogate is not 0700 koogate"
grep -q '^ExecStart=/usr/bin/koogate run' "$root/lib/systemd/system/koogate.service" || fail "unit ExecStart"
grep -q '^User=koogate$' "$root/lib/systemd/system/koogate.service" || fail "unit User="
in_root dpkg-query -W -f='${Conffiles}\n' koogate | grep -q /etc/koogate/koogate.toml || fail "koogate.toml is not a conffile"

step "koogate --version (inside the root)"
in_root koogate --version | tee "$root/tmp/version"
grep -q "^koogate $version (commit " "$root/tmp/version" || fail "unexpected --version"

step "koogate check on the installed configuration (inside the root)"
# What systemd's LoadCredential= would provide: throwaway certificate, access key and journal key.
creds="$root/run/credentials/koogate.service"
mkdir -p "$creds"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$creds/tls-key.pem" \
  -out "$creds/tls-chain.pem" -days 30 -subj /CN=saas.example.com -addext subjectAltName=DNS:saas.example.com \
  >/dev/null 2>&1
printf 'test-access-key-0001-0000-000000000000' >"$creds/access-key"
openssl rand -hex 32 >"$creds/journal-key"
chmod 0600 "$creds"/*
in_root koogate check --config /etc/koogate/koogate.toml

step "dpkg --purge"
in_root dpkg --purge koogate
! in_root getent passwd koogate >/dev/null || fail "the koogate user survived the purge"
[ ! -e "$root/var/lib/koogate" ] || fail "/var/lib/koogate survived the purge"
[ ! -e "$root/usr/bin/koogate" ] || fail "/usr/bin/koogate survived the purge"
echo "ok"
