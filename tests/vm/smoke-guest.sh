#!/bin/bash
# Guest half of tests/vm/smoke.sh: applies $IN/smoke.trace to the kernel's dm-thin
# (loop-lvm: sparse files on an ext4 scratch disk + losetup + a thin-pool table) and
# writes to $OUT: per-step pool status, final status lines, thin device images and
# checksums, thin_dump / thinp dump of the metadata, thin_check and thinp check results.
# Then cross-activation: libthinp (thinp CLI, in the guest) reads the kernel's pool, and the
# kernel activates a pool that libthinp wrote with the same trace (cross-*.sha256).
# Runs inside the VM (ci/vm/run.sh); payloads come from $IN/payloads/<step>.bin.
set -euo pipefail
trace=$IN/smoke.trace
[ -f "$trace" ] || { echo "smoke-guest: no $trace" >&2; exit 1; }
# shellcheck source=trace-lib.sh
. "$IN/trace-lib.sh"
# libthinp's replay takes each discard as the bios this kernel's block layer issued for it
# (tests/vm/trace_model.py bios), as the host sides do
htrace=$IN/host.trace
[ -f "$htrace" ] || htrace=$trace

scratch=/dev/disk/by-id/virtio-scratch
[ -b "$scratch" ] || { echo "smoke-guest: no scratch disk ($scratch)" >&2; exit 1; }
mkfs.ext4 -q -F "$scratch"
mkdir -p /scratch
mount -t ext4 "$scratch" /scratch

lo_meta="" lo_data=""
remove_all() { # every thin device, then the pool
	local d
	for d in $(dmsetup ls 2>/dev/null | awk '$1 ~ /^thin[0-9]+$/ {print $1}'); do
		dmsetup remove "$d" 2>/dev/null || true
	done
	dmsetup remove pool 2>/dev/null || true
}
cleanup() {
	remove_all
	[ -z "$lo_meta" ] || losetup -d "$lo_meta" 2>/dev/null || true
	[ -z "$lo_data" ] || losetup -d "$lo_data" 2>/dev/null || true
}
trap cleanup EXIT

status_pool() { dmsetup status pool | cut -d' ' -f4-; } # drop "0 LEN thin-pool"
status_thin() { dmsetup status "thin$1" | cut -d' ' -f4-; }

: >"$OUT/steps.txt"
while read -r step op a b c d e; do
	case $op in
	pool)
		data=$(bytes "$a") meta=$(bytes "$b") bs=$(bytes "$c") lw=$d
		feats=$(pool_features "${e:-}")
		set -- $feats
		truncate -s "$data" /scratch/data
		truncate -s "$meta" /scratch/metadata
		lo_meta=$(losetup -f --show /scratch/metadata)
		lo_data=$(losetup -f --show /scratch/data)
		dmsetup create pool --table \
			"0 $((data / 512)) thin-pool $lo_meta $lo_data $((bs / 512)) $lw $# $feats"
		;;
	thin)
		dmsetup message pool 0 "create_thin $a"
		dmsetup create "thin$a" --table "0 $(($(bytes "$b") / 512)) thin /dev/mapper/pool $a"
		;;
	snap)
		dmsetup suspend "thin$b"
		dmsetup message pool 0 "create_snap $a $b"
		dmsetup resume "thin$b"
		dmsetup create "thin$a" --table "0 $(($(bytes "$c") / 512)) thin /dev/mapper/pool $a"
		;;
	delete)
		dmsetup remove "thin$a"
		dmsetup message pool 0 "delete $a"
		;;
	write) # O_DIRECT, no flush: the trace's flush operations do that
		off=$(bytes "$b") len=$(bytes "$c")
		dd if="$IN/payloads/$step.bin" of="/dev/mapper/thin$a" bs="$len" count=1 seek="$off" \
			oflag=direct,seek_bytes conv=notrunc status=none
		;;
	flush) # fsync of the block device: a REQ_PREFLUSH bio, which makes dm-thin commit
		dd if=/dev/null of="/dev/mapper/thin$a" conv=notrunc,fsync status=none
		;;
	discard)
		blkdiscard -o "$(bytes "$b")" -l "$(bytes "$c")" "/dev/mapper/thin$a"
		;;
	*)
		echo "smoke-guest: unknown op '$op'" >&2
		exit 1
		;;
	esac
	# `dmsetup status` (without --noflush) commits the pool's metadata
	echo "$step $op $(status_pool)" >>"$OUT/steps.txt"
done < <(trace_ops "$trace")
trace_live "$trace" >"$OUT/live.txt"
t_ops=$SECONDS

status_pool >"$OUT/pool-status.txt"
while read -r t _; do
	echo "$t $(status_thin "$t")"
