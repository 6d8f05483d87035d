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

# cli_apply THINP POOL TRACE PAYLOAD_DIR [AFTER]: apply TRACE (its host form, where a discard
# may list several bios) to the userspace pool POOL with one thinp command per operation;
# AFTER, a command, runs after each operation with its STEP and OP. Returns 1 on a failure.
cli_apply() {
	# (locals are prefixed: AFTER sees the caller's variables, bash scoping is dynamic)
	local ca_thinp=$1 ca_pool=$2 ca_trace=$3 ca_payloads=$4 ca_after=${5:-}
	local ca_step ca_op ca_a ca_b ca_c ca_d ca_e
	while read -r ca_step ca_op ca_a ca_b ca_c ca_d ca_e; do
		case $ca_op in
		pool)
			# shellcheck disable=SC2046 # one option per feature word
			"$ca_thinp" pool create "$ca_pool" --data-size "$ca_a" --metadata-size "$ca_b" \
				--block-size "$ca_c" --low-water "$ca_d" \
				$(for f in $(pool_features "${ca_e:-}"); do echo "--${f//_/-}"; done)
			;;
		thin) "$ca_thinp" thin create "$ca_pool" "$ca_a" ;;
		snap) "$ca_thinp" thin snap "$ca_pool" "$ca_a" "$ca_b" ;;
		delete) "$ca_thinp" thin delete "$ca_pool" "$ca_a" ;;
		write) "$ca_thinp" write "$ca_pool" "$ca_a" "$ca_b" "$ca_c" <"$ca_payloads/$ca_step.bin" ;;
		flush) ;; # every thinp command commits when it closes the pool
		discard) # one or more bios: OFF LEN [OFF LEN ...]
			# shellcheck disable=SC2086 # the bios' numbers, split
			set -- $ca_b $ca_c $ca_d $ca_e
			while [ $# -ge 2 ]; do
				"$ca_thinp" discard "$ca_pool" "$ca_a" "$1" "$2" || return 1
				shift 2
			done
			;;
		*) echo "cli_apply: unknown operation '$ca_op' in $ca_trace" >&2; return 1 ;;
		esac || { echo "cli_apply: step $ca_step ($ca_op $ca_a) failed" >&2; return 1; }
		[ -z "$ca_after" ] || "$ca_after" "$ca_step" "$ca_op"
	done < <(trace_ops "$ca_trace")
}
