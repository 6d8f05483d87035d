#!/bin/bash
# thinp docker: options and refusals with Docker's exact texts, as root.
#   - bad --storage-opt values (unknown option, bad size, bad bool, min_free_space forms,
#     deferred deletion without removal): exit 2, nothing made;
#   - a failed init leaves the home as it was (a new ROOT removed; an existing one keeps the
#     options it had, and its commands keep working);
#   - dm.min_free_space: a layer create refused with Docker's text when free data blocks
#     fall below the threshold (and allowed again at 0%);
#   - a missing layer: get/create/device of an unknown id; a duplicate id; remove of an
#     unknown id succeeds (Docker);
#   - dm.basesize grown on a second init: the base's file system grows (resize2fs), new
#     layers get the new size, old layers keep theirs; smaller is refused;
#   - create --size: a container larger than its image, its file system grown; smaller refused;
#   - resize (device_tool's sizes) with a container mounted: its writes go on after the grow;
#   - dm.blocksize, dm.mkfsarg, dm.mountopt reach the pool, mkfs and mount.
set -euo pipefail
THINP=${THINP:-impl/cli/thinp}
THINP=$(realpath "$THINP")
[ "$(id -u)" = 0 ] || { echo "FAIL: needs root (mounts, loop devices, FUSE)"; exit 1; }
tmp=$(mktemp -d)
roots=()
cleanup() {
	local r
	for r in "${roots[@]}"; do
		"$THINP" docker cleanup "$r" >/dev/null 2>&1 || true
		grep -o " $r/[^ ]*" /proc/self/mountinfo 2>/dev/null | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# expect RC PATTERN... -- ARGS...: `thinp docker ARGS` exits RC with each fixed string on stderr
expect() {
	local want=$1 pats=()
	shift
	while [ "$1" != -- ]; do pats+=("$1"); shift; done
	shift
	local rc=0
	"$THINP" docker "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
	[ "$rc" = "$want" ] || { cat "$tmp/err" >&2; fail "exit $rc (want $want): thinp docker $*"; }
	local p
	for p in "${pats[@]}"; do
		grep -qF -- "$p" "$tmp/err" || { cat "$tmp/err" >&2; fail "no '$p' in the message of: thinp docker $*"; }
	done
}

# ---- bad options: usage errors, nothing created
bad=$tmp/bad
expect 2 "devmapper: Unknown option dm.foo" -- init "$bad" --storage-opt dm.foo=1
expect 2 "devmapper: Unknown option dm.foo" -- init "$bad" --storage-opt DM.FOO=1
expect 2 "invalid size: 'ten'" -- init "$bad" --storage-opt dm.basesize=ten
expect 2 'strconv.ParseBool: parsing "maybe": invalid syntax' -- init "$bad" --storage-opt dm.blkdiscard=maybe
expect 2 "devmapper: Option dm.min_free_space requires % suffix" -- init "$bad" --storage-opt dm.min_free_space=10
expect 2 "devmapper: Invalid value 100% for option dm.min_free_space" -- init "$bad" --storage-opt dm.min_free_space=100%
expect 2 "devmapper: Unsupported filesystem btrfs" -- init "$bad" --storage-opt dm.fs=btrfs
expect 2 "Unable to parse key/value option: dm.basesize" -- init "$bad" --storage-opt dm.basesize
expect 2 "Deferred deletion can not be enabled as deferred removal is not enabled" -- \
	init "$bad" --storage-opt dm.use_deferred_deletion=true
[ -e "$bad" ] && fail "a refused init left $bad behind"
expect 2 "missing subcommand" -- 
expect 2 "unknown docker subcommand 'frob'" -- frob
expect 2 "missing ROOT" -- ls
expect 2 "missing ID" -- get "$bad"
expect 2 "Invalid size: Unknown size unit: qb" -- resize "$bad" 10qb
expect 1 "run 'thinp docker init" -- ls "$tmp/never-initialised"
"$THINP" docker --help | grep -q "thinp docker init" || fail "docker --help"
"$THINP" docker init --help | grep -q "dm.min_free_space" || fail "docker init --help"

# a failed first init leaves nothing: here the kernel backend (no device-mapper on this host)
if [ ! -e /dev/mapper/control ]; then
	expect 1 "the kernel has no device-mapper" -- init --backend kernel "$tmp/nodm"
	[ ! -e "$tmp/nodm" ] || fail "a failed first init left $(find "$tmp/nodm" | tr '\n' ' ')"
fi

# ---- a small pool: 16 MiB of data (256 blocks of 64 KiB), min_free_space 50%
R=$tmp/small
roots+=("$R")
"$THINP" docker init "$R" --storage-opt dm.fs=ext4 --storage-opt dm.basesize=16M \
	--storage-opt dm.loopdatasize=16M --storage-opt dm.loopmetadatasize=16M \
	--storage-opt dm.min_free_space=50% --storage-opt dm.mkfsarg=-Lthinbase \
	--storage-opt dm.mkfsarg=-m0 --storage-opt dm.mountopt=noatime >/dev/null 2>&1 || fail "init small"
"$THINP" docker create "$R" l1 || fail "create l1"
p=$("$THINP" docker get "$R" l1)
grep " $R/mnt/l1 " /proc/self/mountinfo | grep -q noatime || fail "dm.mountopt not applied"
[ "$(blkid -s LABEL -o value "$(findmnt -n -o SOURCE "$R/mnt/l1")")" = thinbase ] || fail "dm.mkfsarg not applied"
# fill: more than half the pool's blocks
dd if=/dev/urandom of="$p/fill" bs=1M count=8 status=none
sync -f "$p"
"$THINP" docker put "$R" l1
used=$("$THINP" pool status "$R/devicemapper" --fields | sed -n "s/^used_data_blocks=//p")
free=$((256 - used))
expect 1 "devmapper: Thin Pool has $free free data blocks which is less than minimum required 128 free data blocks. Create more free space in thin pool or use dm.min_free_space option to change behavior" -- \
	create "$R" l2 --parent l1
"$THINP" docker exists "$R" l2 >/dev/null && fail "a refused create left l2"
# ---- missing layers, duplicates
expect 1 "devmapper: Unknown device nothere" -- get "$R" nothere
expect 1 "devmapper: Unknown device nothere" -- create "$R" l3 --parent nothere
expect 1 "devmapper: Unknown device nothere" -- device "$R" nothere
expect 1 "devmapper: device l1 already exists. Deleted=false" -- create "$R" l1
expect 0 -- remove "$R" nothere
"$THINP" docker exists "$R" nothere >"$tmp/out" && fail "exists of a missing id exited 0"
grep -qx false "$tmp/out" || fail "exists printed $(cat "$tmp/out")"
expect 2 "invalid" -- create "$R" ../escape
expect 2 "invalid" -- create "$R" .hidden
"$THINP" docker cleanup "$R"
# min_free_space 0% turns the check off (options apply at the next init, as at a daemon start)
"$THINP" docker init "$R" --storage-opt dm.fs=ext4 --storage-opt dm.basesize=16M \
	--storage-opt dm.loopdatasize=16M --storage-opt dm.loopmetadatasize=16M \
	--storage-opt dm.min_free_space=0% >/dev/null 2>&1 || fail "re-init small with 0%"
"$THINP" docker create "$R" l2 --parent l1 || fail "create with dm.min_free_space=0%"
"$THINP" docker cleanup "$R"

# ---- base growth, container size, pool resize with a mounted container
R=$tmp/grow
roots+=("$R")
"$THINP" docker init "$R" --storage-opt dm.fs=ext4 --storage-opt dm.basesize=64M \
	--storage-opt dm.loopdatasize=256M --storage-opt dm.loopmetadatasize=16M \
	--storage-opt dm.blocksize=128k >/dev/null 2>&1 || fail "init grow"
"$THINP" docker info "$R" 2>/dev/null | grep -qx "  Pool Blocksize: 131.1kB" || fail "dm.blocksize=128k: $("$THINP" docker info "$R" 2>/dev/null | grep Blocksize)"
"$THINP" docker create "$R" old
expect 1 "devmapper: Container size cannot be smaller than 67.11MB" -- create "$R" small --parent old --size 32M
"$THINP" docker create "$R" big --parent old --size 96M || fail "create --size 96M"
p=$("$THINP" docker get "$R" big)
fs_kb=$(df -k --output=size "$R/mnt/big" | tail -1)
[ "$fs_kb" -gt 80000 ] || fail "big's file system was not grown: ${fs_kb}k"
"$THINP" docker put "$R" big
"$THINP" docker cleanup "$R"
cp "$R/thinbench/options" "$tmp/options.before"
expect 1 "devmapper: Base device size cannot be smaller than 67.11MB" -- \
	init "$R" --storage-opt dm.basesize=32M --storage-opt dm.blocksize=128k
# a failed init leaves the home as it was: its recorded options, and every command working
cmp -s "$R/thinbench/options" "$tmp/options.before" ||
	fail "a failed init changed the recorded options: $(cat "$R/thinbench/options")"
"$THINP" docker ls "$R" >"$tmp/ls" 2>"$tmp/err" || { cat "$tmp/err" >&2; fail "ls after a failed init"; }
grep -qx old "$tmp/ls" || fail "ls after a failed init does not list old"
"$THINP" docker cleanup "$R" || fail "cleanup after a failed init"
"$THINP" docker init "$R" --storage-opt dm.basesize=128M --storage-opt dm.blocksize=128k \
	--storage-opt dm.loopdatasize=256M --storage-opt dm.loopmetadatasize=16M >/dev/null 2>&1 ||
	fail "init with a larger dm.basesize"
"$THINP" docker info "$R" 2>/dev/null | grep -qx "  Base Device Size: 134.2MB" || fail "base size not 128M in info"
"$THINP" docker create "$R" new
[ "$("$THINP" docker device "$R" new --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["DeviceSize"])')" = 134217728 ] ||
	fail "a new layer does not get the grown base size"
[ "$("$THINP" docker device "$R" old --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["DeviceSize"])')" = 67108864 ] ||
	fail "an old layer changed size"
p=$("$THINP" docker get "$R" new)
fs_kb=$(df -k --output=size "$R/mnt/new" | tail -1)
[ "$fs_kb" -gt 110000 ] || fail "the base's file system was not grown: ${fs_kb}k"
# resize the pool (device_tool's units: 512MB = 512 MiB) while new is mounted and written
dd if=/dev/urandom of="$p/before" bs=1M count=8 status=none
expect 1 "devmapper: Can't shrink file" -- resize "$R" 128M
"$THINP" docker resize "$R" 512MB || fail "resize 512MB"
[ "$(stat -c %s "$R/devicemapper/data")" = $((512 << 20)) ] || fail "data file not grown to 512 MiB"
"$THINP" docker info "$R" 2>/dev/null | grep -qx "  Data Space Total: 536.9MB" || fail "info after resize"
dd if=/dev/urandom of="$p/after" bs=1M count=8 status=none
sync -f "$p"
sha=$(cat "$p/before" "$p/after" | sha256sum)
"$THINP" docker put "$R" new
p=$("$THINP" docker get "$R" new)
[ "$(cat "$p/before" "$p/after" | sha256sum)" = "$sha" ] || fail "writes across the resize lost"
"$THINP" docker put "$R" new
"$THINP" docker cleanup "$R"
"$THINP" check "$R/devicemapper/metadata" >/dev/null || fail "thinp check after the grow/resize"

# ---- the daemon's deferred-deletion worker (Docker's ticks every 30 s; 1 s here): a device
# marked deleted while open goes without any prune once its last opener closes
R=$tmp/worker
roots+=("$R")
"$THINP" docker init "$R" --storage-opt dm.fs=ext4 --storage-opt dm.basesize=16M \
	--storage-opt dm.loopdatasize=64M --storage-opt dm.loopmetadatasize=16M \
	--storage-opt dm.use_deferred_removal=true --storage-opt dm.use_deferred_deletion=true \
	>/dev/null 2>&1 || fail "init worker"
"$THINP" docker create "$R" w1
p=$(THINP_DOCKER_DELETION_INTERVAL=1 "$THINP" docker get "$R" w1) # starts the daemon
echo data >"$p/f"
exec 8<"$p/f"
"$THINP" docker put "$R" w1
"$THINP" docker remove "$R" w1 || fail "remove w1 (deferred)"
"$THINP" docker info "$R" 2>/dev/null | grep -qx "  Deferred Deleted Device Count: 1" || fail "w1 not marked deleted"
exec 8<&-
tries=0
until ! "$THINP" docker exists "$R" w1 >/dev/null; do
	tries=$((tries + 1)); [ $tries -le 3000 ] || fail "the worker never deleted w1"
	sleep 0.1
done
"$THINP" docker info "$R" 2>/dev/null | grep -qx "  Deferred Deleted Device Count: 0" || fail "count after the worker"
"$THINP" docker cleanup "$R"
echo "PASS"
