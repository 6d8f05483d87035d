#!/usr/bin/env bash
# `thinp restore` on a corpus of malformed XML: verdicts and messages as recorded.
#
# gen_malformed_xml.py makes a few hundred broken (and a few odd but valid) inputs from
# valid thin_dump documents; tests/fixtures/restore-malformed/expected.tsv holds what the
# restore printed and returned for each, recorded once (RECORD=1) from the hand-written XML
# reader that came before libexpat. For every input, under `timeout` so that a hang fails:
#   - rejected before: still exit 1 (no signal, no sanitizer report); the output's superblock
#     block is zeroed (it held valid metadata before: restore zeroes it on any failure); the
#     first line of stderr is the same when it is about the content (attributes, structure),
#     or starts the same ("thinp restore: INPUT: line N: ") when it is about the XML syntax
#     (those may use libexpat's words);
#   - accepted before: still exit 0, the same first line on stderr (warnings), and
#     `thinp dump` of the result is the same as before (its sha256 is recorded); without a
#     warning, `thinp check` finds nothing wrong with it;
#   - divergences.tsv lists the inputs whose verdict or message changed on purpose (not
#     well-formed XML the old reader let through or judged otherwise); each must exit as
#     listed there with a "line N: " message, and thin_restore must agree with the verdict.
# thin_restore (0.9.0) is run on every input as a second witness; the verdicts that differ
# from ours are counted and listed (information only: thin_restore is far less strict).
#
# Then EXPLORE (80) inputs of a corpus of a random seed (printed; EXPLORE_SEED repeats it)
# are held to what must always be true: no hang or crash, exit 0 or 1, "line N: " in the
# message, a rejected output zeroed, one accepted without a warning clean for `thinp check`.
#
# Env: THINP (the CLI under test); SEED is fixed by the expectations (printed);
# RECORD=1 rewrites expected.tsv with the current THINP; TIMEOUT seconds per run (60).
set -euo pipefail

: "${THINP:?set THINP to the thinp CLI under test}"
for t in python3 sha256sum timeout; do
	command -v "$t" >/dev/null || { echo "missing $t" >&2; exit 1; }
done
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
fix=$here/../fixtures/restore-malformed
expected=$fix/expected.tsv
divergences=$fix/divergences.tsv
TIMEOUT=${TIMEOUT:-60}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

SEED=$(sed -n 's/^# seed \([0-9]*\)$/\1/p' "$expected" 2>/dev/null || true)
SEED=${SEED:-20261201}
echo "seed: $SEED (fixed by $(basename "$expected"))"

