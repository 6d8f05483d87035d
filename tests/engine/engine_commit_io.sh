#!/usr/bin/env bash
# The commit's syscalls per "4 KiB first write + fsync" through the fio engine
# (tests/bench/commit_syscalls.sh, strace -f -c): at most 3 writes (the data write, the
# metadata blocks in one durable run, the durable superblock) and 1 wait (the data device's
# fdatasync) per IO. (Before the commit's IO was reworked: 9 writes, 3 waits.)
source "$(dirname "$0")/lib.sh"

if ! command -v strace >/dev/null || ! strace -f -o /dev/null true 2>/dev/null; then
	echo "FAIL: strace is missing or cannot trace here (apt-get install strace; ptrace allowed)"
	exit 1
fi
step "16 vs 32 first writes of 4 KiB, each followed by fsync"
THINP_ENGINE=$ENGINE BUILD=$WORK MAX_WRITES=3 MAX_WAITS=1 \
	bash "$ENGINE_ROOT/tests/bench/commit_syscalls.sh" 16
echo "PASS"
