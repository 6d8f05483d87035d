#!/bin/bash
# A pool held by another process, reached through its control socket DIR/control:
#  - `thinp write` holds the pool (its devices are flock()ed) and serves DIR/control (0600);
#    from another shell `pool status|extend`, `thin create|snap|delete|status`,
#    `set-transaction-id` and `metadata-snap` work and print what they print offline;
#  - `thinp check DIR/metadata` of the live pool checks a metadata snapshot reserved
#    through the socket and releases it (a snapshot already held is checked and kept);
#    without an answering socket the check is refused as before;
#  - bad requests are refused with a sentence; a stale socket file is replaced, a regular
#    file is not;
#  - a write queued on the full pool (queue mode) waits until `pool extend` from another
#    shell gives it space, then completes with its data intact.
set -euo pipefail
THINP=${THINP:-impl/cli/thinp}
SEED=${THINP_SEED:-$RANDOM}
echo "live_control: THINP_SEED=$SEED"
tmp=$(mktemp -d)
writer=""
cleanup() {
	exec 3>&- 2>/dev/null || true
	[ -z "$writer" ] || kill "$writer" 2>/dev/null || true
	[ -z "$writer" ] || wait "$writer" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
pool=$tmp/pool
sock=$pool/control

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

# raw REQUEST: the socket's reply line to one request (as a client other than thinp sends it)
raw() {
	python3 - "$sock" "$1" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
out = b""
while True:
    b = s.recv(4096)
    if not b:
        break
    out += b
sys.stdout.write(out.decode())
EOF
}

# start_writer OFFSET LENGTH [OPTION...]: `thinp write` of LENGTH bytes of $tmp/in to thin 1
# of $pool, fed through fd 3, holding the pool until fd 3 has given them all
start_writer() {
	rm -f "$tmp/fifo"
	mkfifo "$tmp/fifo"
	"$THINP" write "$pool" 1 "$1" "$2" "${@:3}" <"$tmp/fifo" 2>"$tmp/writer.err" &
	writer=$!
	exec 3>"$tmp/fifo"
}

# until_served: poll the socket (bounded tries) until the holder answers; never with a
# thinp command, which would open the pool itself while the writer has not yet
until_served() {
	local i
	for i in $(seq 400); do
		raw "status noflush" >/dev/null 2>&1 && return 0
		kill -0 "$writer" 2>/dev/null || { cat "$tmp/writer.err" >&2; fail "the writer ended"; }
		sleep 0.05
	done
	fail "the writer never served $sock"
}

end_writer() {
	exec 3>&-
	wait "$writer" || { cat "$tmp/writer.err" >&2; fail "the writer failed"; }
	writer=""
}

# 16 blocks of 64 KiB; thin 1 gets 24 blocks of seeded random data
"$THINP" pool create "$pool" --data-size 1M --metadata-size 4M
"$THINP" thin create "$pool" 1 --size 4M
python3 -c "import random,sys; random.seed($SEED); sys.stdout.buffer.write(random.randbytes(24*65536))" >"$tmp/in"

# ---- the holder serves status and messages ----
start_writer 0 65536
until_served
[ "$(stat -c %a "$sock")" = 600 ] || fail "the socket's mode is $(stat -c %a "$sock"), not 600"
"$THINP" pool status "$pool" >"$tmp/status"
grep -qE '^0 [0-9]+/1024 0/16 - rw discard_passdown queue_if_no_space - 256 $' "$tmp/status" ||
	fail "pool status through the socket: $(cat "$tmp/status")"
"$THINP" pool status "$pool" --fields | grep -qx total_data_blocks=16 || fail "pool status --fields"
expect 0 -- thin create "$pool" 2 --size 1M
expect 0 -- thin snap "$pool" 3 2
[ "$("$THINP" thin status "$pool" 3)" = "0 -" ] || fail "thin status 3 through the socket"
"$THINP" thin status "$pool" 3 --fields | grep -qx size_bytes=1048576 || fail "thin 3's recorded size"
expect 0 -- thin delete "$pool" 3
expect 1 "thin status" "3" -- thin status "$pool" 3
expect 1 "create_thin: device 2 already exists" -- thin create "$pool" 2
expect 0 -- set-transaction-id "$pool" 0 41
expect 1 "set-transaction-id" -- set-transaction-id "$pool" 0 42
"$THINP" pool status "$pool" | grep -q '^41 ' || fail "the transaction id did not change"
expect 1 "cannot shrink" -- pool extend "$pool" --data-size 512k

# ---- check of the live pool ----
expect 0 -- check "$pool/metadata"
"$THINP" pool status "$pool" | grep -q '^41 [0-9/]* [0-9/]* - ' || fail "check left its snapshot held"
expect 0 -- metadata-snap "$pool" reserve
held=$("$THINP" pool status "$pool" --fields | sed -n 's/^held_root=//p')
[ "$held" != 0 ] || fail "no snapshot held after metadata-snap reserve"
expect 0 -- check "$pool/metadata"
"$THINP" pool status "$pool" --fields | grep -qx "held_root=$held" || fail "check released a snapshot it did not reserve"
expect 0 -- metadata-snap "$pool" release
# without an answering socket the live metadata is never read
mv "$sock" "$tmp/control.aside"
expect 1 "the pool is open in another process" -- check "$pool/metadata"
expect 1 "another process has this pool open" -- pool status "$pool"
mv "$tmp/control.aside" "$sock"

# ---- bad requests ----
raw "frobnicate 1" | grep -q "^-22 unknown request 'frobnicate'" || fail "unknown request: $(raw "frobnicate 1")"
raw "delete" | grep -q "^-22 request delete takes ID, got 0" || fail "missing argument: $(raw delete)"
raw "create_thin 1x" | grep -q "^-22 invalid number '1x'" || fail "bad number: $(raw "create_thin 1x")"
raw "$(head -c 300 /dev/zero | tr '\0' s)" | grep -q "^-22 request longer than 256 bytes" ||
	fail "an over-long request was not refused"
raw "status noflush" | grep -q "^0 41 " || fail "the pool is not served after bad requests"

head -c 65536 "$tmp/in" >&3
end_writer
[ ! -e "$sock" ] || fail "the writer left $sock behind"

# ---- stale sockets are replaced, other files kept ----
python3 -c "import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])" "$sock"
[ -S "$sock" ] || fail "no stale socket made"
# nobody holds the pool: commands open it themselves, the stale file notwithstanding
expect 0 -- pool status "$pool"
start_writer 65536 65536
until_served
head -c 131072 "$tmp/in" | tail -c 65536 >&3
end_writer
[ ! -e "$sock" ] || fail "the writer left $sock behind"
echo "not a socket" >"$sock"
start_writer 131072 65536
head -c 196608 "$tmp/in" | tail -c 65536 >&3
end_writer
grep -qF "$sock exists and is not a socket: remove it" "$tmp/writer.err" || fail "no warning about $sock"
[ "$(cat "$sock")" = "not a socket" ] || fail "$sock was replaced"
rm "$sock"

# queued_write_resumes [OPTION...]: 24 blocks written to thin 1 of the full $pool (16 blocks)
# wait; `pool extend` to 2M from another shell lets them finish
queued_write_resumes() {
	start_writer 0 $((24 * 65536)) "$@"
	until_served
	cat "$tmp/in" >&3 &
	local feeder=$! i
	for i in $(seq 2000); do
		"$THINP" pool status "$pool" --noflush >"$tmp/status" 2>"$tmp/err" || { cat "$tmp/err" >&2; fail "status while the write waits"; }
		grep -q " out_of_data_space " "$tmp/status" && break
		kill -0 "$writer" 2>/dev/null || { cat "$tmp/writer.err" >&2; fail "the writer ended before the pool was full"; }
		sleep 0.02
	done
	grep -q " 16/16 - out_of_data_space discard_passdown queue_if_no_space " "$tmp/status" || fail "the pool never filled: $(cat "$tmp/status")"
	expect 0 -- pool extend "$pool" --data-size 2M
	wait "$feeder"
	end_writer
}

# ---- a write queued on a full pool resumes after an extend from another shell ----
# blocks 0-2 and thin 2's nothing are mapped: 24 blocks need 21 more of 13 free
queued_write_resumes
grep -q "^41 [0-9/]* 24/32 - rw " <("$THINP" pool status "$pool") || fail "after the extend: $("$THINP" pool status "$pool")"
[ "$(stat -c %s "$pool/data")" = $((2 << 20)) ] || fail "the data file did not grow"
"$THINP" read "$pool" 1 0 $((24 * 65536)) | cmp - "$tmp/in" || fail "the queued write's data"
"$THINP" check "$pool/metadata" || fail "thinp check once the pool is closed"
if command -v thin_check >/dev/null; then
	thin_check -q "$pool/metadata" || fail "thin_check once the pool is closed"
fi
# ---- the same through loop devices (root, as Docker's loop-lvm): the extend through the
# socket grows the file and the loop device over it (losetup -c), or the writes past the
# old end would fail ----
if [ "$(id -u)" = 0 ] && [ -e /dev/loop-control ]; then
	pool=$tmp/looped sock=$tmp/looped/control
	"$THINP" pool create "$pool" --losetup --data-size 1M --metadata-size 4M
	"$THINP" thin create "$pool" 1 --losetup
	queued_write_resumes --losetup
	grep -q "^0 [0-9/]* 24/32 - rw " <("$THINP" pool status "$pool") || fail "loop: after the extend: $("$THINP" pool status "$pool")"
	"$THINP" read "$pool" 1 0 $((24 * 65536)) --losetup | cmp - "$tmp/in" || fail "loop: the queued write's data"
	! losetup -j "$pool/data" | grep -q . || fail "a loop device is left on $pool/data"
else
	echo "live_control: not root or no loop devices: the loop-device extend is not tested"
fi
echo "live_control: all checks passed"
