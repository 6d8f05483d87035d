#!/usr/bin/env bash
# Guest half of tests/vm/kernel_autoextend.sh: scenarios/run --backend kernel ($IN/scenarios)
# with the case autoextend.kernel.direct on the ddisk disk (--data-dev).
#  1. a run interrupted (SIGINT) right after set-up step AE_STEP exits 130 and leaves nothing;
#  2. with dmeventd: below 80% the pool keeps its size, above it grows by exactly the profile's
#     20% of its extents (rounded up) by dmeventd (the case runs no lvextend but the one by
#     hand below the threshold), and nothing is left (dmeventd stopped, the disk unlabelled);
#  3. without dmeventd (its binary hidden): the same growth by the case's own
#     `lvextend --use-policies`, the rows saying so.
# Environment (from the host): AE_STEP (the interrupted step), THINP_SEED.
set -uo pipefail

fails=0
fail() {
	echo "FAIL: $*"
	fails=$((fails + 1))
}
ddisk=/dev/disk/by-id/virtio-ddisk
# (the runner's scratch dir must take O_DIRECT: not the initramfs' tmpfs)
disk=/dev/disk/by-id/virtio-scratch
if ! { mkfs.ext4 -q -F "$disk" && mkdir -p /scratch && mount "$disk" /scratch; }; then
	echo "FAIL: scratch disk"
	exit 1
fi
trap 'cd /; umount /scratch 2>/dev/null' EXIT
run=(python3 "$IN/scenarios/run" --backend kernel --scale tiny --repeat 1 --no-report
	--tmp /scratch --seed "$THINP_SEED" --data-dev "$ddisk" --only '^autoextend\.kernel\.direct$')

left_behind() { # what a run left (empty when nothing)
	local dm lo lv vg pv lab dmev prof p
	dm=$(dmsetup ls 2>&1 | grep -v '^No devices found')
	lo=$(losetup -a 2>&1)
	lv=$(lvs --noheadings 2>&1 | grep -v 'No volume groups')
	vg=$(vgs --noheadings 2>&1 | grep -v 'No volume groups')
	pv=$(pvs --noheadings 2>&1 | grep -v 'No physical volume')
	lab=$(blkid -p -o export "$ddisk" 2>&1 | grep '^TYPE=')
	dmev=""
	for p in /proc/[0-9]*; do
		# (a zombie has exited: only its entry waits for PID 1)
		[ "$(cat "$p/comm" 2>/dev/null)" = dmeventd ] &&
			[ "$(awk '{print $3}' "$p/stat" 2>/dev/null)" != Z ] && dmev+="${p#/proc/} "
	done
	prof=$(ls /etc/lvm/profile/ 2>&1)
	[ -z "$dm$lo$lv$vg$pv$lab$dmev$prof" ] ||
		printf '%s\n' "dmsetup ls: $dm" "losetup -a: $lo" "lvs: $lv" "vgs: $vg" "pvs: $pv" \
			"blkid: $lab" "dmeventd: $dmev" "profiles: $prof"
}

