#!/usr/bin/env bash
# CTest "install": installs this build to a temporary prefix (cmake --install) and checks the
# layout (include/lisa.h, lib/liblisa.{a,so}, lib/cmake/lisa, lib/pkgconfig/lisa.pc, bin/lisa) and
# that liblisa.so exports the LISA_API functions of lisa.h and nothing else; then builds
# examples/embed.c against the prefix three ways: find_package + lisa::lisa (shared),
# find_package + lisa::lisa_static, and pkg-config; and runs each on the tiny model.
# usage: test_install.sh BUILD_DIR SOURCE_DIR LIBDIR ["extra flags" (sanitizer builds)]
set -euo pipefail
build=$1 src=$2 libdir=$3 flags=${4:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
cmake --install "$build" --prefix "$prefix" > "$tmp/install.log"

for f in include/lisa.h "$libdir/liblisa.a" "$libdir/liblisa.so" "$libdir/cmake/lisa/lisaConfig.cmake" \
         "$libdir/cmake/lisa/lisaConfigVersion.cmake" "$libdir/pkgconfig/lisa.pc" bin/lisa; do
  [ -e "$prefix/$f" ] || { echo "install: $f is missing"; exit 1; }
done
[ "$(ls "$prefix/include")" = "lisa.h" ] || { echo "install: headers besides lisa.h: $(ls "$prefix/include")"; exit 1; }

# the shared library's dynamic symbols are exactly the functions declared LISA_API in lisa.h
grep -o 'LISA_API [^(]*(' "$src/include/lisa.h" | grep -v __ | sed -E 's/.*[ *](lisa_[a-z0-9_]+)\($/\1/' | sort > "$tmp/api.txt"
nm -D --defined-only "$prefix/$libdir/liblisa.so" | awk '{print $3}' | sort > "$tmp/exported.txt"
if ! diff "$tmp/api.txt" "$tmp/exported.txt" > "$tmp/sym.diff"; then
  echo "install: liblisa.so exports differ from lisa.h's LISA_API functions (< header only, > library only):"
  cat "$tmp/sym.diff"
  exit 1
fi

check_run() { # $1 = the example binary
  "$1" "$src/tests/data/tiny-lisa" --vision-tower "$src/tests/data/tiny-clip" "Where is the cat?" \
    "$src/tests/data/images/chelsea_tiny.png" > "$tmp/out.txt"
  grep -q 'chelsea_tiny.png: Sure, \[SEG\] . (1 masks)' "$tmp/out.txt" && grep -q '"counts":"' "$tmp/out.txt" || {
    echo "install: unexpected output of $1:"; cat "$tmp/out.txt"; exit 1; }
}

for kind in shared static; do
  static=OFF
  [ $kind = static ] && static=ON
  cmake -S "$src/examples" -B "$tmp/ex-$kind" -DCMAKE_PREFIX_PATH="$prefix" -DLISA_STATIC=$static \
    -DCMAKE_C_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="$flags" > "$tmp/cmake-$kind.log" ||
    { cat "$tmp/cmake-$kind.log"; exit 1; }
  cmake --build "$tmp/ex-$kind" > "$tmp/build-$kind.log" 2>&1 || { cat "$tmp/build-$kind.log"; exit 1; }
  check_run "$tmp/ex-$kind/embed"
  echo "install: find_package(lisa) + lisa::$([ $kind = static ] && echo lisa_static || echo lisa): ok"
done

export PKG_CONFIG_PATH="$prefix/$libdir/pkgconfig"
# shellcheck disable=SC2046,SC2086
cc $flags -std=c11 -Wall -Wextra -Werror "$src/examples/embed.c" $(pkg-config --cflags --libs lisa) -o "$tmp/embed-pc"
LD_LIBRARY_PATH="$prefix/$libdir" check_run "$tmp/embed-pc"
echo "install: pkg-config lisa ($(pkg-config --modversion lisa)): ok"
"$prefix/bin/lisa" --version
