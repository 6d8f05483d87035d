#!/usr/bin/env bash
# Differential smoke test: the same seeded operation trace (tests/vm/smoke.trace) is applied
# to the kernel's dm-thin inside the VM (tests/vm/smoke-guest.sh via ci/vm/run.sh) and to
# libthinp on the host, twice: in one pool session (tests/vm/replay.c, like the kernel's one
# activation) and through the thinp CLI (one command per operation). Each is compared with
# the kernel:
#   - the pool status line after every step, and the final pool and thin status lines
#   - the thin devices' contents (sha256; differing 64 KiB blocks listed on mismatch)
#   - thin_dump of both metadata, after renaming data blocks (normdump.py); whether the
#     dumps are byte-identical (same allocator decisions) is reported, not required
#   - thin_check, `thinp check` and `thinp dump` (vs thin_dump) on every metadata
# Any mismatch fails the test with a diff. Artifacts: build/vm/smoke/ (VM_SMOKE_OUT):
# kernel/ (the VM's output, console.log, accel.txt, vm-times.txt), session/, cli/, summary.txt.
# Usage: tests/vm/smoke.sh     (make vm-test; builds the VM image first if needed)
# Environment: THINP (default impl/cli/thinp), VM_SMOKE_TIMEOUT (300 s), VM_ACCEL,
#   VM_SMOKE_KERNEL=DIR: reuse the kernel results of an earlier run (its build/vm/smoke/kernel)
#   instead of booting the VM (to iterate on libthinp quickly); REPLAY (build/tests/tools/replay,
#   the one-session replay built from tests/vm/replay.c by make); VM_SMOKE_STRICT=1: the one-session replay
#   must also allocate the same data blocks as the kernel (byte-identical thin_dump);
#   VM_SMOKE_TRACE=FILE: another trace (tests/vm/differential.sh passes generated ones),
#   VM_SMOKE_NAME: the name in messages (smoke).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
here=$repo/tests/vm
THINP=${THINP:-$repo/impl/cli/thinp}
res=${VM_SMOKE_OUT:-$repo/build/vm/smoke}
name=${VM_SMOKE_NAME:-smoke}
trace_src=${VM_SMOKE_TRACE:-$here/smoke.trace}
t_start=$(date +%s.%N)
# shellcheck source=trace-lib.sh
. "$here/trace-lib.sh"

command -v python3 >/dev/null || { echo "$name: python3 is needed (Debian package python3)" >&2; exit 1; }
[ -x "$THINP" ] || { echo "$name: $THINP not built (make cli)" >&2; exit 1; }
[ -f "$trace_src" ] || { echo "$name: no trace $trace_src" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/thinbench-smoke.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trace=$tmp/smoke.trace # the guest reads it under this name
cp "$trace_src" "$trace"
# The host sides get each discard as the bios the guest's block layer makes of blkdiscard's
# BLKDISCARD (trace_model.py bios): libthinp, like dm-thin, sees bios, not ioctls.
htrace=$tmp/host.trace
python3 "$here/trace_model.py" bios "$trace" >"$htrace"
if [ -n "${VM_SMOKE_KERNEL:-}" ]; then
	[ -f "$VM_SMOKE_KERNEL/steps.txt" ] || { echo "$name: no kernel results in $VM_SMOKE_KERNEL" >&2; exit 1; }
	cp -r "$VM_SMOKE_KERNEL" "$tmp/kernel-reused"
fi
rm -rf "$res"
mkdir -p "$res/kernel"
cp "$trace" "$res/trace"
cp "$htrace" "$res/host.trace"
summary=$res/summary.txt
: >"$summary"
fails=0
say() { echo "$*" | tee -a "$summary"; }
pass() { say "PASS: $*"; }
fail() { say "FAIL: $*"; fails=$((fails + 1)); }
note() { say "NOTE: $*"; }

# which CLI commands does this thinp have? (pool/thin/write/... are being wired in)
host_ok=1
for c in pool thin write read discard; do
	if ! "$THINP" help "$c" >/dev/null 2>&1; then
		host_ok=0
		missing_cmd=$c
		break
	fi
done

# ---- payloads: one seeded file per write (seed: the operation's step number) ----------------
mkdir -p "$tmp/payloads"
python3 "$here/trace_model.py" payloads "$trace" "$tmp/payloads"
pool_feats=$(pool_features "$(trace_ops "$trace" | awk '$2 == "pool" {print $7}')")
case " $pool_feats " in *" skip_block_zeroing "*) zeroing=off ;; *) zeroing=on ;; esac
nops=$(trace_ops "$trace" | wc -l)
say "$name: trace $(basename "$trace_src"): $nops operations ($(trace_ops "$trace" | awk '{print $2}' | sort | uniq -c | awk '{printf "%s%s %s", s, $1, $2; s = ", "}'))"