check_rows() { # CASES.JSON HOW: the case's rows, grown by HOW
python3 -B - "$1" "$2" <<'PY' || fails=$((fails + 1))
import json, math, sys
path, how = sys.argv[1], sys.argv[2]
c = json.load(open(path))["cases"].get("autoextend.kernel.direct")
bad = []
if not c or not c["reps"] or c["reps"][0]["status"] != "ok":
    print(f"FAIL: no successful repetition of autoextend.kernel.direct: "
          f"{c and c['reps'] and c['reps'][0].get('error')}")
    sys.exit(1)
r = c["reps"][0]
b, a = r["steps"]["below"]["all"], r["steps"]["above"]["all"]
for name, s in (("below", b), ("above", a)):
    print(f"{name}: data {s['data_pct_before']:.2f}% -> {s['data_pct_filled']:.2f}% -> "
          f"{s['data_pct']:.2f}%; extents {s['pool_extents_before']} -> {s['pool_extents']} "
          f"(+{s['grown_extents']}) of {s['extent_bytes']} B; by {s['autoextend_by']} in "
          f"{s['autoextend_wait_s']:.1f} s; monitor {s.get('monitor')!r}; "
          f"data written {s['data_written']} B")
if not b["data_pct_filled"] <= 80:
    bad.append(f"below: filled to {b['data_pct_filled']:.2f}%, not at or under 80%")
if b["pool_extents"] != b["pool_extents_before"] or b["pool_bytes"] != b["pool_bytes_before"]:
    bad.append(f"below: the pool grew under the threshold ({b['pool_extents_before']} -> "
               f"{b['pool_extents']} extents)")
if not a["data_pct_filled"] > 80:
    bad.append(f"above: filled to {a['data_pct_filled']:.2f}%, not past 80%")
if a["pool_extents_before"] != b["pool_extents"]:
    bad.append("above: started from another size than below ended with")
want = math.ceil(a["pool_extents_before"] * 20 / 100)
if a["grown_extents"] != want or a["expected_extents"] != want:
    bad.append(f"above: grew {a['grown_extents']} extents (the case expected "
               f"{a['expected_extents']}), the profile's 20% of {a['pool_extents_before']} "
               f"is {want}")
if a["pool_bytes"] != a["pool_bytes_before"] + want * a["extent_bytes"]:
    bad.append(f"above: {a['pool_bytes_before']} -> {a['pool_bytes']} bytes, not "
               f"+{want} x {a['extent_bytes']}")
if not a["data_pct"] < 80:
    bad.append(f"above: {a['data_pct']:.2f}% used after the growth, still over 80%")
if a["autoextend_by"] != how:
    bad.append(f"above: grown by {a['autoextend_by']!r}, want {how!r}")
if a["monitored"] != int(how == "dmeventd"):
    bad.append(f"monitored {a['monitored']} with {how}")
ext = [x for x in r["commands"] if x.startswith("lvextend")]
if len(ext) != (1 if how == "dmeventd" else 2):
    bad.append(f"the case ran lvextend {len(ext)} times: {ext}")
print("\n".join("FAIL: " + x for x in bad) or f"ok: autoextend rows ({how})")
sys.exit(1 if bad else 0)
PY
}

echo "== 1. interrupted at set-up step $AE_STEP"
rc=0
SCENARIOS_KERNEL_INTERRUPT=$AE_STEP "${run[@]}" --out /scratch/int >"$OUT/int.log" 2>&1 || rc=$?
grep -q "SCENARIOS_KERNEL_INTERRUPT=$AE_STEP" "$OUT/int.log" ||
	fail "interrupt $AE_STEP: the run never reached that step ($(tail -n 3 "$OUT/int.log"))"
[ "$rc" = 130 ] || fail "interrupt $AE_STEP: exit $rc, want 130 ($(tail -n 3 "$OUT/int.log"))"
left=$(left_behind)
[ -z "$left" ] || fail "interrupt $AE_STEP left: $left"
echo "interrupt at $AE_STEP: exit $rc, left: ${left:-nothing}"

echo "== 2. monitored by dmeventd"
rc=0
"${run[@]}" --out "$OUT/run" >"$OUT/run.log" 2>&1 || rc=$?
[ "$rc" = 0 ] || fail "run: exit $rc ($(tail -n 5 "$OUT/run.log"))"
grep '  autoextend' "$OUT/run.log"
left=$(left_behind)
[ -z "$left" ] || fail "run left: $left"
check_rows "$OUT/run/cases.json" dmeventd

echo "== 3. without dmeventd"
dmev=$(command -v dmeventd)
mv "$dmev" "$dmev.hidden"
rc=0
"${run[@]}" --out "$OUT/run-nodmeventd" >"$OUT/run-nodmeventd.log" 2>&1 || rc=$?
mv "$dmev.hidden" "$dmev"
[ "$rc" = 0 ] || fail "run without dmeventd: exit $rc ($(tail -n 5 "$OUT/run-nodmeventd.log"))"
grep '  autoextend' "$OUT/run-nodmeventd.log"
left=$(left_behind)
[ -z "$left" ] || fail "run without dmeventd left: $left"
check_rows "$OUT/run-nodmeventd/cases.json" "lvextend --use-policies (no dmeventd)"
echo "guest: $fails failure(s)"
[ "$fails" = 0 ]
