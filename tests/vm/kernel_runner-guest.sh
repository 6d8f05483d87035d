#!/usr/bin/env bash
# Guest half of tests/vm/kernel_runner.sh: scenarios/run --backend kernel ($IN/scenarios) on
# the real dm-thin, on an ext4 scratch disk.
#  1. interrupted runs: SCENARIOS_KERNEL_INTERRUPT=N[:SIG] stops the run right after set-up
#     step N (a loop device, the pool, a thin, a snapshot) with SIGINT, SIGTERM or SIGHUP;
#     the run exits 130, and `dmsetup ls`, `losetup -a` and `lvs` show nothing left;
#  2. a tiny run: the kernel rows exist, with the device counters dm-thin's rules fix exactly
#     (one block per first write; a 4 KiB CoW copies the whole 64 KiB block: one block read
#     per IO; the second pass allocates nothing), and nothing is left behind either.
# Environment (from the host): KR_STEPS ("N:SIG ..."), KR_ONLY (the cases' --only patterns).
set -uo pipefail

fails=0
fail() {
	echo "FAIL: $*"
	fails=$((fails + 1))
}
disk=/dev/disk/by-id/virtio-scratch
mkfs.ext4 -q -F "$disk" && mkdir -p /scratch && mount "$disk" /scratch || {
	echo "FAIL: scratch disk"
	exit 1
}
trap 'cd /; umount /scratch 2>/dev/null' EXIT
run=(python3 "$IN/scenarios/run" --backend kernel --scale tiny --repeat 1 --no-report
	--tmp /scratch)
for p in $KR_ONLY; do run+=(--only "$p"); done

left_behind() { # NAME: what a run left (empty when nothing)
	local dm lo lv
	dm=$(dmsetup ls 2>&1 | grep -v '^No devices found')
	lo=$(losetup -a 2>&1)
	lv=$(lvs --noheadings 2>&1 | grep -v 'No volume groups')
	[ -z "$dm$lo$lv" ] || printf 'dmsetup ls: %s\nlosetup -a: %s\nlvs: %s\n' "$dm" "$lo" "$lv"
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
python3 -B - "$OUT/run/cases.json" <<'EOF' || fails=$((fails + 1))
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
echo "guest: $fails failure(s)"
[ "$fails" = 0 ]
