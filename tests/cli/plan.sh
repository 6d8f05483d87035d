#!/bin/bash
# thinp plan (docs/capacity-planning.md):
#  - examples/docker-ci.yaml prints a plan and the chart's path (a PNG when gnuplot is
#    installed); --format json parses, has every section, and a JSON spec with the same
#    content gives the same numbers; thin_metadata_size's answer is the tool's own;
#  - bad specs and bad command lines exit 2 with exact messages naming the key and line;
#  - oracle: seeded workloads of sequential layer writes, containers with fresh writes and
#    copy-on-write updates of image data, built on a real pool (thinp pool create, thin
#    snap, thinp write), and random 4 KiB writes (updates and fresh) through the fio engine
#    (THINP_ENGINE; skipped without it); the pool's used data blocks must be within 5% of
#    the plan's, its used metadata blocks (without the kernel's reserve, which both count)
#    within 10%.
set -euo pipefail
THINP=${THINP:-impl/cli/thinp}
THINP=$(cd "$(dirname "$THINP")" && pwd)/$(basename "$THINP")
SEED=${THINP_SEED:-$RANDOM}
echo "plan: THINP_SEED=$SEED"
RANDOM=$SEED
repo=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# expect RC MESSAGE ARGS...: exit RC, stderr's first line exactly MESSAGE, nothing on stdout
expect() {
	local want=$1 msg=$2 rc=0
	shift 2
	(cd "$tmp" && "$THINP" "$@") >"$tmp/out" 2>"$tmp/err" || rc=$?
	[ "$rc" = "$want" ] || { cat "$tmp/err" >&2; fail "exit $rc (want $want): thinp $*"; }
	[ ! -s "$tmp/out" ] || fail "stdout not empty on a failure: thinp $*"
	[ "$(head -n1 "$tmp/err")" = "$msg" ] ||
		{ cat "$tmp/err" >&2; fail "message of thinp $* is not: $msg"; }
}

# ---- the example ---------------------------------------------------------------------------
mkdir "$tmp/run"
(cd "$tmp/run" && "$THINP" plan "$repo/examples/docker-ci.yaml") >"$tmp/plan.txt" 2>"$tmp/err" ||
	{ cat "$tmp/err" >&2; fail "the example failed"; }
for want in "Predicted usage" "Events" "Recommendations" "thin_metadata_size"; do
	grep -q "$want" "$tmp/plan.txt" || fail "the plan has no '$want'"
done
if command -v gnuplot >/dev/null; then
	grep -qx "Chart: docker-ci.plan.png" "$tmp/plan.txt" || fail "no chart path printed"
	[ "$(head -c 4 "$tmp/run/docker-ci.plan.png" | od -An -c | tr -d ' ')" = "211PNG" ] ||
		fail "docker-ci.plan.png is not a PNG"
	[ ! -s "$tmp/err" ] || { cat "$tmp/err" >&2; fail "stderr not empty"; }
fi
"$THINP" plan --format json --chart "$tmp/c.png" "$repo/examples/docker-ci.yaml" >"$tmp/plan.json"
python3 - "$tmp/plan.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
for k in ("pool", "peak", "io", "events", "recommendation", "thin_metadata_size", "series"):
    assert k in d, k
s = d["series"]
assert len(s) == 1441, len(s)
assert all(a["hours"] < b["hours"] for a, b in zip(s, s[1:]))
assert all(p["data_used"] <= p["data_total"] and p["metadata_used"] <= p["metadata_total"]
           for p in s)
r = d["recommendation"]
assert r["block_size"] % 65536 == 0 and len(r["candidates"]) == 5
assert r["metadata_size"] >= 2 * r["metadata_peak_blocks"] * 4096
names = {e["event"] for e in d["events"]}
assert "autoextend_data" in names, names
PY
if command -v thin_metadata_size >/dev/null; then
	cmd=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["thin_metadata_size"]["command"])' "$tmp/plan.json")
	got=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["thin_metadata_size"]["bytes"])' "$tmp/plan.json")
	[ "$got" = "$($cmd)" ] || fail "thin_metadata_size: plan says $got, '$cmd' says $($cmd)"
