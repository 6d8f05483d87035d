#!/bin/bash
# Guest half of tests/vm/kernel_backend.sh: drives the real kernel's dm-thin through
# `thinp --backend kernel` (impl/dm/, libdevmapper) and checks every operation against
# dmsetup's own view: tables, status lines, the parsed status structs (--fields), errno
# meanings, resize by suspend/reload/resume, metadata snapshots, deferred removal.
#   loop-lvm: a pool directory on an ext4 scratch disk (files + autoclear loop devices)
#   direct:   a pool on a dm-linear "LV" (grown like lvextend) and a raw virtio disk
# Writes $OUT/results.txt (PASS:/FAIL:/NOTE: lines) and $OUT/timings.txt; exits 1 on any FAIL.
set -uo pipefail

R=$OUT/results.txt T=$OUT/timings.txt
: >"$R"
: >"$T"
fails=0
pass() { echo "PASS: $*" | tee -a "$R"; }
fail() {
	echo "FAIL: $*" | tee -a "$R"
	fails=$((fails + 1))
}
note() { echo "NOTE: $*" | tee -a "$R"; }
check() { # DESC CMD...: pass if CMD succeeds
	local d=$1
	shift
	if "$@"; then pass "$d"; else fail "$d"; fi
}
now() { cut -d' ' -f1 /proc/uptime; } # (busybox date has no %N)
since() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.2f", b - a}'; }

K=("$THINP" --backend kernel)
# k EXPECTED_RC ARGS...: thinp --backend kernel ARGS; stdout in $out, stderr in $err
k() {
	local want=$1 t0
	shift
	t0=$(now)
	"${K[@]}" "$@" >/tmp/k.out 2>/tmp/k.err
	rc=$?
	echo "$(since "$t0") thinp --backend kernel $*" >>"$T"
	out=$(cat /tmp/k.out) err=$(cat /tmp/k.err)
	if [ "$rc" != "$want" ]; then
		fail "thinp --backend kernel $* exited $rc (want $want): ${err:0:300}"
		return 1
	fi
	return 0
}
# an error message: contains each of the given texts, and none of libdm's raw log
err_has() { # DESC TEXT...
	local d=$1 t
	shift
	for t in "$@"; do
		if [[ $err != *"$t"* ]]; then
			fail "$d: message lacks '$t': $err"
			return
		fi
	done
	if [[ $err == *"ioctl on"* || $err == *"libdevmapper:"* ]]; then
		fail "$d: libdevmapper's raw log leaked without -v: $err"
		return
	fi
	pass "$d: $err"
}
kline() { dmsetup status "$1" | cut -d' ' -f4-; } # dmsetup's INFO text, as thinp prints it

# the status struct (thinp ... status --fields) must be the status line, field by field
pool_fields_of_line() {
	local trans meta data held mode disc q nc lw
	read -r trans meta data held mode disc q nc lw <<<"$1"
	case $mode in rw) mode=write ;; ro) mode=read_only ;; esac
	echo "transaction_id=$trans"
	echo "used_meta_blocks=${meta%/*}"
	echo "total_meta_blocks=${meta#*/}"
	echo "used_data_blocks=${data%/*}"
	echo "total_data_blocks=${data#*/}"
	echo "held_root=$([ "$held" = - ] && echo 0 || echo "$held")"
	echo "mode=$mode"
	echo "discard_enabled=$([ "$disc" = ignore_discard ] && echo 0 || echo 1)"
	echo "discard_passdown=$([ "$disc" = discard_passdown ] && echo 1 || echo 0)"
	echo "error_if_no_space=$([ "$q" = error_if_no_space ] && echo 1 || echo 0)"
	echo "needs_check=$([ "$nc" = needs_check ] && echo 1 || echo 0)"
	echo "metadata_low_water=$lw"
}
thin_fields_of_line() {
	local mapped hi
	read -r mapped hi <<<"$1"
	echo "mapped_sectors=$mapped"
	echo "has_mapped=$([ "$hi" = - ] && echo 0 || echo 1)"
	echo "highest_mapped_sector=$([ "$hi" = - ] && echo 0 || echo "$hi")"
}
# check_pool_status DESC POOLARG DMNAME: line == dmsetup's, fields == the line; sets $line
check_pool_status() {
	local d=$1 kl fl
	k 0 pool status "$2" || return
	line=$out
	kl=$(kline "$3")
	if [ "$line" != "$kl" ]; then
		fail "$d: thinp pool status '$line' != dmsetup status '$kl'"
		return
	fi
	k 0 pool status "$2" --fields --noflush || return
	fl=$out
	if [ "$fl" != "$(pool_fields_of_line "$line")" ]; then
		fail "$d: --fields differ from the line '$line': $(echo "$fl" | tr '\n' ' ')"
		return
	fi
	pass "$d: status line = dmsetup's, struct = line: '$line'"
}
check_thin_status() { # DESC POOLARG ID DMNAME WANT_LINE
	local d=$1 kl
	k 0 thin status "$2" "$3" || return
	kl=$(kline "$4")
	if [ "$out" != "$kl" ] || [ "$out" != "$5" ]; then
		fail "$d: thinp thin status '$out', dmsetup '$kl', expected '$5'"
		return
	fi
	k 0 thin status "$2" "$3" --fields || return
	if [ "$out" != "$(thin_fields_of_line "$kl")" ]; then
		fail "$d: thin --fields differ from '$kl': $(echo "$out" | tr '\n' ' ')"
		return
	fi
	pass "$d: thin status '$kl' (line, dmsetup and struct agree)"
}
field() { sed -n "s/^$1=//p" <<<"$out"; }
gone_within() { # NAME SECONDS: the dm device disappears
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		dmsetup info "$1" >/dev/null 2>&1 || return 0
		sleep 0.1
	done
	return 1
}

