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
# "pwrite64(0x6, 0xADDR, 0xLEN, 0xOFF": every pwrite64 with the buffer it came from. Two IOs
# in flight allocate their blocks side by side, so one 1 MiB write can land in two runs of
# the data file (two pwrite64s from one fio buffer, at its start and further in): what
# matters is where each data write's bytes come from, and that they add up to the job's.
python3 - "$WORK/strace" "${bufs[@]}" <<'PY' || { cat "$WORK/fio.out"; exit 1; }
import re, sys
bufs = [int(b, 16) for b in sys.argv[2:]]
calls = [tuple(int(x, 16) for x in m.groups()) for m in
         re.finditer(r"pwrite64\((0x[0-9a-f]+), (0x[0-9a-f]+), (0x[0-9a-f]+), (0x[0-9a-f]+|0)",
                     open(sys.argv[1]).read())]
print(f"fio buffers: {' '.join(hex(b) for b in bufs)}; pwrite64 calls: {len(calls)}")
if len(bufs) != 2 or not calls:
    sys.exit("FAIL: expected 2 fio buffers and the data file's pwrite64 calls")
data_fd = max(calls, key=lambda c: c[2])[0]  # (the 1 MiB writes' file)
data = [c for c in calls if c[0] == data_fd]
for fd, addr, ln, off in data:
    if not any(b <= addr and addr + ln <= b + (1 << 20) for b in bufs):
        sys.exit(f"FAIL: a {ln}-byte data write at offset {off} came from {addr:#x}, not from "
                 "a fio buffer: the pool copied it (bounce)")
    if addr % 4096:
        sys.exit(f"FAIL: data write from {addr:#x}: not page-aligned")
total = sum(c[2] for c in data)
print(f"data writes: {len(data)}, {total} bytes, every one from a fio buffer")
if total != 8 << 20:
    sys.exit(f"FAIL: the data writes hold {total} bytes, want {8 << 20} (8 x 1 MiB)")
PY
for b in "${bufs[@]}"; do
	if (( b % 4096 )); then
		echo "FAIL: fio buffer $b is not page-aligned (the engine must ask fio for aligned buffers in thinp_mode=direct)"
		exit 1
	fi
done
echo "PASS"