fi
# without thin_metadata_size the plan says so and goes on
THINP_THIN_METADATA_SIZE=$tmp/no-such-tool "$THINP" plan --no-chart "$repo/examples/docker-ci.yaml" \
	>"$tmp/plan2.txt"
grep -qF "thin_metadata_size:            not run ($tmp/no-such-tool is not installed (thin-provisioning-tools))" \
	"$tmp/plan2.txt" || fail "no 'not run' line without thin_metadata_size"
# the same spec as JSON: the same plan
python3 - "$repo/examples/docker-ci.yaml" >"$tmp/ci.json" <<'PY'
# the example as JSON, converted by the few shapes it uses (sections, scalars, one list)
import json, sys
lines = [l.split("#")[0].rstrip() for l in open(sys.argv[1])]
doc = {}
sec = item = None
for l in lines:
    if not l.strip():
        continue
    ind = len(l) - len(l.lstrip())
    t = l.strip()
    if ind == 0:
        sec = doc.setdefault(t[:-1], {})
    elif t.startswith("- "):
        item = {}
        sec["write_mix"].append(item)
        k, v = t[2:].split(":", 1)
        item[k.strip()] = v.strip()
    elif t.endswith(":"):
        sec[t[:-1]] = []
    elif ind == 6:
        k, v = t.split(":", 1)
        item[k.strip()] = v.strip()
    else:
        k, v = t.split(":", 1)
        v = v.strip()
        sec[k] = int(v) if v.isdigit() else (v == "true" if v in ("true", "false") else v)
print(json.dumps(doc, indent=1))
PY
"$THINP" plan --format json --no-chart "$tmp/ci.json" | sed 1d >"$tmp/j1"
"$THINP" plan --format json --no-chart "$repo/examples/docker-ci.yaml" | sed 1d >"$tmp/j2"
cmp -s "$tmp/j1" "$tmp/j2" || fail "the JSON spec plans differently from the YAML one"

# ---- bad specs and command lines -----------------------------------------------------------
spec() { printf '%s\n' "$@" >"$tmp/bad.yaml"; }
spec "workload:" "  images: 2" "  imagez: 3"
expect 2 "thinp plan: bad.yaml: line 3: workload.imagez: unknown key; the keys here are: images, layers_per_image, layer_size, containers_per_image, container_writes, write_mix, write_span, update_fraction, churn_per_hour, duration, step" plan bad.yaml
spec "pool:" "  data_size: -5G"
expect 2 "thinp plan: bad.yaml: line 2: pool.data_size: -5G is negative; sizes are bytes >= 0" plan bad.yaml
spec "workload:" "  container_writes: -1"
expect 2 "thinp plan: bad.yaml: line 2: workload.container_writes: -1 is negative; sizes are bytes >= 0" plan bad.yaml
for bs in 96k 32k 2G; do
	spec "# a comment" "pool:" "  block_size: $bs   # too odd"
	bytes=$(python3 -c "print({'96k':98304,'32k':32768,'2G':2147483648}['$bs'])")
	expect 2 "thinp plan: bad.yaml: line 3: pool.block_size: $bytes bytes: the kernel takes 64 KiB to 1 GiB in multiples of 64 KiB (64k, 128k, ... 1G)" plan bad.yaml