cleanup() {
	exec 3<&- 2>/dev/null
	for d in tp-2 tp-1 tp dthin dpool lvdata; do dmsetup remove "$d" >/dev/null 2>&1; done
}
trap cleanup EXIT

echo "kernel_backend-guest: $(uname -r); dm $(dmsetup version | tr '\n' ' ')"
t_all=$(now)

# ================================ loop-lvm (a pool directory) ================================
t_sec=$(now)
scratch=/dev/disk/by-id/virtio-scratch
mkfs.ext4 -q -F "$scratch" && mkdir -p /scratch && mount -t ext4 "$scratch" /scratch ||
	{ fail "scratch disk"; exit 1; }
P=/scratch/p

# create: sparse files, loops with autoclear, the table Docker's loop-lvm preset asks for
if k 0 pool create "$P" --data-size 256M --metadata-size 8M --block-size 64k --low-water 16 \
	--skip-block-zeroing --name tp; then
	check "pool create prints /dev/mapper/tp" [ "$out" = /dev/mapper/tp ]
	check "/dev/mapper/tp is a block device" [ -b /dev/mapper/tp ]
	tbl=$(dmsetup table tp)
	check "pool table '$tbl'" \
		grep -Eq '^0 524288 thin-pool 7:[0-9]+ 7:[0-9]+ 128 16 1 skip_block_zeroing ?$' <<<"$tbl"
	check "kernel.json names the pool" grep -q '"name": "tp"' "$P/kernel.json"
	lo_meta=$(sed -n 's/.*"metadata_loop": "\(.*\)".*/\1/p' "$P/kernel.json")
	lo_data=$(sed -n 's/.*"data_loop": "\(.*\)".*/\1/p' "$P/kernel.json")
	check "loops $lo_data $lo_meta back the files, with autoclear" bash -c \
		"losetup -n -l -O NAME,AUTOCLEAR,BACK-FILE | grep -Eq '^$lo_data +1 +$P/data\$' &&
		 losetup -n -l -O NAME,AUTOCLEAR,BACK-FILE | grep -Eq '^$lo_meta +1 +$P/metadata\$'"
	check "data file sparse, 256M" [ "$(stat -c %s "$P/data")" = 268435456 ]
else
	exit 1
fi
check_pool_status "fresh pool" "$P" tp
[[ $line == "0 "*" 0/4096 - rw discard_passdown queue_if_no_space - "* ]] ||
	fail "fresh pool line '$line'"
k 0 pool status tp --fields && check "pool named by NAME too (total_data_blocks=4096)" \
	[ "$(field total_data_blocks)" = 4096 ]

# messages and errno meanings
k 0 thin create "$P" 1
k 1 thin create "$P" 1 && err_has "create_thin of an existing id -> EEXIST" \
	"create_thin 1 on pool tp" "device id is already in use" "(File exists)"
