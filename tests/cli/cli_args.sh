#!/bin/bash
# The thinp command line itself, on every command: negative, overflowing, empty and garbage
# numbers are usage errors (exit 2) naming the option (or argument) and the value, never
# "unknown option '-1'"; "--" ends the options; --help and --version work everywhere (exit
# 0, on stdout); unknown options are named; a usage error writes nothing (no file, no
# metadata change, nothing on stdout) and ends with the --help hint.
set -euo pipefail
THINP=${THINP:-impl/cli/thinp}
case $THINP in */*) THINP=$(cd "$(dirname "$THINP")" && pwd)/$(basename "$THINP") ;; esac # (cd below)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

pool=$tmp/pool
"$THINP" pool create "$pool" --data-size 64M --metadata-size 4M
"$THINP" thin create "$pool" 1
head -c 8192 /dev/urandom >"$tmp/in"
"$THINP" write "$pool" 1 0 8192 <"$tmp/in"
truncate -s 4M "$tmp/meta"
"$THINP" restore -q -i <("$THINP" dump "$pool/metadata") -o "$tmp/meta"
n=0

# usage ERR_PATTERN... -- ARGS...: exit 2, nothing on stdout, each pattern on stderr
# (fixed strings), the --help hint last
usage() {
	local pats=()
	while [ "$1" != -- ]; do pats+=("$1"); shift; done
	shift
	local rc=0
	"$THINP" "$@" >"$tmp/out" 2>"$tmp/err" </dev/null || rc=$?
	[ "$rc" = 2 ] || { cat "$tmp/err" >&2; fail "exit $rc (want 2): thinp $*"; }
	[ ! -s "$tmp/out" ] || fail "stdout not empty on a usage error: thinp $*"
	local p
	for p in "${pats[@]}"; do
		grep -qF -- "$p" "$tmp/err" || { cat "$tmp/err" >&2; fail "no '$p' in the message of: thinp $*"; }
	done
	grep -q "unknown option '-[0-9]" "$tmp/err" && fail "a negative value read as an option: thinp $*"
	tail -n1 "$tmp/err" | grep -q "^Try 'thinp.*--help'\.$" || { cat "$tmp/err" >&2; fail "no --help hint: thinp $*"; }
	n=$((n + 1))
}
# bad_number OPT_OR_ARG ARGS-WITH-@...: every bad value in place of @, each named with OPT
bad_number() {
	local what=$1 v
	shift
	for v in -1 -64k 99999999999999999999999 12Q '' ' 5' +5 1.5; do
		local args=("${@//@/$v}")
		case $v in
		-*) usage "$what" "'$v'" "must be ≥ 0" -- "${args[@]}" ;;
		9*) usage "$what" "'$v'" -- "${args[@]}" ;;
		*) usage "$what" "'$v'" "expected" -- "${args[@]}" ;;
		esac
	done
}

# ---- numbers: every numeric option and argument ----
bad_number --data-size pool create "$tmp/new" --data-size @
bad_number --metadata-size pool create "$tmp/new" --metadata-size @
bad_number --block-size pool create "$tmp/new" --block-size @
bad_number --low-water pool create "$tmp/new" --low-water @
bad_number --low-water pool status "$pool" --low-water=@
bad_number --data-size pool extend "$pool" --data-size=@
bad_number --metadata-size pool extend "$pool" --metadata-size @
bad_number "device id" thin create "$pool" @
bad_number "device id" thin delete "$pool" @
bad_number "device id" thin status "$pool" @
bad_number "origin device id" thin snap "$pool" 2 @
bad_number "thin device size" thin activate "$pool" 1 @
bad_number "device id" write "$pool" @ 0 10
bad_number offset read "$pool" 1 @ 10
bad_number length discard "$pool" 1 0 @
bad_number "old transaction id" set-transaction-id "$pool" @ 1
bad_number "new transaction id" set-transaction-id "$pool" 0 @
bad_number --max-reports check --max-reports @ "$pool/metadata"
bad_number --dev-id dump --dev-id @ "$pool/metadata"
bad_number --transaction-id restore --transaction-id @ -i /dev/null -o "$tmp/meta"
bad_number --data-block-size restore --data-block-size @ -i /dev/null -o "$tmp/meta"
bad_number --nr-data-blocks restore --nr-data-blocks @ -i /dev/null -o "$tmp/meta"
# the kernel backend checks them too, before it needs device-mapper
bad_number "device id" --backend kernel thin create x @
bad_number "old transaction id" --backend kernel set-transaction-id x @ 1
# limits of the type: named, with the limit
usage "'16777216'" "24-bit" -- thin create "$pool" 16777216
usage "'18446744073709551616'" "too large" -- set-transaction-id "$pool" 0 18446744073709551616
usage "--data-size" "'17179869184T'" "too large" -- pool create "$tmp/new" --data-size 17179869184T
usage "--max-reports" "'4294967296'" "too large" -- check --max-reports 4294967296 "$pool/metadata"
usage "--data-block-size" "'4294967296'" -- restore --data-block-size 4294967296 -i /dev/null -o "$tmp/meta"
usage "--metadata-snap" "'0'" -- dump --metadata-snap=0 "$pool/metadata"
usage "-m" "'-1'" "must be ≥ 0" -- check -m-1 "$pool/metadata"
usage "--block-size" "'100k'" "multiple of 64k" -- pool create "$tmp/new" --block-size 100k
usage "thin device size" "'1000'" "multiple of 512" -- thin activate "$pool" 1 1000
# sizes of 0 are refused, not taken for "not given" (which made --data-size 0 a 100G pool)
usage "--data-size" "'0'" "must be > 0" -- pool create "$tmp/new" --data-size 0
usage "--metadata-size" "'0k'" "must be > 0" -- pool create "$tmp/new" --metadata-size 0k
usage "--data-size" "'0'" "must be > 0" -- pool extend "$pool" --data-size 0
usage "--metadata-size" "'0'" "must be > 0" -- pool extend "$pool" --metadata-size=0
# dm-thin uses at most 4161600 metadata blocks of 4 KiB (DM_SM_METADATA_MAX_BLOCKS): more
# is refused with the limit named, not capped silently
usage "--metadata-size" "'17g'" "17045913600" -- pool create "$tmp/new" --metadata-size 17g
usage "--metadata-size" "'17045913601'" "17045913600" -- pool create "$tmp/new" --metadata-size 17045913601
usage "--metadata-size" "'16t'" "17045913600" -- pool extend "$pool" --metadata-size 16t
[ ! -e "$tmp/new" ] || fail "a refused pool create made $tmp/new"
"$THINP" pool create "$tmp/big" --data-size 64M --metadata-size 17045913600 ||
	fail "pool create at the metadata limit"
[[ "$("$THINP" pool status "$tmp/big")" == 0\ */4161600\ * ]] || fail "metadata at the limit: $("$THINP" pool status "$tmp/big")"
rm -rf "$tmp/big"
# thin ids are 24 bits (dm-thin's) on the IO commands too, named with the limit
for cmd in write read discard; do
	usage "device id" "'16777216'" "24-bit" "16777215" -- "$cmd" "$pool" 16777216 0 4096
