#!/usr/bin/env bash
# thinp_mode=direct: fio's IO buffers are page-aligned, so the pool writes whole blocks to the
# O_DIRECT data device straight from them, as the raw peer (fio direct=1) does. With fio's
# default 16-byte-aligned buffers the pool copied every write into a buffer of its own first
# (one fresh 1 MiB buffer per 1 MiB write: a third of the write's CPU in page faults and
# memcpy). Checked with fio's buffer addresses (--debug=mem) against the address of every
# 1 MiB pwrite64 to the data file (strace -e raw=pwrite64 prints it).
source "$(dirname "$0")/lib.sh"

if ! command -v strace >/dev/null || ! strace -f -o /dev/null true 2>/dev/null; then
	echo "FAIL: strace is missing or cannot trace here (apt-get install strace; ptrace allowed)"
	exit 1
fi
truncate -s 64m "$WORK/data"
truncate -s 16m "$WORK/meta"

step "8 whole-block 1 MiB first writes, iodepth 2, thinp_mode=direct"
strace -f -e trace=pwrite64 -e raw=pwrite64 -o "$WORK/strace" \
	"$FIO" --debug=mem --name=direct --ioengine="external:$ENGINE" \
	--thinp_data="$WORK/data" --thinp_metadata="$WORK/meta" --thinp_mode=direct \
	--thinp_create=1 --thinp_block_size=64k --thinp_dev=1 --thinp_dev_size=8m \
	--thread --iodepth=2 --rw=write --bs=1m --size=8m >"$WORK/fio.out" 2>&1 || {
	cat "$WORK/fio.out"
	echo "FAIL: fio exited non-zero"
	exit 1
}
# "io_u 0x..., mem 0x...": the buffers fio hands the engine
mapfile -t bufs < <(sed -n 's/.*io_u 0x[0-9a-f]*, mem \(0x[0-9a-f]*\)$/\1/p' "$WORK/fio.out")
# "pwrite64(0x6, 0xADDR, 0x100000, OFF)": the 1 MiB data writes and the buffer each came from
mapfile -t writes < <(sed -n 's/.*pwrite64(0x[0-9a-f]*, \(0x[0-9a-f]*\), 0x100000,.*/\1/p' \
	"$WORK/strace")
echo "fio buffers: ${bufs[*]}; 1 MiB pwrite64 calls: ${#writes[@]}"
if [ "${#bufs[@]}" -ne 2 ] || [ "${#writes[@]}" -ne 8 ]; then
	cat "$WORK/fio.out"
	echo "FAIL: expected 2 fio buffers and 8 1 MiB writes to the data file"
	exit 1
fi
for b in "${bufs[@]}"; do
	if (( b % 4096 )); then
		echo "FAIL: fio buffer $b is not page-aligned (the engine must ask fio for aligned buffers in thinp_mode=direct)"
		exit 1
	fi
done
for w in "${writes[@]}"; do
	case " ${bufs[*]} " in
	*" $w "*) ;;
	*)
		echo "FAIL: a 1 MiB data write came from $w, not from a fio buffer: the pool copied it (bounce)"
		exit 1
		;;
	esac
done
echo "PASS"
