#!/usr/bin/env bash
# Syscalls per "4 KiB first write + fsync" through the fio engine: every write lands in a
# block never written before (provision), and fsync=1 makes each one a flush that commits.
# Counted with strace -f -c over two runs (N and 2N writes on a fresh pool) and reported as
# (cost(2N) - cost(N)) / N, so the pool's creation, open and close cancel out.
#
#   tests/bench/commit_syscalls.sh [N]     (default 64; N writes of 4 KiB, 64 KiB apart)
# Environment: THINP_ENGINE (default ioengine/thinp.so), FIO, BUILD (scratch space),
# MAX_WRITES / MAX_WAITS: fail (exit 1) when the per-write figure is above them.
# Prints: writes_per_io waits_per_io, where writes are pwrite/pwritev/pwritev2/write calls
# and waits are fdatasync/fsync calls.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
N=${1:-64}
ENGINE=$(readlink -f "${THINP_ENGINE:-$ROOT/ioengine/thinp.so}")
FIO=${FIO:-fio}
BUILD=${BUILD:-$ROOT/build}
mkdir -p "$BUILD"
WORK=$(mktemp -d "$BUILD/commit-syscalls.XXXXXX")
trap '[ -n "${KEEP:-}" ] || rm -rf "$WORK"' EXIT

# run NWRITES: strace -c summary of one fio run on a fresh pool -> "writes waits"
run() {
	local n=$1 pool=$WORK/pool$1
	strace -f -c -o "$WORK/strace$n" -e trace=pwrite64,pwritev,pwritev2,write,fdatasync,fsync \
		"$FIO" --name=first4k --ioengine="external:$ENGINE" --thinp_pool="$pool" \
		--thinp_create=1 --thinp_data_size=1g --thinp_metadata_size=32m \
		--thinp_block_size=64k --thinp_commit_interval=0 --thinp_dev=1 \
		--rw=write:60k --bs=4k --size=$((n * 64))k --io_size=$((n * 4))k --fsync=1 --thread \
		--output="$WORK/fio$n.out" >/dev/null
	awk '$NF ~ /^(pwrite64|pwritev|pwritev2|fdatasync|fsync)$/ { n[$NF] = $4 }
	     END { printf "%d %d\n", n["pwrite64"] + n["pwritev"] + n["pwritev2"],
	                             n["fdatasync"] + n["fsync"] }' "$WORK/strace$n"
}
read -r w1 s1 < <(run "$N")
read -r w2 s2 < <(run $((2 * N)))
writes=$(awk -v a="$w1" -v b="$w2" -v n="$N" 'BEGIN { printf "%.2f", (b - a) / n }')
waits=$(awk -v a="$s1" -v b="$s2" -v n="$N" 'BEGIN { printf "%.2f", (b - a) / n }')
echo "per 4 KiB first write + fsync ($N vs $((2 * N)) writes): writes=$writes waits=$waits"
fail=0
if [ -n "${MAX_WRITES:-}" ] && awk -v v="$writes" -v m="$MAX_WRITES" 'BEGIN { exit !(v > m) }'; then
	echo "FAIL: $writes writes per IO > $MAX_WRITES"; fail=1
fi
if [ -n "${MAX_WAITS:-}" ] && awk -v v="$waits" -v m="$MAX_WAITS" 'BEGIN { exit !(v > m) }'; then
	echo "FAIL: $waits waits per IO > $MAX_WAITS"; fail=1
fi
exit $fail