# ---- kernel side, in the VM -------------------------------------------------------------------
vm_rc=0
if [ -n "${VM_SMOKE_KERNEL:-}" ]; then
	cp -r "$tmp/kernel-reused/." "$res/kernel/"
	say "kernel: results reused from $VM_SMOKE_KERNEL (no VM boot)"
else
	bash "$repo/ci/vm/build.sh"
	bash "$repo/ci/vm/run.sh" "$here/smoke-guest.sh" --disk 3G:scratch --file "$trace" \
		--file "$here/trace-lib.sh" --file "$htrace" --file "$tmp/payloads" --timeout "${VM_SMOKE_TIMEOUT:-300}" \
		--out "$res/kernel" || vm_rc=$?
fi
k=$res/kernel
if [ "$vm_rc" != 0 ]; then
	fail "the kernel side did not complete (run.sh exit $vm_rc); see $k/console.log, $k/job.log"
	tail -n 20 "$k/job.log" 2>/dev/null | sed 's/^/  | /' || true
	exit 1
fi
say "kernel: $(cat "$k/vm-times.txt")"
say "kernel: accelerator $(head -n1 "$k/accel.txt") ($(sed -n 2p "$k/accel.txt"))"

# ---- libthinp sides, on the host -------------------------------------------------------------
# session: tests/vm/replay.c applies the trace in one pool session (the kernel keeps its pool
#          active throughout, so this is the like-for-like comparison);
# cli:     one thinp command per operation (pool opened and closed each time).
if [ "$host_ok" = 0 ]; then
	say "SKIP: differential part: this thinp has no '$missing_cmd' command yet (kernel results kept in $k)"
	exit 0
fi
sides=()
replay=${REPLAY:-$repo/build/tests/tools/replay}
if [ -x "$replay" ]; then
	s=$res/session
	mkdir -p "$s"
	"$replay" "$htrace" "$tmp/payloads" "$tmp/session-pool" "$s"
	while read -r t _; do
		echo "$t $(sha256sum <"$s/thin$t.img" | cut -d' ' -f1)"
	done <"$s/thin-status.txt" >"$s/thin-sha256.txt"
	cp --sparse=always "$tmp/session-pool/metadata" "$s/metadata.bin"
	sides+=(session)
else
	note "libthinp one-session replay not built ($replay missing: make tools); only the CLI side is compared"
fi

c=$res/cli
mkdir -p "$c"
pool=$tmp/cli-pool
: >"$c/steps.txt"
record_step() { echo "$1 $2 $("$THINP" pool status "$pool")" >>"$c/steps.txt"; }
cli_apply "$THINP" "$pool" "$htrace" "$tmp/payloads" record_step
"$THINP" pool status "$pool" >"$c/pool-status.txt"
: >"$c/thin-status.txt"
: >"$c/thin-sha256.txt"
while read -r t size; do
	echo "$t $("$THINP" thin status "$pool" "$t")" >>"$c/thin-status.txt"
	"$THINP" read "$pool" "$t" 0 "$size" >"$c/thin$t.img"
	echo "$t $(sha256sum <"$c/thin$t.img" | cut -d' ' -f1)" >>"$c/thin-sha256.txt"
done < <(trace_live "$trace")
cp --sparse=always "$pool/metadata" "$c/metadata.bin"
sides+=(cli)

# ---- compare ----------------------------------------------------------------------------------
cmp_text() { # WHAT KERNEL_FILE OTHER_FILE OTHER_LABEL
	if cmp -s "$2" "$3"; then
		pass "$1 equal"
	else
		fail "$1 differ (kernel -, $4 +):"
		{ diff -u --label kernel --label "$4" "$2" "$3" | sed 's/^/  /' | head -n 60 | tee -a "$summary"; } || true
	fi
}

# the kernel against the trace's model (tests/vm/trace_model.py: dm-thin's rules applied to
# the trace, independent of both implementations): contents and mapped blocks
if python3 "$here/trace_model.py" check "$htrace" "$tmp/payloads" "$k" "$k/thin-status.txt" \
	>"$k/model.txt" 2>&1; then
	pass "kernel: contents and mapped blocks as the trace's model ($(tail -n1 "$k/model.txt"))"
else
	fail "kernel: differs from the trace's model:"
	{ grep -v 'as the model' "$k/model.txt" | head -n 20 | sed 's/^/  /' | tee -a "$summary"; } || true
