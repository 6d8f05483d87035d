#!/usr/bin/env bash
# Install the Debian (12) packages thinbench needs, only those missing.
# Silent when everything is present. Needs root to install; otherwise prints the
# exact command and fails. With --check: install nothing; list the missing packages that the
# build itself needs (compilers, headers), exit 1 if any (plain `make` runs this).
set -euo pipefail
check_only=false
[ "${1:-}" = --check ] && check_only=true

# What compiling needs; the rest is for running tests and benchmarks.
BUILD_PACKAGES=(build-essential pkg-config check libdevmapper-dev libexpat1-dev libfuse3-dev)

# One package per line; add new ones here.
PACKAGES=(
	build-essential
	clang
	libclang-rt-dev # libFuzzer and the sanitizer runtimes for clang (make fuzz)
	pkg-config
	check
	thin-provisioning-tools
	fio
	dpkg-dev # apt-get source fio: the engine builds against the installed fio's headers
	gnuplot-nox
	libdevmapper-dev
	libexpat1-dev # the XML reader of restore (thin_restore's own parser)
	libfuse3-dev # tests/power/wlog_fs: the write-logging file system of the power-cut test
	fuse3 # fusermount3, to unmount it
	xfsprogs # mkfs.xfs: tests/cli/expose.sh makes xfs on an exposed thin device
	qemu-utils
	libaio-dev
	util-linux
	xxd
	python3
	strace # tests/engine/engine_commit_io.sh counts the commit's syscalls
	valgrind # the regression gate's instruction layer (ci/gate, callgrind)
)

missing=()
if $check_only; then
	PACKAGES=("${BUILD_PACKAGES[@]}")
fi
for p in "${PACKAGES[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[ "$status" = "install ok installed" ] || missing+=("$p")
done

[ "${#missing[@]}" -eq 0 ] && exit 0

if $check_only; then
	echo "deps: missing Debian packages: ${missing[*]}" >&2
	exit 1
fi

cmd="apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing Debian packages: ${missing[*]}" >&2
	echo "deps: run as root:  $cmd" >&2
	exit 1
fi

echo "deps: installing ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