python3 "$here/gen_malformed_xml.py" "$SEED" "$tmp/in" "$fix/base-pool.xml" >"$tmp/names"
echo "corpus: $(wc -l <"$tmp/names") inputs"
declare -A input_sum
while read -r sum file; do
	input_sum[${file##*/}]=${sum:0:16}
done < <(cd "$tmp/in" && sha256sum -- *.xml)

# A valid metadata file that every restore overwrites: a failure must not leave it valid.
truncate -s 8M "$tmp/template.bin" "$tmp/witness.bin"
python3 "$here/gen_thin_xml.py" many 1 >"$tmp/valid.xml"
"$THINP" restore -q -i "$tmp/valid.xml" -o "$tmp/template.bin"

# Syntax messages (the reader's own words about raw XML) may change wording; the rest may not.
syntax_re="is not closed with '|unexpected end of file in |expected .*, found '|is too long$"
syntax_re+="|malformed entity reference|unknown entity '|value must be quoted|unterminated value"
syntax_re+="|'<' is not allowed in a value|value longer than|expected '>' after '/'"
syntax_re+="|unexpected end of file inside <|expected a space before|has too many attributes"
syntax_re+="|: attribute .* appears twice|expected '=' after attribute|read error"
syntax_re+="|unexpected text starting with|DOCTYPE with an internal subset|unterminated DOCTYPE"
syntax_re+="|CDATA sections and declarations|^</[^ ]*: expected '>'|unexpected bytes at the start"

# first_line FILE INPUT META: stderr's first line, paths replaced, bytes made printable
first_line() {
	local line=
	IFS= read -r line <"$1" || true
	line=${line//"$2"/INPUT}
	printf '%s\n' "${line//"$3"/META}" | cat -vT
}

sanitizer_report() {
	grep -aq -e 'Sanitizer' -e 'runtime error:' "$1"
}

# run_restore NAME: sets rc, msg, dumpsum (sha256 of `thinp dump`, or -)
run_restore() {
	local in=$tmp/in/$1 meta=$tmp/meta.bin
	cp "$tmp/template.bin" "$meta"
	rc=0
	timeout "$TIMEOUT" "$THINP" restore -i "$in" -o "$meta" >/dev/null 2>"$tmp/err" || rc=$?
	msg=$(first_line "$tmp/err" "$in" "$meta")
	dumpsum=-
	if [ "$rc" -eq 0 ]; then
		dumpsum=$("$THINP" dump "$meta" 2>/dev/null | sha256sum | cut -c1-16)
	fi
}

if [ "${RECORD:-}" = 1 ]; then
	{
		echo "# restore_malformed.sh expectations, recorded from the hand-written XML reader"
		echo "# (before libexpat) with RECORD=1. Columns, tab-separated: input, sha256 of the"
		echo "# input (first 16), exit status, class (ok / content / syntax), sha256 of"
		echo "# \`thinp dump\` of the result (first 16, or -), first line of stderr (cat -vT)."
		echo "# seed $SEED"
		while read -r name; do
			run_restore "$name"
			class=ok
			if [ "$rc" -ne 0 ]; then
				class=content
				if grep -qE -e "$syntax_re" <<<"${msg#*line [0-9]*: }"; then
					class=syntax
				fi
			fi
			sum=${input_sum[$name]}
			printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$sum" "$rc" "$class" "$dumpsum" "$msg"
		done <"$tmp/names"
	} >"$tmp/expected.new"
	mv "$tmp/expected.new" "$expected"
	echo "recorded $(grep -vc '^#' "$expected") expectations in $expected"
	exit 0
fi

failures=0
fail() {
	echo "FAIL: $*" >&2
	failures=$((failures + 1))
}

declare -A div_rc div_why
if [ -f "$divergences" ]; then
	while IFS=$'\t' read -r name rc why; do
		case $name in '#'* | '') continue ;; esac
		div_rc[$name]=$rc
		div_why[$name]=$why
	done <"$divergences"
fi

n=0 n_ok=0 n_content=0 n_syntax=0 n_div=0 n_witness_differs=0
witness_list=()
zero_block=$tmp/zero
head -c 4096 /dev/zero >"$zero_block"
while IFS=$'\t' read -r name sum want_rc class want_dump want_msg; do
	case $name in '#'* | '') continue ;; esac
	n=$((n + 1))
	in=$tmp/in/$name
	if [ "${input_sum[$name]:-}" != "$sum" ]; then
		fail "$name: the generator no longer makes the recorded input (seed $SEED)"
		continue
	fi
	run_restore "$name"
	if [ "$rc" -eq 124 ]; then
		fail "$name: restore hung (killed after ${TIMEOUT}s)"
		continue
	fi
	if [ "$rc" -gt 1 ] || sanitizer_report "$tmp/err"; then
		fail "$name: restore crashed (exit $rc): $(head -3 "$tmp/err" | cat -v)"
		continue
	fi
	# witness
	wrc=0
	timeout "$TIMEOUT" thin_restore -q -i "$in" -o "$tmp/witness.bin" >/dev/null 2>&1 || wrc=$?
	if [ $((wrc != 0)) -ne $((rc != 0)) ]; then
		n_witness_differs=$((n_witness_differs + 1))
		witness_list+=("$name(thinp $rc, thin_restore $wrc)")
	fi
	if [ "$rc" -ne 0 ]; then
		if ! cmp -s -n 4096 "$tmp/meta.bin" "$zero_block"; then
			fail "$name: rejected, but the output's superblock block is not zeroed"
		fi
	fi
	if [ -n "${div_rc[$name]:-}" ]; then
		n_div=$((n_div + 1))
		if [ "$rc" != "${div_rc[$name]}" ]; then
			fail "$name: listed as a divergence with exit ${div_rc[$name]}, got $rc: $msg"
		elif [ $((wrc != 0)) -ne $((rc != 0)) ] && [[ ${div_why[$name]} != stricter* ]]; then
			# (rows whose reason starts "stricter" are refused on purpose although
			# thin_restore takes them: it writes metadata thinp check rejects)
			fail "$name: divergence from the old reader, but thin_restore disagrees too (exit $wrc)"
		elif [ "$rc" -ne 0 ] && ! grep -q '^thinp restore: INPUT: line [0-9]*: ' <<<"$msg"; then
			fail "$name: rejected without 'thinp restore: INPUT: line N: ': '$msg'"
		else
			echo "divergence (${div_why[$name]}): $name: was exit $want_rc, now $rc: $msg"
		fi
		continue
	fi
	if [ "$rc" != "$want_rc" ]; then
		fail "$name: exit $rc, recorded $want_rc (was: $want_msg; now: $msg)"
		continue
	fi
	case $class in
	ok)
		n_ok=$((n_ok + 1))
		[ "$dumpsum" = "$want_dump" ] || fail "$name: accepted, but the metadata differs from before"
		[ "$msg" = "$want_msg" ] || fail "$name: stderr was '$want_msg', now '$msg'"
		if [ ! -s "$tmp/err" ] && ! "$THINP" check "$tmp/meta.bin" >/dev/null 2>"$tmp/check"; then
			fail "$name: accepted, but thinp check rejects the result: $(head -3 "$tmp/check")"
		fi
		;;
	content)
		n_content=$((n_content + 1))
		[ "$msg" = "$want_msg" ] || fail "$name: message was '$want_msg', now '$msg'"
		;;
	syntax)
		n_syntax=$((n_syntax + 1))
		want_prefix=$(grep -o '^thinp restore: INPUT: line [0-9]*: ' <<<"$want_msg" || true)
		got_prefix=$(grep -o '^thinp restore: INPUT: line [0-9]*: ' <<<"$msg" || true)
		if [ -z "$got_prefix" ]; then
			fail "$name: syntax error without 'thinp restore: INPUT: line N: ': '$msg'"
		elif [ "$got_prefix" != "$want_prefix" ]; then
			fail "$name: the message was '$want_msg', now '$msg' (another line)"
		fi
		;;
	*) fail "$name: unknown class '$class' in $(basename "$expected")" ;;
	esac
