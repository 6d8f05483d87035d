#!/usr/bin/env bash
# Print the directory of a configured fio source tree whose version is exactly
# the installed fio's, fetching it first if needed.
#
#   ioengine/fio-src.sh            -> e.g. /root/.cache/thinbench/fio-src/3.33-3/fio-3.33
#   FIO_SRC=dir ioengine/fio-src.sh -> dir (checked and configured)
#
# Why: an external fio engine is a struct of callbacks that fio reads with its
# own idea of struct thread_data / io_u / ioengine_ops; fio refuses an engine
# whose ops version differs from its FIO_IOOPS_VERSION and silently misreads
# one built against another release's struct layouts. So the engine is built
# against the headers of the very fio that runs it: Debian's source package of
# the installed version (with Debian's patches), configured as Debian builds it.
#
# The source is fetched with `apt-get source` through a private apt state
# (its own deb-src lists under the cache dir, derived from the system's
# sources), so nothing in /etc/apt changes and root is not needed.
#
# Environment:
#   FIO_SRC         use this fio source tree instead of fetching one
#   FIO_SRC_CACHE   where fetched trees live
#                   (default ${XDG_CACHE_HOME:-$HOME/.cache}/thinbench/fio-src)
#   FIO             the fio binary (default: fio from PATH)
#
# Exit status: 0 with the directory on stdout; 3 when no source can be had
# (fio not installed, no network, not a Debian fio): the Makefile's plain `all`
# skips the engine then; 1 for anything else (version mismatch, configure
# failure), which always stops the build.
set -euo pipefail

say() { echo "fio-src: $*" >&2; }
unavailable() {
	say "$*"
	say "the fio engine cannot be built here; set FIO_SRC=<fio source tree of $(fio_version 2>/dev/null || echo 'the installed fio')> to use one you have"
	exit 3
}

FIO=${FIO:-fio}

fio_version() { "$FIO" --version 2>/dev/null | head -n1; }

# The version a source tree declares: FIO-VERSION-GEN's DEF_VER, or the
# `version` file release tarballs carry.
src_version() {
	local dir=$1 v=""
	if [ -f "$dir/version" ]; then
		v=$(head -n1 "$dir/version")
	elif [ -f "$dir/FIO-VERSION-GEN" ]; then
		v=$(sed -n 's/^DEF_VER=//p' "$dir/FIO-VERSION-GEN" | head -n1)
	fi
	echo "$v"
}

# Run fio's configure once (config-host.h is what the engine's compile needs).
# Debian's debian/rules configures with --disable-native --prefix=/usr (plus
# --enable-gfio --enable-libnbd, which only add GUI/NBD code and need GTK; no
# header the engine includes depends on them). The stamp is written last so an
# interrupted configure is redone.
configure_tree() {
	local dir=$1
	[ -f "$dir/.thinbench-configured" ] && [ -f "$dir/config-host.h" ] && return 0
	say "configuring $dir"
	if ! (cd "$dir" && ./configure --disable-native --prefix=/usr) >"$dir/.thinbench-configure.log" 2>&1; then
		say "fio's configure failed in $dir; its output:"
		cat "$dir/.thinbench-configure.log" >&2
		exit 1
	fi
	[ -f "$dir/config-host.h" ] || { say "configure did not produce $dir/config-host.h"; exit 1; }
	touch "$dir/.thinbench-configured"
}

check_match() {
	local dir=$1 want=$2 have
	have=$(src_version "$dir")
	if [ "$have" != "$want" ]; then
		say "refusing to build: the fio source in $dir is '${have:-unknown version}' but the installed fio is '$want'."
		say "an external engine must be built against the exact headers of the fio that loads it (fio checks FIO_IOOPS_VERSION, and struct layouts change between releases)."
		exit 1
	fi
	[ -f "$dir/fio.h" ] && [ -f "$dir/ioengines.h" ] || { say "$dir does not look like a fio source tree (no fio.h/ioengines.h)"; exit 1; }
}

want=$(fio_version) || true
[ -n "$want" ] || unavailable "'$FIO --version' failed: fio is not installed (make deps installs it)"

