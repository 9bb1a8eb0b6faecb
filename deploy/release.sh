#!/usr/bin/env bash
# Builds koogate's release artefacts from Cargo.lock, offline once the crates are fetched, into target/artefacts/:
#
#   koogate-VERSION-x86_64-linux-musl        static x86_64 binary (musl, stripped), and its .sha256
#   koogate_VERSION-1_amd64.deb              binary, hardened systemd unit, /etc/koogate/, `koogate` system user
#   image/                                   build context for deploy/Dockerfile.static (scratch, non-root)
#   koogate-VERSION-aarch64-linux-musl       static aarch64 (Kunpeng) binary, and its .sha256 (KOOGATE_AARCH64 below)
#   koogate_VERSION-1_arm64.deb              the same package for arm64
#
# Installs what it needs when missing: the Rust musl targets (rustup), musl-gcc (Debian musl-tools, for the C parts
# of ring and mimalloc), cargo-deb (crates.io, pinned) and, for aarch64, Debian's gcc-aarch64-linux-gnu (its C
# compiler builds ring's and mimalloc's C for musl; Rust's bundled rust-lld links against Rust's own musl) and
# qemu-user-static (runs the aarch64 binary's `--version` and `check` here). The same command runs in CI
# (deploy/package-check.sh, with KOOGATE_AARCH64=0: see docs/operations.md, "Install").
#
#   bash deploy/release.sh                     # KOOGATE_AARCH64=auto: aarch64 too when its tools are or can be installed
#   KOOGATE_AARCH64=1 bash deploy/release.sh   # aarch64 required (fails without its tools)
#   KOOGATE_AARCH64=0 bash deploy/release.sh   # x86_64 only
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

CARGO_DEB_VERSION=3.8.0
target=x86_64-unknown-linux-musl
arm_target=aarch64-unknown-linux-musl
aarch64=${KOOGATE_AARCH64:-auto}
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
out=target/artefacts
build_dir=${CARGO_TARGET_DIR:-target}
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
if [ "$aarch64" != 0 ]; then
  # Best effort under "auto": without the cross tools the aarch64 binary is skipped, and said so.
  arm_tools() {
    { rustup target list --installed 2>/dev/null | grep -qx "$arm_target" || rustup target add "$arm_target"; } &&
      { command -v "${CC_aarch64_unknown_linux_musl:-aarch64-linux-gnu-gcc}" >/dev/null 2>&1 ||
        apt_install gcc-aarch64-linux-gnu; } &&
      { command -v qemu-aarch64-static >/dev/null 2>&1 || apt_install qemu-user-static || true; }
  }
  if arm_tools; then
    aarch64=1
  elif [ "$aarch64" = 1 ]; then
    echo "error: KOOGATE_AARCH64=1 but the aarch64 tools cannot be installed" >&2; exit 1
  else
    echo "note: no aarch64 cross tools (rustup target $arm_target, gcc-aarch64-linux-gnu): aarch64 binary skipped"
    aarch64=0
  fi
fi

step "static x86_64 binary ($target, profile dist)"
cargo fetch --locked
CC_x86_64_unknown_linux_musl=musl-gcc cargo build --offline --locked --profile dist --target "$target"
bin=$build_dir/$target/dist/koogate
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

if [ "$aarch64" = 1 ]; then
  step "static aarch64 (Kunpeng) binary ($arm_target, profile dist)"
  # ring's and mimalloc's C parts are compiled by Debian's aarch64 (glibc) cross compiler: they use only what musl
  # provides too. Linking is rust-lld's, against the musl that ships with the Rust target (self-contained).
  host=$(rustc -vV | sed -n 's/^host: //p')
  rust_lld="$(rustc --print sysroot)/lib/rustlib/$host/bin/rust-lld"
  CC_aarch64_unknown_linux_musl=${CC_aarch64_unknown_linux_musl:-aarch64-linux-gnu-gcc} \
    AR_aarch64_unknown_linux_musl=${AR_aarch64_unknown_linux_musl:-aarch64-linux-gnu-ar} \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=${CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER:-$rust_lld} \
    cargo build --offline --locked --profile dist --target "$arm_target"
  arm_binary="$out/koogate-$version-aarch64-linux-musl"
  install -m 0755 "$build_dir/$arm_target/dist/koogate" "$arm_binary"
  (cd "$out" && sha256sum "$(basename "$arm_binary")" >"$(basename "$arm_binary").sha256")
  echo "size: $(stat -c %s "$arm_binary") bytes ($(du -h "$arm_binary" | cut -f1))"
  arm_file=$(file "$arm_binary")
  echo "$arm_file"
  case "$arm_file" in
    *"ARM aarch64"*"static"*) ;;
    *) echo "error: $arm_binary is not a static aarch64 executable" >&2; exit 1 ;;
  esac
  # The same package for arm64 (Kunpeng ECS running Debian/Ubuntu).
  cargo deb --no-build --no-strip --target "$arm_target" --profile dist \
    --output "$out/koogate_${version}-1_arm64.deb"
  dpkg-deb --info "$out/koogate_${version}-1_arm64.deb" | grep -E '^ (Package|Version|Architecture):'
  if command -v qemu-aarch64-static >/dev/null 2>&1; then
    # Under user-mode emulation: --version, and `check` on the example configuration with throwaway files.
    qemu-aarch64-static "$arm_binary" --version
    check_dir=$(mktemp -d)
    mkdir -p "$check_dir/tls"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$check_dir/tls/privkey.pem" \
      -out "$check_dir/tls/fullchain.pem" -days 30 -subj /CN=saas.example.com \
      -addext subjectAltName=DNS:saas.example.com >/dev/null 2>&1
    cp config/koogate.example.toml "$check_dir/koogate.toml"
    (cd "$check_dir" && KOOGATE_ACCESS_KEY=test-access-key-0001 KOOGATE_JOURNAL_KEY=$(openssl rand -hex 32) \
      qemu-aarch64-static "$OLDPWD/$arm_binary" check --config koogate.toml)
    rm -rf "$check_dir"
  else
    echo "note: no qemu-aarch64-static: the aarch64 binary was built but not run here"
  fi
fi

step "artefacts"
ls -l "$out"
