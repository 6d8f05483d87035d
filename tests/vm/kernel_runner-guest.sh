#!/usr/bin/env bash
# Guest half of tests/vm/kernel_runner.sh: scenarios/run --backend kernel ($IN/scenarios) on
# the real dm-thin, on an ext4 scratch disk.
#  1. interrupted runs: SCENARIOS_KERNEL_INTERRUPT=N[:SIG] stops the run right after set-up
#     step N (a loop device, the pool, a thin, a snapshot) with SIGINT, SIGTERM or SIGHUP;
#     the run exits 130, and `dmsetup ls`, `losetup -a` and `lvs` show nothing left;
#  2. a tiny run: the kernel rows exist, with the device counters dm-thin's rules fix exactly
#     (one block per first write; a 4 KiB CoW copies the whole 64 KiB block: one block read
#     per IO; the second pass allocates nothing), and nothing is left behind either;
#  3. direct-lvm on the ddisk disk: refused (exit 2) while it holds ext4, without --force; a
#     run interrupted at a seeded step of the LVM set-up leaves no PV, VG, LV or dm device; a
#     tiny run (--force) has its rows by the same rules.
# Environment (from the host): KR_STEPS ("N:SIG ..."), KR_ONLY (the cases' --only patterns),
# KR_DSTEP (the direct-lvm run's interrupt step), KR_DONLY (its cases).
set -uo pipefail

fails=0
fail() {
	echo "FAIL: $*"
	fails=$((fails + 1))
}
disk=/dev/disk/by-id/virtio-scratch
if ! { mkfs.ext4 -q -F "$disk" && mkdir -p /scratch && mount "$disk" /scratch; }; then
	echo "FAIL: scratch disk"
	exit 1
fi
trap 'cd /; umount /scratch 2>/dev/null' EXIT
run=(python3 "$IN/scenarios/run" --backend kernel --scale tiny --repeat 1 --no-report
	--tmp /scratch)
for p in $KR_ONLY; do run+=(--only "$p"); done

left_behind() { # NAME: what a run left (empty when nothing)
	local dm lo lv
	dm=$(dmsetup ls 2>&1 | grep -v '^No devices found')
	lo=$(losetup -a 2>&1)
	lv=$(lvs --noheadings 2>&1 | grep -v 'No volume groups')
	pv=$(pvs --noheadings 2>&1 | grep -v 'No physical volume')
	[ -z "$dm$lo$lv$pv" ] ||
		printf 'dmsetup ls: %s\nlosetup -a: %s\nlvs: %s\npvs: %s\n' "$dm" "$lo" "$lv" "$pv"
}

echo "== 1. interrupted runs"
for st in $KR_STEPS; do
	rc=0
	SCENARIOS_KERNEL_INTERRUPT=$st "${run[@]}" --out "/scratch/int-$st" \
		>"$OUT/int-$st.log" 2>&1 || rc=$?
	grep -q "SCENARIOS_KERNEL_INTERRUPT=$st" "$OUT/int-$st.log" ||
		fail "interrupt $st: the run never reached that step ($(tail -n 3 "$OUT/int-$st.log"))"
	[ "$rc" = 130 ] || fail "interrupt $st: exit $rc, want 130 ($(tail -n 3 "$OUT/int-$st.log"))"
	left=$(left_behind)
	[ -z "$left" ] || fail "interrupt $st left: $left"
	echo "interrupt at $st: exit $rc, left: ${left:-nothing}"
done

