# shellcheck shell=bash disable=SC2034  # (sourced: NOBODY_RUN, NOBODY_ENV are for the caller)
# Shell helpers for the test steps that drop root to nobody (uid 65534) with setpriv (sourced,
# not run).
#
# A checkout under a directory nobody cannot enter (mktemp -d makes them 0700) is out of
# nobody's reach: its steps would fail with "Permission denied" before testing anything. So
# what such a step runs is staged where nobody can read it: kept in place when it already can,
# otherwise copied under a world-readable scratch dir.

NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups --)

# nobody_can_read PATH: nobody can read PATH (and enter every directory above it)
nobody_can_read() {
	"${NOBODY[@]}" test -r "$1" 2>/dev/null
}

# nobody_scratch: a fresh directory nobody can write into, made under $BUILD when nobody can
# reach it, else under ${TMPDIR:-/tmp}; prints its path (the caller removes it)
nobody_scratch() {
	local base=${BUILD:-} d
	if [ -z "$base" ] || ! "${NOBODY[@]}" test -x "$base" 2>/dev/null; then
		base=${TMPDIR:-/tmp}
	fi
	d=$(mktemp -d "$base/nobody.XXXXXX")
	chmod 1777 "$d"
	"${NOBODY[@]}" test -w "$d" || {
		echo "FAIL: nobody cannot write into $d (its parents' modes: $(namei -m "$d" | tr -s ' ' | tr '\n' ';'))" >&2
		return 1
	}
	echo "$d"
}

# nobody_stage DIR FILE...: for each FILE, the path nobody reads it at, one per line: FILE
# itself when nobody can read it, else a copy under DIR (a directory is copied whole)
nobody_stage() {
	local dir=$1 f dest
	shift
	for f in "$@"; do
		if nobody_can_read "$f"; then
			echo "$f"
			continue
		fi
		dest=$dir/staged/$(basename "$(dirname "$f")")/$(basename "$f")
		mkdir -p "$(dirname "$dest")"
		cp -a "$f" "$dest"
		chmod -R a+rX "$dir/staged"
		echo "$dest"
	done
}

# nobody_runner DIR ROOT: stage scenarios/ and the binaries the runner runs (THINP,
# THINP_ENGINE, THINP_FILL) for nobody; sets NOBODY_RUN (scenarios/run) and NOBODY_ENV (env
# assignments for the binaries) for "${NOBODY[@]}" env "${NOBODY_ENV[@]}" "$NOBODY_RUN" ...
nobody_runner() {
	local dir=$1 root=$2 scen
	scen=$(nobody_stage "$dir" "$root/scenarios")
	NOBODY_RUN=$scen/run
	NOBODY_ENV=()
	local v p
	for v in THINP THINP_ENGINE THINP_FILL; do
		p=${!v:-}
		[ -n "$p" ] || continue
		NOBODY_ENV+=("$v=$(nobody_stage "$dir" "$(readlink -f "$p")")")
	done
}