# ---- a tree given by the user -----------------------------------------------------------
if [ -n "${FIO_SRC:-}" ]; then
	[ -d "$FIO_SRC" ] || { say "FIO_SRC=$FIO_SRC is not a directory"; exit 1; }
	dir=$(cd "$FIO_SRC" && pwd)
	check_match "$dir" "$want"
	configure_tree "$dir"
	echo "$dir"
	exit 0
fi

# ---- Debian's source package of the installed version -----------------------------------
command -v dpkg-query >/dev/null && command -v apt-get >/dev/null ||
	unavailable "no dpkg/apt here: cannot fetch fio's source automatically"
fio_path=$(command -v "$FIO") || unavailable "$FIO is not in PATH"
fio_path=$(readlink -f "$fio_path")
pkg=$(dpkg-query -S "$fio_path" 2>/dev/null | head -n1 | cut -d: -f1) || true
[ -n "$pkg" ] || unavailable "$fio_path does not belong to a Debian package (a locally built fio?)"
debver=$(dpkg-query -W -f='${Version}' "$pkg")
srcpkg=$(dpkg-query -W -f='${source:Package}' "$pkg")
command -v dpkg-source >/dev/null || unavailable "dpkg-source is missing (package dpkg-dev; make deps installs it)"

if [ -n "${FIO_SRC_CACHE:-}" ]; then
	cache=$FIO_SRC_CACHE
else
	cache=${XDG_CACHE_HOME:-${HOME:-/nonexistent}/.cache}/thinbench/fio-src
fi
mkdir -p "$cache" 2>/dev/null || unavailable "cannot create the cache directory $cache (set FIO_SRC_CACHE)"
cache=$(cd "$cache" && pwd)
verdir="$cache/$srcpkg-$debver"

# One fetch at a time (parallel makes, concurrent CI jobs sharing a cache).
exec 9>"$cache/.lock"
flock 9

find_tree() {
	local d
	for d in "$verdir"/*/; do
		[ -f "$d/fio.h" ] && { echo "${d%/}"; return 0; }
	done
	return 1
}

if ! dir=$(find_tree); then
	say "fetching the source of $srcpkg $debver (installed: $want) with apt-get source"
	apt="$cache/.apt"
	rm -rf "$apt" "$verdir.tmp"
	mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/sources.list.d" "$verdir.tmp"
	: >"$apt/sources.list"
	# deb-src twins of every configured binary source, same suites and keys
	n=0
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		n=$((n + 1))
		sed -n -E 's/^[[:space:]]*deb[[:space:]]+/deb-src /p' "$f" >"$apt/sources.list.d/src$n.list"
	done
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		n=$((n + 1))
		sed -E 's/^Types:.*/Types: deb-src/' "$f" >"$apt/sources.list.d/src$n.sources"
	done
	aptopts=(-o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache"
		-o "Dir::Etc::SourceList=$apt/sources.list" -o "Dir::Etc::SourceParts=$apt/sources.list.d"
		-o "APT::Sandbox::User=root" -o "Acquire::Retries=2" -o "Acquire::http::Timeout=30"
		-o "Debug::NoLocking=1")
	# apt-get update only warns when a mirror is unreachable: look for the indexes
	if ! apt-get -q "${aptopts[@]}" update >"$apt/update.log" 2>&1 ||
		! compgen -G "$apt/lists/*_Sources*" >/dev/null; then
		grep -E '^(W|E):' "$apt/update.log" >&2 || cat "$apt/update.log" >&2
		unavailable "could not download the deb-src indexes of $(grep -hE '^(URIs:|deb-src)' "$apt/sources.list.d"/* 2>/dev/null | grep -o 'https\?://[^ ]*' | sort -u | tr '\n' ' ')(is the Debian archive reachable?)"
	fi
	if ! (cd "$verdir.tmp" && apt-get -q "${aptopts[@]}" source "$srcpkg=$debver") >"$apt/source.log" 2>&1; then
		cat "$apt/source.log" >&2
		unavailable "apt-get source $srcpkg=$debver failed (is that version still in the archive?)"
	fi
	rm -rf "$verdir"
	mv "$verdir.tmp" "$verdir"
	rm -rf "$apt"
	dir=$(find_tree) || { say "apt-get source produced no fio tree in $verdir"; exit 1; }
fi

check_match "$dir" "$want"
configure_tree "$dir"
echo "$dir"
