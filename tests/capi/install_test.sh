#!/usr/bin/env bash
# An installed libddpm is usable as a user would use it: `cmake --install` into a fresh prefix,
# then examples/generate.c compiled by the C compiler alone through pkg-config, and again by a
# separate CMake project through find_package(ddpm). Both programs run from the prefix (no build
# tree on their library path) and write the same PNG as the in-tree example.
#   install_test.sh BUILD_DIR SOURCE_DIR IN_TREE_EXAMPLE MODEL_DIR
set -euo pipefail
build=$1 source=$2 in_tree=$3 model=$4
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMP_NUM_THREADS=1
cmake --install "$build" --prefix "$work/prefix" > "$work/install.log"
test -f "$work/prefix/include/ddpm.h"
exported=$(nm -D --defined-only "$work"/prefix/lib*/libddpm.so | awk '$2 != "A" {print $3}' | grep -v '^ddpm_' || true)
if [ -n "$exported" ]; then echo "libddpm.so exports more than ddpm_*:"; echo "$exported" | head; exit 1; fi

export PKG_CONFIG_PATH=$(dirname "$(find "$work/prefix" -name ddpm.pc)")
cc -std=c99 -Wall -Wextra -Wpedantic -Werror "$source/examples/generate.c" $(pkg-config --cflags --libs ddpm) \
  -o "$work/generate-pc"

mkdir "$work/consumer"
cat > "$work/consumer/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.25)
project(consumer LANGUAGES C)
find_package(ddpm 0.1 CONFIG REQUIRED)
add_executable(generate $source/examples/generate.c)
target_link_libraries(generate PRIVATE ddpm::ddpm)
CMAKE
cmake -S "$work/consumer" -B "$work/consumer/build" -DCMAKE_PREFIX_PATH="$work/prefix" > "$work/consumer.log"
cmake --build "$work/consumer/build" >> "$work/consumer.log"

"$in_tree" "$model" "$work/in-tree.png" 2 5 4 2> /dev/null
env -u LD_LIBRARY_PATH "$work/generate-pc" "$model" "$work/pc.png" 2 5 4 2> /dev/null
env -u LD_LIBRARY_PATH "$work/consumer/build/generate" "$model" "$work/cmake.png" 2 5 4 2> /dev/null
cmp "$work/in-tree.png" "$work/pc.png"
cmp "$work/in-tree.png" "$work/cmake.png"
echo "install: pkg-config and find_package builds generate the same PNG"