fi

# the kernel's own metadata
python3 "$here/normdump.py" "$k/kernel.thin_dump.xml" >"$k/kernel.norm"
python3 "$here/normdump.py" --raw "$k/kernel.thin_dump.xml" >"$k/kernel.raw"
k_tc=$(sed -n 's/^thin_check_rc=//p' "$k/checks.txt")
k_pc=$(sed -n 's/^thinp_check_rc=//p' "$k/checks.txt")
if [ "$k_tc" = 0 ]; then
	pass "kernel: thin_check on its metadata"
else
	fail "kernel: thin_check on its metadata: exit $k_tc: $(head -c 400 "$k/thin_check.txt")"
fi
case $k_pc in
0) pass "kernel: thinp check on its metadata" ;;
skipped*) note "kernel: thinp check on its metadata: $k_pc" ;;
*)
	fail "kernel: thinp check on its metadata: exit $k_pc:"
	{ head -n 20 "$k/thinp_check.txt" | sed 's/^/  /' | tee -a "$summary"; } || true
	;;
esac
if [ -f "$k/kernel.thinp_dump.xml" ]; then
	if cmp -s "$k/kernel.thin_dump.xml" "$k/kernel.thinp_dump.xml"; then
		pass "kernel: thinp dump of its metadata byte-identical to thin_dump"
	else
		fail "kernel: thinp dump of its metadata differs from thin_dump:"
		{ diff -u --label thin_dump --label "thinp dump" "$k/kernel.thin_dump.xml" "$k/kernel.thinp_dump.xml" |
			sed 's/^/  /' | head -n 40 | tee -a "$summary"; } || true
	fi
fi

# cross-activation, in the guest: libthinp reading the kernel's pool, the kernel activating
# a pool written by libthinp (thinp CLI) with the same trace
if [ -f "$k/cross.txt" ] && ! grep -q '^cross=skipped' "$k/cross.txt"; then
	say "--- cross-activation (in the VM)"
	cmp_text "cross: libthinp reading the kernel's pool: contents" "$k/thin-sha256.txt" \
		"$k/cross-libthinp-reads-kernel.sha256" "libthinp reads"
	# libthinp's pool holds what libthinp reads from it; where skip_block_zeroing leaves
	# bytes undefined its contents may differ from the kernel's own pool (other blocks)
	cmp_text "cross: the kernel reading libthinp's pool: contents as libthinp reads them" \
		"$k/cross-libthinp-reads-libthinp.sha256" "$k/cross-kernel-reads-libthinp.sha256" \
		"kernel on libthinp"
	cmp_text "cross: the kernel's pool status over libthinp's metadata vs over its own" \
		"$k/pool-status.txt" "$k/cross-kernel-on-libthinp.pool-status" "kernel on libthinp"
	cmp_text "cross: the kernel's thin status over libthinp's metadata vs over its own" \
		"$k/thin-status.txt" "$k/cross-kernel-on-libthinp.thin-status" "kernel on libthinp"
	rc=$(sed -n 's/^cross_thin_check_after_kernel_activation_rc=//p' "$k/cross.txt")
	if [ "$rc" = 0 ]; then
		pass "cross: thin_check of libthinp's metadata after the kernel ran it"
	else
		fail "cross: thin_check of libthinp's metadata after the kernel ran it: exit ${rc:-?}: $(head -c 300 "$k/cross-thin_check.txt")"
	fi
	note "cross: the kernel's metadata file unchanged by libthinp's reads: $(sed -n 's/^kernel_metadata_untouched_by_libthinp_reads=//p' "$k/cross.txt")"
else
	note "cross-activation skipped: $(cat "$k/cross.txt" 2>/dev/null || echo 'no results')"
fi

