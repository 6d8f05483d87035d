#!/bin/bash
# Guest half of tests/vm/passdown_crash.sh: does the kernel's discard passdown, issued before
# the commit that unmaps the block, destroy data that an earlier commit still maps?
#
# Scenario (per pool; data and metadata loop devices over files on an ext4 scratch disk; the
# metadata reached through a device-mapper target we can turn into a power cut):
#   1. thin 1 writes block 0 (pattern P) and flushes: committed, P on disk;
#   2. snapshot 2 of thin 1 (committed): block 0 shared by both;
#   3. POWER CUT from here on: the metadata device becomes dm-flakey with drop_writes, so no
#      later commit reaches it (no flush is acknowledged after this point, so this is a state
#      a real power loss can leave);
#   4. thin 1 overwrites block 0 whole (Q, O_DIRECT, no flush): a CoW to a new data block, so
#      the old one is now referenced by the snapshot only;
#   5. the snapshot discards block 0 (no flush): its last reference goes, and with passdown the
#      data block is discarded on the data device (the loop punches a hole);
#   6. the pool is torn down; the metadata device becomes linear again (its contents are the
#      commit of step 2) and a new pool is built on the same devices: thin 1 must read P, the
#      last data it flushed.
# Run twice: with discard passdown (the kernel default) and with no_discard_passdown.
# Writes $OUT/results.txt: "RESULT <variant> thin1=<P|Q|zeros|other> thin2=<...>" and
# PASS:/FAIL:/NOTE: lines for the harness's own checks; exits 1 if the harness failed.
set -uo pipefail

R=$OUT/results.txt
: >"$R"
fails=0
pass() { echo "PASS: $*" | tee -a "$R"; }
fail() {
	echo "FAIL: $*" | tee -a "$R"
	fails=$((fails + 1))
}
die() {
	fail "$*"
	exit 1
}

for m in dm-thin-pool dm-flakey loop; do /usr/sbin/modprobe "$m" 2>/dev/null || true; done
scratch=/dev/disk/by-id/virtio-scratch
[ -b "$scratch" ] || die "no scratch disk"
mkfs.ext4 -q -F "$scratch" && mkdir -p /scratch && mount -t ext4 "$scratch" /scratch || die "scratch fs"

B=65536
mkpat() { # NAME BYTE: a 64 KiB block of one byte value
	head -c $B /dev/zero | tr '\0' "\\$(printf '%03o' "$2")" >"/tmp/$1"
}
mkpat P 80
mkpat Q 81
head -c $B /dev/zero >/tmp/Z
classify() { # DEVICE: what block 0 holds
	dd if="$1" of=/tmp/got bs=$B count=1 iflag=direct status=none || { echo ioerror; return; }
	if cmp -s /tmp/got /tmp/P; then echo P
	elif cmp -s /tmp/got /tmp/Q; then echo Q
	elif cmp -s /tmp/got /tmp/Z; then echo zeros
	else echo other; fi
}

lo_meta="" lo_data=""
teardown() {
	for d in thin2 thin1 pool meta; do dmsetup remove "$d" 2>/dev/null; done
	[ -z "$lo_meta" ] || losetup -d "$lo_meta" 2>/dev/null
	[ -z "$lo_data" ] || losetup -d "$lo_data" 2>/dev/null
	lo_meta="" lo_data=""
}
trap teardown EXIT

run() { # VARIANT FEATURES...
	local variant=$1
	shift
	local feats=("skip_block_zeroing" "$@")
	rm -f /scratch/data /scratch/meta
	truncate -s 256M /scratch/data
	truncate -s 16M /scratch/meta
	lo_meta=$(losetup -f --show /scratch/meta) && lo_data=$(losetup -f --show /scratch/data) ||
		die "$variant: losetup"
	local msect=$((16 * 2048))
	local pool_table="0 $((256 * 2048)) thin-pool /dev/mapper/meta $lo_data 128 0 ${#feats[@]} ${feats[*]}"
	dmsetup create meta --table "0 $msect linear $lo_meta 0" || die "$variant: meta linear"
	dmsetup create pool --table "$pool_table" || die "$variant: pool"
	dmsetup message pool 0 "create_thin 1" && dmsetup create thin1 --table "0 2048 thin /dev/mapper/pool 1" ||
		die "$variant: thin 1"
	# 1. P, flushed and committed
	dd if=/tmp/P of=/dev/mapper/thin1 bs=$B count=1 oflag=direct conv=notrunc,fsync status=none ||
		die "$variant: write P"
	# 2. snapshot, committed (`dmsetup status` commits)
	dmsetup suspend thin1 && dmsetup message pool 0 "create_snap 2 1" && dmsetup resume thin1 &&
		dmsetup create thin2 --table "0 2048 thin /dev/mapper/pool 2" || die "$variant: snapshot"
	dmsetup status pool >/dev/null
	local used_before
	used_before=$(dmsetup status pool | awk '{split($6, a, "/"); print a[1]}')
	# 3. the power cut: metadata writes vanish from now on (reads still work)
	dmsetup suspend meta && dmsetup load meta --table "0 $msect flakey $lo_meta 0 0 1 1 drop_writes" &&
		dmsetup resume meta || die "$variant: flakey"
	# 4. CoW of block 0 in thin 1, no flush
	dd if=/tmp/Q of=/dev/mapper/thin1 bs=$B count=1 oflag=direct conv=notrunc status=none ||
		die "$variant: write Q"
	# 5. the snapshot discards block 0, no flush
	blkdiscard -o 0 -l $B /dev/mapper/thin2 || die "$variant: discard"
	local alloc_data
	alloc_data=$(stat -c %b /scratch/data)
	[ "$(classify /dev/mapper/thin1)" = Q ] || fail "$variant: thin 1 does not read Q before the cut"
	# 6. tear down (its commits are dropped too), rebuild on the same devices
	dmsetup remove thin2 && dmsetup remove thin1 && dmsetup remove pool || die "$variant: remove"
	dmsetup suspend meta && dmsetup load meta --table "0 $msect linear $lo_meta 0" &&
		dmsetup resume meta || die "$variant: linear again"
	thin_check -q /dev/mapper/meta && pass "$variant: thin_check after the cut" ||
		fail "$variant: thin_check after the cut"
	dmsetup create pool --table "$pool_table" || die "$variant: pool after the cut"
	local used_after
	used_after=$(dmsetup status pool | awk '{split($6, a, "/"); print a[1]}')
	[ "$used_after" = "$used_before" ] && pass "$variant: the pool is back at its last commit ($used_after blocks used)" ||
		fail "$variant: $used_after blocks used after the cut, $used_before at the last commit"
	dmsetup create thin1 --table "0 2048 thin /dev/mapper/pool 1" &&
		dmsetup create thin2 --table "0 2048 thin /dev/mapper/pool 2" || die "$variant: thins after the cut"
	echo "RESULT $variant thin1=$(classify /dev/mapper/thin1) thin2=$(classify /dev/mapper/thin2) data_file_blocks_before_cut=$alloc_data" |
		tee -a "$R"
	teardown
}

run passdown
run no_passdown no_discard_passdown
[ "$fails" = 0 ] || exit 1
