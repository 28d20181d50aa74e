#!/usr/bin/env bash
# Proves the cross-built library for one ARM target, on this x86_64 machine, under qemu-user:
#  1. the library's Rust tests, built for the target and run by qemu (cargo's target runner, set in
#     .cargo/config.toml), the LuaJIT ones loading $DIST/<target>/libup42webhooks.so (DIST: make
#     cross's, dist/ unless given);
#  2. that architecture's own LuaJIT (Debian's luajit2 package for arm64 or armhf), running the Lua
#     module's FFI binding against every reference vector with the same library.
#   tests/cross/run.sh TARGET      (after `make cross`; `make cross-test` runs it for each target)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
target=${1:?usage: run.sh TARGET}
case "$target" in
  aarch64-unknown-linux-gnu) arch=arm64 qemu=qemu-aarch64 triple=aarch64-linux-gnu ;;
  armv7-unknown-linux-gnueabihf) arch=armhf qemu=qemu-arm triple=arm-linux-gnueabihf ;;
  *) echo "run.sh: no qemu set-up for $target" >&2; exit 2 ;;
esac
dist=${DIST:-$root/dist}/$target
lib="$dist/libup42webhooks.so"
[ -f "$lib" ] || { echo "no $lib: run make cross first" >&2; exit 1; }
(cd "$dist" && sha256sum --quiet -c SHA256SUMS)
work="$root/target/cross"
mkdir -p "$work"

# The README promises these libraries run on glibc 2.34 and newer (Raspberry Pi OS bookworm has 2.36).
glibc=$(objdump -T "$lib" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n 1)
[ "$(printf '%s\n2.34\n' "$glibc" | sort -V | tail -n 1)" = 2.34 ] || {
  echo "$lib needs glibc $glibc, newer than the 2.34 the README promises" >&2; exit 1; }
echo "== $target: needs glibc $glibc at most"

# mlua builds its own LuaJIT for the target; for a 32-bit target LuaJIT's build tools are
# compiled with `cc -m32`, which finds <asm/...> only through the /usr/include/asm link that
# gcc-multilib installs, and gcc-multilib conflicts with Debian's ARM cross compilers. This `cc`
# adds that one include directory for -m32 compiles and is otherwise the real cc.
shim="$work/m32-cc"
mkdir -p "$shim/include"
ln -sfn /usr/include/x86_64-linux-gnu/asm "$shim/include/asm"
cat > "$shim/cc" <<SHIM
#!/bin/sh
for a in "\$@"; do
  [ "\$a" = -m32 ] && exec /usr/bin/cc -isystem "$shim/include" "\$@"
done
exec /usr/bin/cc "\$@"
SHIM
chmod +x "$shim/cc"

echo "== $target: Rust tests under $qemu"
# For this target only (not the host's build scripts): the cfg that leaves out the host-only
# dev-dependencies (cbindgen, criterion; Cargo.toml) and the header's check that uses cbindgen.
flags_var=CARGO_TARGET_$(printf '%s' "$target" | tr 'a-z-' 'A-Z_')_RUSTFLAGS
export "$flags_var=--cfg up42wh_qemu"
(cd "$root" && PATH="$shim:$PATH" UP42WH_TEST_CDYLIB="$lib" cargo test --locked --target "$target" \
  --lib)
# Of the library's test binary, the modules that need nothing of the host (c_abi compiles C for
# the host, header runs cbindgen): the filters pick them by module path.
(cd "$root" && PATH="$shim:$PATH" UP42WH_TEST_CDYLIB="$lib" cargo test --locked --target "$target" \
  --test abi -- no_alloc:: up42_vectors:: sf_conformance:: codes:: properties:: luajit_cdef:: \
  lua_module:: rfc9421:: senders::)

echo "== $target: Debian's luajit2:$arch under $qemu"
luajit_root="$work/luajit-$arch"
if [ ! -x "$luajit_root/usr/bin/luajit" ]; then
  rm -rf "$luajit_root" && mkdir -p "$luajit_root/debs"
  download() {
    (cd "$luajit_root/debs" && apt-get download -q -o APT::Sandbox::User=root \
      "luajit2:$arch" "libluajit2-5.1-2:$arch")
  }
  # A package list caught mid-sync on the mirror is the usual cause of a failure: update once more.
  download || { apt-get update -qq || true; download; } || {
    echo "cannot download luajit2:$arch: make cross-deps adds the architecture to dpkg" >&2; exit 1; }
  for deb in "$luajit_root"/debs/*.deb; do dpkg-deb -x "$deb" "$luajit_root"; done
fi
vectors="$work/vectors.lua"
if [ ! -f "$vectors" ] || [ "$root/tests/vectors/up42.json" -nt "$vectors" ]; then
  python3 "$root/tests/cross/vectors_lua.py" "$root/tests/vectors/up42.json" "$vectors"
fi
"$qemu" -L "/usr/$triple" -E "LD_LIBRARY_PATH=$luajit_root/usr/lib/$triple" \
  "$luajit_root/usr/bin/luajit" "$root/tests/cross/vectors.lua" "$root" "$dist" "$vectors"