k 1 -v thin create "$P" 1 && check "-v shows libdevmapper's own log" grep -q "libdevmapper:" /tmp/k.err
k 1 thin snap "$P" 3 99 && err_has "create_snap of a missing origin -> ENODATA" \
	"origin device id does not exist" "(No data available)"
k 1 thin delete "$P" 42 && err_has "delete of a missing id -> ENODATA" \
	"no thin device with that id" "(No data available)"
k 1 thin create nosuchpool 1 && err_has "message to a missing pool -> ENXIO" \
	"no such device-mapper device" "(No such device or address)"
k 1 pool status nosuchpool && err_has "status of a missing pool -> ENXIO" "status of nosuchpool" \
	"no such device-mapper device" "(No such device or address)"

# activate, write, status
k 0 thin activate "$P" 1 64M && check "thin activate prints /dev/mapper/tp-1" [ "$out" = /dev/mapper/tp-1 ]
check "thin table" grep -Eq '^0 131072 thin [0-9]+:[0-9]+ 1 ?$' <<<"$(dmsetup table tp-1)"
check_thin_status "fresh thin" "$P" 1 tp-1 "0 -"
head -c 1048576 /dev/urandom >/tmp/a.bin
dd if=/tmp/a.bin of=/dev/mapper/tp-1 bs=1M oflag=direct conv=fsync status=none
check_thin_status "after 1 MiB at 0" "$P" 1 tp-1 "2048 2047"
check_pool_status "16 blocks used" "$P" tp
[[ $line == *" 16/4096 "* ]] || fail "used data blocks after 1 MiB: '$line'"

# snapshot of an active origin: the CLI suspends/resumes it
k 0 thin snap "$P" 2 1
check "origin resumed after the snapshot" bash -c "dmsetup info tp-1 | grep -q 'State: *ACTIVE$'"
k 0 thin activate "$P" 2 64M
check "snapshot reads the origin's bytes" cmp -n 1048576 /tmp/a.bin /dev/mapper/tp-2
head -c 65536 /dev/urandom | dd of=/dev/mapper/tp-2 bs=64k oflag=direct conv=fsync status=none
check_pool_status "CoW of one block" "$P" tp
[[ $line == *" 17/4096 "* ]] || fail "used data blocks after one CoW: '$line'"
check "origin unchanged by the snapshot write" cmp -n 1048576 /tmp/a.bin /dev/mapper/tp-1
k 1 thin delete "$P" 1 && err_has "delete of an active thin -> EBUSY" \
	"thin device is active" "(Device or resource busy)"

# transaction id (compare-and-swap)
k 0 set-transaction-id "$P" 0 5
check_pool_status "transaction id 5" "$P" tp
[[ $line == "5 "* ]] || fail "transaction id not 5: '$line'"
k 1 set-transaction-id "$P" 0 6 && err_has "set_transaction_id with a wrong old id -> EINVAL" \
	"not the expected old value" "(Invalid argument)"
grep -o 'kernel: .*' /tmp/k.err | head -n1 | sed 's/^/NOTE: set_transaction_id: the /' | tee -a "$R"

# metadata snapshot
k 0 metadata-snap "$P" reserve
check_pool_status "metadata snap held" "$P" tp
held=$(awk '{print $4}' <<<"$line")
check "held root in the status ($held)" [ "$held" != - ]
k 0 pool status "$P" --fields && check "held_root in the struct" [ "$(field held_root)" = "$held" ]
k 1 metadata-snap "$P" reserve && err_has "reserve twice -> EBUSY" "already held" "(Device or resource busy)"
if thin_dump --metadata-snap="$held" "$P/metadata" >/tmp/msnap.xml 2>/tmp/msnap.err; then
	check "thin_dump -m of the held root lists both thins" \
		bash -c "grep -q 'dev_id=\"1\"' /tmp/msnap.xml && grep -q 'dev_id=\"2\"' /tmp/msnap.xml"
else
	fail "thin_dump -m $held: $(head -c 300 /tmp/msnap.err)"
fi
k 0 metadata-snap "$P" release
check_pool_status "metadata snap released" "$P" tp
[[ $(awk '{print $4}' <<<"$line") == - ]] || fail "held root after release: '$line'"
k 1 metadata-snap "$P" release && err_has "release without a snapshot -> EINVAL" \
	"no metadata snapshot is held" "(Invalid argument)"

