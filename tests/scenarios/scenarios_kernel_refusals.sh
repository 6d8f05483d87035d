#!/usr/bin/env bash
# scenarios/run --backend kernel on a host that cannot run it (docs/kernel-backend.md):
#  1. the matrix: --list works anywhere (no root, no device-mapper) and every libthinp loop-lvm
#     case of the kernel's scenarios (bar the CoW-policy variants) has one kernel twin with the
#     same group; an unknown --backend is a usage error (exit 2);
#  2. not root (root dropped for real with setpriv when this runs as root): exit 2, the
#     message names root and the VM's way (make vm-bench), nothing is written;
#  3. no device-mapper thin-pool target (skipped on a host that has one): exit 2, the message
#     names modprobe dm-thin-pool and make vm-bench, nothing is written;
#  4. direct-lvm: kernel direct-lvm cases alone without --data-dev: exit 2 naming --data-dev;
#     a --data-dev holding a filesystem (mkfs.ext4 on a file): exit 2 naming it and --force;
#     with --force the disk check passes (the host checks come next: here the root or
#     device-mapper refusal); --metadata-dev alone is a usage error.
# Needs python3 and mkfs.ext4 (no case runs).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
chmod 755 "$WORK"
RUN=$ROOT/scenarios/run
fails=0
fail() {
	echo "FAIL: $*"
	fails=$((fails + 1))
}
# expect_refusal NAME WANT_RC PATTERN... -- CMD...: CMD exits WANT_RC, its stderr matches
# every PATTERN (grep -E), and it made no output dir
expect_refusal() {
	local name=$1 want=$2 pats=() rc=0
	shift 2
	while [ "$1" != -- ]; do pats+=("$1"); shift; done
	shift
	"$@" >"$WORK/$name.out" 2>"$WORK/$name.err" || rc=$?
	[ "$rc" = "$want" ] || fail "$name: exit $rc, want $want ($(head -c 300 "$WORK/$name.err"))"
	for p in "${pats[@]}"; do
		grep -qE -- "$p" "$WORK/$name.err" || fail "$name: stderr lacks /$p/: $(head -c 400 "$WORK/$name.err")"
	done
	[ ! -e "$WORK/out" ] || fail "$name: it wrote $WORK/out"
	echo "ok: $name (exit $rc)"
}

echo "== 1. the matrix"
"$RUN" --backend kernel --list --full >"$WORK/k.list"
"$RUN" --list --full >"$WORK/l.list"
python3 -B - "$WORK/k.list" "$WORK/l.list" <<'EOF' || fails=$((fails + 1))
import re, sys
# (the matrix's case ids: they end in the mode, then the zeroing and CoW-policy marks)
ids = lambda p: [l.split()[0] for l in open(p)
                 if re.match(r"^[a-z]\S*\.(loop|direct)(\.z[01])?(\.cow-\S+)?\s", l)]
k, l = ids(sys.argv[1]), ids(sys.argv[2])
kern = {i for i in k if ".kernel." in i}
want = {re.sub(r"\.thinp\.loop", ".kernel.loop", i) for i in l
        if re.match(r"^(alloc|cow|overwrite|blocksize|edge|commit)\.", i)
        and ".thinp.loop" in i and ".cow-" not in i}
# (the direct-lvm twins are listed with --data-dev only)
bad = []
# the planning cases replay on libthinp only: none in a kernel-only run, all six otherwise
nplan = lambda p: sum(1 for line in open(p) if line.startswith("plan."))
if nplan(sys.argv[1]) or nplan(sys.argv[2]) < 6:
    bad.append(f"planning cases listed: kernel-only {nplan(sys.argv[1])} (want 0), "
               f"libthinp {nplan(sys.argv[2])} (want 6)")
if kern != want:
    bad.append(f"kernel cases != the twins: missing {sorted(want - kern)[:5]}, "
               f"extra {sorted(kern - want)[:5]}")
other = [i for i in k if ".kernel." not in i and ".raw-psync." not in i]
if other:
    bad.append(f"--backend kernel lists non-kernel cases other than the raw baselines: {other[:5]}")
if not kern:
    bad.append("no kernel case")
print("\n".join("FAIL: " + b for b in bad) or f"ok: {len(kern)} kernel twins")
sys.exit(1 if bad else 0)
EOF
expect_refusal backend 2 "unknown nosuch" -- "$RUN" --backend libthinp,nosuch --out "$WORK/out"

only=(--scale tiny --only '^alloc\.bs=4k\.order=seq\.kernel\.loop\.z0$' --out "$WORK/out" --tmp "$WORK")
echo "== 2. not root"
if [ "$(id -u)" = 0 ]; then
	command -v setpriv >/dev/null || { echo "FAIL: root without setpriv (util-linux)"; exit 1; }
	# (the runner where nobody can read it: a 0700 directory above the checkout hides it)
	source "$ROOT/tests/support/nobody.sh"
	nobody_runner "$WORK" "$ROOT"
	nobody=("${NOBODY[@]}" env "${NOBODY_ENV[@]}")
	NRUN=$NOBODY_RUN
else
	nobody=()
	NRUN=$RUN
fi
expect_refusal notroot 2 "needs root" "this is uid [1-9]" "make vm-bench" -- \
	"${nobody[@]}" "$NRUN" --backend kernel "${only[@]}"

echo "== 3. no device-mapper"
if [ "$(id -u)" != 0 ]; then
	echo "SKIP: not root (the device-mapper check comes after the root check)"
elif dmsetup targets 2>/dev/null | grep -q '^thin-pool'; then
	echo "SKIP: this host has the thin-pool target (tests/vm/ covers the kernel runs)"
else
	expect_refusal nodm 2 "no device-mapper thin-pool target" "modprobe dm-thin-pool" \
		"make vm-bench" -- "$RUN" --backend kernel "${only[@]}"
fi

echo "== 4. direct-lvm"
donly=(--scale tiny --only '^alloc\.bs=4k\.order=seq\.kernel\.direct\.z0$' --out "$WORK/out" --tmp "$WORK")
n=$("$RUN" --backend kernel --list --data-dev /dev/null --only '\.kernel\.direct' | grep -c '\.kernel\.direct' || true)
[ "$n" -gt 0 ] || fail "--data-dev lists no kernel direct-lvm case"
expect_refusal nodatadev 2 "direct-lvm on the kernel needs --data-dev DEV" -- \
	"$RUN" --backend kernel "${donly[@]}"
truncate -s 64M "$WORK/disk.img"
mkfs.ext4 -q -F "$WORK/disk.img"
expect_refusal diskinuse 2 "--data-dev $WORK/disk.img holds a filesystem \(ext4\)" "--force" -- \
	"$RUN" --backend kernel "${donly[@]}" --data-dev "$WORK/disk.img"
if [ "$(id -u)" = 0 ]; then
	expect_refusal force 2 "no device-mapper thin-pool target|needs root" -- \
		"${nobody[@]}" "$NRUN" --backend kernel "${donly[@]}" --data-dev "$WORK/disk.img" --force
fi
expect_refusal metaonly 2 "--data-dev and --metadata-dev go together" -- \
	"$RUN" --backend kernel "${donly[@]}" --metadata-dev "$WORK/disk.img"

[ "$fails" = 0 ] || { echo "FAILED: $fails"; exit 1; }
echo "PASS"
