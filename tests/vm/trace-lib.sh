# Shared by tests/vm/smoke.sh (host) and tests/vm/smoke-guest.sh (guest, copied in with
# the trace): reading a differential trace (format: tests/vm/smoke.trace's header).

# bytes VALUE: 64k, 16M, 1g, 4096 -> bytes
bytes() {
	local v=$1 n=${1%[kKmMgG]}
	case $v in
	*[kK]) echo $((n << 10)) ;; *[mM]) echo $((n << 20)) ;; *[gG]) echo $((n << 30)) ;; *) echo "$v" ;;
	esac
}

# trace_ops TRACE: one line per operation, "STEP OP ARGS..." (comments and blanks dropped;
# STEP counts operations from 1, the pool line included; payloads are named after it)
trace_ops() {
	awk '{sub(/#.*/, "")} NF {print ++n, $0}' "$1"
}

# trace_live TRACE: "ID SIZE_BYTES" of every thin device alive at the end, in creation order
trace_live() {
	local step op a b c
	local -a order=()
	local -A size=()
	while read -r step op a b c _; do
		case $op in
		thin) order+=("$a") size[$a]=$(bytes "$b") ;;
		snap) order+=("$a") size[$a]=$(bytes "$c") ;;
		delete) unset "size[$a]" ;;
		esac
	done < <(trace_ops "$1")
	for a in "${order[@]}"; do
		[ -n "${size[$a]:-}" ] && echo "$a ${size[$a]}"
	done
	return 0
}

# pool_features FIELD: the pool line's feature field ("-": none; absent: skip_block_zeroing,
# Docker's loop preset) as the words of a thin-pool table line
pool_features() {
	case ${1:-skip_block_zeroing} in
	-) echo "" ;;
	*) echo "${1//,/ }" ;;
	esac
}