done
spec "pool:" "  block_size: 64k" "  metadata_size: 17G"
expect 2 "thinp plan: bad.yaml: line 3: pool.metadata_size: 17G is over the 16 GiB limit of thin-pool metadata; give 16G or less" plan bad.yaml
spec "docker:" "  loopmetadatasize: 20G"
expect 2 "thinp plan: bad.yaml: line 2: docker.loopmetadatasize: 20G is over the 16 GiB limit of thin-pool metadata; give 16G or less" plan bad.yaml
spec "pool:" "  zeroing: maybe"
expect 2 "thinp plan: bad.yaml: line 2: pool.zeroing: 'maybe' is not a boolean; give true or false" plan bad.yaml
spec "pools:" "  zeroing: true"
expect 2 "thinp plan: bad.yaml: line 1: pools: unknown section; the sections are: workload, pool, lvm, docker" plan bad.yaml
spec "pool:" "  zeroing: true" "   data_size: 1G"
expect 2 "thinp plan: bad.yaml: line 3, column 4: unexpected indentation" plan bad.yaml
printf '{"pool": {"block_size": "64k",\n "zeroing": nul}}\n' >"$tmp/bad.json"
expect 2 "thinp plan: bad.json: line 2, column 13: expected a value" plan bad.json
printf '{"lvm": {"autoextend_percent": 120}}\n' >"$tmp/bad.json"
expect 2 "thinp plan: bad.json: line 1: lvm.autoextend_percent: 120 is outside 0..100" plan bad.json
expect 2 "thinp plan: a SPEC file (YAML or JSON) must be given" plan
expect 2 "thinp plan: invalid --format 'xml': use text or json" plan --format xml bad.yaml
expect 2 "thinp plan: --chart and --no-chart: give one" plan --chart a.png --no-chart bad.yaml
expect 1 "thinp plan: cannot read nosuch.yaml: No such file or directory" plan nosuch.yaml
"$THINP" plan --help | grep -q "^Usage: thinp plan SPEC" || fail "plan --help"
"$THINP" help plan | grep -q "^Usage: thinp plan SPEC" || fail "thinp help plan"

# ---- oracle: the plan against a real pool --------------------------------------------------
# One image of LAYERS layers (each a snapshot of the one below, written sequentially after
# it), CONTAINERS snapshots of the top layer, each writing W MiB in 1 MiB writes: a fraction U
# over the image's data from offset 0 (copy-on-write), the rest fresh after the image.
oracle() {
	local case=$1 layers=$2 lmib=$3 containers=$4 wmib=$5 upct=$6 bs=$7
	local dir=$tmp/pool$case top img cow fresh id
	"$THINP" pool create "$dir" --data-size 4G --metadata-size 64M --block-size "$bs" \
		--skip-block-zeroing >/dev/null
	"$THINP" thin create "$dir" 1 --size 10G
	id=1
	for ((l = 0; l < layers; l++)); do
		"$THINP" thin snap "$dir" $((id + 1)) $id
		id=$((id + 1))
		head -c $((lmib << 20)) /dev/zero | "$THINP" write "$dir" $id $((l * lmib))M "${lmib}M"
	done
	top=$id
	img=$((layers * lmib))
	cow=$((wmib * upct / 100))
	fresh=$((wmib - cow))
	for ((c = 0; c < containers; c++)); do
		id=$((id + 1))
		"$THINP" thin snap "$dir" $id $top
		[ $cow = 0 ] || head -c $((cow << 20)) /dev/zero | "$THINP" write "$dir" $id 0 "${cow}M"
		[ $fresh = 0 ] || head -c $((fresh << 20)) /dev/zero |
			"$THINP" write "$dir" $id "${img}M" "${fresh}M"
	done
	cat >"$tmp/o$case.yaml" <<-YAML
	workload:
	  images: 1
	  layers_per_image: $layers
	  layer_size: ${lmib}M
	  containers_per_image: $containers
	  container_writes: ${wmib}M
	  write_mix:
	    - size: 1M
	      share: 1
	      pattern: sequential
	  update_fraction: 0.$(printf %02d "$upct")
	  duration: 1h
	pool:
	  block_size: $bs
	  zeroing: false
	  data_size: 4G
	  metadata_size: 64M
	docker:
	  min_free_space: 0
	YAML
	compare "$case" "$dir" "$case: $layers x ${lmib}M layers, $containers containers x ${wmib}M (${upct}% CoW), $bs"
}

