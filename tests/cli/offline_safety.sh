#!/bin/bash
# dump, restore and check never destroy what they read, nor a pool in use:
#  - `dump META -o META` truncated the metadata before reading it, and `restore -i META -o
#    META` zeroed its superblock: an output that is the input (the same inode, or the same
#    block device, also through symlinks, hard links or stdin) is a usage error (exit 2),
#    refused before anything is truncated;
#  - an output that belongs to a pool open in another process (libthinp flocks both of its
#    devices) is refused (exit 1), and so is a dump or check of such a pool's metadata:
#    it changes under the reader. Its metadata snapshot (-m) is stable: that works, and
#    so does a check through the snapshot the holder's control socket holds.
# Every refusal leaves every file as it was.
set -euo pipefail
THINP=${THINP:-impl/cli/thinp}
tmp=$(mktemp -d)
writer=""
cleanup() {
	[ -z "$writer" ] || kill "$writer" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
pool=$tmp/pool

# expect RC PATTERN... -- ARGS...: exit RC, each pattern (fixed string) on stderr
expect() {
	local want=$1 pats=()
	shift
	while [ "$1" != -- ]; do pats+=("$1"); shift; done
	shift
	local rc=0
	"$THINP" "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
	[ "$rc" = "$want" ] || { cat "$tmp/err" >&2; fail "exit $rc (want $want): thinp $*"; }
	local p
	for p in "${pats[@]}"; do
		grep -qF -- "$p" "$tmp/err" || { cat "$tmp/err" >&2; fail "no '$p' in the message of: thinp $*"; }
	done
}
sums() { sha256sum "$tmp/meta.bin" "$pool/metadata" "$pool/data"; }

"$THINP" pool create "$pool" --data-size 64M --metadata-size 4M
"$THINP" thin create "$pool" 1
head -c 262144 /dev/urandom >"$tmp/in"
"$THINP" write "$pool" 1 0 262144 <"$tmp/in"
cp "$pool/metadata" "$tmp/meta.bin"
"$THINP" dump "$tmp/meta.bin" >"$tmp/good.xml"
ln -s meta.bin "$tmp/link"
ln "$tmp/meta.bin" "$tmp/hard"
before=$(sums)

# ---- the output is the input ----
expect 2 "is the input" -- dump "$tmp/meta.bin" -o "$tmp/meta.bin"
expect 2 "is the input" -- dump "$tmp/link" -o "$tmp/meta.bin"
expect 2 "is the input" -- dump "$tmp/meta.bin" --output="$tmp/link"
expect 2 "is the input" -- dump "$tmp/meta.bin" -o "$tmp/hard"
expect 2 "is the input" -- dump -m "$tmp/meta.bin" -o "$tmp/hard"
expect 2 "is the input" -- restore -i "$tmp/meta.bin" -o "$tmp/meta.bin"
expect 2 "is the input" -- restore -i "$tmp/hard" -o "$tmp/link"
rc=0
"$THINP" restore -i - -o "$tmp/meta.bin" <"$tmp/meta.bin" 2>"$tmp/err" || rc=$?
[ "$rc" = 2 ] && grep -q "is the input" "$tmp/err" || fail "restore -i - from the output: exit $rc, $(cat "$tmp/err")"
[ "$before" = "$(sums)" ] || fail "a refused dump/restore changed a file"
thin_check -q "$tmp/meta.bin" || fail "the metadata was damaged"
# other outputs still work, and so does a new file
"$THINP" dump "$tmp/meta.bin" -o "$tmp/new.xml" && cmp -s "$tmp/new.xml" "$tmp/good.xml" || fail "dump -o a new file"
truncate -s 4M "$tmp/other.bin"
"$THINP" restore -q -i "$tmp/good.xml" -o "$tmp/other.bin" || fail "restore to another file"
"$THINP" dump "$tmp/meta.bin" -o /dev/null || fail "dump -o /dev/null"

# ---- a pool open in another process ----
"$THINP" metadata-snap "$pool" reserve
thin_dump -m "$pool/metadata" >"$tmp/snap.xml"
mkfifo "$tmp/fifo"
"$THINP" write "$pool" 1 256k 65536 <"$tmp/fifo" &
writer=$!
exec 3>"$tmp/fifo"
for _ in $(seq 100); do # the writer holds the pool once its devices are locked
	flock -n "$pool/metadata" true 2>/dev/null || break
	sleep 0.1
done
flock -n "$pool/metadata" true 2>/dev/null && fail "the writer never opened the pool"
for _ in $(seq 100); do # and serves its control socket (live_control.sh) once it answers
	"$THINP" pool status "$pool" --noflush >/dev/null 2>&1 && break
	sleep 0.1
done
# a holder that serves no control socket: what reads the metadata is refused
mv "$pool/control" "$tmp/control.aside"
before=$(sums)

expect 1 "open in another process" -- dump "$tmp/meta.bin" -o "$pool/metadata"
expect 1 "open in another process" -- dump "$tmp/meta.bin" -o "$pool/data"
expect 1 "open in another process" -- restore -i "$tmp/good.xml" -o "$pool/metadata"
expect 1 "open in another process" "-m" -- dump "$pool/metadata"
expect 1 "the pool is open in another process (check its metadata snapshot, or stop it)" -- check "$pool/metadata"
expect 1 -- check -q "$pool/metadata"
[ ! -s "$tmp/err" ] || fail "check -q printed: $(cat "$tmp/err")"
[ "$before" = "$(sums)" ] || fail "a refusal changed a file of the open pool"
mv "$tmp/control.aside" "$pool/control"
# one that serves it: check reads the metadata snapshot held there, which does not move
expect 0 -- check "$pool/metadata"
# its metadata snapshot can be read while it is open
"$THINP" dump -m "$pool/metadata" >"$tmp/live-snap.xml" || fail "dump -m of an open pool"
cmp -s "$tmp/live-snap.xml" "$tmp/snap.xml" || fail "dump -m of an open pool differs from thin_dump -m"
expect 0 -- check -m "$pool/metadata"

head -c 65536 "$tmp/in" >&3
exec 3>&-
wait "$writer" || fail "the writer failed"
writer=""
"$THINP" read "$pool" 1 256k 65536 | cmp - <(head -c 65536 "$tmp/in") || fail "the writer's data"
"$THINP" metadata-snap "$pool" release
"$THINP" check "$pool/metadata" || fail "thinp check once the pool is closed"
thin_check -q "$pool/metadata" || fail "thin_check once the pool is closed"
echo "offline_safety: all checks passed"