# grow: data file + losetup -c + suspend/reload/resume; then the metadata
t0=$(now)
k 0 pool extend "$P" --data-size 512M
echo "$(since "$t0") pool extend (data, loop-lvm) total" >>"$T"
check "data file grown to 512M" [ "$(stat -c %s "$P/data")" = 536870912 ]
check "pool table length 1048576" grep -q '^0 1048576 thin-pool ' <<<"$(dmsetup table tp)"
check_pool_status "after data resize" "$P" tp
[[ $line == *" 17/8192 "* ]] || fail "total data blocks after resize: '$line'"
k 0 pool extend "$P" --metadata-size 16M
check_pool_status "after metadata resize" "$P" tp
[[ $line =~ ^5\ [0-9]+/4096\ 17/8192\  ]] || fail "total metadata blocks after resize: '$line'"
k 1 pool extend "$P" --data-size 128M && err_has "shrink refused" "cannot shrink"
head -c 65536 /dev/urandom >/tmp/b.bin
dd if=/tmp/b.bin of=/dev/mapper/tp-1 bs=64k seek=500 oflag=direct conv=fsync status=none
check "thin IO after the resize" cmp -i 0:$((500 * 65536)) -n 65536 /tmp/b.bin /dev/mapper/tp-1
check_thin_status "after the resize" "$P" 1 tp-1 "2176 64127"

# deferred removal
exec 3</dev/mapper/tp-2
k 1 thin remove "$P" 2 && err_has "remove of an open thin -> EBUSY" \
	"open (in use)" "--deferred" "(Device or resource busy)"
k 0 thin remove "$P" 2 --deferred
check "deferred: tp-2 still there while open" bash -c "dmsetup info tp-2 | grep -q 'DEFERRED REMOVE'"
exec 3<&-
check "deferred: tp-2 gone after the last close" gone_within tp-2 5
k 1 thin status "$P" 2 && err_has "status of an inactive thin" "is not active" "thin activate"

# the userspace backend refuses a directory that is active on the kernel
"$THINP" pool status "$P" >/tmp/u.out 2>/tmp/u.err
rc=$?
check "userspace backend refuses the active directory (exit $rc: $(cat /tmp/u.err))" \
	bash -c "[ $rc = 1 ] && grep -q 'active on the kernel' /tmp/u.err"

# pool remove: refused while a thin is active, then the loops go with the pool
k 1 pool remove "$P" && err_has "pool remove with an active thin -> EBUSY, naming it" "tp-1" \
	"(Device or resource busy)"
k 0 thin remove "$P" 1
check_pool_status "before removal" "$P" tp
last_line=$line
k 0 pool remove "$P"
check "pool device gone" gone_within tp 2
sleep 0.2
check "autoclear loops detached" bash -c "! losetup -n -l -O BACK-FILE | grep -q '$P/'"

# reactivation: the same pool, features from DIR/table
k 0 pool activate "$P" && check "pool activate prints /dev/mapper/tp" [ "$out" = /dev/mapper/tp ]
check "reactivated table keeps the features" \
	grep -Eq '^0 1048576 thin-pool 7:[0-9]+ 7:[0-9]+ 128 16 1 skip_block_zeroing ?$' <<<"$(dmsetup table tp)"
check_pool_status "reactivated" "$P" tp
check "reactivated pool status = before removal" [ "$line" = "$last_line" ]
k 1 pool activate "$P" && err_has "activate twice" "active on the kernel as /dev/mapper/tp"
k 1 pool create "$P" --data-size 256M --metadata-size 8M && err_has "create over an active pool" "active on the kernel"
k 0 thin activate "$P" 1 64M
check "data survives deactivation" cmp -i 0:$((500 * 65536)) -n 65536 /tmp/b.bin /dev/mapper/tp-1
k 0 thin remove "$P" 1
k 0 pool remove "$P" --deferred
check "deferred pool remove of an unused pool is immediate" gone_within tp 2

# the same directory through the userspace backend: same status line, clean metadata
if "$THINP" pool status "$P" >/tmp/u.out 2>/tmp/u.err; then
	check "userspace backend reads the kernel's pool: same status line" [ "$(cat /tmp/u.out)" = "$last_line" ]
else
	fail "userspace backend on the kernel's directory: $(cat /tmp/u.err)"
