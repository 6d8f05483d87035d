#!/usr/bin/env bash
# The Docker driver's scenarios of scenarios/run (11: dimage, dwrite, dmemory) at the tiny
# scale, --repeat 1, then what they wrote, not their timings: every case ran; the image's
# layers and starts are counted, each layer added pool data and metadata blocks; every fio
# workload did its IOs on every storage; the driver's update of an image file is a
# copy-on-write in the pool (its counters, `thinp docker stats`), a data volume's is not
# counted by any pool; n containers of the driver hold about n copies of the files they read
# in their page cache (a memory cgroup of their own) and overlayfs' about one; the report's
# sections and BENCHMARKS.md's three claim rows exist; nothing is left mounted, running or
# in a cgroup. A second run is sent SIGTERM once its driver's daemon serves, and must leave
# nothing behind either. Needs root, /dev/fuse, overlayfs, fio and the built CLI (make).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
# A sanitizer build has no fio engine (fio cannot load an ASan .so), which the runner needs.
if grep -qs -- -fsanitize "$BUILD/.build-flags"; then
	echo "SKIP: sanitizer build ($BUILD); the benchmark runner needs the plain build"
	exit 0
fi
SEED=${THINP_SEED:-$RANDOM}
echo "scenarios_docker: THINP_SEED=$SEED"
[ "$(id -u)" = 0 ] || { echo "FAIL: needs root (mounts, loop devices, FUSE, drop_caches)"; exit 1; }
[ -e /dev/fuse ] || { echo "FAIL: needs /dev/fuse"; exit 1; }
export THINP=${THINP:-$BUILD/bin/thinp}
# (a short scratch path: the driver's socket must fit in 108 bytes)
WORK=$(mktemp -d)
pid=""
cleanup() {
	[ -z "$pid" ] || kill "$pid" 2>/dev/null || true
	local r
	for r in $(find "$WORK" -maxdepth 6 -name driver.sock 2>/dev/null); do
		"$THINP" docker cleanup "$(dirname "$(dirname "$r")")" >/dev/null 2>&1 || true
	done
	grep -o " $WORK/[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT
export SCENARIOS_SCALE=tiny
fail() { echo "FAIL: $*" >&2; exit 1; }

# nothing of a run may remain: mounts under WORK, daemons of its driver homes, cgroups
leftovers() {
	local what=$1
	! grep -q " $WORK/" /proc/self/mountinfo || fail "$what: mounts left: $(grep -o " $WORK/[^ ]*" /proc/self/mountinfo)"
	! pgrep -f "thinp docker [a-z]* $WORK/" >/dev/null || fail "$what: a driver daemon is still running"
	! ls -d /sys/fs/cgroup/memory/thinbench-* /sys/fs/cgroup/thinbench-* 2>/dev/null | grep -q . ||
		fail "$what: memory cgroups left"
	[ -z "$(ls -A "$WORK/tmp" 2>/dev/null)" ] || fail "$what: scratch left: $(ls -A "$WORK/tmp")"
}

echo "== the Docker driver's scenarios, tiny"
mkdir "$WORK/tmp"
"$ROOT/scenarios/run" --repeat 1 --seed "$SEED" --out "$WORK/run" --tmp "$WORK/tmp" \
	--only '^d(image|write|memory)\.' 2>&1 | tail -n 3 || fail "scenarios/run exited non-zero"
leftovers "after the run"

python3 -B - "$WORK/run" "$ROOT" <<'EOF'
import json, os, sys
out, root = sys.argv[1], sys.argv[2]
sys.path.insert(0, os.path.join(root, "scenarios"))
from thinbench_runner.case import SCALES
sc = SCALES["tiny"]
cases = json.load(open(os.path.join(out, "cases.json")))["cases"]
bad = []
def check(ok, msg):
    if not ok:
        bad.append(msg)
def step(cid, name):
    reps = cases[cid]["reps"]
    check(len(reps) == 1 and reps[0]["status"] == "ok", f"{cid}: {reps}")
    return reps[0].get("steps", {}).get(name, {})

want = {f"dimage.{b}.loop" for b in ("thinp-docker", "overlayfs")} | \
       {f"dwrite.wl={w}.{b}.loop" for w in ("small", "append", "update", "seed")
        for b in ("thinp-docker", "overlayfs", "raw-volume")} | \
       {f"dmemory.n={n}.{b}.loop" for n in (1, 2, 4, 8) for b in ("thinp-docker", "overlayfs")}
check(set(cases) == want, f"cases: {sorted(set(cases) ^ want)}")

# image build: a layer per dk_layers, each adding pool blocks; starts counted
for b in ("thinp-docker", "overlayfs"):
    lay, st = step(f"dimage.{b}.loop", "layer")["all"], step(f"dimage.{b}.loop", "start")["all"]
    check(lay["ios"] == sc["dk_layers"] and len(lay["each_us"]) == sc["dk_layers"], f"{b} layers {lay}")
    check(st["ios"] == sc["dk_containers"], f"{b} starts {st}")
    check(lay["bytes"] >= sc["dk_layer"], f"{b}: a layer copied {lay['bytes']} bytes")
lay = step("dimage.thinp-docker.loop", "layer")["all"]
# a layer of >= dk_layer bytes of files needs at least half that in 64 KiB blocks
for i, (d, m) in enumerate(zip(lay["data_blocks_each"], lay["meta_blocks_each"])):
    check(d >= sc["dk_layer"] // 65536 // 2, f"layer {i + 1}: {d} data blocks")
    check(m >= 1, f"layer {i + 1}: {m} metadata blocks")

# writes: every workload did its IOs; the pool's classes only for the driver
ios = {"small": sc["dk_small"], "append": sc["dk_ios"], "update": sc["dk_ios"], "seed": 1}
for w, n in ios.items():
    for b in ("thinp-docker", "overlayfs", "raw-volume"):
        s = step(f"dwrite.wl={w}.{b}.loop", "write")
        a = s.get("all", {})
        check(a.get("ios") == n and a.get("errors") == 0, f"{w} {b}: {a.get('ios')} IOs, want {n}")
        check(a.get("lat_p50_us", 0) > 0 and a.get("elapsed_us", 0) > 0, f"{w} {b}: no latency")
        classes = set(s) - {"all"}
        if b == "thinp-docker":
            check(a.get("data_written", 0) >= n * (32768 if w == "seed" else 4096),
                  f"{w}: the pool wrote {a.get('data_written')} bytes")
        else:
            check(not classes, f"{w} {b}: pool classes {classes}")
        check(os.path.isfile(os.path.join(out, "fio", f"dwrite.wl={w}.{b}.loop", "r1-write.json")),
              f"{w} {b}: no fio JSON")
up = step("dwrite.wl=update.thinp-docker.loop", "write")
check(up.get("write_cow", {}).get("ios", 0) >= 1, f"update: no write_cow: {sorted(up)}")
check(up["all"].get("copied", 0) >= 65536, f"update: copied {up['all'].get('copied')}")

# memory: n copies in the readers' page cache with the driver, one with overlayfs
cp = {(b, n): step(f"dmemory.n={n}.{b}.loop", "read")["all"]["copies"]
      for n in (1, 2, 4, 8) for b in ("thinp-docker", "overlayfs")}
for n in (1, 2, 4, 8):
    check(cp[("thinp-docker", n)] >= 0.8 * n, f"driver n={n}: {cp[('thinp-docker', n)]:.2f} copies")
    check(cp[("overlayfs", n)] <= 1.5, f"overlayfs n={n}: {cp[('overlayfs', n)]:.2f} copies")
check(cp[("thinp-docker", 8)] > 4 * cp[("thinp-docker", 1)], f"driver copies do not grow: {cp}")

rep = open(os.path.join(out, "report.md")).read()
for t in ("## 11a.", "## 11b.", "## 11c."):
    check(t in rep, f"report.md has no '{t}' section")
if bad:
    print("FAIL:\n  " + "\n  ".join(bad))
    sys.exit(1)
print("files OK:", {f"{b} n={n}": round(v, 2) for (b, n), v in cp.items()})
EOF

echo "== BENCHMARKS.md's claim rows"
"$ROOT/scenarios/benchmarks" --stdout "$WORK/run" >"$WORK/bench.md"
for claim in "Memory: “Launching n copies" "“Data volumes provide the best" "Small writes at file level"; do
	grep -q "^| $claim" "$WORK/bench.md" || fail "BENCHMARKS.md has no row '$claim'"
done
grep -q "^| Memory: .*| \*\*holds: n copies with devicemapper, one with overlayfs\*\* |" "$WORK/bench.md" ||
	fail "memory verdict: $(grep '^| Memory' "$WORK/bench.md")"

echo "== SIGTERM once the driver's daemon serves"
mkdir -p "$WORK/tmp"
"$ROOT/scenarios/run" --repeat 1 --seed "$SEED" --out "$WORK/run2" --tmp "$WORK/tmp" \
	--only '^dwrite\.wl=small\.' --only '^dmemory\.n=8\.' >"$WORK/run2.log" 2>&1 &
pid=$!
# (polled: the socket appears when the image's first container is mounted)
for _ in $(seq 600); do
	[ -z "$(find "$WORK/tmp" -maxdepth 6 -name driver.sock 2>/dev/null)" ] || break
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.1
done
[ -n "$(find "$WORK/tmp" -maxdepth 6 -name driver.sock 2>/dev/null)" ] ||
	fail "no driver daemon appeared: $(tail -5 "$WORK/run2.log")"
kill -TERM "$pid"
st=0
wait "$pid" || st=$?
pid=""
[ "$st" = 130 ] || fail "interrupted run exited $st (want 130): $(tail -5 "$WORK/run2.log")"
leftovers "after SIGTERM"
echo "scenarios_docker: OK"
