# Shared helpers of ci/vm/build.sh and ci/vm/run.sh (sourced, not run).
# shellcheck shell=bash

# shellcheck disable=SC2034 # used by the scripts that source this file
VM_CACHE=${THINBENCH_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/thinbench/vm}

vm_die() {
	echo "vm: error: $*" >&2
	exit 1
}

vm_log() { echo "vm: $*" >&2; }

# vm_need_cmd CMD PACKAGE: clear error when a host tool is missing.
vm_need_cmd() {
	command -v "$1" >/dev/null 2>&1 ||
		vm_die "'$1' not found (Debian package $2); run ci/vm/build.sh as root to install it"
}

# vm_add_file ROOT PATH: copy a host file into the image tree ROOT at its real
# (symlink-resolved) location, and make PATH's canonical name a symlink to it when
# the two differ (sonames, merged /usr: never store a file twice).
vm_add_file() {
	local root=$1 p=$2 real dir name
	real=$(readlink -f "$p") || vm_die "cannot resolve $p"
	[ -f "$real" ] || vm_die "not a file: $p"
	dir=$(readlink -f "$(dirname "$p")")
	name=$(basename "$p")
	if [ ! -e "$root$real" ]; then
		mkdir -p "$root$(dirname "$real")"
		cp "$real" "$root$real"
	fi
	if [ "$dir/$name" != "$real" ] && [ ! -e "$root$dir/$name" ] && [ ! -L "$root$dir/$name" ]; then
		mkdir -p "$root$dir"
		ln -s "$real" "$root$dir/$name"
	fi
}

# vm_add_libs ROOT BIN...: the shared-library closure (ldd) of each binary.
vm_add_libs() {
	local root=$1 b lib out
	shift
	for b in "$@"; do
		if ! out=$(LC_ALL=C ldd "$b" 2>&1); then
			case $out in
			*"not a dynamic executable"* | *"statically linked"*) continue ;;
			*) vm_die "ldd $b failed: $out" ;;
			esac
		fi
		if grep -q "not found" <<<"$out"; then
			vm_die "ldd $b: missing libraries: $(grep 'not found' <<<"$out" | tr -s ' \t' ' ')"
		fi
		while read -r lib; do
			[ -n "$lib" ] && vm_add_file "$root" "$lib"
		done < <(awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' <<<"$out")
	done
}

# vm_add_closure ROOT BIN...: each binary (at its host path) and its library closure.
vm_add_closure() {
	local root=$1 b
	shift
	for b in "$@"; do
		vm_add_file "$root" "$b"
		vm_add_libs "$root" "$b"
	done
}

# vm_pack_cpio ROOT OUT: an uncompressed newc archive (the kernel unpacks it fastest).
vm_pack_cpio() {
	(cd "$1" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0) >"$2"
}

# vm_copy_scenarios REPO DEST: the runner (REPO/scenarios) into DEST for a guest's --file,
# without the run dirs or caches a checkout may hold.
vm_copy_scenarios() {
	local f
	mkdir -p "$2"
	(cd "$1/scenarios" && find . -name __pycache__ -prune -o -type f -print) | while read -r f; do
		mkdir -p "$2/$(dirname "$f")"
		cp "$1/scenarios/$f" "$2/$f"
	done
}
