#!/bin/bash
# --cow kernel|merged: libthinp's CoW/zeroing policy for one command (a runtime choice, not
# saved with the table). A value that is not a policy, and --cow merged with the kernel
# backend (dm-thin has only its own order), are usage errors (exit 2) naming the value and
# the fix. Under merged, partial writes into shared blocks of a snapshot and into new
# blocks keep every byte: the snapshot reads the origin's bytes with the write laid over
# them, the origin is unchanged, a new block reads zeros around the write. The exact
# counters of both policies: tests/unit/test_pool_amplification.c.
set -euo pipefail
THINP=${THINP:-impl/cli/thinp}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
SEED=${THINP_SEED:-$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')}
echo "seed $SEED (THINP_SEED)"
pool=$tmp/pool

# usage PATTERN... -- ARGS...: exit 2, each pattern (fixed string) in the message
usage() {
	local pats=()
	while [ "$1" != -- ]; do pats+=("$1"); shift; done
	shift
	local rc=0
	"$THINP" "$@" >"$tmp/out" 2>"$tmp/err" </dev/null || rc=$?
	[ "$rc" = 2 ] || { cat "$tmp/err" >&2; fail "exit $rc (want 2): thinp $*"; }
	[ ! -s "$tmp/out" ] || fail "stdout not empty on a usage error: thinp $*"
	local p
	for p in "${pats[@]}"; do
		grep -qF -- "$p" "$tmp/err" || { cat "$tmp/err" >&2; fail "no '$p' in the message of: thinp $*"; }
	done
}

"$THINP" pool create "$pool" --data-size 64M --metadata-size 8M >/dev/null
"$THINP" thin create "$pool" 1 --size 1M >/dev/null
usage "--cow" "'copy'" "use kernel or merged" -- write "$pool" 1 0 4096 --cow copy
usage "--cow merged" "--backend user" -- --backend kernel pool status "$pool" --cow merged
"$THINP" write --help | grep -q -- "--cow kernel|merged" || fail "write --help does not list --cow"

# deterministic bytes from the seed
python3 - "$SEED" "$tmp" <<'PY'
import random, sys
rnd = random.Random(int(sys.argv[1]))
open(sys.argv[2] + "/origin", "wb").write(bytes(rnd.randrange(256) for _ in range(1 << 20)))
open(sys.argv[2] + "/w1", "wb").write(bytes(rnd.randrange(256) for _ in range(4096)))
open(sys.argv[2] + "/w2", "wb").write(bytes(rnd.randrange(256) for _ in range(12288)))
PY
"$THINP" write "$pool" 1 0 1M <"$tmp/origin"
"$THINP" thin snap "$pool" 2 1 >/dev/null
# a 4 KiB CoW inside block 3, one of 12 KiB across blocks 5|6 (two CoWs), from the snapshot
"$THINP" write "$pool" 2 $((3 * 65536 + 8192)) 4096 --cow merged <"$tmp/w1"
"$THINP" write "$pool" 2 $((6 * 65536 - 4096)) 12288 --cow merged <"$tmp/w2"
# and 4 KiB into a new block of a new thin (provision with zeroing)
"$THINP" thin create "$pool" 3 --size 1M >/dev/null
"$THINP" write "$pool" 3 $((2 * 65536 + 512)) 4096 --cow merged <"$tmp/w1"

python3 - "$tmp" <<'PY'
import sys
t = sys.argv[1]
o = bytearray(open(t + "/origin", "rb").read())
w1, w2 = open(t + "/w1", "rb").read(), open(t + "/w2", "rb").read()
snap = bytearray(o)
snap[3 * 65536 + 8192:3 * 65536 + 8192 + 4096] = w1
snap[6 * 65536 - 4096:6 * 65536 - 4096 + 12288] = w2
new = bytearray(1 << 20)
new[2 * 65536 + 512:2 * 65536 + 512 + 4096] = w1
open(t + "/want1", "wb").write(o)
open(t + "/want2", "wb").write(snap)
open(t + "/want3", "wb").write(new)
PY
for id in 1 2 3; do
	"$THINP" read "$pool" "$id" 0 1M >"$tmp/got$id"
	cmp "$tmp/got$id" "$tmp/want$id" || fail "thin $id does not read back as written (--cow merged)"
done
"$THINP" check "$pool/metadata" >/dev/null || fail "thinp check after merged CoWs"
echo "PASS"