echo "== 2. a tiny run"
rc=0
"${run[@]}" --out "$OUT/run" >"$OUT/run.log" 2>&1 || rc=$?
[ "$rc" = 0 ] || fail "tiny run: exit $rc ($(tail -n 5 "$OUT/run.log"))"
left=$(left_behind)
[ -z "$left" ] || fail "tiny run left: $left"
check_rows() { # CASES.JSON
python3 -B - "$1" <<'EOF' || fails=$((fails + 1))
import json, sys
cases = json.load(open(sys.argv[1]))["cases"]
bad = []
kern = {k: v for k, v in cases.items() if v["backend"] == "kernel"}
if not kern:
    bad.append("no kernel case in cases.json")
for cid, c in kern.items():
    for r in c["reps"]:
        if r["status"] != "ok":
            bad.append(f"{cid}: {r['status']} {r.get('error')}")
            continue
        for step, m in r["steps"].items():
            a = m["all"]
            ios = a["ios"]
            need = ("data_written", "meta_written", "data_writes_per_io", "data_written_per_io",
                    "meta_written_per_io", "data_flushes", "meta_flushes", "used_blocks",
                    "alloc_bytes", "used_meta_blocks")
            miss = [k for k in need if k not in a]
            if miss:
                bad.append(f"{cid} {step}: no {miss}")
                continue
            if a["data_written"] < a["bytes"]:
                bad.append(f"{cid} {step}: data device got {a['data_written']} < fio's {a['bytes']}")
            want_alloc = {"first-write": ios, "first": ios, "second": 0}.get(step)
            if want_alloc is not None and a["alloc_blocks"] != want_alloc:
                bad.append(f"{cid} {step}: {a['alloc_blocks']} blocks allocated, want {want_alloc}")
            if c["scenario"] == "cow" and step == "first" and a["data_read"] != ios * 65536:
                bad.append(f"{cid} first: {a['data_read']} bytes read from the data device, "
                           f"want {ios} x 64 KiB (the block copies)")
            print(f"{cid} {step}: ios {ios} data w/io {a['data_written_per_io']:.0f} "
                  f"r/io {a['data_read_per_io']:.0f} meta w/io {a['meta_written_per_io']:.0f} "
                  f"alloc {a['alloc_blocks']}")
print("\n".join("FAIL: " + b for b in bad) or "ok: kernel rows")
sys.exit(1 if bad else 0)
EOF
}
check_rows "$OUT/run/cases.json"

echo "== 3. direct-lvm"
ddisk=/dev/disk/by-id/virtio-ddisk
drun=(python3 "$IN/scenarios/run" --backend kernel --scale tiny --repeat 1 --no-report
	--tmp /scratch --data-dev "$ddisk")
for p in $KR_DONLY; do drun+=(--only "$p"); done
mkfs.ext4 -q -F "$ddisk"
rc=0
"${drun[@]}" --out /scratch/d-refused >"$OUT/d-refused.log" 2>&1 || rc=$?
if [ "$rc" != 2 ] || ! grep -q "holds a filesystem (ext4)" "$OUT/d-refused.log"; then
	fail "direct-lvm on an ext4 disk without --force: exit $rc ($(tail -n 2 "$OUT/d-refused.log"))"
fi
blkid -p "$ddisk" | grep -q 'TYPE="ext4"' || fail "the refused run touched the disk"
rc=0
SCENARIOS_KERNEL_INTERRUPT=$KR_DSTEP "${drun[@]}" --force --out "/scratch/d-int" \
	>"$OUT/d-int.log" 2>&1 || rc=$?
grep -q "SCENARIOS_KERNEL_INTERRUPT=$KR_DSTEP" "$OUT/d-int.log" ||
	fail "direct interrupt $KR_DSTEP: never reached ($(tail -n 3 "$OUT/d-int.log"))"
[ "$rc" = 130 ] || fail "direct interrupt $KR_DSTEP: exit $rc, want 130"
left=$(left_behind)
[ -z "$left" ] || fail "direct interrupt $KR_DSTEP left: $left"
echo "direct-lvm interrupt at $KR_DSTEP: exit $rc, left: ${left:-nothing}"
rc=0
"${drun[@]}" --force --out "$OUT/drun" >"$OUT/drun.log" 2>&1 || rc=$?
[ "$rc" = 0 ] || fail "direct-lvm tiny run: exit $rc ($(tail -n 5 "$OUT/drun.log"))"
left=$(left_behind)
[ -z "$left" ] || fail "direct-lvm tiny run left: $left"
check_rows "$OUT/drun/cases.json"
echo "guest: $fails failure(s)"
[ "$fails" = 0 ]
