#!/usr/bin/env bash
# Power cuts on real files: a directory pool made and used through the thinp CLI and
# libthinp on wlog_fs (a FUSE mount that logs every write and every fsync in order),
# then power_replay checks the pool at every cut point of the log (strict model: only
# what was fsynced survives; between flushes a torn subset of the unflushed writes),
# with `thinp check`, thin_check and every unit's contents (see power_replay.c).
# Twice: buffered, and the data file O_DIRECT (direct-lvm) with block zeroing off.
#
# Needs root and /dev/fuse (fails, never skips, without them).
# THINP_SEED: the seed; THINP_TEST_SCALE: workload size (1: make test; 20: >= 10,000
# states checked); THIN_CHECK: the oracle (default: thin_check from PATH).
set -euo pipefail

: "${THINP:?set THINP to the thinp CLI}" "${BUILD:?set BUILD to the build directory}"
SEED=${THINP_SEED:-$(((RANDOM << 15) | RANDOM))}
echo "seed: $SEED (rerun with THINP_SEED=$SEED)"
SCALE=${THINP_TEST_SCALE:-1}
# a positive number, as the unit tests take it (0.25: the ASan pass in CI)
if ! awk -v s="$SCALE" 'BEGIN { exit !(s ~ /^[0-9]*\.?[0-9]+$/ && s + 0 > 0) }'; then
	echo "power_cut: THINP_TEST_SCALE='$SCALE' is not a positive number (e.g. 8 or 0.5)" >&2
	exit 2
fi
TOOLS=$BUILD/tests/tools
THIN_CHECK=${THIN_CHECK:-$(command -v thin_check || true)}

die() {
	echo "power_cut: $*" >&2
	exit 1
}
[ "$(id -u)" -eq 0 ] || die "needs root (a FUSE mount of wlog_fs): run as root"
[ -c /dev/fuse ] || die "needs /dev/fuse (modprobe fuse; in a container, pass --device /dev/fuse)"
command -v fusermount3 >/dev/null || die "needs fusermount3: install fuse3 (make deps)"
[ -x "$THIN_CHECK" ] || die "needs thin_check: install thin-provisioning-tools or set THIN_CHECK"
for t in wlog_fs power_workload power_replay; do
	[ -x "$TOOLS/$t" ] || die "$TOOLS/$t is missing: build it with make"
done

tmp=$(mktemp -d)
mnt=
# (from the mount table: a mount whose daemon died fails mountpoint's stat)
mounted() { awk -v m="$1" '$2 == m { found = 1 } END { exit !found }' /proc/self/mounts; }
cleanup() {
	if [ -n "$mnt" ] && mounted "$mnt"; then
		fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt" || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
# (a timeout's TERM must unmount too)
trap 'exit 143' TERM
trap 'exit 130' INT

# 60 ops per unit of scale, at least 20 (a few commits with writes between them)
ops=$(awk -v s="$SCALE" 'BEGIN { n = int(60 * s); print (n < 20 ? 20 : n) }')
# (one mode's minimum of checked states, 10 per 3 ops: a log too short to test anything fails)
min_checks=$((ops * 10 / 3))

one_mode() { # NAME POOL_CREATE_OPTIONS... (run with workload options in WL_OPTS)
	local name=$1
	shift
	local back=$tmp/$name.back log=$tmp/$name.log work=$tmp/$name.work
	mnt=$tmp/$name.mnt
	mkdir "$back" "$mnt" "$work"
	"$TOOLS/wlog_fs" "$back" "$log" "$mnt"
	mounted "$mnt" || die "wlog_fs did not mount $mnt"
	local M=$mnt/.wlog-mark P=$mnt/pool v=1
	mark() { printf '%s\n' "$*" >"$M"; }
	cli_write() { # THIN UNIT
		mark "w $1 $2 $v"
		"$TOOLS/power_workload" pattern "$1" "$2" "$v" "$SEED" |
			"$THINP" write "$P" "$1" $(($2 * 4096)) 4096
		mark C
		v=$((v + 1))
	}

	# (each mark before the command: a cut may come in the middle of it)
	"$THINP" pool create "$P" --data-size 16m --metadata-size 4m "$@"
	mark "table $(cat "$P/table")"
	mark created
	mark "c 1"
	"$THINP" thin create "$P" 1 --size 512k
	mark C
	cli_write 1 0
	cli_write 1 1
	cli_write 1 17
	mark "s 2 1"
	"$THINP" thin snap "$P" 2 1
	mark C
	cli_write 2 1
	# shellcheck disable=SC2086
	"$TOOLS/power_workload" run "$P" "$M" "$SEED" "$ops" 3 1000 $WL_OPTS 1 2 >/dev/null
	mark "z 1 0 16"
	"$THINP" discard "$P" 1 0 64k
	mark C
	local grow=$(((16 + ops / 20 + 8) << 20))
	mark "x $grow"
	"$THINP" pool extend "$P" --data-size "$grow"
	mark C
	mark "d 2"
	"$THINP" thin delete "$P" 2
	mark C
	fusermount3 -u "$mnt"
	mnt=
	echo "$name: $(stat -c %s "$log") bytes of log"
	"$TOOLS/power_replay" "$log" "$work" pool "$THINP" "$THIN_CHECK" "$SEED" 100 \
		"$min_checks" || die "$name: the pool did not survive every power cut (above)"
}

WL_OPTS= one_mode buffered
WL_OPTS=--direct one_mode direct --direct --skip-block-zeroing
echo "power_cut: ok"
