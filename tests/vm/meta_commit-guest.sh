#!/usr/bin/env bash
# Guest half of tests/vm/meta_commit.sh: the libthinp and kernel twins of MC_ONLY in one
# scenarios/run, then each step pair's metadata bytes per commit compared (within 10% where
# the workload fixes the commit points; the others printed); then the blocks two single
# commits changed, by kind, on the kernel and on libthinp (the same kinds and counts).
# Environment (from the host): MC_ONLY (the --only patterns), THINP_SEED.
set -uo pipefail
fails=0

disk=/dev/disk/by-id/virtio-scratch
if ! { mkfs.ext4 -q -F "$disk" && mkdir -p /scratch && mount "$disk" /scratch; }; then
	echo "FAIL: scratch disk"
	exit 1
fi
trap 'cd /; umount /scratch 2>/dev/null' EXIT
export THINP_ENGINE=${THINP_IOENGINE:?the fio engine is not in the guest (make engine)}
backends=libthinp,kernel
run=(python3 "$IN/scenarios/run" --backend "$backends" --scale tiny --repeat 1 --no-report
	--tmp /scratch --seed "$THINP_SEED" --exclude '\.(raw|qcow2)-' --exclude '\.floor\.')
for p in $MC_ONLY; do run+=(--only "$p"); done
echo "== the run"
rc=0
"${run[@]}" --out "$OUT/run" >"$OUT/run.log" 2>&1 || rc=$?
if [ "$rc" != 0 ]; then
	echo "FAIL: scenarios/run exit $rc ($(tail -n 5 "$OUT/run.log"))"
	exit 1
fi
echo "== bytes per commit"
if ! python3 -B - "$OUT/run/cases.json" <<'PY'
import json, sys
cases = json.load(open(sys.argv[1]))["cases"]
# the steps whose commits the workload fixes on both sides (see meta_commit.sh)
FIXED = {("overwrite", "steady"), ("cow", "second"), ("commit", "first-write")}
TOL = 0.10
steps, bad = {}, []
for cid, c in cases.items():
    if c["backend"] not in ("thinp", "kernel"):
        continue
    twin = cid.replace(".thinp.", ".X.").replace(".kernel.", ".X.")
    for r in c["reps"]:
        if r["status"] != "ok":
            bad.append(f"{cid}: {r['status']} {r.get('error')}")
            continue
        for step, m in r["steps"].items():
            a = m["all"]
            steps.setdefault((c["scenario"], twin, step), {})[c["backend"]] = a
for (scen, twin, step), s in sorted(steps.items()):
    if set(s) != {"thinp", "kernel"}:
        bad.append(f"{twin} {step}: only {sorted(s)}")
        continue
    per = {}
    for b, a in s.items():
        n = a.get("commits")
        if not n:
            bad.append(f"{twin} {step} {b}: no commit counted ({n})")
            break
        per[b] = a["meta_written"] / n
    else:
        ratio = per["thinp"] / per["kernel"]
        fixed = (scen, step) in FIXED
        print(f"pair {twin} {step}: thinp {s['thinp']['meta_written']} B / "
              f"{s['thinp']['commits']} = {per['thinp']:.0f}, kernel "
              f"{s['kernel']['meta_written']} B / {s['kernel']['commits']} = "
              f"{per['kernel']:.0f}: x{ratio:.2f}" + ("" if fixed else " (not compared)"))
        if fixed and abs(ratio - 1) > TOL:
            bad.append(f"{twin} {step}: libthinp {per['thinp']:.0f} B per commit, kernel "
                       f"{per['kernel']:.0f}: x{ratio:.2f}, beyond {TOL:.0%}")
for k in FIXED:
    if not any((sc, st) == k for sc, _, st in steps):
        bad.append(f"no {k[0]} {k[1]} step in the run")
print("\n".join("FAIL: " + b for b in bad) or "ok: bytes per commit within 10%")
sys.exit(1 if bad else 0)
PY
then
	fails=$((fails + 1))
fi

echo "== the blocks of one commit"
w=/scratch/cb
mkdir -p "$w"
truncate -s 160M "$w/kdata"
truncate -s 64M "$w/kmeta"
dl=$(losetup --find --show "$w/kdata")
ml=$(losetup --find --show "$w/kmeta")
cleanup_dm() {
	dmsetup remove mc-thin 2>/dev/null
	dmsetup remove mc-pool 2>/dev/null
}
trap 'cleanup_dm; losetup -d "$dl" "$ml" 2>/dev/null; cd /; umount /scratch 2>/dev/null' EXIT
# each step opens the pool, writes, commits and closes it, as each libthinp CLI command below
# does; where the shadows land may differ (commit_blocks.py counts them wherever they are)
kopen() {
	dmsetup create mc-pool --table "0 $((160 * 2048)) thin-pool $ml $dl 128 32768 1 skip_block_zeroing"
}
kthin() { dmsetup create mc-thin --table "0 32768 thin /dev/mapper/mc-pool 1"; }
# the status commits (without --noflush), the removal closes; the buffered loop device's
# writes are in the file's page cache, where cp reads them
ksnap() { dmsetup status mc-pool >/dev/null && cleanup_dm && cp "$w/kmeta" "$w/k$1"; }
kwrite() {
	kopen && kthin &&
		head -c 4096 /dev/urandom | dd of=/dev/mapper/mc-thin bs=4k seek="$1" oflag=direct status=none
}
if ! { kopen && dmsetup message mc-pool 0 "create_thin 1" && ksnap 0 && kwrite 0 && ksnap 1 &&
	kwrite 256 && ksnap 2; }; then
	echo "FAIL: kernel pool set-up and writes"
	exit 1
fi
# libthinp: each CLI command opens the pool and commits at close
twrite() { head -c 4096 /dev/urandom | "$THINP" write "$w/p" 1 "$1" 4k; }
if ! { "$THINP" pool create "$w/p" --data-size 160m --metadata-size 64m --block-size 64k \
	--skip-block-zeroing >/dev/null && "$THINP" thin create "$w/p" 1 --size 16m >/dev/null &&
	cp "$w/p/metadata" "$w/t0" && twrite 0 && cp "$w/p/metadata" "$w/t1" &&
	twrite 1m && cp "$w/p/metadata" "$w/t2"; }; then
	echo "FAIL: libthinp writes"
	exit 1
fi
for c in 1 2; do
	k=$(python3 -B "$IN/commit_blocks.py" "$w/k$((c - 1))" "$w/k$c")
	t=$(python3 -B "$IN/commit_blocks.py" "$w/t$((c - 1))" "$w/t$c")
	echo "kernel commit $c: $(echo "$k" | paste -sd, -)"
	echo "libthinp commit $c: $(echo "$t" | paste -sd, -)"
	[ "$k" = "$t" ] || { echo "FAIL: commit $c changed other blocks"; fails=$((fails + 1)); }
done
echo "guest: $fails failure(s)"
[ "$fails" = 0 ]
