#!/usr/bin/env bash
# thinp expose: a thin device as a file in a FUSE mount and a loop device over it, used as
# a real disk. ext4 (and xfs when mkfs.xfs is installed) made on the loop device, a seeded
# choice of real files copied in, checksummed, remounted and checked; fio's concurrent
# random writes with verify; fstrim returns blocks to the pool; a stop (SIGTERM) leaves a
# pool that `thinp check` and thin_check (the oracle) pass, and a second expose reads every
# file back. Bad command lines exit 2 naming the value. Needs root (FUSE, loop devices,
# mount): skipped, said so, otherwise; as root a missing /dev/fuse fails.
set -euo pipefail
THINP=${THINP:?THINP must name the thinp binary (set by the Makefile)}
seed=${THINP_SEED:-20261205}
echo "seed $seed (THINP_SEED)"

fail() {
	echo "expose: FAIL: $*" >&2
	exit 1
}

if [ "$(id -u)" -ne 0 ]; then
	echo "expose: not root: FUSE mounts, loop devices and mount need root: skipped"
	exit 0
fi
[ -c /dev/fuse ] || fail "needs /dev/fuse (modprobe fuse; in a container, pass --device /dev/fuse)"
[ -e /dev/loop-control ] || fail "needs loop devices (/dev/loop-control)"
for p in mkfs.ext4 thin_check sha256sum fstrim; do
	command -v "$p" >/dev/null || fail "needs $p (make deps)"
done

tmp=$(mktemp -d)
pool=$tmp/pool
expose_pid=
mounted() { awk -v m="$1" '$2 == m { found = 1 } END { exit !found }' /proc/self/mounts; }
cleanup() {
	set +e
	for m in "$tmp/fs" "$tmp/xfs"; do
		mounted "$m" && umount "$m"
	done
	if [ -n "$expose_pid" ]; then
		kill -TERM "$expose_pid" 2>/dev/null
		wait "$expose_pid" 2>/dev/null
	fi
	for m in "$pool/expose" "$tmp/xmnt"; do
		mounted "$m" && umount -l "$m"
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# ---- bad command lines: exit 2, the value named, nothing served ----
"$THINP" pool create "$pool" --data-size 1g --metadata-size 32m
"$THINP" thin create "$pool" 1 --size 256m
usage() { # EXPECT-IN-STDERR ARGS...
	local want=$1 rc=0
	shift
	"$THINP" "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
	[ "$rc" = 2 ] || fail "thinp $*: exit $rc, 2 expected ($(cat "$tmp/err"))"
	grep -qF -- "$want" "$tmp/err" || fail "thinp $*: '$want' not named: $(cat "$tmp/err")"
	[ ! -s "$tmp/out" ] || fail "thinp $*: printed $(cat "$tmp/out")"
}
usage "missing pool directory" expose
usage "'abc'" expose "$pool" abc
usage "--size" expose "$pool" 7
usage "'100'" expose "$pool" 1 --size 100
usage "differs" expose "$pool" 1 --size 1g
usage "'a/b'" expose "$pool" 1 --name a/b
usage "'..'" expose "$pool" 1 --name ..
usage "--mountpoint" expose --data "$pool/data" --metadata "$pool/metadata" 1 --size 1m
usage "--backend kernel" --backend kernel expose "$pool" 1
usage "--bogus" expose "$pool" 1 --bogus
rc=0
"$THINP" expose "$pool" 1 --mountpoint "$tmp/none" >"$tmp/out" 2>"$tmp/err" || rc=$?
[ "$rc" = 1 ] && grep -qF "$tmp/none" "$tmp/err" || fail "a missing mountpoint: exit $rc: $(cat "$tmp/err")"
rc=0
"$THINP" expose "$pool" 9 --size 1m >"$tmp/out" 2>"$tmp/err" || rc=$?
[ "$rc" = 1 ] && grep -q "9 does not exist" "$tmp/err" || fail "no thin 9: exit $rc: $(cat "$tmp/err")"
[ ! -e "$pool/expose" ] || fail "a failed expose left $pool/expose"
"$THINP" expose --help | grep -q "usage: thinp expose" || fail "--help"

# ---- serving ----
# start_expose ARGS...: thinp expose in the background; its stdout read up to "ready" (no
# sleeping: the lines come when it serves), into $file and $loop.
start_expose() {
	rm -f "$tmp/fifo"
	mkfifo "$tmp/fifo"
	"$THINP" expose "$@" >"$tmp/fifo" 2>"$tmp/expose.err" &
	expose_pid=$!
	exec 3<"$tmp/fifo"
	local lines=() line
	while read -r -t 120 line <&3; do
		[ "$line" = ready ] && break
		lines+=("$line")
	done
	exec 3<&-
	[ "$line" = ready ] || fail "thinp expose $* never said ready: $(cat "$tmp/expose.err")"
	file=${lines[0]}
	loop=${lines[1]:-}
}
stop_expose() { # [SIGNAL]: TERM by default
	kill -"${1:-TERM}" "$expose_pid"
	local rc=0
	wait "$expose_pid" || rc=$?
	expose_pid=
	[ "$rc" = 0 ] || fail "thinp expose exited $rc on SIG${1:-TERM}: $(cat "$tmp/expose.err")"
	[ ! -s "$tmp/expose.err" ] || fail "thinp expose said: $(cat "$tmp/expose.err")"
}
checks() {
	"$THINP" check "$pool/metadata" >"$tmp/check" 2>&1 || fail "thinp check: $(cat "$tmp/check")"
	thin_check "$pool/metadata" >"$tmp/check" 2>&1 || fail "thin_check: $(cat "$tmp/check")"
}
mapped() { "$THINP" thin ls "$pool" | awk -v id="$1" '$1 == id { print $2 }'; }

# a seeded choice of real files: about 300 of /usr/share/doc's, any size under 1 MiB
find /usr/share/doc -type f -size -1024k -readable 2>/dev/null | LC_ALL=C sort |
	awk -v s="$seed" 'BEGIN { srand(s) } { all[NR] = $0 } END {
		for (i = 1; i <= NR; i++) if (rand() * NR < 300) print all[i] }' >"$tmp/files"
