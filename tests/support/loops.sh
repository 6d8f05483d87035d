# Shell helpers shared by the tests that attach loop devices (sourced, not run).

# loops_over DIR: "loopN BACKING_FILE" for each loop device whose backing file is under DIR
# (none: prints nothing)
loops_over() {
	local f b
	for f in /sys/block/loop*/loop/backing_file; do
		[ -r "$f" ] || continue
		b=$(cat "$f" 2>/dev/null) || continue
		case $b in "$1"/*) echo "$(basename "$(dirname "$(dirname "$f")")") $b" ;; esac
	done
}