done
# every size parse tells overflow from garbage, naming the value and the largest accepted
for v in 20000000t 18446744073709551616 99999999999999999999999k 16777216T; do
	usage "offset" "'$v'" "too large" "18446744073709551615" -- read "$pool" 1 "$v" 4096
	usage "--data-size" "'$v'" "too large" "18446744073709551615" -- pool create "$tmp/new" --data-size "$v"
done
for v in 1.5G 2x 12QB 4kk 4kbb; do
	usage "length" "'$v'" "expected a size" -- read "$pool" 1 0 "$v"
done

# ---- "--" ends the options ----
"$THINP" thin create -- "$pool" 2 || fail "thin create -- DIR ID"
"$THINP" thin status "$pool" -- 2 | grep -qx "0 -" || fail "thin status DIR -- ID"
usage "device id" "'-3'" "must be ≥ 0" -- thin create "$pool" -- -3
usage "unexpected argument '--fields'" -- thin status "$pool" 2 -- --fields
# after --, an option-looking word is the pool directory
rc=0
"$THINP" pool status -- --fields >/dev/null 2>"$tmp/err" || rc=$?
[ "$rc" = 1 ] && grep -q -- "--fields/data" "$tmp/err" || fail "pool status -- --fields: exit $rc: $(cat "$tmp/err")"
cp "$pool/metadata" "$tmp/-meta"
(cd "$tmp" && "$THINP" dump -- -meta) | grep -q "<superblock" || fail "dump -- -meta"
(cd "$tmp" && "$THINP" check -q -- -meta) || fail "check -- -meta"
"$THINP" thin delete "$pool" 2

