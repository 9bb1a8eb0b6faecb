#!/usr/bin/env bash
# Builds koogate's release artefacts from Cargo.lock, offline once the crates are fetched, into target/artefacts/:
#
#   koogate-VERSION-x86_64-linux-musl        static x86_64 binary (musl, stripped), and its .sha256
#   koogate_VERSION-1_amd64.deb              binary, hardened systemd unit, /etc/koogate/, `koogate` system user
#   image/                                   build context for deploy/Dockerfile.static (scratch, non-root)
#   koogate-VERSION-aarch64-linux-musl       only with KOOGATE_AARCH64=1, when a cross C compiler is at hand (see
#                                            docs/operations.md, "Install": Debian has no aarch64 musl toolchain)
#
# Installs what it needs when missing: the Rust musl target (rustup), musl-gcc (Debian musl-tools, for the C parts
# of ring and mimalloc) and cargo-deb (crates.io, pinned). The same command runs in CI (deploy/package-check.sh).
#
#   bash deploy/release.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

CARGO_DEB_VERSION=3.8.0
target=x86_64-unknown-linux-musl
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
out=target/artefacts
mkdir -p "$out" target/deb

step() { printf '\n--> %s\n' "$*"; }
sudo_=()
[ "$(id -u)" -eq 0 ] || sudo_=(sudo)
apt_install() {
  "${sudo_[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_[@]}" apt-get install -y -qq "$@" >/dev/null
}

step "tools"
rustup target list --installed 2>/dev/null | grep -qx "$target" || rustup target add "$target"
command -v musl-gcc >/dev/null 2>&1 || apt_install musl-tools
command -v file >/dev/null 2>&1 || apt_install file
if ! cargo deb --version 2>/dev/null | grep -q "$CARGO_DEB_VERSION"; then
  cargo install --locked --quiet cargo-deb --version "$CARGO_DEB_VERSION"
fi
cargo deb --version

step "static x86_64 binary ($target, profile dist)"
cargo fetch --locked
CC_x86_64_unknown_linux_musl=musl-gcc cargo build --offline --locked --profile dist --target "$target"
bin=target/$target/dist/koogate
binary="$out/koogate-$version-x86_64-linux-musl"
install -m 0755 "$bin" "$binary"
(cd "$out" && sha256sum "$(basename "$binary")" >"$(basename "$binary").sha256")
echo "size: $(stat -c %s "$binary") bytes ($(du -h "$binary" | cut -f1))"
file "$binary"
# ldd exits non-zero for a static binary; its message is the proof (`file` says "static-pie linked").
ldd_says=$(ldd "$binary" 2>&1 || true)
echo "ldd: $ldd_says"
case "$ldd_says" in
  *"statically linked"* | *"not a dynamic executable"*) ;;
  *) echo "error: $binary is not statically linked" >&2; exit 1 ;;
esac
"$binary" --version

step ".deb (cargo-deb)"
# The package's unit is the hardened one from deploy/systemd with the packaged path and the package's system user
# (with DynamicUser=yes, systemd uses a static user of that name when one exists).
sed -e 's#/usr/local/bin/koogate#/usr/bin/koogate#g' \
    -e 's#^DynamicUser=yes$#DynamicUser=yes\nUser=koogate\nGroup=koogate#' \
    deploy/systemd/koogate.service >target/deb/koogate.service
grep -q '^User=koogate$' target/deb/koogate.service
cargo deb --no-build --no-strip --target "$target" --profile dist --output "$out/koogate_${version}-1_amd64.deb"
dpkg-deb --info "$out/koogate_${version}-1_amd64.deb" | sed -n '/Package:/,$p'
dpkg-deb --contents "$out/koogate_${version}-1_amd64.deb"

step "container image context (deploy/Dockerfile.static)"
rm -rf "$out/image" && mkdir -p "$out/image"
install -m 0755 "$binary" "$out/image/koogate"
cp deploy/Dockerfile.static "$out/image/Dockerfile"
echo "docker build -t koogate:$version $out/image     (no Docker engine on this machine: not built here)"

if [ "${KOOGATE_AARCH64:-0}" = 1 ]; then
  step "aarch64 (Kunpeng) binary"
  rustup target list --installed | grep -qx aarch64-unknown-linux-musl || rustup target add aarch64-unknown-linux-musl
  : "${CC_aarch64_unknown_linux_musl:?set CC_aarch64_unknown_linux_musl to an aarch64 musl C compiler (e.g. aarch64-linux-musl-gcc from musl.cc)}"
  CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=${CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER:-$CC_aarch64_unknown_linux_musl} \
    cargo build --offline --locked --profile dist --target aarch64-unknown-linux-musl
  install -m 0755 target/aarch64-unknown-linux-musl/dist/koogate "$out/koogate-$version-aarch64-linux-musl"
  file "$out/koogate-$version-aarch64-linux-musl"
fi

step "artefacts"
ls -l "$out"