# compare CASE DIR TEXT: the plan of $tmp/oCASE.yaml against the pool in DIR, a line of errors
compare() {
	local case=$1 dir=$2
	"$THINP" plan --format json --no-chart "$tmp/o$case.yaml" >"$tmp/o$case.json"
	"$THINP" pool status "$dir" --fields >"$tmp/o$case.status"
	python3 - "$tmp/o$case.json" "$tmp/o$case.status" "$3" <<'PY' >>"$tmp/errors"
import json, sys
plan = json.load(open(sys.argv[1]))
st = dict(l.strip().split("=", 1) for l in open(sys.argv[2]))
total = int(st["total_meta_blocks"])
reserve = min(4096, total // 10)
real_d, real_m = int(st["used_data_blocks"]), int(st["used_meta_blocks"]) - reserve
end = plan["series"][-1]
pred_d, pred_m = end["data_used"], end["metadata_used"] - reserve
ed, em = (pred_d - real_d) / real_d * 100, (pred_m - real_m) / real_m * 100
print(f"{sys.argv[3]}: data {pred_d:.0f} vs {real_d} ({ed:+.2f}%), "
      f"metadata {pred_m:.0f} vs {real_m} ({em:+.2f}%)")
PY
}

# Random 4 KiB writes, through the fio engine (one process for thousands of writes, fio's
# random map off so offsets repeat as the formula assumes): one layer of LMIB MiB, a
# container updating it with NCOW random writes and writing NFRESH more over SPAN MiB after
# it.
oracle_random() {
	local case=$1 lmib=$2 ncow=$3 nfresh=$4 span=$5 bs=$6 dir=$tmp/pool$1
	"$THINP" pool create "$dir" --data-size 4G --metadata-size 64M --block-size "$bs" \
		--skip-block-zeroing >/dev/null
	"$THINP" thin create "$dir" 1 --size 10G
	"$THINP" thin snap "$dir" 2 1
	head -c $((lmib << 20)) /dev/zero | "$THINP" write "$dir" 2 0 "${lmib}M"
	"$THINP" thin snap "$dir" 3 2
	local common=(--ioengine="external:$ENGINE" --thinp_pool="$dir" --thinp_dev=3
		--rw=randwrite --bs=4k --norandommap=1 --randrepeat=0 --thread
		--verify_state_save=0 --output-format=terse)
	(cd "$tmp" && fio --name=cow "${common[@]}" --randseed=$((SEED + case)) --offset=0 \
		--size="${lmib}M" --number_ios="$ncow" >/dev/null 2>"$tmp/fio$case.err" &&
		fio --name=fresh "${common[@]}" --randseed=$((SEED + case + 1000)) \
			--offset="${lmib}M" --size="${span}M" --number_ios="$nfresh" \
			>/dev/null 2>>"$tmp/fio$case.err") || { cat "$tmp/fio$case.err" >&2; fail "fio"; }
	cat >"$tmp/o$case.yaml" <<-YAML
	workload:
	  images: 1
	  layers_per_image: 1
	  layer_size: ${lmib}M
	  containers_per_image: 1
	  container_writes: $(((ncow + nfresh) * 4))k
	  write_mix:
	    - size: 4k
	      share: 1
	      pattern: random
	  write_span: ${span}M
	  update_fraction: $(python3 -c "print($ncow / ($ncow + $nfresh))")
	  duration: 1h
	pool:
	  block_size: $bs
	  zeroing: false
	  data_size: 4G
	  metadata_size: 64M
	docker:
	  min_free_space: 0
	YAML
	compare "$case" "$dir" "$case: random 4k: ${lmib}M layer, $ncow CoW + $nfresh fresh over ${span}M, $bs"
}
: >"$tmp/errors"
oracle 1 2 64 1 16 50 64k
for c in 2 3 4; do
	bs=$((64 << (RANDOM % 3)))k
	oracle $c $((1 + RANDOM % 4)) $((16 * (1 + RANDOM % 6))) $((1 + RANDOM % 4)) \
		$((8 * (1 + RANDOM % 8))) $(((RANDOM % 3) * 25)) $bs
done
# Churn: two container slots replaced once an hour each (lives of 2 h, staggered), for 3 h,
# so the plan's end has slot 0 just replaced (nothing written) and slot 1 one hour into its
# second life; the pool goes through every life, deleting each container as it ends, so its
# deletes must free what the plan no longer counts.
oracle_churn() {
	local case=$1 lmib=$2 wmib=$3 bs=$4 dir=$tmp/pool$1 half=$(($3 / 2)) id=3
	"$THINP" pool create "$dir" --data-size 4G --metadata-size 64M --block-size "$bs" \
		--skip-block-zeroing >/dev/null
	"$THINP" thin create "$dir" 1 --size 10G
	"$THINP" thin snap "$dir" 2 1
	head -c $((lmib << 20)) /dev/zero | "$THINP" write "$dir" 2 0 "${lmib}M"
	# life MIB: a container of the image writing MIB, half over the image, half after it
	life() {
		id=$((id + 1))
		"$THINP" thin snap "$dir" $id 2
		[ "$1" = 0 ] && return 0
		head -c $(($1 << 19)) /dev/zero | "$THINP" write "$dir" $id 0 "$(($1 << 19))"
		head -c $(($1 << 19)) /dev/zero | "$THINP" write "$dir" $id "${lmib}M" "$(($1 << 19))"
	}
	life "$half" && "$THINP" thin delete "$dir" $id     # slot 0, 0-1 h
	life "$wmib" && local s1=$id                          # slot 1, 0-2 h
	life "$wmib" && "$THINP" thin delete "$dir" $id     # slot 0, 1-3 h
	"$THINP" thin delete "$dir" "$s1"
	life "$half"                                          # slot 1, 2-3 h (alive)
	life 0                                                # slot 0, from 3 h (alive)
	cat >"$tmp/o$case.yaml" <<-YAML
	workload:
	  images: 1
	  layers_per_image: 1
	  layer_size: ${lmib}M
	  containers_per_image: 2
	  container_writes: ${wmib}M
	  write_mix:
	    - size: 512k
	      share: 1
	      pattern: sequential
	  update_fraction: 0.5
	  churn_per_hour: 1
	  duration: 3h
	pool:
	  block_size: $bs
	  zeroing: false
	  data_size: 4G
	  metadata_size: 64M
	docker:
	  min_free_space: 0
	YAML
	compare "$case" "$dir" "$case: churn: ${lmib}M layer, 2 slots x ${wmib}M lives, deletes, $bs"
}
oracle_churn 8 $((32 * (1 + RANDOM % 4))) $((16 * (1 + RANDOM % 4))) $((64 << (RANDOM % 3)))k

ENGINE=${THINP_ENGINE:-}
if [ -n "$ENGINE" ] && [ -f "$ENGINE" ] && command -v fio >/dev/null; then
	for c in 5 6 7; do
		oracle_random $c $((32 * (1 + RANDOM % 4))) $((500 + RANDOM % 4000)) \
			$((2000 + RANDOM % 12000)) $((64 * (1 + RANDOM % 6))) $((64 << (RANDOM % 3)))k
	done
else
	echo "plan: SKIP the random-write oracle: no fio engine (THINP_ENGINE) or no fio"
fi
cat "$tmp/errors"
python3 - "$tmp/errors" <<'PY'
import re, sys
for line in open(sys.argv[1]):
    d, m = (abs(float(x)) for x in re.findall(r"\(([-+][0-9.]+)%\)", line))
    assert d <= 5, "data off by more than 5%: " + line
    assert m <= 10, "metadata off by more than 10%: " + line
PY
echo "plan: ok"
