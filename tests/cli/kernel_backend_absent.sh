#!/bin/bash
# --backend kernel on a host whose kernel has no device-mapper (this machine: no
# /dev/mapper/control): every kernel command fails with exit 1 and one clear sentence
# naming the missing control node and the ways out (the userspace backend, make vm-test),
# nothing of libdevmapper's own log. Usage errors stay exit 2. The real-kernel side is
# tests/vm/kernel_backend.sh (make vm-test).
set -euo pipefail
THINP=${THINP:-impl/cli/thinp}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

if [ -e /dev/mapper/control ]; then
	echo "SKIP: this kernel has device-mapper (/dev/mapper/control exists); see tests/vm/kernel_backend.sh"
	exit 0
fi

want="thinp: the kernel has no device-mapper (/dev/mapper/control is missing): use the default userspace backend, or run inside the VM harness: make vm-test"
expect_absent() {
	local rc=0
	"$THINP" "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
	[ "$rc" = 1 ] || { cat "$tmp/err" >&2; fail "exit $rc (want 1): thinp $*"; }
	[ "$(cat "$tmp/err")" = "$want" ] || { cat "$tmp/err" >&2; fail "message of: thinp $*"; }
	[ ! -s "$tmp/out" ] || fail "stdout not empty: thinp $*"
}

# the brief's example, then every command the kernel backend has, in both option positions
expect_absent --backend kernel pool status x
expect_absent pool status x --backend kernel
expect_absent --backend=kernel pool status x
expect_absent -v --backend kernel pool status x
expect_absent --backend kernel pool create "$tmp/pool" --data-size 64M --metadata-size 4M
[ ! -e "$tmp/pool" ] || fail "pool create made $tmp/pool although it could not activate it"
expect_absent --backend kernel pool create tp --data /dev/null --metadata /dev/null
expect_absent --backend kernel pool activate tp --data /dev/null --metadata /dev/null
expect_absent --backend kernel pool extend x --data-size 1G
expect_absent --backend kernel pool remove x
expect_absent --backend kernel pool remove x --deferred
expect_absent --backend kernel thin create x 1
expect_absent --backend kernel thin snap x 2 1
expect_absent --backend kernel thin delete x 1
expect_absent --backend kernel thin status x 1
expect_absent --backend kernel thin activate x 1 1G
expect_absent --backend kernel thin remove x 1
expect_absent --backend kernel set-transaction-id x 0 1
expect_absent --backend kernel metadata-snap x reserve
expect_absent --backend kernel metadata-snap x release

# Docker's driver on the kernel backend: init (either option position) and every later
# command of a ROOT whose options record backend=kernel fail the same way; no pool files
expect_docker_absent() {
	local rc=0 sub="" a prev=""
	for a in "$@"; do [ "$prev" = docker ] && [ -z "$sub" ] && sub=$a; prev=$a; done
	"$THINP" "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
	[ "$rc" = 1 ] || { cat "$tmp/err" >&2; fail "exit $rc (want 1): thinp $*"; }
	# (get starts the daemon: "the daemon for ROOT did not start: " comes first)
	[[ $(cat "$tmp/err") == "thinp docker $sub: "*"${want#thinp: }" ]] &&
		[ "$(wc -l <"$tmp/err")" = 1 ] ||
		{ cat "$tmp/err" >&2; fail "message of: thinp $*"; }
	[ ! -s "$tmp/out" ] || fail "stdout not empty: thinp $*"
}
expect_docker_absent --backend kernel docker init "$tmp/dk" --storage-opt dm.loopdatasize=64M
expect_docker_absent docker init "$tmp/dk2" --backend kernel
[ ! -e "$tmp/dk/devicemapper" ] || fail "docker init made $tmp/dk/devicemapper without device-mapper"
grep -qx "backend=kernel" "$tmp/dk/thinbench/options" || fail "options do not record backend=kernel"
for sub in info ls "create x" "get x" "exists x" "resize 1G" "device base"; do
	read -r -a w <<<"$sub"
	expect_docker_absent docker "${w[0]}" "$tmp/dk" "${w[@]:1}"
done

# usage errors are still usage errors (exit 2), found before the backend is touched
expect_rc2() {
	local rc=0
	"$THINP" "$@" >/dev/null 2>"$tmp/err" || rc=$?
	[ "$rc" = 2 ] || { cat "$tmp/err" >&2; fail "exit $rc (want 2): thinp $*"; }
}
expect_rc2 --backend sideways pool status x
expect_rc2 --backend kernel thin create x 99999999
expect_rc2 --backend kernel thin activate x 1 1000
expect_rc2 --backend kernel write x 1 0 4096
expect_rc2 --backend kernel dump x
expect_rc2 --backend kernel metadata-snap x hold
grep -q "hold" "$tmp/err" || fail "bad action not named"

# the userspace backend is untouched: explicit --backend user, and the kernel-only
# subcommands are notes that succeed
"$THINP" --backend user pool create "$tmp/u" --data-size 64M --metadata-size 4M
"$THINP" thin create "$tmp/u" 1 --backend user
"$THINP" thin activate "$tmp/u" 1 1G 2>"$tmp/err"
grep -q "nothing to do for the userspace backend" "$tmp/err" || fail "user activate note"
"$THINP" pool status "$tmp/u" --fields | grep -qx "total_data_blocks=1024" || fail "--fields"
echo "kernel_backend_absent: all checks passed"