done <"$OUT/live.txt" >"$OUT/thin-status.txt"
dmsetup table >"$OUT/dmsetup-table.txt"
while read -r t _; do
	dd if="/dev/mapper/thin$t" of="$OUT/thin$t.img" bs=1M conv=sparse status=none
	sha256sum "/dev/mapper/thin$t" | awk -v t="$t" '{print t, $1}'
done <"$OUT/live.txt" >"$OUT/thin-sha256.txt"

# deactivate, then look at the metadata offline
remove_all
losetup -d "$lo_meta" "$lo_data"
lo_meta="" lo_data=""

m=/scratch/metadata
set +e
thin_check "$m" >"$OUT/thin_check.txt" 2>&1
echo "thin_check_rc=$?" >"$OUT/checks.txt"
if "$THINP" help check >/dev/null 2>&1; then
	"$THINP" check "$m" >"$OUT/thinp_check.txt" 2>&1
	echo "thinp_check_rc=$?" >>"$OUT/checks.txt"
else
	echo "thinp_check_rc=skipped (this thinp has no check command)" >>"$OUT/checks.txt"
fi
set -e
thin_dump "$m" >"$OUT/kernel.thin_dump.xml"
if "$THINP" help dump >/dev/null 2>&1; then
	"$THINP" dump "$m" >"$OUT/kernel.thinp_dump.xml" 2>"$OUT/thinp_dump.err" ||
		echo "thinp dump failed: $(cat "$OUT/thinp_dump.err")" >&2
fi
dd if="$m" of="$OUT/kernel-metadata.bin" bs=1M conv=sparse status=none
t_offline=$SECONDS
echo "smoke-guest: $step operations applied; $(cat "$OUT/pool-status.txt")"

# ---- cross-activation (needs thinp's pool commands in the guest) ----
if ! "$THINP" help pool >/dev/null 2>&1; then
	echo "cross=skipped (this thinp has no pool command)" >"$OUT/cross.txt"
	exit 0
fi
# 1. the kernel's pool, read by libthinp (after the kernel let go of it)
msum=$(sha256sum "$m" | cut -d' ' -f1)
while read -r t size; do
	"$THINP" read --data /scratch/data --metadata "$m" "$t" 0 "$size" |
		sha256sum | awk -v t="$t" '{print t, $1}'
done <"$OUT/live.txt" >"$OUT/cross-libthinp-reads-kernel.sha256"
[ "$(sha256sum "$m" | cut -d' ' -f1)" = "$msum" ] && echo "kernel_metadata_untouched_by_libthinp_reads=yes" >"$OUT/cross.txt" ||
	echo "kernel_metadata_untouched_by_libthinp_reads=no" >"$OUT/cross.txt"

# 2. the same trace written by libthinp (thinp CLI) in the guest, activated on the kernel
lp=/scratch/lib
cli_apply "$THINP" "$lp" "$htrace" "$IN/payloads"
while read -r t size; do
	"$THINP" read "$lp" "$t" 0 "$size" | sha256sum | awk -v t="$t" '{print t, $1}'
done <"$OUT/live.txt" >"$OUT/cross-libthinp-reads-libthinp.sha256"
lo_meta=$(losetup -f --show "$lp/metadata")
lo_data=$(losetup -f --show "$lp/data")
set -- $feats
dmsetup create pool --table \
	"0 $(($(stat -c %s "$lp/data") / 512)) thin-pool $lo_meta $lo_data $((bs / 512)) $lw $# $feats"
status_pool >"$OUT/cross-kernel-on-libthinp.pool-status"
while read -r t size; do
	dmsetup create "thin$t" --table "0 $((size / 512)) thin /dev/mapper/pool $t"
	echo "$t $(status_thin "$t")" >>"$OUT/cross-kernel-on-libthinp.thin-status"
	sha256sum "/dev/mapper/thin$t" | awk -v t="$t" '{print t, $1}' >>"$OUT/cross-kernel-reads-libthinp.sha256"
	dmsetup remove "thin$t"
done <"$OUT/live.txt"
dmsetup remove pool
losetup -d "$lo_meta" "$lo_data"
lo_meta="" lo_data=""
set +e
thin_check "$lp/metadata" >"$OUT/cross-thin_check.txt" 2>&1
echo "cross_thin_check_after_kernel_activation_rc=$?" >>"$OUT/cross.txt"
set -e
echo "guest seconds: trace $t_ops, images and offline checks $((t_offline - t_ops)), cross-activation $((SECONDS - t_offline))" | tee "$OUT/guest-times.txt"
echo "smoke-guest: cross-activation done"
