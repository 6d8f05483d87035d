#!/usr/bin/env bash
# libthinp's loop-lvm through loop devices in scenarios/run (tiny scale):
#  1. as root: a thinp.loop case ran through loop devices (its record holds the loop
#     devices' byte counters from the engine, at least the bytes the pool wrote to its data
#     device), its file twin (thinp.file, named by --only) through none; the labels say
#     which; no loop device is left over the run's scratch dir;
#  2. SIGINT while a case holds its loops: exit 130, no loop device and no fio left;
#  3. not root (root dropped with setpriv when this runs as root): thinp.loop cases are
#     replaced by their file twins, env.json's notes and report.md say so.
# Needs fio, the built engine, losetup-capable root for 1-2 (else they fail: run as root).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
if grep -qs -- -fsanitize "$BUILD/.build-flags"; then
	echo "SKIP: sanitizer build ($BUILD); the benchmark runner needs the plain build"
	exit 0
fi
RUN=$ROOT/scenarios/run
mkdir -p "$BUILD"
WORK=$(mktemp -d "$BUILD/scenarios-loopdev.XXXXXX")
chmod 755 "$WORK"
run_pid=""
cleanup() {
	[ -z "$run_pid" ] || kill -KILL -- "-$run_pid" 2>/dev/null || true
	rm -rf "$WORK" "${NR:-}"
}
trap cleanup EXIT
export SCENARIOS_SCALE=tiny
fail() { echo "FAIL: $*"; exit 1; }

# loops_over DIR
source "$ROOT/tests/support/loops.sh"
# NOBODY, nobody_scratch, nobody_runner
source "$ROOT/tests/support/nobody.sh"
no_loops_left() {
	local left=""
	for _ in $(seq 500); do # bounded: autoclear runs as the last opener closes
		left=$(loops_over "$1")
		[ -z "$left" ] && break
		sleep 0.02
	done
	[ -z "$left" ] || fail "$2: loop devices left over $1: $left"
	echo "  ok: no loop device left ($2)"
}

[ "$(id -u)" = 0 ] || fail "run as root: the loop-device cases need it (section 3 drops it itself)"
command -v setpriv >/dev/null || fail "setpriv (util-linux) is needed to drop root"
S=$(readlink -f "$WORK")

echo "== 1. root: thinp.loop through loop devices, thinp.file through none"
"$RUN" --repeat 1 --no-report --out "$WORK/run" --tmp "$S/scratch1" \
	--only '^overwrite\.bs=4k\.thinp\.loop$' --only '^overwrite\.bs=4k\.thinp\.file$' \
	--only '^cow\.bs=4k\.order=seq\.thinp\.loop$' 2>&1 | tail -n 4
no_loops_left "$S/scratch1" "after the run"
python3 -B - "$WORK/run" <<'EOF'
import json, os, sys
out = sys.argv[1]
cases = json.load(open(os.path.join(out, "cases.json")))["cases"]
env = json.load(open(os.path.join(out, "env.json")))
bad = []
want = {"overwrite.bs=4k.thinp.loop", "overwrite.bs=4k.thinp.file", "cow.bs=4k.order=seq.thinp.loop"}
missing = want - set(cases)
if missing:
    bad.append(f"cases not run: {sorted(missing)}")
if "cow.bs=4k.order=seq.thinp.file" in cases:
    bad.append("a file twin ran that --only did not name")
for cid in sorted(want & set(cases)):
    c = cases[cid]
    loop = ".thinp.loop" in cid
    if loop != ("files" not in c["label"]):
        bad.append(f"{cid}: label {c['label']!r}")
    for r in c["reps"]:
        if r["status"] != "ok":
            bad.append(f"{cid}: {r['status']} {r.get('error')}")
            continue
        for step, m in r["steps"].items():
            a = m["all"]
            if not loop:
                if any(k.startswith("loop_") for k in a):
                    bad.append(f"{cid} {step}: loop counters in a file case")
                continue
            pool_w = a.get("data_written", 0) + a.get("data_zeroed", 0)
            if not a.get("loop_data_written") or a["loop_data_written"] < pool_w:
                bad.append(f"{cid} {step}: data loop wrote {a.get('loop_data_written')} bytes, "
                           f"the pool {pool_w}")
                continue
            if not a.get("loop_meta_written"):
                bad.append(f"{cid} {step}: no metadata written through its loop")
                continue
            print(f"  {cid} {step}: data loop {a['loop_data_written']} bytes written "
                  f"(pool {pool_w}), metadata loop {a.get('loop_meta_written')}")