[ -s "$tmp/files" ] || fail "no files under /usr/share/doc to copy"
echo "copying $(wc -l <"$tmp/files") files"
fill() { # MNT: copy the files in, sync, checksum list in MNT.sums
	tar -cf - -T "$tmp/files" 2>/dev/null | tar -xf - -C "$1"
	sync
	(cd "$1" && find usr -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) >"$1.sums"
	[ "$(wc -l <"$1.sums")" = "$(wc -l <"$tmp/files")" ] || fail "copied $(wc -l <"$1.sums") files"
}
verify() { # MNT
	(cd "$1" && sha256sum --quiet -c "$1.sums") || fail "checksums differ in $1"
}

start_expose "$pool" 1 --loop
[ "$file" = "$pool/expose/thin-1" ] || fail "file line: '$file'"
case $loop in /dev/loop[0-9]*) ;; *) fail "loop line: '$loop'" ;; esac
[ "$(stat -c %s "$file")" = $((256 << 20)) ] || fail "size of $file: $(stat -c %s "$file")"
[ "$(stat -c %a "$file")" = 600 ] || fail "mode of $file: $(stat -c %a "$file")"
[ "$(blockdev --getsize64 "$loop")" = $((256 << 20)) ] || fail "size of $loop"
# DIR/control answers while expose holds the pool
"$THINP" pool status "$pool" >/dev/null || fail "pool status through DIR/control"

mkfs.ext4 -q -F "$loop"
mkdir "$tmp/fs"
mount "$loop" "$tmp/fs"
fill "$tmp/fs"
umount "$tmp/fs"
mount "$loop" "$tmp/fs"
verify "$tmp/fs"

# two writers at once, random 4 KiB writes verified with crc32c (fio's own seed)
if command -v fio >/dev/null; then
	fio --name=rw --directory="$tmp/fs" --numjobs=2 --rw=randwrite --bs=4k --size=16m \
		--ioengine=psync --fsync=64 --verify=crc32c --verify_fatal=1 --verify_state_save=0 \
		--randseed="$seed" --group_reporting \
		--minimal >"$tmp/fio" 2>&1 || fail "fio: $(cat "$tmp/fio")"
	grep -q "verify" "$tmp/fio" && fail "fio reported a verify failure: $(cat "$tmp/fio")"
	rm -f "$tmp"/fs/rw.*
else
	echo "expose: fio not installed: the concurrent verify is not run (make deps)"
fi
# freed blocks go back to the pool: fstrim -> loop discard -> punched hole -> thin discard
sync
before=$(mapped 1)
fstrim "$tmp/fs" || fail "fstrim on the exposed file system"
after=$(mapped 1)
[ "$after" -lt "$before" ] || fail "fstrim returned no block to the pool ($before -> $after mapped)"
echo "fstrim: $before -> $after mapped blocks"
umount "$tmp/fs"
stop_expose
[ ! -e "$pool/expose" ] || fail "$pool/expose left after the stop"
losetup -a | grep -qF "$pool/expose" && fail "a loop device is left: $(losetup -a)"
checks

# nothing lost across a full stop and start
start_expose "$pool" 1 --loop --name disk
[ "$file" = "$pool/expose/disk" ] || fail "--name: '$file'"
mount -o ro "$loop" "$tmp/fs"
verify "$tmp/fs"
umount "$tmp/fs"
stop_expose INT
[ ! -e "$pool/expose" ] || fail "$pool/expose left after SIGINT"

# ---- xfs, on a mountpoint of our choice ----
if command -v mkfs.xfs >/dev/null; then
	"$THINP" thin create "$pool" 2 --size 320m
	mkdir "$tmp/xmnt" "$tmp/xfs"
	start_expose "$pool" 2 --loop --mountpoint "$tmp/xmnt"
	[ "$file" = "$tmp/xmnt/thin-2" ] || fail "--mountpoint: '$file'"
	mkfs.xfs -q -f "$loop"
	mount "$loop" "$tmp/xfs"
	fill "$tmp/xfs"
	umount "$tmp/xfs"
	stop_expose
	[ -d "$tmp/xmnt" ] || fail "expose removed a --mountpoint it did not make"
	checks
	start_expose "$pool" 2 --loop --mountpoint "$tmp/xmnt"
	mount -o ro "$loop" "$tmp/xfs"
	verify "$tmp/xfs"
	umount "$tmp/xfs"
	stop_expose
else
	echo "expose: mkfs.xfs not installed: xfs not tested (make deps)"
fi
checks
echo "expose: ok"