fi
check "thin_check of the kernel-written metadata" thin_check -q "$P/metadata"
k 1 pool create "$P" --data-size 256M --metadata-size 8M && err_has "create over an existing pool" "--force"
echo "$(since "$t_sec") section loop-lvm" >>"$T"

# ================================ direct (block devices) ================================
t_sec=$(now)
ddata=$(readlink -f /dev/disk/by-id/virtio-ddata)
dmeta=/dev/disk/by-id/virtio-dmeta
# an "LV": dm-linear over the first 128M of the data disk (grown below like lvextend)
dmsetup create lvdata --table "0 262144 linear $ddata 0" || fail "dmsetup create lvdata"
k 1 pool create fpool --data "$P/data" --metadata "$dmeta" && err_has "direct pool on a file" \
	"not a block device" "pool directory"
k 0 pool create dpool --data /dev/mapper/lvdata --metadata "$dmeta" --block-size 512k \
	--skip-block-zeroing && check "direct pool create prints /dev/mapper/dpool" [ "$out" = /dev/mapper/dpool ]
check "direct pool table" \
	grep -Eq '^0 262144 thin-pool [0-9]+:[0-9]+ [0-9]+:[0-9]+ 1024 0 1 skip_block_zeroing ?$' <<<"$(dmsetup table dpool)"
check_pool_status "direct pool" dpool dpool
[[ $line == "0 "*" 0/256 - rw "* ]] || fail "direct pool line '$line'"
k 1 pool create dpool --data /dev/mapper/lvdata --metadata "$dmeta" && err_has "create of an existing name" "already exists"
k 0 thin create dpool 1
k 0 thin activate dpool 1 256M --name dthin && check "--name" [ "$out" = /dev/mapper/dthin ]
head -c 4194304 /dev/urandom >/tmp/c.bin
dd if=/tmp/c.bin of=/dev/mapper/dthin bs=1M oflag=direct conv=fsync status=none
check_thin_status "direct thin after 4 MiB" dpool 1 dthin "8192 8191"
# lvextend: suspend the LV, reload it longer, resume; then the pool follows
dmsetup suspend lvdata && dmsetup reload lvdata --table "0 524288 linear $ddata 0" &&
	dmsetup resume lvdata || fail "growing lvdata"
k 1 pool extend dpool --data-size 1G && err_has "extend beyond the device" "grow it first"
t0=$(now)
k 0 pool extend dpool
echo "$(since "$t0") pool extend (direct) total" >>"$T"
check_pool_status "direct pool after extend" dpool dpool
[[ $line == *" 8/512 "* ]] || fail "direct pool total after extend: '$line'"
check "direct thin data intact" cmp -n 4194304 /tmp/c.bin /dev/mapper/dthin
k 0 thin remove dpool 1
k 0 pool remove dpool
k 1 pool create dpool --data /dev/mapper/lvdata --metadata "$dmeta" && err_has "direct create over a pool" "--force"
k 1 pool activate dpool --data /dev/mapper/lvdata --metadata "$dmeta" --block-size 64k &&
	err_has "activate with another block size -> EINVAL" "kernel rejected the table" "(Invalid argument)"
grep -o 'kernel: .*' /tmp/k.err | head -n1 | sed 's/^/NOTE: wrong block size: the /' | tee -a "$R"
k 0 pool activate dpool --data /dev/mapper/lvdata --metadata "$dmeta" --block-size 512k --skip-block-zeroing
check_pool_status "direct pool reactivated" dpool dpool
[[ $line == *" 8/512 "* ]] || fail "direct pool after reactivation: '$line'"
k 0 pool remove dpool
dmsetup remove lvdata || fail "dmsetup remove lvdata"
thin_check -q "$dmeta" && pass "thin_check of the direct pool's metadata" || fail "thin_check direct"
k 0 pool create dpool --data "$ddata" --metadata "$dmeta" --force && pass "--force re-creates over an old pool"
check_pool_status "forced re-create is empty" dpool dpool
[[ $line == "0 "*" 0/8192 - "* ]] || fail "forced re-create line '$line'"
k 0 pool remove dpool
echo "$(since "$t_sec") section direct" >>"$T"

echo "$(since "$t_all") section all" >>"$T"
n_pass=$(grep -c '^PASS' "$R")
echo "kernel_backend-guest: $n_pass passed, $fails failed"
[ "$fails" = 0 ]