done <"$expected"

# A fresh corpus from a random seed: no recorded verdicts, only what must always hold
# (no hang, no crash, exit 0 or 1, a rejected output zeroed, one accepted without a warning
# checks clean).
EXPLORE=${EXPLORE:-80}
if [ "$EXPLORE" -gt 0 ]; then
	xseed=${EXPLORE_SEED:-$(( (RANDOM << 15) | RANDOM ))}
	echo "exploring $EXPLORE inputs of seed $xseed (rerun with EXPLORE_SEED=$xseed)"
	rm -rf "$tmp/in"
	python3 "$here/gen_malformed_xml.py" "$xseed" "$tmp/in" "$fix/base-pool.xml" >"$tmp/xnames"
	x_ok=0 x_rej=0
	while read -r name; do
		run_restore "$name"
		if [ "$rc" -eq 124 ]; then
			fail "explore $xseed: $name: restore hung (killed after ${TIMEOUT}s)"
		elif [ "$rc" -gt 1 ] || sanitizer_report "$tmp/err"; then
			fail "explore $xseed: $name: restore crashed (exit $rc): $(head -3 "$tmp/err")"
		elif [ "$rc" -eq 1 ]; then
			x_rej=$((x_rej + 1))
			cmp -s -n 4096 "$tmp/meta.bin" "$zero_block" ||
				fail "explore $xseed: $name: rejected, but the superblock block is not zeroed"
			grep -av '^thinp restore: warning: ' "$tmp/err" | head -n 1 |
				grep -aq "^thinp restore: .*: line [0-9]*: " ||
				fail "explore $xseed: $name: message without 'line N: ': $(head -3 "$tmp/err")"
		else
			x_ok=$((x_ok + 1))
			# warnings (times later than the pool's ...) announce what check reports
			if [ ! -s "$tmp/err" ] && ! "$THINP" check "$tmp/meta.bin" >/dev/null 2>"$tmp/check"; then
				fail "explore $xseed: $name: accepted, but thinp check rejects the result: $(head -3 "$tmp/check")"
			fi
		fi
	done < <(python3 -c 'import random, sys
names = [l.strip() for l in open(sys.argv[1])]
random.Random(int(sys.argv[2])).shuffle(names)
print("\n".join(names[:int(sys.argv[3])]))' "$tmp/xnames" "$xseed" "$EXPLORE")
	echo "explored: $x_ok accepted, $x_rej rejected"
fi

[ "$n" -eq "$(wc -l <"$tmp/names")" ] ||
	fail "the generator made $(wc -l <"$tmp/names") inputs, $n are recorded"
echo "verdicts: $n inputs: $n_ok accepted, $n_content rejected for content," \
	"$n_syntax rejected for XML syntax," \
	"$n_div known divergences"
echo "thin_restore 0.9.0 (witness, information only): $n_witness_differs verdicts differ from thinp restore"
printf '  %s\n' "${witness_list[@]:0:400}"
if [ "$failures" -ne 0 ]; then
	echo "$failures failure(s) (seed $SEED)" >&2
	exit 1
fi
echo "all restore_malformed checks passed (seed $SEED)"