for side in "${sides[@]}"; do
	d=$res/$side
	if [ "$side" = session ]; then lbl="libthinp/session"; else lbl="libthinp/cli"; fi
	say "--- kernel vs $lbl"
	if cmp -s "$k/steps.txt" "$d/steps.txt"; then
		pass "$lbl: pool status after every step equal ($(wc -l <"$d/steps.txt") steps)"
	else
		fail "$lbl: pool status differs after $(diff "$k/steps.txt" "$d/steps.txt" | grep -c '^<') of $(wc -l <"$k/steps.txt") steps; the first:"
		{ diff "$k/steps.txt" "$d/steps.txt" | awk -v l="$lbl" '
			/^</ && !k {k = 1; print "  kernel:  step " substr($0, 3)}
			/^>/ && !o {o = 1; print "  " l ": step " substr($0, 3)}' | tee -a "$summary"; } || true
	fi
	cmp_text "$lbl: final pool status line" "$k/pool-status.txt" "$d/pool-status.txt" "$lbl"
	cmp_text "$lbl: thin status lines" "$k/thin-status.txt" "$d/thin-status.txt" "$lbl"
	if cmp -s "$k/thin-sha256.txt" "$d/thin-sha256.txt"; then
		pass "$lbl: thin device contents equal (sha256 of $(wc -l <"$d/thin-sha256.txt") devices)"
	elif [ "$side" = cli ] && [ "$zeroing" = on ]; then
		fail "$lbl: thin device contents differ from the kernel's, on a pool that zeroes new blocks"
	elif [ "$side" = cli ] && python3 "$here/trace_model.py" check "$htrace" "$tmp/payloads" "$d" \
		"$d/thin-status.txt" >"$d/model.txt" 2>&1; then
		pass "$lbl: thin device contents as the trace's model; they differ from the kernel's only in bytes it leaves undefined (skip_block_zeroing: partial writes into blocks allocated elsewhere than by the kernel keep those blocks' stale bytes)"
	else
		[ ! -f "$d/model.txt" ] || { grep -v 'as the model' "$d/model.txt" | sed 's/^/  model: /' | tee -a "$summary"; } || true
		while read -r t _; do
			if ! cmp -s "$k/thin$t.img" "$d/thin$t.img"; then
				blocks=$({ cmp -l "$k/thin$t.img" "$d/thin$t.img" 2>/dev/null || true; } |
					awk '{print int(($1 - 1) / 65536)}' | uniq | head -n 20 | tr '\n' ' ')
				fail "$lbl: thin $t contents differ; 64 KiB blocks (first 20): ${blocks:-sizes differ}"
			fi
		done <"$k/thin-sha256.txt"
	fi
	thin_dump "$d/metadata.bin" >"$d/thin_dump.xml"
	python3 "$here/normdump.py" "$d/thin_dump.xml" >"$d/norm"
	cmp_text "$lbl: mappings and sharing (thin_dump, data blocks renamed)" "$k/kernel.norm" "$d/norm" "$lbl"
	if cmp -s "$k/kernel.thin_dump.xml" "$d/thin_dump.xml"; then
		note "$lbl: thin_dump byte-identical to the kernel's (the same data blocks allocated)"
	else
		python3 "$here/normdump.py" --raw "$d/thin_dump.xml" >"$d/raw"
		why="the allocator chose other data blocks than the kernel"
		[ "$side" = cli ] && why="expected: each thinp command reopens the pool, restarting the allocation cursor at block 0 (as reactivating a kernel pool would); the kernel's pool stayed active"
		if [ "$side" = session ] && [ "${VM_SMOKE_STRICT:-0}" = 1 ]; then
			fail "$lbl: thin_dump NOT byte-identical to the kernel's ($why):"
		else
			note "$lbl: thin_dump NOT byte-identical to the kernel's ($why); mappings with other data blocks (kernel -, $lbl +):"
		fi
		{ diff -u --label kernel --label "$lbl" "$k/kernel.raw" "$d/raw" | grep '^[-+] ' |
			sed 's/^/  /' | head -n 30 | tee -a "$summary"; } || true
	fi
	if thin_check "$d/metadata.bin" >"$d/thin_check.txt" 2>&1; then
		pass "$lbl: thin_check on its metadata"
	else
		fail "$lbl: thin_check on its metadata: $(head -c 400 "$d/thin_check.txt")"
	fi
	if "$THINP" check "$d/metadata.bin" >"$d/thinp_check.txt" 2>&1; then
		pass "$lbl: thinp check on its metadata"
	else
		fail "$lbl: thinp check on its metadata:"
		{ head -n 20 "$d/thinp_check.txt" | sed 's/^/  /' | tee -a "$summary"; } || true
	fi
	"$THINP" dump "$d/metadata.bin" >"$d/thinp_dump.xml" 2>&1 || true
	if cmp -s "$d/thin_dump.xml" "$d/thinp_dump.xml"; then
		pass "$lbl: thinp dump of its metadata byte-identical to thin_dump"
	else
		fail "$lbl: thinp dump of its metadata differs from thin_dump"
	fi
done

t_end=$(date +%s.%N)
say "$name: $(awk -v a="$t_start" -v b="$t_end" 'BEGIN {printf "%.0f", b - a}') s in all; artifacts in $res"
if [ "$fails" -gt 0 ]; then
	say "$name: FAILED ($fails mismatches)"
	exit 1
fi
say "$name: PASSED"