if env.get("notes"):
    bad.append(f"notes in a root run: {env['notes']}")
if "loop devices" not in env.get("loop_lvm", ""):
    bad.append(f"env.json loop_lvm: {env.get('loop_lvm')!r}")
print("\n".join("FAIL: " + b for b in bad) or "  ok: cases.json")
sys.exit(1 if bad else 0)
EOF

echo "== 2. SIGINT while a case holds its loop devices"
setsid "$RUN" --repeat 50 --no-report --out "$WORK/int" --tmp "$S/scratch2" \
	--only '^overwrite\.bs=4k\.thinp\.loop$' >"$WORK/int.log" 2>&1 &
run_pid=$!
seen=""
for _ in $(seq 6000); do
	seen=$(loops_over "$S/scratch2")
	[ -n "$seen" ] && break
	kill -0 "$run_pid" 2>/dev/null || { cat "$WORK/int.log"; fail "the run ended before a loop appeared"; }
	sleep 0.01
done
[ -n "$seen" ] || fail "no loop device ever appeared over $S/scratch2"
echo "  attached: $(echo "$seen" | tr '\n' ' ')"
kill -INT "$run_pid"
rc=0
wait "$run_pid" || rc=$?
run_pid=""
tail -n 3 "$WORK/int.log"
[ "$rc" = 130 ] || fail "interrupted run exited $rc, expected 130"
no_loops_left "$S/scratch2" "after SIGINT"
if pgrep -f -- "--tmp $S/scratch2" >/dev/null || pgrep -f -- "$S/scratch2" >/dev/null; then
	fail "processes of the interrupted run are left: $(pgrep -af -- "$S/scratch2")"
fi
echo "  ok: exit 130, nothing left"

echo "== 3. not root: the file twins run instead, and the run says so"
# (nobody's own scratch dir, and the runner and binaries where nobody can read them)
NR=$(nobody_scratch)
nobody_runner "$NR" "$ROOT"
nobody=("${NOBODY[@]}" env "${NOBODY_ENV[@]}")
listed=$("${nobody[@]}" "$NOBODY_RUN" --list --only '^overwrite\.bs=4k\.thinp\.loop$')
echo "$listed" | sed 's/^/  /'
echo "$listed" | grep -q '^overwrite\.bs=4k\.thinp\.file ' || fail "--list as nobody has no file twin"
! echo "$listed" | grep -q '\.thinp\.loop' || fail "--list as nobody still has a thinp.loop case"
(cd "$NR" && "${nobody[@]}" HOME="$NR" "$NOBODY_RUN" --repeat 1 --out "$NR/run" \
	--tmp "$NR/scratch" --only '^overwrite\.bs=4k\.thinp\.loop$') >"$WORK/nr.log" 2>&1 ||
	{ cat "$WORK/nr.log"; fail "the run as nobody failed"; }
grep -q "note: not root" "$WORK/nr.log" || { cat "$WORK/nr.log"; fail "the run's log has no note"; }
python3 -B - "$NR/run" <<'EOF'
import json, os, sys
out = sys.argv[1]
cases = json.load(open(os.path.join(out, "cases.json")))["cases"]
env = json.load(open(os.path.join(out, "env.json")))
report = open(os.path.join(out, "report.md")).read()
bad = []
if "overwrite.bs=4k.thinp.file" not in cases or "overwrite.bs=4k.thinp.loop" in cases:
    bad.append(f"cases: {sorted(cases)}")
notes = env.get("notes") or []
if not any("not root" in n and "thinp.file" in n for n in notes):
    bad.append(f"env.json notes: {notes}")
if "**Note**: not root" not in report:
    bad.append("report.md has no note")
if "loop-lvm files (no loop device)" not in report:
    bad.append("report.md does not label the file variant")
if "not root" not in env.get("loop_lvm", ""):
    bad.append(f"env.json loop_lvm: {env.get('loop_lvm')!r}")
for r in cases.get("overwrite.bs=4k.thinp.file", {}).get("reps", []):
    if r["status"] != "ok":
        bad.append(f"file twin: {r['status']} {r.get('error')}")
print("\n".join("FAIL: " + b for b in bad) or "  ok: file twin ran, notes and report say so")
sys.exit(1 if bad else 0)
EOF
echo PASS