# ---- unknown, ambiguous and malformed options are named ----
usage "unknown option '--frobnicate'" -- pool status "$pool" --frobnicate
usage "unknown option '-x'" -- pool status -vx "$pool"
usage "unknown option '--bogus'" -- thin create "$pool" 3 --bogus=1
usage "unknown option '--data-size'" -- thin create "$pool" 3 --data-size 1G
usage "unknown option '--force'" -- pool extend "$pool" --force
usage "ambiguous option '--meta'" -- pool create "$tmp/new" --meta 4M
usage "option '--fields' takes no value" -- pool status "$pool" --fields=1
usage "option '--data' needs a value" -- pool status "$pool" --data
usage "option '-o' needs a value" -- dump "$pool/metadata" -o
usage "unknown option '--nope'" -- write "$pool" 1 0 1 --nope
usage "unknown option '--nope'" -- read "$pool" 1 0 1 --nope
usage "unknown option '--nope'" -- discard "$pool" 1 0 1 --nope
usage "unknown option '--nope'" -- set-transaction-id "$pool" 0 1 --nope
usage "unknown option '--nope'" -- metadata-snap "$pool" reserve --nope
usage "unknown option '--nope'" -- check --nope "$pool/metadata"
# check, dump and restore take paths, not numbers, as positionals: -1 is an option there
rc=0
"$THINP" check -1 "$pool/metadata" 2>"$tmp/err" || rc=$?
[ "$rc" = 2 ] && grep -q "unknown option '-1'" "$tmp/err" || fail "check -1: exit $rc, $(cat "$tmp/err")"
usage "unknown option '--nope'" -- dump --nope "$pool/metadata"
usage "unknown option '--nope'" -- restore --nope -i /dev/null -o "$tmp/meta"
usage "unknown option '--nope'" -- --nope pool status "$pool"
usage "unknown pool subcommand 'frob'" -- pool frob
usage "unknown thin subcommand 'frob'" -- thin frob
usage "missing subcommand" -- pool
usage "invalid --backend 'sideways'" -- --backend sideways pool status "$pool"
usage "invalid --backend 'sideways'" -- pool status "$pool" --backend=sideways

# ---- --help and --version on the tool and every (sub)command ----
version=$("$THINP" --version)
[[ $version =~ ^thinp\ [0-9] ]] || fail "thinp --version: '$version'"
for cmd in "" pool "pool create" "pool status" "pool extend" "pool activate" "pool remove" \
	thin "thin create" "thin snap" "thin delete" "thin status" "thin activate" "thin remove" \
	write read discard set-transaction-id metadata-snap check dump restore; do
	# shellcheck disable=SC2086 # the (sub)command's words
	for opt in --help --version; do
		"$THINP" $cmd $opt >"$tmp/out" 2>"$tmp/err" || fail "thinp $cmd $opt: exit $?"
		[ -s "$tmp/out" ] && [ ! -s "$tmp/err" ] || fail "thinp $cmd $opt: stdout empty or stderr not"
	done
	[ "$(cat "$tmp/out")" = "$version" ] || fail "thinp $cmd --version: '$(cat "$tmp/out")'"
	# shellcheck disable=SC2086
	"$THINP" $cmd --help | grep -qi "usage" || fail "thinp $cmd --help has no usage line"
	# (--help wins over an otherwise bad line, as with GNU tools)
	# shellcheck disable=SC2086
	"$THINP" $cmd --help -- >/dev/null || fail "thinp $cmd --help --"
	[ -z "$cmd" ] || "$THINP" help "${cmd%% *}" >/dev/null || fail "thinp help ${cmd%% *}"
done
"$THINP" help pool | grep -q -- "--backend" || fail "thinp help pool does not mention --backend"

# ---- a usage error leaves everything as it was ----
before=$(sha256sum "$pool/metadata" "$pool/data" "$tmp/meta")
usage "--data-size" -- pool create "$tmp/made" --data-size -5
usage "--frob" -- pool create "$tmp/made" --data-size 64M --frob
[ ! -e "$tmp/made" ] || fail "a refused pool create made $tmp/made"
usage "--low-water" -- pool create "$pool" --force --low-water -1
usage "offset" -- write "$pool" 1 -4096 4096 <"$tmp/in"
usage "unknown option" -- write "$pool" 1 0 4096 --zap <"$tmp/in"
usage "--transaction-id" -- restore -i <("$THINP" dump "$pool/metadata") -o "$tmp/meta" --transaction-id -7
usage "--nope" -- dump "$pool/metadata" -o "$tmp/dumped.xml" --nope
[ ! -e "$tmp/dumped.xml" ] || fail "a refused dump created its output file"
usage "new transaction id" -- set-transaction-id "$pool" 0 -1
diff <(echo "$before") <(sha256sum "$pool/metadata" "$pool/data" "$tmp/meta") >&2 ||
	fail "a usage error changed the pool or the restore output"
"$THINP" read "$pool" 1 0 8192 | cmp - "$tmp/in" || fail "the pool's data changed"

echo "cli_args: all checks passed ($n usage errors)"
